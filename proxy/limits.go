package proxy

import (
	"fmt"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy/internal/httphead"
)

// blockState is the runtime state of one client block. It outlives policy
// reloads (it is keyed by the block's name), so a reload that changes a
// block's limits keeps counting the tunnels that block already has open.
type blockState struct {
	limiter    atomic.Pointer[rate.Limiter] // nil: no rate limit
	maxTunnels atomic.Int64                 // 0: no cap
	tunnels    atomic.Int64
	limits     atomic.Pointer[policy.Limits]
}

// setLimits applies a (possibly new) policy's limits. An unchanged limit keeps
// its token bucket, so a reload does not hand every client a fresh burst.
func (b *blockState) setLimits(l policy.Limits) {
	if old := b.limits.Load(); old != nil && *old == l {
		return
	}
	b.limits.Store(&l)
	b.maxTunnels.Store(int64(l.MaxTunnels))
	if l.ConnectionsPerSecond <= 0 {
		b.limiter.Store(nil)
		return
	}
	burst := l.Burst
	if burst < 1 {
		burst = max(1, int(math.Ceil(l.ConnectionsPerSecond)))
	}
	b.limiter.Store(rate.NewLimiter(rate.Limit(l.ConnectionsPerSecond), burst))
}

// allow takes one token. When the bucket is empty it returns false and how
// long until a token is due, for Retry-After. Excess is refused, never queued.
func (b *blockState) allow(now time.Time) (bool, time.Duration) {
	lim := b.limiter.Load()
	if lim == nil {
		return true, 0
	}
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// acquireTunnel counts a new tunnel against the block's max_tunnels.
func (b *blockState) acquireTunnel() bool {
	n := b.tunnels.Add(1)
	if m := b.maxTunnels.Load(); m > 0 && n > m {
		b.tunnels.Add(-1)
		return false
	}
	return true
}

func (b *blockState) releaseTunnel() { b.tunnels.Add(-1) }

// blocks maps client block names to their runtime state.
type blocks struct {
	mu sync.Mutex
	m  map[string]*blockState
}

func (bs *blocks) get(name string) *blockState {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	if bs.m == nil {
		bs.m = make(map[string]*blockState)
	}
	b := bs.m[name]
	if b == nil {
		b = new(blockState)
		bs.m[name] = b
	}
	return b
}

// takeConn counts a new client connection, on any listener, against the
// global cap. Over the cap it counts the shed connection and returns false.
func (s *Server) takeConn() bool {
	if n := s.conns.Add(1); s.cfg.MaxConnections > 0 && n > int64(s.cfg.MaxConnections) {
		s.conns.Add(-1)
		s.m.connsShed.Inc()
		return false
	}
	s.m.connsActive.Inc()
	return true
}

// releaseConn gives a connection's slot under the global cap back.
func (s *Server) releaseConn() {
	s.conns.Add(-1)
	s.m.connsActive.Dec()
}

// capListener enforces the global cap on concurrent client connections.
// Excess connections get a short 503 and are closed at once: load is shed,
// not queued. Accept keeps looping on a shed connection, because
// http.Server.Serve stops on any error Accept returns.
type capListener struct {
	net.Listener
	s *Server
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.s.takeConn() {
			shed(c)
			continue
		}
		return &clientConn{Conn: httphead.NewConn(c), s: l.s}, nil
	}
}

// shed refuses a connection over the global cap with a short 503.
func shed(c net.Conn) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write(shedResponse)
	_ = c.Close()
}

var shedResponse = func() []byte {
	const body = "azegress: too many client connections; retry in a second\n"
	return fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: text/plain; charset=utf-8\r\nX-Azegress-Reason: %s\r\nProxy-Status: %s\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		ReasonTooManyConnections, proxyStatus(proxyErrors[ReasonTooManyConnections], ReasonTooManyConnections), len(body), body)
}()

// clientConn is an accepted client connection: it tracks raw request heads
// (httphead.Conn) and gives its slot under the global cap back exactly once.
type clientConn struct {
	*httphead.Conn
	s    *Server
	once sync.Once
}

func (c *clientConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.releaseConn()
		c.s.unserved(c)
	})
	return err
}
