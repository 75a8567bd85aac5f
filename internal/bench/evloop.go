//go:build linux

package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/proxy"
)

// The event-loop relay is the second control of the setup, round-trip and
// plain-HTTP figures: a proxy with no goroutine per connection. Each of
// GOMAXPROCS loops owns a SO_REUSEPORT listener and an edge-triggered epoll
// set, and does everything on raw non-blocking sockets: accept, read the
// head, connect, 200, move bytes through one buffer, half-close, close;
// for plain HTTP, forward kept-alive GETs to a kept-alive origin. A
// name is resolved once and kept (what a DNS cache hit costs). No policy,
// no log, no limits, no timeouts. It answers the question the goroutine
// relay cannot: what does a Go proxy cost per tunnel when the Go runtime's
// goroutines, netpoller and scheduler are out of the way?

const evloopPort = 3134

// evloopMain is "evloop": serve CONNECT and plain GETs on -listen until SIGTERM.
func evloopMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("evloop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", fmt.Sprintf("127.0.0.1:%d", evloopPort), "`address` to listen on")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ap, err := netip.ParseAddrPort(*addr)
	if err != nil || !ap.Addr().Is4() {
		fmt.Fprintf(stderr, "evloop: -listen: an IPv4 address and port, not %q\n", *addr)
		return 2
	}
	proxy.RaiseFileLimit()
	names := NewNameCache()
	for range runtime.GOMAXPROCS(0) {
		l, err := newLoop(ap, names)
		if err != nil {
			fmt.Fprintf(stderr, "evloop: %v\n", err)
			return 1
		}
		go l.run()
	}
	fmt.Fprintln(stdout, "ready")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	<-ctx.Done()
	return 0
}

// startEvloop runs the event-loop relay in a process of its own.
func startEvloop(dir, self string) (*target, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", evloopPort)
	p, err := startProc("evloop", filepath.Join(dir, "evloop.log"), self, "evloop", "-listen", addr)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(addr, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &target{name: "evloop", addr: addr, proc: p}, nil
}

// enginePort is the engine target's: proxy/internal/evloop/benchrelay, a
// bare relay on azegress's event-loop engine, run from its own binary (the
// engine is internal to the proxy).
const enginePort = 3135

// startEngine runs benchrelay's binary bin.
func startEngine(dir, bin string) (*target, error) {
	addr := fmt.Sprintf("127.0.0.1:%d", enginePort)
	p, err := startProc("engine", filepath.Join(dir, "engine.log"), bin, "-listen", addr)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(addr, 20*time.Second); err != nil {
		p.stop(5 * time.Second)
		return nil, err
	}
	return &target{name: "engine", addr: addr, proc: p, connectOnly: true}, nil
}

// NameCache resolves each destination once and keeps it: what a DNS
// cache hit costs (a lock and a map lookup). The controls share it (the
// engine's bare relay, proxy/internal/evloop/benchrelay, too).
type NameCache struct {
	mu sync.Mutex
	m  map[string]netip.AddrPort
}

// NewNameCache returns an empty NameCache.
func NewNameCache() *NameCache { return &NameCache{m: map[string]netip.AddrPort{}} }

// Lookup returns hostport's first IPv4 address and port, resolving it the
// first time.
func (c *NameCache) Lookup(hostport string) (netip.AddrPort, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ap, ok := c.m[hostport]; ok {
		return ap, true
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return netip.AddrPort{}, false
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, false
	}
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip4", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, false
	}
	ap := netip.AddrPortFrom(addrs[0], uint16(p))
	c.m[hostport] = ap
	return ap, true
}

// Connection states.
const (
	stHead       = iota // reading the client's CONNECT head
	stConnecting        // upstream connect in progress
	stRelay             // moving bytes
	stHTTP              // plain HTTP, kept alive: a client and its origin
)

// econn is one side of a tunnel (or a client still sending its head).
type econn struct {
	fd, peer int
	state    int
	upstream bool   // fd is the connection to the origin
	head     []byte // the head so far (stHead); bytes after it (stConnecting)
	pending  []byte // bytes read from peer that fd would not take yet
	rdDone   bool   // fd sent EOF (and peer was half-closed)
	blocked  bool   // fd has bytes to read that wait for peer's pending to drain

	// Plain HTTP: a client's unanswered bytes and whether its request is
	// at the origin (busy); an origin's connect in progress, its response
	// head so far, and the body bytes still to come (-1: in the head).
	busy, connecting bool
	left             int
}

type loop struct {
	ep, ln int
	names  *NameCache
	conns  map[int]*econn
	buf    []byte
	events []unix.EpollEvent
}

func newLoop(ap netip.AddrPort, names *NameCache) (*loop, error) {
	ln, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	for _, o := range []int{unix.SO_REUSEADDR, unix.SO_REUSEPORT} {
		if err := unix.SetsockoptInt(ln, unix.SOL_SOCKET, o, 1); err != nil {
			return nil, err
		}
	}
	if err := unix.Bind(ln, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		return nil, err
	}
	if err := unix.Listen(ln, 4096); err != nil {
		return nil, err
	}
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, ln, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(ln)}); err != nil {
		return nil, err
	}
	return &loop{ep: ep, ln: ln, names: names, conns: map[int]*econn{}, buf: make([]byte, 64<<10), events: make([]unix.EpollEvent, 256)}, nil
}

func (l *loop) run() {
	runtime.LockOSThread()
	for {
		n, err := unix.EpollWait(l.ep, l.events, -1)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			panic(err)
		}
		for _, ev := range l.events[:n] {
			fd := int(ev.Fd)
			if fd == l.ln {
				l.accept()
				continue
			}
			c := l.conns[fd]
			if c == nil {
				continue // closed by an earlier event of this batch
			}
			l.handle(c, ev.Events)
		}
	}
}

func (l *loop) accept() {
	for {
		fd, _, err := unix.Accept4(l.ln, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return // EAGAIN, or an error the next readiness retries
		}
		noDelay(fd)
		c := &econn{fd: fd, peer: -1, state: stHead}
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd)}); err != nil {
			unix.Close(fd)
			continue
		}
		l.conns[fd] = c
		// The head may be there already (the client wrote it before the
		// accept): edge-triggered registration reports it, so wait.
	}
}

func (l *loop) handle(c *econn, ev uint32) {
	switch c.state {
	case stHead:
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.readHead(c)
		}
	case stConnecting: // the client side waits; its bytes are read after the 200
		if c.upstream && ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.connected(c)
		}
	case stRelay, stHTTP:
		if c.connecting {
			if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) == 0 {
				return
			}
			if e, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
				l.closeBoth(c)
				return
			}
			c.connecting = false
		}
		if ev&unix.EPOLLOUT != 0 && len(c.pending) > 0 {
			if !l.flush(c) {
				return
			}
		}
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.readable(c)
		}
	}
}

// readable moves what c has to read, as its state says.
func (l *loop) readable(c *econn) {
	switch {
	case c.state == stRelay:
		l.pump(c)
	case c.upstream:
		l.fromOrigin(c)
	default:
		l.fromClient(c)
	}
}

var crlf2 = []byte("\r\n\r\n")

func (l *loop) readHead(c *econn) {
	for {
		n, err := unix.Read(c.fd, l.buf)
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 || len(c.head)+n > 4096 {
			l.closeBoth(c)
			return
		}
		c.head = append(c.head, l.buf[:n]...)
		i := bytes.Index(c.head, crlf2)
		if i < 0 {
			continue
		}
		line, _, _ := bytes.Cut(c.head, []byte("\r\n"))
		f := bytes.Fields(line)
		if len(f) == 3 && string(f[0]) != "CONNECT" {
			c.state = stHTTP
			l.nextRequest(c)
			return
		}
		if len(f) != 3 {
			l.closeBoth(c)
			return
		}
		u := l.dial(c, string(f[1]))
		if u == nil {
			return
		}
		u.state, u.connecting = stConnecting, false
		u.head = append(u.head, c.head[i+4:]...) // early bytes for the origin
		c.head, c.state = nil, stConnecting
		return
	}
}

// dial connects a new origin socket for c to hostport and pairs the two;
// on failure it closes c and returns nil.
func (l *loop) dial(c *econn, hostport string) *econn {
	ap, ok := l.names.Lookup(hostport)
	if !ok {
		l.closeBoth(c)
		return nil
	}
	up, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		l.closeBoth(c)
		return nil
	}
	noDelay(up)
	err = unix.Connect(up, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(up)
		l.closeBoth(c)
		return nil
	}
	u := &econn{fd: up, peer: c.fd, state: stHTTP, upstream: true, connecting: true, left: -1}
	c.peer = up
	l.conns[up] = u
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, up, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(up)}); err != nil {
		l.closeBoth(c)
		return nil
	}
	return u
}

var established200 = []byte("HTTP/1.1 200 Connection established\r\n\r\n")

// connected finishes u's connect: 200 to the client, then relay.
func (l *loop) connected(u *econn) {
	if e, err := unix.GetsockoptInt(u.fd, unix.SOL_SOCKET, unix.SO_ERROR); err != nil || e != 0 {
		l.closeBoth(u)
		return
	}
	c := l.conns[u.peer]
	if n, err := unix.Write(c.fd, established200); err != nil || n != len(established200) {
		l.closeBoth(u)
		return
	}
	u.state, c.state = stRelay, stRelay
	if len(u.head) > 0 {
		u.pending, u.head = u.head, nil
		if !l.flush(u) {
			return
		}
	}
	// Bytes the client sent after the 200 arrived while it was in
	// stConnecting: its edge is spent, so read now.
	l.pump(c)
	if l.conns[u.fd] != nil {
		l.pump(u)
	}
}

// pump moves what c has to read to its peer until c would block.
func (l *loop) pump(c *econn) {
	p := l.conns[c.peer]
	if c.rdDone || p == nil {
		return
	}
	if len(p.pending) > 0 {
		c.blocked = true
		return
	}
	for {
		n, err := unix.Read(c.fd, l.buf)
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			l.closeBoth(c)
			return
		}
		if n == 0 {
			c.rdDone = true
			if p.rdDone {
				l.closeBoth(c)
				return
			}
			unix.Shutdown(p.fd, unix.SHUT_WR)
			return
		}
		w, err := unix.Write(p.fd, l.buf[:n])
		if err != nil && err != unix.EAGAIN {
			l.closeBoth(c)
			return
		}
		if w < 0 {
			w = 0
		}
		if w < n {
			p.pending = append(p.pending[:0], l.buf[w:n]...)
			c.blocked = true
			return
		}
	}
}

// flush writes c's pending bytes; it reports whether c is still open.
func (l *loop) flush(c *econn) bool {
	for len(c.pending) > 0 {
		w, err := unix.Write(c.fd, c.pending)
		if err == unix.EAGAIN {
			return true
		}
		if err != nil {
			l.closeBoth(c)
			return false
		}
		c.pending = c.pending[w:]
	}
	c.pending = nil
	if p := l.conns[c.peer]; p != nil && p.blocked {
		p.blocked = false
		l.readable(p)
	}
	return l.conns[c.fd] != nil
}

func (l *loop) closeBoth(c *econn) {
	for _, fd := range []int{c.fd, c.peer} {
		if fd >= 0 && l.conns[fd] != nil {
			delete(l.conns, fd)
			unix.Close(fd)
		}
	}
}

// Plain HTTP, enough for the benchmark's keep-alive GETs: one request at
// a time per client, absolute-form target rewritten to origin-form, no
// request bodies, responses framed by Content-Length. Anything else closes
// the connection.

// fromClient reads a kept-alive client's next request bytes.
func (l *loop) fromClient(c *econn) {
	for {
		n, err := unix.Read(c.fd, l.buf)
		if err == unix.EAGAIN {
			break
		}
		if err != nil || n == 0 || len(c.head)+n > 64<<10 {
			l.closeBoth(c)
			return
		}
		c.head = append(c.head, l.buf[:n]...)
	}
	l.nextRequest(c)
}

var (
	httpPrefix = []byte("http://")
	clHeader   = []byte("\r\ncontent-length:")
	teHeader   = []byte("\r\ntransfer-encoding:")
)

// nextRequest sends c's next whole request to its origin, unless one is
// still being answered.
func (l *loop) nextRequest(c *econn) {
	i := bytes.Index(c.head, crlf2)
	if c.busy || i < 0 {
		return
	}
	head := c.head[:i+4]
	lower := bytes.ToLower(head)
	line, rest, _ := bytes.Cut(head, []byte("\r\n"))
	f := bytes.Fields(line)
	if len(f) != 3 || !bytes.HasPrefix(f[1], httpPrefix) || bytes.Contains(lower, clHeader) || bytes.Contains(lower, teHeader) {
		l.closeBoth(c)
		return
	}
	hostport, path, _ := bytes.Cut(f[1][len(httpPrefix):], []byte("/"))
	u := l.conns[c.peer]
	if u == nil {
		if u = l.dial(c, string(hostport)); u == nil {
			return
		}
	}
	req := make([]byte, 0, len(head)+8)
	req = append(req, f[0]...)
	req = append(req, " /"...)
	req = append(req, path...)
	req = append(req, ' ')
	req = append(req, f[2]...)
	req = append(req, "\r\n"...)
	req = append(req, rest...)
	c.head = append(c.head[:0], c.head[i+4:]...)
	c.busy = true
	l.send(u, req)
	if !u.connecting && len(u.pending) > 0 {
		l.flush(u)
	}
}

// noDelay turns Nagle's algorithm off on fd, as Go does on every TCP
// socket: a response head and its body written one after the other would
// otherwise wait for the client's delayed ACK.
func noDelay(fd int) { _ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) }

// send writes b to c, keeping what c does not take yet in c.pending.
func (l *loop) send(c *econn, b []byte) {
	if len(c.pending) == 0 && !c.connecting {
		w, err := unix.Write(c.fd, b)
		if err != nil && err != unix.EAGAIN {
			w = len(b) // the next read or write on c finds the error
		}
		b = b[max(w, 0):]
	}
	c.pending = append(c.pending, b...)
}

// fromOrigin moves an origin's response to its client.
func (l *loop) fromOrigin(u *econn) {
	c := l.conns[u.peer]
	if c == nil {
		return
	}
	for len(c.pending) == 0 {
		n, err := unix.Read(u.fd, l.buf)
		if err == unix.EAGAIN {
			return
		}
		if err != nil || n == 0 {
			l.closeBoth(u)
			return
		}
		data := l.buf[:n]
		for len(data) > 0 {
			if u.left < 0 {
				u.head = append(u.head, data...)
				data = nil
				i := bytes.Index(u.head, crlf2)
				if i < 0 {
					continue
				}
				lower := bytes.ToLower(u.head[:i+2])
				j := bytes.Index(lower, clHeader)
				if j < 0 {
					l.closeBoth(u)
					return
				}
				v, _, _ := bytes.Cut(lower[j+len(clHeader):], []byte("\r\n"))
				cl, err := strconv.Atoi(string(bytes.TrimSpace(v)))
				if err != nil || cl < 0 {
					l.closeBoth(u)
					return
				}
				l.send(c, u.head[:i+4])
				data, u.left = u.head[i+4:], cl
				u.head = nil
			}
			k := min(u.left, len(data))
			l.send(c, data[:k])
			u.left -= k
			data = data[k:]
			if u.left == 0 {
				if len(data) > 0 {
					l.closeBoth(u) // bytes after the response: not for this control
					return
				}
				u.left, c.busy = -1, false
				l.nextRequest(c)
				if l.conns[u.fd] == nil {
					return
				}
			}
		}
	}
	u.blocked = true
}
