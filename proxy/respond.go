package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/policy/learn"
)

// Responses: what a decision writes to the client, the log, the metrics and
// the learning Observer. Every refusal is a denial (reason.go), written
// once to each.

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
	target := withoutUserinfo(r.RequestURI)
	if fl != nil && fl.host != (host.Host{}) {
		target = fl.target()
	}
	body := d.body(r.Method, truncate(target, 200), fl)
	h := http.Header{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Azegress-Reason", d.reason)
	h.Set("Proxy-Status", d.proxyStatus())
	h.Set("Cache-Control", "no-store")
	if d.retryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((d.retryAfter+time.Second-1)/time.Second)))
	}
	if d.challenge {
		h.Set("Proxy-Authenticate", proxyAuthenticate)
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

// withoutUserinfo drops user:password@ from a request target, so that a
// refusal never echoes credentials a client put in the URL instead of in
// Proxy-Authorization (the refusal says they do not belong there).
func withoutUserinfo(target string) string {
	scheme, rest := "", target
	if i := strings.Index(target, "://"); i >= 0 {
		scheme, rest = target[:i+3], target[i+3:]
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		return scheme + rest[at+1:]
	}
	return target
}

func (fl *flow) attrs() []slog.Attr { return fl.appendAttrs(make([]slog.Attr, 0, maxFlowAttrs+6)) }

// maxFlowAttrs bounds how many attributes appendAttrs appends.
const maxFlowAttrs = 18

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
		a = append(a, slog.String(keyPolicy, fl.gen.pol.Filename()), slog.String(keyPolicySHA, fl.gen.pol.SHA256()))
		if l := fl.gen.pol.Label(fl.host); l != "" {
			a = append(a, slog.String(keyLabel, l))
		}
	}
	return fl.appendAuthAttrs(a)
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

// refused logs and counts a refusal: one Warn record per denial. Every
// denial passes here before it is answered, so this is where a refusal of
// a request without credentials becomes a challenge (identity.go).
func (s *Server) refused(r *http.Request, fl *flow, d *denial) {
	challenge(fl, d)
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
		status := http.StatusBadRequest
		if n >= s.hs.MaxHeaderBytes {
			status = http.StatusRequestHeaderFieldsTooLarge
		}
		s.logUnserved(c, method, partialHead(n, status != http.StatusBadRequest, s.hs.MaxHeaderBytes), status)
	}
}

// partialHead is the detail of a refused head that was not complete after
// n bytes: too large for a limit of max bytes, or not sent in time.
func partialHead(n int, tooLarge bool, max int) string {
	why := "was not complete within the header timeout, or the client went away"
	if tooLarge {
		why = fmt.Sprintf("exceeds the limit of %d KiB", max>>10)
	}
	return fmt.Sprintf("malformed request: the request head (%d bytes read) %s", n, why)
}

func (s *Server) logUnserved(c *clientConn, method, detail string, status int) {
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	s.logUnservedFrom(ap, method, detail, status)
}

// logUnservedFrom logs a head from client that was refused before a
// handler saw it.
func (s *Server) logUnservedFrom(client netip.AddrPort, method, detail string, status int) {
	fl := &flow{kind: kindHTTP, gen: s.gen.Load()}
	if method == http.MethodConnect {
		fl.kind = kindConnect
	}
	if client.IsValid() {
		fl.client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
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
func (s *Server) allowed(ctx context.Context, fl *flow) {
	if fl.rule == nil {
		s.m.decisions.WithLabelValues(fl.kind, fl.decision(), ReasonNoRule, fl.mode(), fl.blockName()).Inc()
		s.observe(fl, policy.VerdictWouldDeny, ReasonNoRule)
		s.log.LogAttrs(ctx, slog.LevelWarn, "would deny", append(fl.attrs(),
			slog.String(keyDecision, "would_deny"), slog.String(keyReason, ReasonNoRule))...)
		return
	}
	fl.gen.countAllowed(s.m, fl)
	s.observe(fl, policy.VerdictAllow, "")
}
