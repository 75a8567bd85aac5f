package policy

import (
	"net/netip"
	"strings"

	"github.com/azegress/azegress/policy/host"
)

// This file works only on compiled data and must not allocate.

// Client returns the client block whose sources contain addr with the
// longest prefix, or nil if no block does (the proxy then refuses the
// connection as client_unknown). Blocks with an identity block never
// count: they are selected by identity alone (ClientForIdentity), so a
// connection without credentials meets only address-keyed blocks.
// IPv4-mapped IPv6 addresses are unmapped first. Client does not allocate.
func (p *Policy) Client(addr netip.Addr) *Client {
	if p == nil || !addr.IsValid() {
		return nil
	}
	addr = addr.Unmap().WithZone("")
	t := &p.v6
	if addr.Is4() {
		t = &p.v4
	}
	return t.lookup(addr)
}

// prefixTable maps source prefixes of one address family to clients.
// Lookup probes each distinct prefix length, longest first, so its cost
// depends on the number of distinct lengths, not on the number of
// prefixes.
type prefixTable struct {
	bits     []int // distinct prefix lengths, descending
	byPrefix map[netip.Prefix]*Client
}

func (t *prefixTable) lookup(addr netip.Addr) *Client {
	for _, b := range t.bits {
		pfx, err := addr.Prefix(b)
		if err != nil {
			continue
		}
		if c := t.byPrefix[pfx]; c != nil {
			return c
		}
	}
	return nil
}

// lookup returns the rule of x that matches h on port at now (Unix
// seconds; rules that expired by then are skipped), or nil. If guard is
// valid, only rules that unlock guard count.
func (x *ruleIndex) lookup(h host.Host, port uint16, guard netip.Addr, now int64) *Rule {
	switch {
	case h.IP.IsValid():
		return x.lookupIP(h.IP, port, guard, now)
	case h.Name != "":
		return x.lookupName(h.Name, port, guard, now)
	}
	return nil
}

// lookupName returns the rule that matches name on port, in evaluation
// order: exact rules first, then wildcard rules from the longest suffix to
// the shortest, each in file order.
func (x *ruleIndex) lookupName(name string, port uint16, guard netip.Addr, now int64) *Rule {
	for _, r := range x.exact[name] {
		if r.hasPort(port) && r.live(now) && (!guard.IsValid() || r.unlocks(guard)) {
			return r
		}
	}
	if len(x.wild) == 0 {
		return nil
	}
	// Walk the proper suffixes of name by slicing: "a.b.example.com" tries
	// "b.example.com", then "example.com". Wildcards never cover a single
	// label, so the walk stops before the last one; suffixes with more
	// labels than any wildcard are skipped without a map lookup.
	labels := 1 + strings.Count(name, ".")
	s := name
	for labels > 2 {
		i := strings.IndexByte(s, '.')
		if i < 0 {
			break
		}
		s = s[i+1:]
		labels--
		if labels > x.maxWild {
			continue
		}
		for _, r := range x.wild[s] {
			if r.hasPort(port) && r.live(now) && (!guard.IsValid() || r.unlocks(guard)) {
				return r
			}
		}
	}
	return nil
}

// lookupIP returns the first rule in file order whose addresses contain
// dst and whose ports include port. If guard is valid, the rule must
// unlock guard too.
func (x *ruleIndex) lookupIP(dst netip.Addr, port uint16, guard netip.Addr, now int64) *Rule {
	for _, r := range x.ipRules {
		if r.hasPort(port) && r.live(now) && r.containsAddr(dst) && (!guard.IsValid() || r.unlocks(guard)) {
			return r
		}
	}
	return nil
}

// hasPort reports whether port is one of r's ports.
func (r *Rule) hasPort(port uint16) bool {
	for _, p := range r.Ports {
		if p == port {
			return true
		}
	}
	return false
}

// containsAddr reports whether one of r's addresses contains ip or, for an
// IPv4-mapped IPv6 address, its IPv4 form.
func (r *Rule) containsAddr(ip netip.Addr) bool {
	u := ip.Unmap()
	for _, p := range r.Addresses {
		if p.Contains(ip) || p.Contains(u) {
			return true
		}
	}
	return false
}

// unlocks reports whether r's addresses let the destination guard through
// to ip: a prefix contains ip and, when ip is in a guarded range, names
// that range (lies inside it). "addresses = [\"0.0.0.0/0\"]" reaches
// public addresses only; loopback, link-local or private addresses need a
// prefix of their own, so a lazy wide prefix never opens them.
func (r *Rule) unlocks(ip netip.Addr) bool {
	rng, _, guarded := GuardedRange(ip)
	u := ip.Unmap()
	for _, p := range r.Addresses {
		if (p.Contains(ip) || p.Contains(u)) && (!guarded || names(p, rng)) {
			return true
		}
	}
	return false
}
