package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"syscall"
	"time"

	"github.com/azegress/azegress/proxy/internal/httphead"
)

// The front door of the proxy listener.
//
// Most proxy connections carry one CONNECT and then a tunnel. Serving those
// through net/http costs a goroutine with a deep stack, 8 KiB of bufio
// buffers that a hijack never returns to net/http's pools, and a second
// parse of the head. So Serve reads each connection's first head itself,
// with the httphead parser that checks every request anyway, and answers a
// plain CONNECT directly: the decision, the dial, the response bodies and
// the tunnel are the same code serveConnectHTTP runs for a CONNECT net/http
// read. Anything else (plain HTTP, a head the parser flags or that is
// unusual in any way, a head larger than the first buffer, and every later
// request on a kept-alive connection) is handed to net/http unchanged, with
// the bytes already read in front. On both paths, bytes a client sends after
// its CONNECT head and before the 200 are kept and forwarded (goproxy's
// hijack, which answered CONNECTs before, dropped them).

// frontBufSize is the buffer the first head is read into. A head that does
// not fit goes to net/http, which allows up to MaxHeaderBytes.
const frontBufSize = 4 << 10

var frontBufPool = sync.Pool{New: func() any { b := make([]byte, frontBufSize); return &b }}

// handoff is the listener net/http serves: connections the front door did
// not answer itself. Closing it closes the real listener, so that
// http.Server.Shutdown stops the front door too.
type handoff struct {
	ln    net.Listener
	tls   *tlsListener // set on a ServeTLS listener
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoff(ln net.Listener) *handoff {
	return &handoff{ln: ln, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-h.conns:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoff) Close() error {
	h.once.Do(func() {
		close(h.done)
		_ = h.ln.Close()
	})
	return nil
}

func (h *handoff) Addr() net.Addr { return h.ln.Addr() }

// give hands c to net/http. It reports false if net/http stopped serving.
func (h *handoff) give(c net.Conn) bool {
	select {
	case h.conns <- c:
		return true
	case <-h.done:
		return false
	}
}

// acceptLoop accepts proxy clients on ln until h is closed, enforcing the
// global connection cap, and serves each on a goroutine of its own.
func (s *Server) acceptLoop(ln net.Listener, h *handoff) error {
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			select {
			case <-h.done:
				return nil
			default:
			}
			if retryAccept(err, &backoff) {
				continue
			}
			return err
		}
		backoff = 0
		if !s.takeConn() {
			if h.tls != nil {
				_ = c.Close() // a 503 would need a handshake first: the cost shedding saves
			} else {
				shed(c)
			}
			continue
		}
		if h.tls != nil {
			c = tls.Server(c, h.tls.config) // serveFront completes the handshake
		}
		cc := &clientConn{Conn: httphead.NewConn(c), s: s}
		if !s.trackFront(cc, true) {
			_ = cc.Close()
			continue
		}
		// Counted before the accept loop can return: Shutdown waits for the
		// loops to end before it waits for tunnels.
		s.tunnelWG.Add(1)
		go s.serveFront(cc, h)
	}
}

// retryAccept reports whether an accept loop should retry after err, having
// waited: out of file descriptors it backs off like http.Server, from 5 ms
// doubling to 1 s (*backoff is the last wait; reset it after a success).
func retryAccept(err error, backoff *time.Duration) bool {
	if !errors.Is(err, syscall.EMFILE) && !errors.Is(err, syscall.ENFILE) {
		return false
	}
	*backoff = min(max(2**backoff, 5*time.Millisecond), time.Second)
	time.Sleep(*backoff)
	return true
}

// trackFront adds cc to, or removes it from, the connections whose first
// head is being read, which Shutdown closes. It reports false once Shutdown
// has begun (the caller must close cc), or if Shutdown already closed cc.
func (s *Server) trackFront(cc *clientConn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if add {
		if s.front == nil {
			s.front = make(map[*clientConn]struct{})
		}
		s.front[cc] = struct{}{}
		return true
	}
	delete(s.front, cc)
	return true
}

// closeFront closes the connections whose first head is still being read;
// Shutdown calls it once s.closed is set.
func (s *Server) closeFront() {
	s.mu.Lock()
	front := s.front
	s.front = nil
	s.mu.Unlock()
	for cc := range front {
		_ = cc.Close()
	}
}

// serveFront reads cc's first head and answers a plain CONNECT itself;
// anything else goes to net/http. It is counted in s.tunnelWG, which it (or
// the tunnel it starts) releases.
func (s *Server) serveFront(cc *clientConn, h *handoff) {
	var cl cleanup
	defer cl.run()
	cl.add(s.tunnelWG.Done)
	_ = cc.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	if !s.handshakeTLS(cc) {
		s.trackFront(cc, false)
		_ = cc.Close()
		return
	}
	bp := frontBufPool.Get().(*[]byte)
	buf := (*bp)[:frontBufSize]
	n := 0
	var (
		head   httphead.Head
		ok     bool
		gotErr bool
	)
	for n < len(buf) {
		k, err := cc.Read(buf[n:])
		n += k
		if head, ok = cc.PeekHead(); ok {
			break
		}
		if err != nil {
			gotErr = true
			break
		}
	}
	if !s.trackFront(cc, false) || gotErr {
		// Shutdown, or the client went away or was too slow before a whole
		// head: like net/http, close without an answer (Close logs the
		// partial head).
		frontBufPool.Put(bp)
		_ = cc.Close()
		return
	}
	if ok && plainConnect(&head) {
		cc.NextHead() // the head is this request's
		var early []byte
		if head.End < int64(n) {
			early = append([]byte(nil), buf[head.End:n]...)
		}
		frontBufPool.Put(bp)
		s.serveConnect(cc, &head, early, &cl)
		return
	}
	_ = cc.SetReadDeadline(time.Time{})
	pc := &prefixConn{clientConn: cc, prefix: buf[:n], pooled: bp}
	if !h.give(pc) {
		_ = cc.Close()
	}
}

// plainConnect reports whether h is a CONNECT the front door may answer: one
// on which net/http could not have reached another verdict than the handler
// does, so that both paths refuse and allow exactly the same requests.
func plainConnect(h *httphead.Head) bool {
	return h.Err == nil && !h.Unusual && !h.Leading && h.Method == http.MethodConnect &&
		(h.Proto == "HTTP/1.1" || h.Proto == "HTTP/1.0") &&
		len(h.Host) <= 1 && len(h.ContentLength) == 0 && len(h.TransferEncoding) == 0 &&
		plainAuthority(h.Target) && (len(h.Host) == 0 || h.Host[0] == h.Target || plainAuthority(h.Host[0]))
}

// plainAuthority reports whether a is non-empty and made only of the bytes
// of host names, IP literals and ports. Anything else (percent-escapes,
// userinfo, paths) takes the net/http path, whose handler refuses it with
// the exact reason.
func plainAuthority(a string) bool {
	if a == "" {
		return false
	}
	for i := 0; i < len(a); i++ {
		c := a[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == ':' || c == '[' || c == ']' || c == '_') {
			return false
		}
	}
	return true
}

// prefixConn is a client connection handed to net/http with the bytes the
// front door already read (and fed to the head parser) in front.
type prefixConn struct {
	*clientConn
	prefix []byte
	pooled *[]byte // prefix's buffer, returned to frontBufPool once read
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if len(p.prefix) == 0 {
		return p.clientConn.Read(b)
	}
	n := copy(b, p.prefix)
	p.prefix = p.prefix[n:]
	if len(p.prefix) == 0 && p.pooled != nil {
		frontBufPool.Put(p.pooled)
		p.prefix, p.pooled = nil, nil
	}
	return n, nil
}

// unread returns, and forgets, prefix bytes net/http never read.
func (p *prefixConn) unread() []byte {
	if len(p.prefix) == 0 {
		return nil
	}
	b := append([]byte(nil), p.prefix...)
	p.prefix = nil
	return b
}
