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
	var peek [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
		if err != nil || n > 0 {
			spoke = n > 0
			return true
		}
		// Nothing queued: not yet readable, or EOF or an error, which a
		// peek tells apart.
		for {
			_, _, err := unix.Recvfrom(int(fd), peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if err == unix.EINTR {
				continue
			}
			return err != unix.EAGAIN
		}
	})
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, false, true
	}
	return nil, spoke, false
}
