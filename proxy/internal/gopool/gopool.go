// Package gopool runs short tasks on goroutines that are kept for the next
// task.
//
// A new goroutine starts with a small stack, and a task as deep as a
// tunnel's setup (the head, the decision, the dial and the resolver under
// it, the log record) grows it several times, each time copying every frame
// and adjusting its pointers: 7% of the proxy's CPU per tunnel in a profile.
// A kept goroutine has its stack grown already. Workers wait for a task for
// a while and then end, so an idle proxy is back to its baseline of
// goroutines.
//
// It imports nothing of the module: TestDeps enforces that.
package gopool

import (
	"sync/atomic"
	"time"
)

// Pool hands tasks to waiting workers. The zero value is not usable; use New.
type Pool struct {
	work    chan func()
	idle    time.Duration
	workers atomic.Int32 // running or waiting
	onWait  func()       // for tests: runs before a worker waits for a task
}

// New returns a Pool whose workers end after waiting idle for a task.
func New(idle time.Duration) *Pool {
	return &Pool{work: make(chan func()), idle: idle}
}

// Go runs f on a waiting worker, or on a new one if none is waiting. Like
// the go statement it never blocks, and f runs on a goroutine of its own.
func (p *Pool) Go(f func()) {
	select {
	case p.work <- f:
	default:
		p.workers.Add(1)
		go p.worker(f)
	}
}

// Workers reports the workers running a task or waiting for one.
func (p *Pool) Workers() int { return int(p.workers.Load()) }

// worker runs f, then further tasks, until it has waited p.idle for one.
func (p *Pool) worker(f func()) {
	defer p.workers.Add(-1)
	var t *time.Timer
	for {
		f()
		f = nil // let the task's closure go while waiting
		if t == nil {
			t = time.NewTimer(p.idle)
		} else {
			t.Reset(p.idle)
		}
		if p.onWait != nil {
			p.onWait()
		}
		select {
		case f = <-p.work:
			t.Stop()
		case <-t.C:
			return
		}
	}
}
