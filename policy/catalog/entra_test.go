package catalog

import (
	"net/url"
	"testing"
)

// TestEntraAuthority requires an authority for every cloud, in the form
// the policy compiler uses: https, a host, nothing else.
func TestEntraAuthority(t *testing.T) {
	t.Parallel()
	for _, cloud := range Clouds() {
		a := EntraAuthority(cloud)
		u, err := url.Parse(a)
		if err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" || u.String() != a {
			t.Errorf("%s: authority %q is not https://host", cloud, a)
		}
	}
	if a := EntraAuthority("AzurePublic"); a != "" {
		t.Errorf("unknown cloud: %q, want \"\"", a)
	}
}

// TestMicrosoftAudience checks every spelling of the first-party
// audiences the policy language refuses, the Microsoft-owned domains, and
// that the proxy's own audiences pass.
func TestMicrosoftAudience(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		aud  string
		want string // "" for not Microsoft's
	}{
		{"https://management.azure.com", "Azure Resource Manager"},
		{"https://management.azure.com/", "Azure Resource Manager"},
		{"HTTPS://Management.Azure.COM/", "Azure Resource Manager"},
		{"https://management.azure.com/.default", "Azure Resource Manager"},
		{"https://management.azure.com:443/", "Azure Resource Manager"},
		{"https://management.azure.com./", "Azure Resource Manager"},
		{"http://management.azure.com", "Azure Resource Manager"},
		{"https://management.core.windows.net/", "Azure Resource Manager (classic service management audience)"},
		{"https://management.core.usgovcloudapi.net/", "Azure Resource Manager (classic service management audience)"},
		{"https://management.usgovcloudapi.net/", "Azure Resource Manager"},
		{"https://management.chinacloudapi.cn", "Azure Resource Manager"},
		{"797f4846-ba00-4fd7-ba43-dac1f8f63013", "Azure Resource Manager (Windows Azure Service Management API)"},
		{"797F4846-BA00-4FD7-BA43-DAC1F8F63013", "Azure Resource Manager (Windows Azure Service Management API)"},
		{"https://graph.microsoft.com", "Microsoft Graph"},
		{"https://graph.microsoft.us/", "Microsoft Graph"},
		{"https://dod-graph.microsoft.us", "Microsoft Graph (DoD)"},
		{"https://microsoftgraph.chinacloudapi.cn", "Microsoft Graph"},
		{"https://graph.windows.net/", "Azure AD Graph"},
		{"00000003-0000-0000-c000-000000000000", "Microsoft Graph"},
		{"https://vault.azure.net", "Key Vault"},
		{"https://vault.usgovcloudapi.net", "Key Vault"},
		{"https://vault.azure.cn/", "Key Vault"},
		{"cfa8b339-82a2-471a-a3c9-0fc0be7a4093", "Key Vault"},
		{"https://storage.azure.com/", "Azure Storage"},
		{"e406a681-f3d4-42a8-90b6-c2b029497af1", "Azure Storage"},
		{"https://kv-prod-01.vault.azure.net", "a Microsoft-owned host (azure.net)"},
		{"https://ossrdbms-aad.database.windows.net", "a Microsoft-owned host (windows.net)"},
		{"https://api.loganalytics.io", "a Microsoft-owned host (loganalytics.io)"},
		{"https://azure.com", "a Microsoft-owned host (azure.com)"},
		{"https://contoso.sharepoint.com", "a Microsoft-owned host (sharepoint.com)"},
		{"api://azegress", ""},
		{"api://management.azure.com", ""},
		{"https://contoso.onmicrosoft.com/azegress", ""},
		{"https://egress.contoso.com", ""},
		{"https://notazure.com", ""},
		{"urn:azegress", ""},
		{"11111111-2222-3333-4444-555555555555", ""},
		{"https://", ""},
		{"%zz", ""},
	} {
		fp, ok := MicrosoftAudience(tt.aud)
		if ok != (tt.want != "") || fp.Name != tt.want {
			t.Errorf("MicrosoftAudience(%q) = %q, %v; want %q", tt.aud, fp.Name, ok, tt.want)
		}
		if ok && fp.Source == "" {
			t.Errorf("MicrosoftAudience(%q): no source", tt.aud)
		}
	}
}

// TestMicrosoftAudienceData requires a name and a source on every entry.
func TestMicrosoftAudienceData(t *testing.T) {
	t.Parallel()
	for h, fp := range firstParty() {
		if fp.Name == "" || fp.Source == "" || h == "" {
			t.Errorf("first-party host %q: %+v", h, fp)
		}
	}
	for id, fp := range firstPartyAppIDs {
		if fp.Name == "" || fp.Source == "" || len(id) != 36 {
			t.Errorf("first-party app ID %q: %+v", id, fp)
		}
	}
	for _, d := range microsoftDomains {
		if d.source == "" || d.domain == "" {
			t.Errorf("Microsoft domain %+v", d)
		}
	}
}
