package evloop

import (
	"errors"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Event data: Pad names what an event is for. Connection events carry the
// connection's generation in Pad (never padListener, padWake or padPool)
// and slot<<3 | attempt&3<<1 | side in Fd, so an event for a socket closed
// meanwhile (its slot reused, or its origin replaced: a dial attempt, a kept
// origin found stale, a retry) is dropped.
const (
	padListener = 0 // Fd is a listener's fd
	padWake     = 1 // the loop's eventfd
	padPool     = 2 // Fd is a pooled origin's id (pool_linux.go)
	firstGen    = 3
)

const (
	connEvents = unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET
	readEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLHUP | unix.EPOLLERR
)

// lingerTime is how long a refused client may keep sending after the
// refusal before it is closed: closing with its bytes unread would reset
// it, and a reset can discard the refusal before the client reads it
// (net/http's rstAvoidanceDelay).
const lingerTime = 500 * time.Millisecond

// acceptPause is how long a loop stops accepting when out of fds.
const acceptPause = 100 * time.Millisecond

var (
	headBufs  = sync.Pool{New: func() any { return new([HeadBufSize]byte) }}
	openBufs  = sync.Pool{New: func() any { return new([OpeningBufSize]byte) }}
	relayBufs = sync.Pool{New: func() any { return new([relayBufSize]byte) }}
)

type ctlKind uint8

const (
	ctlResume    ctlKind = iota
	ctlStop              // stop accepting; close head-phase connections
	ctlCancel            // close every connection (Shutdown's ctx is done)
	ctlExit              // close what is left and return
	ctlCloseIdle         // close the idle origin connections
)

type ctlMsg struct {
	kind ctlKind
	c    *Conn
	a    Action
	f    func() Action // ResumeFunc's, instead of a
	err  error
}

type pipePair struct{ r, w int }

// loop is one event loop. Everything but the fields under mu is owned by
// its goroutine.
type loop struct {
	e       *Engine
	h       Handler
	ep      int
	epf     *os.File           // ep in Go's poller, where the loop waits
	epc     syscall.RawConn    // epf's
	ready   func(uintptr) bool // l.checkReady, for epc.Read
	waitN   int                // checkReady's answer
	waitErr error              // checkReady's answer
	wake    int                // eventfd
	events  []unix.EpollEvent
	buf     *[relayBufSize]byte
	slots   []*Conn
	free    []int32
	gen     uint32
	timers  []*Conn // min-heap on deadline
	base    time.Time
	now     int64
	pipes   []pipePair
	paused  []int     // listener fds removed while out of fds
	resume  int64     // when to add paused back
	xh      Exchanger // h's, if it is one

	mu       sync.Mutex
	queue    []ctlMsg
	spare    []ctlMsg
	signaled bool
	exited   bool

	stopping bool
	exit     bool
}

func newLoop(e *Engine) (*loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wake, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	l := &loop{e: e, h: e.cfg.Handler, ep: ep, wake: wake, events: make([]unix.EpollEvent, 128),
		buf: new([relayBufSize]byte), gen: firstGen, base: e.base}
	l.xh, _ = l.h.(Exchanger)
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Pad: padWake}); err != nil {
		l.closeFDs()
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	// Non-blocking, so that os.NewFile puts it in Go's poller.
	if err := unix.SetNonblock(ep, true); err != nil {
		l.closeFDs()
		return nil, os.NewSyscallError("fcntl", err)
	}
	l.ready = l.checkReady
	l.epf = os.NewFile(uintptr(ep), "evloop-epoll")
	if l.epc, err = l.epf.SyscallConn(); err != nil {
		l.closeFDs()
		return nil, err
	}
	return l, nil
}

func (l *loop) closeFDs() {
	unix.Close(l.wake)
	if l.epf != nil {
		l.epf.Close()
		return
	}
	unix.Close(l.ep)
}

func (l *loop) addListener(fd int) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(fd), Pad: padListener}
	if err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// post queues m for the loop and wakes it. It drops m once the loop has
// exited.
func (l *loop) post(m ctlMsg) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.exited {
		return
	}
	l.queue = append(l.queue, m)
	if !l.signaled {
		l.signaled = true
		var one = [8]byte{1}
		unix.Write(l.wake, one[:])
	}
}

func (l *loop) clock() int64 { return int64(time.Since(l.base)) }

// testHookWait, if set, is called before each of a loop's waits: a test
// counts them to tell a loop that spins from one that sleeps.
var testHookWait func()

func (l *loop) run() {
	defer l.e.wg.Done()
	for !l.exit {
		if testHookWait != nil {
			testHookWait()
		}
		n, err := l.wait()
		if err != nil && err != unix.EINTR {
			// Cannot happen with a valid set; end what the loop has.
			l.closeAll(ReasonError, os.NewSyscallError("epoll_wait", err))
			break
		}
		l.now = l.clock()
		for _, ev := range l.events[:max(n, 0)] {
			switch ev.Pad {
			case padListener:
				l.accept(int(ev.Fd))
			case padWake:
				l.drainQueue()
			case padPool:
				l.poolEvent(ev.Fd, ev.Events)
			default:
				slot := int(ev.Fd >> 3)
				if slot >= len(l.slots) {
					continue
				}
				c := l.slots[slot]
				if c == nil || c.gen != uint32(ev.Pad) {
					continue
				}
				s := int(ev.Fd & 1)
				if s == 1 && uint8(ev.Fd>>1&3) != c.attempt&3 {
					continue // an origin socket replaced in this batch
				}
				l.onEvent(c, s, ev.Events)
			}
		}
		l.runTimers()
	}
	l.mu.Lock()
	l.exited = true
	l.mu.Unlock()
	for _, p := range l.pipes {
		unix.Close(p.r)
		unix.Close(p.w)
	}
	l.closeFDs()
}

// wait returns the loop's next events. It asks the epoll set without
// blocking, and when nothing is ready parks the loop's goroutine in Go's
// own poller on the set's fd (an epoll fd is readable while it has events)
// until then or the next deadline. A loop blocked in epoll_wait instead
// would hold its P in a system call, which the runtime's monitor retakes
// and hands back at every wake-up (measured: five nanosleeps and two
// futex calls per tunnel).
func (l *loop) wait() (int, error) {
	ms := l.waitMillis()
	if ms == 0 {
		return epollWaitNow(l.ep, l.events)
	}
	dl := time.Time{}
	if ms > 0 {
		dl = time.Now().Add(time.Duration(ms) * time.Millisecond)
	}
	_ = l.epf.SetReadDeadline(dl)
	// The check is inside Read: Read first forgets readiness it saw
	// before (the poller's descriptor is reset), so a set that became
	// ready between an earlier check and Read would never wake it.
	err := l.epc.Read(l.ready)
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return 0, nil // a deadline is due
	case err != nil:
		return 0, err
	}
	return l.waitN, l.waitErr
}

// checkReady is wait's check inside RawConn.Read: the loop's set's events,
// if any. It is a method value made once per loop (l.ready): a closure made
// at each wait was one allocation per wake-up.
func (l *loop) checkReady(uintptr) bool {
	l.waitN, l.waitErr = epollWaitNow(l.ep, l.events)
	return l.waitN != 0 || l.waitErr != nil && l.waitErr != unix.EINTR
}

// epollWaitNow is epoll_wait with a zero timeout: it never blocks, so it
// needs none of the runtime's system-call bookkeeping.
func epollWaitNow(ep int, events []unix.EpollEvent) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(ep), uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// waitMillis is epoll_wait's timeout: until the next deadline.
func (l *loop) waitMillis() int {
	next := int64(-1)
	if len(l.timers) > 0 {
		next = l.timers[0].deadline
	}
	if len(l.paused) > 0 && (next < 0 || l.resume < next) {
		next = l.resume
	}
	if p := l.poolNext(); p >= 0 && (next < 0 || p < next) {
		next = p
	}
	if next < 0 {
		return -1
	}
	d := next - l.clock()
	if d <= 0 {
		return 0
	}
	return int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

func (l *loop) drainQueue() {
	var b [8]byte
	unix.Read(l.wake, b[:])
	l.mu.Lock()
	q := l.queue
	l.queue, l.spare = l.spare[:0], nil
	l.signaled = false
	l.mu.Unlock()
	for i := range q {
		m := q[i]
		q[i] = ctlMsg{}
		switch m.kind {
		case ctlResume:
			if !m.c.closed && m.c.phase == PhasePending {
				m.c.phase = PhaseHead
				l.setDeadline(m.c, m.c.headStart+int64(l.e.cfg.HeadTimeout))
				if m.f != nil {
					m.a = m.f()
				}
				l.applyHead(m.c, m.a, EventNone)
				if !m.c.closed && m.c.phase == PhaseHead {
					l.readHead(m.c)
				}
			}
		case ctlStop:
			l.stop()
		case ctlCloseIdle:
			l.closeIdle()
		case ctlCancel:
			l.closeAll(ReasonCanceled, m.err)
		case ctlExit:
			l.closeAll(ReasonCanceled, ErrClosed)
			l.poolCloseAll()
			l.exit = true
		}
	}
	l.spare = q[:0]
}

// stop removes the listeners from the loop, closes the connections still in
// their head phase (kept clients waiting for their next head among them)
// and the pooled origins; from now on no origin is kept.
func (l *loop) stop() {
	l.stopping = true
	l.e.mu.Lock()
	for _, lst := range l.e.lns {
		unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, lst.fd, nil) // ENOENT when paused
		if lst.refs--; lst.refs == 0 {
			unix.Close(lst.fd)
		}
	}
	l.e.mu.Unlock()
	l.paused = nil
	for _, c := range l.slots {
		if c != nil && (c.phase == PhaseHead || c.phase == PhasePending) {
			l.end(c, ReasonCanceled, ErrClosed)
		}
	}
	l.poolCloseAll()
}

// closeIdle closes the pool and the origins kept for clients between
// requests.
func (l *loop) closeIdle() {
	l.poolCloseAll()
	for _, c := range l.slots {
		if c != nil && c.attached {
			l.closeOrigin(c)
			c.attached, c.x.key = false, nil
		}
	}
}

func (l *loop) closeAll(reason string, err error) {
	for _, c := range l.slots {
		if c != nil {
			l.end(c, reason, err)
		}
	}
}

// accept takes every connection waiting on the listener fd.
func (l *loop) accept(fd int) {
	for !l.stopping {
		nfd, remote, err := accept4(fd)
		switch err {
		case nil:
		case unix.EINTR, unix.ECONNABORTED:
			continue
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			// The listener is level-triggered: left in the set it would
			// spin the loop. Take it out for a while.
			if unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil) == nil {
				l.paused = append(l.paused, fd)
				l.resume = l.now + int64(acceptPause)
			}
			return
		default:
			return // EAGAIN, or an error the next readiness retries
		}
		setsockoptInt(nfd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		c := &Conn{l: l, phase: PhaseHead, tidx: -1, remote: remote}
		c.sides[0].fd, c.sides[1].fd = nfd, -1
		l.addConn(c)
		if err := l.watch(c, 0, unix.EPOLL_CTL_ADD); err != nil {
			closeFD(nfd)
			l.freeSlot(c)
			continue
		}
		l.e.live.Add(1)
		c.hb = headBufs.Get().(*[HeadBufSize]byte)
		c.headStart = l.now
		l.setDeadline(c, l.now+int64(l.e.cfg.HeadTimeout))
		if a, ok := l.h.(Acceptor); ok {
			if reply := a.Accepted(c); reply != nil {
				l.refuse(c, reply, ReasonRefused, nil)
			}
		}
		// The head is often there already; the registration reports it.
	}
}

func (l *loop) resumeAccept() {
	if l.stopping {
		l.paused = nil
		return
	}
	for _, fd := range l.paused {
		l.addListener(fd)
	}
	l.paused = l.paused[:0]
}

func (l *loop) addConn(c *Conn) {
	if n := len(l.free); n > 0 {
		c.slot = l.free[n-1]
		l.free = l.free[:n-1]
		l.slots[c.slot] = c
	} else {
		c.slot = int32(len(l.slots))
		l.slots = append(l.slots, c)
	}
	l.gen++
	if l.gen < firstGen {
		l.gen = firstGen
	}
	c.gen = l.gen
}

func (l *loop) freeSlot(c *Conn) {
	l.slots[c.slot] = nil
	l.free = append(l.free, c.slot)
}

// watch adds side s of c to the epoll set, edge-triggered (op
// EPOLL_CTL_ADD), or gives a socket there, a pooled origin, to c
// (EPOLL_CTL_MOD).
func (l *loop) watch(c *Conn, s, op int) error {
	data := c.slot<<3 | int32(s)
	if s == 1 {
		data |= int32(c.attempt&3) << 1
	}
	ev := unix.EpollEvent{Events: connEvents, Fd: data, Pad: int32(c.gen)}
	if err := unix.EpollCtl(l.ep, op, c.sides[s].fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

func (l *loop) onEvent(c *Conn, s int, evs uint32) {
	sd := &c.sides[s]
	if sd.fd < 0 {
		return // an origin closed in this batch and not replaced
	}
	if evs&readEvents != 0 {
		sd.canRead = true
	}
	if evs&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		sd.hup = true
	}
	switch c.phase {
	case PhaseHead, PhasePending:
		if s == 1 {
			l.checkAttached(c)
		} else if c.phase == PhaseHead {
			l.readHead(c)
		}
	case PhaseExchange:
		l.xEvent(c, s, evs)
	case PhaseDial:
		if s == 1 && evs&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.dialDone(c)
		}
	case PhaseOpening, PhaseRelay:
		l.drive(c)
	case PhaseClosing:
		l.closingStep(c)
	}
}

// Timers: a min-heap of connections on their deadline.

func (l *loop) setDeadline(c *Conn, t int64) {
	c.deadline = t
	if c.tidx < 0 {
		c.tidx = int32(len(l.timers))
		l.timers = append(l.timers, c)
		l.up(int(c.tidx))
		return
	}
	if !l.down(int(c.tidx)) {
		l.up(int(c.tidx))
	}
}

func (l *loop) clearDeadline(c *Conn) {
	c.deadline = 0
	i := int(c.tidx)
	if i < 0 {
		return
	}
	last := len(l.timers) - 1
	if i != last {
		l.swap(i, last)
	}
	l.timers[last] = nil
	l.timers = l.timers[:last]
	c.tidx = -1
	if i != last && !l.down(i) {
		l.up(i)
	}
}

func (l *loop) swap(i, j int) {
	l.timers[i], l.timers[j] = l.timers[j], l.timers[i]
	l.timers[i].tidx, l.timers[j].tidx = int32(i), int32(j)
}

func (l *loop) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if l.timers[i].deadline <= l.timers[j].deadline {
			break
		}
		l.swap(i, j)
		j = i
	}
}

func (l *loop) down(i0 int) bool {
	i, n := i0, len(l.timers)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if j2 := j + 1; j2 < n && l.timers[j2].deadline < l.timers[j].deadline {
			j = j2
		}
		if l.timers[i].deadline <= l.timers[j].deadline {
			break
		}
		l.swap(i, j)
		i = j
	}
	return i > i0
}

func (l *loop) runTimers() {
	if len(l.paused) > 0 && l.now >= l.resume {
		l.resumeAccept()
	}
	l.poolExpire()
	for len(l.timers) > 0 && l.timers[0].deadline <= l.now {
		c := l.timers[0]
		l.clearDeadline(c)
		l.expire(c)
	}
}

// expire handles c's deadline.
func (l *loop) expire(c *Conn) {
	switch c.phase {
	case PhaseHead:
		l.applyHead(c, l.h.Head(c, c.buf()[:c.n], EventTimeout), EventTimeout)
	case PhaseDial:
		l.dialTimedOut(c)
	case PhaseOpening:
		l.applyOpening(c, l.h.Opening(c, Opening{Client: c.buf()[:c.n], Event: EventTimeout}), EventTimeout)
	case PhaseRelay:
		if c.keepAt > 0 && l.now >= c.keepAt {
			setKeepAlive(c.sides[1].fd, l.e.cfg.KeepAliveIdle)
			c.keepAt = 0
		}
		if idle := int64(l.e.cfg.IdleTimeout); idle > 0 && l.now-c.last >= idle {
			l.end(c, ReasonIdleTimeout, nil)
			return
		}
		l.relayDeadline(c)
	case PhaseExchange:
		l.xExpire(c)
	case PhaseClosing:
		l.end(c, c.endReason, c.endErr)
	}
}

// relayDeadline sets a relaying tunnel's next deadline: its idle timeout,
// or before it the time its origin socket gets keep-alive.
func (l *loop) relayDeadline(c *Conn) {
	t := c.keepAt
	if idle := int64(l.e.cfg.IdleTimeout); idle > 0 && (t == 0 || c.last+idle < t) {
		t = c.last + idle
	}
	if t > 0 {
		l.setDeadline(c, t)
	}
}

var errHandler = errors.New("evloop: the handler returned an action its phase does not take")
