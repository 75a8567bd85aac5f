package policy

import (
	"net/netip"
	"strconv"

	"github.com/hashicorp/hcl/v2"
)

// Mode says what the proxy does with a denied connection.
type Mode uint8

const (
	// ModeEnforce refuses connections that no rule allows.
	ModeEnforce Mode = iota
	// ModeLearn lets denied connections through but still reports them as
	// denied, so that a policy can be written from observed traffic.
	ModeLearn
)

// String returns the policy-file spelling of m: "enforce" or "learn".
func (m Mode) String() string {
	switch m {
	case ModeEnforce:
		return "enforce"
	case ModeLearn:
		return "learn"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// Limits are the per-client connection limits of a limits block. The zero
// value of each field means unlimited.
type Limits struct {
	// ConnectionsPerSecond is the token-bucket refill rate for new
	// connections. Zero means no rate limit.
	ConnectionsPerSecond float64
	// Burst is the token-bucket size. It is at least 1 when
	// ConnectionsPerSecond is set; zero otherwise.
	Burst int
	// MaxTunnels is the maximum number of concurrent tunnels. Zero means no
	// limit.
	MaxTunnels int
}

// Policy is a compiled, immutable policy. It is safe for concurrent use.
type Policy struct {
	filename  string
	cloud     string
	clients   []*Client
	ruleCount int
	v4, v6    prefixTable
}

// Filename returns the file name the policy was loaded from, as passed to
// Load or LoadFile.
func (p *Policy) Filename() string { return p.filename }

// Cloud returns the Azure cloud the policy is written for: "AzureCloud",
// "AzureUSGovernment" or "AzureChinaCloud".
func (p *Policy) Cloud() string { return p.cloud }

// RuleCount returns the total number of allow rules over all client blocks.
func (p *Policy) RuleCount() int { return p.ruleCount }

// Clients returns the client blocks in file order. The caller must not
// modify the returned slice or the clients.
func (p *Policy) Clients() []*Client { return p.clients }

// Client is a compiled client block: the rules that apply to connections
// from its source addresses. It is immutable.
type Client struct {
	// Name is the block label.
	Name string
	// Mode is the block's mode, or the top-level mode if the block has none.
	Mode Mode
	// Limits holds the block's limits; the zero value means unlimited.
	Limits Limits
	// AllowSNIMismatch reports whether a CONNECT tunnel may carry a TLS
	// ClientHello whose SNI names another host than the CONNECT target
	// (domain fronting) even when that host is not allowed. False by default.
	AllowSNIMismatch bool
	// Sources are the client address prefixes, in file order.
	Sources []netip.Prefix
	// Rules are the allow rules in file order.
	Rules []*Rule
	// Range is the definition range of the client block.
	Range hcl.Range

	exact   map[string][]*Rule // normalized exact host -> rules, file order
	wild    map[string][]*Rule // suffix of "*.suffix" -> rules, file order
	maxWild int                // most labels in any wildcard suffix
	ipRules []*Rule            // rules with addresses, file order
}

// Rule is a compiled allow block.
type Rule struct {
	// Name is the block label.
	Name string
	// Hosts are the normalized host patterns: lowercase punycode names,
	// without trailing dots, exact or "*." followed by a suffix. They include
	// the hosts its catalog attributes (endpoints, keyvaults,
	// storage_accounts, registries) expand to.
	Hosts []string
	// Labels[i] is the Azure catalog's label of Hosts[i] ("Azure Resource
	// Manager", "Key Vault data plane: vault kv-prod-01"), or "" when the
	// catalog does not know it.
	Labels []string
	// Endpoints are the catalog groups the rule names, in file order.
	Endpoints []string
	// Ports are the allowed destination ports; [443] if the block has none.
	Ports []uint16
	// Addresses are the guarded prefixes the rule's hosts may resolve to,
	// and the IP-literal destinations the rule allows.
	Addresses []netip.Prefix
	// Range is the definition range of the allow block.
	Range hcl.Range
	// Index is the position of the rule within its client block.
	Index int
}

// Decision is the outcome of Client.Decide.
type Decision struct {
	// Allowed reports whether a rule allows the connection.
	Allowed bool
	// Rule is the rule that allowed the connection, or nil when denied.
	Rule *Rule
}

// Decide reports whether the client may connect to h on port. It follows
// the evaluation order in the package documentation: for a name, exact
// rules first, then wildcard rules from the longest suffix to the shortest,
// each group in file order; for an IP literal, the first rule in file order
// whose addresses contain it. h must come from ParseHost; names that are not
// normalized never match. A nil client denies everything. Decide does not
// allocate.
func (c *Client) Decide(h Host, port uint16) Decision {
	var r *Rule
	switch {
	case c == nil:
	case h.IP.IsValid():
		r = c.lookupIP(h.IP, port, netip.Addr{})
	case h.Name != "":
		r = c.lookupName(h.Name, port, netip.Addr{})
	}
	if r == nil {
		return Decision{}
	}
	return Decision{Allowed: true, Rule: r}
}

// AddressAllowed reports whether ip, an address that h resolved to, is
// permitted for a connection to h on port: whether any rule that matches
// (h, port), not only the one Decide picks, lists an addresses prefix
// containing ip or its unmapped IPv4 form. The proxy's destination guard
// uses it to let guarded (private) ranges through only where a rule says
// so. AddressAllowed does not allocate.
func (c *Client) AddressAllowed(h Host, port uint16, ip netip.Addr) bool {
	if c == nil || !ip.IsValid() {
		return false
	}
	switch {
	case h.IP.IsValid():
		return c.lookupIP(h.IP, port, ip) != nil
	case h.Name != "":
		return c.lookupName(h.Name, port, ip) != nil
	}
	return false
}
