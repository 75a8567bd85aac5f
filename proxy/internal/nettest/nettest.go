package nettest

import (
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// Listen listens on a free port of 127.0.0.1 until the test ends.
func Listen(tb testing.TB) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// Serve serves fn on a free port of 127.0.0.1, each connection on a
// goroutine of its own and closed when fn returns, until the test ends:
// then the listener and every connection still open are closed, and Serve
// waits for their goroutines.
func Serve(tb testing.TB, fn func(net.Conn)) net.Listener {
	tb.Helper()
	ln := Listen(tb)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns = make(map[net.Conn]bool)
		done  bool
	)
	tb.Cleanup(func() {
		ln.Close()
		mu.Lock()
		done = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			if done {
				c.Close()
			}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				fn(c)
			})
		}
	})
	return ln
}

// Echo writes back what it reads from c until EOF, then half-closes c. It
// copies through a buffer so that it holds no splice pipe while waiting.
func Echo(c net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			if cw, ok := c.(interface{ CloseWrite() error }); ok && err == io.EOF {
				cw.CloseWrite()
			} else {
				c.Close()
			}
			return
		}
	}
}

// CountFDs returns the number of open fds in this process and how many of
// them are pipes.
func CountFDs(tb testing.TB) (fds, pipes int) {
	tb.Helper()
	kinds := FDKinds(tb)
	for _, n := range kinds {
		fds += n
	}
	return fds, kinds["pipe"]
}

// FDKinds counts this process's open fds by kind: "socket", "pipe",
// "anon_inode" or "file". It skips the test where /proc is not there.
func FDKinds(tb testing.TB) map[string]int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Skipf("cannot count fds: %v", err)
	}
	kinds := make(map[string]int)
	for _, e := range ents {
		l, _ := os.Readlink("/proc/self/fd/" + e.Name())
		kind, _, ok := strings.Cut(l, ":")
		if !ok {
			kind = "file"
		}
		kinds[kind]++
	}
	return kinds
}

// WaitFor polls cond for up to 5s: for effects that happen after what the
// test can wait on (a log record at connection close, a socket's state),
// never for readiness.
func WaitFor(tb testing.TB, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
