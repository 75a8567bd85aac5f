package proxy

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

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
