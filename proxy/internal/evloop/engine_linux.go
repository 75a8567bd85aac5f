package evloop

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Engine serves connections from its loops; see the package doc.
type Engine struct {
	cfg   Config
	xIdle int64 // an exchange's idle timeout: IdleTimeout, else HeadTimeout
	loops []*loop
	wg    sync.WaitGroup // the loops' goroutines
	live  atomic.Int64   // connections accepted and not yet closed or handed off
	base  time.Time      // the loops' clock starts here (one clock: the pool's times)
	pool  originPool     // idle origins (pool_linux.go)

	mu      sync.Mutex
	closing bool
	lns     []*listener
	done    chan struct{} // closed when Shutdown begins
}

// listener is a dup of a Serve listener's fd, shared by every loop's epoll
// set; the last loop to remove it closes it.
type listener struct {
	fd   int
	refs int // loops that still have it; guarded by Engine.mu
}

// New starts cfg.Loops event loops; they run until Shutdown.
func New(cfg Config) (*Engine, error) {
	if cfg.Handler == nil {
		return nil, errors.New("evloop: Config.Handler is required: it decides what each connection gets")
	}
	if cfg.Loops <= 0 {
		cfg.Loops = runtime.GOMAXPROCS(0)
	}
	if cfg.HeadTimeout <= 0 {
		cfg.HeadTimeout = 10 * time.Second
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.ClientIdleTimeout <= 0 {
		cfg.ClientIdleTimeout = cfg.HeadTimeout
	}
	if cfg.OriginIdleTimeout <= 0 {
		cfg.OriginIdleTimeout = 90 * time.Second
	}
	if cfg.KeepAliveAfter <= 0 {
		cfg.KeepAliveAfter = 5 * time.Second
	}
	e := &Engine{cfg: cfg, xIdle: int64(cfg.IdleTimeout), done: make(chan struct{}), base: time.Now()}
	if e.xIdle <= 0 {
		e.xIdle = int64(cfg.HeadTimeout)
	}
	for range cfg.Loops {
		l, err := newLoop(e)
		if err != nil {
			for _, l := range e.loops {
				l.closeFDs()
			}
			return nil, err
		}
		e.loops = append(e.loops, l)
	}
	for _, l := range e.loops {
		e.wg.Add(1)
		go l.run()
	}
	return e, nil
}

// Serve accepts connections on ln in every loop until Shutdown, then
// returns ErrClosed. It serves a duplicate of ln's fd, so ln stays the
// caller's (a systemd-activated listener keeps working) and must stay open.
func (e *Engine) Serve(ln *net.TCPListener) error {
	rc, err := ln.SyscallConn()
	if err != nil {
		return err
	}
	fd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return err
	}
	if derr != nil {
		return os.NewSyscallError("fcntl", derr)
	}
	// The loops accept with a raw system call until EAGAIN (sys_linux.go):
	// on a blocking listener the last one would hold the loop's thread.
	// Go's listeners are non-blocking; one set blocking by its owner (the
	// flag is the open file's, shared with ln) is made non-blocking again.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("fcntl", err)
	}
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		unix.Close(fd)
		return ErrClosed
	}
	lst := &listener{fd: fd}
	for i, l := range e.loops {
		if err := l.addListener(fd); err != nil {
			for _, l := range e.loops[:i] {
				unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil)
			}
			e.mu.Unlock()
			unix.Close(fd)
			return err
		}
		lst.refs++
	}
	e.lns = append(e.lns, lst)
	e.mu.Unlock()
	<-e.done
	return ErrClosed
}

// Shutdown stops accepting, closes connections still in their head phase
// (a client kept alive after an exchange among them) and the origins the
// loops keep, and waits for the others to end, or for ctx: then it closes them, with
// ReasonCanceled, and returns ctx's error. It returns once every loop and
// its fds are gone.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	first := !e.closing
	e.closing = true
	e.mu.Unlock()
	if !first {
		<-e.done
		e.wg.Wait()
		return nil
	}
	close(e.done)
	for _, l := range e.loops {
		l.post(ctlMsg{kind: ctlStop})
	}
	var err error
	wait := time.Millisecond
	for e.live.Load() > 0 && err == nil {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			err = ctx.Err()
			for _, l := range e.loops {
				l.post(ctlMsg{kind: ctlCancel, err: context.Cause(ctx)})
			}
		case <-t.C:
		}
		t.Stop()
		wait = min(2*wait, 50*time.Millisecond)
	}
	for _, l := range e.loops {
		l.post(ctlMsg{kind: ctlExit})
	}
	e.wg.Wait()
	return err
}

// ExchangeIdle is how long an exchange may go with no byte moved:
// Config.IdleTimeout, else HeadTimeout.
func (e *Engine) ExchangeIdle() time.Duration { return time.Duration(e.xIdle) }

// Conns is the number of client connections the engine serves: accepted
// and not yet closed or handed off.
func (e *Engine) Conns() int64 { return e.live.Load() }

// CloseIdle closes the origin connections the loops keep idle, pooled or
// held for a kept-alive client's next request: after a policy reload none
// of them may serve a request again (their keys name the old policy).
// It returns at once; the loops close them soon after.
func (e *Engine) CloseIdle() {
	for _, l := range e.loops {
		l.post(ctlMsg{kind: ctlCloseIdle})
	}
}

// Conn is one client connection and, once dialed, its origin. Its methods
// other than Resume are for the handler's callbacks, on the loop.
type Conn struct {
	l       *loop
	slot    int32
	gen     uint32
	phase   Phase
	closed  bool
	attempt uint8 // dial attempts, for telling stale origin events apart
	remote  netip.AddrPort
	data    any
	err     error // why reading the client, or in an exchange the origin, failed (EventError)
	fault   error // the first failure of the tunnel: its end is then "error"

	// attached: sides[1] is an idle origin kept after an exchange, for
	// the next one with an equal x.key.
	attached bool
	idleHead bool // a kept client's head phase, before its first byte
	x        exchange

	sides [2]side // client, origin
	dirs  [2]dir  // client→origin, origin→client

	hb *[HeadBufSize]byte    // the head buffer, then the opening's while it fits
	ob *[OpeningBufSize]byte // the opening buffer, once more came
	n  int                   // bytes in the buffer

	reply     []byte
	addrs     []netip.AddrPort
	next      int
	dialErr   error
	headStart int64 // when the head phase began, for Resume(NeedMore)
	deadline  int64 // loop clock; 0: none
	tidx      int32 // index in the loop's timer heap, -1 if not there
	last      int64 // the latest activity, for the idle timeout
	keepAt    int64 // when a tunnel's origin socket gets keep-alive; 0: it has it, or never will
	endReason string
	endErr    error
}

type side struct {
	fd      int
	canRead bool // the last read did not find the socket empty
	readErr bool // reading failed: reset it at close
	hup     bool // the peer ended its sending or failed (EPOLLRDHUP, HUP, ERR)
}

// exchange is the state of c's current exchange (PhaseExchange), and the
// key of its attached origin.
type exchange struct {
	key     any
	state   uint8 // xsDial, xsHead, xsBody
	req     []byte
	headLen int              // the head's bytes in c.hb, req's source if sent as is
	addrs   []netip.AddrPort // to dial again for a retry
	sent    int              // bytes of req written to this origin
	up      int64            // request bytes written, every attempt
	retry   bool
	// reused: the origin is a kept one; got: a response byte came from it.
	reused, got bool
	dialStart   int64                  // loop clock: when the dial of a new origin began
	dial        int64                  // how long it took to connect; 0 until it has
	rb          *[ResponseBufSize]byte // the response head
	rn          int                    // bytes in rb
	keepClient  bool
	keepOrigin  bool
	// originEnd: the origin ended its sending, or failed. done: Body said
	// the response ended; exact: where the origin's bytes did; drained:
	// the last origin read found the socket empty.
	originEnd, done, exact, drained bool
}

// Exchange states.
const (
	xsDial = iota // connecting to the origin
	xsHead        // sending the request, reading the response head
	xsBody        // moving the response body to the client
)

// dir is one direction of a tunnel: bytes read from sides[i] are written to
// sides[1-i].
type dir struct {
	out        []byte              // bytes read for dst that it has not taken yet
	outBuf     *[relayBufSize]byte // out's pooled backing, if any
	uncounted  int                 // leading bytes of out not counted in n (the reply)
	n          int64               // bytes written to dst
	pipe       *pipePair           // bulk: bytes spliced from src wait here for dst
	inPipe     int                 //
	bulk       bool                // the last read filled a buffer: splice
	srcEnded   bool                // src reached EOF or failed
	eof        bool                // src reached EOF
	finPending bool                // dst gets a FIN once out and the pipe drain
	finSent    bool                //
	sink       bool                // dst failed: what src sends is dropped
	err        error               // why writing to dst failed
}

// Resume gives the answer to a Head that returned Pending. It may be called
// from any goroutine; the owning loop applies it. It does nothing if the
// connection is closed meanwhile or is not pending.
func (c *Conn) Resume(a Action) { c.l.post(ctlMsg{kind: ctlResume, c: c, a: a}) }

// ResumeFunc is Resume with an answer that f computes on the owning loop,
// where the handler's state of c may be touched again: work done off the
// loop hands its result back through f. f is not called if the connection
// is closed meanwhile or is not pending.
func (c *Conn) ResumeFunc(f func() Action) { c.l.post(ctlMsg{kind: ctlResume, c: c, f: f}) }

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }

// SetData attaches the handler's state to c; Data returns it. Call them from
// callbacks, or before Resume.
func (c *Conn) SetData(v any) { c.data = v }

// Data returns what SetData attached.
func (c *Conn) Data() any { return c.data }

// SetTimeout replaces the deadline of c's head or opening phase: d from now,
// or none for d <= 0. Call it from a callback. (The opening's deadline is
// the head timeout from the dial's success until then; the proxy's check
// switches to the idle timeout once the origin has spoken first.)
func (c *Conn) SetTimeout(d time.Duration) {
	if c.closed || c.phase != PhaseHead && c.phase != PhaseOpening {
		return
	}
	if d <= 0 {
		c.l.clearDeadline(c)
		return
	}
	c.l.setDeadline(c, c.l.now+int64(d))
}

// Err is why reading the client failed, at EventError; in the exchange
// phase, why reading or writing the origin, or dialing it, failed.
func (c *Conn) Err() error { return c.err }

// Phase is where c is.
func (c *Conn) Phase() Phase { return c.phase }

// buf returns c's head or opening buffer, all of its capacity.
func (c *Conn) buf() []byte {
	if c.ob != nil {
		return c.ob[:]
	}
	if c.hb != nil {
		return c.hb[:]
	}
	return nil
}
