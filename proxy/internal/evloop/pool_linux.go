package evloop

import (
	"slices"

	"golang.org/x/sys/unix"
)

// The loop's pool: idle origin connections kept after an exchange
// (Respond's keepOrigin) that no connection holds any more, for the next
// Exchange with an equal key on any of the loop's connections. A pooled
// socket stays in the loop's epoll set with its event data retagged
// (padPool and its id), so that one whose origin sends bytes or closes while
// idle is closed at once, and an event of a socket taken or closed meanwhile
// finds no id.

// Limits of a loop's pool; beyond them the oldest is closed.
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
	id           int32 // its event data
	key          any
	at           int64 // when it was put, on the loop's clock
	older, newer *idleOrigin
}

// originPool is a loop's pool: by key, newest last, and in one list by age
// for the loop's limit and the idle expiry.
type originPool struct {
	byKey          map[any][]*idleOrigin
	byID           map[int32]*idleOrigin
	oldest, newest *idleOrigin
	nextID         int32
}

// poolPut keeps fd, an idle origin socket in the loop's epoll set, under
// key, closing the oldest beyond the limits; it reports whether fd was kept
// (not while the loop stops).
func (l *loop) poolPut(fd int, key any) bool {
	p := &l.pool
	if l.stopping {
		unix.Close(fd)
		return false
	}
	p.nextID++
	o := &idleOrigin{fd: fd, id: p.nextID, key: key, at: l.now}
	ev := unix.EpollEvent{Events: poolEvents, Fd: o.id, Pad: padPool}
	if unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, fd, &ev) != nil {
		unix.Close(fd)
		return false
	}
	if p.byKey == nil {
		p.byKey, p.byID = make(map[any][]*idleOrigin), make(map[int32]*idleOrigin)
	}
	if list := p.byKey[key]; len(list) >= poolPerKey {
		l.poolClose(list[0])
	}
	if len(p.byID) >= poolMax {
		l.poolClose(p.oldest)
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
	return true
}

// poolTake returns the newest pooled socket under key that is still idle,
// out of the pool (its event data the pool's until the caller's), or -1.
func (l *loop) poolTake(key any) int {
	p := &l.pool
	for {
		list := p.byKey[key]
		if len(list) == 0 {
			return -1
		}
		o := list[len(list)-1]
		l.poolRemove(o)
		// Its event may be in this batch, no longer found: ask the socket.
		if l.stillIdle(o.fd) {
			return o.fd
		}
		unix.Close(o.fd)
	}
}

// poolEvent closes a pooled socket whose origin sent bytes or closed.
func (l *loop) poolEvent(id int32, evs uint32) {
	o := l.pool.byID[id]
	if o == nil {
		return // taken or closed in this batch
	}
	if evs&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 || !l.stillIdle(o.fd) {
		l.poolClose(o)
	}
}

// poolNext is when the oldest pooled socket expires, or -1.
func (l *loop) poolNext() int64 {
	if o := l.pool.oldest; o != nil {
		return o.at + int64(l.e.cfg.OriginIdleTimeout)
	}
	return -1
}

// poolExpire closes the sockets idle for OriginIdleTimeout.
func (l *loop) poolExpire() {
	for o := l.pool.oldest; o != nil && o.at+int64(l.e.cfg.OriginIdleTimeout) <= l.now; o = l.pool.oldest {
		l.poolClose(o)
	}
}

// poolCloseAll closes every pooled socket (Shutdown).
func (l *loop) poolCloseAll() {
	for l.pool.oldest != nil {
		l.poolClose(l.pool.oldest)
	}
}

func (l *loop) poolClose(o *idleOrigin) {
	l.poolRemove(o)
	unix.Close(o.fd)
}

func (l *loop) poolRemove(o *idleOrigin) {
	p := &l.pool
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
