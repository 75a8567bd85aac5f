package evloop

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/proxy/internal/nettest"
)

// acceptPauseEnv makes TestAcceptPause run its body: in a process of its
// own, as it lowers RLIMIT_NOFILE.
const acceptPauseEnv = "AZEGRESS_EVLOOP_ACCEPT_PAUSE"

// pauseHandler answers "ping" with "pong" and keeps the connection.
type pauseHandler struct {
	*testHandler
	accepted chan struct{}
}

func (h *pauseHandler) Accepted(*Conn) []byte { h.accepted <- struct{}{}; return nil }

func (h *pauseHandler) Head(c *Conn, head []byte, ev Event) Action {
	if string(head) == "ping" {
		return Reply([]byte("pong"), 4)
	}
	return NeedMore()
}

// TestAcceptPause: a loop out of fds takes its listener out of the set
// instead of spinning on it, and serves the connections waiting once fds
// are free again.
func TestAcceptPause(t *testing.T) {
	if os.Getenv(acceptPauseEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAcceptPause$", "-test.count=1", "-test.v", "-test.timeout=2m")
		cmd.Env = append(os.Environ(), acceptPauseEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err == nil && bytes.Contains(out, []byte("--- SKIP: TestAcceptPause")) {
			t.Skipf("the test's process skipped:\n%s", out)
		}
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestAcceptPause")) {
			t.Fatalf("the test's process: %v\n%s", err, out)
		}
		return
	}
	const (
		clients = 6
		room    = 2 // fds left for accepted connections
	)
	base, _ := nettest.CountFDs(t)
	t.Cleanup(func() {
		nettest.WaitFor(t, func() bool { n, _ := nettest.CountFDs(t); return n == base }, "fds back to baseline")
	})
	var waits atomic.Int64
	testHookWait = func() { waits.Add(1) }
	t.Cleanup(func() { testHookWait = nil })
	h := &pauseHandler{testHandler: newTestHandler(), accepted: make(chan struct{}, clients)}
	e, err := New(Config{Handler: h, Loops: 1, HeadTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The clients wait in the listener's queue, each with its ping.
	var cs []*net.TCPConn
	for range clients {
		c := dialRaw(t, ln.Addr().String())
		io.WriteString(c, "ping")
		cs = append(cs, c)
	}
	lowerFDLimit(t, 1+room) // Serve's dup of the listener, and room
	served := make(chan error, 1)
	go func() { served <- e.Serve(ln) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		<-served
	}()
	for i := range room {
		recv(t, h.accepted, "no connection accepted")
		if got := readN(t, cs[i], 4); got != "pong" {
			t.Fatalf("client %d read %q, want pong", i, got)
		}
	}
	// Out of fds for a few pauses: the loop wakes to retry the accept
	// after each (twice: the pause's end, the listener's readiness), and
	// for nothing else. A loop that spins waits thousands of times.
	before, start := waits.Load(), time.Now()
	time.Sleep(3 * acceptPause)
	pauses := int64(time.Since(start)/acceptPause) + 1
	if n := waits.Load() - before; n > 3*pauses {
		t.Errorf("the loop waited %d times in %d accept pauses; it spins", n, pauses)
	}
	if n := e.Conns(); n != room {
		t.Errorf("%d connections while out of fds, want %d", n, room)
	}
	for _, c := range cs[:room] {
		c.Close()
	}
	for i := room; i < clients; i++ {
		recv(t, h.accepted, "a waiting connection was not accepted once fds were free")
		if got := readN(t, cs[i], 4); got != "pong" {
			t.Fatalf("client %d read %q, want pong", i, got)
		}
		cs[i].Close()
	}
}

// lowerFDLimit fills the holes among the process's fds and sets its fd
// limit so that n more can be opened, until the test ends.
func lowerFDLimit(t *testing.T, n int) {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list fds: %v", err)
	}
	top := 0
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			top = max(top, fd)
		}
	}
	for { // the lowest free fd is taken first: fill up to top
		fd, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		if fd > top {
			unix.Close(fd)
			break
		}
		t.Cleanup(func() { unix.Close(fd) })
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(top + 1 + n)
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(unix.RLIMIT_NOFILE, &old) })
}

// A listener its owner set blocking is served as any other: the loops
// accept until EAGAIN with raw calls, which on a blocking listener would
// wait in the kernel, holding the loop's thread, for the next client.
func TestServeBlockingListener(t *testing.T) {
	echo := origin(t, nettest.Echo)
	h := newTestHandler()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	rc, err := ln.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.SetNonblock(int(fd), false) })
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, ln, h, Config{Loops: 1})
	for i := range 2 {
		c := dialProxy(t, ln.Addr().String(), echo, "")
		expect200(t, c)
		io.WriteString(c, "x")
		if got := readN(t, c, 1); got != "x" {
			t.Fatalf("tunnel %d: echo %q", i, got)
		}
		c.Close()
		h.end(t)
	}
}
