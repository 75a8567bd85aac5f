package relay

import (
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// poller is the epoll instance idle tunnel directions park in, so that they
// hold no goroutine. Each parked socket is registered EPOLLONESHOT with a
// token, never its fd, as event data: a token is not reused, so an event for
// a socket that was closed meanwhile (and whose fd number may already belong
// to another tunnel) finds no direction and is dropped.
//
// The loop goroutine waits for the epoll fd itself to become readable in Go's
// runtime poller (epoll fds nest), so no thread is blocked in epoll_wait. The
// instance and its goroutine exist only while tunnels use them, plus
// epollGrace, so an idle process is back to its baseline of goroutines and
// fds.
type poller struct {
	fd   int
	file *os.File // owns fd; closing it stops the loop
	rc   syscall.RawConn

	// Guarded by epollMu.
	refs   int                   // tunnels holding this poller
	dirs   map[uint64]*direction // token → direction of a running tunnel
	closer *time.Timer           // closes the instance once unused for epollGrace
	closed bool
}

// epollGrace is how long an unused epoll instance is kept for the next tunnel.
const epollGrace = time.Second

// epollBatch is the number of events taken per epoll_wait.
const epollBatch = 128

var (
	epollMu   sync.Mutex
	epollCur  *poller // the instance new tunnels join; nil until one is needed
	epollNext uint64  // last token handed out
)

// acquirePoller joins the current epoll instance, starting one if needed,
// and gives each of dirs a token. It returns nil if no instance can be made
// (out of fds); the tunnel then parks in Go's poller.
func acquirePoller(dirs []direction) *poller {
	epollMu.Lock()
	defer epollMu.Unlock()
	p := epollCur
	if p == nil {
		var err error
		if p, err = newPoller(); err != nil {
			return nil
		}
		epollCur = p
		go p.loop()
	}
	p.refs++
	for i := range dirs {
		epollNext++
		dirs[i].sp.token = epollNext
		p.dirs[epollNext] = &dirs[i]
	}
	return p
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	// Non-blocking, so os.NewFile registers it with Go's runtime poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(fd), "epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &poller{fd: fd, file: f, rc: rc, dirs: make(map[uint64]*direction)}, nil
}

// release drops dirs' tokens and the tunnel's share of p.
func (p *poller) release(dirs []direction) {
	epollMu.Lock()
	defer epollMu.Unlock()
	for i := range dirs {
		delete(p.dirs, dirs[i].sp.token)
	}
	p.refs--
	if p.refs > 0 {
		return
	}
	if p.closer == nil {
		p.closer = time.AfterFunc(epollGrace, p.closeIfUnused)
	} else {
		p.closer.Reset(epollGrace)
	}
}

// closeIfUnused closes p if no tunnel joined it during the grace period.
func (p *poller) closeIfUnused() {
	epollMu.Lock()
	if p.refs > 0 || p.closed {
		epollMu.Unlock()
		return
	}
	p.closed = true
	if epollCur == p {
		epollCur = nil
	}
	epollMu.Unlock()
	p.file.Close() // wakes the loop, which returns
}

// watch adds, re-arms (op EPOLL_CTL_ADD or EPOLL_CTL_MOD) or, with
// EPOLL_CTL_DEL, removes fd. Call it under the socket's RawConn.Control so
// that fd cannot be closed and reused meanwhile.
func (p *poller) watch(op, fd int, token uint64) error {
	ev := unix.EpollEvent{
		Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT,
		Fd:     int32(uint32(token)),
		Pad:    int32(uint32(token >> 32)),
	}
	if err := unix.EpollCtl(p.fd, op, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	return nil
}

// loop resumes parked directions whose socket became readable, each on a new
// goroutine, until p is closed.
func (p *poller) loop() {
	events := make([]unix.EpollEvent, epollBatch)
	ready := make([]*direction, 0, epollBatch)
	for {
		var n int
		var werr error
		err := p.rc.Read(func(fd uintptr) bool {
			for {
				n, werr = unix.EpollWait(int(fd), events, 0)
				if werr != unix.EINTR {
					return n > 0 || werr != nil
				}
			}
		})
		if err != nil || werr != nil {
			// Closed by closeIfUnused, or broken, which should not happen:
			// new tunnels then get a new instance. Directions parked here
			// stay parked until their tunnel ends (idle timeout, ctx).
			epollMu.Lock()
			if epollCur == p {
				epollCur = nil
			}
			epollMu.Unlock()
			return
		}
		epollMu.Lock()
		for _, ev := range events[:n] {
			tok := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if d := p.dirs[tok]; d != nil {
				ready = append(ready, d)
			}
		}
		epollMu.Unlock()
		for i, d := range ready {
			ready[i] = nil
			// Fails if end claimed d first; the tunnel is then finishing.
			if d.state.CompareAndSwap(dirParked, dirRunning) {
				go d.t.runSplice(d)
			}
		}
		ready = ready[:0]
	}
}

// epollForTest reports the tokens held by running tunnels and whether an
// epoll instance is open.
func epollForTest() (tokens int, open bool) {
	epollMu.Lock()
	defer epollMu.Unlock()
	if epollCur == nil {
		return 0, false
	}
	return len(epollCur.dirs), true
}
