package evloop

import (
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The exchange phase (Exchange): one bodiless request sent to an origin,
// its response head shown to the handler (Exchanger.Response) until it
// answers, and the body moved to the client as Exchanger.Body frames it.
// The client is not read meanwhile. An origin whose response ended where
// its bytes did may be kept: attached to the connection (sides[1], idle, in
// the epoll set as the connection's) for its next exchange with an equal
// key, or in the engine's pool (pool_linux.go).

var (
	errCutShort  = errors.New("evloop: the origin ended its response before the body did")
	errClientHup = errors.New("evloop: the client hung up during the exchange")
)

// startExchange begins the exchange a asks for (head phase): on an origin
// kept under a.key, or on a new one dialed.
func (l *loop) startExchange(c *Conn, a Action) {
	if l.xh == nil || a.n < 0 || a.n > c.n || len(a.reply) == 0 || len(a.addrs) == 0 {
		l.end(c, ReasonError, errHandler)
		return
	}
	c.idleHead = false
	reuse := false
	if c.attached {
		switch {
		case c.x.key != a.key:
			l.detach(c)
		case l.idleOK(&c.sides[1]):
			reuse = true
		default:
			l.closeOrigin(c) // it spoke or closed while idle
		}
	}
	c.attached = false
	c.phase = PhaseExchange
	// The head stays in hb until the exchange is over: req may be a slice
	// of it (a head sent as is).
	c.x = exchange{key: a.key, req: a.reply, addrs: a.addrs, retry: a.retry, headLen: a.n,
		rb: openBufs.Get().(*[ResponseBufSize]byte)}
	if !reuse {
		if fd := l.poolTake(a.key); fd >= 0 {
			reuse = l.adopt(c, fd)
		}
	}
	if !reuse {
		l.xDial(c)
		return
	}
	c.x.reused = true
	l.xConnected(c)
}

// adopt makes fd, a socket taken from the pool, c's origin; it reports
// false (fd closed) if the epoll set refused it.
func (l *loop) adopt(c *Conn, fd int) bool {
	c.attempt++ // events of an origin c closed in this batch are not fd's
	c.sides[1] = side{fd: fd}
	if l.watch(c, 1, unix.EPOLL_CTL_MOD) != nil {
		l.closeOrigin(c)
		return false
	}
	return true
}

// detach moves c's attached origin, if any, to the pool.
func (l *loop) detach(c *Conn) {
	if !c.attached {
		return
	}
	o := c.sides[1]
	c.sides[1] = side{fd: -1}
	c.attached = false
	if o.hup {
		closeFD(o.fd)
	} else {
		// The pool's watch reports bytes that came meanwhile.
		l.poolPut(o.fd, c.x.key)
	}
	c.x.key = nil
}

// idleOK reports whether s, an idle origin, may take a request: it has not
// ended, and has nothing to read (asked only if an event or a full last
// read left canRead).
func (l *loop) idleOK(s *side) bool {
	if s.hup {
		return false
	}
	if s.canRead {
		if !l.stillIdle(s.fd) {
			return false
		}
		s.canRead = false
	}
	return true
}

// stillIdle reports whether an idle origin socket has nothing to read: no
// bytes (which no request asked for) and no end.
func (l *loop) stillIdle(fd int) bool {
	_, err := read(fd, l.buf[:1])
	return err == unix.EAGAIN
}

// checkAttached closes c's attached origin if it spoke or closed while idle
// (an event for it in the head or pending phase).
func (l *loop) checkAttached(c *Conn) {
	if c.attached && !l.idleOK(&c.sides[1]) {
		l.closeOrigin(c)
		c.x.key = nil
	}
}

// xDial dials c.x.addrs for the exchange, as Dial does.
func (l *loop) xDial(c *Conn) {
	x := &c.x
	x.state, x.reused, x.got, x.sent, x.rn, x.originEnd = xsDial, false, false, 0, 0, false
	x.dialStart, x.dial = l.clock(), 0 // not l.now: a loopback connect ends within the wake-up
	c.addrs, c.next = x.addrs, 0
	l.setDeadline(c, l.now+int64(l.e.cfg.DialTimeout))
	l.dialNext(c)
}

// xConnected sends the request on c's origin and waits for the response.
func (l *loop) xConnected(c *Conn) {
	if c.x.state == xsDial && !c.x.reused {
		c.x.dial = max(l.clock()-c.x.dialStart, 1)
	}
	c.x.state = xsHead
	c.last = l.now
	l.setDeadline(c, l.now+l.e.xIdle)
	l.xDrive(c)
}

// xDialFailed gives the handler the dial's failure.
func (l *loop) xDialFailed(c *Conn, err error) {
	c.err = err
	c.x.state, c.x.originEnd = xsHead, true
	c.last = l.now
	l.setDeadline(c, l.now+l.e.xIdle)
	l.xApply(c, l.xh.Response(c, c.x.rb[:0], EventError), EventError)
}

// xEvent handles an event of c's sockets in the exchange phase.
func (l *loop) xEvent(c *Conn, s int, evs uint32) {
	if s == 0 && evs&(unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		l.end(c, ReasonError, sockErr(c.sides[0].fd))
		return
	}
	if s == 0 && evs&unix.EPOLLRDHUP != 0 && c.x.state != xsBody {
		// The client left before its answer began: as net/http cancels
		// the request when it reads the client's EOF, nothing waits on the
		// origin any more, and its connection, mid-request, is closed.
		l.end(c, ReasonEOF, errClientHup)
		return
	}
	if c.x.state == xsDial {
		if s == 1 && evs&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			l.dialDone(c)
		}
		return
	}
	l.xDrive(c)
}

// sockErr is why the client's socket failed.
func sockErr(fd int) error {
	if e, err := getsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR); err == nil && e != 0 {
		return os.NewSyscallError("read", syscall.Errno(e))
	}
	return errClientHup
}

// xDrive moves what can be moved in c's exchange.
func (l *loop) xDrive(c *Conn) {
	switch c.x.state {
	case xsHead:
		if l.xSendReq(c) {
			l.xReadHead(c)
		}
	case xsBody:
		l.xBody(c)
	}
}

// xSendReq writes what is left of the request to the origin; it reports
// false if that failed (and the exchange moved on).
func (l *loop) xSendReq(c *Conn) bool {
	x := &c.x
	for x.sent < len(x.req) {
		n, err := write(c.sides[1].fd, x.req[x.sent:])
		if n > 0 {
			x.sent += n
			x.up += int64(n)
			c.last = l.now
		}
		if err == unix.EAGAIN {
			return true
		}
		if err != nil {
			l.xOriginFailed(c, os.NewSyscallError("write", err))
			return false
		}
	}
	return true
}

// xReadHead reads the response head, showing the handler every byte so far
// after each read.
func (l *loop) xReadHead(c *Conn) {
	x, o := &c.x, &c.sides[1]
	for !c.closed && c.phase == PhaseExchange && x.state == xsHead && o.canRead && !x.originEnd {
		if x.rn == len(x.rb) {
			l.xApply(c, l.xh.Response(c, x.rb[:x.rn], EventFull), EventFull)
			return
		}
		n, err := l.readOrigin(c, x.rb[x.rn:])
		if err == unix.EAGAIN {
			return
		}
		if n == 0 {
			l.xOriginFailed(c, err)
			return
		}
		x.got = true
		x.rn += n
		l.xApply(c, l.xh.Response(c, x.rb[:x.rn], EventNone), EventNone)
	}
}

// readOrigin reads c's origin into b: n bytes, 0 and nil at its EOF, or
// unix.EAGAIN when it has none; a failure resets it at close.
func (l *loop) readOrigin(c *Conn, b []byte) (int, error) {
	o := &c.sides[1]
	n, err := read(o.fd, b)
	switch {
	case err == unix.EAGAIN:
		o.canRead = false
		return 0, err
	case err != nil:
		o.readErr = true
		return 0, os.NewSyscallError("read", err)
	case n > 0:
		o.readShort(n, len(b))
		c.last = l.now
	}
	return n, nil
}

// xOriginFailed: the origin ended (err nil) or failed before the response
// head was whole. A kept origin that did so before its first byte is
// replaced if the request may be retried; else the handler decides.
func (l *loop) xOriginFailed(c *Conn, err error) {
	x := &c.x
	if x.reused && x.retry && !x.got {
		l.closeOrigin(c)
		l.xDial(c)
		return
	}
	x.originEnd = true
	ev := EventOriginEOF
	if err != nil {
		ev, c.err = EventError, err
	}
	l.xApply(c, l.xh.Response(c, x.rb[:x.rn], ev), ev)
}

// xApply carries out the handler's answer to the response head so far.
func (l *loop) xApply(c *Conn, a Action, ev Event) {
	x := &c.x
	if c.closed || c.phase != PhaseExchange || x.state != xsHead {
		return
	}
	switch a.kind {
	case actNeedMore:
		if ev != EventNone {
			l.endOn(c, ev)
		}
	case actSkip:
		if a.n <= 0 || a.n > x.rn {
			l.end(c, ReasonError, errHandler)
			return
		}
		x.rn = copy(x.rb[:], x.rb[a.n:x.rn])
		if ev == EventFull {
			ev = EventNone // there is room again
		}
		if x.rn > 0 || ev != EventNone {
			l.xApply(c, l.xh.Response(c, x.rb[:x.rn], ev), ev)
		}
	case actRespond:
		l.xRespond(c, a)
	case actRefuse:
		l.exchangeOver(c, ReasonRefused, nil, false)
		l.refuse(c, a.reply, ReasonRefused, nil)
	default:
		l.end(c, ReasonError, errHandler)
	}
}

// xRespond writes the handler's head and the body bytes read with the
// origin's head, and moves on to the body.
func (l *loop) xRespond(c *Conn, a Action) {
	x := &c.x
	if a.n < 0 || a.n > x.rn {
		l.end(c, ReasonError, errHandler)
		return
	}
	x.state, x.keepClient, x.keepOrigin = xsBody, a.keepClient, a.keepOrigin
	body := x.rb[a.n:x.rn]
	m, ok := l.xFrame(c, body)
	if !ok {
		return
	}
	if head := a.reply; len(head) <= a.n {
		// One write: the new head in place of the origin's, before the
		// body (copy moves overlapping bytes right).
		start := a.n - len(head)
		copy(x.rb[start:a.n], head)
		l.send(c, 1, x.rb[start:a.n+m], true)
	} else {
		l.send(c, 1, head, true)
		l.send(c, 1, body[:m], true)
	}
	l.xBody(c)
}

// xFrame asks the handler how many of b, origin bytes behind the response
// head, are the response's, and notes whether it ended there (exactly at
// the origin's last byte, or with more behind). It ends c and reports
// false if the answer does not hold: more than b, or less without an end.
func (l *loop) xFrame(c *Conn, b []byte) (int, bool) {
	m, done := l.xh.Body(c, b, false)
	if m < 0 || m > len(b) || !done && m != len(b) {
		l.end(c, ReasonError, errHandler)
		return 0, false
	}
	if done {
		c.x.done, c.x.exact = true, m == len(b)
	}
	return m, true
}

// xBody moves the response body to the client: no origin read while bytes
// wait for the client (backpressure), as pump does.
func (l *loop) xBody(c *Conn) {
	x, o, d := &c.x, &c.sides[1], &c.dirs[1]
	for !c.closed && c.phase == PhaseExchange {
		if !l.flush(c, 1) {
			return // the client's EPOLLOUT brings us back
		}
		if d.sink {
			l.end(c, ReasonError, d.err)
			return
		}
		if x.done {
			l.xFinish(c)
			return
		}
		if x.originEnd {
			if _, done := l.xh.Body(c, nil, true); !done {
				l.end(c, ReasonError, errCutShort)
				return
			}
			x.done = true
			continue
		}
		if !o.canRead {
			return
		}
		n, err := l.readOrigin(c, l.buf[:])
		switch {
		case err == unix.EAGAIN:
			return
		case err != nil:
			c.err = err
			l.end(c, ReasonError, err)
			return
		case n == 0:
			x.originEnd = true
			continue
		}
		m, ok := l.xFrame(c, l.buf[:n])
		if !ok {
			return
		}
		l.send(c, 1, l.buf[:m], true)
	}
}

// xFinish ends an exchange whose response the client has in full: the
// origin is kept (attached, or pooled if the client goes) or closed, and
// the client goes back to its head phase or is closed.
func (l *loop) xFinish(c *Conn) {
	x, o := &c.x, &c.sides[1]
	kept := x.keepOrigin && x.exact && !x.originEnd && !o.hup && x.sent == len(x.req)
	keepClient := x.keepClient && !l.stopping
	switch {
	case kept && keepClient:
		c.attached = true
	case kept:
		fd := o.fd
		c.sides[1] = side{fd: -1}
		kept = l.poolPut(fd, x.key)
	default:
		l.closeOrigin(c)
	}
	l.exchangeOver(c, ReasonEOF, nil, kept)
	if !keepClient {
		l.refuse(c, nil, ReasonEOF, nil) // a FIN, then linger
		return
	}
	l.nextHead(c)
}

// nextHead starts a kept client's head phase: with the bytes it sent behind
// the last head, if any, else waiting up to ClientIdleTimeout for them.
func (l *loop) nextHead(c *Conn) {
	c.phase, c.headStart = PhaseHead, l.now
	if c.n > 0 {
		l.setDeadline(c, l.now+int64(l.e.cfg.HeadTimeout))
		l.applyHead(c, l.h.Head(c, c.hb[:c.n], EventNone), EventNone)
	} else {
		c.idleHead = true
		l.setDeadline(c, l.now+int64(l.e.cfg.ClientIdleTimeout))
	}
	if !c.closed && c.phase == PhaseHead {
		l.readHead(c)
	}
}

// exchangeOver tells the handler how c's exchange went, and frees what it
// held; the caller moves c on. An attached origin keeps its key.
func (l *loop) exchangeOver(c *Conn, reason string, err error, kept bool) {
	x := &c.x
	xe := ExchangeEnd{Reason: reason, Err: err, Up: x.up, Down: c.dirs[1].n, Reused: x.reused, Kept: kept,
		Dial: time.Duration(x.dial)}
	for i := range c.dirs {
		d := &c.dirs[i]
		d.putOut()
		if d.pipe != nil {
			l.putPipe(d)
		}
	}
	c.dirs = [2]dir{}
	if x.rb != nil {
		openBufs.Put(x.rb)
	}
	c.addrs = nil
	if c.hb != nil {
		c.n = copy(c.hb[:], c.hb[x.headLen:c.n]) // the next head's bytes
	}
	key := x.key
	*x = exchange{}
	if c.attached {
		x.key = key
	}
	l.xh.Exchanged(c, xe)
}

// xExpire handles the exchange's deadline: the dial's, or the idle timeout.
func (l *loop) xExpire(c *Conn) {
	x := &c.x
	if x.state == xsDial {
		l.dialTimedOut(c)
		return
	}
	if l.now-c.last < l.e.xIdle {
		l.setDeadline(c, c.last+l.e.xIdle)
		return
	}
	if x.state == xsBody {
		l.end(c, ReasonIdleTimeout, nil)
		return
	}
	l.xApply(c, l.xh.Response(c, x.rb[:x.rn], EventTimeout), EventTimeout)
	if !c.closed && c.phase == PhaseExchange && c.tidx < 0 {
		l.setDeadline(c, c.last+l.e.xIdle)
	}
}
