//go:build !linux

package proxy

import "net"

// prepareSplice reports whether copySplice can be used; only on Linux.
func (t *tunnel) prepareSplice() bool { return false }

// copySplice is never called off Linux.
func (t *tunnel) copySplice(d *direction) error { return t.copyGeneric(d) }

// ackProbe returns nil: acknowledgements are observed only on Linux.
func ackProbe(c net.Conn) func() (uint64, bool) { return nil }
