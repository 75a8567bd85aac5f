package proxy

import (
	"os"

	"golang.org/x/sys/unix"
)

// inheritKeepAlive: Linux copies a listening socket's keep-alive settings
// to the sockets it accepts.
const inheritKeepAlive = true

func setListenerKeepAlive(fd int) error {
	for _, o := range []struct{ level, opt, v int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(clientKeepAliveIdle.Seconds())},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(clientKeepAliveInterval.Seconds())},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, clientKeepAliveCount},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			return os.NewSyscallError("setsockopt", err)
		}
	}
	return nil
}
