package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
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
// HelloRetryRequest, after which the server reads a second ClientHello,
// which must name the same server as the first. The transparent TLS
// listener shares that part (followCheck).
//
// The decisions are openingCheck's (opening.go); this file does the check's
// I/O on goroutines: it reads, writes and watches the origin, shows the
// check what happened, and carries out its steps.

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
	var m openingCheck
	st := m.start(fl, s.cfg.ReadHeaderTimeout, s.cfg.TunnelIdleTimeout)
	if st.kind != stepMore {
		return op, nil
	}
	buf := newHelloBuf(early)
	op.toUpstream = buf
	if len(buf) > 0 { // sent with the CONNECT: no need to wait
		st = m.client(buf)
	}
	if st.kind == stepMore {
		w := s.watchServer(client, upstream, &op.st.Down, &m)
		buf, st = readShown(client, buf, w.clientRead)
		m = w.stop()
		op.toUpstream = buf
	}
	return op, s.followCheck(r, fl, client, upstream, op, &m, st)
}

// followCheck carries out m's steps from st until m decides. After a
// forwarded first ClientHello it reads the origin's answer, and after a
// HelloRetryRequest, which it relays, the client's second ClientHello, each
// within the header timeout and tlshello.MaxBytes. It returns m's refusal,
// if any; an end of the tunnel is left in op, and so is what was read and
// not forwarded.
func (s *Server) followCheck(r *http.Request, fl *flow, client, upstream net.Conn, op *opening, m *openingCheck, st step) *denial {
	var stop func() bool
	defer func() {
		if stop != nil {
			stop()
		}
	}()
	for {
		if st.warn != nil {
			s.wouldDeny(r, fl, st.warn, st.warnHost)
		}
		switch st.kind {
		case stepRelay:
			return nil
		case stepRefuse:
			return st.d
		case stepEnd:
			op.end, op.err = st.reason, st.err
			return nil
		case stepForward:
			if stop == nil {
				stop = context.AfterFunc(s.tunnelCtx, func() {
					_ = client.SetReadDeadline(time.Unix(1, 0))
					_ = upstream.SetReadDeadline(time.Unix(1, 0))
				})
			}
			if err := writeCounted(upstream, op.toUpstream[:st.n], &op.st.Up); err != nil {
				st = s.failed(m, evOriginError, err)
				continue
			}
			op.toUpstream = op.toUpstream[:copy(op.toUpstream, op.toUpstream[st.n:])]
			_ = upstream.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
			op.toClient, st = readShown(upstream, newHelloBuf(op.toClient), func(buf []byte, n int, err error) (step, bool) {
				st := s.shown(m, buf, n, err, true)
				return st, st.kind != stepMore || m.phase != phaseAnswer
			})
			_ = upstream.SetReadDeadline(time.Time{})
		default: // a HelloRetryRequest, read in op.toClient
			if err := writeCounted(client, op.toClient, &op.st.Down); err != nil {
				st = s.failed(m, evClientWriteError, err)
				continue
			}
			putHelloBuf(op.toClient)
			op.toClient = nil
			if st = m.client(op.toUpstream); st.kind != stepMore {
				continue
			}
			_ = client.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
			op.toUpstream, st = readShown(client, op.toUpstream, func(buf []byte, n int, err error) (step, bool) {
				st := s.shown(m, buf, n, err, false)
				return st, st.kind != stepMore
			})
			_ = client.SetReadDeadline(time.Time{})
		}
	}
}

// failed tells m that I/O on the tunnel failed with err (e), or, if the
// tunnel was canceled, that.
func (s *Server) failed(m *openingCheck, e openingEvent, err error) step {
	if s.tunnelCtx.Err() != nil {
		return m.event(evCanceled, context.Cause(s.tunnelCtx))
	}
	return m.event(e, err)
}

// shown tells m what a read of the origin (fromOrigin) or the client
// returned, or that the tunnel was canceled.
func (s *Server) shown(m *openingCheck, buf []byte, n int, err error, fromOrigin bool) step {
	if s.tunnelCtx.Err() != nil {
		return m.event(evCanceled, context.Cause(s.tunnelCtx))
	}
	return showRead(m, buf, n, err, fromOrigin)
}

// showRead tells m what a read of the origin (fromOrigin) or the client
// returned: n new bytes at the end of buf, every byte held, and err.
func showRead(m *openingCheck, buf []byte, n int, err error, fromOrigin bool) step {
	phase := m.phase
	st := step{kind: stepMore}
	if n > 0 {
		if fromOrigin {
			st = m.server(buf[len(buf)-n:])
		} else {
			st = m.client(buf)
		}
	}
	if err == nil || st.kind != stepMore || m.phase != phase {
		return st // the bytes read decided, as a parser's final answer does
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return m.event(evOpeningTimeout, nil)
	case fromOrigin && errors.Is(err, io.EOF):
		return m.event(evOriginEOF, nil)
	case fromOrigin:
		return m.event(evOriginError, err)
	case errors.Is(err, io.EOF):
		return m.event(evClientEOF, nil)
	}
	return m.event(evClientError, err)
}

// readShown reads from c, after the bytes already in buf, and shows each
// read to show until it reports done. It returns every byte read and
// show's last step. buf grows up to tlshello.MaxBytes, which is all the
// check may ask for.
func readShown(c net.Conn, buf []byte, show func(buf []byte, n int, err error) (step, bool)) ([]byte, step) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(tlshello.MaxBytes, max(2*cap(buf), helloBufSize))-len(buf))
		}
		n, err := c.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if st, done := show(buf, n, err); done {
			return buf, st
		}
	}
}

// wouldDeny logs and counts d, an sni_mismatch for the server name sni
// that learn mode lets through (a step's warning), as a would_deny.
func (s *Server) wouldDeny(r *http.Request, fl *flow, d *denial, sni host.Host) {
	s.m.decisions.WithLabelValues(fl.kind, "would_deny", ReasonSNIMismatch, fl.mode(), fl.blockName()).Inc()
	sfl := *fl
	sfl.host, sfl.rule = sni, nil
	s.observe(&sfl, policy.VerdictWouldDeny, ReasonNoRule)
	s.log.LogAttrs(r.Context(), slog.LevelWarn, "would deny", append(fl.attrs(),
		slog.String(keyDecision, "would_deny"), slog.String(keyReason, ReasonSNIMismatch),
		slog.String(keyDetail, d.detail))...)
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
// for the client's first bytes (watchServer), and shows the check what it
// sees. An origin that speaks first is relayed to the client; the check
// then lifts the client's read deadline (it may wait for the origin), and
// the tunnel's idle timeout, counted on the origin's bytes, bounds the wait
// instead.
type serverWatch struct {
	ctx              context.Context
	client, upstream net.Conn
	idle             time.Duration
	down             *atomic.Int64
	halt             atomic.Bool
	done             chan struct{}
	stopCtx          func() bool

	// mu orders what the check is shown, from the watch, the client's
	// reader and the tunnel's cancellation, and changes of the client's
	// read deadline.
	mu      sync.Mutex
	m       openingCheck // the caller's, until stop
	st      step         // the step that ended the wait for the first bytes
	decided bool         // st is set; the client's read deadline stays as it is
}

// watchServer starts watching upstream while the caller reads the first
// bytes of client, for up to the header timeout, and shows what it reads
// to the check m (clientRead); the caller then calls stop, which hands
// the check back.
func (s *Server) watchServer(client, upstream net.Conn, down *atomic.Int64, m *openingCheck) *serverWatch {
	w := &serverWatch{ctx: s.tunnelCtx, client: client, upstream: upstream, idle: s.cfg.TunnelIdleTimeout, down: down, done: make(chan struct{}), m: *m}
	_ = client.SetReadDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	w.stopCtx = context.AfterFunc(s.tunnelCtx, func() {
		w.event(evCanceled, context.Cause(s.tunnelCtx))
		_ = client.SetWriteDeadline(time.Unix(1, 0)) // a relay blocked on the client
	})
	go w.run()
	return w
}

// clientRead is readShown's show for the client's first bytes: it shows
// the check a read unless the wait is over, and reports whether it is.
func (w *serverWatch) clientRead(buf []byte, n int, err error) (step, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.decided {
		if w.ctx.Err() != nil {
			w.st = w.m.event(evCanceled, context.Cause(w.ctx))
		} else {
			w.st = showRead(&w.m, buf, n, err, false)
		}
		w.decided = w.st.kind != stepMore
	}
	return w.st, w.decided
}

// event shows the check e, unless the wait for the client's first bytes
// is over; if the check decides, the client's read is cut short.
func (w *serverWatch) event(e openingEvent, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.decided {
		w.decide(w.m.event(e, err))
	}
}

// spoke shows the check that the origin sent data (which may be nil: the
// bytes are relayed unread), unless the wait is over.
func (w *serverWatch) spoke(data []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.decided {
		return
	}
	st := w.m.server(data)
	if st.timer == timerIdle {
		_ = w.client.SetReadDeadline(time.Time{})
	}
	w.decide(st)
}

// decide ends the wait with st unless st waits on. w.mu is held.
func (w *serverWatch) decide(st step) {
	if st.kind == stepMore {
		return
	}
	w.st, w.decided = st, true
	_ = w.client.SetReadDeadline(time.Unix(1, 0))
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
		w.event(evOriginEOF, nil)
		return
	}
	w.spoke(data)
	if len(data) > 0 {
		n, werr := w.client.Write(data)
		w.down.Add(int64(n))
		if werr != nil {
			w.event(evClientWriteError, werr)
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
					w.event(evIdleTimeout, nil) // the client neither spoke nor read
				} else {
					w.event(evClientWriteError, werr)
				}
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
		w.event(evIdleTimeout, nil)
	case errors.Is(err, io.EOF):
		w.event(evOriginEOF, nil)
	default:
		w.event(evOriginError, err)
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
			w.event(evOriginEOF, nil)
		case err == nil:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded) && n > 0:
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.event(evIdleTimeout, nil)
		case errors.Is(err, syscall.EPIPE):
			w.event(evClientWriteError, err)
		default:
			w.event(evOriginError, err)
		}
		return
	}
}

// stop ends the watch, once the client's first bytes are read, waits for
// a relay in progress to finish its write, and returns the check.
func (w *serverWatch) stop() openingCheck {
	w.stopCtx()
	w.halt.Store(true)
	_ = w.upstream.SetReadDeadline(time.Unix(1, 0))
	<-w.done
	_ = w.upstream.SetReadDeadline(time.Time{})
	_ = w.client.SetReadDeadline(time.Time{})
	_ = w.client.SetWriteDeadline(time.Time{})
	// The cancellation's function may still run, but the check has
	// decided: it changes nothing.
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.m
}
