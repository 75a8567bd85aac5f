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
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy/internal/httphead"
	"github.com/azegress/azegress/proxy/internal/relay"
	"github.com/azegress/azegress/proxy/internal/tlshello"
)

// Transparent (next-hop) mode.
//
// When a route table makes the proxy host the next hop of a subnet, nftables
// REDIRECT (or TPROXY) hands the subnet's TCP 443 and 80 connections to the
// transparent listeners. Clients there have no proxy settings: the TLS
// listener decides on the ClientHello's server name (SNI), read without
// terminating TLS, and the HTTP listener on each request's Host header. The
// port is the connection's original destination port. Both then dial the
// NAME through the same resolver, destination guard and policy as CONNECT,
// never the packet's original destination address: a client that forges an
// allowed SNI or Host reaches only the allowed name's servers. An original
// destination that is not among the name's addresses is logged, since that
// is how a forged name shows up.

// transparentConn is what a transparent listener knows about a connection
// beyond its addresses.
type transparentConn struct {
	// origDst is the destination the client connected to.
	origDst netip.AddrPort
	// conntrack reports whether origDst came from SO_ORIGINAL_DST; if false
	// it is the local address (TPROXY, or a client connecting directly).
	conntrack bool
}

type transparentKey struct{}

func transparentFrom(ctx context.Context) *transparentConn {
	tc, _ := ctx.Value(transparentKey{}).(*transparentConn)
	return tc
}

// originalDst returns where the client of c meant to connect: the
// conntrack original destination after a REDIRECT or DNAT, or else c's
// local address, which is the original destination under TPROXY and the
// listener's own address for a client that connects directly.
func originalDst(c net.Conn) *transparentConn {
	if ap, err := sockoptOriginalDst(c); err == nil {
		return &transparentConn{origDst: ap, conntrack: true}
	}
	tc := &transparentConn{}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		tc.origDst = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return tc
}

// addOwn adds a listener's address to those no client may reach.
func (s *Server) addOwn(a net.Addr) {
	if ap, err := netip.ParseAddrPort(a.String()); err == nil {
		s.mu.Lock()
		s.own = append(s.own, ap)
		s.mu.Unlock()
	}
}

// TLS alert descriptions (RFC 8446 §6).
const (
	alertAccessDenied     = 49
	alertDecodeError      = 50
	alertInternalError    = 80
	alertUnrecognizedName = 112
)

// writeAlert sends a fatal TLS alert. Before the ServerHello no version is
// agreed; TLS 1.2 in the record header is what every client accepts.
func writeAlert(c net.Conn, desc byte) {
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte{21, 3, 3, 0, 2, 2, desc})
}

// closeAfterAlert ends a refused connection so that the client reads the
// alert: a close with unread input would send a reset that can discard it.
func closeAfterAlert(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
	_ = c.Close()
}

// helloBufSize is the first buffer a ClientHello is read into; it grows up
// to tlshello.MaxBytes for larger ones.
const helloBufSize = 4 << 10

// helloBufPool holds readClientHello's first buffers; the caller gives one
// back with putHelloBuf once its bytes are forwarded.
var helloBufPool = sync.Pool{New: func() any { return new([helloBufSize]byte) }}

// putHelloBuf returns b to helloBufPool if it is one of its buffers that
// readClientHello did not have to grow. b must not be used afterwards.
func putHelloBuf(b []byte) {
	if cap(b) == helloBufSize {
		helloBufPool.Put((*[helloBufSize]byte)(b[:helloBufSize]))
	}
}

// readClientHello reads from c until what it read starts with a complete
// ClientHello, cannot be one, or reading fails (deadline, EOF). It returns
// every byte read, which the caller must forward, the parser's verdict on
// them (tlshello.ErrIncomplete if reading stopped first) and the read error.
// early are bytes already read from c, which come first.
func readClientHello(c net.Conn, early []byte) (buf []byte, h tlshello.ClientHello, perr, rerr error) {
	return readRecords(c, newHelloBuf(early), tlshello.Parse)
}

// newHelloBuf returns a buffer that holds early, from helloBufPool if early
// fits in one.
func newHelloBuf(early []byte) []byte {
	if len(early) <= helloBufSize {
		return append(helloBufPool.Get().(*[helloBufSize]byte)[:0], early...)
	}
	return slices.Clone(early)
}

// readRecords reads from c, after the bytes already in buf, until parse's
// answer on all of them is final or reading fails (deadline, EOF). It
// returns every byte read, which the caller must forward, parse's answer
// (tlshello.ErrIncomplete if reading stopped first) and the read error. buf
// grows up to tlshello.MaxBytes, which is all a parser may ask for.
func readRecords[H interface{ Need() int }](c net.Conn, buf []byte, parse func([]byte) (H, error)) (_ []byte, h H, perr, rerr error) {
	perr = tlshello.ErrIncomplete
	if len(buf) > 0 {
		if h, perr = parse(buf); perr != tlshello.ErrIncomplete {
			return buf, h, perr, nil
		}
	}
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(tlshello.MaxBytes, max(2*cap(buf), helloBufSize))-len(buf))
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 && len(buf) >= h.Need() {
			h, perr = parse(buf)
			if perr != tlshello.ErrIncomplete {
				return buf, h, perr, nil
			}
		}
		if err != nil {
			return buf, h, perr, err
		}
	}
}

// ServeTransparentTLS accepts TLS connections redirected to ln (nftables
// REDIRECT or TPROXY) until Shutdown, and decides each on its ClientHello's
// server name and original destination port. It returns nil after a
// Shutdown and the listener's error otherwise.
func (s *Server) ServeTransparentTLS(ln net.Listener) error {
	s.addOwn(ln.Addr())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	s.tlsLns = append(s.tlsLns, ln)
	s.acceptWG.Add(1)
	s.mu.Unlock()
	defer s.acceptWG.Done()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			if retryAccept(err, &backoff) {
				continue
			}
			return err
		}
		backoff = 0
		if !s.takeConn() {
			writeAlert(c, alertInternalError)
			_ = c.Close()
			continue
		}
		// Add before the accept loop can return: Shutdown waits for the
		// loops to end before it waits for tunnels.
		s.tunnelWG.Add(1)
		go func() {
			var cl cleanup
			defer cl.run()
			cl.add(s.tunnelWG.Done)
			cl.add(s.releaseConn)
			s.serveTransparentTLS(c, &cl)
		}()
	}
}

// serveTransparentTLS decides one redirected TLS connection and, if it is
// allowed, splices it to the ClientHello's server name. cl is undone when
// the connection is done with.
func (s *Server) serveTransparentTLS(c net.Conn, cl *cleanup) {
	cl.add(func() { c.Close() })
	fl := &flow{kind: kindTransparentTLS, method: "TLS", start: time.Now(), gen: s.gen.Load()}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		fl.client = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	tc := originalDst(c)
	fl.port = tc.origDst.Port()
	ctx := context.WithValue(s.tunnelCtx, transparentKey{}, tc)
	// refused and allowed take a request only for its context and method.
	r := (&http.Request{Method: fl.method}).WithContext(ctx)

	_ = c.SetReadDeadline(fl.start.Add(s.cfg.ReadHeaderTimeout))
	stop := context.AfterFunc(s.tunnelCtx, func() { _ = c.SetReadDeadline(time.Unix(1, 0)) })
	buf, hello, perr, rerr := readClientHello(c, nil)
	stop()
	_ = c.SetReadDeadline(time.Time{})

	if s.tunnelCtx.Err() != nil {
		return // shutting down; the client will retry elsewhere
	}
	refuse := func(d *denial, alert byte) {
		d.status = 0 // no HTTP on this listener: the client gets a TLS alert
		s.refused(r, fl, d)
		if alert != 0 {
			writeAlert(c, alert)
		}
		closeAfterAlert(c)
	}
	if len(buf) == 0 {
		// Nothing sent (a port scan, a health check): nothing to decide.
		s.log.LogAttrs(ctx, slog.LevelDebug, "transparent TLS connection closed before a ClientHello",
			slog.String(keyClient, fl.client.String()))
		return
	}
	if d := helloRefusal(buf, perr, readStopped(rerr, s.cfg.ReadHeaderTimeout)); d != nil {
		d.fix = tlsFix
		alert := byte(alertDecodeError)
		if perr == tlshello.ErrNotTLS || perr == tlshello.ErrIncomplete {
			alert = 0
		}
		refuse(d, alert)
		return
	}
	if d := s.sniHost(fl, &hello); d != nil {
		refuse(d, alertUnrecognizedName)
		return
	}
	if d := s.decide(fl); d != nil {
		if hello.ECH && d.reason == ReasonNoRule {
			d = echDenied(fl)
		}
		refuse(d, alertAccessDenied)
		return
	}
	if d := acquireTunnel(fl); d != nil {
		refuse(d, alertAccessDenied)
		return
	}
	cl.add(fl.state.releaseTunnel)
	upstream, d := s.dialFlow(context.WithValue(ctx, flowKey{}, fl), fl)
	if d != nil {
		refuse(d, tunnelAlert(d))
		return
	}
	op := &opening{toUpstream: buf}
	var m openingCheck
	st := m.startAfter(fl, s.cfg.ReadHeaderTimeout, s.cfg.TunnelIdleTimeout, len(buf), &hello, fl.host)
	if d := s.followCheck(r, fl, c, upstream, op, &m, st); d != nil {
		op.release()
		upstream.Close()
		refuse(d, tunnelAlert(d))
		return
	}
	s.allowed(r.Context(), fl)
	if hello.ECH {
		s.log.LogAttrs(ctx, slog.LevelInfo, "encrypted client hello", append(fl.attrs(),
			slog.String(keyDetail, "the client encrypted its real server name (ECH); the connection was decided on the outer, public name"))...)
	}
	s.spliceTunnel(fl, c, upstream, op, cl)
}

// tunnelAlert is the TLS alert that refuses a transparent connection after
// its ClientHello was read.
func tunnelAlert(d *denial) byte {
	switch d.reason {
	case ReasonDialFailed:
		return alertInternalError
	case ReasonBadRequest:
		return alertDecodeError
	}
	return alertAccessDenied
}

// sniHost sets fl.host from the ClientHello's server name.
func (s *Server) sniHost(fl *flow, h *tlshello.ClientHello) *denial {
	fix := "The transparent TLS listener decides by server name. A client that connects to an IP address without a server name must use the proxy explicitly (HTTPS_PROXY) instead."
	if h.ServerName == nil {
		return &denial{status: http.StatusForbidden, reason: ReasonNoSNI,
			detail: "the TLS ClientHello has no server name (SNI), so there is no name to decide on", fix: fix}
	}
	name, err := wireHost(string(h.ServerName))
	if err != nil {
		return &denial{status: http.StatusBadRequest, reason: ReasonBadRequest,
			detail: fmt.Sprintf("the TLS server name %q is not a valid host name: %v", tlshello.PrintableSNI(h.ServerName), err), fix: fix}
	}
	if name.IsIP() {
		return &denial{status: http.StatusForbidden, reason: ReasonNoSNI,
			detail: fmt.Sprintf("the TLS server name is the IP address %s, which RFC 6066 does not allow in SNI", name.IP), fix: fix}
	}
	fl.host = name
	return nil
}

// tlsFix is the fix of what the transparent TLS listener cannot read.
const tlsFix = "This listener takes redirected TLS connections, which must start with a complete, well-formed ClientHello within the header timeout. Explicit proxy clients use the proxy port (-listen)."

func echDenied(fl *flow) *denial {
	return &denial{
		status: http.StatusForbidden,
		reason: ReasonECH,
		detail: fmt.Sprintf("the TLS ClientHello uses Encrypted Client Hello: its outer server name %s, the provider's public name, is not allowed in client block %q, and the real destination is encrypted", fl.target(), fl.block.Name),
		fix: fmt.Sprintf("Turn ECH off in the client. Allow the public name only if every site behind it may be reached; that rule for client %q in %s would be:\n\n%s",
			fl.block.Name, fl.gen.pol.Filename(), suggestRule(fl.host, fl.port)),
	}
}

func readStopped(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, io.EOF):
		return "closed the connection"
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "sent nothing more within " + timeout.String()
	case err != nil:
		return "failed: " + err.Error()
	}
	return "stopped"
}

// acquireTunnel counts an allowed flow's tunnel against its block's
// max_tunnels.
func acquireTunnel(fl *flow) *denial {
	if fl.state.acquireTunnel() {
		return nil
	}
	return &denial{
		status:     http.StatusTooManyRequests,
		reason:     ReasonTooManyTunnels,
		detail:     fmt.Sprintf("client block %q already has its maximum of %d open tunnels", fl.block.Name, fl.state.maxTunnels.Load()),
		fix:        fmt.Sprintf("Close idle connections, or raise limits.max_tunnels for client %q in %s.", fl.block.Name, fl.gen.pol.Filename()),
		retryAfter: time.Second,
	}
}

// ServeTransparentHTTP accepts plain-HTTP connections redirected to ln until
// Shutdown. Each request on a connection is decided on its own, on its Host
// header and the connection's original destination port, and forwarded like
// an absolute-form request to the forward proxy. It returns nil after a
// Shutdown and the listener's error otherwise.
func (s *Server) ServeTransparentHTTP(ln net.Listener) error {
	s.addOwn(ln.Addr())
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return nil
	}
	if s.ths == nil {
		s.ths = &http.Server{
			Handler:           http.HandlerFunc(s.serveTransparentHTTP),
			ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
			IdleTimeout:       s.cfg.ClientIdleTimeout,
			MaxHeaderBytes:    s.hs.MaxHeaderBytes,
			ErrorLog:          s.hs.ErrorLog,
			ConnContext: func(ctx context.Context, c net.Conn) context.Context {
				raw := c
				if cc, ok := c.(*clientConn); ok {
					raw = cc.Unwrap()
				}
				ctx = context.WithValue(ctx, transparentKey{}, originalDst(raw))
				return context.WithValue(ctx, connKey{}, c)
			},
		}
	}
	hs := s.ths
	s.mu.Unlock()
	err := hs.Serve(&capListener{Listener: ln, s: s})
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// serveTransparentHTTP turns an origin-form request into the absolute form
// a forward-proxy client would have sent, and hands it to the forward
// proxy's decision and forwarding path. Anything else is refused with the
// reason checkTransparentHygiene finds.
func (s *Server) serveTransparentHTTP(w http.ResponseWriter, r *http.Request) {
	tc := transparentFrom(r.Context())
	if tc != nil && r.Method != http.MethodConnect && strings.HasPrefix(r.RequestURI, "/") {
		if h, port, d := transparentTarget(r.Host, tc); d == nil {
			r.URL.Scheme = "http"
			r.URL.Host = hostPort(h, port)
			s.gp.ServeHTTP(w, r)
			return
		}
	}
	fl, d := s.admit(r, kindHTTP)
	if d == nil { // checkTransparentHygiene refuses whatever the above does not take
		d = badRequest("request cannot be served on the transparent listener")
	}
	s.writeDenial(w, r, fl, d)
}

// checkTransparentHygiene is checkHygiene for a request on the transparent
// HTTP listener, after the framing checks they share: the request must be
// origin-form with exactly one Host, which decides together with the
// original destination port.
func checkTransparentHygiene(r *http.Request, head httphead.Head, tc *transparentConn, fl *flow) *denial {
	fl.kind = kindTransparentHTTP
	fix := func(d *denial) *denial {
		d.fix = "The transparent listener serves redirected plain-HTTP requests: origin-form (GET /path) with a Host header naming the destination."
		return d
	}
	switch {
	case r.Method == http.MethodConnect:
		return fix(badRequest("CONNECT is not served on the transparent listener; explicit proxy clients use the proxy port"))
	case !strings.HasPrefix(head.Target, "/"):
		return fix(badRequest("request target must be origin-form (/path) on the transparent listener, got %q", truncate(head.Target, 80)))
	case len(head.Host) == 0 || head.Host[0] == "":
		return fix(badRequest("request has no Host header, so there is no name to decide on"))
	}
	h, port, d := transparentTarget(head.Host[0], tc)
	if d != nil {
		return fix(d)
	}
	fl.host, fl.port = h, port
	// The forwarded URL must name the decided destination: upstream
	// connections are pooled by it.
	if r.URL.Scheme != "http" || r.URL.Host != hostPort(h, port) {
		return fix(badRequest("request framing is ambiguous"))
	}
	return nil
}

// transparentTarget is the destination a Host header names on a
// connection redirected from tc.origDst: the Host's name, and the original
// destination port, which a port in the Host must repeat.
func transparentTarget(hostHeader string, tc *transparentConn) (host.Host, uint16, *denial) {
	port := tc.origDst.Port()
	hh, hp, err := splitAuthority(hostHeader, strconv.Itoa(int(port)))
	if err != nil {
		return host.Host{}, 0, badRequest("invalid Host header %q: %v", truncate(hostHeader, 80), err)
	}
	h, err := wireHost(hh)
	if err != nil {
		return host.Host{}, 0, badRequest("invalid Host header %q: %v", truncate(hostHeader, 80), err)
	}
	if hp != port {
		return host.Host{}, 0, badRequest("Host header %q names port %d, but the connection was to port %d", truncate(hostHeader, 80), hp, port)
	}
	return h, port, nil
}

// origDstResolver wraps the configured resolver: on a transparent
// connection it logs when the original destination is not among the
// addresses the name resolved to. The dial still goes to the name's
// addresses only.
type origDstResolver struct {
	Resolver
	s *Server
}

func (r origDstResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	addrs, err := r.Resolver.LookupNetIP(ctx, network, host)
	if tc := transparentFrom(ctx); err == nil && tc != nil {
		r.s.noteOrigDst(ctx, tc, addrs)
	}
	return addrs, err
}

// LookupCNAME passes canonical-name lookups through, for resolvers that
// have them.
func (r origDstResolver) LookupCNAME(ctx context.Context, host string) (string, error) {
	if c, ok := r.Resolver.(cnameResolver); ok {
		return c.LookupCNAME(ctx, host)
	}
	return "", errors.New("resolver has no LookupCNAME")
}

func (s *Server) noteOrigDst(ctx context.Context, tc *transparentConn, addrs []netip.Addr) {
	dst := tc.origDst.Addr()
	for _, a := range addrs {
		if a.Unmap() == dst {
			return
		}
	}
	var attrs []slog.Attr
	if fl, _ := ctx.Value(flowKey{}).(*flow); fl != nil {
		attrs = fl.attrs()
	}
	resolved := make([]string, len(addrs))
	for i, a := range addrs {
		resolved[i] = a.Unmap().String()
	}
	attrs = append(attrs, slog.String(keyOrigDst, tc.origDst.String()),
		slog.String(keyResolved, strings.Join(resolved, ",")),
		slog.String(keyDetail, "the client connected to an address the name does not resolve to here; the proxy connected to the name's addresses instead (a forged server name or Host, or DNS that differs between client and proxy)"))
	s.log.LogAttrs(ctx, slog.LevelInfo, "original destination is not an address of the name", attrs...)
}

// shutdownTransparent stops the transparent listeners and waits, until ctx
// is done, for the transparent HTTP requests in flight. Transparent TLS
// connections are tunnels: Shutdown drains them with the rest.
func (s *Server) shutdownTransparent(ctx context.Context) error {
	s.mu.Lock()
	s.closed = true
	lns := s.tlsLns
	hs := s.ths
	s.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	s.acceptWG.Wait()
	if hs == nil {
		return nil
	}
	err := hs.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		_ = hs.Close()
		return nil
	}
	return err
}

// replay writes the bytes the proxy's checks read from either side of a
// tunnel before it started moving them. If the checks ended the tunnel, or
// a write fails, it closes both conns and reports why, as the relay would. A
// failed write resets only the side it failed on: bytes already read from
// one side still reach the other, which gets a FIN after them.
func replay(client, upstream net.Conn, op *opening) (string, error) {
	why, err := op.end, op.err
	if why != "" {
		client.Close()
		upstream.Close()
		return why, err
	}
	var failed []net.Conn
	for _, w := range []struct {
		dst net.Conn
		b   []byte
		n   *atomic.Int64
	}{{upstream, op.toUpstream, &op.st.Up}, {client, op.toClient, &op.st.Down}} {
		if werr := writeCounted(w.dst, w.b, w.n); werr != nil {
			why, err = relay.ReasonError, werr
			failed = append(failed, w.dst)
		}
	}
	if why == "" {
		return "", nil
	}
	for _, c := range failed {
		// A reset, as the relay ends a side whose stream was cut.
		if l, ok := c.(interface{ SetLinger(int) error }); ok {
			_ = l.SetLinger(0)
		}
	}
	client.Close()
	upstream.Close()
	return why, err
}
