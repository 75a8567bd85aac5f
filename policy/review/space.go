package review

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
)

// A space is every destination that the rules of some client blocks could
// treat differently, reduced to one probe per class: two destinations in
// the same class get the same decision from every rule of those blocks, so
// asking Client.DecideAt about the probe answers for the whole class. The
// classes are:
//
//   - names: each exact host pattern is its own class; each wildcard
//     "*.s" stands for the names whose longest matching wildcard is it,
//     probed by a name one label above s that no exact pattern names
//     (a name under no pattern is denied by every block alike);
//   - ports: each port some rule lists (other ports match no rule);
//   - addresses: each prefix some rule lists, and each guarded range
//     inside one, stands for its addresses outside the smaller ones,
//     probed by the lowest such address (prefixes nest or are disjoint);
//   - time: the instant asked about, and each expiry after it, until the
//     next (rules change only when one expires).
//
// Decisions come from the policy core alone; the space only chooses
// where to ask.
type space struct {
	patterns []string             // distinct host patterns, sorted
	probe    map[string]host.Host // pattern -> the name asked about
	ports    []uint16             // sorted
	prefixes []netip.Prefix       // sorted; only those with a probe
	addr     map[netip.Prefix]netip.Addr
	instants []time.Time // at, then each later expiry, ascending
}

// probeLabel is the first label of the names that stand for a wildcard.
const probeLabel = "azegress-probe"

// newSpace builds the space of the rules of clients (nil ones are
// skipped), asked about at at.
func newSpace(at time.Time, clients ...*policy.Client) *space {
	sp := &space{probe: map[string]host.Host{}, addr: map[netip.Prefix]netip.Addr{}}
	exact := map[string]bool{}
	pats := map[string]bool{}
	ports := map[uint16]bool{}
	pfxs := map[netip.Prefix]bool{}
	instants := []time.Time{at}
	for _, c := range clients {
		if c == nil {
			continue
		}
		for _, r := range slices.Concat(c.Rules, c.Denies) {
			for _, h := range r.Hosts {
				pats[h] = true
				if !strings.HasPrefix(h, "*.") {
					exact[h] = true
				}
			}
			for _, p := range r.Ports {
				ports[p] = true
			}
			for _, p := range r.Addresses {
				pfxs[p] = true
			}
			if !r.Expires.IsZero() && r.Expires.After(at) {
				instants = append(instants, r.Expires)
			}
		}
	}
	for p := range pats {
		sp.patterns = append(sp.patterns, p)
		name := p
		if suffix, ok := strings.CutPrefix(p, "*."); ok {
			name = probeLabel + "." + suffix
			for i := 2; exact[name]; i++ {
				name = probeLabel + strconv.Itoa(i) + "." + suffix
			}
		}
		sp.probe[p] = host.Host{Name: name}
	}
	slices.Sort(sp.patterns)
	for p := range ports {
		sp.ports = append(sp.ports, p)
	}
	slices.Sort(sp.ports)
	sp.addPrefixes(pfxs)
	slices.SortFunc(instants, func(a, b time.Time) int { return a.Compare(b) })
	sp.instants = slices.CompactFunc(instants, func(a, b time.Time) bool { return a.Equal(b) })
	return sp
}

// addPrefixes adds the address classes of the rules' prefixes: each
// prefix, and each guarded range inside one (the guard treats it apart),
// with the lowest address that no smaller one of them contains.
func (sp *space) addPrefixes(pfxs map[netip.Prefix]bool) {
	all := make([]netip.Prefix, 0, len(pfxs))
	for p := range pfxs {
		all = append(all, p)
	}
	policy.GuardedRanges(func(rng netip.Prefix, _ string) {
		if !pfxs[rng] && slices.ContainsFunc(all, func(p netip.Prefix) bool { return inside(rng, p) }) {
			all = append(all, rng)
		}
	})
	slices.SortFunc(all, comparePrefix)
	for i, p := range all {
		// The prefixes inside p follow it in this order.
		j := i + 1
		for j < len(all) && p.Contains(all[j].Addr()) {
			j++
		}
		if a, ok := uncovered(p, all[i+1:j]); ok {
			sp.prefixes = append(sp.prefixes, p)
			sp.addr[p] = a
		}
	}
}

// comparePrefix orders prefixes by address, then wider first, so that
// the prefixes inside one follow it.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// inside reports whether p lies strictly inside q.
func inside(p, q netip.Prefix) bool {
	return p.Bits() > q.Bits() && q.Contains(p.Addr())
}

// uncovered returns the lowest address of p that none of subs (sorted,
// each inside p) contains.
func uncovered(p netip.Prefix, subs []netip.Prefix) (netip.Addr, bool) {
	a := p.Addr()
	for _, s := range subs {
		if !s.Contains(a) {
			if s.Addr().Compare(a) > 0 {
				return a, true // a gap before s
			}
			continue // inside a prefix already passed
		}
		a = lastAddr(s).Next()
		if !a.IsValid() || !p.Contains(a) {
			return netip.Addr{}, false
		}
	}
	return a, true
}

// lastAddr returns the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// A period is what a block decides about one destination from one
// instant of a space until the next period.
type period struct {
	from    time.Time
	verdict policy.Verdict
	rule    *policy.Rule // the allow rule, or the deny rule that refused
	reason  string       // for deny and would_deny: no_rule, deny_rule, blocked_address, client_unknown
}

// passes reports whether the proxy lets the connection through: allowed,
// or let through by learn mode.
func (p period) passes() bool { return p.verdict != policy.VerdictDeny }

// same reports whether two periods say the same, rule names aside.
func (p period) same(q period) bool {
	return p.verdict == q.verdict && p.reason == q.reason && ruleName(p.rule) == ruleName(q.rule)
}

func ruleName(r *policy.Rule) string {
	if r == nil {
		return ""
	}
	return r.Name
}

// Reasons of a deny or would_deny period, as the proxy's logs name them.
const (
	reasonNoRule         = "no_rule"
	reasonDenyRule       = "deny_rule"
	reasonBlockedAddress = "blocked_address"
	reasonClientUnknown  = "client_unknown"
)

// decideAt is what client block c (nil: no such block) does with a
// connection to h on port at the instant at: the decision of
// Client.DecideAt, and for an IP literal in a guarded range, the
// destination guard's Client.AddressAllowedAt, as the proxy applies them.
func decideAt(c *policy.Client, h host.Host, port uint16, at time.Time) period {
	if c == nil {
		return period{from: at, verdict: policy.VerdictDeny, reason: reasonClientUnknown}
	}
	d := c.DecideAt(h, port, at)
	p := period{from: at, verdict: c.Verdict(d), rule: d.Rule}
	switch {
	case d.Deny != nil:
		p.rule, p.reason = d.Deny, reasonDenyRule
	case !d.Allowed:
		p.reason = reasonNoRule
	case h.IsIP():
		if _, _, guarded := policy.GuardedRange(h.IP); guarded && !c.AddressAllowedAt(h, port, h.IP, at) {
			p.verdict, p.rule, p.reason = policy.VerdictDeny, nil, reasonBlockedAddress
		}
	}
	return p
}
