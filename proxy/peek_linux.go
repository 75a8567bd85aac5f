package proxy

import (
	"errors"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
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

// idleOpen reports whether an idle kept-alive connection is still usable:
// nothing to read, no EOF, no error. One non-blocking peek.
func idleOpen(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var b [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		open = err == unix.EAGAIN
		return true
	}); err != nil {
		return false
	}
	return open
}
