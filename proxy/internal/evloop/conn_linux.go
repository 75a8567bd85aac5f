package evloop

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The phases of a connection, each driven by the loop that owns it. Every
// step re-checks c.closed and c.phase after a handler call: the handler's
// action may have moved or closed the connection.

// readHead reads the client's head until it would block, showing the handler
// all bytes so far after every read.
func (l *loop) readHead(c *Conn) {
	cl := &c.sides[0]
	for !c.closed && c.phase == PhaseHead && cl.canRead {
		if c.n == HeadBufSize {
			l.applyHead(c, l.h.Head(c, c.hb[:c.n], EventFull), EventFull)
			return
		}
		room := HeadBufSize - c.n
		n, err := read(cl.fd, c.hb[c.n:])
		switch {
		case err == unix.EAGAIN:
			cl.canRead = false
			return
		case err != nil:
			c.err = os.NewSyscallError("read", err)
			l.applyHead(c, l.h.Head(c, c.hb[:c.n], EventError), EventError)
			return
		case n == 0:
			l.applyHead(c, l.h.Head(c, c.hb[:c.n], EventEOF), EventEOF)
			return
		}
		c.n += n
		cl.readShort(n, room)
		if c.idleHead { // a kept client's next head began: HeadTimeout from now
			c.idleHead, c.headStart = false, l.now
			l.setDeadline(c, l.now+int64(l.e.cfg.HeadTimeout))
		}
		l.applyHead(c, l.h.Head(c, c.hb[:c.n], EventNone), EventNone)
	}
}

// readShort notes a read of n bytes into room bytes of buffer: one that
// did not fill it found the socket empty, and the next bytes come with an
// event of their own (edge-triggered), so no read is needed to learn that
// it would block; unless the peer ended its sending, whose EOF is still to
// be read.
func (s *side) readShort(n, room int) {
	if n < room && !s.hup {
		s.canRead = false
	}
}

// endFor is how a connection ends when the handler lets a terminal event
// stand.
func (c *Conn) endFor(ev Event) (string, error) {
	switch ev {
	case EventEOF:
		return ReasonEOF, nil
	case EventTimeout:
		return ReasonIdleTimeout, nil
	case EventError:
		return ReasonError, c.err
	case EventOriginEOF: // an exchange's origin, before its response head
		return ReasonEOF, nil
	}
	return ReasonRefused, nil
}

func (l *loop) applyHead(c *Conn, a Action, ev Event) {
	if c.closed {
		return
	}
	if c.attached && a.kind != actNeedMore && a.kind != actPending && a.kind != actExchange && a.kind != actReply {
		l.detach(c) // to the pool: c needs its origin side, or is done
	}
	switch a.kind {
	case actNeedMore:
		if ev.Terminal() {
			l.endOn(c, ev)
		}
	case actRefuse:
		l.refuse(c, a.reply, ReasonRefused, nil)
	case actHandOff:
		l.handOff(c)
	case actPending:
		c.phase = PhasePending
		l.clearDeadline(c)
	case actDial:
		if a.n < 0 || a.n > c.n || len(a.addrs) == 0 {
			l.end(c, ReasonError, errHandler)
			return
		}
		c.n = copy(c.hb[:], c.hb[a.n:c.n]) // the early bytes
		c.reply, c.addrs, c.next = a.reply, a.addrs, 0
		c.phase = PhaseDial
		l.setDeadline(c, l.now+int64(l.e.cfg.DialTimeout))
		l.dialNext(c)
	case actExchange:
		l.startExchange(c, a)
	case actReply:
		l.reply(c, a)
	default:
		l.end(c, ReasonError, errHandler)
	}
}

// reply writes a.reply and starts the client's next head.
func (l *loop) reply(c *Conn, a Action) {
	if a.n < 0 || a.n > c.n || len(a.reply) == 0 {
		l.end(c, ReasonError, errHandler)
		return
	}
	n, err := write(c.sides[0].fd, a.reply)
	switch {
	case err != nil && err != unix.EAGAIN:
		c.err = os.NewSyscallError("write", err)
		l.end(c, ReasonError, c.err)
		return
	case n < len(a.reply):
		l.detach(c)
		l.refuse(c, a.reply[max(n, 0):], ReasonRefused, nil)
		return
	}
	c.n = copy(c.hb[:], c.hb[a.n:c.n])
	l.nextHead(c)
}

// handOff gives c's socket to the handler as a net.Conn.
func (l *loop) handOff(c *Conn) {
	l.detach(c)
	fd := c.sides[0].fd
	unix.EpollCtl(l.ep, unix.EPOLL_CTL_DEL, fd, nil) // a dup would keep it in the set
	f := os.NewFile(uintptr(fd), "evloop")
	nc, err := net.FileConn(f) // a dup
	f.Close()
	c.sides[0].fd = -1
	prefix := append([]byte(nil), c.hb[:c.n]...)
	if err != nil {
		l.end(c, ReasonError, err)
		return
	}
	l.release(c)
	l.h.HandOff(c, nc, prefix)
}

// dialNext starts connecting to the next address, or fails the dial.
func (l *loop) dialNext(c *Conn) {
	for c.next < len(c.addrs) {
		ap := c.addrs[c.next]
		c.next++
		c.attempt++
		keep := l.e.cfg.KeepAliveIdle
		if c.phase == PhaseDial && keep > 0 {
			keep, c.keepAt = 0, l.now+int64(l.e.cfg.KeepAliveAfter) // relayDeadline
		}
		fd, err := connect(ap, keep)
		if err == nil || err == unix.EINPROGRESS {
			c.sides[1] = side{fd: fd}
			if werr := l.watch(c, 1, unix.EPOLL_CTL_ADD); werr != nil {
				l.closeOrigin(c)
				c.dialErr = werr
				continue
			}
			if err == nil {
				l.connected(c)
			}
			return
		}
		if fd >= 0 {
			closeFD(fd)
		}
		c.dialErr = dialError(ap, err)
	}
	l.failDial(c, c.dialErr)
}

func connect(ap netip.AddrPort, keepIdle time.Duration) (int, error) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	family := unix.AF_INET
	if !ap.Addr().Is4() {
		family = unix.AF_INET6
	}
	fd, err := socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	if err != nil {
		return -1, err
	}
	setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	setKeepAlive(fd, keepIdle)
	return fd, connectRaw(fd, ap)
}

// setKeepAlive turns TCP keep-alive on for fd, probing after idle of silence;
// 0 leaves it off.
func setKeepAlive(fd int, idle time.Duration) {
	if idle > 0 {
		setsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		setsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, int(max(idle/time.Second, 1)))
	}
}

func dialError(ap netip.AddrPort, err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: os.NewSyscallError("connect", err)}
}

// dialDone finishes a connect the origin socket reported on.
func (l *loop) dialDone(c *Conn) {
	e, err := getsockoptInt(c.sides[1].fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err == nil && e == 0 {
		l.connected(c)
		return
	}
	if err == nil {
		err = syscall.Errno(e)
	}
	c.dialErr = dialError(c.addrs[c.next-1], err)
	l.closeOrigin(c)
	l.dialNext(c)
}

func (l *loop) closeOrigin(c *Conn) {
	if fd := c.sides[1].fd; fd >= 0 {
		closeFD(fd)
		c.sides[1] = side{fd: -1}
	}
	c.attached = false
}

// dialTimedOut fails a dial whose deadline passed.
func (l *loop) dialTimedOut(c *Conn) {
	l.closeOrigin(c)
	l.failDial(c, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(c.addrs[c.next-1]), Err: os.ErrDeadlineExceeded})
}

func (l *loop) failDial(c *Conn, err error) {
	if c.phase == PhaseExchange {
		l.xDialFailed(c, err)
		return
	}
	reply := l.h.DialFailed(c, err)
	if !c.closed {
		l.refuse(c, reply, ReasonRefused, err)
	}
}

// connected answers the client and starts the opening phase, or sends an
// exchange's request.
func (l *loop) connected(c *Conn) {
	if c.phase == PhaseExchange {
		l.xConnected(c)
		return
	}
	if d, ok := l.h.(Dialer); ok {
		d.Dialed(c)
		if c.closed {
			return
		}
	}
	c.phase = PhaseOpening
	c.addrs = nil
	c.last = l.now
	l.setDeadline(c, l.now+int64(l.e.cfg.HeadTimeout))
	l.send(c, 1, c.reply, false)
	c.reply = nil
	if c.closed {
		return
	}
	if c.n > 0 {
		l.applyOpening(c, l.h.Opening(c, Opening{Client: c.hb[:c.n]}), EventNone)
	}
	if !c.closed {
		l.drive(c)
	}
}

// drive moves what can be moved in the opening and relay phases.
func (l *loop) drive(c *Conn) {
	l.pump(c, 1)
	if c.closed {
		return
	}
	if c.phase == PhaseOpening {
		l.flush(c, 0)
		l.readOpening(c)
	} else {
		l.pump(c, 0)
	}
	l.checkEnd(c)
}

// readOpening reads the client's bytes into the opening buffer, withheld
// from the origin, and shows them to the handler.
func (l *loop) readOpening(c *Conn) {
	cl, d := &c.sides[0], &c.dirs[0]
	for !c.closed && c.phase == PhaseOpening && cl.canRead && !d.srcEnded {
		b := c.buf()
		if c.n == len(b) {
			if c.ob == nil {
				c.ob = openBufs.Get().(*[OpeningBufSize]byte)
				copy(c.ob[:], c.hb[:c.n])
				headBufs.Put(c.hb)
				c.hb = nil
				continue
			}
			l.applyOpening(c, l.h.Opening(c, Opening{Client: b, Event: EventFull}), EventFull)
			if c.n == len(b) {
				return // nothing forwarded: read on only at the next event
			}
			// Forward made room: read on, as the bytes still in the
			// socket bring no edge of their own.
			continue
		}
		n, err := read(cl.fd, b[c.n:])
		ev := EventNone
		switch {
		case err == unix.EAGAIN:
			cl.canRead = false
			return
		case err != nil:
			c.err = os.NewSyscallError("read", err)
			d.srcEnded, cl.readErr, ev = true, true, EventError
			c.setFault(c.err)
		case n == 0:
			d.srcEnded, d.eof, ev = true, true, EventEOF
		default:
			c.n += n
			c.last = l.now
		}
		l.applyOpening(c, l.h.Opening(c, Opening{Client: b[:c.n], Event: ev}), ev)
	}
}

func (l *loop) applyOpening(c *Conn, a Action, ev Event) {
	if c.closed || c.phase != PhaseOpening {
		return
	}
	switch a.kind {
	case actNeedMore:
		if ev.Terminal() {
			l.endOn(c, ev)
		}
	case actForward:
		if a.n < 0 || a.n > c.n {
			l.end(c, ReasonError, errHandler)
			return
		}
		b := c.buf()
		l.send(c, 0, b[:a.n], true)
		c.n = copy(b, b[a.n:c.n])
		if ev.Terminal() && ev != EventFull && !c.closed {
			l.endOn(c, ev)
		}
	case actRelay:
		c.phase = PhaseRelay
		l.clearDeadline(c)
		l.relayDeadline(c)
		l.send(c, 0, c.buf()[:c.n], true)
		c.n = 0
		l.putClientBuf(c)
		if c.closed {
			return
		}
		if d := &c.dirs[0]; d.srcEnded && !d.sink {
			d.finPending = true
		}
		l.drive(c)
	case actRefuse:
		if len(a.reply) > 0 && !c.dirs[1].sink && len(c.dirs[1].out) == 0 {
			write(c.sides[0].fd, a.reply) // best effort: the tunnel is being cut
		}
		l.end(c, ReasonRefused, nil)
	case actEnd:
		c.fault = nil // the handler's reason stands
		l.end(c, a.reason, a.err)
	default:
		l.end(c, ReasonError, errHandler)
	}
}

// The relay.

// pump moves direction i's bytes until its source would block, its
// destination would block, or it is done.
func (l *loop) pump(c *Conn, i int) {
	d, src := &c.dirs[i], &c.sides[i]
	for !c.closed {
		if !l.flush(c, i) || d.srcEnded || !src.canRead {
			return
		}
		if d.bulk && !d.sink && !l.e.cfg.noSplice && l.spliceIn(c, i) {
			continue
		}
		n, err := read(src.fd, l.buf[:])
		switch {
		case err == unix.EAGAIN:
			src.canRead = false
			return
		case err != nil:
			l.srcFailed(c, i, os.NewSyscallError("read", err))
			return
		case n == 0:
			l.srcEOF(c, i)
			return
		}
		if d.sink {
			// Dropped bytes are no activity.
			if c.dirs[1-i].done() && allAcked(src.fd) {
				d.srcEnded = true
			}
			continue
		}
		c.last = l.now
		d.bulk = n == len(l.buf)
		l.send(c, i, l.buf[:n], true)
		if i == 1 && c.phase == PhaseOpening && !c.closed {
			l.applyOpening(c, l.h.Opening(c, Opening{Client: c.buf()[:c.n], Origin: l.buf[:n]}), EventNone)
		}
	}
}

// done reports whether nothing more will move in d.
func (d *dir) done() bool {
	return d.srcEnded && (d.sink || len(d.out) == 0 && d.inPipe == 0 && !d.finPending)
}

// send writes b to direction i's destination, keeping what it does not take
// in d.out; count says whether the bytes count in d.n.
func (l *loop) send(c *Conn, i int, b []byte, count bool) {
	d := &c.dirs[i]
	if d.sink || len(b) == 0 {
		return
	}
	if len(d.out) > 0 || d.inPipe > 0 {
		d.queue(b, count)
		return
	}
	n, err := write(c.sides[1-i].fd, b)
	if n > 0 {
		c.last = l.now
		if count {
			d.n += int64(n)
		}
	}
	if err != nil && err != unix.EAGAIN {
		l.dstFailed(c, i, os.NewSyscallError("write", err))
		return
	}
	if n < len(b) {
		d.queue(b[n:], count)
	}
}

// queue keeps b for d's destination.
func (d *dir) queue(b []byte, count bool) {
	if len(d.out) == 0 && d.outBuf == nil && len(b) <= relayBufSize {
		d.outBuf = relayBufs.Get().(*[relayBufSize]byte)
		d.out = d.outBuf[:0]
	}
	if !count {
		d.uncounted = len(d.out) + len(b)
	}
	d.out = append(d.out, b...)
}

// flush writes what direction i holds for its destination; it reports
// whether all of it went (and the FIN, if due).
func (l *loop) flush(c *Conn, i int) bool {
	d, dst := &c.dirs[i], c.sides[1-i].fd
	if d.sink {
		return true
	}
	for len(d.out) > 0 {
		n, err := write(dst, d.out)
		if err == unix.EAGAIN {
			return false
		}
		if err != nil {
			l.dstFailed(c, i, os.NewSyscallError("write", err))
			return true
		}
		c.last = l.now
		u := min(n, d.uncounted)
		d.uncounted -= u
		d.n += int64(n - u)
		d.out = d.out[n:]
	}
	d.putOut()
	for d.inPipe > 0 {
		n, err := unix.Splice(d.pipe.r, nil, dst, nil, d.inPipe, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
		if err == unix.EINTR {
			continue
		}
		if err == unix.EAGAIN {
			return false
		}
		if err != nil {
			l.dstFailed(c, i, os.NewSyscallError("splice", err))
			return true
		}
		c.last = l.now
		d.inPipe -= int(n)
		d.n += int64(n)
	}
	if d.pipe != nil && !d.bulk {
		l.putPipe(d)
	}
	if d.finPending {
		d.finPending = false
		l.finish(c, i)
	}
	return true
}

func (d *dir) putOut() {
	if d.outBuf != nil {
		relayBufs.Put(d.outBuf)
		d.outBuf = nil
	}
	d.out, d.uncounted = nil, 0
}

// spliceIn moves what src has queued into direction i's pipe, in a bulk
// transfer, and on towards dst (flush); it reports false if it could not
// (no pipe), and the caller reads instead.
func (l *loop) spliceIn(c *Conn, i int) bool {
	d, src := &c.dirs[i], &c.sides[i]
	if d.pipe == nil && !l.getPipe(d) {
		d.bulk = false
		return false
	}
	n, err := unix.Splice(src.fd, nil, d.pipe.w, nil, 1<<20, unix.SPLICE_F_MOVE|unix.SPLICE_F_NONBLOCK)
	switch {
	case err == unix.EINTR:
		return true
	case err == unix.EAGAIN:
		// The pipe is empty (flush drained it), so src is.
		src.canRead = false
		d.bulk = false
		l.flush(c, i) // gives the pipe back
		return true
	case err != nil:
		l.srcFailed(c, i, os.NewSyscallError("splice", err))
		return true
	case n == 0:
		d.bulk = false
		l.srcEOF(c, i)
		return true
	}
	c.last = l.now
	d.inPipe = int(n)
	d.bulk = n >= relayBufSize
	l.flush(c, i)
	return true
}

func (l *loop) getPipe(d *dir) bool {
	if n := len(l.pipes); n > 0 {
		p := l.pipes[n-1]
		l.pipes = l.pipes[:n-1]
		d.pipe = &p
		return true
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC); err != nil {
		return false
	}
	// A 1 MiB pipe, as Go's own splice uses: a bulk move is one splice in
	// and one out per MiB, not per 64 KiB (the default). Refused above
	// /proc/sys/fs/pipe-max-size for an unprivileged process: then 64 KiB.
	_, _ = unix.FcntlInt(uintptr(p[0]), unix.F_SETPIPE_SZ, 1<<20)
	d.pipe = &pipePair{r: p[0], w: p[1]}
	return true
}

// maxPipes is how many empty pipes a loop keeps for the next bulk transfer.
const maxPipes = 16

// putPipe gives d's pipe back, or closes it if bytes are left in it.
func (l *loop) putPipe(d *dir) {
	p := d.pipe
	d.pipe = nil
	if d.inPipe > 0 || len(l.pipes) >= maxPipes {
		closeFD(p.r)
		closeFD(p.w)
		d.inPipe = 0
		return
	}
	l.pipes = append(l.pipes, *p)
}

// srcEOF: direction i's source ended its sending; its destination gets a
// FIN after the bytes it is owed.
func (l *loop) srcEOF(c *Conn, i int) {
	d := &c.dirs[i]
	d.srcEnded, d.eof = true, true
	if !d.sink {
		d.finPending = true
		l.flush(c, i)
	}
	l.originEnded(c, i)
}

// srcFailed: reading direction i's source failed. As relay.srcFailed: the
// tunnel's end is "error", and the source is reset at close, unless it is a
// reset after the other side had ended its sending; the destination gets a
// FIN after every byte read for it.
func (l *loop) srcFailed(c *Conn, i int, err error) {
	d := &c.dirs[i]
	d.srcEnded = true
	if !errors.Is(err, unix.ECONNRESET) || !c.dirs[1-i].eof {
		c.sides[i].readErr = true
		c.setFault(err)
	}
	if !d.sink {
		d.finPending = true
		l.flush(c, i)
	}
	l.originEnded(c, i)
}

// originEnded tells the handler, in the opening phase, that the origin
// ended its sending.
func (l *loop) originEnded(c *Conn, i int) {
	if i == 1 && c.phase == PhaseOpening && !c.closed {
		l.applyOpening(c, l.h.Opening(c, Opening{Client: c.buf()[:c.n], Event: EventOriginEOF}), EventOriginEOF)
	}
}

// finish half-closes direction i's destination.
func (l *loop) finish(c *Conn, i int) {
	d := &c.dirs[i]
	if err := shutdown(c.sides[1-i].fd, unix.SHUT_WR); err != nil {
		l.dstFailed(c, i, os.NewSyscallError("shutdown", err))
		return
	}
	d.finSent = true
}

// dstFailed: writing to direction i's destination failed. As
// relay.dstFailed: what its source sends from now on is dropped, and the
// end is "error" unless the destination had closed after ending its
// sending (EPIPE, ENOTCONN).
func (l *loop) dstFailed(c *Conn, i int, err error) {
	d := &c.dirs[i]
	d.sink, d.finPending, d.err = true, false, err
	d.putOut()
	if d.pipe != nil {
		l.putPipe(d)
	}
	if !errors.Is(err, unix.EPIPE) && !errors.Is(err, unix.ENOTCONN) {
		c.setFault(err)
	}
}

func (c *Conn) setFault(err error) {
	if c.fault == nil {
		c.fault = err
	}
}

// checkEnd ends a relaying tunnel whose directions are both done.
func (l *loop) checkEnd(c *Conn) {
	if !c.closed && c.phase == PhaseRelay && c.dirs[0].done() && c.dirs[1].done() {
		l.end(c, ReasonEOF, nil)
	}
}

// allAcked reports whether the socket's peer acknowledged everything sent
// to it (SIOCOUTQ is 0), as relay's lingerOver asks.
func allAcked(fd int) bool {
	n, err := unix.IoctlGetInt(fd, unix.SIOCOUTQ)
	return err == nil && n == 0
}

// Closing.

// refuse writes reply to the client, closes the origin if any, and closes
// the client once it has read the reply (closingStep).
func (l *loop) refuse(c *Conn, reply []byte, reason string, err error) {
	l.closeOrigin(c)
	l.putBufs(c)
	c.dirs = [2]dir{}
	c.phase, c.endReason, c.endErr = PhaseClosing, reason, err
	l.setDeadline(c, l.now+int64(lingerTime))
	l.send(c, 1, reply, false)
	l.closingStep(c)
}

// closingStep writes the rest of the refusal, then a FIN, then reads and
// drops what the client still sends until it closes or lingerTime passes.
func (l *loop) closingStep(c *Conn) {
	d, cl := &c.dirs[1], &c.sides[0]
	if d.sink {
		l.end(c, c.endReason, c.endErr)
		return
	}
	if !l.flush(c, 1) {
		return
	}
	if !d.finSent {
		d.finSent = true
		if shutdown(cl.fd, unix.SHUT_WR) != nil {
			l.end(c, c.endReason, c.endErr)
			return
		}
	}
	for cl.canRead {
		n, err := read(cl.fd, l.buf[:])
		if err == unix.EAGAIN {
			cl.canRead = false
			return
		}
		if err != nil || n == 0 {
			l.end(c, c.endReason, c.endErr)
			return
		}
	}
}

// end closes c and tells the handler how it ended. A recorded failure makes
// the reason "error", whatever ended the connection.
func (l *loop) end(c *Conn, reason string, err error) {
	if c.closed {
		return
	}
	if c.fault != nil && reason != ReasonRefused {
		reason, err = ReasonError, c.fault
	}
	if c.phase == PhaseExchange {
		l.exchangeOver(c, reason, err, false)
	}
	l.detach(c)
	for i := range c.sides {
		s := &c.sides[i]
		if s.fd < 0 {
			continue
		}
		if s.readErr {
			unix.SetsockoptLinger(s.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		}
		closeFD(s.fd)
		s.fd = -1
	}
	phase := c.phase
	end := End{Phase: phase, Reason: reason, Err: err, Up: c.dirs[0].n, Down: c.dirs[1].n}
	l.release(c)
	l.h.Closed(c, end)
}

// release frees what the loop holds for c, whose sockets are closed or
// handed off.
func (l *loop) release(c *Conn) {
	c.closed = true
	l.clearDeadline(c)
	l.putBufs(c)
	c.reply, c.addrs = nil, nil
	l.freeSlot(c)
	l.e.live.Add(-1)
}

// putBufs gives back c's buffers and pipes.
func (l *loop) putBufs(c *Conn) {
	for i := range c.dirs {
		d := &c.dirs[i]
		d.putOut()
		if d.pipe != nil {
			l.putPipe(d)
		}
	}
	l.putClientBuf(c)
}

func (l *loop) putClientBuf(c *Conn) {
	if c.hb != nil {
		headBufs.Put(c.hb)
		c.hb = nil
	}
	if c.ob != nil {
		openBufs.Put(c.ob)
		c.ob = nil
	}
}

// endOn ends c at a terminal event the handler let stand.
func (l *loop) endOn(c *Conn, ev Event) {
	reason, err := c.endFor(ev)
	l.end(c, reason, err)
}
