package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/azegress/azegress/policy/host"
)

// originPool forwards plain-HTTP requests that have no body over kept-alive
// origin connections, on the handler's own goroutine. http.Transport runs two
// goroutines per connection and hands every request and response across
// channels between them; for a bodiless exchange, dropping that saved the
// proxy 10–30% of its CPU time per request (BENCHMARKS.md). Framing stays with
// net/http: Request.Write writes the request and http.ReadResponse reads the
// answer. Requests with a body, Expect or Upgrade still go through
// http.Transport.
//
// An https:// request gets a connection of its own kind: the same guarded
// dial, then a verified TLS handshake (upstreamtls.go), as on the
// Transport. A plain connection never carries an https:// request.
//
// One pool serves one client block under one policy generation, like the
// transports, so a connection is never reused under another policy.
type originPool struct {
	dial        func(ctx context.Context, fl *flow, https bool) (net.Conn, error)
	idleTimeout time.Duration // an idle connection older than this is closed

	mu     sync.Mutex
	idle   map[originKey][]*originConn // newest last
	nidle  int
	sweep  *time.Timer // armed while anything is idle
	closed bool
}

type originKey struct {
	host  host.Host
	port  uint16
	https bool // a TLS connection
}

// originConn is one origin connection. Reads go through it so that a
// response head can be cut at maxResponseHead.
type originConn struct {
	c     net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	limit int64     // bytes a read may still return
	used  time.Time // when it went idle
}

const (
	// The transports (connect.go) keep the same limits.
	originMaxIdlePerHost = 32
	originIdleTimeout    = 90 * time.Second
	maxResponseHead      = 1 << 20
	max1xxResponses      = 5 // as http.Transport
)

var errResponseHeadTooLarge = fmt.Errorf("origin response head larger than %d bytes", maxResponseHead)

func (oc *originConn) Read(p []byte) (int, error) {
	if oc.limit <= 0 {
		return 0, errResponseHeadTooLarge
	}
	if int64(len(p)) > oc.limit {
		p = p[:oc.limit]
	}
	n, err := oc.c.Read(p)
	oc.limit -= int64(n)
	return n, err
}

// errRetryable marks a failure on a reused connection before the origin
// answered anything: the origin had closed the idle connection.
type errRetryable struct{ err error }

func (e errRetryable) Error() string { return e.err.Error() }
func (e errRetryable) Unwrap() error { return e.err }

// roundTrip sends r, which has no body, to fl's destination and returns the
// response. Reading the body to its end puts the connection back; closing
// it early closes the connection.
func (p *originPool) roundTrip(r *http.Request, fl *flow) (*http.Response, error) {
	key := originKey{fl.host, fl.port, r.URL.Scheme == "https"}
	ctx := r.Context()
	for {
		oc := p.get(key)
		reused := oc != nil
		if oc == nil {
			c, err := p.dial(ctx, fl, key.https)
			if err != nil {
				return nil, err
			}
			oc = &originConn{c: c}
			oc.br = bufio.NewReaderSize(oc, 4<<10)
			oc.bw = bufio.NewWriterSize(c, 4<<10)
		}
		resp, err := oc.exchange(ctx, r)
		if err != nil {
			_ = oc.c.Close()
			var re errRetryable
			if reused && errors.As(err, &re) && ctx.Err() == nil && replayable(r) {
				continue // as http.Transport: once per stale connection
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		keep := !resp.Close && !r.Close
		if resp.Body == http.NoBody {
			p.release(key, oc, keep)
			return resp, nil
		}
		resp.Body = &originBody{rc: resp.Body, p: p, key: key, oc: oc, keep: keep}
		return resp, nil
	}
}

// replayable reports whether a bodiless request may be sent again after a
// reused connection failed without an answer: http.Transport's rule.
func replayable(r *http.Request) bool {
	if r.Method == "" || replayableMethod(r.Method) {
		return true
	}
	_, a := r.Header["Idempotency-Key"]
	_, b := r.Header["X-Idempotency-Key"]
	return a || b
}

// exchange writes r and reads its final response head. If ctx ends first,
// the connection's deadline cuts the wait.
func (oc *originConn) exchange(ctx context.Context, r *http.Request) (*http.Response, error) {
	stop := context.AfterFunc(ctx, func() { _ = oc.c.SetDeadline(time.Unix(1, 0)) })
	resp, err := oc.exchangeHead(r)
	if !stop() {
		return nil, ctx.Err() // the caller closes the connection
	}
	return resp, err
}

func (oc *originConn) exchangeHead(r *http.Request) (*http.Response, error) {
	if err := r.Write(oc.bw); err != nil {
		return nil, errRetryable{err}
	}
	if err := oc.bw.Flush(); err != nil {
		return nil, errRetryable{err}
	}
	oc.limit = maxResponseHead
	if _, err := oc.br.Peek(1); err != nil {
		return nil, errRetryable{err}
	}
	for num1xx := 0; ; {
		resp, err := http.ReadResponse(oc.br, r)
		if err != nil {
			return nil, err
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			return nil, errors.New("origin switched protocols, which the request did not ask for")
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			if num1xx++; num1xx > max1xxResponses {
				return nil, errors.New("origin sent too many 1xx responses")
			}
			continue // informational: the final response follows
		}
		oc.limit = math.MaxInt64
		return resp, nil
	}
}

// get returns an idle connection to key that is still open, or nil.
func (p *originPool) get(key originKey) *originConn {
	for {
		p.mu.Lock()
		l := p.idle[key]
		if len(l) == 0 {
			p.mu.Unlock()
			return nil
		}
		oc := l[len(l)-1]
		if len(l) == 1 {
			delete(p.idle, key) // a pool that saw many destinations keeps no empty lists
		} else {
			l[len(l)-1] = nil
			p.idle[key] = l[:len(l)-1]
		}
		p.nidle--
		p.mu.Unlock()
		// An origin may have closed the connection, or sent bytes nobody
		// asked for, while it sat idle: a non-blocking peek sees both.
		if time.Since(oc.used) < p.idleTimeout && oc.br.Buffered() == 0 && oc.idleOpen() {
			return oc
		}
		_ = oc.c.Close()
	}
}

// idleOpen reports whether an idle connection is still open with nothing
// to read. A TLS connection may also hold records it already took off the
// socket, out of the socket peek's sight: a read with an expired deadline
// returns them, and otherwise fails at once without reading the socket.
func (oc *originConn) idleOpen() bool {
	tc, ok := oc.c.(*tls.Conn)
	if !ok {
		return idleOpen(oc.c)
	}
	if !idleOpen(tc.NetConn()) {
		return false
	}
	_ = tc.SetReadDeadline(time.Unix(1, 0))
	var b [1]byte
	n, err := tc.Read(b[:]) // a timeout leaves a tls.Conn usable
	_ = tc.SetReadDeadline(time.Time{})
	return n == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

// release puts oc back in the pool, or closes it.
func (p *originPool) release(key originKey, oc *originConn, keep bool) {
	if !keep {
		_ = oc.c.Close()
		return
	}
	oc.used = time.Now()
	p.mu.Lock()
	if p.closed || len(p.idle[key]) >= originMaxIdlePerHost {
		p.mu.Unlock()
		_ = oc.c.Close()
		return
	}
	if p.idle == nil {
		p.idle = make(map[originKey][]*originConn)
	}
	p.idle[key] = append(p.idle[key], oc)
	p.nidle++
	if p.sweep == nil {
		p.sweep = time.AfterFunc(p.idleTimeout/3, p.closeExpired)
	}
	p.mu.Unlock()
}

// closeExpired closes connections idle for longer than p.idleTimeout,
// and runs again while any are left.
func (p *originPool) closeExpired() {
	var expired []*originConn
	p.mu.Lock()
	now := time.Now()
	for k, l := range p.idle {
		keep := l[:0]
		for _, oc := range l {
			if now.Sub(oc.used) >= p.idleTimeout {
				expired = append(expired, oc)
			} else {
				keep = append(keep, oc)
			}
		}
		clear(l[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, k)
		} else {
			p.idle[k] = keep
		}
	}
	p.nidle -= len(expired)
	if p.nidle > 0 && !p.closed {
		p.sweep.Reset(p.idleTimeout / 3)
	} else {
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, oc := range expired {
		_ = oc.c.Close()
	}
}

// closeIdle closes every idle connection, and makes later releases close
// theirs: the generation is over.
func (p *originPool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.nidle, p.closed = nil, 0, true
	if p.sweep != nil {
		p.sweep.Stop()
		p.sweep = nil
	}
	p.mu.Unlock()
	for _, l := range idle {
		for _, oc := range l {
			_ = oc.c.Close()
		}
	}
}

// originBody puts its connection back once read to the end.
type originBody struct {
	rc   io.ReadCloser
	p    *originPool
	key  originKey
	oc   *originConn
	keep bool
	done bool
}

func (b *originBody) Read(buf []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(buf)
	if err != nil {
		b.done = true
		b.p.release(b.key, b.oc, err == io.EOF && b.keep)
	}
	return n, err
}

// Close before the end closes the connection: what is left of the body
// would be read as the next response.
func (b *originBody) Close() error {
	if !b.done {
		b.done = true
		_ = b.oc.c.Close()
	}
	return nil
}
