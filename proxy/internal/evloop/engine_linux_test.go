package evloop

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/proxy/internal/nettest"
)

var (
	ok200      = []byte("HTTP/1.1 200 Connection established\r\n\r\n")
	bad400     = []byte("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
	forbid403  = []byte("HTTP/1.1 403 Forbidden\r\nContent-Length: 6\r\n\r\ndenied")
	badGate502 = []byte("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
)

// testHandler is a CONNECT handler whose steps a test replaces. Its
// default Head dials the CONNECT target, a comma-separated list of
// addresses; its default Opening relays at once.
type testHandler struct {
	head     func(c *Conn, head []byte, ev Event) Action
	opening  func(c *Conn, o Opening) Action
	handOff  func(c *Conn, nc net.Conn, prefix []byte)
	dialErrs chan error
	ends     chan End
}

func newTestHandler() *testHandler {
	return &testHandler{dialErrs: make(chan error, 16), ends: make(chan End, 16)}
}

func (h *testHandler) Head(c *Conn, head []byte, ev Event) Action {
	if h.head != nil {
		return h.head(c, head, ev)
	}
	return connectHead(head)
}

// connectHead dials a complete CONNECT head's target.
func connectHead(head []byte) Action {
	i := bytes.Index(head, []byte("\r\n\r\n"))
	if i < 0 {
		return NeedMore()
	}
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	f := strings.Fields(string(line))
	if len(f) != 3 || f[0] != "CONNECT" {
		return Refuse(bad400)
	}
	var addrs []netip.AddrPort
	for _, s := range strings.Split(f[1], ",") {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return Refuse(bad400)
		}
		addrs = append(addrs, ap)
	}
	return Dial(addrs, ok200, i+4)
}

func (h *testHandler) HandOff(c *Conn, nc net.Conn, prefix []byte) {
	if h.handOff != nil {
		h.handOff(c, nc, prefix)
		return
	}
	nc.Close()
}

func (h *testHandler) DialFailed(c *Conn, err error) []byte {
	h.dialErrs <- err
	return badGate502
}

func (h *testHandler) Opening(c *Conn, o Opening) Action {
	if h.opening != nil {
		return h.opening(c, o)
	}
	return Relay()
}

func (h *testHandler) Closed(c *Conn, end End) { h.ends <- end }

// end waits for the next connection's end.
func (h *testHandler) end(t *testing.T) End {
	t.Helper()
	return recv(t, h.ends, "no connection ended")
}

// recv waits for the next value on ch, failing the test with what after
// 10s.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal(what)
		var zero T
		return zero
	}
}

// serve runs an engine with h on a loopback listener until the test ends,
// then shuts it down and checks that the process's fds are back to what
// they were before.
func serve(t *testing.T, h *testHandler, cfg Config) (addr string, e *Engine) {
	t.Helper()
	return serveWith(t, h, cfg)
}

// serveWith is serve for any handler.
func serveWith(t *testing.T, h Handler, cfg Config) (addr string, e *Engine) {
	t.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String(), serveOn(t, ln, h, cfg)
}

// serveOn serves ln with h and cfg until the test ends, then shuts the
// engine down and checks that the process's fds are back to what they were
// before it (ln, which the caller closes after, among them; Go's poller,
// which keeps its fds once made, is up since ln was).
func serveOn(t *testing.T, ln *net.TCPListener, h Handler, cfg Config) *Engine {
	t.Helper()
	base, _ := nettest.CountFDs(t)
	t.Cleanup(func() {
		nettest.WaitFor(t, func() bool { n, _ := nettest.CountFDs(t); return n == base }, "fds back to baseline")
	})
	cfg.Handler = h
	if cfg.Loops == 0 {
		cfg.Loops = 2
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != ErrClosed {
			t.Errorf("Serve returned %v, want ErrClosed", err)
		}
	})
	return e
}

// origin serves fn on a loopback port until the test ends (nettest.Serve),
// then closes the connections fn still serves (one the engine leaked fails
// the fd check before).
func origin(t *testing.T, fn func(net.Conn)) string { return nettest.Serve(t, fn).Addr().String() }

// dialRaw connects to addr, closed when the test ends.
func dialRaw(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

// dialProxy connects to the engine and sends a CONNECT for target with
// early behind it.
func dialProxy(t *testing.T, addr, target, early string) *net.TCPConn {
	t.Helper()
	c := dialRaw(t, addr)
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: x\r\n\r\n"+early); err != nil {
		t.Fatal(err)
	}
	return c
}

// readN reads exactly n bytes from c.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, b)
	}
	return string(b)
}

// expect200 reads the 200 from c.
func expect200(t *testing.T, c net.Conn) {
	t.Helper()
	if got := readN(t, c, len(ok200)); got != string(ok200) {
		t.Fatalf("reply %q, want the 200", got)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

func TestHeadActions(t *testing.T) {
	tests := []struct {
		name   string
		head   func(c *Conn, head []byte, ev Event) Action
		send   string
		want   string // what the client reads until EOF
		reason string
		phase  Phase
	}{
		{
			name: "refuse",
			head: func(c *Conn, head []byte, ev Event) Action {
				if bytes.Contains(head, []byte("\r\n\r\n")) {
					return Refuse(forbid403)
				}
				return NeedMore()
			},
			send: "CONNECT a:1 HTTP/1.1\r\n\r\n", want: string(forbid403), reason: ReasonRefused, phase: PhaseClosing,
		},
		{
			name: "not a CONNECT", send: "GET / HTTP/1.1\r\n\r\n", want: string(bad400), reason: ReasonRefused, phase: PhaseClosing,
		},
		{
			name: "client gone before a whole head", send: "CONNECT a:1 HTTP/1.1\r\n", reason: ReasonEOF, phase: PhaseHead,
		},
		{
			name: "head too large",
			send: "CONNECT a:1 HTTP/1.1\r\nX: " + strings.Repeat("x", HeadBufSize) + "\r\n\r\n", reason: ReasonRefused, phase: PhaseHead,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler()
			h.head = tt.head
			addr, _ := serve(t, h, Config{})
			c := dialRaw(t, addr)
			go func() {
				io.WriteString(c, tt.send)
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil && !errors.Is(err, unix.ECONNRESET) {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("client read %q, want %q", got, tt.want)
			}
			if end := h.end(t); end.Reason != tt.reason || end.Phase != tt.phase {
				t.Errorf("end %+v, want %s in phase %s", end, tt.reason, tt.phase)
			}
		})
	}
}

func TestHeadTimeout(t *testing.T) {
	h := newTestHandler()
	addr, _ := serve(t, h, Config{HeadTimeout: 50 * time.Millisecond})
	c := dialRaw(t, addr)
	io.WriteString(c, "CONNECT a:1 HTTP/1.1\r\n")
	end := h.end(t)
	if end.Reason != ReasonIdleTimeout || end.Phase != PhaseHead {
		t.Errorf("end %+v, want idle_timeout in the head phase", end)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("client read %d, %v; want EOF", n, err)
	}
}

// TestHandOff: the handed-off net.Conn continues where the prefix ends,
// and net/http serves a request on it.
func TestHandOff(t *testing.T) {
	h := newTestHandler()
	var srvWG sync.WaitGroup
	t.Cleanup(srvWG.Wait)
	h.head = func(c *Conn, head []byte, ev Event) Action {
		if bytes.HasPrefix(head, []byte("GET ")) {
			return HandOff()
		}
		return NeedMore()
	}
	prefixes := make(chan string, 1)
	h.handOff = func(c *Conn, nc net.Conn, prefix []byte) {
		prefixes <- string(prefix)
		srvWG.Add(1)
		go func() {
			defer srvWG.Done()
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "served "+r.URL.Path+" "+r.Header.Get("X-Part"))
			})}
			srv.Serve(&oneConnListener{c: &prefixConn{Conn: nc, prefix: prefix}})
		}()
	}
	addr, _ := serve(t, h, Config{})
	c := dialRaw(t, addr)
	io.WriteString(c, "GET /pa")
	if p := <-prefixes; p != "GET /pa" {
		t.Fatalf("prefix %q", p)
	}
	io.WriteString(c, "th HTTP/1.1\r\nHost: x\r\nX-Part: two\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "served /path two" {
		t.Errorf("body %q", body)
	}
	select {
	case end := <-h.ends:
		t.Errorf("Closed called for a handed-off connection: %+v", end)
	default:
	}
}

type prefixConn struct {
	net.Conn
	prefix []byte
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) > 0 {
		n := copy(b, p.prefix)
		p.prefix = p.prefix[n:]
		return n, nil
	}
	return p.Conn.Read(b)
}

// oneConnListener gives out c once, then waits until c is closed.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
	mu   sync.Mutex
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if l.done == nil {
		l.done = make(chan struct{})
	}
	c := l.c
	l.c = nil
	l.mu.Unlock()
	if c != nil {
		return &closeNotify{Conn: c, l: l}, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }

type closeNotify struct {
	net.Conn
	l *oneConnListener
}

func (c *closeNotify) Close() error {
	c.l.once.Do(func() { close(c.l.done) })
	return c.Conn.Close()
}

func TestDial(t *testing.T) {
	echo := origin(t, nettest.Echo)
	tests := []struct {
		name   string
		target func(t *testing.T) string
		early  string
	}{
		{"early bytes", func(*testing.T) string { return echo }, "hello"},
		{"closed port, then a good one", func(t *testing.T) string { return closedPort(t) + "," + echo }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler()
			addr, _ := serve(t, h, Config{})
			c := dialProxy(t, addr, tt.target(t), tt.early)
			expect200(t, c)
			if tt.early != "" {
				if got := readN(t, c, len(tt.early)); got != tt.early {
					t.Errorf("echo of early bytes %q", got)
				}
			}
			io.WriteString(c, "ping")
			if got := readN(t, c, 4); got != "ping" {
				t.Errorf("echo %q", got)
			}
			c.Close()
			end := h.end(t)
			if end.Reason != ReasonEOF || end.Up != int64(len(tt.early)+4) || end.Down != end.Up {
				t.Errorf("end %+v, want eof with %d bytes each way", end, len(tt.early)+4)
			}
		})
	}
}

func TestDialFails(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		target  func(t *testing.T) string
		timeout bool
	}{
		{"every port closed", Config{}, func(t *testing.T) string { return closedPort(t) + "," + closedPort(t) }, false},
		{"timeout", Config{DialTimeout: 100 * time.Millisecond}, fullBacklog, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler()
			target := tt.target(t)
			addr, _ := serve(t, h, tt.cfg)
			c := dialProxy(t, addr, target, "")
			got, _ := io.ReadAll(c)
			if string(got) != string(badGate502) {
				t.Errorf("client read %q, want the 502", got)
			}
			err := <-h.dialErrs
			var ne net.Error
			if !errors.As(err, &ne) || ne.Timeout() != tt.timeout {
				t.Errorf("dial error %v, want a net.Error with Timeout() %v", err, tt.timeout)
			}
			if end := h.end(t); end.Reason != ReasonRefused || end.Err != err {
				t.Errorf("end %+v, want refused with the dial error", end)
			}
		})
	}
}

// fullBacklog returns the address of a listener whose accept queue is full,
// so that a connect to it stays unanswered: the kernel drops the SYN.
func fullBacklog(t *testing.T) string {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, _ := unix.Getsockname(fd)
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port)).String()
	// Fill the queue: connects succeed until it is full, then one hangs.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return addr
			}
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if i > 16 {
			t.Skip("the listener's accept queue does not fill up here")
		}
	}
}

// TestPending: a handler finishes its decision on another goroutine.
func TestPending(t *testing.T) {
	echo := origin(t, nettest.Echo)
	h := newTestHandler()
	h.head = func(c *Conn, head []byte, ev Event) Action {
		a := connectHead(head)
		if a.kind != actDial {
			return a
		}
		go c.Resume(a) // the slow lookup
		return Pending()
	}
	addr, _ := serve(t, h, Config{})
	c := dialProxy(t, addr, echo, "x")
	expect200(t, c)
	if got := readN(t, c, 1); got != "x" {
		t.Errorf("echo %q", got)
	}
}

// TestOpening: client bytes reach the origin only when the handler says
// so; the origin's first bytes reach the client meanwhile.
func TestOpening(t *testing.T) {
	got := make(chan string, 1)
	banner := origin(t, func(c net.Conn) {
		io.WriteString(c, "BANNER")
		b, _ := io.ReadAll(c)
		got <- string(b)
	})
	tests := []struct {
		name       string
		opening    func(c *Conn, o Opening) Action
		send       []string // each after the previous was seen by the handler
		wantOrigin string
		reason     string
	}{
		{
			name: "relay after inspection",
			opening: func(c *Conn, o Opening) Action {
				if bytes.HasSuffix(o.Client, []byte("GO")) {
					return Relay()
				}
				return NeedMore()
			},
			send: []string{"wait", "GO", "more"}, wantOrigin: "waitGOmore", reason: ReasonEOF,
		},
		{
			name: "forward, then relay",
			opening: func(c *Conn, o Opening) Action {
				switch {
				case bytes.Equal(o.Client, []byte("one")):
					return Forward(3)
				case bytes.Equal(o.Client, []byte("two")):
					return Relay()
				}
				return NeedMore()
			},
			send: []string{"one", "two"}, wantOrigin: "onetwo", reason: ReasonEOF,
		},
		{
			name: "withheld bytes never reach the origin",
			opening: func(c *Conn, o Opening) Action {
				if o.Event == EventEOF {
					return Refuse(nil)
				}
				return NeedMore()
			},
			send: []string{"secret"}, wantOrigin: "", reason: ReasonRefused,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler()
			seen := make(chan string, 8)
			var fromOrigin []byte
			h.opening = func(c *Conn, o Opening) Action {
				fromOrigin = append(fromOrigin, o.Origin...)
				if o.Origin == nil && o.Event == EventNone {
					seen <- string(o.Client)
				}
				return tt.opening(c, o)
			}
			addr, _ := serve(t, h, Config{})
			c := dialProxy(t, addr, banner, "")
			expect200(t, c)
			if b := readN(t, c, 6); b != "BANNER" {
				t.Fatalf("client read %q before sending, want the banner", b)
			}
			for i, s := range tt.send {
				io.WriteString(c, s)
				if i < len(tt.send)-1 { // the handler saw it before the next
					<-seen
				}
			}
			c.CloseWrite()
			if o := <-got; o != tt.wantOrigin {
				t.Errorf("origin read %q, want %q", o, tt.wantOrigin)
			}
			end := h.end(t)
			if end.Reason != tt.reason {
				t.Errorf("end %+v, want %s", end, tt.reason)
			}
			if string(fromOrigin) != "BANNER" {
				t.Errorf("the handler saw %q from the origin, want the banner", fromOrigin)
			}
		})
	}
}

// TestRelayBulk moves 8 MiB each way, spliced and through the buffer,
// which then meets a destination that takes only part of a write.
func TestRelayBulk(t *testing.T) {
	for _, noSplice := range []bool{false, true} {
		t.Run(map[bool]string{false: "splice", true: "buffer"}[noSplice], func(t *testing.T) {
			echo := origin(t, nettest.Echo)
			h := newTestHandler()
			addr, _ := serve(t, h, Config{noSplice: noSplice})
			c := dialProxy(t, addr, echo, "")
			c.SetDeadline(time.Now().Add(60 * time.Second))
			expect200(t, c)
			const size = 8 << 20
			data := make([]byte, size)
			rand.Read(data)
			go func() {
				c.Write(data)
				c.CloseWrite()
			}()
			hash := sha256.New()
			n, err := io.Copy(hash, c)
			if err != nil || n != size {
				t.Fatalf("read back %d bytes, %v", n, err)
			}
			if want := sha256.Sum256(data); !bytes.Equal(hash.Sum(nil), want[:]) {
				t.Error("the bytes read back differ from those sent")
			}
			if end := h.end(t); end.Reason != ReasonEOF || end.Up != size || end.Down != size {
				t.Errorf("end %+v, want eof with %d bytes each way", end, size)
			}
		})
	}
}

func TestHalfClose(t *testing.T) {
	tests := []struct {
		name        string
		clientFirst bool
	}{
		{"client ends first", true},
		{"origin ends first", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			originGot := make(chan string, 1)
			o := origin(t, func(c net.Conn) {
				if tt.clientFirst {
					b, _ := io.ReadAll(c) // until the client's FIN
					io.WriteString(c, "reply after your EOF")
					originGot <- string(b)
					return
				}
				io.WriteString(c, "bye")
				c.(*net.TCPConn).CloseWrite()
				b, _ := io.ReadAll(c)
				originGot <- string(b)
			})
			h := newTestHandler()
			addr, _ := serve(t, h, Config{})
			c := dialProxy(t, addr, o, "")
			expect200(t, c)
			var clientGot []byte
			if tt.clientFirst {
				io.WriteString(c, "request")
				c.CloseWrite()
				clientGot, _ = io.ReadAll(c)
			} else {
				clientGot, _ = io.ReadAll(c)
				io.WriteString(c, "late words")
				c.CloseWrite()
			}
			want := map[bool][2]string{true: {"request", "reply after your EOF"}, false: {"late words", "bye"}}[tt.clientFirst]
			if g := <-originGot; g != want[0] {
				t.Errorf("origin read %q, want %q", g, want[0])
			}
			if string(clientGot) != want[1] {
				t.Errorf("client read %q, want %q", clientGot, want[1])
			}
			if end := h.end(t); end.Reason != ReasonEOF {
				t.Errorf("end %+v, want eof", end)
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	echo := origin(t, nettest.Echo)
	h := newTestHandler()
	addr, _ := serve(t, h, Config{IdleTimeout: 50 * time.Millisecond})
	c := dialProxy(t, addr, echo, "")
	expect200(t, c)
	io.WriteString(c, "x")
	readN(t, c, 1)
	end := h.end(t)
	if end.Reason != ReasonIdleTimeout || end.Up != 1 || end.Down != 1 {
		t.Errorf("end %+v, want idle_timeout with a byte each way", end)
	}
	if b, err := io.ReadAll(c); len(b) != 0 || err != nil {
		t.Errorf("client read %q, %v after the timeout; want EOF", b, err)
	}
}

// TestShutdown: head-phase connections are closed at once, tunnels are
// waited for, and cut (canceled) when the context ends.
func TestShutdown(t *testing.T) {
	for _, cut := range []bool{false, true} {
		name := map[bool]string{false: "tunnel ends in time", true: "tunnel cut"}[cut]
		t.Run(name, func(t *testing.T) {
			echo := origin(t, nettest.Echo)
			h := newTestHandler()
			addr, e := serve(t, h, Config{})
			c := dialProxy(t, addr, echo, "")
			expect200(t, c)
			idle := dialRaw(t, addr)
			io.WriteString(idle, "CONNECT")
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- e.Shutdown(ctx) }()
			if end := h.end(t); end.Phase != PhaseHead || end.Reason != ReasonCanceled {
				t.Errorf("first end %+v, want the head-phase connection canceled", end)
			}
			io.WriteString(c, "still up")
			if got := readN(t, c, 8); got != "still up" {
				t.Errorf("echo during shutdown %q", got)
			}
			if cut {
				cancel()
			} else {
				c.Close()
			}
			err := <-done
			end := h.end(t)
			if cut && (err != context.Canceled || end.Reason != ReasonCanceled) || !cut && (err != nil || end.Reason != ReasonEOF) {
				t.Errorf("Shutdown %v, tunnel end %+v", err, end)
			}
		})
	}
}

// TestClientGone: a client that disconnects ends its connection in every
// phase.
func TestClientGone(t *testing.T) {
	echo := origin(t, nettest.Echo)
	tests := []struct {
		name    string
		send    string
		opening bool // wait for the 200 first
		relay   bool // and for an echo
		phase   Phase
	}{
		{"head", "CONNECT " + echo, false, false, PhaseHead},
		{"opening", "", true, false, PhaseOpening},
		{"relay", "", true, true, PhaseRelay},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newTestHandler()
			if !tt.relay {
				h.opening = func(*Conn, Opening) Action { return NeedMore() }
			}
			addr, _ := serve(t, h, Config{})
			var c net.Conn
			if tt.opening {
				tc := dialProxy(t, addr, echo, tt.send)
				expect200(t, tc)
				if tt.relay {
					io.WriteString(tc, "x")
					readN(t, tc, 1)
				}
				c = tc
			} else {
				c = dialRaw(t, addr)
				io.WriteString(c, tt.send)
			}
			c.Close()
			if end := h.end(t); end.Reason != ReasonEOF || end.Phase != tt.phase {
				t.Errorf("end %+v, want eof in phase %s", end, tt.phase)
			}
		})
	}
}

// TestOpeningFull: client bytes that fill the opening buffer before the
// handler decides bring EventFull, with the whole buffer, and its answer is
// carried out.
func TestOpeningFull(t *testing.T) {
	const size = OpeningBufSize + 6<<10 // more than the buffer holds
	tests := []struct {
		name       string
		full       Action
		wantOrigin int    // bytes the origin reads
		wantClient string // what the client reads after the 200
		reason     string
	}{
		{"relay", Relay(), size, "", ReasonEOF},
		{"forward part, relay the rest", Forward(100), size, "", ReasonEOF},
		{"refuse", Refuse(forbid403), 0, string(forbid403), ReasonRefused},
		{"end", EndTunnel(ReasonIdleTimeout, nil), 0, "", ReasonIdleTimeout},
		{"need more", NeedMore(), 0, "", ReasonRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan int, 1)
			o := origin(t, func(c net.Conn) {
				n, _ := io.Copy(io.Discard, c)
				got <- int(n)
			})
			var fulls []int // the buffer shown at each EventFull
			h := newTestHandler()
			h.opening = func(c *Conn, op Opening) Action {
				switch op.Event {
				case EventFull:
					fulls = append(fulls, len(op.Client))
					if len(fulls) == 1 {
						return tt.full
					}
					return Relay() // after Forward, the buffer fills again
				case EventNone:
					return NeedMore()
				}
				return Relay()
			}
			// The dial waits until all of the client's bytes and its FIN are
			// in the socket: no later edge brings the rest.
			type held struct {
				c *Conn
				a Action
			}
			pending := make(chan held, 1)
			h.head = func(c *Conn, head []byte, ev Event) Action {
				a := connectHead(head)
				if a.kind != actDial {
					return a
				}
				pending <- held{c, a}
				return Pending()
			}
			// An hour: a stall is not ended by the opening's deadline.
			addr, _ := serve(t, h, Config{HeadTimeout: time.Hour})
			c := dialProxy(t, addr, o, string(make([]byte, size)))
			c.CloseWrite()
			p := recv(t, pending, "no head")
			p.c.Resume(p.a)
			expect200(t, c)
			b, _ := io.ReadAll(c) // a reset after a refusal is fine
			if n := recv(t, got, "the origin did not finish"); n != tt.wantOrigin {
				t.Errorf("origin read %d bytes, want %d", n, tt.wantOrigin)
			}
			if string(b) != tt.wantClient {
				t.Errorf("client read %q, want %q", b, tt.wantClient)
			}
			end := h.end(t)
			if end.Reason != tt.reason || int(end.Up) != tt.wantOrigin {
				t.Errorf("end %+v, want %s with %d bytes up", end, tt.reason, tt.wantOrigin)
			}
			if len(fulls) == 0 || fulls[0] != OpeningBufSize {
				t.Errorf("EventFull with %v bytes, want first with all %d", fulls, OpeningBufSize)
			}
		})
	}
}
