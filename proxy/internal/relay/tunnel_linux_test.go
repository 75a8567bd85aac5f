package relay

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/proxy/internal/nettest"
)

// The tests in this file count process-wide goroutines, fds and epoll tokens,
// so none of them is parallel (the testing package runs them before any
// parallel test of the package starts).

// tunnelPath is a way to run a tunnel's directions.
type tunnelPath struct {
	name    string
	mode    parkMode
	quiet   time.Duration
	generic bool // hide the *net.TCPConn type: copyGeneric over the same TCP
}

var (
	pathGoroutines = tunnelPath{"goroutines", parkGo, 0, false}         // before #5: a goroutine per direction
	pathEpoll      = tunnelPath{"epoll", parkEpoll, 0, false}           // back to epoll whenever nothing is queued
	pathHybrid     = tunnelPath{"hybrid", parkEpoll, epollQuiet, false} // Start's
	pathGeneric    = tunnelPath{"generic", parkEpoll, epollQuiet, true} // Start's for conns that are not *net.TCPConn
)

// start runs a tunnel between pc and pu on path p.
func (p tunnelPath) start(ctx context.Context, pc, pu net.Conn, idle time.Duration, st *Stats, done func(string, error)) *tunnel {
	if p.generic {
		pc, pu = struct{ *net.TCPConn }{pc.(*net.TCPConn)}, struct{ *net.TCPConn }{pu.(*net.TCPConn)}
	}
	t := newTunnel(pc, pu, idle, st, done)
	t.quiet = p.quiet
	t.run(ctx, p.mode)
	return t
}

// asyncTunnel is a tunnel started with run, and what its done reported.
type asyncTunnel struct {
	t              *tunnel
	client, origin *net.TCPConn // the test's ends
	pc, pu         *net.TCPConn // the proxy's ends
	st             Stats
	calls          atomic.Int32 // times done was called
	finished       chan struct{}
	reason         string
	err            error
}

// startAsync opens client ↔ pc [tunnel] pu ↔ origin on ln and starts the
// tunnel in mode. Cleanup closes the test's ends and waits for done.
func startAsync(tb testing.TB, ctx context.Context, ln net.Listener, idle time.Duration, path tunnelPath) *asyncTunnel {
	tb.Helper()
	at := &asyncTunnel{finished: make(chan struct{})}
	at.client, at.pc = tcpPair(tb, ln)
	at.pu, at.origin = tcpPair(tb, ln)
	at.t = path.start(ctx, at.pc, at.pu, idle, &at.st, func(reason string, err error) {
		if at.calls.Add(1) == 1 {
			at.reason, at.err = reason, err
			close(at.finished)
		}
	})
	tb.Cleanup(func() {
		at.client.Close()
		at.origin.Close()
		<-at.finished
	})
	return at
}

// wait waits for done and checks that it was called once, with want, after
// both proxy conns were closed.
func (at *asyncTunnel) wait(tb testing.TB, want string) error {
	tb.Helper()
	select {
	case <-at.finished:
	case <-time.After(10 * time.Second):
		tb.Fatalf("done was not called")
	}
	if at.reason != want {
		tb.Errorf("reason: got %q (err %v), want %q", at.reason, at.err, want)
	}
	if !isClosed(at.pc) || !isClosed(at.pu) {
		tb.Errorf("done called before both conns were closed")
	}
	return at.err
}

// parked reports whether both directions are parked in epoll.
func (at *asyncTunnel) parked() bool {
	return at.t.dirs[0].state.Load() == dirParked && at.t.dirs[1].state.Load() == dirParked
}

// waitParked polls until every tunnel has both directions parked in epoll or
// has ended; it returns how many ended first (an idle timeout can fire before
// a tunnel is seen parked on an overloaded machine).
func waitParked(tb testing.TB, ats []*asyncTunnel) (ended int) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		parked, ended := 0, 0
		for _, at := range ats {
			switch {
			case at.parked():
				parked++
			case at.calls.Load() > 0:
				ended++
			}
		}
		if parked+ended == len(ats) {
			return ended
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d tunnels parked in epoll, %d ended", parked, len(ats), ended)
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

// settle polls until cond holds, for at most 10 s (the epoll instance lingers
// for epollGrace after its last tunnel).
func settle(tb testing.TB, what string, cond func() (ok bool, detail string)) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		ok, detail := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s: %s", what, detail)
		}
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTunnelEpollIdleHoldsNoGoroutines opens 500 idle tunnels with Start:
// the goroutine count must not grow with them, and they must still work.
func TestTunnelEpollIdleHoldsNoGoroutines(t *testing.T) {
	const n = 500
	ln := nettest.Listen(t)
	base := runtime.NumGoroutine()
	ats := make([]*asyncTunnel, n)
	for i := range ats {
		ats[i] = startAsync(t, t.Context(), ln, time.Minute, pathHybrid)
		pingPong(t, ats[i].client, ats[i].origin) // each direction copied, then parked again
	}
	if ended := waitParked(t, ats); ended > 0 {
		t.Fatalf("%d tunnels ended on their own", ended)
	}
	// One loop goroutine for all; the slack is for the runtime's own.
	if got := runtime.NumGoroutine(); got > base+4 {
		t.Errorf("%d idle tunnels: goroutines %d, baseline %d; want at most %d", n, got, base, base+4)
	}
	if tokens, _ := epollForTest(); tokens != 2*n {
		t.Errorf("epoll tokens: got %d, want %d", tokens, 2*n)
	}
	for _, at := range ats { // still alive after idling
		pingPong(t, at.client, at.origin)
	}
	for _, at := range ats {
		at.client.CloseWrite()
		at.origin.CloseWrite()
	}
	for _, at := range ats {
		if err := at.wait(t, ReasonEOF); err != nil {
			t.Fatalf("err: %v", err)
		}
		if up, down := at.st.Up.Load(), at.st.Down.Load(); up != 8 || down != 8 {
			t.Fatalf("bytes: up %d, down %d; want 8 each", up, down)
		}
	}
	settle(t, "after the tunnels ended", func() (bool, string) {
		tokens, _ := epollForTest()
		g := runtime.NumGoroutine()
		return tokens == 0 && g <= base, "tokens " + strconv.Itoa(tokens) + ", goroutines " + strconv.Itoa(g) + " (baseline " + strconv.Itoa(base) + ")"
	})
}

// TestTunnelEpollEndWhileParked ends parked tunnels every way a tunnel ends
// and checks that done reports it once, and that no epoll token, goroutine or
// fd is left behind.
func TestTunnelEpollEndWhileParked(t *testing.T) {
	const n = 20
	ln := nettest.Listen(t)
	settle(t, "before", func() (bool, string) { _, open := epollForTest(); return !open, "epoll instance still open" })
	runtime.GC()
	baseFDs, _ := nettest.CountFDs(t)
	baseG := runtime.NumGoroutine()

	for _, tc := range []struct {
		name  string
		idle  time.Duration
		end   func(at *asyncTunnel, cancel context.CancelFunc)
		want  string
		check func(t *testing.T, err error)
	}{
		{"client_closes", time.Minute, func(at *asyncTunnel, _ context.CancelFunc) { at.client.Close(); at.origin.CloseWrite() }, ReasonEOF, nil},
		{"cancel", time.Minute, func(_ *asyncTunnel, cancel context.CancelFunc) { cancel() }, ReasonCanceled,
			func(t *testing.T, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("err: got %v, want context.Canceled", err)
				}
			}},
		{"idle_timeout", testIdle, func(*asyncTunnel, context.CancelFunc) {}, ReasonIdleTimeout, nil},
		// The client gets a FIN after the reset, and the tunnel ends when
		// it closes too.
		{"reset", time.Minute, func(at *asyncTunnel, _ context.CancelFunc) {
			at.origin.SetLinger(0)
			at.origin.Close()
			closeAtEOF(at.client)
		}, ReasonError,
			func(t *testing.T, err error) {
				if err == nil {
					t.Errorf("err: got nil, want the reset")
				}
			}},
	} {
		for _, path := range []tunnelPath{pathEpoll, pathHybrid} {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				ats := make([]*asyncTunnel, n)
				cancels := make([]context.CancelFunc, n)
				for i := range ats {
					ctx, cancel := context.WithCancel(t.Context())
					cancels[i] = cancel
					ats[i] = startAsync(t, ctx, ln, tc.idle, path)
				}
				if ended := waitParked(t, ats); ended == n {
					t.Skipf("all %d tunnels ended before they were seen parked: the test was starved", n)
				} else if ended > 0 && tc.want != ReasonIdleTimeout {
					t.Fatalf("%d tunnels ended on their own", ended)
				}
				for i, at := range ats {
					tc.end(at, cancels[i])
				}
				for i, at := range ats {
					err := at.wait(t, tc.want)
					if tc.check != nil {
						tc.check(t, err)
					} else if err != nil {
						t.Errorf("err: %v", err)
					}
					cancels[i]()
					at.client.Close()
					at.origin.Close()
				}
				for _, at := range ats {
					if c := at.calls.Load(); c != 1 {
						t.Errorf("done called %d times, want 1", c)
					}
				}
				if tokens, _ := epollForTest(); tokens != 0 {
					t.Errorf("epoll tokens after every tunnel ended: %d, want 0", tokens)
				}
			})
		}
	}
	settle(t, "after all", func() (bool, string) {
		fds, _ := nettest.CountFDs(t)
		g := runtime.NumGoroutine()
		_, open := epollForTest()
		return fds <= baseFDs && g <= baseG && !open,
			"fds " + strconv.Itoa(fds) + " (baseline " + strconv.Itoa(baseFDs) + "), goroutines " + strconv.Itoa(g) + " (baseline " + strconv.Itoa(baseG) + "), epoll open " + strconv.FormatBool(open)
	})
}

// TestTunnelEpollFDReuse ends parked tunnels while bytes for them are in
// flight (so readiness events race with the end) and at once opens new
// tunnels, which get the freed fd numbers. An event meant for an old tunnel
// must not reach a new one: each new tunnel moves exactly its own bytes.
func TestTunnelEpollFDReuse(t *testing.T) {
	const rounds = 300
	ln := nettest.Listen(t)
	reused := 0
	for i := range rounds {
		ctx, cancel := context.WithCancel(t.Context())
		path := []tunnelPath{pathEpoll, pathHybrid}[i/2%2]
		old := startAsync(t, ctx, ln, time.Minute, path)
		if waitParked(t, []*asyncTunnel{old}) > 0 {
			t.Fatalf("round %d: tunnel ended on its own", i)
		}
		oldFDs := []int{fdOf(t, old.pc), fdOf(t, old.pu)}
		// Readiness for both directions, racing with the cancel.
		old.client.Write([]byte("stale"))
		old.origin.Write([]byte("stale"))
		if i%2 == 0 {
			cancel()
		} else {
			old.origin.SetLinger(0)
			old.origin.Close()
			closeAtEOF(old.client) // the tunnel lingers for the client's end
		}
		old.wait(t, map[bool]string{true: ReasonCanceled, false: ReasonError}[i%2 == 0])
		cancel()
		old.client.Close()
		old.origin.Close()

		nu := startAsync(t, t.Context(), ln, time.Minute, path)
		if slices.Contains(oldFDs, fdOf(t, nu.pc)) || slices.Contains(oldFDs, fdOf(t, nu.pu)) {
			reused++
		}
		pingPong(t, nu.client, nu.origin)
		nu.client.CloseWrite()
		nu.origin.CloseWrite()
		if rest, err := io.ReadAll(nu.client); err != nil || len(rest) != 0 {
			t.Fatalf("round %d: client got %q, %v after the ping-pong; want EOF", i, rest, err)
		}
		if err := nu.wait(t, ReasonEOF); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if up, down := nu.st.Up.Load(), nu.st.Down.Load(); up != 4 || down != 4 {
			t.Fatalf("round %d: new tunnel moved up %d, down %d bytes; want 4 each", i, up, down)
		}
		nu.client.Close()
		nu.origin.Close()
		if c := old.calls.Load(); c != 1 {
			t.Fatalf("round %d: old tunnel's done called %d times", i, c)
		}
	}
	t.Logf("%d of %d new tunnels reused an fd number of the tunnel just ended", reused, rounds)
	if reused == 0 {
		t.Errorf("no new tunnel reused an fd number; the test did not test reuse")
	}
	if tokens, _ := epollForTest(); tokens != 0 {
		t.Errorf("epoll tokens: %d, want 0", tokens)
	}
}

// closeAtEOF reads c to its end, then closes it: a client that is sent a
// FIN where a reset ended the other side, and closes in turn.
func closeAtEOF(c net.Conn) {
	io.Copy(io.Discard, c)
	c.Close()
}

func fdOf(tb testing.TB, c *net.TCPConn) int {
	tb.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		tb.Fatal(err)
	}
	return fd
}

// BenchmarkIdleTunnelMemory opens 2,000 idle tunnels and reports what each
// costs this process: heap and goroutine stacks in use after a GC
// (B/tunnel). Resident memory is left to `make bench`, which measures a
// fresh proxy process: in here, memory the runtime returns to the system
// between the two readings made it noise, even negative. The sockets of both sides
// exist before the baseline, so only the tunnel is counted. "goroutines" is
// the path before #5 (a goroutine per direction parked in Go's poller),
// "epoll" and "hybrid" park in the shared epoll set, hybrid (Start's)
// after epollQuiet.
func BenchmarkIdleTunnelMemory(b *testing.B) {
	const n = 2000
	for _, bm := range []tunnelPath{pathGoroutines, pathEpoll, pathHybrid} {
		b.Run(bm.name, func(b *testing.B) {
			ln := nettest.Listen(b)
			var perTunnel float64
			for b.Loop() {
				var clients, origins, pcs, pus []*net.TCPConn
				for range n {
					c, pc := tcpPair(b, ln)
					pu, o := tcpPair(b, ln)
					clients, origins, pcs, pus = append(clients, c), append(origins, o), append(pcs, pc), append(pus, pu)
				}
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				wg.Add(n)
				heap0 := memInUse(b)
				ts := make([]*tunnel, n)
				for i := range n {
					ts[i] = bm.start(ctx, pcs[i], pus[i], time.Minute, nil, func(string, error) { wg.Done() })
					pingPong(b, clients[i], origins[i])
				}
				if bm.mode == parkEpoll { // measured once every direction is back in epoll
					settle(b, "parking", func() (bool, string) {
						for _, t := range ts {
							if t.dirs[0].state.Load() != dirParked || t.dirs[1].state.Load() != dirParked {
								return false, "not all parked"
							}
						}
						return true, ""
					})
				}
				perTunnel = float64(memInUse(b)-heap0) / n
				cancel()
				wg.Wait()
				for i := range n {
					clients[i].Close()
					origins[i].Close()
				}
			}
			b.ReportMetric(perTunnel, "B/tunnel")
		})
	}
}

// memInUse returns heap and stack bytes in use after a GC.
func memInUse(tb testing.TB) int64 {
	tb.Helper()
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// BenchmarkTunnelRoundTrip passes 64 bytes through a tunnel to an echoing
// origin and back, one op per round trip, and reports the p50 and p99
// latency. The tunnel idles between round trips for the time the client
// takes, so each direction parks (epoll) or waits (goroutines) every time.
func BenchmarkTunnelRoundTrip(b *testing.B) {
	for _, bm := range []tunnelPath{{name: "direct"}, pathGoroutines, pathEpoll, pathHybrid} {
		b.Run(bm.name, func(b *testing.B) {
			ln := nettest.Listen(b)
			client, origin := tcpPair(b, ln)
			if bm.name != "direct" {
				var pc, pu *net.TCPConn
				client, pc = tcpPair(b, ln)
				pu, origin = tcpPair(b, ln)
				done := make(chan struct{})
				bm.start(context.Background(), pc, pu, time.Minute, nil, func(string, error) { close(done) })
				b.Cleanup(func() { <-done })
			}
			b.Cleanup(func() { client.Close(); origin.Close() })
			go nettest.Echo(origin)
			msg := bytes.Repeat([]byte{'x'}, 64)
			got := make([]byte, 64)
			var lat []time.Duration
			for b.Loop() {
				t0 := time.Now()
				if _, err := client.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, got); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
	}
}

// BenchmarkTunnelSetup opens a tunnel, passes one byte each way through it
// and closes it, one op per tunnel: the per-tunnel overhead of each path,
// connects included.
func BenchmarkTunnelSetup(b *testing.B) {
	for _, bm := range []tunnelPath{pathGoroutines, pathEpoll, pathHybrid} {
		b.Run(bm.name, func(b *testing.B) {
			ln := nettest.Listen(b)
			one := make([]byte, 1)
			done := make(chan struct{}, 1)
			for b.Loop() {
				client, pc := tcpPair(b, ln)
				pu, origin := tcpPair(b, ln)
				bm.start(context.Background(), pc, pu, time.Minute, nil, func(string, error) { done <- struct{}{} })
				for _, step := range []struct{ from, to net.Conn }{{client, origin}, {origin, client}} {
					if _, err := step.from.Write(one); err != nil {
						b.Fatal(err)
					}
					if _, err := io.ReadFull(step.to, one); err != nil {
						b.Fatal(err)
					}
				}
				client.Close()
				origin.Close()
				<-done
			}
		})
	}
}

// TestTunnelClosedPeer runs the end of a tunnel whose origin answers and
// closes first, as HTTP servers do after "Connection: close" (issue 11,
// finding 5): the client then still sends (a TLS close_notify) and ends its
// side, and those bytes meet the origin's closed socket, which resets. That
// is a normal end ("eof"), and the client gets every byte of the response.
// With a slow client the response is still on its way when the proxy meets
// the reset; a reset towards the client then would discard it.
func TestTunnelClosedPeer(t *testing.T) {
	ln := nettest.Listen(t)
	for _, path := range []tunnelPath{pathHybrid, pathGeneric} {
		for _, tc := range []struct {
			name string
			resp int // response bytes
			// slow: the client reads the response only once the proxy
			// has met the origin's reset, so the response is in flight.
			slow bool
			// writeAfterReset: the client writes once more after the
			// origin's reset, so a write fails (EPIPE); otherwise its FIN
			// does (the half-close: ENOTCONN).
			writeAfterReset bool
			// abort: the origin resets instead of closing (SO_LINGER 0),
			// before the client's bytes come: an abnormal end.
			abort bool
			want  string
		}{
			{"fin_after_reset", 1000, false, false, false, ReasonEOF},
			{"write_after_reset", 1000, false, true, false, ReasonEOF},
			{"slow_client/fin_after_reset", 1 << 20, true, false, false, ReasonEOF},
			{"slow_client/write_after_reset", 1 << 20, true, true, false, ReasonEOF},
			{"slow_client/origin_aborts", 1 << 20, true, false, true, ReasonError},
		} {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				at := startAsync(t, t.Context(), ln, time.Minute, path)
				req, late := []byte("GET / HTTP/1.1\r\nConnection: close\r\n\r\n"), []byte("close_notify")
				resp := testBlob()[:tc.resp]
				if tc.slow {
					// A small, locked receive buffer (no autotuning) keeps part of
					// the response queued in the proxy however fast the machine.
					if err := at.client.SetReadBuffer(32 << 10); err != nil {
						t.Fatal(err)
					}
				}

				if _, err := at.client.Write(req); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(at.origin, make([]byte, len(req))); err != nil {
					t.Fatal(err)
				}
				if _, err := at.origin.Write(resp); err != nil {
					t.Fatal(err)
				}
				// The proxy's kernel has every response byte, so the origin's
				// FIN follows them at once and its reset discards none.
				nettest.WaitFor(t, func() bool { return sockQueue(t, at.origin, unix.SIOCOUTQ) == 0 }, "the origin's response to be acknowledged")
				if tc.abort {
					at.origin.SetLinger(0)
				}
				at.origin.Close()

				var got []byte
				if tc.slow {
					nettest.WaitFor(t, func() bool { return tcpState(t, at.pu) != unix.BPF_TCP_ESTABLISHED }, "the origin's FIN or reset to reach the proxy")
					if sockQueue(t, at.pc, unix.SIOCOUTQ)+sockQueue(t, at.pu, unix.SIOCINQ) == 0 {
						t.Fatalf("no response byte is in flight to the client: the test would not test a reset of the client")
					}
				} else {
					// The proxy has read the origin's EOF and passed it on.
					var err error
					if got, err = io.ReadAll(at.client); err != nil {
						t.Fatalf("client read %d bytes, then %v", len(got), err)
					}
				}

				if _, err := at.client.Write(late); err != nil {
					t.Fatal(err)
				}
				nettest.WaitFor(t, func() bool { return tcpState(t, at.pu) == unix.BPF_TCP_CLOSE }, "the origin's reset to reach the proxy")
				if tc.writeAfterReset {
					if _, err := at.client.Write(late); err != nil {
						t.Fatal(err)
					}
				}
				at.client.CloseWrite()

				if tc.slow {
					nettest.WaitFor(t, func() bool { return at.t.dirs[0].state.Load() == dirDone }, "the proxy to read the client's end")
					var err error
					if got, err = io.ReadAll(at.client); err != nil {
						t.Fatalf("client read %d of the %d bytes the proxy sent it, then %v; want all of them, then EOF", len(got), at.st.Down.Load(), err)
					}
				}
				if !bytes.Equal(got, resp) {
					t.Errorf("client got %d bytes, want the %d of the response", len(got), len(resp))
				}
				err := at.wait(t, tc.want)
				if tc.want == ReasonEOF && err != nil {
					t.Errorf("err: %v", err)
				}
				if tc.want == ReasonError && !errors.Is(err, syscall.ECONNRESET) {
					t.Errorf("err: got %v, want the origin's reset", err)
				}
				wantUp := len(req) + len(late) // a second late write fails
				if tc.abort {
					wantUp = len(req) // the first already meets the reset
				}
				if up, down := at.st.Up.Load(), at.st.Down.Load(); up != int64(wantUp) || down != int64(len(resp)) {
					t.Errorf("bytes: up %d, down %d; want %d, %d", up, down, wantUp, len(resp))
				}
			})
		}
	}
}

// tcpState returns c's TCP state; the BPF names of TCP states (unix.BPF_TCP_*)
// mirror the kernel's.
func tcpState(tb testing.TB, c syscall.Conn) uint8 {
	tb.Helper()
	var st uint8
	control(tb, c, func(fd int) {
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			tb.Fatal(err)
		}
		st = info.State
	})
	return st
}

// sockQueue returns the bytes queued on c for reading (SIOCINQ) or for
// sending and not yet acknowledged (SIOCOUTQ).
func sockQueue(tb testing.TB, c syscall.Conn, req uint) int {
	tb.Helper()
	var n int
	control(tb, c, func(fd int) {
		var err error
		if n, err = unix.IoctlGetInt(fd, req); err != nil {
			tb.Fatal(err)
		}
	})
	return n
}

func control(tb testing.TB, c syscall.Conn, f func(fd int)) {
	tb.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		tb.Fatal(err)
	}
	if err := rc.Control(func(fd uintptr) { f(int(fd)) }); err != nil {
		tb.Fatal(err)
	}
}

// TestTunnelEnds runs other ends around a side that closes or resets while
// the other still sends, and checks how the tunnel ends.
func TestTunnelEnds(t *testing.T) {
	ln := nettest.Listen(t)
	for _, path := range []tunnelPath{pathHybrid, pathGeneric} {
		for _, tc := range []struct {
			name string
			run  func(t *testing.T, at *asyncTunnel)
			want string
		}{
			// The client ends first (close_notify, FIN); the origin
			// closes with those bytes unread, so its kernel resets
			// instead of sending a FIN: a normal end.
			{"origin_resets_after_client_end", func(t *testing.T, at *asyncTunnel) {
				pingPong(t, at.client, at.origin)
				at.client.Write([]byte("close_notify"))
				at.client.CloseWrite()
				nettest.WaitFor(t, func() bool { return tcpState(t, at.origin) == unix.BPF_TCP_CLOSE_WAIT }, "the client's end to reach the origin")
				at.origin.Close() // bytes unread: RST
				if rest, err := io.ReadAll(at.client); err != nil || len(rest) != 0 {
					t.Errorf("client got %d bytes, then %v; want EOF", len(rest), err)
				}
			}, ReasonEOF},
			// The origin answers and closes; the client keeps sending
			// into the closed tunnel. Once the client has every byte of
			// the answer, the proxy stops reading it, and its writes fail
			// as they would on a direct connection.
			{"client_sends_after_origin_closed", func(t *testing.T, at *asyncTunnel) {
				pingPong(t, at.client, at.origin)
				at.origin.Close()
				if rest, err := io.ReadAll(at.client); err != nil || len(rest) != 0 {
					t.Fatalf("client got %d bytes, then %v; want EOF", len(rest), err)
				}
				for deadline := time.Now().Add(10 * time.Second); ; {
					if _, err := at.client.Write([]byte("more")); err != nil {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("the client could still write after 10s into a tunnel whose origin closed")
					}
				}
			}, ReasonEOF},
			// The client resets while the origin streams: the proxy must
			// not go on reading the stream for nobody until the idle
			// timeout.
			{"client_resets_origin_streams", func(t *testing.T, at *asyncTunnel) {
				pingPong(t, at.client, at.origin)
				go func() {
					for {
						if _, err := at.origin.Write(testBlob()[:64<<10]); err != nil {
							return
						}
					}
				}()
				if _, err := io.ReadFull(at.client, make([]byte, 64<<10)); err != nil {
					t.Fatal(err)
				}
				at.client.SetLinger(0)
				at.client.Close()
			}, ReasonError},
		} {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				at := startAsync(t, t.Context(), ln, time.Minute, path)
				tc.run(t, at)
				err := at.wait(t, tc.want)
				if tc.want == ReasonEOF && err != nil {
					t.Errorf("err: %v", err)
				}
			})
		}
	}
}
