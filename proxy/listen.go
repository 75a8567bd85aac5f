package proxy

import (
	"context"
	"net"
	"syscall"
	"time"
)

// Keep-alive on client connections, as Go sets it by default: the first
// probe after 15 s of silence, then every 15 s, 9 unanswered end it.
const (
	clientKeepAliveIdle     = 15 * time.Second
	clientKeepAliveInterval = 15 * time.Second
	clientKeepAliveCount    = 9
)

// Listen opens a TCP listener for Serve or the transparent listeners.
// Connections it accepts have TCP keep-alive on. On Linux they inherit it
// from the listening socket, set once, rather than Go setting it on each
// with four system calls.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{
		KeepAliveConfig: net.KeepAliveConfig{
			Enable:   true,
			Idle:     clientKeepAliveIdle,
			Interval: clientKeepAliveInterval,
			Count:    clientKeepAliveCount,
		},
	}
	if inheritKeepAlive {
		lc.KeepAlive = -1 // accepted sockets inherit it
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) { serr = setListenerKeepAlive(int(fd)) }); err != nil {
				return err
			}
			return serr
		}
	}
	return lc.Listen(ctx, "tcp", addr)
}
