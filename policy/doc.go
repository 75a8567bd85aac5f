// Package policy parses, validates and compiles azegress HCL policies and
// decides whether a client may reach a destination.
//
// It is a pure library: HCL bytes go in, and either diagnostics or an
// immutable, compiled *Policy come out. It does no network I/O.
//
// # Packages
//
// The policy packages are layered; each imports only those above it in
// this list, and none the proxy, goproxy or Prometheus (each package's
// TestDeps checks its imports):
//
//   - policy/host: host-name parsing and normalization.
//   - policy/catalog: the Azure clouds and endpoint catalog, as data.
//   - policy (this package): the schema (schema.go), the two parse paths
//     (parse.go: the fast front end and hclsyntax with gohcl), compilation
//     (compile.go, and catalog.go for the catalog attributes), decisions
//     (decide.go, match.go), diagnostics, lint and cases. Its internal
//     packages: fasthcl, the fast front end; slab, shared backing
//     arrays; text, the text snippets diagnostics and generated policies
//     share.
//   - policy/learn (observations and reports), policy/azfw (Azure
//     Firewall import and export) and policy/review (the review kit:
//     diff, replay, access, deciding with Client.DecideAt,
//     AddressAllowedAt and Lint, not a second interpreter): features on
//     the exported API of the packages above.
//
// The proxy (package proxy) and the commands (cmd/azegress) sit on top.
//
// # Policy files
//
// A policy file looks like this (policies/example.hcl has a commented
// copy):
//
//	cloud = "AzureCloud"   # optional; AzureCloud, AzureUSGovernment or AzureChinaCloud
//	mode  = "enforce"      # optional default for client blocks: enforce or learn
//
//	client "workloads" {
//	  sources = ["10.0.1.0/24"]
//	  mode    = "enforce"
//
//	  allow "arm" {
//	    hosts = ["management.azure.com"]
//	    ports = [443]
//	  }
//	  allow "private-vault" {
//	    hosts     = ["kv-int.vault.azure.net"]
//	    addresses = ["10.20.0.0/24"]
//	  }
//	  allow "ip-only" {
//	    addresses = ["20.1.2.3"]
//	    ports     = [443, 8443]
//	  }
//	  limits {
//	    connections_per_second = 50
//	    burst                  = 100
//	    max_tunnels            = 500
//	  }
//	}
//
// Top-level attributes:
//
//   - cloud: the Azure cloud the policy is written for. Default
//     "AzureCloud".
//   - mode: the default mode of client blocks. "enforce" (the default)
//     refuses connections no rule allows; "learn" lets them through but
//     still reports them as denied.
//
// A client "NAME" block applies to connections from its sources, or, if
// it has an identity block, to connections whose credential names one of
// its identities (see Identities below):
//
//   - sources (required, non-empty, unless the block has an identity
//     block): CIDRs or bare IP addresses (a bare address is a /32 or /128),
//     IPv4 or IPv6. A CIDR must not have host bits set. A source prefix may
//     appear in only one address-keyed client block. IPv4-mapped IPv6
//     forms (::ffff:10.0.0.0/104) are rejected; write IPv4 prefixes in
//     IPv4 form.
//   - identity: at most one block; see Identities.
//   - mode: overrides the top-level mode.
//   - allow "NAME" blocks: the rules, described below.
//   - deny "NAME" blocks: destinations to refuse even if an allow rule
//     matches them, described below. Allow and deny rule names share one
//     namespace and are unique within the client block.
//   - limits: at most one block. connections_per_second (a number greater
//     than 0, may be fractional) is the token-bucket rate for new
//     connections; burst (a whole number, at least 1) is the bucket size
//     and defaults to connections_per_second rounded up; max_tunnels (a
//     whole number, at least 1) caps concurrent tunnels. Each value is at
//     most 1000000. An absent attribute means no limit.
//
// Client and rule names are 1 to 64 letters, digits, "-", "_" or ".",
// because they appear in logs and metric labels.
//
// An allow "NAME" block needs hosts, addresses, or one of the catalog
// attributes below:
//
//   - hosts: host patterns. A pattern is an exact DNS name, or "*." followed
//     by a domain of at least two labels. "*.example.com" matches any name
//     below example.com at any depth (a.example.com, a.b.example.com) but
//     never example.com itself, as in Azure Firewall. Matching ignores case
//     and a trailing dot, and compares IDNA (punycode) forms, so
//     "bücher.example" and "xn--bcher-kva.example" are the same pattern.
//     "*", "*.com", "a.*.com", "*example.com" and IP addresses are errors.
//   - addresses: CIDRs or IP addresses. They serve two purposes: they are
//     the IP-literal destinations the rule allows, and they name the guarded
//     (private) ranges that the rule's hosts may resolve to: a prefix opens
//     a guarded range only when it lies inside it (GuardedRange), so
//     "0.0.0.0/0" names no loopback or private address. An allow rule's
//     prefix that covers a local endpoint (IMDS, WireServer, Arc's HIMDS on
//     a port of the rule) is an error: nothing can open those.
//   - ports: destination ports, each 1 to 65535. Default [443], or the
//     ports of the rule's catalog groups (80 for azure.pki); a rule without
//     ports whose hosts are served on different ports is an error.
//   - endpoints: groups of the Azure endpoint catalog (package catalog), like
//     ["azure.entra", "azure.arm"], expanded to their host patterns for the
//     policy's cloud. Unknown groups, groups the cloud does not have and
//     local groups (imds, wireserver, arc.himds: they belong in NO_PROXY,
//     never behind a proxy) are errors. A group of multi-tenant data-plane
//     wildcards (azure.keyvault, azure.storage.blob, ...) is a warning.
//   - keyvaults: Key Vault names; "kv-prod-01" is kv-prod-01.vault.azure.net
//     (or the cloud's Key Vault suffix).
//   - storage_accounts: "account" or "account.kind", kind blob (default),
//     file, queue, table or dfs; "stprod01.queue" is
//     stprod01.queue.core.windows.net (or the cloud's storage suffix).
//   - registries: "registry" or "registry.region"; "acrprod" is the login
//     server acrprod.azurecr.io, "acrprod.westeurope" adds the dedicated
//     data endpoint acrprod.westeurope.data.azurecr.io.
//
// Expanded hosts are ordinary rule hosts: they match, win and lose like
// hosts written out. Each carries its catalog label (Rule.Labels), and
// catalog.Label names any host the catalog knows, for logs and reports.
//
// Allow and deny blocks may set expires, when the rule stops matching:
// a date, "2026-12-31", which is valid through the end of that day in UTC
// (it expires at 2027-01-01T00:00:00Z), or an RFC 3339 time,
// "2026-12-31T18:00:00+01:00". An expired rule stays in the compiled
// policy but no longer matches: Decide compares the expiry, stored as Unix
// seconds, with the clock at each call (it reads time.Now only for a
// client block that has a rule with expires, and never allocates;
// Client.DecideAt takes the instant instead). Lint, and the proxy at load
// and reload, warn ExpiryWarning (7 days) before a rule expires.
//
// A deny "NAME" block takes hosts, addresses and ports with the same
// syntax, defaults and validation as an allow block (ports default to
// [443]), and expires; it does not take the catalog attributes. Its hosts
// match names as allow hosts do; its addresses match IP-literal
// destinations only (a deny rule does not look at what a name resolves
// to). A deny rule refuses what it matches with reason deny_rule, naming
// the rule, before any allow rule is consulted, in learn mode too: it is a
// decision the policy's author made, not a gap to learn. This is how an
// Azure Firewall Deny rule collection with a higher priority than the
// Allow collections behaves; a Deny collection with a lower priority than
// an overlapping Allow collection does not stop what that Allow
// collection allows in Azure, but a deny rule here always wins.
//
// Unknown attributes and blocks are errors. Every problem in a file is
// reported at once, with its position.
//
// # Identities
//
// A client block may be selected by the managed identity a request
// presents, an Entra ID access token, instead of by address:
//
//	entra {
//	  tenant_id  = "11111111-2222-3333-4444-555555555555"
//	  audiences  = ["api://azegress"]
//	  clock_skew = "60s"
//	}
//
//	client "kv-reader" {
//	  identity {
//	    object_ids = ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"]
//	  }
//	  allow "kv" {
//	    keyvaults = ["kv-prod-01"]
//	  }
//	}
//
// The top-level entra block, at most one, says which tokens are
// credentials:
//
//   - tenant_id (required): the tenant's ID, a GUID in the 8-4-4-4-12 hex
//     form, any case.
//   - audiences (required, non-empty): the aud values a token may carry:
//     the App ID URI (api://azegress) and/or the client ID of the proxy's
//     own app registration. A Microsoft resource is an error
//     (catalog.MicrosoftAudience): Azure Resource Manager in every
//     spelling and cloud (https://management.azure.com/,
//     https://management.core.windows.net/, ...), Microsoft Graph, Key
//     Vault, Storage, their application IDs, and any http(s) URI on a
//     Microsoft-owned domain. A token for such an audience is a live
//     credential there, for everything the identity may do, for about
//     24 hours; every client would hand one to the proxy, which could
//     replay it. The proxy needs an audience of its own.
//   - clock_skew: the leeway on exp and nbf, a duration from "0s" to "5m";
//     default "60s".
//   - authority: the scheme and host of the Entra ID authority, no path,
//     query or fragment; default the authority of the policy's cloud
//     (catalog.EntraAuthority: https://login.microsoftonline.com for
//     AzureCloud). It must be https://, except http:// to a loopback
//     address (a local identity provider in tests).
//
// An identity block inside a client block lists the identities that
// select it: object_ids (a managed identity's principalId, the token's
// oid) and client_ids (its application ID, the token's appid or azp), at
// least one GUID in all. A GUID may appear once, in one client block: a
// token selects exactly one block. An identity block needs the entra
// block. Beside an identity block, sources is an extra condition: the
// identities are accepted only from those addresses; without sources,
// from any. An identity block's sources do not count as address-keyed
// sources: they may overlap those of other blocks.
//
// Validating a token (signature, issuer, tenant, audience, expiry) is
// package identity's work. This package gives the proxy the entra block
// with its defaults resolved (Policy.Entra, nil without one) and says
// which block a validated identity selects (Policy.ClientForIdentity,
// allocation-free). Lint warns about an entra block that no identity
// block uses. The proxy reads the credential from Proxy-Authorization on
// its explicit listener, validates it with package identity before the
// decision, and selects through ClientForIdentity.
//
// # Evaluation order
//
// The proxy evaluates a connection in these steps:
//
//  1. Client selection. With a validated token, the block whose identity
//     block lists the token's object ID is selected or, when no block
//     lists it, the one that lists its client ID; if that block has
//     sources, the client address must be in one of them
//     (Policy.ClientForIdentity). A token whose identity no block lists
//     is refused (the proxy's identity_unknown), and so is one whose block
//     does not take it from that address: never a fall back to another
//     block. Without credentials, the client address is unmapped if it is
//     an IPv4-mapped IPv6 address and the address-keyed block (one without
//     an identity block) with the longest source prefix containing it is
//     selected (Policy.Client); identity blocks never are, so requests
//     without credentials, and transparent traffic, which carries none,
//     meet address-keyed blocks only. If no block matches, the connection
//     is refused as client_unknown.
//  2. Destination parsing. The destination host is parsed with host.Parse:
//     IP literals in any inet_aton spelling become addresses, and names are
//     normalized to lowercase punycode.
//  3. Rule selection (Client.Decide). Deny rules are tried first: if one
//     matches, the connection is refused (deny_rule). Then allow rules; the
//     default is deny (no_rule). For a name, a rule matches if one of its
//     host patterns matches the name and the port is one of its ports.
//     Rules with an exact pattern win over wildcard rules, a longer
//     wildcard suffix wins over a shorter one, and among equals the first
//     rule in file order wins. For an IP literal, the first rule in file
//     order whose addresses contain the address (or its unmapped IPv4
//     form) and whose ports include the port wins. Host patterns never
//     match IP literals. Expired rules (expires) never match.
//  4. Destination guard. Names are resolved as fully qualified names
//     (no resolv.conf search list). A local endpoint is refused whatever
//     the rules say. An address in a guarded (private) range is only
//     permitted if Client.AddressAllowed says so: some rule that matches
//     the host and port lists a prefix in addresses that contains the
//     resolved address and lies inside its guarded range. The proxy also accepts a private
//     (RFC 1918, 100.64.0.0/10 or ULA) address for a name a rule allows when
//     the name's canonical name is catalog.PrivateLinkName: the same name in
//     its Azure service's privatelink zone, as a private endpoint's DNS has
//     it.
//
// A client block in learn mode applies steps 3 and 4 and reports the
// result, but the proxy does not refuse the connection, unless a deny
// rule matched.
//
// # Policy identity
//
// Policy.SHA256 is the SHA-256 of the policy's canonical form, a
// serialization of the compiled policy: the proxy writes it on every
// decision record (policy_sha256) and exports it (azegress_policy_info),
// and "azegress check" and the review reports print it, so that a logged
// decision ties to the exact file a reviewer approved.
//
// The canonical form holds what the compiled policy holds, in the order
// it holds it: the cloud; the entra block with its defaults resolved;
// each client block in file order with its name, mode (the top-level
// mode resolved), allow_sni_mismatch, sources, identity block and limits
// (burst's default resolved); and its deny rules, then its allow rules,
// each kind in file order, with the name, the normalized hosts, their
// catalog labels, the catalog groups named, ports, addresses and the
// instant the rule expires. It leaves out what compiling discards and
// where things were written: whitespace, comments, the order of
// attributes and blocks within a block (other than rules of one kind),
// how a value is spelled (host case and trailing dot, "60s" or "1m", a
// date or the same instant as an RFC 3339 time), repeated list
// elements, defaults written out or left out, and the file's name and
// positions.
//
// So reformatting a file keeps its hash, and any change the proxy could
// act on or report changes it: a renamed client block or rule (names
// appear in logs and metrics), a reordered rule (file order breaks ties)
// or client block, a port, a host, an identity, the entra block. Catalog
// attributes count as what they expand to, so the same file can hash
// differently under a release whose catalog expands a group differently:
// compare hashes printed by the binary that serves the policy. The hash
// is computed on first use and cached.
//
// # Lint
//
// Lint warns about policies that load but probably do not say what their
// author meant (azegress check -lint); see its documentation for the list.
//
// # Azure Firewall
//
// Package azfw converts Azure Firewall application rules to a policy and
// writes a policy as a rule collection group; its documentation lists
// where the two languages differ.
package policy
