package policy

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/hashicorp/hcl/v2"
)

// TestCatalogPatterns requires every host pattern of the catalog to be
// valid and normalized, as a rule's hosts would make it.
func TestCatalogPatterns(t *testing.T) {
	t.Parallel()
	for _, cloud := range catalog.Clouds() {
		for _, g := range catalog.Groups(cloud) {
			if g.Local {
				continue
			}
			for _, e := range g.Endpoints {
				c := &compiler{filename: "catalog"}
				pat, ok := c.hostPattern(e.Host, hcl.Range{}, nil)
				if !ok || pat != e.Host {
					t.Errorf("%s %s: %q is not a normalized host pattern (%q): %s", cloud, g.Name, e.Host, pat, FormatDiagnostics(c.diags))
				}
			}
		}
	}
}

func TestPolicyLabel(t *testing.T) {
	t.Parallel()
	p, diags := Load("gov.hcl", []byte(`cloud = "AzureUSGovernment"`))
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	if got := p.Label(host.Host{Name: "login.microsoftonline.us"}); got != "Entra ID token endpoint" {
		t.Errorf("Policy.Label = %q", got)
	}
	if got := (*Policy)(nil).Label(host.Host{Name: "management.azure.com"}); got != "" {
		t.Errorf("nil Policy.Label = %q", got)
	}
}

// loadRule loads a one-rule policy for cloud and returns its rule.
// Warnings (broad data-plane groups) are allowed.
func loadRule(t *testing.T, cloud, body string) *Rule {
	t.Helper()
	src := "cloud = \"" + cloud + "\"\nclient \"c\" {\n  sources = [\"10.0.0.0/8\"]\n  allow \"r\" {\n" + body + "\n  }\n}\n"
	p, diags := Load("test.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("diagnostics:\n%s", FormatDiagnostics(diags))
	}
	return p.Clients()[0].Rules[0]
}

func TestCatalogExpansion(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, cloud, body string
		hosts, labels     []string
		ports             []uint16
		endpoints         []string
	}{
		{
			name: "arm", cloud: "AzureCloud", body: `endpoints = ["azure.arm"]`,
			hosts: []string{"management.azure.com"}, labels: []string{"Azure Resource Manager"},
			ports: []uint16{443}, endpoints: []string{"azure.arm"},
		},
		{
			name: "arm gov", cloud: "AzureUSGovernment", body: `endpoints = ["azure.arm"]`,
			hosts: []string{"management.usgovcloudapi.net"}, labels: []string{"Azure Resource Manager"}, ports: []uint16{443},
		},
		{
			name: "entra china", cloud: "AzureChinaCloud", body: `endpoints = ["azure.entra"]`,
			hosts:  []string{"login.chinacloudapi.cn", "*.login.chinacloudapi.cn", "login.partner.chinacloudapi.cn"},
			labels: []string{"Entra ID token endpoint", "Entra ID regional token endpoint", "Entra ID token endpoint (21Vianet partner)"},
			ports:  []uint16{443},
		},
		{
			name: "graph gov", cloud: "AzureUSGovernment", body: `endpoints = ["azure.graph"]`,
			hosts: []string{"graph.microsoft.us", "dod-graph.microsoft.us"}, labels: []string{"Microsoft Graph", "Microsoft Graph (DoD)"}, ports: []uint16{443},
		},
		{
			name: "pki is port 80", cloud: "AzureCloud", body: `endpoints = ["azure.pki"]`,
			ports: []uint16{80},
		},
		{
			name: "duplicate groups and hosts collapse", cloud: "AzureCloud",
			body:  `hosts = ["management.azure.com"]` + "\n" + `endpoints = ["azure.arm", "azure.arm"]`,
			hosts: []string{"management.azure.com"}, labels: []string{"Azure Resource Manager"}, endpoints: []string{"azure.arm"},
		},
		{
			name: "includes come first, covered wildcards drop", cloud: "AzureCloud", body: `endpoints = ["azure.acr"]`,
			hosts: []string{"*.azurecr.io"}, // *.data.azurecr.io and *.geo.azurecr.io are under it
		},
		{
			name: "storage is every kind", cloud: "AzureUSGovernment", body: `endpoints = ["azure.storage"]`,
			hosts: []string{
				"*.blob.core.usgovcloudapi.net", "*.file.core.usgovcloudapi.net", "*.queue.core.usgovcloudapi.net",
				"*.table.core.usgovcloudapi.net", "*.dfs.core.usgovcloudapi.net", "*.web.core.usgovcloudapi.net",
			},
			endpoints: []string{"azure.storage"},
		},
		{
			name: "arc includes entra, pas and arm", cloud: "AzureUSGovernment", body: `endpoints = ["azure.arc"]`,
			hosts: []string{
				"login.microsoftonline.us", "pasff.usgovcloudapi.net", "management.usgovcloudapi.net",
				"*.his.arc.azure.us", "*.guestconfiguration.azure.us",
			},
		},
		{
			name: "keyvaults", cloud: "AzureCloud", body: `keyvaults = ["kv-prod-01", "KV-Prod-01", "kv-dev"]`,
			hosts:  []string{"kv-prod-01.vault.azure.net", "kv-dev.vault.azure.net"},
			labels: []string{"Key Vault data plane: vault kv-prod-01", "Key Vault data plane: vault kv-dev"},
			ports:  []uint16{443},
		},
		{
			name: "keyvaults gov", cloud: "AzureUSGovernment", body: `keyvaults = ["kv-prod-01"]`,
			hosts: []string{"kv-prod-01.vault.usgovcloudapi.net"}, labels: []string{"Key Vault data plane: vault kv-prod-01"},
		},
		{
			name: "keyvaults china", cloud: "AzureChinaCloud", body: `keyvaults = ["kv-prod-01"]`,
			hosts: []string{"kv-prod-01.vault.azure.cn"},
		},
		{
			name: "storage accounts", cloud: "AzureCloud", body: `storage_accounts = ["stprod01", "stprod01.queue", "stprod01.blob", "stlake.dfs"]`,
			hosts: []string{"stprod01.blob.core.windows.net", "stprod01.queue.core.windows.net", "stlake.dfs.core.windows.net"},
			labels: []string{
				"Storage blob data plane: account stprod01", "Storage queue data plane: account stprod01",
				"Storage Data Lake (dfs) data plane: account stlake",
			},
		},
		{
			name: "storage accounts china", cloud: "AzureChinaCloud", body: `storage_accounts = ["stprod01.table"]`,
			hosts: []string{"stprod01.table.core.chinacloudapi.cn"}, labels: []string{"Storage table data plane: account stprod01"},
		},
		{
			name: "registries", cloud: "AzureCloud", body: `registries = ["AcrProd", "acrprod.westeurope", "acrprod.northeurope"]`,
			hosts: []string{"acrprod.azurecr.io", "acrprod.westeurope.data.azurecr.io", "acrprod.northeurope.data.azurecr.io"},
			labels: []string{
				"Container registry login server: registry acrprod", "Container registry data endpoint: registry acrprod",
				"Container registry data endpoint: registry acrprod",
			},
		},
		{
			name: "registries gov", cloud: "AzureUSGovernment", body: `registries = ["acrprod"]`,
			hosts: []string{"acrprod.azurecr.us"},
		},
		{
			name: "mixed with hosts and addresses", cloud: "AzureCloud",
			body: `hosts = ["api.example.com", "*.vault.azure.net"]` + "\n" + `keyvaults = ["kv-prod-01"]` + "\n" +
				`endpoints = ["azure.arm"]` + "\n" + `addresses = ["10.20.0.0/24"]`,
			hosts:  []string{"api.example.com", "*.vault.azure.net", "management.azure.com", "kv-prod-01.vault.azure.net"},
			labels: []string{"", "Key Vault data plane", "Azure Resource Manager", "Key Vault data plane: vault kv-prod-01"},
			ports:  []uint16{443},
		},
		{
			name: "explicit ports win", cloud: "AzureCloud", body: `endpoints = ["azure.pki", "azure.arm"]` + "\n" + `ports = [80, 443]`,
			ports: []uint16{80, 443},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := loadRule(t, tt.cloud, tt.body)
			if len(r.Labels) != len(r.Hosts) {
				t.Fatalf("%d labels for %d hosts", len(r.Labels), len(r.Hosts))
			}
			if tt.hosts != nil && !slices.Equal(r.Hosts, tt.hosts) {
				t.Errorf("hosts = %q, want %q", r.Hosts, tt.hosts)
			}
			if tt.labels != nil && !slices.Equal(r.Labels, tt.labels) {
				t.Errorf("labels = %q, want %q", r.Labels, tt.labels)
			}
			if tt.ports != nil && !slices.Equal(r.Ports, tt.ports) {
				t.Errorf("ports = %v, want %v", r.Ports, tt.ports)
			}
			if tt.endpoints != nil && !slices.Equal(r.Endpoints, tt.endpoints) {
				t.Errorf("endpoints = %q, want %q", r.Endpoints, tt.endpoints)
			}
		})
	}
}

// TestCatalogDecide checks that expanded hosts are matched like any other
// rule host.
func TestCatalogDecide(t *testing.T) {
	t.Parallel()
	p, diags := Load("test.hcl", []byte(`
client "c" {
  sources = ["10.0.0.0/8"]
  allow "vault" {
    keyvaults = ["kv-prod-01"]
  }
  allow "control" {
    endpoints = ["azure.entra", "azure.arm"]
  }
  allow "pki" {
    endpoints = ["azure.pki"]
  }
}`))
	if len(diags) > 0 {
		t.Fatalf("diagnostics:\n%s", FormatDiagnostics(diags))
	}
	c := p.Clients()[0]
	for _, tt := range []struct {
		host string
		port uint16
		rule string
	}{
		{"kv-prod-01.vault.azure.net", 443, "vault"},
		{"KV-PROD-01.vault.azure.net.", 443, "vault"},
		{"kv-other.vault.azure.net", 443, ""},
		{"management.azure.com", 443, "control"},
		{"westeurope.login.microsoft.com", 443, "control"},
		{"login.microsoftonline.com", 80, ""},
		{"crl.microsoft.com", 80, "pki"},
		{"crl.microsoft.com", 443, ""},
	} {
		h, err := host.Parse(tt.host)
		if err != nil {
			t.Fatal(err)
		}
		d := c.Decide(h, tt.port)
		got := ""
		if d.Rule != nil {
			got = d.Rule.Name
		}
		if got != tt.rule {
			t.Errorf("Decide(%s:%d) rule = %q, want %q", tt.host, tt.port, got, tt.rule)
		}
	}
}

func TestResourceNames(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		fn   func(string) string
		ok   []string
		bad  []string
	}{
		{
			"key vault", keyVaultNameProblem,
			[]string{"kv1", "kv-prod-01", "KV-Prod-01", "a23456789012345678901234"},
			[]string{"", "kv", "1kv", "-kv", "kv-", "kv--x", "kv_x", "kv.x", "kü1", "a234567890123456789012345"},
		},
		{
			"storage account", storageAccountProblem,
			[]string{"st1", "stprod01", "123", "a23456789012345678901234"},
			[]string{"", "st", "St1", "st-1", "st_1", "a234567890123456789012345"},
		},
		{
			"registry", registryNameProblem,
			[]string{"acr01", "AcrProd", "a2345678901234567890123456789012345678901234567890"},
			[]string{"acr1", "acr-prod", "acr_prod", "a23456789012345678901234567890123456789012345678901"},
		},
	} {
		for _, s := range tt.ok {
			if why := tt.fn(s); why != "" {
				t.Errorf("%s %q rejected: %s", tt.name, s, why)
			}
		}
		for _, s := range tt.bad {
			if tt.fn(s) == "" {
				t.Errorf("%s %q accepted", tt.name, s)
			}
		}
	}
	for _, s := range []string{"westeurope", "eastus2", "usgovvirginia", "chinanorth3"} {
		if !validRegion(s) {
			t.Errorf("region %q rejected", s)
		}
	}
	for _, s := range []string{"", "w", "West Europe", "WestEurope", "west-europe"} {
		if validRegion(s) {
			t.Errorf("region %q accepted", s)
		}
	}
}

// TestPresetsInEveryCloud loads every shipped preset with its cloud line
// replaced by each cloud: presets name catalog groups and resources, so
// switching clouds is one line, and each must load with no diagnostic.
func TestPresetsInEveryCloud(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../policies/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cloudLine := regexp.MustCompile(`(?m)^cloud\s*=\s*"[A-Za-z]+"\s*$`)
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if !cloudLine.Match(src) {
			t.Errorf("%s: no cloud = \"...\" line", file)
			continue
		}
		for _, cloud := range catalog.Clouds() {
			s := cloudLine.ReplaceAll(src, []byte(`cloud = "`+cloud+`"`))
			p, diags := Load(file, s)
			if len(diags) > 0 || p == nil {
				t.Errorf("%s in %s:\n%s", file, cloud, FormatDiagnostics(diags))
				continue
			}
			checkNoWildcardDataPlane(t, file, cloud, p)
		}
	}
}

// checkNoWildcardDataPlane fails if a preset allows a wildcard over a
// multi-tenant data plane.
func checkNoWildcardDataPlane(t *testing.T, file, cloud string, p *Policy) {
	t.Helper()
	for _, c := range p.Clients() {
		for _, r := range c.Rules {
			for _, h := range r.Hosts {
				if why, ok := catalog.MultiTenantWildcard(cloud, h); ok {
					t.Errorf("%s in %s: rule %q: %s", file, cloud, r.Name, why)
				}
			}
		}
	}
}

// TestCatalogWarningSubject checks that the broad-wildcard warning points
// at the group's element and that the policy still loads.
func TestCatalogWarningSubject(t *testing.T) {
	t.Parallel()
	src := "client \"c\" {\n  sources = [\"10.0.0.0/8\"]\n  allow \"r\" {\n    endpoints = [\"azure.arm\", \"azure.storage.blob\"]\n  }\n}\n"
	p, diags := Load("w.hcl", []byte(src))
	if p == nil || len(diags) != 1 || diags[0].Severity != hcl.DiagWarning {
		t.Fatalf("want one warning and a policy, got:\n%s", FormatDiagnostics(diags))
	}
	want := `w.hcl:4:31: warning: Broad data-plane wildcard; Group "azure.storage.blob" allows *.blob.core.windows.net, which every Azure tenant shares, so data can leave to resources you do not own. Name your accounts instead: storage_accounts = ["stprod01", "stprod01.queue"].` + "\n"
	if got := FormatDiagnostics(diags); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
