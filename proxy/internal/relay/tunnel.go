package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Reasons a tunnel ended, as Start reports them to done; the proxy logs
// them as the close reason and counts them by it.
const (
	ReasonEOF         = "eof"          // both sides ended, or one closed after the other had
	ReasonIdleTimeout = "idle_timeout" // no bytes moved for the idle duration
	ReasonCanceled    = "canceled"     // the context was done
	ReasonError       = "error"        // reading a side failed, or writing to a side that had not ended
)

// Stats are live byte counts of one tunnel, readable while it runs.
type Stats struct {
	Up   atomic.Int64 // client→upstream bytes written to upstream
	Down atomic.Int64 // upstream→client bytes written to client
}

// Start copies between client and upstream until both directions have
// finished, the tunnel is idle for longer than idle (0 means no idle
// timeout), or ctx is done. It returns at once and calls done exactly once,
// after both conns are closed and nothing of the tunnel runs any more. The
// reason is one of ReasonEOF (a normal end), ReasonIdleTimeout,
// ReasonCanceled (ctx) and ReasonError.
//
// err is nil for "eof" and "idle_timeout", context.Cause(ctx) for "canceled",
// and the first failure for "error". st may be nil.
//
// Start clears any deadlines already set on the conns. When both conns are
// *net.TCPConn on Linux, a message moves with one read and one write through a
// pooled buffer, a bulk transfer with splice(2), and a direction waiting for
// data holds no pipe, so an idle tunnel costs only its two sockets; other conns
// are copied through a pooled 32 KiB buffer. When one direction reaches EOF,
// the other conn's write side is closed with CloseWrite and the other
// direction keeps running; a conn without CloseWrite (net.Pipe) cannot
// half-close, so the tunnel then ends at once.
//
// A direction ends when its source does: at EOF, or when reading it fails
// (a reset, a timeout). Either way its destination gets a FIN after every
// byte read from the source, never a reset that would discard them, and the
// other direction runs on. A direction whose destination fails (dstFailed)
// reads and drops the rest of its source, so that closing that side is a
// FIN and not the reset a close with unread bytes makes, until nothing sent
// to that side is left unacknowledged (lingerOver).
//
// The end is "eof" when the side that failed had ended first: a write meets
// a socket its peer closed after its FIN (dstFailed), or a side resets after
// the other had ended its sending (srcFailed); bytes meet a closed socket as
// they would on a direct connection. Any other failure makes it "error";
// only a side whose read failed is then closed with a reset (SO_LINGER 0).
//
// The tunnel is idle when, for the whole idle duration, no bytes were read
// from either side and no write made progress. A write blocked because a peer
// reads slowly makes progress while that peer keeps acknowledging bytes
// (TCP_INFO tcpi_bytes_acked, Linux); a peer that stopped reading altogether
// is idle. Where acknowledgements cannot be observed (non-TCP conns, other
// OSes), a pending write always counts as activity. Idleness is checked by one
// timer per tunnel that is re-armed only when it fires, not by deadlines.
//
// On Linux, between two *net.TCPConn, an idle tunnel holds no goroutine: a
// direction with nothing to read parks its socket in one epoll instance
// shared by all tunnels, whose single loop goroutine starts a copier when the
// socket becomes readable. That copier keeps waiting in Go's poller (with a
// read deadline on its socket) until the tunnel has been quiet for
// epollQuiet, then parks again. An idle tunnel is then its heap state (about
// 1.5 KiB) and its two sockets. Other conns and OSes take a goroutine per
// direction for the tunnel's life.
//
// The conns, and their deadlines, belong to the tunnel until done: to end
// it early, cancel ctx. Closing a conn from outside is not noticed while the
// tunnel idles (closing removes the socket from epoll silently), only at the
// idle timeout, if any.
//
// done runs on a goroutine of the tunnel's own (a copier, the idle timer or
// ctx's AfterFunc), never inside Start and never on the shared epoll
// loop, so it may block and may log; nothing waits for it.
func Start(ctx context.Context, client, upstream net.Conn, idle time.Duration, st *Stats, done func(reason string, err error)) {
	t := newTunnel(client, upstream, idle, st, done)
	t.quiet = epollQuiet
	t.run(ctx, parkEpoll)
}

// pipe is Start waiting for done, for tests.
func pipe(ctx context.Context, client, upstream net.Conn, idle time.Duration, st *Stats) (reason string, err error) {
	ch := make(chan struct{})
	Start(ctx, client, upstream, idle, st, func(r string, e error) {
		reason, err = r, e
		close(ch)
	})
	<-ch
	return reason, err
}

// readFirst reads what c sends first, for Await where the bytes cannot be
// left queued.
func readFirst(c net.Conn) (data []byte, spoke, timedOut bool) {
	b := make([]byte, 1024)
	n, err := c.Read(b)
	return b[:n], n > 0, n == 0 && errors.Is(err, os.ErrDeadlineExceeded)
}

// epollQuiet is how long a direction resumed from epoll keeps waiting in Go's
// runtime poller after the tunnel's last activity before it parks in epoll
// again. Waking from Go's poller is faster than waking through epoll (one hop
// and a new goroutine less), so busy tunnels keep their latency; idle ones
// give their goroutines up soon after.
const epollQuiet = 20 * time.Millisecond

// parkMode says where a splice direction waits for data.
type parkMode int

const (
	parkEpoll parkMode = iota // the shared epoll instance; no goroutine while idle
	parkGo                    // Go's runtime poller, on the direction's goroutine (before #5)
)

func newTunnel(client, upstream net.Conn, idle time.Duration, st *Stats, done func(string, error)) *tunnel {
	if st == nil {
		st = new(Stats)
	}
	t := &tunnel{
		client:   client,
		upstream: upstream,
		idle:     idle,
		start:    time.Now(),
		done:     done,
	}
	t.dirs[0] = direction{t: t, dst: upstream, src: client, n: &st.Up, acked: ackProbe(upstream)}
	t.dirs[1] = direction{t: t, dst: client, src: upstream, n: &st.Down, acked: ackProbe(client)}
	t.dirs[0].other, t.dirs[1].other = &t.dirs[1], &t.dirs[0]
	return t
}

// run starts moving bytes and returns; see Start.
func (t *tunnel) run(ctx context.Context, mode parkMode) {
	// Deadlines left over from the handshake would end the tunnel spuriously.
	t.client.SetDeadline(time.Time{})
	t.upstream.SetDeadline(time.Time{})
	t.pending.Store(2)

	splice := t.prepareSplice(mode)
	t.stopCtx = context.AfterFunc(ctx, func() { t.end(ReasonCanceled, context.Cause(ctx)) })
	if t.idle > 0 {
		t.mu.Lock()
		t.timer = time.AfterFunc(t.idle, t.checkIdle)
		t.mu.Unlock()
	}
	for i := range t.dirs {
		d := &t.dirs[i]
		switch {
		case !splice:
			go t.runGeneric(d)
		case !t.startParked(d):
			go t.runSplice(d)
		}
	}
}

// tunnel is the state of one Start call.
type tunnel struct {
	client, upstream net.Conn
	idle             time.Duration
	start            time.Time    // monotonic origin for last
	last             atomic.Int64 // nanoseconds since start of the latest activity
	dirs             [2]direction // client→upstream, upstream→client
	pending          atomic.Int32 // directions not yet done
	done             func(reason string, err error)
	stopCtx          func() bool
	ep               *poller       // shared epoll instance splice directions park in; nil: Go's poller
	quiet            time.Duration // with ep, how long a resumed direction waits in Go's poller first

	mu      sync.Mutex  // guards timer, stopped, fault and direction.lastAcked
	timer   *time.Timer // idle watchdog; nil if idle is 0
	stopped bool        // the tunnel is finishing; do not re-arm timer
	fault   error       // the first failure; the tunnel's end is then "error"

	once   sync.Once // guards reason and err, and closing the conns
	reason string
	err    error
}

// Direction states. A running direction is owned by exactly one goroutine; a
// parked one by nobody: the epoll loop (readable) or end (closed) claims it
// with a compare-and-swap.
const (
	dirRunning int32 = iota
	dirParked
	dirDone
)

// direction is one half of a tunnel: bytes read from src are written to dst.
type direction struct {
	t        *tunnel
	dst, src net.Conn
	other    *direction    // the direction from dst to src
	n        *atomic.Int64 // bytes written to dst
	busy     atomic.Bool   // a write to dst is in progress
	state    atomic.Int32  // dirRunning, dirParked or dirDone
	eof      atomic.Bool   // src reached EOF: its peer ended its sending
	readErr  atomic.Bool   // reading src failed; end resets src
	sp       spliceState   // owned by the goroutine running the direction

	// sink says dst failed: what src sends from then on is read and
	// dropped. Owned by the goroutine running the direction.
	sink bool

	// acked, if non-nil, reports the bytes dst's peer has acknowledged, so
	// the watchdog can tell a slow reader from one that stopped reading.
	// If nil, or if it reports false, a pending write counts as activity.
	acked     func() (uint64, bool)
	lastAcked uint64 // guarded by tunnel.mu
}

// touch records activity now.
func (t *tunnel) touch() {
	t.last.Store(int64(time.Since(t.start)))
}

// end records why the tunnel ended, if it is the first to, and closes both
// conns. A recorded failure (fail) makes the reason "error", whatever ended
// the tunnel. Directions parked in epoll are then done: closing removed their
// sockets from it, so no event will come for them.
//
// Only a side whose read failed is reset: its stream was cut, and the reset
// frees its socket at once instead of lingering towards a peer that is gone.
// Every other side is closed with a FIN, after whatever is still queued
// towards it: at an idle timeout nothing moved for the idle duration, and at
// a cancel (the server's shutdown deadline) the peer still gets the bytes
// the tunnel read for it. The kernel resets a side itself if bytes it sent
// are still unread.
func (t *tunnel) end(reason string, err error) {
	first := false
	t.once.Do(func() {
		first = true
		t.mu.Lock()
		if t.fault != nil {
			reason, err = ReasonError, t.fault
		}
		t.mu.Unlock()
		t.reason, t.err = reason, err
		for i := range t.dirs {
			if t.dirs[i].readErr.Load() {
				abort(t.dirs[i].src)
			}
		}
		t.unwatch()
		t.client.Close()
		t.upstream.Close()
	})
	if !first {
		return
	}
	for i := range t.dirs {
		if t.dirs[i].state.CompareAndSwap(dirParked, dirDone) {
			t.dirDone()
		}
	}
}

// exit is the last thing the goroutine running d does: it records err, an
// error reading src (nil at EOF), and marks d done.
func (t *tunnel) exit(d *direction, err error) {
	if err != nil {
		t.srcFailed(d, err)
	}
	d.state.Store(dirDone)
	t.dirDone()
}

// dirDone counts one direction as done; the last one finalizes the tunnel.
func (t *tunnel) dirDone() {
	if t.pending.Add(-1) != 0 {
		return
	}
	t.end(ReasonEOF, nil) // "error" if a failure was recorded; no-op if the tunnel ended already
	t.stopCtx()
	t.mu.Lock()
	t.stopped = true
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
	t.release()
	t.done(t.reason, t.err)
}

// runGeneric runs d with copyGeneric on the calling goroutine.
func (t *tunnel) runGeneric(d *direction) {
	t.exit(d, t.copyGeneric(d))
}

// fail records err as the reason the tunnel's end will be "error", unless a
// failure was recorded before. Failures after end (often caused by end
// closing the conns) change nothing.
func (t *tunnel) fail(err error) {
	t.mu.Lock()
	if t.fault == nil {
		t.fault = err
	}
	t.mu.Unlock()
}

// srcFailed records that reading d.src failed: the tunnel's end is "error",
// and d.src is reset then. d.dst has been written every byte read from src,
// so it gets a FIN after them; the other direction runs on, and drops what
// it reads once writing to the failed side fails.
//
// One reset is the normal end: src's peer resets after the other side had
// ended its sending (we read its EOF). A peer that closes its socket with
// bytes unread, such as a TLS close_notify that came after it had answered
// and before it closed, makes its kernel send a reset instead of a FIN; the
// other side had ended the conversation already.
func (t *tunnel) srcFailed(d *direction, err error) {
	if !errors.Is(err, syscall.ECONNRESET) || !d.other.eof.Load() {
		d.readErr.Store(true)
		t.fail(err)
	}
	if !d.sink {
		t.halfClose(d) // a failure is the other direction's to find
	}
}

// srcEOF propagates d.src's EOF to d.dst, unless dst failed already.
func (t *tunnel) srcEOF(d *direction) {
	d.eof.Store(true)
	if d.sink {
		return
	}
	if err := t.halfClose(d); err != nil {
		t.dstFailed(d, err)
	}
}

// dstFailed records that writing to, or half-closing, d.dst failed, and
// makes d drop what it reads from src from now on.
//
// The tunnel's end is "error" unless the failure is what a side that ended
// first answers. A socket whose peer closed altogether (rather than only
// ended its sending) is reset by that peer when more bytes reach it, and
// then answers EPIPE to a write (Linux reports a reset that followed the
// peer's FIN as EPIPE) and ENOTCONN to a half-close: src's bytes meet a
// closed socket, as they would on a direct connection. If that peer reset
// without a FIN first, the other direction reads the reset and records it.
// ECONNRESET here is such a reset, and the write that reports it takes it
// from the socket: the other direction then reads a plain EOF.
func (t *tunnel) dstFailed(d *direction, err error) {
	d.sink = true
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ENOTCONN) {
		t.fail(err)
	}
}

// abort makes a later Close send a reset instead of a FIN, when c supports it.
func abort(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
}

// checkIdle runs when the idle watchdog fires. It ends the tunnel if nothing
// moved for t.idle, and otherwise re-arms the watchdog for the remaining time.
func (t *tunnel) checkIdle() {
	t.mu.Lock()
	if t.stopped {
		t.mu.Unlock()
		return
	}
	now := int64(time.Since(t.start))
	for i := range t.dirs {
		d := &t.dirs[i]
		if !d.busy.Load() {
			continue
		}
		// A write has been pending since the last activity. It made progress
		// if dst's peer acknowledged anything since the previous sample. A
		// stale sample from an earlier write only errs towards activity.
		var a uint64
		ok := false
		if d.acked != nil {
			a, ok = d.acked()
		}
		if !ok || a != d.lastAcked {
			d.lastAcked = a
			t.last.Store(now)
		}
	}
	idleFor := time.Duration(now - t.last.Load())
	if idleFor < t.idle {
		t.timer.Reset(t.idle - idleFor)
		t.mu.Unlock()
		return
	}
	t.mu.Unlock()
	// Not under t.mu: end may finalize the tunnel, which takes it.
	t.end(ReasonIdleTimeout, nil)
}

// lingerOver reports whether d, which drops what it reads because its dst
// failed, may stop reading src: the other direction is done, so nothing more
// will be sent to src's peer, and that peer has acknowledged every byte and
// the FIN sent to it. Closing src then loses its peer nothing, even if src
// keeps sending and the close is a reset; on a direct connection, bytes sent
// after the other end closed are answered with a reset too.
func (t *tunnel) lingerOver(d *direction) bool {
	return d.other.state.Load() == dirDone && allAcked(d.src)
}

// halfClose propagates EOF from d.src to d.dst. If d.dst cannot close only its
// write side, the whole tunnel ends (cleanly unless a failure was recorded).
func (t *tunnel) halfClose(d *direction) error {
	if cw, ok := d.dst.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	t.end(ReasonEOF, nil)
	return nil
}

// copyBufPool holds 32 KiB buffers for copyGeneric.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyGeneric copies d.src to d.dst through a pooled buffer until d.src
// reaches EOF, which it propagates with srcEOF, or reading it fails, which it
// returns. If dst fails, it records that with dstFailed and drops the rest.
func (t *tunnel) copyGeneric(d *direction) error {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	for {
		nr, rerr := d.src.Read(buf)
		switch {
		case nr == 0:
		case d.sink:
			// Dropped bytes are no activity.
			if t.lingerOver(d) {
				return nil
			}
		default:
			d.busy.Store(true)
			t.touch()
			nw, werr := d.dst.Write(buf[:nr])
			d.n.Add(int64(nw))
			t.touch()
			d.busy.Store(false)
			if werr == nil && nw != nr {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				t.dstFailed(d, werr)
			}
		}
		if errors.Is(rerr, io.EOF) {
			t.srcEOF(d)
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
