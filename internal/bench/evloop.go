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

// The event-loop relay is the second control of the setup and round-trip
// figures: a CONNECT relay with no goroutine per connection. Each of
// GOMAXPROCS loops owns a SO_REUSEPORT listener and an edge-triggered epoll
// set, and does everything on raw non-blocking sockets: accept, read the
// head, connect, 200, move bytes through one buffer, half-close, close. A
// name is resolved once and kept (what a DNS cache hit costs). No policy,
// no log, no limits, no timeouts. It answers the question the goroutine
// relay cannot: what does a Go proxy cost per tunnel when the Go runtime's
// goroutines, netpoller and scheduler are out of the way?

const evloopPort = 3134

// evloopMain is "evloop": serve CONNECT on -listen until SIGTERM.
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
	names := newNameCache()
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
	return &target{name: "evloop", addr: addr, proc: p, connectOnly: true}, nil
}

// nameCache resolves each destination once and keeps it: what a DNS
// cache hit costs (a lock and a map lookup).
type nameCache struct {
	mu sync.Mutex
	m  map[string]netip.AddrPort
}

func newNameCache() *nameCache { return &nameCache{m: map[string]netip.AddrPort{}} }

func (c *nameCache) lookup(hostport string) (netip.AddrPort, bool) {
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
}

type loop struct {
	ep, ln int
	names  *nameCache
	conns  map[int]*econn
	buf    []byte
	events []unix.EpollEvent
}

func newLoop(ap netip.AddrPort, names *nameCache) (*loop, error) {
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
	case stRelay:
		if ev&unix.EPOLLOUT != 0 && len(c.pending) > 0 {
			if !l.flush(c) {
				return
			}
		}
		if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.pump(c)
		}
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
		if len(f) != 3 || string(f[0]) != "CONNECT" {
			l.closeBoth(c)
			return
		}
		ap, ok := l.names.lookup(string(f[1]))
		if !ok {
			l.closeBoth(c)
			return
		}
		up, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			l.closeBoth(c)
			return
		}
		err = unix.Connect(up, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()})
		if err != nil && err != unix.EINPROGRESS {
			unix.Close(up)
			l.closeBoth(c)
			return
		}
		u := &econn{fd: up, peer: c.fd, state: stConnecting, upstream: true}
		u.head = append(u.head, c.head[i+4:]...) // early bytes for the origin
		c.head, c.peer, c.state = nil, up, stConnecting
		l.conns[up] = u
		if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, up, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(up)}); err != nil {
			l.closeBoth(c)
		}
		return
	}
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
		l.pump(p)
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
