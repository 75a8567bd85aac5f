package proxy

import (
	"fmt"
	"net/netip"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
)

// Guarded reports whether ip lies in a range the proxy refuses by default
// (policy.GuardedRange), and describes that range for the operator.
func Guarded(ip netip.Addr) (bool, string) {
	_, what, ok := policy.GuardedRange(ip)
	return ok, what
}

// localEndpointOf reports whether a is a VM-local Azure endpoint on port
// (catalog.LocalEndpoint), itself or as the IPv4 address an IPv6 transition
// form embeds: a NAT64 or 6to4 gateway, or a Teredo relay, would carry
// 64:ff9b::a9fe:a9fe to IMDS, and a rule that names 64:ff9b::/96 must not
// open it.
func localEndpointOf(a netip.Addr, port uint16) (string, bool) {
	if label, ok := catalog.LocalEndpoint(host.Host{IP: a}, port); ok {
		return label, true
	}
	for _, v4 := range embeddedIPv4(a) {
		if label, ok := catalog.LocalEndpoint(host.Host{IP: v4}, port); ok {
			_, what := Guarded(a)
			return fmt.Sprintf("%s at %s, carried in a %s", label, v4, what), true
		}
	}
	return "", false
}

// embeddedIPv4 returns the IPv4 addresses an IPv6 transition address
// carries: NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and IPv4-compatible (::/96)
// in the last 32 bits, 6to4 (2002::/16) in bits 16-47, Teredo (2001::/32)
// the server in bits 32-63 and the client, inverted, in the last 32.
func embeddedIPv4(a netip.Addr) []netip.Addr {
	if !a.Is6() || a.Is4In6() {
		return nil
	}
	b := a.As16()
	v4 := func(i int, inv byte) netip.Addr {
		return netip.AddrFrom4([4]byte{b[i] ^ inv, b[i+1] ^ inv, b[i+2] ^ inv, b[i+3] ^ inv})
	}
	switch {
	case nat64.Contains(a), nat64Local.Contains(a), compat.Contains(a):
		return []netip.Addr{v4(12, 0)}
	case sixToFour.Contains(a):
		return []netip.Addr{v4(2, 0)}
	case teredo.Contains(a):
		return []netip.Addr{v4(4, 0), v4(12, 0xff)}
	}
	return nil
}

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	compat     = netip.MustParsePrefix("::/96")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	teredo     = netip.MustParsePrefix("2001::/32")
)
