package catalog

import (
	"net/url"
	"strings"
	"sync"
)

// This file is the Entra ID side of the catalog: each cloud's authority,
// and the token audiences that belong to Microsoft, which a policy's
// entra block must never accept (policy/doc.go says why).

// entraAuthority is each cloud's Entra ID authority: azure-cli cloud.py
// active_directory [S1], the Graph national-cloud table [S4].
var entraAuthority = map[string]string{
	"AzureCloud":        "https://login.microsoftonline.com",
	"AzureUSGovernment": "https://login.microsoftonline.us",
	"AzureChinaCloud":   "https://login.chinacloudapi.cn",
}

// EntraAuthority returns the Entra ID authority of cloud, the scheme and
// host that tokens and their signing keys come from, without a trailing
// slash: "https://login.microsoftonline.com" for AzureCloud. It returns ""
// for an unknown cloud.
func EntraAuthority(cloud string) string { return entraAuthority[cloud] }

// A FirstParty is a Microsoft resource that issues no tokens for anyone's
// own application: a token whose audience it is works at that resource.
type FirstParty struct {
	// Name says what the resource is: "Azure Resource Manager".
	Name string
	// Source is where the entry comes from.
	Source string
}

const (
	srcFirstPartyApps = "learn.microsoft.com/troubleshoot/azure/active-directory/verify-first-party-apps-sign-in (Microsoft first-party application IDs)"
	srcGovCompare     = "learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure (Key Vault service principal IDs)"
	srcM365           = "Microsoft 365 URLs and IP address ranges, endpoint web service aka.ms/ipurlws"
)

// firstPartyHosts are the hosts of first-party resource URIs that tokens
// name in aud, besides those of the azure.arm and azure.graph groups and
// the Key Vault suffixes, which firstParty adds for every cloud.
var firstPartyHosts = map[string]FirstParty{
	// Classic service management: ARM accepts tokens for it, and azure-cli
	// asks for it (cloud.py management) [S1].
	"management.core.windows.net":       {"Azure Resource Manager (classic service management audience)", srcCLI},
	"management.core.usgovcloudapi.net": {"Azure Resource Manager (classic service management audience)", srcCLI},
	"management.core.chinacloudapi.cn":  {"Azure Resource Manager (classic service management audience)", srcCLI},
	// Azure AD Graph, Microsoft Graph's predecessor [S1].
	"graph.windows.net":      {"Azure AD Graph", srcCLI},
	"graph.chinacloudapi.cn": {"Azure AD Graph", srcCLI},
	// One storage audience for every cloud [S3].
	"storage.azure.com": {"Azure Storage", srcAutorest},
}

// firstPartyAppIDs are the application (client) IDs of first-party
// resources: a v2 token names its resource by this ID in aud.
var firstPartyAppIDs = map[string]FirstParty{
	"797f4846-ba00-4fd7-ba43-dac1f8f63013": {"Azure Resource Manager (Windows Azure Service Management API)", srcFirstPartyApps},
	"00000003-0000-0000-c000-000000000000": {"Microsoft Graph", srcFirstPartyApps},
	"00000002-0000-0000-c000-000000000000": {"Azure AD Graph", srcFirstPartyApps},
	"e406a681-f3d4-42a8-90b6-c2b029497af1": {"Azure Storage", srcFirstPartyApps},
	"cfa8b339-82a2-471a-a3c9-0fc0be7a4093": {"Key Vault", srcGovCompare},
	"7e7c393b-45d0-48b1-a35e-2905ddf8183c": {"Key Vault (AzureUSGovernment)", srcGovCompare},
}

// microsoftDomains are DNS domains Microsoft owns and serves its own
// resources under; an http(s) audience on one of them, or below it, is
// Microsoft's, not the proxy's. Tenants' own domains there are not
// listed: an App ID URI like https://contoso.onmicrosoft.com/azegress
// (onmicrosoft.com) is the tenant's to register.
var microsoftDomains = []struct{ domain, source string }{
	{"azure.com", srcCLI}, // management.azure.com, *.database.azure.com
	{"azure.net", srcCLI}, // vault.azure.net, datalake.azure.net
	{"azure.us", srcCLI},
	{"azure.cn", srcCLI},
	{"windows.net", srcCLI}, // core.windows.net, graph.windows.net
	{"usgovcloudapi.net", srcCLI},
	{"chinacloudapi.cn", srcCLI},
	{"cloudapi.de", srcCLI},         // Azure Germany (retired)
	{"microsoftazure.de", srcCLI},   // Azure Germany (retired)
	{"microsoftonline.com", srcCLI}, // Entra ID
	{"microsoftonline.us", srcCLI},
	{"microsoft.com", srcGraph}, // graph.microsoft.com
	{"microsoft.us", srcGraph},  // graph.microsoft.us, dod-graph.microsoft.us
	{"loganalytics.io", srcCLI},
	{"loganalytics.us", srcCLI},
	{"applicationinsights.io", srcCLI},
	{"applicationinsights.us", srcCLI},
	{"azuresynapse.net", srcCLI},
	{"windowsazure.com", srcGovCompare},
	{"windowsazure.us", srcGovCompare},
	{"office.com", srcM365},
	{"office365.com", srcM365},
	{"outlook.com", srcM365},
	{"sharepoint.com", srcM365},
	{"sharepointonline.com", srcM365},
}

// firstParty returns every first-party resource host: firstPartyHosts,
// and in every cloud the hosts of azure.arm ("Azure Resource Manager")
// and azure.graph ("Microsoft Graph") and the Key Vault audience, which is
// the Key Vault suffix ([S3]: https://vault.azure.net).
var firstParty = sync.OnceValue(func() map[string]FirstParty {
	m := make(map[string]FirstParty, len(firstPartyHosts)+16)
	for h, fp := range firstPartyHosts {
		m[h] = fp
	}
	for _, cloud := range clouds {
		for _, name := range []string{"azure.arm", "azure.graph"} {
			g, _ := LookupGroup(cloud, name)
			for _, e := range g.Endpoints {
				m[e.Host] = FirstParty{e.Label, e.Source}
			}
		}
		m[keyVaultSuffix[cloud]] = FirstParty{"Key Vault", srcAutorest}
	}
	return m
})

// MicrosoftAudience reports whether aud, a token audience as a policy's
// entra block lists it, belongs to a Microsoft resource, and which:
//
//   - a first-party application ID (Azure Resource Manager
//     797f4846-ba00-4fd7-ba43-dac1f8f63013, Microsoft Graph, Key Vault,
//     Storage), in any case;
//   - an http:// or https:// URI whose host is a first-party resource's,
//     in any spelling: with or without a trailing slash, a path, a port,
//     any case ("https://management.core.windows.net/",
//     "https://management.usgovcloudapi.net", "https://vault.azure.cn");
//   - any other http:// or https:// URI whose host is in or below a
//     Microsoft-owned domain (azure.com, windows.net, microsoft.com, ...);
//     the Name then says which.
//
// Other audiences, like api://azegress, a tenant's verified-domain URI or
// the proxy's own client ID, are not Microsoft's.
func MicrosoftAudience(aud string) (FirstParty, bool) {
	if fp, ok := firstPartyAppIDs[strings.ToLower(aud)]; ok {
		return fp, true
	}
	u, err := url.Parse(aud)
	if err != nil {
		return FirstParty{}, false
	}
	if s := strings.ToLower(u.Scheme); s != "https" && s != "http" {
		return FirstParty{}, false
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if h == "" {
		return FirstParty{}, false
	}
	if fp, ok := firstParty()[h]; ok {
		return fp, true
	}
	for _, d := range microsoftDomains {
		if h == d.domain || strings.HasSuffix(h, "."+d.domain) {
			return FirstParty{Name: "a Microsoft-owned host (" + d.domain + ")", Source: d.source}, true
		}
	}
	return FirstParty{}, false
}
