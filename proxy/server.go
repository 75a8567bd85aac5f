package proxy

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elazarl/goproxy"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/learn"
	"github.com/azegress/azegress/proxy/internal/dnscache"
	"github.com/azegress/azegress/proxy/internal/evloop"
)

// Resolver looks up the addresses of a name. *net.Resolver implements it.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Observer receives policy decisions; see Config.Observer.
type Observer interface {
	Observe(c *policy.Client, o learn.Observation, now time.Time)
}

// Config is the proxy's configuration: plain data plus its dependencies. It is
// not modified after New.
type Config struct {
	// Policy is the policy to enforce at start. Required; replace it later
	// with (*Server).SetPolicy.
	Policy *policy.Policy
	// Logger receives one record per decision. If nil, nothing is logged.
	Logger *slog.Logger
	// Registerer receives the proxy's metrics. If nil, metrics are kept but
	// not registered anywhere.
	Registerer prometheus.Registerer
	// Engine serves the explicit listener (Serve) on the event-loop engine
	// (proxy/internal/evloop, engine.go): a plain CONNECT is decided,
	// dialed, checked and relayed with no goroutine per connection;
	// anything else goes to net/http as on the goroutine path. It needs
	// Linux and the default Dial; elsewhere, or with Config.Dial set, it is
	// ignored.
	Engine bool
	// engineDial, if set, sees every address the engine is told to dial
	// and returns the one it dials instead (tests, which see and redirect
	// the goroutine path's dials through Dial). With it, the engine runs
	// even though Dial is set.
	engineDial func(netip.AddrPort) netip.AddrPort
	// Resolver resolves destination names. If nil, Go's resolver behind a
	// cache that keeps each answer for its DNS TTL, bounded by the DNSCache
	// fields (proxy/internal/dnscache).
	Resolver Resolver
	// DNSCacheSize is the most names the cache keeps. If zero, 10,000; if
	// negative, there is no cache and net.DefaultResolver resolves every
	// destination.
	DNSCacheSize int
	// DNSCacheMaxTTL caps how long the cache keeps an answer, whatever its
	// TTL. If zero, 1h.
	DNSCacheMaxTTL time.Duration
	// DNSCacheNegativeTTL caps how long the cache keeps "no such host". If
	// zero, 1m; if negative, it is not kept.
	DNSCacheNegativeTTL time.Duration
	// DNSDial, when Resolver is nil, connects Go's resolver to the DNS
	// server it chose from resolv.conf (tests point it at their own). If
	// nil, a net.Dialer.
	DNSDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Dial connects to a checked IP:port. If nil, a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// DialTimeout bounds name resolution plus connecting, and separately
	// the TLS handshake of an https:// request. If zero, 10s.
	DialTimeout time.Duration
	// UpstreamRootCAs are the CAs trusted for the certificates of the
	// destinations of https:// requests, which the proxy forwards over
	// verified TLS. If nil, the system roots (on Linux, SSL_CERT_FILE and
	// SSL_CERT_DIR override them).
	UpstreamRootCAs *x509.CertPool
	// ReadHeaderTimeout bounds how long a client may take to send a request
	// head. If zero, 10s.
	ReadHeaderTimeout time.Duration
	// ClientIdleTimeout closes kept-alive client connections with no request
	// in flight. If zero, 2m.
	ClientIdleTimeout time.Duration
	// TunnelIdleTimeout closes a tunnel when no byte moved either way for
	// this long. If zero, tunnels never time out.
	TunnelIdleTimeout time.Duration
	// MaxConnections caps concurrent client connections; excess ones get a
	// 503 at once. If zero, there is no cap.
	MaxConnections int
	// QuietAllowed turns off the log record written when an allowed tunnel
	// closes or an allowed request completes. Denials are always logged.
	QuietAllowed bool
	// Observer, if non-nil, is told of every policy decision about a known
	// destination (learning mode's record). It must be fast and safe for
	// concurrent use; *learn.Recorder is.
	Observer Observer
	// TLSCertFile and TLSKeyFile are the PEM certificate chain (leaf first)
	// and private key that ServeTLS listeners present. New loads them and
	// fails on a pair that does not load or has expired; Reload loads them
	// again, and keeps the pair being served if the new one fails. If empty,
	// there is no TLS listener.
	TLSCertFile, TLSKeyFile string
	// OwnAddrs are further addresses of this process (the metrics listener)
	// that no client may reach through the proxy. The listeners passed to
	// Serve, ServeTLS, ServeTransparentTLS and ServeTransparentHTTP are
	// added automatically.
	OwnAddrs []netip.AddrPort
	// EntraClient fetches the signing keys of the policy's entra block
	// (the tenant's OpenID configuration documents and key sets, from its
	// authority). If nil, a client that connects directly: HTTPS_PROXY and
	// the like are ignored, as for every connection the proxy makes.
	EntraClient *http.Client
}

// Server is an HTTP forward proxy that enforces a policy. It does not listen
// on its own: call Serve with listeners made by the caller.
type Server struct {
	cfg Config
	log *slog.Logger
	m   *metrics
	gp  *goproxy.ProxyHttpServer
	hs  *http.Server

	flowJSON *LogWriter // where logFlow writes the per-flow records itself; nil: through log

	gen      atomic.Pointer[generation]
	reloadMu sync.Mutex // one SetPolicy or Reload (load included) at a time
	blocks   blocks
	conns    atomic.Int64 // client connections on every listener, for MaxConnections

	mu  sync.Mutex
	own []netip.AddrPort // guarded by mu

	// Tunnels are hijacked out of http.Server, so its Shutdown does not see
	// them: they are counted here and cancelled through tunnelCtx.
	tunnelWG     sync.WaitGroup
	tunnelCtx    context.Context
	cancelTunnel context.CancelFunc
	draining     atomic.Bool

	tls *tlsListener // ServeTLS's certificate and configuration; nil without Config.TLSCertFile

	// Transparent listeners (transparent.go).
	ths      *http.Server   // serves ServeTransparentHTTP; guarded by mu
	tlsLns   []net.Listener // ServeTransparentTLS listeners; guarded by mu
	closed   bool           // Shutdown began; guarded by mu
	acceptWG sync.WaitGroup // Serve and ServeTransparentTLS accept loops

	// Proxy connections whose first head the front door is reading
	// (front.go); Shutdown closes them. Guarded by mu.
	front         map[*clientConn]struct{}
	frontConnects atomic.Int64 // CONNECTs the front door answered, for tests

	// The event-loop engine (engine.go), with Config.Engine: nil otherwise.
	engine        *evloop.Engine
	engineHandoff atomic.Pointer[handoff] // what the engine hands to net/http, once Serve set it

	ids identities // the entra block's key cache and validator (identity.go)
}

// generation is one loaded policy with the upstream transports dialed under
// it. A reload starts a new generation, so a pooled upstream connection is
// never reused under a policy other than the one that checked it.
type generation struct {
	pol   *policy.Policy
	entra *entraState // nil without an entra block

	mu          sync.Mutex
	transports  map[string]*http.Transport // by client block name
	originPools map[string]*originPool     // by client block name

	allowedMu sync.RWMutex
	allowed   map[allowedKey]allowedCounters // countAllowed's, once asked for
}

// New validates cfg and returns a Server ready to Serve. If the policy has
// an entra block, New starts loading and refreshing the tenant's signing
// keys in the background; Shutdown stops that.
func New(cfg Config) (*Server, error) {
	if cfg.Policy == nil {
		return nil, errors.New("proxy: Config.Policy is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	ownDial := cfg.Dial != nil // the engine dials itself: not with a Dial of the caller's
	if cfg.Dial == nil {
		cfg.Dial = upstreamDialer.DialContext
	}
	if cfg.ReadHeaderTimeout == 0 {
		cfg.ReadHeaderTimeout = 10 * time.Second
	}
	if cfg.ClientIdleTimeout == 0 {
		cfg.ClientIdleTimeout = 2 * time.Minute
	}
	if cfg.DialTimeout < 0 || cfg.ReadHeaderTimeout < 0 || cfg.TunnelIdleTimeout < 0 || cfg.MaxConnections < 0 || cfg.DNSCacheMaxTTL < 0 {
		return nil, errors.New("proxy: timeouts, DNSCacheMaxTTL and MaxConnections must not be negative")
	}
	if (cfg.TLSCertFile == "") != (cfg.TLSKeyFile == "") {
		return nil, errors.New("proxy: Config.TLSCertFile and Config.TLSKeyFile go together")
	}
	if cfg.Resolver == nil {
		cfg.Resolver = newDNSResolver(cfg)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, flowJSON: jsonLogWriter(cfg.Logger), m: newMetrics(cfg.Registerer)}
	if cfg.TLSCertFile != "" {
		t, err := newTLSListener(cfg.TLSCertFile, cfg.TLSKeyFile, cfg.Registerer)
		if err != nil {
			return nil, err
		}
		s.tls = t
	}
	s.registerExpiryMetrics(cfg.Registerer)
	if cfg.EntraClient == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.Proxy = nil
		s.cfg.EntraClient = &http.Client{Transport: tr}
	}
	s.ids = identities{client: s.cfg.EntraClient, log: cfg.Logger}
	cfg.Registerer.MustRegister(identityCollector{&s.ids})
	if cfg.Engine && (!ownDial || cfg.engineDial != nil) {
		cache, _ := cfg.Resolver.(*dnscache.Cache)
		e, err := evloop.New(evloop.Config{Handler: &engineHandler{s: s, cache: cache},
			HeadTimeout: cfg.ReadHeaderTimeout, DialTimeout: cfg.DialTimeout, IdleTimeout: cfg.TunnelIdleTimeout,
			ClientIdleTimeout: cfg.ClientIdleTimeout, OriginIdleTimeout: originIdleTimeout,
			KeepAliveIdle: upstreamKeepAliveIdle})
		if err == nil {
			s.engine = e
		} else if !errors.Is(err, evloop.ErrUnsupported) {
			return nil, err
		}
	}
	s.cfg.Resolver = origDstResolver{Resolver: cfg.Resolver, s: s}
	s.own = append(s.own, cfg.OwnAddrs...)
	s.tunnelCtx, s.cancelTunnel = context.WithCancel(context.Background())
	s.gp = s.newGoproxy()
	s.hs = &http.Server{
		Handler:           http.HandlerFunc(s.serveHTTP),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.ClientIdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if p, ok := c.(*prefixConn); ok {
				c = p.clientConn
			}
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	if err := s.SetPolicy(cfg.Policy); err != nil {
		return nil, err
	}
	s.m.reloadOK.Set(1)
	s.m.reloadOKTime.SetToCurrentTime()
	return s, nil
}

type connKey struct{}

// Policy returns the policy being enforced.
func (s *Server) Policy() *policy.Policy { return s.gen.Load().pol }

// SetPolicy replaces the policy. Requests already decided, and open tunnels,
// keep running; every later request is decided under p. It fails, keeping
// the policy being served, only if p's entra block cannot be put to use.
func (s *Server) SetPolicy(p *policy.Policy) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return s.setPolicy(p)
}

func (s *Server) setPolicy(p *policy.Policy) error {
	ent, err := s.ids.prepare(p)
	if err != nil {
		return fmt.Errorf("proxy: %w", err)
	}
	for _, c := range p.Clients() {
		s.blocks.get(c.Name).setLimits(c.Limits)
	}
	old := s.gen.Swap(&generation{pol: p, entra: ent})
	s.ids.commit(ent)
	if ent != nil {
		s.m.authResultsAtZero()
	}
	if old != nil {
		old.closeIdle()
		if s.engine != nil {
			s.engine.CloseIdle() // the loops' origins, kept under the old policy
		}
	}
	s.m.policyInfo.WithLabelValues(p.SHA256()).Set(1)
	if old != nil && old.pol.SHA256() != p.SHA256() {
		s.m.policyInfo.DeleteLabelValues(old.pol.SHA256())
	}
	s.m.rules.Set(float64(p.RuleCount()))
	s.m.clientBlocks.Set(float64(len(p.Clients())))
	s.warnExpiring(p, time.Now())
	return nil
}

func (g *generation) closeIdle() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, t := range g.transports {
		t.CloseIdleConnections()
	}
	for _, p := range g.originPools {
		p.closeIdle()
	}
}

// Serve accepts proxy clients on ln until Shutdown. It returns nil after a
// Shutdown and the listener's error otherwise.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, nil) }

// serve is Serve, and with t ServeTLS.
func (s *Server) serve(ln net.Listener, t *tlsListener) error {
	s.addOwn(ln.Addr())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.acceptWG.Add(1)
	s.mu.Unlock()
	defer s.acceptWG.Done()

	if tl, ok := ln.(*net.TCPListener); ok && t == nil && s.engine != nil {
		return s.serveEngine(tl)
	}
	h := newHandoff(ln)
	h.tls = t
	herr := make(chan error, 1)
	go func() {
		herr <- s.hs.Serve(h)
		_ = h.Close() // stops the front door if net/http stopped on its own
	}()
	err := s.acceptLoop(ln, h)
	_ = h.Close()
	if e := <-herr; errors.Is(e, http.ErrServerClosed) {
		return nil
	} else if err == nil && !errors.Is(e, net.ErrClosed) {
		err = e
	}
	return err
}

// serveEngine is serve on the event-loop engine: the engine accepts on ln,
// and net/http serves what it hands off. The first listener's handoff
// serves the hand-offs of every listener.
func (s *Server) serveEngine(ln *net.TCPListener) error {
	h := newHandoff(ln)
	first := s.engineHandoff.CompareAndSwap(nil, h)
	if !first {
		h = s.engineHandoff.Load()
	}
	herr := make(chan error, 1)
	if first {
		go func() { herr <- s.hs.Serve(h) }()
	}
	err := s.engine.Serve(ln) // returns at Shutdown, with ErrClosed
	if errors.Is(err, evloop.ErrClosed) {
		err = nil
	}
	_ = ln.Close()
	if first {
		_ = h.Close()
		if e := <-herr; err == nil && e != nil && !errors.Is(e, http.ErrServerClosed) && !errors.Is(e, net.ErrClosed) {
			err = e
		}
	}
	return err
}

// Ready reports whether the server should get new work: it is not
// draining, and the signing keys of the policy's entra block, if any, have
// loaded (Readiness says why not).
func (s *Server) Ready() bool {
	ok, _ := s.Readiness()
	return ok
}

// Shutdown stops accepting connections, lets requests in flight finish and
// waits for open tunnels to close until ctx is done; then it closes the
// tunnels still open. It returns once every tunnel has ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.m.draining.Set(1)
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.closeFront()
	terr := make(chan error, 1)
	go func() { terr <- s.shutdownTransparent(ctx) }()
	eerr := make(chan error, 1)
	go func() {
		if s.engine == nil {
			eerr <- nil
			return
		}
		eerr <- s.engine.Shutdown(ctx) // cuts its tunnels when ctx is done
	}()
	err := s.hs.Shutdown(ctx)
	if e := <-terr; err == nil {
		err = e
	}
	if e := <-eerr; err == nil {
		err = e
	}
	done := make(chan struct{})
	go func() { s.tunnelWG.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.cancelTunnel()
		<-done
	}
	s.cancelTunnel()
	s.ids.stop()
	s.gen.Load().closeIdle()
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		err = nil // in-flight plain-HTTP requests were cut at the deadline, like tunnels
		_ = s.hs.Close()
	}
	if err != nil {
		return fmt.Errorf("proxy: shutdown: %w", err)
	}
	return nil
}

// isSelf reports whether ip:port is one of the proxy's own listeners.
func (s *Server) isSelf(ip netip.Addr, port uint16) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.own {
		if o.Port() != port {
			continue
		}
		oa := o.Addr().Unmap()
		if oa == ip || ip.IsUnspecified() {
			return true
		}
		if oa.IsUnspecified() && (ip.IsLoopback() || isLocalIP(ip)) {
			return true
		}
		if oa.IsLoopback() && ip.IsLoopback() {
			return true // 127.0.0.2 reaches a 127.0.0.1 listener's host too
		}
	}
	return false
}

// localIPs are the host's addresses when first asked. If listing them fails,
// isSelf knows the listeners' own and loopback addresses only: refusing a
// listener's port on every address would refuse other hosts, and a loop
// through the proxy is bounded by MaxConnections.
var localIPs = sync.OnceValue(func() map[netip.Addr]bool {
	m := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			m[p.Addr().Unmap()] = true
		}
	}
	return m
})

func isLocalIP(ip netip.Addr) bool { return localIPs()[ip] }
