package relay

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// spliceState is what copySplice keeps of one direction between chunks and
// between parkings. Only the goroutine running the direction touches it,
// except rc and token, which are set before the tunnel starts.
type spliceState struct {
	rc     syscall.RawConn // src's
	token  uint64          // names the direction in the shared epoll set
	added  atomic.Bool     // src was added to the epoll set
	goWait bool            // wait in Go's poller, with a read deadline, while the tunnel is busy

	check    func(fd uintptr) bool // readOnce: sets the fields below; false if nothing to read
	checkCtl func(fd uintptr)      // check, for RawConn.Control
	peekCtl  func(fd uintptr)      // checkReadable, for RawConn.Control
	queued   int                   // bytes queued on src, if > 0 (bulk)
	buf      *[relayBufSize]byte   // what readOnce read, got bytes of it; nil while waiting
	got      int
	bulk     bool  // the last move filled a buffer: count and splice what follows
	eof      bool  // src reached EOF
	blocked  bool  // nothing to read yet
	err      error // pending socket error on src
	peek     [1]byte
	lr       io.LimitedReader
	small    []byte // for the rare queued == 0 case
}

// relayBufSize is the most readOnce reads at a time. A direction that moves
// a whole buffer is in a bulk transfer, and splices what follows.
const relayBufSize = 16 << 10

// relayBufs are readOnce's buffers. A direction holds one only from a read
// to the end of its write, so an idle tunnel holds none.
var relayBufs = sync.Pool{New: func() any { return new([relayBufSize]byte) }}

// prepareSplice reports whether both conns are TCP, so copySplice can be
// used, and sets up each direction for it. With parkEpoll it also joins the
// shared epoll instance; if that cannot be had, directions park in Go's
// poller instead.
func (t *tunnel) prepareSplice(mode parkMode) bool {
	for i := range t.dirs {
		src, ok := t.dirs[i].src.(*net.TCPConn)
		if !ok {
			return false
		}
		if _, ok := t.dirs[i].dst.(*net.TCPConn); !ok {
			return false
		}
		rc, err := src.SyscallConn()
		if err != nil {
			return false
		}
		sp := &t.dirs[i].sp
		sp.rc = rc
		sp.lr.R = src
		sp.check = sp.readOnce
		sp.checkCtl = func(fd uintptr) { sp.readOnce(fd) }
		sp.peekCtl = func(fd uintptr) { sp.checkReadable(fd) }
	}
	if mode == parkEpoll {
		t.ep = acquirePoller(t.dirs[:])
	}
	return true
}

// checkReadable finds out, without blocking or consuming anything, whether
// src has bytes queued, reached EOF, has an error, or has nothing yet.
//
// A one-byte peek comes first: most checks find nothing yet, or EOF, and it
// tells those in one system call; only when bytes are there does SIOCINQ
// count them. (The other order cost two calls for every wait and end.)
func (sp *spliceState) checkReadable(fd uintptr) bool {
	sp.queued, sp.eof, sp.blocked, sp.err = 0, false, false, nil
	for {
		m, _, err := unix.Recvfrom(int(fd), sp.peek[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			sp.blocked = true
			return false
		case err != nil:
			sp.err = os.NewSyscallError("recvfrom", err)
			return true
		case m == 0:
			sp.eof = true
			return true
		}
		break
	}
	n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ)
	if err != nil {
		sp.err = os.NewSyscallError("ioctl", err)
		return true
	}
	// n is 0 when an urgent mark is at the head of the queue (SIOCINQ
	// counts only up to it): the caller then copies one buffer the
	// ordinary way.
	sp.queued = n
	return true
}

// readOnce is a direction's readiness check: it reads what src has queued,
// up to a buffer, in one system call, which also tells EOF, an error or
// nothing yet. A message of a few bytes then costs a read and a write, where
// counting and splicing it cost four calls. In a bulk transfer (sp.bulk) it
// counts the queued bytes instead (checkReadable), for moveQueued to splice
// without copying them.
func (sp *spliceState) readOnce(fd uintptr) bool {
	if sp.bulk {
		return sp.checkReadable(fd)
	}
	sp.queued, sp.got, sp.eof, sp.blocked, sp.err = 0, 0, false, false, nil
	if sp.buf == nil {
		sp.buf = relayBufs.Get().(*[relayBufSize]byte)
	}
	for {
		n, err := unix.Read(int(fd), sp.buf[:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			sp.putBuf()
			sp.blocked = true
			return false
		case err != nil:
			sp.err = os.NewSyscallError("read", err)
		case n == 0:
			sp.eof = true
		default:
			sp.got = n
			return true
		}
		sp.putBuf()
		return true
	}
}

// putBuf gives readOnce's buffer back.
func (sp *spliceState) putBuf() {
	if sp.buf != nil {
		relayBufs.Put(sp.buf)
		sp.buf, sp.got = nil, 0
	}
}

// startParked parks d in the shared epoll set at once if src has nothing to
// read and the tunnel has no quiet period. It reports false if d needs a
// goroutine instead: there is something to do, a quiet period to wait out in
// Go's poller, or no shared epoll.
func (t *tunnel) startParked(d *direction) bool {
	if t.ep == nil || t.quiet > 0 {
		// With a quiet period the tunnel starts in Go's poller: most
		// tunnels move bytes at once, and a short one never touches epoll.
		return false
	}
	if err := d.sp.rc.Control(d.sp.peekCtl); err != nil || !d.sp.blocked {
		return false
	}
	parked, _ := t.park(d) // if not parked, runSplice meets the error again
	return parked
}

// runSplice runs d on the calling goroutine until src has nothing to read,
// then parks d in the shared epoll set and returns; or until d is done.
func (t *tunnel) runSplice(d *direction) {
	if t.ep != nil && t.quiet > 0 {
		// Started or resumed from epoll: stay in Go's poller, which wakes a
		// waiting direction faster, until the tunnel has been quiet for
		// t.quiet.
		d.sp.goWait = true
		d.src.SetReadDeadline(time.Now().Add(t.quiet))
	}
	err := t.copySplice(d)
	if err == errParked {
		parked, perr := t.park(d)
		if parked {
			return // d belongs to the epoll loop or to end now
		}
		// The epoll set refused the socket (out of memory, or of
		// fs.epoll.max_user_watches): the proxy failed, not a side, so
		// the tunnel ends at once and neither side is reset.
		t.fail(perr)
		t.end(ReasonError, perr)
		err = nil
	}
	t.exit(d, err)
}

// errParked is copySplice saying that src has nothing to read and the
// direction should park in the shared epoll set.
var errParked = errors.New("nothing to read: park")

// park registers d.src with the shared epoll set for one readiness event and
// hands d over: to the epoll loop, which resumes it on a new goroutine, or to
// end, which closes it. It reports false, with the reason, if d could not be
// registered and still belongs to the caller.
//
// After d is marked parked the caller must not touch d: the loop may already
// run it on another goroutine.
func (t *tunnel) park(d *direction) (parked bool, err error) {
	op := unix.EPOLL_CTL_MOD
	if !d.sp.added.Load() {
		op = unix.EPOLL_CTL_ADD
		d.sp.added.Store(true)
	}
	ep, tok, rc := t.ep, d.sp.token, d.sp.rc
	d.state.Store(dirParked)
	var cerr error
	err = rc.Control(func(fd uintptr) { cerr = ep.watch(op, int(fd), tok) })
	if err == nil {
		err = cerr
	}
	if err == nil {
		return true, nil
	}
	if d.state.CompareAndSwap(dirParked, dirRunning) {
		return false, err
	}
	return true, nil // end claimed it after closing the conns
}

// unwatch removes both sockets from the shared epoll set before end closes
// them. The kernel would drop them at close anyway, unless the fds were
// duplicated; this keeps the set exact. Errors mean already gone.
func (t *tunnel) unwatch() {
	if t.ep == nil {
		return
	}
	for i := range t.dirs {
		// A direction adding its socket after this check does so before
		// the close that follows, which then removes it.
		if t.dirs[i].sp.added.Load() {
			t.dirs[i].sp.rc.Control(func(fd uintptr) { t.ep.watch(unix.EPOLL_CTL_DEL, int(fd), 0) })
		}
	}
}

// release gives the tunnel's tokens and its share of the epoll instance back.
func (t *tunnel) release() {
	if t.ep != nil {
		t.ep.release(t.dirs[:])
	}
}

// ackProbe returns a function reporting tcpi_bytes_acked of c's socket, the
// number of bytes c's peer has acknowledged, or nil if c has no socket. It
// looks through wrappers such as *tls.Conn that expose NetConn.
func ackProbe(c net.Conn) func() (uint64, bool) {
	for {
		w, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = w.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() (acked uint64, ok bool) {
		rc.Control(func(fd uintptr) {
			// Fails on non-TCP sockets, which then report false.
			info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
			if err == nil {
				acked, ok = info.Bytes_acked, true
			}
		})
		return acked, ok
	}
}

// allAcked reports whether c's peer has acknowledged every byte (and the
// FIN) sent to it: nothing is left in c's send queue (SIOCOUTQ). It reports
// false for conns without a TCP socket.
func allAcked(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	empty := false
	rc.Control(func(fd uintptr) {
		n, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ)
		empty = err == nil && n == 0
	})
	return empty
}

// copySplice copies d.src to d.dst, both *net.TCPConn, with splice(2) until
// d.src reaches EOF, which it propagates with srcEOF, or reading it fails,
// which it returns. If dst fails, it records that with dstFailed and drops
// the rest. With a shared epoll instance it returns errParked instead of
// waiting when src has nothing to read.
//
// Go's io.Copy between TCP conns takes a pipe from a pool before it waits for
// data and keeps it while blocked, so an idle direction holds two fds.
// copySplice instead waits for readability without a pipe or buffer. A
// message is read into a pooled buffer as the readiness check and written
// on (readOnce, moveRead); in a bulk transfer it asks the kernel how many
// bytes are queued (SIOCINQ) and moves exactly that many with
// (*net.TCPConn).ReadFrom on an io.LimitedReader, which splices through a
// pooled pipe and cannot block on the read side (moveQueued).
func (t *tunnel) copySplice(d *direction) error {
	sp := &d.sp
	for {
		var err error
		switch {
		case t.ep == nil || sp.goWait:
			err = sp.rc.Read(sp.check) // Go's poller parks us until src is readable
			if sp.goWait && errors.Is(err, os.ErrDeadlineExceeded) {
				if err = t.quietOver(d); err != nil {
					return err
				}
				continue
			}
		default:
			err = sp.rc.Control(sp.checkCtl)
		}
		switch {
		case err != nil:
			return err
		case sp.err != nil:
			return sp.err
		case sp.eof:
			t.srcEOF(d)
			return nil
		case sp.blocked:
			return errParked
		}
		var stop bool
		if sp.got > 0 {
			stop, err = t.moveRead(d)
		} else {
			stop, err = t.moveQueued(d)
		}
		if stop || err != nil {
			return err
		}
	}
}

// moveQueued moves the bytes checkReadable found queued on d.src to d.dst,
// or drops them once dst failed. It returns an error reading src, or stop
// when d may stop dropping (lingerOver); a failure of dst it records with
// dstFailed.
func (t *tunnel) moveQueued(d *direction) (stop bool, err error) {
	sp := &d.sp
	src := d.src.(*net.TCPConn)
	if sp.queued == 0 && sp.small == nil {
		sp.small = make([]byte, 4<<10)
	}
	var rerr error
	if d.sink {
		// Dropped bytes are no activity.
		if sp.queued > 0 {
			sp.lr.N = int64(sp.queued)
			_, rerr = io.Copy(io.Discard, &sp.lr)
		} else {
			_, rerr = src.Read(sp.small)
		}
		return t.lingerOver(d), srcReadErr(rerr)
	}

	d.busy.Store(true)
	t.touch()
	var n int64
	var werr error
	if sp.queued > 0 {
		sp.lr.N = int64(sp.queued)
		// The bytes are queued on src, and the kernel keeps queued bytes
		// readable even after a reset, so only src's read deadline (goWait)
		// can stop the read side; any other error is dst's.
		n, werr = d.dst.(*net.TCPConn).ReadFrom(&sp.lr)
		if errors.Is(werr, os.ErrDeadlineExceeded) {
			// The deadline passed while a write was blocked: splice
			// stopped before moving anything more from src. Carry on.
			werr = nil
		}
	} else {
		// An urgent mark is at the head of the queue (SIOCINQ counts
		// only up to it): one buffer the ordinary way.
		var nr int
		nr, rerr = src.Read(sp.small)
		if nr > 0 {
			var nw int
			nw, werr = d.dst.Write(sp.small[:nr])
			n = int64(nw)
		}
	}
	d.n.Add(n)
	t.touch()
	d.busy.Store(false)
	sp.bulk = n >= relayBufSize
	if werr != nil {
		t.dstFailed(d, werr)
	}
	return false, srcReadErr(rerr)
}

// moveRead writes what readOnce read from d.src to d.dst, or drops it once
// dst failed; as moveQueued, it records a failure of dst with dstFailed,
// and reports stop when d may stop dropping (lingerOver).
func (t *tunnel) moveRead(d *direction) (stop bool, err error) {
	sp := &d.sp
	n := sp.got
	if d.sink {
		sp.putBuf()
		return t.lingerOver(d), nil
	}
	d.busy.Store(true)
	t.touch()
	nw, werr := d.dst.Write(sp.buf[:n])
	sp.putBuf()
	d.n.Add(int64(nw))
	t.touch()
	d.busy.Store(false)
	sp.bulk = n == relayBufSize
	if werr != nil {
		t.dstFailed(d, werr)
	}
	return false, nil
}

// srcReadErr is err from reading src in moveQueued, less what the next
// readiness check sees again: EOF (which it propagates) and src's read
// deadline (goWait, which it handles).
func srcReadErr(err error) error {
	if err == io.EOF || errors.Is(err, os.ErrDeadlineExceeded) {
		return nil
	}
	return err
}

// quietOver runs when d's read deadline passed while it waited in Go's
// poller. If the tunnel moved bytes within t.quiet it extends the deadline;
// otherwise it clears it, and d parks in epoll the next time it has nothing
// to read.
func (t *tunnel) quietOver(d *direction) error {
	if rest := t.quiet - time.Duration(int64(time.Since(t.start))-t.last.Load()); rest > 0 {
		return d.src.SetReadDeadline(time.Now().Add(rest))
	}
	d.sp.goWait = false
	return d.src.SetReadDeadline(time.Time{})
}

// Await blocks until c has bytes to read (spoke), reaches EOF or fails, or
// its read deadline passes (timedOut): the proxy's wait for an origin that
// may speak first, before the tunnel starts. On a socket it consumes
// nothing, so the bytes stay queued for the tunnel and data is nil; from
// other conns it reads, and the caller must forward data.
func Await(c net.Conn) (data []byte, spoke, timedOut bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return readFirst(c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return readFirst(c)
	}
	// The tunnel's own readiness check: bytes queued, EOF or an error end
	// the wait; nothing yet parks in the runtime poller.
	var sp spliceState
	err = rc.Read(sp.checkReadable)
	if err != nil {
		return nil, false, errors.Is(err, os.ErrDeadlineExceeded)
	}
	return nil, !sp.eof && sp.err == nil, false
}
