package policy

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

// GuardedRange, which tries only the ranges its index holds for an
// address's first byte, finds what trying every range in order finds: at
// the edges of every range and next to them, and at random addresses of
// every first byte, IPv4, IPv4-mapped and IPv6; and allocates nothing.
// (Not parallel: AllocsPerRun.)
func TestGuardedRangeIndex(t *testing.T) {
	scan := func(ip netip.Addr) (netip.Prefix, bool) {
		ip = ip.Unmap().WithZone("")
		for _, g := range guardedRanges {
			if g.prefix.Contains(ip) {
				return g.prefix, true
			}
		}
		return netip.Prefix{}, false
	}
	var addrs []netip.Addr
	for _, g := range guardedRanges {
		first := g.prefix.Masked().Addr()
		last := first
		for a := first; a.IsValid() && g.prefix.Contains(a); a = a.Next() {
			last = a
			if a.Is6() && g.prefix.Bits() < 120 || a.Is4() && g.prefix.Bits() < 24 {
				break // the walk is for small ranges; a large one's end is below
			}
		}
		addrs = append(addrs, first, first.Prev(), last, last.Next())
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for b := range 256 {
		for range 8 {
			var a4 [4]byte
			var a16 [16]byte
			for i := range a16 {
				a16[i] = byte(rng.IntN(256))
			}
			copy(a4[:], a16[:4])
			a4[0], a16[0] = byte(b), byte(b)
			addrs = append(addrs, netip.AddrFrom4(a4), netip.AddrFrom16(netip.AddrFrom4(a4).As16()), netip.AddrFrom16(a16))
			// The low bits of small ranges' neighbours: ::/96 and ::/128 hold
			// addresses whose leading bytes are all zero.
			a16 = [16]byte{}
			a16[15], a16[12] = byte(b), byte(rng.IntN(256))
			addrs = append(addrs, netip.AddrFrom16(a16))
		}
	}
	addrs = append(addrs, netip.Addr{}, netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr("::ffff:127.0.0.1"))
	for _, a := range addrs {
		wantRng, wantOK := scan(a)
		gotRng, _, gotOK := GuardedRange(a)
		if gotRng != wantRng || gotOK != wantOK {
			t.Errorf("GuardedRange(%v) = %v, %v; every range in order gives %v, %v", a, gotRng, gotOK, wantRng, wantOK)
		}
	}
	if n := testing.AllocsPerRun(100, func() { GuardedRange(netip.MustParseAddr("127.0.0.1")) }); n != 0 {
		t.Errorf("GuardedRange allocates %v times", n)
	}
}
