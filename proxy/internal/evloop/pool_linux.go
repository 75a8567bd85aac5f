package evloop

import (
	"slices"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The engine's pool: idle origin connections kept after an exchange
// (Respond's keepOrigin) that no connection holds any more, for the next
// Exchange with an equal key on any connection of any loop. A client's next
// connection lands on whichever loop accepts it, so a pool per loop would
// find its origin 1/Loops of the time. A pooled socket stays in the epoll
// set of the loop that put it (its owner) with its event data retagged
// (padPool and its id), so that one whose origin sends bytes or closes while
// idle is closed at once, and an event of a socket taken or closed meanwhile
// finds no id. Another loop that takes it moves it to its own set. One
// mutex guards it: a loop takes it at most a few times per exchange, and
// never on the path of a client that keeps its connection (its origin stays
// attached to it).

// Limits of the pool; beyond them the oldest is closed.
const (
	poolPerKey = 32
	poolMax    = 256
)

// poolEvents are what a pooled socket is watched for: bytes or a close
// (not EPOLLOUT, which an idle socket would report at every change).
const poolEvents = unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLET

// idleOrigin is one pooled socket.
type idleOrigin struct {
	fd           int
	owner        *loop // whose epoll set has it
	id           int32 // its event data
	key          any
	at           int64 // when it was put, on the loop's clock
	older, newer *idleOrigin
}

// originPool is the engine's pool: by key, newest last, and in one list by
// age for the limits and the idle expiry.
type originPool struct {
	mu             sync.Mutex
	byKey          map[any][]*idleOrigin
	byID           map[int32]*idleOrigin
	oldest, newest *idleOrigin
	nextID         int32
	// first is oldest's time + 1, or 0 for none: every loop asks for it at
	// every wait, which must not take the mutex (or bounce its line)
	// while nothing is due.
	first atomic.Int64
}

// noteOldest updates p.first; p.mu is held.
func (p *originPool) noteOldest() {
	if p.oldest == nil {
		p.first.Store(0)
		return
	}
	p.first.Store(p.oldest.at + 1)
}

// poolPut keeps fd, an idle origin socket in the loop's epoll set, under
// key, closing the oldest beyond the limits; it reports whether fd was kept
// (not while the loop stops).
func (l *loop) poolPut(fd int, key any) bool {
	p := &l.e.pool
	if l.stopping {
		closeFD(fd)
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextID++
	o := &idleOrigin{fd: fd, owner: l, id: p.nextID, key: key, at: l.now}
	ev := unix.EpollEvent{Events: poolEvents, Fd: o.id, Pad: padPool}
	if unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, fd, &ev) != nil {
		closeFD(fd)
		return false
	}
	if p.byKey == nil {
		p.byKey, p.byID = make(map[any][]*idleOrigin), make(map[int32]*idleOrigin)
	}
	if list := p.byKey[key]; len(list) >= poolPerKey {
		p.close(list[0])
	}
	if len(p.byID) >= poolMax {
		p.close(p.oldest)
	}
	p.byKey[key] = append(p.byKey[key], o)
	p.byID[o.id] = o
	o.older = p.newest
	if p.newest != nil {
		p.newest.newer = o
	} else {
		p.oldest = o
	}
	p.newest = o
	p.noteOldest()
	return true
}

// poolTake returns the newest pooled socket under key that is still idle,
// out of the pool, or -1. A socket from another loop's set is moved into
// l's (foreign false); one of l's keeps its event data the pool's until the
// caller's (EPOLL_CTL_MOD).
func (l *loop) poolTake(key any) int {
	p := &l.e.pool
	for {
		p.mu.Lock()
		list := p.byKey[key]
		if len(list) == 0 {
			p.mu.Unlock()
			return -1
		}
		o := list[len(list)-1]
		p.remove(o)
		p.mu.Unlock()
		// Its event may be in this batch, no longer found: ask the socket.
		if !l.stillIdle(o.fd) {
			closeFD(o.fd)
			continue
		}
		if o.owner == l {
			return o.fd
		}
		// Out of its owner's set (an event already there finds no id) and
		// into l's, tagged as the pool's until the caller's MOD.
		unix.EpollCtl(o.owner.ep, unix.EPOLL_CTL_DEL, o.fd, nil)
		ev := unix.EpollEvent{Events: poolEvents, Fd: 0, Pad: padPool}
		if unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, o.fd, &ev) != nil {
			closeFD(o.fd)
			continue
		}
		return o.fd
	}
}

// poolEvent closes a pooled socket whose origin sent bytes or closed.
func (l *loop) poolEvent(id int32, evs uint32) {
	p := &l.e.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.byID[id]
	if o == nil {
		return // taken or closed in this batch
	}
	if evs&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 || !l.stillIdle(o.fd) {
		p.close(o)
	}
}

// poolNext is when the oldest pooled socket expires, or -1.
func (l *loop) poolNext() int64 {
	if at := l.e.pool.first.Load(); at > 0 {
		return at - 1 + int64(l.e.cfg.OriginIdleTimeout) // the loops share one clock
	}
	return -1
}

// poolExpire closes the sockets idle for OriginIdleTimeout.
func (l *loop) poolExpire() {
	if next := l.poolNext(); next < 0 || next > l.now {
		return
	}
	p := &l.e.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	for o := p.oldest; o != nil && o.at+int64(l.e.cfg.OriginIdleTimeout) <= l.now; o = p.oldest {
		p.close(o)
	}
}

// poolCloseAll closes every pooled socket (Shutdown, a reload).
func (l *loop) poolCloseAll() {
	p := &l.e.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.oldest != nil {
		p.close(p.oldest)
	}
}

// close closes o's socket, which leaves its owner's epoll set with it.
func (p *originPool) close(o *idleOrigin) {
	p.remove(o)
	closeFD(o.fd)
}

func (p *originPool) remove(o *idleOrigin) {
	if o.older != nil {
		o.older.newer = o.newer
	} else {
		p.oldest = o.newer
	}
	if o.newer != nil {
		o.newer.older = o.older
	} else {
		p.newest = o.older
	}
	o.older, o.newer = nil, nil
	p.noteOldest()
	delete(p.byID, o.id)
	list := p.byKey[o.key]
	if i := slices.Index(list, o); i >= 0 {
		list = slices.Delete(list, i, i+1)
	}
	if len(list) == 0 {
		delete(p.byKey, o.key)
		return
	}
	p.byKey[o.key] = list
}
