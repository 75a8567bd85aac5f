package policy

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/azegress/azegress/policy/host"
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
	expiries  []RuleExpiry // soonest first

	entra              *Entra
	byObject, byClient map[guid]*Client // identity blocks by GUID (ClientForIdentity)

	shaOnce sync.Once // computes sha, the policy's SHA256, on first use
	sha     string
}

// RuleExpiry is a rule with an expires attribute and its client block.
type RuleExpiry struct {
	Client *Client
	Rule   *Rule
}

// Expiries returns the rules with an expires attribute, allow and deny,
// soonest first. The caller must not modify the result.
func (p *Policy) Expiries() []RuleExpiry { return p.expiries }

// ExpiryWarning is how long before a rule's expiry the proxy and
// "azegress check -lint" start warning about it.
const ExpiryWarning = 7 * 24 * time.Hour

// Filename returns the file name the policy was loaded from, as passed to
// Load or LoadFile.
func (p *Policy) Filename() string { return p.filename }

// Cloud returns the Azure cloud the policy is written for: "AzureCloud",
// "AzureUSGovernment" or "AzureChinaCloud".
func (p *Policy) Cloud() string { return p.cloud }

// RuleCount returns the total number of allow rules over all client blocks
// (deny rules are not counted).
func (p *Policy) RuleCount() int { return p.ruleCount }

// Clients returns the client blocks in file order. The caller must not
// modify the returned slice or the clients.
func (p *Policy) Clients() []*Client { return p.clients }

// Client is a compiled client block: the rules that apply to connections
// from its source addresses or, if it has an identity block, to those
// whose credential names one of its identities. It is immutable.
type Client struct {
	// Name is the block label.
	Name string
	// Mode is the block's mode, or the top-level mode if the block has none.
	Mode Mode
	// Limits holds the block's limits; the zero value means unlimited.
	Limits Limits
	// AllowSNIMismatch reports whether the proxy skips its domain-fronting
	// checks for the block: whether a CONNECT tunnel may carry anything
	// first, such as a TLS ClientHello whose SNI names another host than
	// the CONNECT target, even one not allowed, and whether a second
	// ClientHello after a HelloRetryRequest may name another server than
	// the first. False by default.
	AllowSNIMismatch bool
	// Sources are the client address prefixes, in file order. In a block
	// with an identity block they only narrow where its identities may
	// connect from; it is never selected by address (Policy.Client).
	Sources []netip.Prefix
	// Identity is the block's identity block, or nil: then the block is
	// selected by client address.
	Identity *Identity
	// Rules are the allow rules in file order.
	Rules []*Rule
	// Denies are the deny rules in file order. They are evaluated before
	// Rules.
	Denies []*Rule
	// Range is the definition range of the client block.
	Range hcl.Range

	allow, deny ruleIndex
	expiring    bool // some rule has an expiry: Decide reads the clock
}

// ruleIndex finds the rules of one kind (allow or deny) that match a
// destination.
type ruleIndex struct {
	exact   map[string][]*Rule // normalized exact host -> rules, file order
	wild    map[string][]*Rule // suffix of "*.suffix" -> rules, file order
	maxWild int                // most labels in any wildcard suffix
	ipRules []*Rule            // rules with addresses, file order
}

// Rule is a compiled allow or deny block.
type Rule struct {
	// Name is the block label. Allow and deny rules of a client block share
	// one namespace.
	Name string
	// Deny reports whether this is a deny rule.
	Deny bool
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
	// and the IP-literal destinations the rule allows. In a deny rule they
	// are only the IP-literal destinations it refuses.
	Addresses []netip.Prefix
	// Expires is the instant the rule stops matching; the zero value means
	// never. expires = "2026-12-31" is 2027-01-01T00:00:00Z.
	Expires time.Time
	// Range is the definition range of the allow or deny block.
	Range hcl.Range
	// Index is the position of the rule within its client block's Rules
	// (or Denies).
	Index int

	expiresUnix int64       // Expires as Unix seconds; 0: never
	expiresRng  *hcl.Range  // the expires attribute's value, for lint; nil if none
	hostRanges  []hcl.Range // where each of Hosts was written, for lint
	addrRanges  []hcl.Range // where each of Addresses was written
	fromCatalog []bool      // Hosts[i] came from a catalog attribute
}

// Expired reports whether the rule has an expiry at or before now.
func (r *Rule) Expired(now time.Time) bool {
	return r.expiresUnix != 0 && now.Unix() >= r.expiresUnix
}

// Kind is "allow" or "deny", the rule's block type.
func (r *Rule) Kind() string {
	if r.Deny {
		return "deny"
	}
	return "allow"
}

// live reports whether the rule matches at now (Unix seconds).
func (r *Rule) live(now int64) bool { return r.expiresUnix == 0 || now < r.expiresUnix }

// Decision is the outcome of Client.Decide.
type Decision struct {
	// Allowed reports whether a rule allows the connection.
	Allowed bool
	// Rule is the rule that allowed the connection, or nil when denied.
	Rule *Rule
	// Deny is the deny rule that refused the connection, or nil when no
	// deny rule matched (then a denial means no allow rule matched).
	Deny *Rule
}

// Verdict is what the proxy does with a connection: allow it, refuse it
// (deny), or let it through although no rule allows it, in a client block
// in learn mode (would_deny). Observations and cases name it so.
type Verdict string

// The verdicts.
const (
	VerdictAllow     Verdict = "allow"
	VerdictWouldDeny Verdict = "would_deny"
	VerdictDeny      Verdict = "deny"
)

// Decide reports whether the client may connect to h on port now. It
// follows the evaluation order in the package documentation: deny rules
// first, then allow rules; within each, for a name, exact rules first, then
// wildcard rules from the longest suffix to the shortest, each group in
// file order; for an IP literal, the first rule in file order whose
// addresses contain it. Expired rules do not match. h must come from
// host.Parse; names that are not normalized never match. A nil client denies
// everything.
//
// Decide does not allocate. It reads the clock (time.Now) only if some rule
// of the block has an expires attribute, and then once per call.
func (c *Client) Decide(h host.Host, port uint16) Decision {
	return c.decide(h, port, c.now())
}

// DecideAt is Decide at the instant now: rules whose expiry is at or
// before now do not match. It is for tests and tools that ask "what would
// the proxy decide on that day".
func (c *Client) DecideAt(h host.Host, port uint16, now time.Time) Decision {
	return c.decide(h, port, now.Unix())
}

// now returns the Unix time for expiry checks, or 0 when no rule of c
// expires (then it is never compared).
func (c *Client) now() int64 {
	if c == nil || !c.expiring {
		return 0
	}
	return time.Now().Unix()
}

func (c *Client) decide(h host.Host, port uint16, now int64) Decision {
	if c == nil {
		return Decision{}
	}
	if r := c.deny.lookup(h, port, netip.Addr{}, now); r != nil {
		return Decision{Deny: r}
	}
	if r := c.allow.lookup(h, port, netip.Addr{}, now); r != nil {
		return Decision{Allowed: true, Rule: r}
	}
	return Decision{}
}

// AddressAllowed reports whether ip, an address that h resolved to, is
// permitted for a connection to h on port: whether any rule that matches
// (h, port), not only the one Decide picks, lists an addresses prefix
// containing ip or its unmapped IPv4 form that, for a guarded ip
// (GuardedRange), lies inside ip's guarded range: 10.20.0.0/24 unlocks
// 10.20.0.5, 0.0.0.0/0 does not. The proxy's destination guard uses it to
// let guarded (private) ranges through only where a rule names them.
// AddressAllowed does not allocate.
//
// Expired rules do not count, and deny rules play no part: Decide has
// already refused whatever a deny rule matches.
func (c *Client) AddressAllowed(h host.Host, port uint16, ip netip.Addr) bool {
	return c.addressAllowed(h, port, ip, c.now())
}

// AddressAllowedAt is AddressAllowed at the instant now, as DecideAt is
// Decide: rules whose expiry is at or before now do not count.
func (c *Client) AddressAllowedAt(h host.Host, port uint16, ip netip.Addr, now time.Time) bool {
	return c.addressAllowed(h, port, ip, now.Unix())
}

func (c *Client) addressAllowed(h host.Host, port uint16, ip netip.Addr, now int64) bool {
	if c == nil || !ip.IsValid() {
		return false
	}
	return c.allow.lookup(h, port, ip, now) != nil
}

// Verdict is what the proxy does with decision d of client block c: allow
// what a rule allows; refuse what a deny rule matches, and, in enforce
// mode, what no rule allows (deny); let that through in learn mode
// (would_deny). A nil c (no client block) denies.
func (c *Client) Verdict(d Decision) Verdict {
	switch {
	case d.Allowed:
		return VerdictAllow
	case d.Deny == nil && c != nil && c.Mode == ModeLearn:
		return VerdictWouldDeny
	}
	return VerdictDeny
}
