package policy

import "net/netip"

// guardedRange is an address range the proxy refuses to connect to unless a
// matching rule's addresses name it: a prefix inside the range. The proxy's host has a managed identity
// and sits next to Azure's platform endpoints: a client must never reach
// IMDS, WireServer or anything private through it by accident or by DNS trick.
type guardedRange struct {
	prefix netip.Prefix
	what   string
}

var guardedRanges = func() []guardedRange {
	r := []struct{ p, what string }{
		// IPv4.
		{"0.0.0.0/8", "unspecified/this-network address (0.0.0.0/8)"},
		{"10.0.0.0/8", "private address (RFC 1918, 10.0.0.0/8)"},
		{"100.64.0.0/10", "shared address space (carrier-grade NAT, 100.64.0.0/10)"},
		{"127.0.0.0/8", "loopback address (127.0.0.0/8)"},
		{"169.254.169.254/32", "Azure Instance Metadata Service (IMDS, 169.254.169.254), which issues managed-identity tokens"},
		{"169.254.0.0/16", "link-local address (169.254.0.0/16)"},
		{"168.63.129.16/32", "Azure platform address (WireServer and Azure DNS, 168.63.129.16)"},
		{"172.16.0.0/12", "private address (RFC 1918, 172.16.0.0/12)"},
		{"192.0.0.0/24", "IETF protocol assignment (192.0.0.0/24)"},
		{"192.168.0.0/16", "private address (RFC 1918, 192.168.0.0/16)"},
		{"198.18.0.0/15", "benchmarking address (198.18.0.0/15)"},
		{"224.0.0.0/4", "multicast address (224.0.0.0/4)"},
		{"255.255.255.255/32", "broadcast address"},
		{"240.0.0.0/4", "reserved address (240.0.0.0/4)"},
		// IPv6.
		{"::/128", "unspecified address (::)"},
		{"::1/128", "loopback address (::1)"},
		{"::/96", "IPv4-compatible IPv6 address (::/96)"},
		{"64:ff9b::/96", "NAT64 address embedding an IPv4 address (64:ff9b::/96)"},
		{"64:ff9b:1::/48", "local-use NAT64 address (64:ff9b:1::/48)"},
		{"100::/64", "discard-only address (100::/64)"},
		{"2001::/32", "Teredo address embedding an IPv4 address (2001::/32)"},
		{"2002::/16", "6to4 address embedding an IPv4 address (2002::/16)"},
		{"fc00::/7", "unique local IPv6 address (fc00::/7)"},
		{"fe80::/10", "link-local IPv6 address (fe80::/10)"},
		{"fec0::/10", "site-local IPv6 address (fec0::/10)"},
		{"ff00::/8", "multicast IPv6 address (ff00::/8)"},
	}
	out := make([]guardedRange, len(r))
	for i, g := range r {
		out[i] = guardedRange{netip.MustParsePrefix(g.p), g.what}
	}
	return out
}()

// GuardedRange reports whether ip lies in a range the proxy refuses by
// default, and returns that range and its description for the operator.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is judged by its IPv4 form.
// The first, most specific range wins (IMDS before link-local).
func GuardedRange(ip netip.Addr) (rng netip.Prefix, what string, ok bool) {
	ip = ip.Unmap().WithZone("")
	if !ip.IsValid() {
		return netip.Prefix{}, "", false
	}
	for _, i := range guardedByFirstByte[ip.BitLen()/128][firstByte(ip)] {
		if g := guardedRanges[i]; g.prefix.Contains(ip) {
			return g.prefix, g.what, true
		}
	}
	return netip.Prefix{}, "", false
}

// guardedByFirstByte holds, for IPv4 ([0]) and IPv6 ([1]) and an address's
// first byte, the indexes in guardedRanges of the ranges that may hold it,
// in their order: GuardedRange, which every dial asks once or twice,
// tries those alone (none, for most public addresses).
var guardedByFirstByte = func() (t [2][256][]int) {
	for i, g := range guardedRanges {
		a := g.prefix.Addr()
		shift := 8 - min(g.prefix.Bits(), 8) // the bits of the first byte the prefix leaves free
		for b := range 256 {
			if byte(b)>>shift == firstByte(a)>>shift {
				t[a.BitLen()/128][b] = append(t[a.BitLen()/128][b], i)
			}
		}
	}
	return t
}()

// firstByte is the first byte of a valid address.
func firstByte(a netip.Addr) byte {
	if a.Is4() {
		return a.As4()[0]
	}
	return a.As16()[0]
}

// GuardedRanges calls f with each guarded range and its description, most
// specific first.
func GuardedRanges(f func(rng netip.Prefix, what string)) {
	for _, g := range guardedRanges {
		f(g.prefix, g.what)
	}
}

// names reports whether prefix p names the guarded range rng: p lies
// inside rng. A wider prefix (0.0.0.0/0, 10.0.0.0/7) covers rng without
// naming it, and unlocks none of it. Policies hold no IPv4-mapped
// prefixes (Load refuses them), so p and rng have the same family.
func names(p, rng netip.Prefix) bool {
	return p.Bits() >= rng.Bits() && rng.Contains(p.Addr())
}
