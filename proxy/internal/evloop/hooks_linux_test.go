package evloop

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/proxy/internal/nettest"
)

// hookHandler is testHandler with the optional Acceptor and Dialer.
type hookHandler struct {
	*testHandler
	shed   []byte // Accepted's reply
	dialed atomic.Int32
	// replied is whether the client had the 200 when Dialed ran.
	replied atomic.Bool
}

func (h *hookHandler) Accepted(*Conn) []byte { return h.shed }

func (h *hookHandler) Dialed(c *Conn) {
	h.dialed.Add(1)
	h.replied.Store(c.dirs[1].n > 0 || len(c.dirs[1].out) > 0)
}

// serveHooks is serve for a hookHandler.
func serveHooks(t *testing.T, h *hookHandler, cfg Config) string {
	t.Helper()
	addr, _ := serveWith(t, h, cfg)
	return addr
}

// Accepted's reply sheds a connection before its head is read; Closed
// reports it refused.
func TestAccepted(t *testing.T) {
	h := &hookHandler{testHandler: newTestHandler(), shed: []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")}
	addr := serveHooks(t, h, Config{})
	c := dialRaw(t, addr)
	b, err := io.ReadAll(c)
	if err != nil || string(b) != string(h.shed) {
		t.Fatalf("read %q, %v; want the shed reply, then EOF", b, err)
	}
	if e := h.end(t); e.Reason != ReasonRefused || e.Phase != PhaseClosing {
		t.Errorf("end %+v; want refused, the reply written", e)
	}
}

// Dialed runs once per tunnel, after the connect and before the reply.
func TestDialed(t *testing.T) {
	h := &hookHandler{testHandler: newTestHandler()}
	addr := serveHooks(t, h, Config{})
	echo := origin(t, nettest.Echo)
	c := dialProxy(t, addr, echo, "")
	expect200(t, c)
	if n := h.dialed.Load(); n != 1 || h.replied.Load() {
		t.Errorf("Dialed ran %d times, after the reply: %v; want once, before", n, h.replied.Load())
	}
	c.Close()
	h.end(t)
	c = dialProxy(t, addr, closedPort(t), "")
	io.ReadAll(c)
	if n := h.dialed.Load(); n != 1 {
		t.Errorf("Dialed ran %d times after a failed dial; want still 1", n)
	}
}

// EndTunnel ends an opening with the handler's reason, and SetTimeout
// moves the opening's deadline.
func TestEndTunnelAndSetTimeout(t *testing.T) {
	h := newTestHandler()
	h.opening = func(c *Conn, o Opening) Action {
		switch o.Event {
		case EventNone:
			c.SetTimeout(50 * time.Millisecond) // the head timeout below is an hour
			return NeedMore()
		case EventTimeout:
			return EndTunnel(ReasonIdleTimeout, nil)
		}
		return NeedMore()
	}
	addr, _ := serve(t, h, Config{HeadTimeout: time.Hour})
	echo := origin(t, func(c net.Conn) { io.Copy(io.Discard, c) })
	c := dialProxy(t, addr, echo, "hello")
	expect200(t, c)
	if e := h.end(t); e.Reason != ReasonIdleTimeout || e.Phase != PhaseOpening || e.Up != 0 {
		t.Errorf("end %+v; want idle_timeout in the opening, nothing forwarded", e)
	}
}

// ResumeFunc's f computes the answer on the loop; it is not called for a
// connection closed meanwhile.
func TestResumeFunc(t *testing.T) {
	echo := origin(t, nettest.Echo)
	var calls atomic.Int32
	pending := make(chan *Conn, 1)
	h := newTestHandler()
	h.head = func(c *Conn, head []byte, ev Event) Action {
		if bytes.HasPrefix(head, []byte("CONNECT hold")) {
			pending <- c
			return Pending()
		}
		a := connectHead(head)
		if a.kind != actDial {
			return a
		}
		go c.ResumeFunc(func() Action { calls.Add(1); return a })
		return Pending()
	}
	addr, e := serve(t, h, Config{})
	c := dialProxy(t, addr, echo, "x")
	expect200(t, c)
	if got := readN(t, c, 1); got != "x" || calls.Load() != 1 {
		t.Fatalf("echo %q, f called %d times; want x and once", got, calls.Load())
	}
	held := dialRaw(t, addr)
	io.WriteString(held, "CONNECT hold:1 HTTP/1.1\r\n\r\n")
	hc := <-pending
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c.Close()
	if err := e.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	hc.ResumeFunc(func() Action { close(done); return Refuse(bad400) })
	select {
	case <-done:
		t.Error("f ran for a connection Shutdown had closed")
	case <-time.After(100 * time.Millisecond):
	}
}

// keepHandler hands the origin socket over in Dialed.
type keepHandler struct {
	*testHandler
	fd chan int
}

func (h *keepHandler) Dialed(c *Conn) { h.fd <- c.sides[1].fd }

func keepAliveOf(fd int) (on, idle int) {
	on, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE)
	idle, _ = unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE)
	return on, idle
}

// Config.KeepAliveIdle turns keep-alive on for a tunnel's origin socket,
// with that idle time, KeepAliveAfter after its dial; 0
// leaves it off.
func TestKeepAlive(t *testing.T) {
	echo := origin(t, nettest.Echo)
	for _, tt := range []struct {
		idle     time.Duration
		on, secs int
	}{{30 * time.Second, 1, 30}, {0, 0, -1}} {
		h := &keepHandler{testHandler: newTestHandler(), fd: make(chan int, 1)}
		addr, _ := serveWith(t, h, Config{KeepAliveIdle: tt.idle, KeepAliveAfter: 200 * time.Millisecond})
		c := dialProxy(t, addr, echo, "")
		expect200(t, c)
		fd := <-h.fd
		if on, _ := keepAliveOf(fd); on != 0 {
			t.Errorf("KeepAliveIdle %v: SO_KEEPALIVE %d at the dial; want it off until KeepAliveAfter", tt.idle, on)
		}
		// The tunnel relays (the opening check passes on the client's
		// first bytes), then lives on past KeepAliveAfter.
		io.WriteString(c, "x")
		if got := readN(t, c, 1); got != "x" {
			t.Fatalf("echo %q", got)
		}
		deadline := time.Now().Add(5 * time.Second)
		on, idle := keepAliveOf(fd)
		for on != tt.on && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			on, idle = keepAliveOf(fd)
		}
		if tt.on == 0 {
			time.Sleep(300 * time.Millisecond) // past KeepAliveAfter: still off
			on, idle = keepAliveOf(fd)
		}
		if on != tt.on || tt.secs > 0 && idle != tt.secs {
			t.Errorf("KeepAliveIdle %v: SO_KEEPALIVE %d, TCP_KEEPIDLE %d; want %d, %d", tt.idle, on, idle, tt.on, tt.secs)
		}
		c.Close()
		h.end(t)
	}
}
