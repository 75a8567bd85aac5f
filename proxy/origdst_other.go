//go:build !linux

package proxy

import (
	"errors"
	"net"
	"net/netip"
)

// sockoptOriginalDst fails off Linux: there is no conntrack to ask, so the
// caller falls back to the connection's local address.
func sockoptOriginalDst(net.Conn) (netip.AddrPort, error) {
	return netip.AddrPort{}, errors.New("SO_ORIGINAL_DST is only available on Linux")
}
