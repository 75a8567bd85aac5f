//go:build !linux

package proxy

import "net"

// awaitServer blocks until upstream has bytes to read (spoke), reaches EOF
// or fails, or its read deadline passes (timedOut). Bytes it read are in
// data, which the caller must forward.
func awaitServer(upstream net.Conn) (data []byte, spoke, timedOut bool) {
	return readServer(upstream)
}
