package netaudit

import (
	"net/netip"
	"strings"
)

// private are the ranges Azure treats as private: its default routes send
// the RFC 1918 and RFC 6598 ranges to None unless a VNet uses them, so a
// route for them never carries traffic to the internet. IPv6 unique local
// addresses are the same for IPv6.
var private = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
}

// routePrefix parses a route's address prefix: a CIDR, or a service tag
// (ok is false then; every service tag a route may name is a set of
// public Azure addresses).
func routePrefix(s string) (p netip.Prefix, ok bool) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// public reports whether a route or rule for s can reach public
// addresses: s is a service tag, or a CIDR not inside one of the private
// ranges or the VNet's own address space.
func public(s string, vnet []netip.Prefix) bool {
	p, ok := routePrefix(s)
	if !ok {
		return true
	}
	return !within(p, private) && !within(p, vnet)
}

// within reports whether p lies inside one of the prefixes of set.
func within(p netip.Prefix, set []netip.Prefix) bool {
	for _, q := range set {
		if q.Bits() <= p.Bits() && q.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

// defaultRoute is the prefix that catches every address of p's family.
func defaultRoute(p netip.Prefix) netip.Prefix {
	if p.Addr().Is4() {
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	return netip.MustParsePrefix("::/0")
}

// covered reports whether the union of set contains every address of p.
func covered(p netip.Prefix, set []netip.Prefix) bool {
	if within(p, set) {
		return true
	}
	// Split p while some prefix of set lies strictly inside it: only then
	// can smaller prefixes add up to it.
	inside := false
	for _, q := range set {
		if q.Bits() > p.Bits() && p.Contains(q.Addr()) {
			inside = true
			break
		}
	}
	if !inside || p.Bits() == p.Addr().BitLen() {
		return false
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	hi := netip.PrefixFrom(upperHalf(p), p.Bits()+1)
	return covered(lo, set) && covered(hi, set)
}

// upperHalf is the first address of p's upper half.
func upperHalf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	bit := p.Bits()
	b[bit/8] |= 0x80 >> (bit % 8)
	a, _ := netip.AddrFromSlice(b)
	return a
}

// nsgInternet classifies an NSG rule's destination entry: whether it
// stands for every internet address (all), for some public addresses
// (some), or for none (private ranges, the VNet, the load balancer).
func nsgInternet(s string, vnet []netip.Prefix) (all, some bool) {
	switch strings.ToLower(s) {
	case "*", "internet", "0.0.0.0/0", "any":
		return true, true
	case "virtualnetwork", "azureloadbalancer":
		return false, false
	}
	return false, public(s, vnet)
}

// nsgMatchesSubnet reports whether an NSG rule's source entry matches
// every address of the subnet (all) or possibly some (some).
func nsgMatchesSubnet(s string, subnet []netip.Prefix) (all, some bool) {
	switch strings.ToLower(s) {
	case "*", "virtualnetwork", "any":
		return true, true
	case "internet", "azureloadbalancer":
		return false, false
	}
	p, ok := routePrefix(s)
	if !ok {
		return false, true // another service tag: may include it
	}
	all, some = true, false
	for _, sp := range subnet {
		if !(p.Bits() <= sp.Bits() && p.Contains(sp.Addr())) {
			all = false
		}
		if p.Overlaps(sp) {
			some = true
		}
	}
	return all && some, some
}
