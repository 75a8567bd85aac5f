package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy/internal/evloop"
	"github.com/azegress/azegress/proxy/internal/httphead"
)

// Plain HTTP on the event-loop engine.
//
// The loops serve the plainest forward-proxy request themselves: HTTP/1.1,
// an absolute-form http:// target with a plain authority, one Host, no
// body, no Expect, no Upgrade (httphead.ForwardRequest says which). It is
// decided as the goroutine path decides it (checkTarget, decideExplicit,
// the destination guard), its head rewritten for the origin (hop-by-hop
// fields and the proxy's credentials dropped), and sent over an origin
// connection the loop keeps per client block and policy generation, as
// the origin pool does. The response is framed by its own head
// (httphead.ParseResponse) and passed through. Anything else, including a
// later request of the same connection, is handed to net/http.

// httpExchange is the state of the plain-HTTP request an engineConn is
// serving.
type httpExchange struct {
	req     []byte // the head sent to the origin
	headLen int    // the client's head
	method  string
	close   bool // the client asked to close, or the response is close-delimited
	framing httphead.Framing
	left    int64 // FrameLength: body bytes still to come
	chunked httphead.Chunked
	n1xx    int
	headOut int // the response head written to the client, not counted as body
}

// engineOriginKey names the origin connections a loop may reuse for a
// request: one client block under one policy generation, as originPool.
type engineOriginKey struct {
	gen   *generation
	block string
	host  host.Host
	port  uint16
}

var _ evloop.Exchanger = (*engineHandler)(nil)

// plainRequest reports whether hd may be served on the loop; ForwardRequest
// judges the rest of its head.
func plainRequest(hd *httphead.Head) bool {
	return hd.Err == nil && !hd.Unusual && !hd.Leading && hd.Method != http.MethodConnect &&
		hd.Proto == "HTTP/1.1" && len(hd.Host) == 1 && len(hd.TransferEncoding) == 0 &&
		(len(hd.ContentLength) == 0 || len(hd.ContentLength) == 1 && hd.ContentLength[0] == "0")
}

// startHTTP decides whether the loop serves hd, and if so starts its flow.
// It returns false to hand the connection to net/http, and a denial for a
// target checkTarget refuses.
func (h *engineHandler) startHTTP(c *evloop.Conn, ec *engineConn, hd *httphead.Head, head []byte) (bool, *denial) {
	if !plainRequest(hd) || hd.End > int64(len(head)) {
		return false, nil
	}
	out, f, ok := httphead.ForwardRequest(nil, head[:hd.End])
	if !ok || !plainAuthority(f.Authority) {
		return false, nil
	}
	r := &http.Request{Method: hd.Method, RequestURI: hd.Target, Proto: hd.Proto, ProtoMajor: 1, ProtoMinor: 1,
		Host: hd.Host[0], RemoteAddr: c.RemoteAddr().String()}
	ec.r, ec.fl = r, h.s.newFlow(r, kindHTTP)
	ec.x = &httpExchange{req: out, headLen: int(hd.End), method: hd.Method, close: f.Close}
	u := &url.URL{Scheme: "http", Host: f.Authority} // all checkTarget reads
	return true, checkTarget(ec.fl, r.Method, r.RequestURI, u, hd.Host)
}

// exchangeAction sends the request to the checked addresses.
func (h *engineHandler) exchangeAction(ec *engineConn, aps []netip.AddrPort, end int) evloop.Action {
	h.s.allowed(ec.r.Context(), ec.fl)
	fl := ec.fl
	key := engineOriginKey{gen: fl.gen, block: fl.block.Name, host: fl.host, port: fl.port}
	return evloop.Exchange(key, aps, ec.x.req, end, replayableMethod(ec.x.method))
}

// replayableMethod reports whether a bodiless request with method m may be
// sent again when a kept origin connection failed before any answer.
// replayable (origin.go) adds the idempotency-key headers; the loop does
// not read them, and sends such a request once.
func replayableMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// Response reads the origin's response head and answers it, as forward
// does.
func (h *engineHandler) Response(c *evloop.Conn, resp []byte, ev evloop.Event) evloop.Action {
	ec := c.Data().(*engineConn)
	x := ec.x
	if ev == evloop.EventNone || ev == evloop.EventOriginEOF {
		r, ok := httphead.ParseResponse(resp, x.method)
		switch {
		case ok && r.Err != nil:
			return h.refuseExchange(ec, requestFailed(ec.fl, fmt.Sprintf("%s sent a malformed response head: %v", ec.fl.target(), r.Err)))
		case ok && r.Status == http.StatusSwitchingProtocols:
			return h.refuseExchange(ec, upgradeRefused(ec.fl, ""))
		case ok && r.Status < 200:
			if x.n1xx++; x.n1xx > max1xxResponses {
				return h.refuseExchange(ec, requestFailed(ec.fl, fmt.Sprintf("%s sent more than %d interim (1xx) responses", ec.fl.target(), max1xxResponses)))
			}
			return evloop.Skip(r.HeadLen)
		case ok:
			return h.respond(ec, resp, r)
		case ev == evloop.EventNone:
			return evloop.NeedMore()
		}
	}
	// The origin gave no usable head: the refusal forward makes of the
	// round trip's error.
	fl := ec.fl
	d := requestFailed(fl, fmt.Sprintf("request to %s failed", fl.target()))
	err := c.Err()
	var op *net.OpError
	switch {
	case errors.As(err, &op) && op.Op == "dial":
		d = engineDialFailed(fl, netip.Addr{}, err)
	case ev == evloop.EventTimeout:
		d.status, d.proxyError = http.StatusGatewayTimeout, psResponseTimeout
		d.detail = fmt.Sprintf("%s sent no byte of its response for %s", fl.target(), h.s.engine.ExchangeIdle())
	case ev == evloop.EventFull:
		d.detail = fmt.Sprintf("%s sent a response head larger than %d bytes", fl.target(), evloop.ResponseBufSize)
	default: // the origin closed or reset the connection before it answered
		d.proxyError = psConnTerminated
	}
	return h.refuseExchange(ec, d)
}

// refuseExchange refuses a request already sent to its origin: the
// client's connection closes after the refusal (Connection: close), since
// the engine ends the exchange with it.
func (h *engineHandler) refuseExchange(ec *engineConn, d *denial) evloop.Action {
	d.closeConn = true
	return evloop.Refuse(h.refusal(ec, d))
}

// upgradeRefused is the refusal of an origin that switched protocols on a
// plain-HTTP request.
func upgradeRefused(fl *flow, upgrade string) *denial {
	what := "101"
	if upgrade != "" {
		what = fmt.Sprintf("101, Upgrade: %q", truncate(upgrade, 40))
	}
	return &denial{status: http.StatusBadGateway, reason: ReasonDialFailed, closeConn: true, proxyError: psUpgradeFailed,
		detail: fmt.Sprintf("%s switched protocols (%s); the proxy forwards plain HTTP/1.1 requests only", fl.target(), what),
		fix:    "Send WebSocket and other upgraded protocols through a CONNECT tunnel (wss://, or a client that tunnels ws:// through the proxy)."}
}

// respond answers the client with the origin's head, rewritten.
func (h *engineHandler) respond(ec *engineConn, resp []byte, r httphead.Response) evloop.Action {
	x := ec.x
	x.framing, x.left = r.Framing, r.Length
	close := x.close || r.Framing == httphead.FrameClose
	head := httphead.AppendResponseHead(nil, resp[:r.HeadLen], r, close)
	x.headOut = len(head)
	if !h.s.cfg.QuietAllowed {
		var buf [maxFlowAttrs + 2]slog.Attr
		h.s.logFlow(h.s.tunnelCtx, msgRequest, append(ec.fl.appendAttrs(buf[:0]),
			slog.Int(keyStatus, r.Status),
			slog.Int64(keyDurationMS, time.Since(ec.fl.start).Milliseconds())))
	}
	// An origin kept under a replaced policy would serve no request again.
	keep := !r.Close && r.Framing != httphead.FrameClose && ec.fl.gen == h.s.gen.Load()
	return evloop.Respond(head, r.HeadLen, !close, keep)
}

// Body frames the response body by its head.
func (h *engineHandler) Body(c *evloop.Conn, b []byte, eof bool) (int, bool) {
	x := c.Data().(*engineConn).x
	switch x.framing {
	case httphead.FrameNone:
		return 0, true
	case httphead.FrameLength:
		n := int(min(int64(len(b)), x.left))
		x.left -= int64(n)
		return n, x.left == 0
	case httphead.FrameChunked:
		if eof {
			return 0, false
		}
		n, done, err := x.chunked.Scan(b)
		if err != nil {
			return 0, false // cut: the client is closed
		}
		return n, done
	}
	return len(b), eof // FrameClose
}

// Exchanged counts the response body's bytes, as the goroutine path counts
// them (not the head), and readies the connection for its next head.
func (h *engineHandler) Exchanged(c *evloop.Conn, x evloop.ExchangeEnd) {
	ec := c.Data().(*engineConn)
	if body := x.Down - int64(ec.x.headOut); body > 0 {
		h.s.m.bytesDown.Add(float64(body))
	}
	if x.Dial > 0 {
		// A new origin's connect; the name came from the DNS cache, or
		// from a lookup on a goroutine this does not count.
		h.s.m.dialSeconds.Observe(x.Dial.Seconds())
	}
	*ec = engineConn{}
}
