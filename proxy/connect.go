package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/elazarl/goproxy"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/catalog"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/learn"
	"github.com/azegress/azegress/proxy/internal/httphead"
)

// flow is one decided request: who asked for what, and under which policy.
type flow struct {
	kind   string
	method string
	client netip.AddrPort
	host   host.Host
	port   uint16
	gen    *generation
	block  *policy.Client
	state  *blockState
	rule   *policy.Rule // nil for a learn-mode would_deny
	start  time.Time
}

func (fl *flow) target() string { return hostPort(fl.host, fl.port) }

func (fl *flow) decision() string {
	if fl.rule == nil {
		return "would_deny"
	}
	return "allow"
}

func (fl *flow) blockName() string {
	if fl.block == nil {
		return ""
	}
	return fl.block.Name
}

func (fl *flow) mode() string {
	if fl.block == nil {
		return ""
	}
	return fl.block.Mode.String()
}

// newGoproxy wires goproxy defensively: none of its defaults that read the
// environment, skip TLS verification or dial on their own remain reachable.
func (s *Server) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Verbose = false
	gp.Logger = slogPrintf{s.log}
	// Every request gets its own RoundTripper and every CONNECT is hijacked,
	// so these must never be used; they fail closed if they ever are.
	refuse := func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("azegress: internal error: unchecked dial refused")
	}
	gp.Tr = &http.Transport{Proxy: nil, DialContext: refuse, DialTLSContext: refuse,
		TLSClientConfig: upstreamTLSConfig(s.cfg.UpstreamRootCAs, "")} // never skips verification
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = func(*http.Request, string, string) (net.Conn, error) { return refuse(nil, "", "") }
	gp.KeepAcceptEncoding = true
	gp.NonproxyHandler = http.HandlerFunc(s.serveNonProxy)
	// serveHTTP answers every CONNECT itself; should one ever reach
	// goproxy, it is refused rather than dialed.
	gp.OnRequest().HandleConnectFunc(func(host string, _ *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return goproxy.RejectConnect, host
	})
	gp.OnRequest().DoFunc(s.handleHTTP)
	return gp
}

// serveHTTP is the handler of the forward proxy's net/http server: CONNECT
// to serveConnectHTTP, everything else to goproxy.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		s.serveConnectHTTP(w, r)
		return
	}
	s.gp.ServeHTTP(w, r)
}

type slogPrintf struct{ l *slog.Logger }

func (p slogPrintf) Printf(format string, v ...any) { p.l.Debug(fmt.Sprintf(format, v...)) }

// admit runs every check that needs no network: request hygiene, client
// block, rate limit and policy. A nil denial means the flow may proceed to
// the dial, where the destination guard runs.
func (s *Server) admit(r *http.Request, kind string) (*flow, *denial) {
	fl := s.newFlow(r, kind)
	if d := s.checkHygiene(r, fl); d != nil {
		return fl, d
	}
	return fl, s.decide(fl)
}

// newFlow starts the flow of r under the current policy.
func (s *Server) newFlow(r *http.Request, kind string) *flow {
	fl := &flow{kind: kind, method: r.Method, start: time.Now(), gen: s.gen.Load()}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		fl.client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return fl
}

// decide is the part of admit that every listener shares: it selects
// fl.client's block, takes a token from the block's rate limit and applies
// its rules to fl.host and fl.port. A nil denial means the flow may proceed
// to the dial, where the destination guard runs.
func (s *Server) decide(fl *flow) *denial {
	if d := classify(fl); d != nil {
		return d
	}
	fl.state = s.blocks.get(fl.block.Name)
	if ok, wait := fl.state.allow(fl.start); !ok {
		l := fl.state.limits.Load()
		return &denial{
			status:     http.StatusTooManyRequests,
			reason:     ReasonRateLimited,
			detail:     fmt.Sprintf("client block %q is over its limit of %g new connections per second (burst %d)", fl.block.Name, l.ConnectionsPerSecond, l.Burst),
			fix:        fmt.Sprintf("Retry later, or raise limits.connections_per_second for client %q in %s.", fl.block.Name, fl.gen.pol.Filename()),
			retryAfter: wait,
		}
	}
	_, d := applyRules(fl)
	return d
}

// classify finds fl's client block and refuses what no rule may allow:
// IMDS, WireServer and Arc's HIMDS, which answer only on the VM itself (a
// client sending them here has a NO_PROXY problem, whatever its block), and
// clients in no block. The proxy and explain both decide through it.
func classify(fl *flow) *denial {
	fl.block = fl.gen.pol.Client(fl.client.Addr())
	if label, ok := catalog.LocalEndpoint(fl.host, fl.port); ok {
		return localEndpoint(fl, label)
	}
	if fl.block == nil {
		return clientUnknown(fl)
	}
	return nil
}

// applyRules decides fl under its client block's rules and sets fl.rule
// to the allowing rule. Deny rules refuse in learn mode too: they are a
// decision the policy's author made, not a gap to learn. Otherwise learn
// mode lets through what no rule allows (a nil denial with a nil fl.rule).
func applyRules(fl *flow) (policy.Decision, *denial) {
	d := fl.block.Decide(fl.host, fl.port)
	if !d.Allowed && (fl.block.Mode != policy.ModeLearn || d.Deny != nil) {
		return d, refusal(fl, d)
	}
	fl.rule = d.Rule
	return d, nil
}

// checkHygiene parses the request target into fl and refuses anything
// ambiguous: the absolute-form URL (or CONNECT authority) is the only thing
// that decides, and nothing may disagree with it.
func (s *Server) checkHygiene(r *http.Request, fl *flow) *denial {
	hc, _ := r.Context().Value(connKey{}).(*clientConn)
	if hc == nil {
		return badRequest("request did not arrive on a proxy connection")
	}
	head, ok := hc.NextHead()
	if !ok || head.Err != nil {
		return badRequest("request framing could not be verified")
	}
	if head.Method != r.Method || head.Target != r.RequestURI {
		return badRequest("request framing is ambiguous")
	}
	if len(head.TransferEncoding) > 0 && len(head.ContentLength) > 0 {
		return badRequest("request has both Content-Length and Transfer-Encoding")
	}
	if len(head.Host) > 1 {
		return badRequest("request has more than one Host header")
	}
	if strings.IndexByte(head.Target, '#') >= 0 {
		// A request target has no fragment (RFC 9112 §3.2); net/url keeps
		// one in the path, which would go upstream as %23.
		return badRequest("request target must not carry a fragment (#)")
	}
	if tc := transparentFrom(r.Context()); tc != nil {
		return checkTransparentHygiene(r, head, tc, fl) // origin-form, on that listener only
	}
	return checkTarget(fl, r.Method, r.RequestURI, r.URL, head.Host)
}

// checkTarget parses the request target (the CONNECT authority, or the
// absolute-form URL u) into fl, and refuses a Host header that names
// anything else. hosts are the request's raw Host header values.
func checkTarget(fl *flow, method, requestURI string, u *url.URL, hosts []string) *denial {
	var authority, defPort string
	if method == http.MethodConnect {
		if strings.HasPrefix(requestURI, "/") || strings.Contains(requestURI, "://") {
			return badRequest("CONNECT target must be host:port, got %q", requestURI)
		}
		if strings.Contains(requestURI, "@") {
			return badRequest("CONNECT target must not carry userinfo")
		}
		authority = requestURI
	} else {
		if !u.IsAbs() {
			return badRequest("request target must be an absolute URL")
		}
		switch strings.ToLower(u.Scheme) {
		case "http":
			defPort = "80"
		case "https":
			defPort = "443"
		default:
			return badRequest("unsupported URL scheme %q", u.Scheme)
		}
		if u.User != nil {
			return badRequest("request URL must not carry userinfo")
		}
		authority = u.Host
	}
	name, port, err := splitAuthority(authority, defPort)
	if err != nil {
		return badRequest("%v", err)
	}
	h, err := wireHost(name)
	if err != nil {
		return badRequest("invalid destination host %q: %v", truncate(name, 80), err)
	}
	// Case and one trailing dot are normalized, not refused: they spell the
	// same DNS name, which is the one decided and dialed. Without a Host
	// header (HTTP/1.0, CONNECT) the target alone decides.
	fl.host, fl.port = h, port
	if len(hosts) == 1 {
		// A port-less Host on a CONNECT names the same authority.
		hostDefPort := defPort
		if method == http.MethodConnect {
			hostDefPort = strconv.Itoa(int(port))
		}
		hh, hp, err := splitAuthority(hosts[0], hostDefPort)
		var hph host.Host
		if err == nil {
			hph, err = wireHost(hh)
		}
		if err != nil || hph != h || hp != port {
			return badRequest("Host header %q disagrees with the request target %s", truncate(hosts[0], 80), fl.target())
		}
	}
	return nil
}

// errNonASCIIHost refuses a host name a client sent in Unicode.
var errNonASCIIHost = errors.New("host name is not ASCII; send its IDNA ASCII (xn--) form")

// wireHost parses a host a client sent: a request target, a Host header or
// a TLS server name, where names are ASCII (RFC 3986 reg-name, RFC 6066).
// A Unicode spelling would be decided on its IDNA mapping but reach the
// origin as sent, where another reading may name another host (Go's
// Request.Write makes allowed.example。com allowed.xn--examplecom-th3i), so
// it is refused rather than mapped.
func wireHost(s string) (host.Host, error) {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return host.Host{}, errNonASCIIHost
		}
	}
	return host.Parse(s)
}

// splitAuthority splits host[:port]. A missing port takes defPort; with no
// default (CONNECT) the port is required.
func splitAuthority(a, defPort string) (string, uint16, error) {
	if a == "" {
		return "", 0, errors.New("empty destination")
	}
	host, portStr, err := net.SplitHostPort(a)
	if err != nil {
		if defPort == "" {
			return "", 0, fmt.Errorf("destination %q has no port", truncate(a, 80))
		}
		// No port: a bare name, or an IPv6 literal in brackets.
		host, portStr = strings.TrimSuffix(strings.TrimPrefix(a, "["), "]"), defPort
		if strings.ContainsAny(host, "[]") || (strings.Contains(host, ":") && !strings.HasPrefix(a, "[")) {
			return "", 0, fmt.Errorf("invalid destination %q", truncate(a, 80))
		}
	}
	if portStr == "" {
		portStr = defPort
	}
	for _, c := range portStr {
		if c < '0' || c > '9' {
			return "", 0, fmt.Errorf("invalid port %q", truncate(portStr, 20))
		}
	}
	// Leading zeros read as decimal, as URL parsers, curl and Go's dialer
	// read them: the port dialed is the port decided.
	p, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil || p == 0 {
		return "", 0, fmt.Errorf("port %q is outside 1-65535", truncate(portStr, 20))
	}
	return host, uint16(p), nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// serveConnectHTTP answers a CONNECT that net/http read: one that follows
// another request on a kept-alive connection, or one the front door left to
// net/http. It does what serveConnect does for the front door; unlike
// goproxy's hijack, it keeps the bytes net/http had read behind the head.
func (s *Server) serveConnectHTTP(w http.ResponseWriter, r *http.Request) {
	// Decided and dialed before the hijack: until then net/http counts the
	// connection as active, so Shutdown waits for the dial.
	fl, d := s.admit(r, kindConnect)
	upstream, d := s.openTunnel(r, fl, d)
	if d == nil {
		s.tunnelWG.Add(1) // before the hijack, so that Shutdown waits for the tunnel too
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil { // not HTTP/1, which the proxy listener always is
		if d == nil {
			_ = upstream.Close()
			fl.state.releaseTunnel()
			s.tunnelWG.Done()
		}
		http.Error(w, "CONNECT needs an HTTP/1 connection", http.StatusBadRequest)
		return
	}
	if d != nil {
		s.refuseConnect(conn, r, fl, d)
		return
	}
	// What the client sent behind the head: first what net/http had
	// buffered, then what the front door had read and net/http had not.
	var early []byte
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		early = append(early, b...)
	}
	client := conn
	if pc, ok := conn.(*prefixConn); ok {
		early = append(early, pc.unread()...)
		client = pc.clientConn
	}
	// The tunnel gets a goroutine of its own, so that net/http's connection
	// goroutine returns and an idle tunnel does not pin its deep stack,
	// read buffer and request (about 12 KiB).
	go func() {
		var cl cleanup
		defer cl.run()
		cl.add(s.tunnelWG.Done)
		cl.add(fl.state.releaseTunnel)
		s.runTunnel(r, client, upstream, fl, early, &cl)
	}()
}

// refuseConnect answers a refused CONNECT on c, which it closes.
func (s *Server) refuseConnect(c net.Conn, r *http.Request, fl *flow, d *denial) {
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = s.denyResponse(r, fl, d).Write(c)
	_ = c.Close()
}

// serveConnect answers a CONNECT the front door read (front.go) exactly as
// serveConnectHTTP answers one net/http read. early are bytes the client
// sent after the head. cl is undone when the connection is done with.
func (s *Server) serveConnect(cc *clientConn, h *httphead.Head, early []byte, cl *cleanup) {
	s.frontConnects.Add(1)
	r := &http.Request{
		Method:     h.Method,
		RequestURI: h.Target,
		Proto:      h.Proto,
		ProtoMajor: 1,
		ProtoMinor: 1,
		RemoteAddr: cc.RemoteAddr().String(),
	}
	if h.Proto == "HTTP/1.0" {
		r.ProtoMinor = 0
	}
	fl := s.newFlow(r, kindConnect)
	d := checkTarget(fl, r.Method, r.RequestURI, nil, h.Host)
	if d == nil {
		d = s.decide(fl)
	}
	upstream, d := s.openTunnel(r, fl, d)
	if d != nil {
		s.refuseConnect(cc, r, fl, d)
		return
	}
	cl.add(fl.state.releaseTunnel)
	s.runTunnel(r, cc, upstream, fl, early, cl)
}

// openTunnel takes one of the client block's tunnels and dials the
// destination of an admitted flow (d is admit's verdict). A refusal is
// logged and counted, and the caller must answer it; otherwise the caller
// owns the tunnel and the upstream conn.
func (s *Server) openTunnel(r *http.Request, fl *flow, d *denial) (net.Conn, *denial) {
	if d == nil {
		d = acquireTunnel(fl)
	}
	var upstream net.Conn
	if d == nil {
		upstream, d = s.dialFlow(r.Context(), fl)
		if d != nil {
			fl.state.releaseTunnel()
		}
	}
	if d != nil {
		s.refused(r, fl, d)
		return nil, d
	}
	s.allowed(r, fl)
	return upstream, nil
}

// runTunnel answers 200 and starts moving bytes. early are bytes the client
// sent before the 200, for the destination. The tunnel takes cl over and
// undoes it when it ends.
func (s *Server) runTunnel(r *http.Request, client, upstream net.Conn, fl *flow, early []byte, cl *cleanup) {
	cl.add(func() { client.Close() }) // gives the connection's slot back under the global cap
	minor := 1
	if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
		minor = 0
	}
	if _, err := client.Write(established[minor]); err != nil {
		upstream.Close()
		return
	}
	raw := client
	if cc, ok := client.(*clientConn); ok {
		raw = cc.Unwrap()
	}
	op, d := s.checkFronting(r, fl, raw, upstream, early)
	if d != nil {
		op.release()
		upstream.Close()
		s.refused(r, fl, d)
		return
	}
	s.spliceTunnel(fl, raw, upstream, op, cl)
}

// established are the 200 responses to an HTTP/1.0 and an HTTP/1.1 CONNECT.
var established = [2][]byte{
	[]byte("HTTP/1.0 200 Connection established\r\n\r\n"),
	[]byte("HTTP/1.1 200 Connection established\r\n\r\n"),
}

// spliceTunnel forwards the bytes the proxy's checks read from either side
// (op), then starts moving bytes until either side is done. When the
// tunnel ends it logs and counts it, closes both conns and undoes cl, which
// it takes over: the caller may return at once.
func (s *Server) spliceTunnel(fl *flow, client, upstream net.Conn, op *opening, cl *cleanup) {
	s.m.tunnelsActive.Inc()
	undo := cl.take()
	done := func(why string, err error) {
		s.tunnelClosed(fl, &op.st, why, err)
		undo.run()
	}
	why, err := replay(client, upstream, op)
	op.release()
	if why != "" {
		done(why, err)
		return
	}
	startPipe(s.tunnelCtx, client, upstream, s.cfg.TunnelIdleTimeout, &op.st, done)
}

// tunnelClosed counts and logs a tunnel that ended.
func (s *Server) tunnelClosed(fl *flow, st *tunnelStats, why string, err error) {
	s.m.tunnelsActive.Dec()
	up, down := st.up.Load(), st.down.Load()
	s.m.tunnelsTotal.WithLabelValues(why).Inc()
	s.m.bytesUp.Add(float64(up))
	s.m.bytesDown.Add(float64(down))
	if s.cfg.QuietAllowed {
		return
	}
	var buf [16]slog.Attr
	attrs := append(fl.appendAttrs(buf[:0]),
		slog.Int64(keyBytesUp, up), slog.Int64(keyBytesDown, down),
		slog.Int64(keyDurationMS, time.Since(fl.start).Milliseconds()),
		slog.String(keyCloseReason, why))
	if err != nil {
		attrs = append(attrs, slog.String(keyError, err.Error()))
	}
	s.log.LogAttrs(context.Background(), slog.LevelInfo, msgTunnelClosed, attrs...)
}

// cleanup is what a connection's goroutine must undo when the connection is
// done with, in reverse order; a tunnel takes it over (take) to undo when
// it ends, after its goroutine is gone.
type cleanup []func()

func (c *cleanup) add(f func()) { *c = append(*c, f) }

// take moves c's functions to the returned cleanup, leaving c empty.
func (c *cleanup) take() cleanup {
	t := *c
	*c = nil
	return t
}

func (c *cleanup) run() {
	for i := len(*c) - 1; i >= 0; i-- {
		(*c)[i]()
	}
	*c = nil
}

// handleHTTP decides one absolute-form request. Each request on a kept-alive
// client connection comes through here on its own.
func (s *Server) handleHTTP(r *http.Request, pctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	fl, d := s.admit(r, kindHTTP)
	if d != nil {
		s.refused(r, fl, d)
		return r, s.denyResponse(r, fl, d)
	}
	s.allowed(r, fl)
	pctx.RoundTripper = goproxy.RoundTripperFunc(func(req *http.Request, _ *goproxy.ProxyCtx) (*http.Response, error) {
		return s.forward(req, fl), nil
	})
	return r, nil
}

// forward sends an allowed plain-HTTP request upstream. It never returns an
// error to goproxy, whose default error page leaks Go error strings.
func (s *Server) forward(r *http.Request, fl *flow) *http.Response {
	var resp *http.Response
	var err error
	if plainExchange(r) {
		resp, err = fl.gen.origins(s, fl.block.Name).roundTrip(r, fl)
	} else {
		tr := fl.gen.transport(s, fl.block.Name)
		r = r.WithContext(context.WithValue(r.Context(), flowKey{}, fl))
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &countingBody{ReadCloser: r.Body, c: s.m.bytesUp}
		}
		resp, err = tr.RoundTrip(r)
		if err == nil && resp.StatusCode == http.StatusSwitchingProtocols {
			// goproxy would relay only a WebSocket body it can write to,
			// which countingBody is not: it answered 101, then left the
			// client connection hijacked and open, holding its -max-conns
			// slot. The proxy relays no upgraded protocol on plain HTTP.
			_ = resp.Body.Close()
			d := &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, closeConn: true,
				detail: fmt.Sprintf("%s switched protocols (101, Upgrade: %q); the proxy forwards plain HTTP/1.1 requests only", fl.target(), truncate(resp.Header.Get("Upgrade"), 40)),
				fix:    "Send WebSocket and other upgraded protocols through a CONNECT tunnel (wss://, or a client that tunnels ws:// through the proxy)."}
			s.refused(r, fl, d)
			return s.denyResponse(r, fl, d)
		}
	}
	if err != nil {
		var dd *dialDenial
		d := &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, detail: fmt.Sprintf("request to %s failed", fl.target())}
		if errors.As(err, &dd) {
			d = dd.d
		} else if errors.Is(err, context.DeadlineExceeded) {
			d.status = http.StatusGatewayTimeout
		}
		s.refused(r, fl, d)
		return s.denyResponse(r, fl, d)
	}
	resp.Header.Del("X-Azegress-Reason") // an origin must not forge the proxy's verdict
	resp.Body = &countingBody{ReadCloser: resp.Body, c: s.m.bytesDown}
	if !s.cfg.QuietAllowed {
		s.log.LogAttrs(r.Context(), slog.LevelInfo, msgRequest, append(fl.attrs(),
			slog.Int(keyStatus, resp.StatusCode),
			slog.Int64(keyDurationMS, time.Since(fl.start).Milliseconds()))...)
	}
	return resp
}

type flowKey struct{}

// countingBody adds the bytes read through it to a counter.
type countingBody struct {
	io.ReadCloser
	c interface{ Add(float64) }
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.Add(float64(n))
	}
	return n, err
}

// dialDenial carries a denial out of http.Transport's DialContext.
type dialDenial struct{ d *denial }

func (e *dialDenial) Error() string { return e.d.reason + ": " + e.d.detail }

// plainExchange reports whether r can go through the origin pool: no body,
// nothing that makes the exchange more than one request and one response.
func plainExchange(r *http.Request) bool {
	return (r.Body == nil || r.Body == http.NoBody) && r.ContentLength == 0 && len(r.TransferEncoding) == 0 &&
		r.Header.Get("Expect") == "" && r.Header.Get("Upgrade") == "" && r.ProtoMajor == 1
}

func (g *generation) origins(s *Server, block string) *originPool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if p := g.originPools[block]; p != nil {
		return p
	}
	if g.originPools == nil {
		g.originPools = make(map[string]*originPool)
	}
	p := &originPool{dial: func(ctx context.Context, fl *flow, https bool) (net.Conn, error) {
		ctx = context.WithValue(ctx, flowKey{}, fl) // fl in ctx as through the transport
		if https {
			return s.dialUpstreamTLS(ctx, fl)
		}
		return s.dialUpstream(ctx, fl)
	}, idleTimeout: originIdleTimeout}
	g.originPools[block] = p
	return p
}

// dialUpstream dials fl's destination for an origin pool or a transport;
// a refusal comes back as a *dialDenial, which forward turns into its
// answer.
func (s *Server) dialUpstream(ctx context.Context, fl *flow) (net.Conn, error) {
	c, d := s.dialFlow(ctx, fl)
	if d != nil {
		return nil, &dialDenial{d}
	}
	return c, nil
}

func (g *generation) transport(s *Server, block string) *http.Transport {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t := g.transports[block]; t != nil {
		return t
	}
	if g.transports == nil {
		g.transports = make(map[string]*http.Transport)
	}
	withFlow := func(dial func(context.Context, *flow) (net.Conn, error)) func(context.Context, string, string) (net.Conn, error) {
		return func(ctx context.Context, _, _ string) (net.Conn, error) {
			fl, _ := ctx.Value(flowKey{}).(*flow)
			if fl == nil {
				return nil, errors.New("azegress: internal error: dial without a decision")
			}
			return dial(ctx, fl)
		}
	}
	t := &http.Transport{
		Proxy:       nil,
		DialContext: withFlow(s.dialUpstream),
		// https:// gets the origin pool's handshake: one TLS configuration
		// and one way to explain its failures. TLSClientConfig and
		// TLSHandshakeTimeout do not apply.
		DialTLSContext:         withFlow(s.dialUpstreamTLS),
		MaxIdleConnsPerHost:    originMaxIdlePerHost,
		IdleConnTimeout:        originIdleTimeout,
		DisableCompression:     true,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHead,
	}
	g.transports[block] = t
	return t
}

// serveNonProxy answers requests addressed to the proxy itself.
func (s *Server) serveNonProxy(w http.ResponseWriter, r *http.Request) {
	fl, d := s.admit(r, kindHTTP)
	if d == nil {
		d = badRequest("request target must be an absolute URL; this is a forward proxy")
	}
	s.writeDenial(w, r, fl, d)
}

// writeDenial logs a refusal and writes its response through w, for the
// handlers that answer directly rather than through goproxy.
func (s *Server) writeDenial(w http.ResponseWriter, r *http.Request, fl *flow, d *denial) {
	s.refused(r, fl, d)
	resp := s.denyResponse(r, fl, d)
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// denyResponse builds the response for a refusal.
func (s *Server) denyResponse(r *http.Request, fl *flow, d *denial) *http.Response {
	target := r.RequestURI
	if fl != nil && fl.host != (host.Host{}) {
		target = fl.target()
	}
	body := d.body(r.Method, truncate(target, 200), fl)
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Azegress-Reason", d.reason)
	h.Set("Cache-Control", "no-store")
	if d.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((d.retryAfter+time.Second-1)/time.Second)))
	}
	if d.closeConn || r.Method == http.MethodConnect {
		h.Set("Connection", "close")
	}
	return &http.Response{
		Status:        statusText(d.status),
		StatusCode:    d.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
		Close:         d.closeConn || r.Method == http.MethodConnect,
		Request:       r,
	}
}

func (fl *flow) attrs() []slog.Attr { return fl.appendAttrs(make([]slog.Attr, 0, 16)) }

// appendAttrs appends fl's log attributes to a.
func (fl *flow) appendAttrs(a []slog.Attr) []slog.Attr {
	a = append(a, slog.String(keyKind, fl.kind))
	if fl.client.IsValid() {
		a = append(a, slog.String(keyClient, fl.client.String()))
	}
	if fl.block != nil {
		a = append(a, slog.String(keyClientBlock, fl.block.Name), slog.String(keyMode, fl.block.Mode.String()))
	}
	if fl.host != (host.Host{}) {
		a = append(a, slog.String(keyHost, fl.host.String()), slog.Int(keyPort, int(fl.port)))
	}
	if fl.rule != nil {
		a = append(a, slog.String(keyRule, fl.rule.Name))
	}
	if fl.gen != nil {
		a = append(a, slog.String(keyPolicy, fl.gen.pol.Filename()))
		if l := fl.gen.pol.Label(fl.host); l != "" {
			a = append(a, slog.String(keyLabel, l))
		}
	}
	return a
}

// observe tells the Observer about a decision on a known destination.
func (s *Server) observe(fl *flow, decision policy.Verdict, reason string) {
	if s.cfg.Observer == nil || fl.host == (host.Host{}) {
		return
	}
	o := learn.Observation{
		ClientBlock: fl.blockName(),
		Host:        fl.host.String(),
		Port:        fl.port,
		Decision:    decision,
		Reason:      reason,
		Mode:        fl.mode(),
	}
	if fl.rule != nil {
		o.Rule = fl.rule.Name
	}
	if fl.gen != nil {
		o.Cloud, o.Policy = fl.gen.pol.Cloud(), fl.gen.pol.Filename()
		o.Label = fl.gen.pol.Label(fl.host)
	}
	s.cfg.Observer.Observe(fl.block, o, fl.start)
}

// observedReasons are the refusals that say something about a destination
// (and so belong in learning-mode records), as opposed to the client's
// manners (bad_request, rate limits) or the network (dial_failed).
var observedReasons = map[string]bool{
	ReasonNoRule: true, ReasonBlockedAddress: true, ReasonClientUnknown: true, ReasonLocalEndpoint: true,
}

// refused logs and counts a refusal: one Warn record per denial.
func (s *Server) refused(r *http.Request, fl *flow, d *denial) {
	s.m.decisions.WithLabelValues(fl.kind, "deny", d.reason, fl.mode(), fl.blockName()).Inc()
	if observedReasons[d.reason] {
		s.observe(fl, policy.VerdictDeny, d.reason)
	}
	attrs := append(fl.attrs(),
		slog.String(keyDecision, "deny"),
		slog.String(keyReason, d.reason),
		slog.String(keyDetail, d.detail),
		slog.Int(keyStatus, d.status))
	if d.fix != "" {
		attrs = append(attrs, slog.String(keyFix, d.fix))
	}
	if fl.host == (host.Host{}) {
		attrs = append(attrs, slog.String(keyMethod, r.Method))
	}
	if d.dstIP.IsValid() {
		attrs = append(attrs, slog.String(keyDstIP, d.dstIP.String()))
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "deny", attrs...)
}

// unserved logs the request heads net/http read on a connection but never
// handed to a handler: it refused them itself (a malformed target, a bad
// header, a head too large or too slow) with a bare 400 or 431, and every
// refusal is logged.
func (s *Server) unserved(c *clientConn) {
	for {
		h, ok := c.NextHead()
		if !ok {
			break
		}
		detail := fmt.Sprintf("malformed request %s %q", truncate(h.Method, 16), truncate(h.Target, 80))
		if h.Err != nil {
			detail = "malformed request: " + h.Err.Error()
		}
		s.logUnserved(c, h.Method, detail, http.StatusBadRequest)
	}
	// A head net/http gave up on before it was complete: it answered 431
	// to one too large, and 400 to one not sent within the header timeout.
	if method, n := c.PartialHead(); n > 0 {
		status, why := http.StatusBadRequest, "was not complete within the header timeout, or the client went away"
		if n >= s.hs.MaxHeaderBytes {
			status, why = http.StatusRequestHeaderFieldsTooLarge, fmt.Sprintf("exceeds the limit of %d KiB", s.hs.MaxHeaderBytes>>10)
		}
		s.logUnserved(c, method, fmt.Sprintf("malformed request: the request head (%d bytes read) %s", n, why), status)
	}
}

func (s *Server) logUnserved(c *clientConn, method, detail string, status int) {
	fl := &flow{kind: kindHTTP, gen: s.gen.Load()}
	if method == http.MethodConnect {
		fl.kind = kindConnect
	}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		fl.client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	s.m.decisions.WithLabelValues(fl.kind, "deny", ReasonBadRequest, "", "").Inc()
	s.log.LogAttrs(context.Background(), slog.LevelWarn, "deny", append(fl.attrs(),
		slog.String(keyDecision, "deny"),
		slog.String(keyReason, ReasonBadRequest),
		slog.String(keyDetail, detail),
		slog.Int(keyStatus, status))...)
}

// allowed counts an allowed (or learn-mode would_deny) decision; a
// would_deny is logged at once, since it is what a policy author needs.
func (s *Server) allowed(r *http.Request, fl *flow) {
	reason := ReasonAllowed
	if fl.rule == nil {
		reason = ReasonNoRule
	} else {
		s.m.ruleHits.WithLabelValues(fl.block.Name, fl.rule.Name).Inc()
	}
	s.m.decisions.WithLabelValues(fl.kind, fl.decision(), reason, fl.mode(), fl.blockName()).Inc()
	if fl.rule == nil {
		s.observe(fl, policy.VerdictWouldDeny, reason)
	} else {
		s.observe(fl, policy.VerdictAllow, "")
	}
	if fl.rule == nil {
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "would deny", append(fl.attrs(),
			slog.String(keyDecision, "would_deny"), slog.String(keyReason, ReasonNoRule))...)
	}
}
