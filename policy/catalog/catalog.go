package catalog

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/azegress/azegress/policy/host"
)

// clouds are the Azure clouds, in catalog order: the valid values of a
// policy's cloud attribute.
var clouds = []string{"AzureCloud", "AzureUSGovernment", "AzureChinaCloud"}

// DefaultCloud is the cloud of a policy without a cloud attribute.
const DefaultCloud = "AzureCloud"

// Group is a named set of Azure endpoints for one cloud, like "azure.arm" or
// "azure.keyvault". Rules name groups in their endpoints attribute.
type Group struct {
	// Name is how rules refer to the group, like "azure.entra".
	Name string `json:"name"`
	// Description says what the group is for.
	Description string `json:"description"`
	// Ports are the TCP ports its endpoints are served on. Nil means any
	// port (local groups).
	Ports []uint16 `json:"ports"`
	// Local reports whether the group's endpoints live on the machine or
	// the Azure host itself. They never work through a proxy: clients must
	// reach them directly, so they belong in NO_PROXY, not in a policy.
	Local bool `json:"local,omitempty"`
	// Optional reports whether the endpoints are conveniences the workload
	// works without (telemetry, version checks).
	Optional bool `json:"optional,omitempty"`
	// Includes names other groups whose endpoints this group also covers.
	Includes []string `json:"includes,omitempty"`
	// Endpoints are the group's own hosts, in catalog order.
	Endpoints []Endpoint `json:"endpoints"`
}

// Endpoint is one host pattern of a catalog group.
type Endpoint struct {
	// Host is an exact DNS name, a "*." wildcard, or, in local groups, an IP
	// address or "localhost".
	Host string `json:"host"`
	// Ports, if not nil, overrides the group's ports for this endpoint.
	Ports []uint16 `json:"ports,omitempty"`
	// Label says what the endpoint is, for logs and reports: "Azure
	// Resource Manager", "Key Vault data plane".
	Label string `json:"label"`
	// Kind names the resource a data-plane name belongs to ("vault",
	// "account", "registry"). When it is set, the first label of a matching
	// host is that resource's name, and Label reports it: "Key Vault data
	// plane: vault kv-prod-01".
	Kind string `json:"kind,omitempty"`
	// MultiTenant reports whether names here reach resources that any
	// Azure tenant can create: allowing the whole pattern lets data leave to
	// a resource its owner does not control. Name the resources instead.
	MultiTenant bool `json:"multi_tenant,omitempty"`
	// PrivateLinkZone is the private DNS zone that private endpoints of
	// this service use, like "privatelink.vaultcore.azure.net". The
	// destination guard lets an allowed name of this service resolve to a
	// private address when its canonical name is the same name inside this
	// zone (see PrivateLinkName).
	PrivateLinkZone string `json:"private_link_zone,omitempty"`
	// Source is where the entry comes from.
	Source string `json:"source"`

	depth int        // labels left of the wildcard's suffix in a resource's host; 0 = any
	ip    netip.Addr // Host as an address, for local endpoints
	group string     // the group it is an endpoint of
}

// Sources of the catalog data. The tags in brackets refer to the Sources
// list of shared/azure-endpoints.md.
const (
	srcCLI        = "azure-cli 2.45 azure/cli/core/cloud.py [S1]"
	srcCLISide    = "azure-cli 2.45 azure/cli/core/telemetry.py and util.py [S1c]; observed on first run (LAB-NOTES)"
	srcGraph      = "learn.microsoft.com/graph/deployments [S4]"
	srcAutorest   = "Azure/go-autorest autorest/azure/environments.go [S3]"
	srcIMDS       = "learn.microsoft.com/azure/virtual-machines/instance-metadata-service [S6]"
	srcHIMDS      = "learn.microsoft.com/azure/azure-arc/servers/managed-identity-authentication [S9]; arc-gateway [S20]"
	srcACA        = "learn.microsoft.com/azure/container-apps/use-azure-firewall [S17]"
	srcArc        = "learn.microsoft.com/azure/azure-arc/servers/network-requirements [S18]"
	srcArcProxy   = "learn.microsoft.com/azure/azure-arc/servers/manage-agent-proxy-settings [S19]"
	srcKVFirewall = "learn.microsoft.com/azure/key-vault/general/access-behind-firewall [S24]"
	srcPKI        = "learn.microsoft.com/azure/security/fundamentals/azure-ca-details [S25]"
	srcAKS        = "learn.microsoft.com/azure/aks/outbound-rules-control-egress [S26]"
	srcStorage    = "azure-cli cloud.py storage suffix [S1]; ARM storage Endpoints model [S42]"
	srcMSAL       = "MSAL regional and mTLS endpoints [S40]"
	srcACR        = "azure-cli cloud.py acr suffix [S1]; learn.microsoft.com/azure/container-registry/container-registry-endpoint-reference"
	srcACRGov     = srcACR + " (AzureUSGovernment: same form, assumed)"
	srcPE         = "; private link zone: learn.microsoft.com/azure/private-link/private-endpoint-dns (ms.date 2023-10-11)"
)

// portsHTTPS is the port of every TLS endpoint in the catalog.
var portsHTTPS = []uint16{443}

// ep is an endpoint that names one service, not tenants' resources.
func ep(host, label string) Endpoint { return Endpoint{Host: host, Label: label} }

// res is a wildcard over a multi-tenant data plane whose names are
// <resource>.<suffix> (depth 1) or <resource>.<x>.<suffix> (depth 2).
func res(host, label, kind string, depth int) Endpoint {
	return Endpoint{Host: host, Label: label, Kind: kind, depth: depth, MultiTenant: true}
}

func (e Endpoint) src(s string) Endpoint   { e.Source = s; return e }
func (e Endpoint) zone(z string) Endpoint  { e.PrivateLinkZone = z; return e }
func (e Endpoint) on(p ...uint16) Endpoint { e.Ports = p; return e }
func (e Endpoint) shared() Endpoint        { e.MultiTenant = true; return e }

// groupDef defines a group in every cloud. A group is defined for a cloud
// when it has endpoints there (all, or that cloud's list) or only includes
// other groups that are.
type groupDef struct {
	Group            // cloud-independent fields; Endpoints is unused
	source    string // default Source of its endpoints
	all       []Endpoint
	perCloud  map[string][]Endpoint
	onlyIn    []string // if set, the clouds the group exists in
	storageOf string   // storage kind: endpoints derived from the cloud's storage suffix
}

// Per-cloud DNS suffixes of the resource helpers [S1].
var (
	keyVaultSuffix = map[string]string{"AzureCloud": "vault.azure.net", "AzureUSGovernment": "vault.usgovcloudapi.net", "AzureChinaCloud": "vault.azure.cn"}
	storageSuffix  = map[string]string{"AzureCloud": "core.windows.net", "AzureUSGovernment": "core.usgovcloudapi.net", "AzureChinaCloud": "core.chinacloudapi.cn"}
	acrSuffix      = map[string]string{"AzureCloud": "azurecr.io", "AzureUSGovernment": "azurecr.us", "AzureChinaCloud": "azurecr.cn"}
)

// KeyVaultSuffix returns the DNS suffix of Key Vault names in cloud, like
// "vault.azure.net", or "" for an unknown cloud.
func KeyVaultSuffix(cloud string) string { return keyVaultSuffix[cloud] }

// StorageSuffix returns the DNS suffix of storage account names in cloud,
// like "core.windows.net", or "" for an unknown cloud.
func StorageSuffix(cloud string) string { return storageSuffix[cloud] }

// RegistrySuffix returns the DNS suffix of container registry login
// servers in cloud, like "azurecr.io", or "" for an unknown cloud.
func RegistrySuffix(cloud string) string { return acrSuffix[cloud] }

// storageKinds are the storage account endpoint kinds [S42], in catalog
// order, with their labels. Static websites are <account>.z<N>.web.<suffix>.
var storageKinds = []struct{ kind, label string }{
	{"blob", "Storage blob data plane"},
	{"file", "Storage file data plane"},
	{"queue", "Storage queue data plane"},
	{"table", "Storage table data plane"},
	{"dfs", "Storage Data Lake (dfs) data plane"},
	{"web", "Storage static website"},
}

// IsStorageKind reports whether kind is a storage account endpoint kind:
// blob, file, queue, table, dfs or web.
func IsStorageKind(kind string) bool {
	return slices.ContainsFunc(storageKinds, func(k struct{ kind, label string }) bool { return k.kind == kind })
}

// storagePrivateLink lists, per cloud, the storage kinds with a documented
// private link zone privatelink.<kind>.<storage suffix>.
var storagePrivateLink = map[string][]string{
	"AzureCloud":        {"blob", "file", "queue", "table", "dfs", "web"},
	"AzureUSGovernment": {"blob", "file", "queue", "table", "web"},
	"AzureChinaCloud":   {"blob", "file", "queue", "table", "dfs", "web"},
}

// The local endpoint groups: they never go through a proxy.
const (
	GroupIMDS       = "imds"
	GroupWireServer = "wireserver"
	GroupArcHIMDS   = "arc.himds"
)

var catalogDefs = []groupDef{
	// Identity and control plane.
	{
		Group:  Group{Name: "azure.entra", Description: "Microsoft Entra ID token and authority hosts: workload identity, service principals, MSAL, the Arc agent", Ports: portsHTTPS},
		source: srcCLI,
		perCloud: map[string][]Endpoint{
			"AzureCloud": {
				ep("login.microsoftonline.com", "Entra ID token endpoint"),
				ep("login.microsoft.com", "Entra ID token endpoint").src(srcACA),
				ep("*.login.microsoft.com", "Entra ID regional token endpoint").src(srcArc + "; " + srcMSAL),
				ep("*.login.microsoftonline.com", "Entra ID token endpoint").src(srcACA),
				ep("login.windows.net", "Entra ID legacy authority").src(srcArcProxy),
			},
			"AzureUSGovernment": {
				ep("login.microsoftonline.us", "Entra ID token endpoint"),
			},
			"AzureChinaCloud": {
				ep("login.chinacloudapi.cn", "Entra ID token endpoint"),
				ep("*.login.chinacloudapi.cn", "Entra ID regional token endpoint").src(srcACA),
				ep("login.partner.chinacloudapi.cn", "Entra ID token endpoint (21Vianet partner)").src(srcArc),
			},
		},
	},
	{
		Group:  Group{Name: "azure.entra.pas", Description: "Entra ID endpoint the Arc Connected Machine agent always needs", Ports: portsHTTPS},
		source: srcArc,
		perCloud: map[string][]Endpoint{
			"AzureCloud":        {ep("pas.windows.net", "Entra ID PAS (Arc agent)")},
			"AzureUSGovernment": {ep("pasff.usgovcloudapi.net", "Entra ID PAS (Arc agent)")},
			"AzureChinaCloud":   {ep("pas.chinacloudapi.cn", "Entra ID PAS (Arc agent)")},
		},
	},
	{
		Group:  Group{Name: "azure.entra.mtls", Description: "Entra ID mTLS proof-of-possession token endpoint (IMDSv2, preview); client-certificate TLS", Ports: portsHTTPS},
		source: srcMSAL,
		onlyIn: []string{"AzureCloud"},
		perCloud: map[string][]Endpoint{
			"AzureCloud": {
				ep("mtlsauth.microsoft.com", "Entra ID mTLS token endpoint"),
				ep("*.mtlsauth.microsoft.com", "Entra ID regional mTLS token endpoint"),
			},
		},
	},
	{
		Group:  Group{Name: "azure.arm", Description: "Azure Resource Manager: az login --identity (subscription list), every management call", Ports: portsHTTPS},
		source: srcCLI,
		perCloud: map[string][]Endpoint{
			"AzureCloud":        {ep("management.azure.com", "Azure Resource Manager")},
			"AzureUSGovernment": {ep("management.usgovcloudapi.net", "Azure Resource Manager")},
			"AzureChinaCloud":   {ep("management.chinacloudapi.cn", "Azure Resource Manager")},
		},
	},
	{
		Group:  Group{Name: "azure.graph", Description: "Microsoft Graph", Ports: portsHTTPS},
		source: srcCLI + "; " + srcGraph,
		perCloud: map[string][]Endpoint{
			"AzureCloud": {ep("graph.microsoft.com", "Microsoft Graph")},
			"AzureUSGovernment": {
				ep("graph.microsoft.us", "Microsoft Graph"),
				ep("dod-graph.microsoft.us", "Microsoft Graph (DoD)").src(srcGraph),
			},
			"AzureChinaCloud": {ep("microsoftgraph.chinacloudapi.cn", "Microsoft Graph")},
		},
	},

	// Data planes. Name resources with keyvaults, storage_accounts and
	// registries instead of allowing these wildcards.
	{
		Group:  Group{Name: "azure.keyvault", Description: "Key Vault data plane, every vault of every tenant; name vaults with keyvaults instead", Ports: portsHTTPS},
		source: srcCLI + "; " + srcKVFirewall,
		perCloud: map[string][]Endpoint{
			"AzureCloud":        {res("*.vault.azure.net", "Key Vault data plane", "vault", 1).zone("privatelink.vaultcore.azure.net")},
			"AzureUSGovernment": {res("*.vault.usgovcloudapi.net", "Key Vault data plane", "vault", 1).zone("privatelink.vaultcore.usgovcloudapi.net")},
			"AzureChinaCloud":   {res("*.vault.azure.cn", "Key Vault data plane", "vault", 1).zone("privatelink.vaultcore.azure.cn")},
		},
	},
	{
		Group:  Group{Name: "azure.keyvault.mhsm", Description: "Key Vault Managed HSM data plane, every HSM of every tenant", Ports: portsHTTPS},
		source: srcCLI,
		perCloud: map[string][]Endpoint{
			"AzureCloud":        {res("*.managedhsm.azure.net", "Managed HSM data plane", "HSM", 1).zone("privatelink.managedhsm.azure.net")},
			"AzureUSGovernment": {res("*.managedhsm.usgovcloudapi.net", "Managed HSM data plane", "HSM", 1)},
			"AzureChinaCloud":   {res("*.managedhsm.azure.cn", "Managed HSM data plane", "HSM", 1)},
		},
	},
	{
		Group: Group{Name: "azure.storage", Description: "Every storage account endpoint kind, every account of every tenant; name accounts with storage_accounts instead", Ports: portsHTTPS,
			Includes: []string{"azure.storage.blob", "azure.storage.file", "azure.storage.queue", "azure.storage.table", "azure.storage.dfs", "azure.storage.web"}},
	},
	{Group: Group{Name: "azure.storage.blob", Description: "Storage blob endpoints, every account of every tenant", Ports: portsHTTPS}, storageOf: "blob"},
	{Group: Group{Name: "azure.storage.file", Description: "Storage file (Azure Files REST) endpoints, every account of every tenant", Ports: portsHTTPS}, storageOf: "file"},
	{Group: Group{Name: "azure.storage.queue", Description: "Storage queue endpoints, every account of every tenant", Ports: portsHTTPS}, storageOf: "queue"},
	{Group: Group{Name: "azure.storage.table", Description: "Storage table endpoints, every account of every tenant", Ports: portsHTTPS}, storageOf: "table"},
	{Group: Group{Name: "azure.storage.dfs", Description: "Storage Data Lake Gen2 (dfs) endpoints, every account of every tenant", Ports: portsHTTPS}, storageOf: "dfs"},
	{Group: Group{Name: "azure.storage.web", Description: "Storage static website endpoints (<account>.z<N>.web...), every account of every tenant", Ports: portsHTTPS}, storageOf: "web"},
	{
		Group:  Group{Name: "azure.acr", Description: "Azure Container Registry login servers and dedicated data endpoints, every registry of every tenant; name registries with registries instead", Ports: portsHTTPS},
		source: srcACR,
		perCloud: map[string][]Endpoint{
			"AzureCloud": {
				res("*.azurecr.io", "Container registry login server", "registry", 1).zone("privatelink.azurecr.io"),
				res("*.data.azurecr.io", "Container registry data endpoint", "registry", 2),
				res("*.geo.azurecr.io", "Container registry regional endpoint", "registry", 2),
			},
			"AzureUSGovernment": {
				res("*.azurecr.us", "Container registry login server", "registry", 1),
				res("*.data.azurecr.us", "Container registry data endpoint", "registry", 2).src(srcACRGov),
			},
			"AzureChinaCloud": {
				res("*.azurecr.cn", "Container registry login server", "registry", 1),
				res("*.data.azurecr.cn", "Container registry data endpoint", "registry", 2),
				res("*.geo.azurecr.cn", "Container registry regional endpoint", "registry", 2),
			},
		},
	},
	{
		Group:  Group{Name: "azure.mcr", Description: "Microsoft Container Registry (public Microsoft images)", Ports: portsHTTPS},
		source: srcAKS,
		perCloud: map[string][]Endpoint{
			"AzureCloud": {
				ep("mcr.microsoft.com", "Microsoft Container Registry"),
				ep("*.data.mcr.microsoft.com", "Microsoft Container Registry data (layers)"),
				ep("mcr-0001.mcr-msedge.net", "Microsoft Container Registry CDN"),
			},
			"AzureUSGovernment": {
				ep("mcr.microsoft.com", "Microsoft Container Registry"),
				ep("*.data.mcr.microsoft.com", "Microsoft Container Registry data (layers)"),
			},
			"AzureChinaCloud": {
				ep("mcr.microsoft.com", "Microsoft Container Registry"),
				ep("*.data.mcr.microsoft.com", "Microsoft Container Registry data (layers)"),
				ep("mcr.azure.cn", "Microsoft Container Registry (China)").src(srcACA),
				ep("*.data.mcr.azure.cn", "Microsoft Container Registry data (China)").src(srcACA),
			},
		},
	},
	{
		Group:  Group{Name: "azure.servicebus", Description: "Service Bus, Event Hubs and Relay namespaces, every namespace of every tenant", Ports: portsHTTPS},
		source: srcAutorest,
		perCloud: map[string][]Endpoint{
			"AzureCloud":        {res("*.servicebus.windows.net", "Service Bus data plane", "namespace", 1).zone("privatelink.servicebus.windows.net")},
			"AzureUSGovernment": {res("*.servicebus.usgovcloudapi.net", "Service Bus data plane", "namespace", 1).zone("privatelink.servicebus.usgovcloudapi.net")},
			"AzureChinaCloud":   {res("*.servicebus.chinacloudapi.cn", "Service Bus data plane", "namespace", 1).zone("privatelink.servicebus.chinacloudapi.cn")},
		},
	},

	// Platform agents and clusters.
	{
		Group: Group{Name: "azure.arc", Description: "Azure Arc Connected Machine agent, always required (with Entra ID, PAS and ARM). " +
			"The agent also needs its region's notification Service Bus namespace and extension storage, which are multi-tenant: list them by name", Ports: portsHTTPS,
			Includes: []string{"azure.entra", "azure.entra.pas", "azure.arm"}},
		source: srcArc,
		perCloud: map[string][]Endpoint{
			"AzureCloud": {
				ep("*.his.arc.azure.com", "Azure Arc hybrid identity service").zone("privatelink.his.arc.azure.com"),
				ep("*.guestconfiguration.azure.com", "Azure Arc extensions and guest configuration").zone("privatelink.guestconfiguration.azure.com"),
				ep("guestnotificationservice.azure.com", "Azure Arc notification service"),
				ep("*.guestnotificationservice.azure.com", "Azure Arc notification service"),
			},
			"AzureUSGovernment": {
				ep("*.his.arc.azure.us", "Azure Arc hybrid identity service"),
				ep("*.guestconfiguration.azure.us", "Azure Arc extensions and guest configuration"),
			},
			"AzureChinaCloud": {
				ep("*.his.arc.azure.cn", "Azure Arc hybrid identity service"),
				ep("*.guestconfiguration.azure.cn", "Azure Arc extensions and guest configuration"),
				ep("guestnotificationservice.azure.cn", "Azure Arc notification service"),
				ep("*.guestnotificationservice.azure.cn", "Azure Arc notification service"),
			},
		},
	},
	{
		Group:  Group{Name: "azure.arc.install", Description: "Arc agent installation and automatic upgrade", Ports: portsHTTPS},
		source: srcArc,
		all: []Endpoint{
			ep("download.microsoft.com", "Microsoft Download Center"),
			ep("packages.microsoft.com", "Microsoft Linux package repository"),
		},
	},
	{
		Group: Group{Name: "azure.aks", Description: "AKS node egress, required FQDNs (Azure Firewall FQDN tag AzureKubernetesService) except the API server: " +
			"allow your cluster's own API server name; UDP 1194, TCP 9000 and NTP are not HTTP and out of scope", Ports: portsHTTPS,
			Includes: []string{"azure.mcr", "azure.arm", "azure.entra"}},
		source: srcAKS,
		all: []Endpoint{
			ep("packages.microsoft.com", "Microsoft Linux package repository"),
			ep("acs-mirror.azureedge.net", "AKS binaries mirror (kubenet, Azure CNI)"),
			ep("packages.aks.azure.com", "AKS binaries").src(srcACA),
		},
		perCloud: map[string][]Endpoint{
			"AzureChinaCloud": {ep("*.azk8s.cn", "AKS China mirrors and API servers").shared()},
		},
	},
	{
		Group:  Group{Name: "azure.aks.apiserver", Description: "AKS API servers of every cluster of every tenant; allow your cluster's own name instead", Ports: portsHTTPS},
		source: srcAKS,
		perCloud: map[string][]Endpoint{
			"AzureCloud":        {ep("*.azmk8s.io", "AKS API server").shared()},
			"AzureUSGovernment": {ep("*.cx.aks.containerservice.azure.us", "AKS API server").shared()},
			"AzureChinaCloud":   {ep("*.cx.prod.service.azk8s.cn", "AKS API server").shared()},
		},
	},

	// Supporting.
	{
		Group:  Group{Name: "azure.pki", Description: "Certificate revocation (CRL, OCSP) and CA certificate downloads for Azure TLS chains, plain HTTP", Ports: []uint16{80}},
		source: srcPKI,
		all: []Endpoint{
			ep("crl.microsoft.com", "Certificate revocation list (CRL)"),
			ep("mscrl.microsoft.com", "Certificate revocation list (CRL)"),
			ep("crl3.digicert.com", "Certificate revocation list (CRL)"),
			ep("crl4.digicert.com", "Certificate revocation list (CRL)"),
			ep("crl.digicert.cn", "Certificate revocation list (CRL)"),
			ep("cdp.geotrust.com", "Certificate revocation list (CRL)"),
			ep("ocsp.msocsp.com", "OCSP responder"),
			ep("oneocsp.microsoft.com", "OCSP responder"),
			ep("ocsp.digicert.com", "OCSP responder"),
			ep("ocsp.digicert.cn", "OCSP responder"),
			ep("status.geotrust.com", "OCSP responder"),
			ep("cacerts.digicert.com", "CA certificate download (AIA)"),
			ep("cacerts.digicert.cn", "CA certificate download (AIA)"),
			ep("cacerts.geotrust.com", "CA certificate download (AIA)"),
			ep("www.microsoft.com", "Microsoft PKI repository (/pkiops: AIA and CRL)"),
		},
	},
	{
		Group: Group{Name: "azure.azcli.side", Description: "Azure CLI side traffic it works without: telemetry (off with AZURE_CORE_COLLECT_TELEMETRY=false) and the first-run version check", Ports: portsHTTPS,
			Optional: true},
		source: srcCLISide,
		all: []Endpoint{
			ep("dc.services.visualstudio.com", "Azure CLI telemetry (Application Insights ingestion)").shared(),
			ep("raw.githubusercontent.com", "Azure CLI version check (GitHub raw content)"),
			ep("azure.microsoft.com", "Azure CLI first-run connectivity check"),
		},
	},

	// Local endpoints: on the VM or the Azure host, never through a proxy.
	{
		Group:  Group{Name: GroupIMDS, Description: "Azure Instance Metadata Service: managed-identity tokens on VMs and scale sets. IMDS refuses proxied requests: add it to NO_PROXY", Local: true},
		source: srcIMDS,
		all:    []Endpoint{ep("169.254.169.254", "Azure Instance Metadata Service (IMDS)")},
	},
	{
		Group:  Group{Name: GroupWireServer, Description: "Azure platform address: VM agent, Azure DNS, health probes; treat it like IMDS: add it to NO_PROXY", Local: true},
		source: srcIMDS,
		all:    []Endpoint{ep("168.63.129.16", "Azure WireServer and Azure DNS (168.63.129.16)")},
	},
	{
		Group:  Group{Name: GroupArcHIMDS, Description: "Azure Arc HIMDS managed-identity endpoint and the Arc gateway's local proxy, on the Arc-enabled machine: add localhost to NO_PROXY", Ports: []uint16{40342, 40343}, Local: true},
		source: srcHIMDS,
		all: []Endpoint{
			ep("localhost", "Azure Arc HIMDS token endpoint").on(40342),
			ep("127.0.0.1", "Azure Arc HIMDS token endpoint").on(40342),
			ep("::1", "Azure Arc HIMDS token endpoint").on(40342),
			ep("localhost", "Azure Arc Proxy (Arc gateway)").on(40343),
			ep("127.0.0.1", "Azure Arc Proxy (Arc gateway)").on(40343),
			ep("::1", "Azure Arc Proxy (Arc gateway)").on(40343),
		},
	},
}

// cloudCatalog is the catalog of one cloud, indexed for lookups.
type cloudCatalog struct {
	groups  []Group
	byName  map[string]*Group
	exact   map[string]*Endpoint // exact host -> first endpoint in catalog order
	wild    map[string]*Endpoint // suffix of "*.suffix" -> first endpoint
	maxWild int                  // most labels in any wildcard suffix
	local   []*Endpoint          // endpoints of local groups, with ports resolved
}

// catalogs maps each cloud name to its catalog.
var catalogs = buildCatalogs()

func buildCatalogs() map[string]*cloudCatalog {
	out := make(map[string]*cloudCatalog, len(clouds))
	for _, cloud := range clouds {
		cc := &cloudCatalog{byName: map[string]*Group{}, exact: map[string]*Endpoint{}, wild: map[string]*Endpoint{}}
		for _, d := range catalogDefs {
			if d.onlyIn != nil && !slices.Contains(d.onlyIn, cloud) {
				continue
			}
			g := d.Group
			g.Endpoints = append(slices.Clone(d.all), d.perCloud[cloud]...)
			if d.storageOf != "" {
				g.Endpoints = storageEndpoints(cloud, d.storageOf)
			}
			if len(g.Endpoints) == 0 && len(g.Includes) == 0 {
				continue
			}
			for i := range g.Endpoints {
				e := &g.Endpoints[i]
				e.Source = cmp.Or(e.Source, d.source)
				if e.PrivateLinkZone != "" {
					e.Source += srcPE
				}
				if ip, err := netip.ParseAddr(e.Host); err == nil {
					e.ip = ip
				}
			}
			cc.groups = append(cc.groups, g)
		}
		for i := range cc.groups {
			g := &cc.groups[i]
			cc.byName[g.Name] = g
			for j := range g.Endpoints {
				e := &g.Endpoints[j]
				e.group = g.Name
				if g.Local {
					if e.Ports == nil {
						e.Ports = g.Ports
					}
					cc.local = append(cc.local, e)
					continue
				}
				if suffix, ok := strings.CutPrefix(e.Host, "*."); ok {
					if cc.wild[suffix] == nil {
						cc.wild[suffix] = e
					}
					cc.maxWild = max(cc.maxWild, 1+strings.Count(suffix, "."))
				} else if cc.exact[e.Host] == nil {
					cc.exact[e.Host] = e
				}
			}
		}
		out[cloud] = cc
	}
	return out
}

// storageEndpoints returns the endpoint of one storage kind in cloud.
func storageEndpoints(cloud, kind string) []Endpoint {
	i := slices.IndexFunc(storageKinds, func(k struct{ kind, label string }) bool { return k.kind == kind })
	depth := 1
	if kind == "web" {
		depth = 2 // <account>.z<N>.web.<suffix>
	}
	e := res("*."+kind+"."+storageSuffix[cloud], storageKinds[i].label, "account", depth).src(srcStorage)
	if slices.Contains(storagePrivateLink[cloud], kind) {
		e = e.zone("privatelink." + kind + "." + storageSuffix[cloud])
	}
	return []Endpoint{e}
}

// Clouds returns the Azure clouds a policy may name, in catalog order:
// "AzureCloud", "AzureUSGovernment", "AzureChinaCloud".
func Clouds() []string { return slices.Clone(clouds) }

// Groups returns the endpoint groups of cloud in catalog order, or nil for
// an unknown cloud. The caller must not modify the result.
func Groups(cloud string) []Group {
	if cc := catalogs[cloud]; cc != nil {
		return cc.groups
	}
	return nil
}

// LookupGroup returns the group named name in cloud. The caller must not
// modify it.
func LookupGroup(cloud, name string) (*Group, bool) {
	cc := catalogs[cloud]
	if cc == nil {
		return nil, false
	}
	g, ok := cc.byName[name]
	return g, ok
}

// Expand returns the host patterns of group g of cloud with their labels:
// its includes first, then its own endpoints, without duplicates and
// without patterns another pattern of the expansion already covers
// (*.data.azurecr.io under *.azurecr.io).
func Expand(cloud string, g *Group) (hosts, labels []string) {
	cc := catalogs[cloud]
	if cc == nil {
		return nil, nil
	}
	var eps []*Endpoint
	var walk func(g *Group)
	seen := map[string]bool{}
	walk = func(g *Group) {
		if seen[g.Name] {
			return
		}
		seen[g.Name] = true
		for _, inc := range g.Includes {
			if ig := cc.byName[inc]; ig != nil {
				walk(ig)
			}
		}
		for i := range g.Endpoints {
			eps = append(eps, &g.Endpoints[i])
		}
	}
	walk(g)
	for _, e := range eps {
		if slices.Contains(hosts, e.Host) || coveredBy(e.Host, eps) {
			continue
		}
		hosts = append(hosts, e.Host)
		labels = append(labels, e.Label)
	}
	return hosts, labels
}

// coveredBy reports whether host pattern p is matched by a different
// wildcard among eps.
func coveredBy(p string, eps []*Endpoint) bool {
	name := strings.TrimPrefix(p, "*.")
	for _, e := range eps {
		if suffix, ok := strings.CutPrefix(e.Host, "*."); ok && e.Host != p && strings.HasSuffix(name, "."+suffix) {
			return true
		}
	}
	return false
}

// lookup returns the catalog endpoint that h's name falls under and, for a
// wildcard, the part of the name left of its suffix: an exact entry first,
// then the wildcard with the longest suffix. It does not allocate.
func (cc *cloudCatalog) lookup(name string) (*Endpoint, string) {
	if e := cc.exact[name]; e != nil {
		return e, ""
	}
	labels := 1 + strings.Count(name, ".")
	s := name
	for labels > 2 {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			break
		}
		s = s[i+1:]
		labels--
		if labels > cc.maxWild {
			continue
		}
		if e := cc.wild[s]; e != nil {
			return e, name[:len(name)-len(s)-1]
		}
	}
	return nil, ""
}

// resourceLabel is e's label, with the resource name taken from prefix (the
// labels left of the wildcard's suffix) when prefix has the resource's
// shape: "Key Vault data plane: vault kv-prod-01".
func (e *Endpoint) resourceLabel(prefix string) string {
	if e.Kind == "" || prefix == "" || strings.Count(prefix, ".") != e.depth-1 {
		return e.Label
	}
	name, _, _ := strings.Cut(prefix, ".")
	return e.Label + ": " + e.Kind + " " + name
}

// Label returns what the catalog of cloud knows about destination h, for
// logs and reports: "Entra ID token endpoint", "Azure Resource Manager",
// "Key Vault data plane: vault kv-prod-01" (the resource's name is taken
// from the host for data planes), "Azure Instance Metadata Service (IMDS)"
// for 169.254.169.254. It returns "" for hosts the catalog does not know
// and for an unknown cloud. It allocates only to build a label with a
// resource name.
func Label(cloud string, h host.Host) string {
	cc := catalogs[cloud]
	if cc == nil {
		return ""
	}
	if h.IP.IsValid() {
		ip := h.IP.Unmap()
		for _, e := range cc.local {
			if e.ip == ip && e.Ports == nil {
				return e.Label
			}
		}
		return ""
	}
	if h.Name == "" {
		return ""
	}
	e, prefix := cc.lookup(h.Name)
	if e == nil {
		return ""
	}
	return e.resourceLabel(prefix)
}

// Find returns the catalog endpoint of cloud that a host pattern falls
// under, and the name of the group it belongs to: for an exact name, the
// endpoint Label describes (an exact entry, else the wildcard with the
// longest suffix over it); for a wildcard, the catalog wildcard with
// exactly that pattern, else the one its domain falls under
// (*.kv1.vault.azure.net is under *.vault.azure.net). ok is false when the
// catalog does not know the pattern. The caller must not modify e.
func Find(cloud, pattern string) (group string, e *Endpoint, ok bool) {
	cc := catalogs[cloud]
	if cc == nil {
		return "", nil, false
	}
	name := pattern
	if suffix, wild := strings.CutPrefix(pattern, "*."); wild {
		if e := cc.wild[suffix]; e != nil {
			return e.group, e, true
		}
		name = suffix
	}
	if e, _ := cc.lookup(name); e != nil {
		return e.group, e, true
	}
	return "", nil, false
}

// PatternLabel is the label of a host pattern as written in a rule: an
// exact name's label, or the label of a catalog wildcard with exactly this
// pattern.
func PatternLabel(cloud, pattern string) string {
	cc := catalogs[cloud]
	if cc == nil {
		return ""
	}
	if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
		if e := cc.wild[suffix]; e != nil {
			return e.Label
		}
		return ""
	}
	return Label(cloud, host.Host{Name: pattern})
}

// LocalEndpoint reports whether h on port is an Azure endpoint local to the
// machine, which clients must reach directly and never through a proxy, and
// returns its label: IMDS (169.254.169.254) and WireServer (168.63.129.16)
// on any port, and the Arc HIMDS token endpoint (localhost, 127.0.0.1 or
// ::1 on port 40342) and Arc Proxy (port 40343). IPv4-mapped IPv6 forms
// count as their IPv4 address. The local endpoints are the same in every
// cloud.
func LocalEndpoint(h host.Host, port uint16) (label string, ok bool) {
	ip := h.IP.Unmap()
	for _, e := range catalogs[DefaultCloud].local {
		// The host first: it rules out every endpoint but one, and
		// costs less than the ports.
		if (ip.IsValid() && e.ip == ip || h.Name != "" && e.Host == h.Name) &&
			(e.Ports == nil || slices.Contains(e.Ports, port)) {
			return e.Label, true
		}
	}
	return "", false
}

// LocalEndpoints returns the endpoints of the local groups, with the
// group's ports where the endpoint has none (nil: any port). They are the
// same in every cloud. The caller must not modify them.
func LocalEndpoints() []*Endpoint { return catalogs[DefaultCloud].local }

// Addr returns the address of an endpoint whose Host is an IP address, as
// local endpoints' are, or the zero Addr.
func (e *Endpoint) Addr() netip.Addr { return e.ip }

// PrivateLinkName returns the canonical name that an allowed host of a
// private-link capable service has when a private endpoint serves it, and
// whether the catalog of cloud knows such a service for name: the labels
// left of the service's DNS suffix followed by its private link zone.
// kv-prod-01.vault.azure.net gives kv-prod-01.privatelink.vaultcore.azure.net,
// st01.blob.core.windows.net gives st01.privatelink.blob.core.windows.net,
// and acr01.westeurope.data.azurecr.io gives
// acr01.westeurope.data.privatelink.azurecr.io. name must be normalized (as
// Host.Name is).
func PrivateLinkName(cloud, name string) (string, bool) {
	cc := catalogs[cloud]
	if cc == nil || name == "" {
		return "", false
	}
	for s := name; ; {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			return "", false
		}
		s = s[i+1:]
		if e := cc.wild[s]; e != nil && e.PrivateLinkZone != "" {
			prefix := name[:len(name)-len(s)-1]
			if strings.HasSuffix(prefix, ".privatelink") || prefix == "privatelink" {
				return "", false // already a private link name
			}
			return prefix + "." + e.PrivateLinkZone, true
		}
	}
}

// MultiTenantWildcard reports whether the wildcard host pattern covers a
// data plane that every Azure tenant shares, such as *.vault.azure.net or
// *.blob.core.windows.net (or a broader *.core.windows.net), in the catalog
// of cloud, and says why it is risky. Exact names and wildcards inside one
// resource (*.kv01.vault.azure.net) are not.
func MultiTenantWildcard(cloud, pattern string) (why string, ok bool) {
	suffix, wild := strings.CutPrefix(pattern, "*.")
	cc := catalogs[cloud]
	if !wild || cc == nil {
		return "", false
	}
	for _, g := range cc.groups {
		for _, e := range g.Endpoints {
			es, ok := strings.CutPrefix(e.Host, "*.")
			if !ok || !e.MultiTenant || (es != suffix && !strings.HasSuffix(es, "."+suffix)) {
				continue
			}
			what := e.Label
			if es != suffix {
				what = fmt.Sprintf("%s (%s)", e.Label, e.Host)
			}
			return fmt.Sprintf("%s covers the %s, which every Azure tenant shares: any tenant's resource matches, so data can leave to one you do not own. Name your own resources instead.",
				pattern, what), true
		}
	}
	return "", false
}
