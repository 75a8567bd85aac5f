package proxy

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from <linux/netfilter_ipv6/ip6_tables.h>,
// which golang.org/x/sys does not define. It has the same value as the IPv4
// SO_ORIGINAL_DST.
const ip6tSOOriginalDst = 80

// sockoptOriginalDst returns the destination the client originally
// connected to before a netfilter REDIRECT or DNAT rewrote it, from the
// connection's conntrack entry (SO_ORIGINAL_DST). It fails for connections
// that were not translated and are not tracked, and for TPROXY, where the
// local address already is the original destination.
func sockoptOriginalDst(c net.Conn) (netip.AddrPort, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return netip.AddrPort{}, errors.New("not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	// An IPv6 socket carries IPv4 connections as v4-mapped addresses; those
	// have IPv4 conntrack entries.
	v4 := true
	if la, ok := c.LocalAddr().(*net.TCPAddr); ok {
		v4 = la.IP.To4() != nil
	}
	var ap netip.AddrPort
	var opErr error
	cerr := rc.Control(func(fd uintptr) {
		if v4 {
			// struct sockaddr_in fits in the 16 bytes of an IPv6Mreq.
			m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if err != nil {
				opErr = err
				return
			}
			b := m.Multiaddr // family(2, host order), port(2, network order), addr(4)
			ip := netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]})
			ap = netip.AddrPortFrom(ip, binary.BigEndian.Uint16(b[2:4]))
			return
		}
		// struct sockaddr_in6 (28 bytes) fits in an IPv6MTUInfo.
		mi, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst)
		if err != nil {
			opErr = err
			return
		}
		// Port holds the network-order bytes of sin6_port.
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&mi.Addr.Port))[:])
		ap = netip.AddrPortFrom(netip.AddrFrom16(mi.Addr.Addr), port)
	})
	if cerr != nil {
		return netip.AddrPort{}, cerr
	}
	if opErr != nil {
		return netip.AddrPort{}, opErr
	}
	if !ap.Addr().IsValid() || ap.Port() == 0 {
		return netip.AddrPort{}, errors.New("no original destination")
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}
