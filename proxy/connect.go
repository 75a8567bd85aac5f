package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/azegress/azegress/proxy/internal/httphead"
	"github.com/azegress/azegress/proxy/internal/relay"
)

// CONNECT: the tunnel from the decision to its end.
//
// A CONNECT the front door read (serveConnect) and one net/http read
// (serveConnectHTTP) take the same path: openTunnel dials the admitted flow,
// runTunnel answers 200 and runs the domain-fronting check (fronting.go),
// spliceTunnel hands the bytes to the relay (internal/relay), and tunnelClosed
// logs and counts the tunnel when it ends.

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
		w.Header().Set("X-Azegress-Reason", ReasonBadRequest)
		w.Header().Set("Proxy-Status", proxyStatus(proxyErrors[ReasonBadRequest], ReasonBadRequest))
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
		d = s.decideExplicit(s.tunnelCtx, fl, h.ProxyAuthorization)
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
	s.allowed(r.Context(), fl)
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
	relay.Start(s.tunnelCtx, client, upstream, s.cfg.TunnelIdleTimeout, &op.st, done)
}

// tunnelClosed counts and logs a tunnel that ended.
func (s *Server) tunnelClosed(fl *flow, st *relay.Stats, why string, err error) {
	s.m.tunnelsActive.Dec()
	up, down := st.Up.Load(), st.Down.Load()
	s.m.tunnelClosed(why)
	s.m.bytesUp.Add(float64(up))
	s.m.bytesDown.Add(float64(down))
	if s.cfg.QuietAllowed {
		return
	}
	var buf [maxFlowAttrs + 5]slog.Attr
	attrs := append(fl.appendAttrs(buf[:0]),
		slog.Int64(keyBytesUp, up), slog.Int64(keyBytesDown, down),
		slog.Int64(keyDurationMS, time.Since(fl.start).Milliseconds()),
		slog.String(keyCloseReason, why))
	if err != nil {
		attrs = append(attrs, slog.String(keyError, err.Error()))
	}
	s.logFlow(context.Background(), msgTunnelClosed, attrs)
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
