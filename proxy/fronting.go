package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy/internal/relay"
	"github.com/azegress/azegress/proxy/internal/tlshello"
)

// The domain-fronting check of CONNECT tunnels.
//
// After the 200, the client's first bytes decide. Bytes that look like TLS
// (internal/tlshello) must be a ClientHello whose server name is the CONNECT
// host, or another host the client block allows on the port; other bytes
// (SSH, SMTP) pass. No client byte reaches the origin before it is
// classified, however late it comes. An origin that speaks first (an SSH or
// SMTP banner) is relayed to the client meanwhile, since such a client may
// wait for it. A tunnel in which neither side speaks within the header
// timeout is closed: a TLS client speaks first, and silence leaves nothing
// to check.
//
// A ClientHello that offers TLS 1.3 may be answered with a
// HelloRetryRequest, after which the server reads a second ClientHello.
// checkRetry, which the transparent TLS listener shares, requires it to
// name the same server as the first.

// opening is what a tunnel's checks read, and moved, before the tunnel
// starts relaying.
type opening struct {
	toUpstream, toClient []byte      // read from one side, not yet written to the other
	st                   relay.Stats // bytes the checks already wrote
	// end, if not "", is why the tunnel ended during the checks (one of
	// the relay's reasons), with err.
	end string
	err error
}

// release gives op's read buffers back to helloBufPool.
func (op *opening) release() {
	putHelloBuf(op.toUpstream)
	putHelloBuf(op.toClient)
	op.toUpstream, op.toClient = nil, nil
}

// checkFronting is the domain-fronting check of a CONNECT tunnel; see the
// top of this file. early are bytes the client sent before the 200. It
// returns what the tunnel must forward first, or a refusal; on a refusal
// the caller closes both conns and releases the opening.
func (s *Server) checkFronting(r *http.Request, fl *flow, client, upstream net.Conn, early []byte) (*opening, *denial) {
	op := &opening{toUpstream: early}
	// The policy's author turned the check off for the block. (An admitted
	// flow always has a block; nil only guards the dereference.)
	if fl.block == nil || fl.block.AllowSNIMismatch {
		return op, nil
	}
	buf := newHelloBuf(early)
	op.toUpstream = buf
	var hello tlshello.ClientHello
	var perr error = tlshello.ErrIncomplete
	if len(buf) > 0 { // sent with the CONNECT: no need to wait
		hello, perr = tlshello.Parse(buf)
	}
	if perr == tlshello.ErrIncomplete {
		w := s.watchServer(client, upstream, &op.st.Down)
		var rerr error
		buf, hello, perr, rerr = readRecords(client, buf, tlshello.Parse)
		w.stop()
		op.toUpstream = buf
		switch {
		case s.tunnelCtx.Err() != nil:
			op.end, op.err = relay.ReasonCanceled, context.Cause(s.tunnelCtx)
			return op, nil
		case w.werr != nil:
			op.end, op.err = relay.ReasonError, w.werr
			return op, nil
		case perr == tlshello.ErrIncomplete:
			return op, s.unfinishedStart(fl, op, w, rerr)
		}
	}
	switch {
	case perr == tlshello.ErrNotTLS:
		// SSH, SMTP, an SSLv2-format hello: none carries a server name a
		// front could route on, and the tunnel's host was decided.
		return op, nil
	case perr != nil:
		return op, s.connectBadHello(fl, helloRefusal(buf, perr, ""))
	}
	// With an Encrypted Client Hello the outer name is checked, the only one
	// in sight, as the transparent listener decides on it.
	first, d := s.checkSNI(r, fl, hello.ServerName)
	if d != nil {
		return op, d
	}
	if hello.TLS13 {
		return op, s.checkRetry(r, fl, client, upstream, op, &hello, first)
	}
	return op, nil
}

// unfinishedStart decides a tunnel whose client sent no complete first
// message: the check's reading stopped with op.toUpstream, for the reason
// w and rerr tell.
func (s *Server) unfinishedStart(fl *flow, op *opening, w *serverWatch, rerr error) *denial {
	stopped := readStopped(rerr, s.cfg.ReadHeaderTimeout)
	switch {
	case w.idled:
		stopped = "was idle for " + s.cfg.TunnelIdleTimeout.String()
	case w.closed:
		stopped = "waited and the origin closed the connection"
	}
	switch {
	case len(op.toUpstream) > 0:
		return s.connectBadHello(fl, helloRefusal(op.toUpstream, tlshello.ErrIncomplete, stopped))
	case w.idled:
		op.end = relay.ReasonIdleTimeout
		return nil
	case w.closed:
		// The origin closed before the client spoke. A half-closed origin
		// still reads, and nothing would check what the client sends
		// next: the tunnel ends.
		op.end = relay.ReasonEOF
		return nil
	case !errors.Is(rerr, os.ErrDeadlineExceeded):
		// The client closed or failed: it sends nothing more to check.
		return nil
	}
	d := badRequest("neither the client nor the origin sent anything within %s of the 200 to the CONNECT to %s, so the tunnel could not be checked for domain fronting",
		s.cfg.ReadHeaderTimeout, fl.target())
	d.status = 0
	d.fix = fmt.Sprintf("A TLS client sends its ClientHello at once. For a protocol in which neither side speaks that soon, raise -header-timeout, or set allow_sni_mismatch = true for client %q in %s.",
		fl.block.Name, fl.gen.pol.Filename())
	return d
}

// connectBadHello is d, a refusal of a tunnel's first bytes, for a CONNECT
// tunnel: no HTTP status (the 200 is sent), and the tunnel named.
func (s *Server) connectBadHello(fl *flow, d *denial) *denial {
	d.status = 0
	d.detail = "tunnel to " + fl.target() + ": " + d.detail
	d.fix = fmt.Sprintf("A TLS client must send its ClientHello first and whole, in TLS records of versions 3.0 to 3.4, within -header-timeout. A client that speaks another protocol starting with such a byte needs allow_sni_mismatch = true for client %q in %s.",
		fl.block.Name, fl.gen.pol.Filename())
	return d
}

// helloRefusal is the verdict on the first bytes a client sent in a tunnel,
// on which the CONNECT check and the transparent TLS listener agree: nil
// for a well-formed ClientHello, a bad_request otherwise. The CONNECT check
// lets bytes that are not TLS (tlshello.ErrNotTLS) pass before it asks. stopped says
// why reading ended before a ClientHello was complete.
func helloRefusal(buf []byte, perr error, stopped string) *denial {
	switch perr {
	case nil:
		return nil
	case tlshello.ErrNotTLS:
		return badRequest("not TLS: the connection starts with %q", truncate(string(buf[:min(len(buf), 8)]), 8))
	case tlshello.ErrIncomplete:
		return badRequest("incomplete TLS ClientHello (%d bytes) when the client %s", len(buf), stopped)
	}
	return badRequest("malformed TLS ClientHello: %v", perr)
}

// checkSNI refuses the server name raw of a ClientHello in fl's CONNECT
// tunnel unless it names fl's host, or a host fl's client block allows on
// fl's port. It returns the name, or a zero Host if there is none.
func (s *Server) checkSNI(r *http.Request, fl *flow, raw []byte) (host.Host, *denial) {
	if raw == nil {
		// No name to front with; and a client of an IP-literal target
		// sends none (RFC 6066).
		return host.Host{}, nil
	}
	sni, err := wireHost(string(raw))
	if err == nil && (sni == fl.host || fl.block.Decide(sni, fl.port).Allowed) {
		return sni, nil
	}
	d := &denial{
		reason: ReasonSNIMismatch,
		detail: fmt.Sprintf("the TLS server name (SNI) %s in the tunnel to %s names another host, which no allow rule in client block %q allows on port %d (domain fronting)",
			tlshello.PrintableSNI(raw), fl.target(), fl.block.Name, fl.port),
	}
	if err != nil {
		d.detail = fmt.Sprintf("the TLS server name (SNI) %q in the tunnel to %s is not a valid host name", tlshello.PrintableSNI(raw), fl.target())
	} else {
		d.fix = fmt.Sprintf("If the client must send this server name, allow it in client %q in %s:\n\n%s\nor turn the check off for the block with allow_sni_mismatch = true.",
			fl.block.Name, fl.gen.pol.Filename(), suggestRule(sni, fl.port))
	}
	return sni, s.mismatch(r, fl, d, sni, err == nil)
}

// mismatch returns d, an sni_mismatch; in learn mode it logs d as a
// would_deny instead and returns nil, if sni is the valid server name the
// client sent (which learning records) and no deny rule refuses it.
// Learning fills gaps in the allow rules: like a CONNECT target, a server
// name it cannot read or that a deny rule names is refused in learn mode too.
func (s *Server) mismatch(r *http.Request, fl *flow, d *denial, sni host.Host, valid bool) *denial {
	if fl.block.Mode != policy.ModeLearn || !valid || fl.block.Decide(sni, fl.port).Deny != nil {
		return d
	}
	s.m.decisions.WithLabelValues(fl.kind, "would_deny", ReasonSNIMismatch, fl.mode(), fl.blockName()).Inc()
	if valid {
		sfl := *fl
		sfl.host, sfl.rule = sni, nil
		s.observe(&sfl, policy.VerdictWouldDeny, ReasonNoRule)
	}
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "would deny", append(fl.attrs(),
		slog.String(keyDecision, "would_deny"), slog.String(keyReason, ReasonSNIMismatch),
		slog.String(keyDetail, d.detail))...)
	return nil
}

// checkRetry follows a TLS 1.3 handshake through a HelloRetryRequest. It
// forwards ch1, the ClientHello at the start of op.toUpstream, to the
// origin, and reads the origin's first handshake message. If that is a
// HelloRetryRequest, it forwards it and requires the client's next records
// to be a second ClientHello, after at most one change_cipher_spec, whose
// server name is first, ch1's (zero if ch1 has none). Anything else from
// the origin ends the check. Reads are bounded by the header timeout and
// tlshello.MaxBytes; what was read and not forwarded is left in op.
func (s *Server) checkRetry(r *http.Request, fl *flow, client, upstream net.Conn, op *opening, ch1 *tlshello.ClientHello, first host.Host) *denial {
	stop := context.AfterFunc(s.tunnelCtx, func() {
		_ = client.SetReadDeadline(time.Unix(1, 0))
		_ = upstream.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	ended := func(err error) *denial {
		op.end, op.err = relay.ReasonError, err
		if s.tunnelCtx.Err() != nil {
			op.end, op.err = relay.ReasonCanceled, context.Cause(s.tunnelCtx)
		}
		return nil
	}
	if err := writeCounted(upstream, op.toUpstream[:ch1.End], &op.st.Up); err != nil {
		return ended(err)
	}
	op.toUpstream = op.toUpstream[:copy(op.toUpstream, op.toUpstream[ch1.End:])]

	timeout := s.cfg.ReadHeaderTimeout
	_ = upstream.SetReadDeadline(time.Now().Add(timeout))
	sbuf, sh, perr, rerr := readRecords(upstream, newHelloBuf(op.toClient), tlshello.ParseServerHello)
	_ = upstream.SetReadDeadline(time.Time{})
	op.toClient = sbuf
	fix := "The origin must answer a TLS ClientHello within -header-timeout, with a first handshake message of at most 16 KiB."
	switch {
	case s.tunnelCtx.Err() != nil:
		return ended(nil)
	case perr == tlshello.ErrIncomplete && !errors.Is(rerr, os.ErrDeadlineExceeded):
		// The origin closed without answering, so no HelloRetryRequest
		// comes; but a half-closed origin still reads, and nothing would
		// check a second ClientHello: the tunnel ends.
		if errors.Is(rerr, io.EOF) {
			op.end = relay.ReasonEOF
			return nil
		}
		return ended(rerr)
	case perr == tlshello.ErrIncomplete:
		return &denial{reason: ReasonDialFailed, fix: fix,
			detail: fmt.Sprintf("the origin of the tunnel to %s did not answer the TLS ClientHello within %s, so a HelloRetryRequest could not be ruled out", fl.target(), timeout)}
	case perr != nil:
		return &denial{reason: ReasonDialFailed, fix: fix,
			detail: fmt.Sprintf("the origin of the tunnel to %s answered the TLS ClientHello with a handshake message larger than 16 KiB", fl.target())}
	case !sh.Retry:
		return nil
	}

	if err := writeCounted(client, sbuf, &op.st.Down); err != nil {
		return ended(err)
	}
	putHelloBuf(sbuf)
	op.toClient = nil
	_ = client.SetReadDeadline(time.Now().Add(timeout))
	cbuf, ch2, perr, rerr := readRecords(client, op.toUpstream, tlshello.ParseSecond)
	_ = client.SetReadDeadline(time.Time{})
	op.toUpstream = cbuf
	if s.tunnelCtx.Err() != nil {
		return ended(nil)
	}
	if perr != nil {
		d := helloRefusal(cbuf, perr, readStopped(rerr, timeout))
		d.status = 0
		d.detail = fmt.Sprintf("tunnel to %s: after the origin's HelloRetryRequest, %s", fl.target(), d.detail)
		d.fix = "After a HelloRetryRequest, the client must send its second ClientHello, for the same server name, within -header-timeout."
		return d
	}
	var second host.Host
	var err error
	if ch2.ServerName != nil {
		second, err = wireHost(string(ch2.ServerName))
	}
	if err == nil && second == first {
		return nil
	}
	name := func(h host.Host) string {
		if h == (host.Host{}) {
			return "no server name"
		}
		return h.String()
	}
	said := name(second)
	if err != nil {
		said = fmt.Sprintf("%q, not a valid host name,", tlshello.PrintableSNI(ch2.ServerName))
	}
	d := &denial{
		reason: ReasonSNIMismatch,
		detail: fmt.Sprintf("after the origin's HelloRetryRequest in the tunnel to %s, the second TLS ClientHello names %s, the first %s (domain fronting)",
			fl.target(), said, name(first)),
		fix: "A client must send the same server name (SNI) in both ClientHellos of a TLS 1.3 handshake (RFC 8446 §4.1.2); allow_sni_mismatch = true in the client block turns the check off.",
	}
	return s.mismatch(r, fl, d, second, err == nil && second != (host.Host{}))
}

// writeCounted writes b to c within 10s, as replay does, and counts the
// bytes written in n.
func writeCounted(c net.Conn, b []byte, n *atomic.Int64) error {
	if len(b) == 0 {
		return nil
	}
	_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	m, err := c.Write(b)
	n.Add(int64(m))
	return err
}

// serverWatch watches the origin of a CONNECT tunnel while the check waits
// for the client's first bytes (watchServer). An origin that speaks first
// is relayed to the client; the client's read deadline is then lifted (it
// may wait for the origin) and the tunnel's idle timeout, counted on the
// origin's bytes, bounds the wait instead.
type serverWatch struct {
	client, upstream net.Conn
	idle             time.Duration
	down             *atomic.Int64
	halt             atomic.Bool
	done             chan struct{}
	stopCtx          func() bool

	mu          sync.Mutex // orders changes of the client's read deadline
	interrupted bool       // the client's read was cut short: its deadline stays past

	// Set before done is closed.
	closed bool  // the origin closed the connection, or reading it failed
	idled  bool  // the origin spoke, then was quiet for idle
	werr   error // writing to the client failed
}

// watchServer starts watching upstream while the caller reads the first
// bytes of client, for up to the header timeout; the caller then calls
// stop.
func (s *Server) watchServer(client, upstream net.Conn, down *atomic.Int64) *serverWatch {
	w := &serverWatch{client: client, upstream: upstream, idle: s.cfg.TunnelIdleTimeout, down: down, done: make(chan struct{})}
	_ = client.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	w.stopCtx = context.AfterFunc(s.tunnelCtx, func() {
		w.interrupt()
		_ = client.SetWriteDeadline(time.Unix(1, 0)) // a relay blocked on the client
	})
	go w.run()
	return w
}

func (w *serverWatch) run() {
	defer close(w.done)
	// A TLS server never speaks first: on the common path this waits until
	// stop, without reading.
	data, spoke, timedOut := relay.Await(w.upstream)
	if timedOut {
		return
	}
	if !spoke {
		w.closed = true
		w.interrupt()
		return
	}
	w.mu.Lock()
	if !w.interrupted {
		_ = w.client.SetReadDeadline(time.Time{})
	}
	w.mu.Unlock()
	if len(data) > 0 {
		n, werr := w.client.Write(data)
		w.down.Add(int64(n))
		if werr != nil {
			w.werr = werr
			w.interrupt()
			return
		}
		data = nil
	}
	if ct, ok := w.client.(*net.TCPConn); ok {
		if ut, ok := w.upstream.(*net.TCPConn); ok {
			w.splice(ct, ut)
			return
		}
	}
	bp := helloBufPool.Get().(*[helloBufSize]byte)
	defer helloBufPool.Put(bp)
	var err error
	for {
		if len(data) > 0 {
			if w.idle > 0 {
				_ = w.client.SetWriteDeadline(time.Now().Add(w.idle))
			}
			n, werr := w.client.Write(data)
			w.down.Add(int64(n))
			if werr != nil {
				if errors.Is(werr, os.ErrDeadlineExceeded) && !w.halt.Load() {
					w.idled = true // the client neither spoke nor read
				} else {
					w.werr = werr
				}
				w.interrupt()
				return
			}
		}
		if err != nil {
			break
		}
		if w.idle > 0 {
			_ = w.upstream.SetReadDeadline(time.Now().Add(w.idle))
		}
		if w.halt.Load() { // after the deadline: stop's may have been replaced
			return
		}
		var n int
		n, err = w.upstream.Read(bp[:])
		data = bp[:n]
	}
	switch {
	case w.halt.Load():
	case errors.Is(err, os.ErrDeadlineExceeded):
		w.idled = true
		w.interrupt()
	default:
		w.closed = true
		w.interrupt()
	}
}

// spliceChunk is how much splice moves between two looks at halt and the
// idle deadline.
const spliceChunk = 1 << 20

// splice relays what the origin sends first with splice(2), as the tunnel
// would: a download the client never answers goes through here whole, and
// a 4 KiB read and write each (run's loop) cost it three quarters of its
// throughput. The idle deadlines (the origin's reads, the client's writes)
// are renewed between chunks; a chunk that moved anything before one
// expired was not idle. ReadFrom's errors do not
// say which side failed: EPIPE is the client's (it was written to after it
// closed), anything else ends the tunnel as the origin's close.
func (w *serverWatch) splice(client, upstream *net.TCPConn) {
	for {
		if w.idle > 0 {
			// Either side may stall: an origin that goes quiet, or a
			// client that neither speaks nor reads.
			_ = upstream.SetReadDeadline(time.Now().Add(w.idle))
			_ = client.SetWriteDeadline(time.Now().Add(w.idle))
		}
		if w.halt.Load() { // after the deadline: stop's may have been replaced
			return
		}
		lr := io.LimitedReader{R: upstream, N: spliceChunk}
		n, err := client.ReadFrom(&lr)
		w.down.Add(n)
		switch {
		case w.halt.Load():
			return
		case err == nil && lr.N > 0: // the origin's EOF
			w.closed = true
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && n > 0:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.idled = true
		case errors.Is(err, syscall.EPIPE):
			w.werr = err
		default:
			w.closed = true
		}
		w.interrupt()
		return
	}
}

// interrupt ends the caller's read of the client's first bytes.
func (w *serverWatch) interrupt() {
	w.mu.Lock()
	w.interrupted = true
	_ = w.client.SetReadDeadline(time.Unix(1, 0))
	w.mu.Unlock()
}

// stop ends the watch, once the client's first bytes are read, and waits
// for a relay in progress to finish its write.
func (w *serverWatch) stop() {
	w.stopCtx()
	w.halt.Store(true)
	_ = w.upstream.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	_ = w.upstream.SetReadDeadline(time.Time{})
	_ = w.client.SetReadDeadline(time.Time{})
	_ = w.client.SetWriteDeadline(time.Time{})
}
