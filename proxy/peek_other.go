//go:build !linux

package proxy

import "net"

// awaitServer blocks until upstream has bytes to read (spoke), reaches EOF
// or fails, or its read deadline passes (timedOut). Bytes it read are in
// data, which the caller must forward.
func awaitServer(upstream net.Conn) (data []byte, spoke, timedOut bool) {
	return readServer(upstream)
}

// idleOpen reports whether an idle kept-alive connection is still usable.
// Without a non-blocking peek, the retry in originPool.roundTrip covers a
// connection the origin closed.
func idleOpen(net.Conn) bool { return true }
