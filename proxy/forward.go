package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"syscall"
	"time"

	"github.com/elazarl/goproxy"
)

// Plain-HTTP forwarding: goproxy wiring, and each absolute-form request
// decided and sent through the origin pool (origin.go) or a per-block
// transport, both dialing through the destination guard (dial.go).

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

// handleHTTP decides one absolute-form request. Each request on a kept-alive
// client connection comes through here on its own.
func (s *Server) handleHTTP(r *http.Request, pctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	fl, d := s.admit(r, kindHTTP)
	// The proxy's credentials are for the proxy: never sent upstream, whatever
	// goproxy's RemoveProxyHeaders (which also drops it) may become.
	r.Header.Del("Proxy-Authorization")
	if d != nil {
		s.refused(r, fl, d)
		return r, s.denyResponse(r, fl, d)
	}
	s.allowed(r.Context(), fl)
	removeHopByHop(r.Header)
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
			d := upgradeRefused(fl, resp.Header.Get("Upgrade"))
			s.refused(r, fl, d)
			return s.denyResponse(r, fl, d)
		}
	}
	if err != nil {
		var dd *dialDenial
		d := requestFailed(fl, fmt.Sprintf("request to %s failed", fl.target()))
		switch {
		case errors.As(err, &dd):
			d = dd.d
		case errors.Is(err, context.DeadlineExceeded):
			d.status, d.proxyError = http.StatusGatewayTimeout, psResponseTimeout
		case errors.As(err, new(errRetryable)), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			d.proxyError = psConnTerminated // the origin closed the connection before it answered
		}
		s.refused(r, fl, d)
		return s.denyResponse(r, fl, d)
	}
	resp.Header.Del("X-Azegress-Reason") // an origin must not forge the proxy's verdict
	removeHopByHop(resp.Header)
	resp.Header.Del("Proxy-Authenticate") // the origin's, not this proxy's challenge
	resp.Body = &countingBody{ReadCloser: resp.Body, c: s.m.bytesDown}
	if !s.cfg.QuietAllowed {
		var buf [maxFlowAttrs + 2]slog.Attr
		s.logFlow(r.Context(), msgRequest, append(fl.appendAttrs(buf[:0]),
			slog.Int(keyStatus, resp.StatusCode),
			slog.Int64(keyDurationMS, time.Since(fl.start).Milliseconds())))
	}
	return resp
}

// requestFailed is the refusal of a plain-HTTP request whose origin gave no
// usable response; callers refine its status and Proxy-Status error.
func requestFailed(fl *flow, detail string) *denial {
	return &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, detail: detail, proxyError: psHTTPProtocol}
}

// hopByHop are the header fields that describe one connection rather than
// the message (RFC 9110 §7.6.1): a proxy must not forward them.
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "TE", "Transfer-Encoding", "Upgrade"}

// removeHopByHop removes from h the fields named in its Connection header,
// then the hop-by-hop fields themselves, as Squid does: a client's
// "Connection: close, X-Secret" must not carry X-Secret to the origin, nor an
// origin's Keep-Alive reach the client over a connection the proxy manages.
func removeHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for name := range strings.SplitSeq(v, ",") {
			if name = textproto.TrimString(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopByHop {
		h.Del(name)
	}
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
