//go:build !linux

package relay

import "net"

// spliceState is empty: copySplice is Linux only.
type spliceState struct{}

// poller is the shared epoll instance, Linux only.
type poller struct{}

// prepareSplice reports whether copySplice can be used; only on Linux.
func (t *tunnel) prepareSplice(parkMode) bool { return false }

// startParked never parks: directions hold a goroutine off Linux.
func (t *tunnel) startParked(*direction) bool { return false }

// runSplice is never called off Linux.
func (t *tunnel) runSplice(d *direction) { t.runGeneric(d) }

// unwatch has nothing to remove off Linux.
func (t *tunnel) unwatch() {}

// release has nothing to give back off Linux.
func (t *tunnel) release() {}

// ackProbe returns nil: acknowledgements are observed only on Linux.
func ackProbe(c net.Conn) func() (uint64, bool) { return nil }

// allAcked reports false: it looks at socket queues, Linux only.
func allAcked(net.Conn) bool { return false }

// Await blocks until c has bytes to read (spoke), reaches EOF or fails, or
// its read deadline passes (timedOut): the proxy's wait for an origin that
// may speak first, before the tunnel starts. Bytes it read are in data,
// which the caller must forward.
func Await(c net.Conn) (data []byte, spoke, timedOut bool) {
	return readFirst(c)
}
