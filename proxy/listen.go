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

// upstreamDialer dials destinations. Keep-alive probes an upstream socket
// after 30 s of silence, which keeps NAT and load-balancer flows of an idle
// tunnel open (Azure's close after 4 minutes). The probe interval and count
// are the kernel's (net.ipv4.tcp_keepalive_intvl and _probes): setting them
// would cost two more setsockopt calls on every dial.
var upstreamDialer = &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{
	Enable: true, Idle: upstreamKeepAliveIdle, Interval: -1, Count: -1,
}}

const upstreamKeepAliveIdle = 30 * time.Second

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
		// Accepted sockets inherit it. Go applies KeepAliveConfig to each
		// accepted socket whenever Enable is set, whatever KeepAlive says,
		// so the config must be empty for KeepAlive = -1 to take effect.
		lc.KeepAliveConfig = net.KeepAliveConfig{}
		lc.KeepAlive = -1
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
