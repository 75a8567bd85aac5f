package proxy

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/azegress/azegress/proxy/internal/dnscache"
	"github.com/azegress/azegress/proxy/internal/evloop"
	"github.com/azegress/azegress/proxy/internal/httphead"
	"github.com/azegress/azegress/proxy/internal/relay"
)

// The explicit listener on the event-loop engine (Config.Engine).
//
// The engine (internal/evloop) serves connections with no goroutine of
// their own: its loops read the head, dial, write the 200, hold the
// client's first bytes for the domain-fronting check and relay. This file
// is its handler, which does for a CONNECT what front.go, connect.go and
// fronting.go do on the goroutine path, through the same code: the head
// parser and plainConnect, newFlow, checkTarget, authenticate, decide, the
// tunnel limit, the destination guard, the openingCheck state machine, the
// log records and metrics. Nothing on the loop may wait, so a decision that
// could (credentials to verify, a name not in the DNS cache, an address
// whose private-link name is not cached) is finished on a goroutine of its
// own, which hands the answer back with Conn.Resume. Everything else (plain
// HTTP, a head the parser flags or that is unusual) is handed to net/http
// exactly as the goroutine front door hands it.

// engineConn is the handler's state of one connection.
type engineConn struct {
	p  httphead.Parser
	fp int // head bytes fed to p

	r      *http.Request // a plain-HTTP request's; a CONNECT's once asked for (request)
	fl     *flow
	taken  bool // holds a tunnel of its client block
	dialed bool // the origin answered: the tunnel was allowed and counted
	tunnel bool // the check passed or ended it: a tunnel record at the end
	idle   bool // the origin spoke first: the idle timeout bounds the opening
	m      openingCheck
	last   netip.Addr    // the address of the last dial attempt, for its refusal
	start  time.Time     // when the destination's lookup began, for the dial's metric
	x      *httpExchange // a plain-HTTP request served on the loop (engine_http.go)

	// A CONNECT's request line and client, for its http.Request.
	target, proto string
	remote        netip.AddrPort
	// Kept here rather than allocated at every tunnel: the guard's
	// resolver on the loop, and the dial's addresses when they fit (an
	// IPv4 and an IPv6 one).
	nb  cachedOnly
	aps [2]netip.AddrPort
}

// request returns ec's request: for a CONNECT, built the first time the
// refusal and log code ask for it, which an allowed tunnel never does.
func (ec *engineConn) request() *http.Request {
	if ec.r == nil {
		ec.r = &http.Request{Method: http.MethodConnect, RequestURI: ec.target, Proto: ec.proto, ProtoMajor: 1, ProtoMinor: 1,
			RemoteAddr: ec.remote.String()}
		if ec.proto == "HTTP/1.0" {
			ec.r.ProtoMinor = 0
		}
	}
	return ec.r
}

// engineHandler is the engine's Handler for s.
type engineHandler struct {
	s     *Server
	cache *dnscache.Cache // nil: every lookup on a goroutine
}

var (
	_ evloop.Handler  = (*engineHandler)(nil)
	_ evloop.Acceptor = (*engineHandler)(nil)
	_ evloop.Dialer   = (*engineHandler)(nil)
)

// Accepted counts the connection against the global cap, or sheds it.
func (h *engineHandler) Accepted(c *evloop.Conn) []byte {
	if !h.s.takeConn() {
		return shedResponse
	}
	c.SetData(&engineConn{})
	return nil
}

// Head parses the first head; a plain CONNECT stays, anything else goes to
// net/http.
func (h *engineHandler) Head(c *evloop.Conn, head []byte, ev evloop.Event) evloop.Action {
	ec := c.Data().(*engineConn)
	if ec.fp < len(head) {
		ec.p.Feed(head[ec.fp:])
		ec.fp = len(head)
	}
	hd, ok := ec.p.Head()
	switch {
	case !ok && ev == evloop.EventNone:
		return evloop.NeedMore()
	case !ok && ev == evloop.EventFull:
		return evloop.HandOff() // net/http reads heads up to MaxHeaderBytes
	case !ok:
		// The client went away or was too slow before a whole head: like
		// net/http, close without an answer, and log what it had sent.
		h.logPartial(c, ec)
		return evloop.NeedMore()
	case hd.Method != http.MethodConnect:
		served, d := h.startHTTP(c, ec, &hd, head)
		if !served {
			return evloop.HandOff()
		}
		if d != nil {
			return h.refuse(ec, d)
		}
	case !plainConnect(&hd):
		return evloop.HandOff()
	default:
		h.s.frontConnects.Add(1)
		ec.target, ec.proto, ec.remote = hd.Target, hd.Proto, c.RemoteAddr()
		ec.fl = h.s.newFlowFrom(kindConnect, hd.Method, ec.remote)
		if d := checkTarget(ec.fl, hd.Method, hd.Target, nil, hd.Host); d != nil {
			return h.refuse(ec, d)
		}
	}
	s, fl := h.s, ec.fl
	end := int(hd.End)
	d, tok, done := authenticateAtHand(fl, hd.ProxyAuthorization)
	if !done {
		// Verifying a token may wait for the tenant's keys. The flow is
		// the goroutine's until it hands the verdict back to the loop.
		go func() {
			d := s.decideAuthenticated(fl, verifyToken(s.tunnelCtx, fl, tok))
			c.ResumeFunc(func() evloop.Action {
				if d != nil {
					return h.refuse(ec, d)
				}
				return h.plan(c, ec, end)
			})
		}()
		return evloop.Pending()
	}
	if d := s.decideAuthenticated(fl, d); d != nil {
		return h.refuse(ec, d)
	}
	return h.plan(c, ec, end)
}

// plan takes a tunnel of the client block (for a CONNECT) and resolves and
// guards the destination from the DNS cache, or on a goroutine when the
// cache cannot answer. It runs on the loop.
func (h *engineHandler) plan(c *evloop.Conn, ec *engineConn, end int) evloop.Action {
	if ec.x == nil {
		if d := acquireTunnel(ec.fl); d != nil {
			return h.refuse(ec, d)
		}
		ec.taken, ec.start = true, time.Now() // the dial's metric: a tunnel's only
	}
	fl := ec.fl
	var addrs []netip.Addr
	if fl.host.IsIP() {
		addrs = []netip.Addr{fl.host.IP}
	} else if h.cache != nil {
		if a, err, ok := h.cache.Cached("ip", fqdn(fl.host.Name)); ok {
			if err != nil {
				return h.refuse(ec, resolveFailed(fl, err))
			}
			addrs = a
		}
	}
	if addrs != nil {
		ec.nb = cachedOnly{cache: h.cache}
		var room [4]netip.Addr
		checked, refused := appendGuarded(h.s.tunnelCtx, room[:0], nil, fl, addrs, &ec.nb, h.s.isSelf)
		if !ec.nb.missed {
			return h.dialAction(ec, checked, refused, end)
		}
		// The private-link check needs a canonical name the cache does
		// not have: decide again where waiting is allowed.
	}
	go h.resolveSlow(c, ec, end)
	return evloop.Pending()
}

// resolveSlow resolves and guards the destination as dialFlow does, off
// the loop, and hands the addresses to dial (or the refusal) back to it.
func (h *engineHandler) resolveSlow(c *evloop.Conn, ec *engineConn, end int) {
	s, fl := h.s, ec.fl
	ctx, cancel := context.WithTimeout(s.tunnelCtx, s.cfg.DialTimeout)
	defer cancel()
	addrs, err := resolve(ctx, s.cfg.Resolver, fl.host)
	var (
		checked []netip.Addr
		refused *denial
	)
	if err == nil {
		checked, _, refused = guardAddrs(ctx, fl, addrs, s.cfg.Resolver, s.isSelf)
	}
	c.ResumeFunc(func() evloop.Action {
		if err != nil {
			return h.refuse(ec, resolveFailed(fl, err))
		}
		return h.dialAction(ec, checked, refused, end)
	})
}

// dialAction dials the checked addresses, or refuses as dialFlow does.
func (h *engineHandler) dialAction(ec *engineConn, checked []netip.Addr, refused *denial, end int) evloop.Action {
	if len(checked) == 0 {
		if refused == nil {
			refused = noAddresses(ec.fl)
		}
		return h.refuse(ec, refused)
	}
	aps := ec.aps[:0]
	if ec.x != nil || len(checked) > len(ec.aps) {
		aps = make([]netip.AddrPort, 0, len(checked)) // an exchange may keep them past ec
	}
	aps = aps[:len(checked)]
	for i, a := range checked {
		aps[i] = netip.AddrPortFrom(a, ec.fl.port)
		if hook := h.s.cfg.engineDial; hook != nil {
			aps[i] = hook(aps[i])
		}
	}
	if ec.x != nil {
		return h.exchangeAction(ec, aps, end)
	}
	ec.last = checked[len(checked)-1]
	minor := 1
	if ec.proto == "HTTP/1.0" {
		minor = 0
	}
	return evloop.Dial(aps, established[minor], end)
}

// refuse logs and counts d and answers it, as refuseConnect does. A
// plain-HTTP request's refusal keeps the connection for the next request,
// as net/http does, unless d says it cannot be trusted further.
func (h *engineHandler) refuse(ec *engineConn, d *denial) evloop.Action {
	if x := ec.x; x != nil && !d.closeConn && !x.close {
		reply := h.refusal(ec, d)
		*ec = engineConn{}
		return evloop.Reply(reply, x.headLen)
	}
	if ec.x != nil {
		d.closeConn = true // its Connection: close
	}
	return evloop.Refuse(h.refusal(ec, d))
}

// refusal logs and counts d and returns its response.
func (h *engineHandler) refusal(ec *engineConn, d *denial) []byte {
	if ec.taken {
		ec.fl.state.releaseTunnel()
		ec.taken = false
	}
	r := ec.request()
	h.s.refused(r, ec.fl, d)
	var b bytes.Buffer
	_ = h.s.denyResponse(r, ec.fl, d).Write(&b)
	return b.Bytes()
}

// DialFailed refuses a destination none of whose addresses answered.
func (h *engineHandler) DialFailed(c *evloop.Conn, err error) []byte {
	ec := c.Data().(*engineConn)
	return h.refusal(ec, engineDialFailed(ec.fl, ec.last, err))
}

// engineDialFailed is dialFailed for the engine's dial error err: the
// address it names, else last.
func engineDialFailed(fl *flow, last netip.Addr, err error) *denial {
	var op *net.OpError
	if errors.As(err, &op) {
		if a, ok := op.Addr.(*net.TCPAddr); ok {
			last = a.AddrPort().Addr().Unmap()
		}
	}
	return dialFailed(fl, last, err)
}

// Dialed counts an allowed tunnel once its origin answered, as openTunnel
// does, and starts the domain-fronting check.
func (h *engineHandler) Dialed(c *evloop.Conn) {
	ec := c.Data().(*engineConn)
	ec.dialed = true
	h.s.m.dialSeconds.Observe(time.Since(ec.start).Seconds()) // as dialFlow: lookup and connect
	// Background is what the Context of a CONNECT's http.Request was.
	h.s.allowed(context.Background(), ec.fl)
	st := ec.m.start(ec.fl, h.s.cfg.ReadHeaderTimeout, h.s.cfg.TunnelIdleTimeout)
	if st.kind != stepMore {
		ec.tunnel = true
		h.s.m.tunnelsActive.Inc()
	}
}

// Opening shows the check what arrived and does what it says.
func (h *engineHandler) Opening(c *evloop.Conn, o evloop.Opening) evloop.Action {
	ec := c.Data().(*engineConn)
	if ec.tunnel { // the check was off (allow_sni_mismatch), or decided
		return evloop.Relay()
	}
	m := &ec.m
	var st step
	switch {
	case o.Origin != nil:
		st = m.server(o.Origin)
		if ec.idle {
			c.SetTimeout(h.s.cfg.TunnelIdleTimeout) // counted on the origin's bytes
		}
		if st.kind == stepMore && len(o.Client) > 0 {
			h.apply(c, ec, st)      // its timer and warning
			st = m.client(o.Client) // a second ClientHello may be held already
		}
	case o.Event == evloop.EventNone || o.Event == evloop.EventFull:
		st = m.client(o.Client)
		if st.kind == stepMore && o.Event == evloop.EventFull {
			st = m.end(relay.ReasonError, errors.New("the client's first bytes exceed the opening buffer"))
		}
	default:
		st = m.event(h.openingEvent(ec, o.Event), c.Err())
	}
	return h.apply(c, ec, st)
}

// openingEvent is the check's name for an engine event.
func (h *engineHandler) openingEvent(ec *engineConn, ev evloop.Event) openingEvent {
	switch ev {
	case evloop.EventEOF:
		return evClientEOF
	case evloop.EventError:
		return evClientError
	case evloop.EventOriginEOF:
		return evOriginEOF
	case evloop.EventTimeout:
		if ec.idle {
			return evIdleTimeout
		}
		return evOpeningTimeout
	}
	return evClientError
}

// apply carries out st: its warning and timer, and the action it asks of
// the engine.
func (h *engineHandler) apply(c *evloop.Conn, ec *engineConn, st step) evloop.Action {
	if st.warn != nil {
		h.s.wouldDeny(ec.request(), ec.fl, st.warn, st.warnHost)
	}
	switch st.timer {
	case timerOpening:
		ec.idle = false
		c.SetTimeout(h.s.cfg.ReadHeaderTimeout)
	case timerIdle:
		ec.idle = true
		c.SetTimeout(h.s.cfg.TunnelIdleTimeout)
	}
	switch st.kind {
	case stepForward:
		return evloop.Forward(st.n)
	case stepRelay:
		ec.tunnel = true
		h.s.m.tunnelsActive.Inc()
		return evloop.Relay()
	case stepEnd:
		ec.tunnel = true
		h.s.m.tunnelsActive.Inc()
		return evloop.EndTunnel(st.reason, st.err)
	case stepRefuse:
		h.s.refused(ec.request(), ec.fl, st.d)
		return evloop.Refuse(nil)
	}
	return evloop.NeedMore()
}

// HandOff gives the connection to net/http with the bytes already read in
// front, as the goroutine front door does.
func (h *engineHandler) HandOff(c *evloop.Conn, nc net.Conn, prefix []byte) {
	cc := &clientConn{Conn: httphead.NewConn(&replayConn{Conn: nc, prefix: prefix}), s: h.s}
	if !h.s.engineHandoff.Load().give(cc) {
		_ = cc.Close()
	}
}

// Closed ends a connection: a tunnel's record, its block's tunnel and its
// slot under the global cap.
func (h *engineHandler) Closed(c *evloop.Conn, end evloop.End) {
	ec, ok := c.Data().(*engineConn)
	if !ok {
		return // shed: it never held a slot
	}
	if ec.tunnel {
		var st relay.Stats
		st.Up.Store(end.Up)
		st.Down.Store(end.Down)
		h.s.tunnelClosed(ec.fl, &st, end.Reason, end.Err)
	}
	if ec.taken {
		ec.fl.state.releaseTunnel()
	}
	h.s.releaseConn()
}

// logPartial logs a head the client never finished, as unserved does for
// the goroutine path.
func (h *engineHandler) logPartial(c *evloop.Conn, ec *engineConn) {
	method, n := ec.p.Partial()
	if n == 0 {
		return
	}
	h.s.logUnservedFrom(c.RemoteAddr(), method, partialHead(n, false, 0), http.StatusBadRequest)
}

// cachedOnly is the DNS cache for the guard on the loop: canonical names it
// has, and a miss noted instead of waited for.
type cachedOnly struct {
	cache  *dnscache.Cache
	missed bool
}

var errNotCached = errors.New("not in the DNS cache")

func (r *cachedOnly) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.missed = true
	return nil, errNotCached
}

func (r *cachedOnly) LookupCNAME(ctx context.Context, host string) (string, error) {
	if r.cache != nil {
		if cname, err, ok := r.cache.CachedCNAME(host); ok {
			return cname, err
		}
	}
	r.missed = true
	return "", errNotCached
}

// replayConn reads prefix before its conn: the bytes the engine read
// before it handed the connection off.
type replayConn struct {
	net.Conn
	prefix []byte
}

func (r *replayConn) Read(b []byte) (int, error) {
	if len(r.prefix) == 0 {
		return r.Conn.Read(b)
	}
	n := copy(b, r.prefix)
	r.prefix = r.prefix[n:]
	return n, nil
}
