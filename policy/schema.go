package policy

import "github.com/hashicorp/hcl/v2"

// The structs in this file are the policy file format, declared once:
// their gohcl tags are the schema. parseSyntax decodes into them with
// gohcl; parseFast binds the fast front end's items to the same fields
// (parse.go). Attributes are kept as *hcl.Attribute (nil when absent) so
// that compile.go can check types itself and point each diagnostic at the
// exact list element; unknown attributes and blocks get gohcl's "Did you
// mean" diagnostics.
//
// To extend the language, add fields here, bind them in parse.go and
// compile them in compile.go; TestParsePaths, which derives a file with
// every attribute and block from the tags, fails until both paths take
// them alike.

// fileSchema is the top level of a policy file.
type fileSchema struct {
	Cloud   *hcl.Attribute  `hcl:"cloud,optional"`
	Mode    *hcl.Attribute  `hcl:"mode,optional"`
	Entra   []*entraSchema  `hcl:"entra,block"` // at most one; checked in compile.go
	Clients []*clientSchema `hcl:"client,block"`
}

// entraSchema is the top-level entra { ... } block: the tenant and
// audiences of the Entra tokens that select identity blocks.
type entraSchema struct {
	TenantID  *hcl.Attribute `hcl:"tenant_id,optional"` // required; checked in entra.go
	Audiences *hcl.Attribute `hcl:"audiences,optional"` // required; checked in entra.go
	ClockSkew *hcl.Attribute `hcl:"clock_skew,optional"`
	Authority *hcl.Attribute `hcl:"authority,optional"`
	DefRange  hcl.Range      `hcl:",def_range"`
	Body      hcl.Body       `hcl:",body"` // nil from parseFast
	rng       hcl.Range      // the whole block, for diagnostic contexts
}

// identitySchema is the optional identity { ... } block inside a client
// block: the managed identities whose tokens select it.
type identitySchema struct {
	ObjectIDs *hcl.Attribute `hcl:"object_ids,optional"`
	ClientIDs *hcl.Attribute `hcl:"client_ids,optional"`
	DefRange  hcl.Range      `hcl:",def_range"`
	Body      hcl.Body       `hcl:",body"` // nil from parseFast
	rng       hcl.Range      // the whole block, for diagnostic contexts
}

// clientSchema is a client "NAME" { ... } block.
type clientSchema struct {
	Name      string         `hcl:"name,label"`
	NameRange hcl.Range      `hcl:"name,label_range"`
	Sources   *hcl.Attribute `hcl:"sources,optional"` // required without identity; checked in compile.go for a better message
	Mode      *hcl.Attribute `hcl:"mode,optional"`
	// AllowSNIMismatch turns the domain-fronting checks off.
	AllowSNIMismatch *hcl.Attribute    `hcl:"allow_sni_mismatch,optional"`
	Identity         []*identitySchema `hcl:"identity,block"` // at most one; checked in compile.go
	Allows           []*allowSchema    `hcl:"allow,block"`
	Denies           []*denySchema     `hcl:"deny,block"`
	Limits           []*limitsSchema   `hcl:"limits,block"` // at most one; checked in compile.go
	DefRange         hcl.Range         `hcl:",def_range"`
	Body             hcl.Body          `hcl:",body"` // nil from parseFast
	rng              hcl.Range         // the whole block, for diagnostic contexts
}

// allowSchema is an allow "NAME" { ... } block inside a client block.
type allowSchema struct {
	Name      string         `hcl:"name,label"`
	NameRange hcl.Range      `hcl:"name,label_range"`
	Hosts     *hcl.Attribute `hcl:"hosts,optional"`
	Addresses *hcl.Attribute `hcl:"addresses,optional"`
	Ports     *hcl.Attribute `hcl:"ports,optional"`
	// Catalog attributes (catalog.go, package catalog): groups and resource helpers that
	// expand to host patterns for the policy's cloud.
	Endpoints       *hcl.Attribute `hcl:"endpoints,optional"`
	KeyVaults       *hcl.Attribute `hcl:"keyvaults,optional"`
	StorageAccounts *hcl.Attribute `hcl:"storage_accounts,optional"`
	Registries      *hcl.Attribute `hcl:"registries,optional"`
	// Expires is when the rule stops matching: a date (valid through the
	// end of that day, UTC) or an RFC 3339 time.
	Expires  *hcl.Attribute `hcl:"expires,optional"`
	DefRange hcl.Range      `hcl:",def_range"`
	Body     hcl.Body       `hcl:",body"` // nil from parseFast
	rng      hcl.Range      // the whole block, for diagnostic contexts
}

// denySchema is a deny "NAME" { ... } block inside a client block: the
// destinations it names are refused before any allow rule is consulted.
// It takes the allow block's hosts, addresses, ports and expires, but not
// the catalog attributes.
type denySchema struct {
	Name      string         `hcl:"name,label"`
	NameRange hcl.Range      `hcl:"name,label_range"`
	Hosts     *hcl.Attribute `hcl:"hosts,optional"`
	Addresses *hcl.Attribute `hcl:"addresses,optional"`
	Ports     *hcl.Attribute `hcl:"ports,optional"`
	Expires   *hcl.Attribute `hcl:"expires,optional"`
	DefRange  hcl.Range      `hcl:",def_range"`
	Body      hcl.Body       `hcl:",body"` // nil from parseFast
	rng       hcl.Range      // the whole block, for diagnostic contexts
}

// limitsSchema is the optional limits { ... } block inside a client block.
type limitsSchema struct {
	ConnectionsPerSecond *hcl.Attribute `hcl:"connections_per_second,optional"`
	Burst                *hcl.Attribute `hcl:"burst,optional"`
	MaxTunnels           *hcl.Attribute `hcl:"max_tunnels,optional"`
	DefRange             hcl.Range      `hcl:",def_range"`
	Body                 hcl.Body       `hcl:",body"` // nil from parseFast
	rng                  hcl.Range      // the whole block, for diagnostic contexts
}
