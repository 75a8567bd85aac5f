package gopool

import (
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps gopool a leaf: the relay depends on it.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}

// TestRunsEveryTask: every task runs exactly once, concurrently with the
// caller, whether a worker was waiting or not.
func TestRunsEveryTask(t *testing.T) {
	p := New(time.Minute)
	const n = 1000
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran := make(map[int]int)
	for i := range n {
		wg.Add(1)
		p.Go(func() {
			defer wg.Done()
			mu.Lock()
			ran[i]++
			mu.Unlock()
		})
		if i%10 == 0 {
			runtime.Gosched() // let workers come back and wait
		}
	}
	wg.Wait()
	for i := range n {
		if ran[i] != 1 {
			t.Fatalf("task %d ran %d times", i, ran[i])
		}
	}
}

// TestGoNeverBlocks: Go returns while every worker is busy.
func TestGoNeverBlocks(t *testing.T) {
	p := New(time.Minute)
	release := make(chan struct{})
	started := make(chan struct{}, 3)
	for range 3 {
		p.Go(func() { started <- struct{}{}; <-release })
	}
	for range 3 {
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("a task did not start while the others blocked")
		}
	}
	close(release)
}

// TestReusesWorker: tasks given one after another, each once the worker
// is back, run on one worker rather than a goroutine each (they would all
// still be waiting, idle, when the loop ends); and workers end once idle.
func TestReusesWorker(t *testing.T) {
	p := New(time.Minute)
	back := make(chan struct{}, 1)
	p.onWait = func() { back <- struct{}{} }
	for range 100 {
		p.Go(func() {})
		<-back
		// The worker is about to block in select; until it does, Go
		// would (correctly) start another one.
		time.Sleep(time.Millisecond)
	}
	// A worker that missed a hand-off by a hair is allowed; one per task is not.
	if n := p.Workers(); n > 5 {
		t.Errorf("%d workers after 100 tasks one after another, want 1 (a few at most)", n)
	}
	q := New(100 * time.Millisecond)
	done := make(chan struct{})
	q.Go(func() { close(done) })
	<-done
	waitFor(t, func() bool { return q.Workers() == 0 }, "the idle worker to end")
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// BenchmarkGo is the cost of handing a task to a worker and its end
// (compare BenchmarkGoStatement).
func BenchmarkGo(b *testing.B) {
	p := New(time.Minute)
	done := make(chan struct{})
	for b.Loop() {
		p.Go(func() { done <- struct{}{} })
		<-done
	}
}

func BenchmarkGoStatement(b *testing.B) {
	done := make(chan struct{})
	for b.Loop() {
		go func() { done <- struct{}{} }()
		<-done
	}
}
