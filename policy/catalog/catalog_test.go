package catalog

import (
	"strings"
	"testing"

	"github.com/azegress/azegress/policy/host"
)

// TestCatalogData checks the catalog's own consistency in every cloud:
// every entry has a label and a source, includes resolve, and the groups
// the policy language documents exist. TestCatalogPatterns in package
// policy checks that the patterns are valid and normalized.
func TestCatalogData(t *testing.T) {
	t.Parallel()
	required := []string{
		"azure.entra", "azure.entra.pas", "azure.arm", "azure.graph", "azure.keyvault", "azure.keyvault.mhsm",
		"azure.storage", "azure.storage.blob", "azure.storage.file", "azure.storage.queue", "azure.storage.table",
		"azure.storage.dfs", "azure.storage.web", "azure.acr", "azure.mcr", "azure.arc", "azure.arc.install",
		"azure.aks", "azure.pki", "azure.servicebus", "azure.azcli.side", "imds", "wireserver", "arc.himds",
	}
	for _, cloud := range Clouds() {
		t.Run(cloud, func(t *testing.T) {
			t.Parallel()
			groups := Groups(cloud)
			for _, name := range required {
				if _, ok := LookupGroup(cloud, name); !ok {
					t.Errorf("group %q missing", name)
				}
			}
			seen := map[string]bool{}
			for _, g := range groups {
				if seen[g.Name] {
					t.Errorf("group %q defined twice", g.Name)
				}
				seen[g.Name] = true
				if g.Description == "" {
					t.Errorf("group %q has no description", g.Name)
				}
				if !g.Local && len(g.Ports) == 0 {
					t.Errorf("group %q has no ports", g.Name)
				}
				if len(g.Endpoints) == 0 && len(g.Includes) == 0 {
					t.Errorf("group %q is empty", g.Name)
				}
				for _, inc := range g.Includes {
					ig, ok := LookupGroup(cloud, inc)
					if !ok || ig.Local {
						t.Errorf("group %q includes %q, which is not a group", g.Name, inc)
					}
				}
				for _, e := range g.Endpoints {
					if e.Label == "" || e.Source == "" {
						t.Errorf("%s %s: missing label or source", g.Name, e.Host)
					}
					if e.PrivateLinkZone != "" && !strings.HasPrefix(e.PrivateLinkZone, "privatelink.") {
						t.Errorf("%s %s: private link zone %q", g.Name, e.Host, e.PrivateLinkZone)
					}
					if g.Local {
						if !e.ip.IsValid() && e.Host != "localhost" {
							t.Errorf("%s %s: local endpoint is neither an IP nor localhost", g.Name, e.Host)
						}
						continue
					}
					if e.Kind != "" && (!e.MultiTenant || e.depth < 1 || !strings.HasPrefix(e.Host, "*.")) {
						t.Errorf("%s %s: a resource kind needs a multi-tenant wildcard with a depth", g.Name, e.Host)
					}
				}
			}
		})
	}
}

// TestCatalogUnavailable checks the one group that exists only in the
// public cloud, so "not in this cloud" diagnostics have a real case.
func TestCatalogUnavailable(t *testing.T) {
	t.Parallel()
	if _, ok := LookupGroup("AzureCloud", "azure.entra.mtls"); !ok {
		t.Error("azure.entra.mtls missing in AzureCloud")
	}
	for _, cloud := range []string{"AzureUSGovernment", "AzureChinaCloud"} {
		if _, ok := LookupGroup(cloud, "azure.entra.mtls"); ok {
			t.Errorf("azure.entra.mtls defined in %s", cloud)
		}
	}
	if Groups("AzureGermanCloud") != nil {
		t.Error("catalog for a retired cloud")
	}
}

func TestLabel(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ cloud, host, want string }{
		{"AzureCloud", "login.microsoftonline.com", "Entra ID token endpoint"},
		{"AzureCloud", "westeurope.login.microsoft.com", "Entra ID regional token endpoint"},
		{"AzureCloud", "management.azure.com", "Azure Resource Manager"},
		{"AzureCloud", "graph.microsoft.com", "Microsoft Graph"},
		{"AzureCloud", "kv-prod-01.vault.azure.net", "Key Vault data plane: vault kv-prod-01"},
		{"AzureCloud", "a.b.vault.azure.net", "Key Vault data plane"},
		{"AzureCloud", "vault.azure.net", ""},
		{"AzureCloud", "hsm01.managedhsm.azure.net", "Managed HSM data plane: HSM hsm01"},
		{"AzureCloud", "stprod01.blob.core.windows.net", "Storage blob data plane: account stprod01"},
		{"AzureCloud", "stprod01.z13.web.core.windows.net", "Storage static website: account stprod01"},
		{"AzureCloud", "stprod01.web.core.windows.net", "Storage static website"},
		{"AzureCloud", "acrprod.azurecr.io", "Container registry login server: registry acrprod"},
		{"AzureCloud", "acrprod.westeurope.data.azurecr.io", "Container registry data endpoint: registry acrprod"},
		{"AzureCloud", "acrprod.westeurope.geo.azurecr.io", "Container registry regional endpoint: registry acrprod"},
		{"AzureCloud", "ns01.servicebus.windows.net", "Service Bus data plane: namespace ns01"},
		{"AzureCloud", "gbl.his.arc.azure.com", "Azure Arc hybrid identity service"},
		{"AzureCloud", "packages.microsoft.com", "Microsoft Linux package repository"},
		{"AzureCloud", "eastus2.data.mcr.microsoft.com", "Microsoft Container Registry data (layers)"},
		{"AzureCloud", "myaks-dns-1234.hcp.westeurope.azmk8s.io", "AKS API server"},
		{"AzureCloud", "crl.microsoft.com", "Certificate revocation list (CRL)"},
		{"AzureCloud", "dc.services.visualstudio.com", "Azure CLI telemetry (Application Insights ingestion)"},
		{"AzureCloud", "169.254.169.254", "Azure Instance Metadata Service (IMDS)"},
		{"AzureCloud", "[::ffff:169.254.169.254]", "Azure Instance Metadata Service (IMDS)"},
		{"AzureCloud", "168.63.129.16", "Azure WireServer and Azure DNS (168.63.129.16)"},
		{"AzureCloud", "127.0.0.1", ""},
		{"AzureCloud", "localhost", ""},
		{"AzureCloud", "example.com", ""},
		{"AzureCloud", "management.usgovcloudapi.net", ""},
		{"AzureUSGovernment", "management.usgovcloudapi.net", "Azure Resource Manager"},
		{"AzureUSGovernment", "kv1.vault.usgovcloudapi.net", "Key Vault data plane: vault kv1"},
		{"AzureUSGovernment", "management.azure.com", ""},
		{"AzureChinaCloud", "st1.blob.core.chinacloudapi.cn", "Storage blob data plane: account st1"},
		{"AzureChinaCloud", "mcr.azure.cn", "Microsoft Container Registry (China)"},
		{"AzureGermanCloud", "management.azure.com", ""},
	} {
		h, err := host.Parse(tt.host)
		if err != nil {
			t.Fatal(err)
		}
		if got := Label(tt.cloud, h); got != tt.want {
			t.Errorf("Label(%s, %s) = %q, want %q", tt.cloud, tt.host, got, tt.want)
		}
	}
}

// Labels are used on every log record; unknown hosts, the common case,
// cost nothing, and so do labels without a resource name.
func TestLabelAllocs(t *testing.T) {
	for _, name := range []string{"a.b.c.example.com", "management.azure.com", "x.y.z.vault.azure.net"} {
		h := host.Host{Name: name}
		if n := testing.AllocsPerRun(100, func() { _ = Label("AzureCloud", h) }); n != 0 {
			t.Errorf("Label(%s) allocates %v times", name, n)
		}
	}
}

func TestLocalEndpoint(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		host  string
		port  uint16
		label string
	}{
		{"169.254.169.254", 80, "Azure Instance Metadata Service (IMDS)"},
		{"169.254.169.254", 443, "Azure Instance Metadata Service (IMDS)"},
		{"2852039166", 80, "Azure Instance Metadata Service (IMDS)"}, // 169.254.169.254 as one number
		{"[::ffff:a9fe:a9fe]", 80, "Azure Instance Metadata Service (IMDS)"},
		{"168.63.129.16", 80, "Azure WireServer and Azure DNS (168.63.129.16)"},
		{"168.63.129.16", 32526, "Azure WireServer and Azure DNS (168.63.129.16)"},
		{"localhost", 40342, "Azure Arc HIMDS token endpoint"},
		{"LOCALHOST.", 40342, "Azure Arc HIMDS token endpoint"},
		{"127.0.0.1", 40342, "Azure Arc HIMDS token endpoint"},
		{"[::1]", 40342, "Azure Arc HIMDS token endpoint"},
		{"localhost", 40343, "Azure Arc Proxy (Arc gateway)"},
		{"localhost", 80, ""},
		{"127.0.0.1", 3128, ""},
		{"127.0.0.2", 40342, ""},
		{"169.254.169.253", 80, ""},
		{"management.azure.com", 443, ""},
	} {
		h, err := host.Parse(tt.host)
		if err != nil {
			t.Fatal(err)
		}
		label, ok := LocalEndpoint(h, tt.port)
		if label != tt.label || ok != (tt.label != "") {
			t.Errorf("LocalEndpoint(%s, %d) = %q, %v; want %q", tt.host, tt.port, label, ok, tt.label)
		}
	}
}

func TestPrivateLinkName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ cloud, host, want string }{
		{"AzureCloud", "kv-x.vault.azure.net", "kv-x.privatelink.vaultcore.azure.net"},
		{"AzureCloud", "hsm1.managedhsm.azure.net", "hsm1.privatelink.managedhsm.azure.net"},
		{"AzureCloud", "st.blob.core.windows.net", "st.privatelink.blob.core.windows.net"},
		{"AzureCloud", "st-secondary.blob.core.windows.net", "st-secondary.privatelink.blob.core.windows.net"},
		{"AzureCloud", "st.dfs.core.windows.net", "st.privatelink.dfs.core.windows.net"},
		{"AzureCloud", "acr.azurecr.io", "acr.privatelink.azurecr.io"},
		{"AzureCloud", "acr.westeurope.data.azurecr.io", "acr.westeurope.data.privatelink.azurecr.io"},
		{"AzureCloud", "ns.servicebus.windows.net", "ns.privatelink.servicebus.windows.net"},
		{"AzureCloud", "gbl.his.arc.azure.com", "gbl.privatelink.his.arc.azure.com"},
		{"AzureCloud", "st.privatelink.blob.core.windows.net", ""},
		{"AzureCloud", "management.azure.com", ""},
		{"AzureCloud", "example.com", ""},
		{"AzureCloud", "", ""},
		{"AzureUSGovernment", "kv-x.vault.usgovcloudapi.net", "kv-x.privatelink.vaultcore.usgovcloudapi.net"},
		{"AzureUSGovernment", "st.blob.core.usgovcloudapi.net", "st.privatelink.blob.core.usgovcloudapi.net"},
		{"AzureUSGovernment", "st.dfs.core.usgovcloudapi.net", ""}, // not documented for this cloud
		{"AzureUSGovernment", "kv-x.vault.azure.net", ""},
		{"AzureChinaCloud", "kv-x.vault.azure.cn", "kv-x.privatelink.vaultcore.azure.cn"},
		{"AzureChinaCloud", "ns.servicebus.chinacloudapi.cn", "ns.privatelink.servicebus.chinacloudapi.cn"},
	} {
		got, ok := PrivateLinkName(tt.cloud, tt.host)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("PrivateLinkName(%s, %q) = %q, %v; want %q", tt.cloud, tt.host, got, ok, tt.want)
		}
	}
}

func TestMultiTenantWildcard(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cloud, pattern string
		risky          bool
	}{
		{"AzureCloud", "*.vault.azure.net", true},
		{"AzureCloud", "*.blob.core.windows.net", true},
		{"AzureCloud", "*.core.windows.net", true},
		{"AzureCloud", "*.windows.net", true},
		{"AzureCloud", "*.servicebus.windows.net", true},
		{"AzureCloud", "*.azurecr.io", true},
		{"AzureCloud", "*.data.azurecr.io", true},
		{"AzureCloud", "*.azmk8s.io", true},
		{"AzureCloud", "*.kv01.vault.azure.net", false},
		{"AzureCloud", "kv01.vault.azure.net", false},
		{"AzureCloud", "*.login.microsoft.com", false},
		{"AzureCloud", "*.his.arc.azure.com", false},
		{"AzureCloud", "*.data.mcr.microsoft.com", false},
		{"AzureCloud", "*.vault.usgovcloudapi.net", false},
		{"AzureUSGovernment", "*.vault.usgovcloudapi.net", true},
		{"AzureChinaCloud", "*.chinacloudapi.cn", true},
		{"AzureChinaCloud", "*.azk8s.cn", true},
	} {
		why, ok := MultiTenantWildcard(tt.cloud, tt.pattern)
		if ok != tt.risky || ok && !strings.Contains(why, tt.pattern) {
			t.Errorf("MultiTenantWildcard(%s, %s) = %q, %v; want %v", tt.cloud, tt.pattern, why, ok, tt.risky)
		}
	}
}

func TestFind(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cloud, pattern, group, host string
	}{
		{"AzureCloud", "management.azure.com", "azure.arm", "management.azure.com"},
		{"AzureCloud", "kv1.vault.azure.net", "azure.keyvault", "*.vault.azure.net"},
		{"AzureCloud", "*.vault.azure.net", "azure.keyvault", "*.vault.azure.net"},
		{"AzureCloud", "*.kv1.vault.azure.net", "azure.keyvault", "*.vault.azure.net"},
		{"AzureCloud", "st1.queue.core.windows.net", "azure.storage.queue", "*.queue.core.windows.net"},
		{"AzureCloud", "dc.services.visualstudio.com", "azure.azcli.side", "dc.services.visualstudio.com"},
		{"AzureCloud", "example.com", "", ""},
		{"AzureCloud", "*.azure.net", "", ""},
		{"AzureUSGovernment", "management.azure.com", "", ""},
		{"AzureGermanCloud", "management.azure.com", "", ""},
	} {
		g, e, ok := Find(tt.cloud, tt.pattern)
		if ok != (tt.group != "") || ok && (g != tt.group || e.Host != tt.host || e.Source == "") {
			t.Errorf("Find(%s, %s) = %q, %+v, %v; want group %q, host %q", tt.cloud, tt.pattern, g, e, ok, tt.group, tt.host)
		}
	}
}
