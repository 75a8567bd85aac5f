package proxy

import (
	"errors"
	"net"
	"os"
	"syscall"
)

// awaitServer blocks until upstream has bytes to read (spoke), reaches EOF
// or fails, or its read deadline passes (timedOut). It consumes nothing: the
// bytes stay queued for the tunnel, so data is always nil here.
func awaitServer(upstream net.Conn) (data []byte, spoke, timedOut bool) {
	sc, ok := upstream.(syscall.Conn)
	if !ok {
		return readServer(upstream)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return readServer(upstream)
	}
	// The tunnel's own readiness check: bytes queued, EOF or an error end
	// the wait; nothing yet parks in the runtime poller.
	var sp spliceState
	err = rc.Read(sp.checkReadable)
	if err != nil {
		return nil, false, errors.Is(err, os.ErrDeadlineExceeded)
	}
	return nil, !sp.eof && sp.err == nil, false
}
