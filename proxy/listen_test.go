package proxy

import (
	"context"
	"net"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestListenKeepAlive: connections accepted from Listen have TCP keep-alive
// on with the client settings.
func TestListenKeepAlive(t *testing.T) {
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a := acceptOne(t, ln)
	if runtime.GOOS != "linux" {
		t.Skip("the options are read back on Linux only")
	}
	checkSockopts(t, a, "accepted", []sockopt{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(clientKeepAliveIdle.Seconds())},
		{"TCP_KEEPINTVL", unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, int(clientKeepAliveInterval.Seconds())},
		{"TCP_KEEPCNT", unix.IPPROTO_TCP, unix.TCP_KEEPCNT, clientKeepAliveCount},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	})
}

// acceptOne connects to ln and returns the connection it accepts; both
// close when the test ends.
func acceptOne(t *testing.T, ln net.Listener) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

// sockopt is a socket option and the value a test wants it to have.
type sockopt struct {
	name       string
	level, opt int
	want       int
}

// checkSockopts reads opts back from c's socket (which socket: who).
func checkSockopts(t *testing.T, c net.Conn, who string, opts []sockopt) {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range opts {
		var got int
		var gerr error
		rc.Control(func(fd uintptr) { got, gerr = unix.GetsockoptInt(int(fd), o.level, o.opt) })
		if gerr != nil || got != o.want {
			t.Errorf("%s on the %s socket = %d (%v), want %d", o.name, who, got, gerr, o.want)
		}
	}
}

// TestListenKeepAliveInherited: on Linux the accepted socket's keep-alive
// comes from the listening socket, and Go does not set it again on every
// accepted connection (four setsockopt calls, 2 µs each here). A keep-alive
// idle time changed on the listening socket must reach the accepted one.
func TestListenKeepAliveInherited(t *testing.T) {
	if !inheritKeepAlive {
		t.Skip("keep-alive is inherited on Linux only")
	}
	ln, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const marker = 77 // seconds; neither Go's default nor ours
	lrc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	lrc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, marker) })
	if serr != nil {
		t.Fatal(serr)
	}
	a := acceptOne(t, ln)
	// Go's own setting would read 15.
	checkSockopts(t, a, "accepted", []sockopt{{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, marker}})
}

// TestUpstreamDialerKeepAlive: upstream sockets probe after 30 s of silence.
func TestUpstreamDialerKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := upstreamDialer.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if runtime.GOOS != "linux" {
		t.Skip("the options are read back on Linux only")
	}
	checkSockopts(t, c, "upstream", []sockopt{
		{"SO_KEEPALIVE", unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{"TCP_KEEPIDLE", unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(upstreamKeepAliveIdle.Seconds())},
		{"TCP_NODELAY", unix.IPPROTO_TCP, unix.TCP_NODELAY, 1},
	})
}
