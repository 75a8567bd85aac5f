package relay

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/proxy/internal/nettest"
)

// TestTunnel is deliberately not parallel: its FDs subtest counts this
// process's open files and its final check counts goroutines, and other tests
// running at the same time would disturb both counts. Every other subtest is
// parallel within it.
func TestTunnel(t *testing.T) {
	baseline := runtime.NumGoroutine()

	t.Run("FDs", testTunnelFDs)
	testBlob() // generate it before any tunnel's idle clock runs
	t.Run("Cases", func(t *testing.T) {
		for _, mode := range []struct {
			name string
			wrap func(*net.TCPConn) net.Conn
		}{
			{"splice", func(c *net.TCPConn) net.Conn { return c }},
			// Hiding the *net.TCPConn type forces the buffered path over real
			// TCP; CloseWrite and SetLinger are still promoted.
			{"generic", func(c *net.TCPConn) net.Conn { return struct{ *net.TCPConn }{c} }},
		} {
			for _, tc := range tunnelCases {
				t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, mode.wrap)
				})
			}
		}
		t.Run("netpipe/echo", func(t *testing.T) {
			t.Parallel()
			testNetPipeEcho(t)
		})
		t.Run("netpipe/idle", func(t *testing.T) {
			t.Parallel()
			testNetPipeIdle(t)
		})
	})

	// Every tunnel above has ended; their goroutines must be gone too.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: got %d, want <= %d\n%s", runtime.NumGoroutine(), baseline, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

var tunnelCases = []struct {
	name string
	run  func(t *testing.T, wrap func(*net.TCPConn) net.Conn)
}{
	{"echo", testTunnelEcho},
	{"bulk", testTunnelBulk},
	{"half_close", testTunnelHalfClose},
	{"upstream_closes_first", testTunnelUpstreamClosesFirst},
	{"reset", testTunnelReset},
	{"idle", testTunnelIdle},
	{"idle_not_while_streaming", testTunnelIdleNotWhileStreaming},
	{"slow_reader_not_idle", testTunnelSlowReader},
	{"stalled_reader_idle", testTunnelStalledReader},
	{"cancel", testTunnelCancel},
}

// testIdle is the idle timeout of tests that expect it to fire. Tests that
// expect it not to fire despite activity use testBusyIdle, which is longer so
// that a loaded CI machine does not starve the test's own writer for that long.
const (
	testIdle     = 200 * time.Millisecond
	testBusyIdle = 500 * time.Millisecond
)

// testTunnel is a pipe running between two loopback TCP connections:
// client ↔ proxyClient [pipe] proxyUpstream ↔ origin.
type testTunnel struct {
	client, origin             *net.TCPConn // the test's ends
	proxyClient, proxyUpstream net.Conn     // the ends given to pipe
	st                         Stats

	done   chan struct{} // closed when pipe returns
	ended  time.Time     // when pipe returned
	reason string
	err    error
}

// startTunnel starts pipe between two new loopback connections. The conns
// given to pipe are passed through wrap. Cleanup closes the test's ends and
// waits for pipe to return.
func startTunnel(tb testing.TB, ctx context.Context, idle time.Duration, wrap func(*net.TCPConn) net.Conn) *testTunnel {
	tb.Helper()
	ln := nettest.Listen(tb)
	client, pc := tcpPair(tb, ln)
	pu, origin := tcpPair(tb, ln)
	tt := &testTunnel{
		client:        client,
		origin:        origin,
		proxyClient:   wrap(pc),
		proxyUpstream: wrap(pu),
		done:          make(chan struct{}),
	}
	go func() {
		defer close(tt.done)
		tt.reason, tt.err = pipe(ctx, tt.proxyClient, tt.proxyUpstream, idle, &tt.st)
		tt.ended = time.Now()
	}()
	tb.Cleanup(func() {
		client.Close()
		origin.Close()
		<-tt.done
	})
	return tt
}

// wait waits for pipe to return and checks its reason and that it closed both conns.
func (tt *testTunnel) wait(t *testing.T, wantReason string) error {
	t.Helper()
	select {
	case <-tt.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("pipe did not return")
	}
	if tt.reason != wantReason {
		t.Errorf("reason: got %q (err %v), want %q", tt.reason, tt.err, wantReason)
	}
	if !isClosed(tt.proxyClient) || !isClosed(tt.proxyUpstream) {
		t.Errorf("pipe returned without closing both conns")
	}
	return tt.err
}

func (tt *testTunnel) checkCounts(t *testing.T, up, down int) {
	t.Helper()
	if got := tt.st.Up.Load(); got != int64(up) {
		t.Errorf("up bytes: got %d, want %d", got, up)
	}
	if got := tt.st.Down.Load(); got != int64(down) {
		t.Errorf("down bytes: got %d, want %d", got, down)
	}
}

func testTunnelEcho(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	tt := startTunnel(t, t.Context(), 0, wrap)
	go nettest.Echo(tt.origin)

	total := 0
	for i := range 100 {
		msg := testBlob()[i*1000 : i*1000+1+i*97]
		if _, err := tt.client.Write(msg); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(tt.client, got); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("echo %d: got %d bytes that differ from the %d sent", i, len(got), len(msg))
		}
		total += len(msg)
		// The counters are live: they reach the bytes echoed so far while the
		// tunnel runs (a direction adds after its write returns, which may be
		// just after the peer already read the bytes).
		for deadline := time.Now().Add(5 * time.Second); tt.st.Up.Load() != int64(total) || tt.st.Down.Load() != int64(total); {
			if time.Now().After(deadline) {
				t.Fatalf("live counters after %d bytes: up %d, down %d", total, tt.st.Up.Load(), tt.st.Down.Load())
			}
			runtime.Gosched()
		}
	}
	tt.client.CloseWrite()
	if rest, err := io.ReadAll(tt.client); err != nil || len(rest) != 0 {
		t.Fatalf("after CloseWrite: got %d bytes, %v; want EOF", len(rest), err)
	}
	if err := tt.wait(t, ReasonEOF); err != nil {
		t.Errorf("err: %v", err)
	}
	tt.checkCounts(t, total, total)
}

func testTunnelBulk(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	up := testBlob()
	down := testBlob()[1<<20:]
	tt := startTunnel(t, t.Context(), time.Minute, wrap)

	// Both directions at once; each side sends, half-closes, and reads to EOF.
	errc := make(chan error, 2)
	for _, side := range []struct {
		c          *net.TCPConn
		send, want []byte
	}{{tt.client, up, down}, {tt.origin, down, up}} {
		go func() { errc <- sendAndCheck(side.c, side.send, side.want) }()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
	if err := tt.wait(t, ReasonEOF); err != nil {
		t.Errorf("err: %v", err)
	}
	tt.checkCounts(t, len(up), len(down))
}

func testTunnelHalfClose(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	req := testBlob()[:1<<20]
	resp := testBlob()[2<<20 : 6<<20]
	tt := startTunnel(t, t.Context(), time.Minute, wrap)

	originErr := make(chan error, 1)
	go func() {
		defer tt.origin.Close()
		got, err := io.ReadAll(tt.origin) // until the client's CloseWrite
		if err == nil && !bytes.Equal(got, req) {
			err = errors.New("origin: request differs")
		}
		if err == nil {
			_, err = tt.origin.Write(resp)
		}
		originErr <- err
	}()
	if _, err := tt.client.Write(req); err != nil {
		t.Fatal(err)
	}
	tt.client.CloseWrite()
	got, err := io.ReadAll(tt.client)
	if err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got) != sha256.Sum256(resp) {
		t.Errorf("response: got %d bytes, want %d identical bytes", len(got), len(resp))
	}
	if err := <-originErr; err != nil {
		t.Error(err)
	}
	if err := tt.wait(t, ReasonEOF); err != nil {
		t.Errorf("err: %v", err)
	}
	tt.checkCounts(t, len(req), len(resp))
}

func testTunnelUpstreamClosesFirst(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	tt := startTunnel(t, t.Context(), time.Minute, wrap)
	if _, err := tt.origin.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	tt.origin.Close()
	got, err := io.ReadAll(tt.client)
	if err != nil || string(got) != "bye" {
		t.Fatalf("client read: got %q, %v; want %q, EOF", got, err, "bye")
	}
	select {
	case <-tt.done:
		t.Fatalf("pipe returned (%s) while the client could still send", tt.reason)
	default:
	}
	tt.client.Close()
	if err := tt.wait(t, ReasonEOF); err != nil {
		t.Errorf("err: %v", err)
	}
	tt.checkCounts(t, 0, 3)
}

// testTunnelReset: the origin resets after sending. The client gets every
// byte the proxy read before the reset and then a FIN, never a reset that
// would discard bytes still on their way to it. The tunnel ends "error"
// when the client closes too.
func testTunnelReset(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	tt := startTunnel(t, t.Context(), time.Minute, wrap)
	sent := testBlob()[:256<<10]
	go func() {
		tt.origin.Write(sent)
		tt.origin.SetLinger(0)
		tt.origin.Close() // RST; discards what the origin's kernel has not sent yet
	}()
	got, err := io.ReadAll(tt.client)
	if err != nil {
		t.Fatalf("client read %d bytes, then %v; want every byte the proxy read, then EOF", len(got), err)
	}
	if !bytes.Equal(got, sent[:len(got)]) {
		t.Fatalf("client got %d bytes that differ from what the origin sent", len(got))
	}
	select {
	case <-tt.done:
		t.Fatalf("pipe returned (%s) while the client could still send", tt.reason)
	default:
	}
	tt.client.Close() // after the proxy read the reset: it sent the FIN
	if err := tt.wait(t, ReasonError); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("err: got %v, want the reset", err)
	}
	tt.checkCounts(t, 0, len(got))
}

func testTunnelIdle(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	start := time.Now()
	tt := startTunnel(t, t.Context(), testIdle, wrap)
	if err := tt.wait(t, ReasonIdleTimeout); err != nil {
		t.Errorf("err: %v", err)
	}
	if d := time.Since(start); d < testIdle {
		t.Errorf("idle timeout after %v, want >= %v", d, testIdle)
	}
	if n, err := tt.client.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("client read after idle timeout: got %d, %v; want EOF", n, err)
	}
}

func testTunnelIdleNotWhileStreaming(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	tt := startTunnel(t, t.Context(), testBusyIdle, wrap)
	go io.Copy(io.Discard, tt.client)

	// The download streams while the upload side stays silent for 3×idle.
	tick := time.NewTicker(testBusyIdle / 20)
	defer tick.Stop()
	sent := 0
	var maxGap time.Duration
	var lastWrite time.Time // start of the last write that succeeded
	// copierStarved skips the test if the tunnel ended less than idle after
	// the last write: had the copier run, that write would have been
	// activity and the timeout could not have fired so early.
	copierStarved := func() {
		if d := tt.ended.Sub(lastWrite); !lastWrite.IsZero() && d < testBusyIdle {
			t.Skipf("idle timeout %v after the last write, before it was copied: the copier was descheduled", d)
		}
	}
	last := time.Now()
	for end := last.Add(3 * testBusyIdle); time.Now().Before(end); {
		<-tick.C
		maxGap = max(maxGap, time.Since(last))
		last = time.Now()
		select {
		case <-tt.done:
			skipIfStarved(t, maxGap, testBusyIdle)
			copierStarved()
			t.Fatalf("pipe returned %q after %d streamed bytes", tt.reason, sent)
		default:
		}
		w := time.Now()
		n, err := tt.origin.Write([]byte("tick tock"))
		if err != nil {
			if tt.wait(t, ReasonIdleTimeout) == nil {
				skipIfStarved(t, maxGap, testBusyIdle)
				copierStarved()
			}
			t.Fatal(err)
		}
		lastWrite = w
		sent += n
	}
	maxGap = max(maxGap, time.Since(last))
	if err := tt.wait(t, ReasonIdleTimeout); err != nil {
		t.Errorf("err: %v", err)
	}
	if got := tt.st.Down.Load(); got != int64(sent) {
		skipIfStarved(t, maxGap, testBusyIdle) // the last write may have raced the timeout
		copierStarved()
		t.Errorf("down bytes: got %d, want %d", got, sent)
	}
}

func testTunnelSlowReader(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	tt := startTunnel(t, t.Context(), testBusyIdle, wrap)
	// The origin fills every buffer on the way; the client drains slowly but
	// steadily, so the proxy's writes block for longer than idle yet progress.
	go func() {
		for {
			if _, err := tt.origin.Write(testBlob()[:1<<20]); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 64<<10)
	var maxGap time.Duration
	last := time.Now()
	for end := last.Add(3 * testBusyIdle); time.Now().Before(end); {
		_, err := io.ReadFull(tt.client, buf)
		maxGap = max(maxGap, time.Since(last))
		last = time.Now()
		if err != nil {
			skipIfStarved(t, maxGap, testBusyIdle)
			t.Fatalf("client read: %v", err)
		}
		time.Sleep(testBusyIdle / 10) // the slow reader being simulated, not a wait for readiness
	}
	select {
	case <-tt.done:
		skipIfStarved(t, maxGap, testBusyIdle)
		t.Fatalf("pipe returned %q while the client was still reading", tt.reason)
	default:
	}
}

// skipIfStarved skips a test that expected activity to keep a tunnel alive
// when the test's own goroutine was not scheduled for so long (gap) that the
// tunnel really was idle; this happens on overloaded machines under -race.
func skipIfStarved(t *testing.T, gap, idle time.Duration) {
	t.Helper()
	if gap >= idle/2 {
		t.Skipf("test goroutine was descheduled for %v, too close to the %v idle timeout to tell", gap, idle)
	}
}

func testTunnelStalledReader(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	tt := startTunnel(t, t.Context(), testIdle, wrap)
	// The client never reads: once the buffers are full nothing moves, which
	// is idle even though a write is pending.
	go func() {
		for {
			if _, err := tt.origin.Write(testBlob()[:1<<20]); err != nil {
				return
			}
		}
	}()
	if err := tt.wait(t, ReasonIdleTimeout); err != nil {
		t.Errorf("err: %v", err)
	}
}

func testTunnelCancel(t *testing.T, wrap func(*net.TCPConn) net.Conn) {
	ctx, cancel := context.WithCancel(t.Context())
	tt := startTunnel(t, ctx, 0, wrap)
	go nettest.Echo(tt.origin)
	if _, err := tt.client.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tt.client, make([]byte, 4)); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := tt.wait(t, ReasonCanceled); !errors.Is(err, context.Canceled) {
		t.Errorf("err: got %v, want context.Canceled", err)
	}
	tt.checkCounts(t, 4, 4)
}

// testNetPipeEcho runs pipe over net.Pipe, which has no CloseWrite: EOF from
// the client closes the upstream conn and ends the tunnel cleanly.
func testNetPipeEcho(t *testing.T) {
	client, pc := net.Pipe()
	pu, origin := net.Pipe()
	var st Stats
	type result struct {
		reason string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		r, err := pipe(t.Context(), pc, pu, testIdle, &st)
		done <- result{r, err}
	}()
	go nettest.Echo(origin)
	msg := testBlob()[:100<<10]
	go client.Write(msg)
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(client, got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatal("echo differs")
	}
	client.Close()
	r := <-done
	if r.reason != ReasonEOF || r.err != nil {
		t.Errorf("got %q, %v; want %q, nil", r.reason, r.err, ReasonEOF)
	}
	if st.Up.Load() != int64(len(msg)) || st.Down.Load() != int64(len(msg)) {
		t.Errorf("counters: up %d, down %d; want %d each", st.Up.Load(), st.Down.Load(), len(msg))
	}
	if !isClosed(pc) || !isClosed(pu) {
		t.Errorf("pipe returned without closing both conns")
	}
}

func testNetPipeIdle(t *testing.T) {
	client, pc := net.Pipe()
	pu, origin := net.Pipe()
	defer client.Close()
	defer origin.Close()
	start := time.Now()
	reason, err := pipe(t.Context(), pc, pu, testIdle, nil)
	if reason != ReasonIdleTimeout || err != nil {
		t.Errorf("got %q, %v; want %q, nil", reason, err, ReasonIdleTimeout)
	}
	if d := time.Since(start); d < testIdle {
		t.Errorf("idle timeout after %v, want >= %v", d, testIdle)
	}
}

// testTunnelFDs opens many idle tunnels and checks that pipe holds no fds
// beyond the sockets, then shows what plain io.Copy costs for comparison.
func testTunnelFDs(t *testing.T) {
	const n = 200
	// The count is process-wide: sockets of earlier tests still closing in
	// the background show up too (40 were seen once). One more fd per
	// tunnel would add n = 200, far beyond the slack; pipes are checked
	// exactly below.
	const slack = 16 + n/2
	ln := nettest.Listen(t)

	// open starts n tunnels with start, passes one ping-pong through each so
	// every direction has spliced at least once, and returns the growth in
	// open fds and in open pipe fds, and a function that ends the tunnels.
	open := func(settle bool, start func(pc, pu *net.TCPConn) (stop func())) (fds, pipes int, closeAll func()) {
		runtime.GC() // close pipes that earlier tests left in Go's pool
		runtime.GC()
		before, beforePipes := nettest.CountFDs(t)
		var stops []func()
		var ends []*net.TCPConn
		for range n {
			client, pc := tcpPair(t, ln)
			pu, origin := tcpPair(t, ln)
			ends = append(ends, client, origin)
			stops = append(stops, start(pc, pu))
			pingPong(t, client, origin)
		}
		// Pipes returned to Go's pool (or dropped from it, as the race
		// detector does at random) stay open until the GC runs their
		// cleanups; only pipes held by tunnels survive that.
		after, afterPipes := nettest.CountFDs(t)
		for deadline := time.Now().Add(5 * time.Second); settle && afterPipes > beforePipes && time.Now().Before(deadline); {
			runtime.GC()
			runtime.Gosched()
			after, afterPipes = nettest.CountFDs(t)
		}
		return after - before, afterPipes - beforePipes, func() {
			for _, stop := range stops {
				stop()
			}
			for _, c := range ends {
				c.Close()
			}
		}
	}

	fds, pipes, closeAll := open(true, func(pc, pu *net.TCPConn) func() {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() {
			defer close(done)
			pipe(ctx, pc, pu, time.Minute, nil)
		}()
		return func() { cancel(); <-done }
	})
	closeAll()
	t.Logf("pipe: %d idle tunnels grew open fds by %d (%.2f per tunnel, 4 of them sockets); pipe fds +%d",
		n, fds, float64(fds)/n, pipes)
	if fds > 4*n+slack {
		t.Errorf("pipe: %d idle tunnels grew open fds by %d, want <= %d (4 sockets each + %d); open now: %v", n, fds, 4*n+slack, slack, nettest.FDKinds(t))
	}
	if pipes > 4 { // at most two pipes in flight, none held by idle tunnels
		t.Errorf("pipe: %d idle tunnels hold %d pipe fds, want <= 4", n, pipes)
	}

	fds, pipes, closeAll = open(false, func(pc, pu *net.TCPConn) func() {
		var wg sync.WaitGroup
		wg.Go(func() { io.Copy(pu, pc); pu.CloseWrite() })
		wg.Go(func() { io.Copy(pc, pu); pc.CloseWrite() })
		return func() { pc.Close(); pu.Close(); wg.Wait() }
	})
	closeAll()
	t.Logf("io.Copy (comparison): %d idle tunnels grew open fds by %d (%.2f per tunnel, 4 of them sockets); pipe fds +%d",
		n, fds, float64(fds)/n, pipes)
}

// BenchmarkTunnelBulk measures one-way bulk throughput, 64 MiB per op, over a
// direct loopback connection, through pipe (splice and buffered paths, and
// splice with goroutines parked in Go's poller as before #5), and through
// plain io.Copy.
func BenchmarkTunnelBulk(b *testing.B) {
	for _, bm := range []struct {
		name  string
		start func(pc, pu *net.TCPConn) (stop func())
	}{
		{"direct", nil},
		{"pipe", func(pc, pu *net.TCPConn) func() {
			done := make(chan struct{})
			go func() {
				defer close(done)
				pipe(context.Background(), pc, pu, time.Minute, nil)
			}()
			return func() { <-done }
		}},
		{"pipe_goroutines", func(pc, pu *net.TCPConn) func() { // splice parked in Go's poller, before #5
			done := make(chan struct{})
			newTunnel(pc, pu, time.Minute, nil, func(string, error) { close(done) }).run(context.Background(), parkGo)
			return func() { <-done }
		}},
		{"pipe_generic", func(pc, pu *net.TCPConn) func() { // the buffered path, over the same TCP
			done := make(chan struct{})
			go func() {
				defer close(done)
				pipe(context.Background(), struct{ *net.TCPConn }{pc}, struct{ *net.TCPConn }{pu}, time.Minute, nil)
			}()
			return func() { <-done }
		}},
		{"iocopy", func(pc, pu *net.TCPConn) func() {
			var wg sync.WaitGroup
			wg.Go(func() { io.Copy(pu, pc); pu.CloseWrite() })
			wg.Go(func() { io.Copy(pc, pu); pc.CloseWrite() })
			return func() { pc.Close(); pu.Close(); wg.Wait() }
		}},
	} {
		b.Run(bm.name, func(b *testing.B) {
			ln := nettest.Listen(b)
			var client, origin *net.TCPConn
			if bm.start == nil {
				client, origin = tcpPair(b, ln)
			} else {
				var pc, pu *net.TCPConn
				client, pc = tcpPair(b, ln)
				pu, origin = tcpPair(b, ln)
				stop := bm.start(pc, pu)
				b.Cleanup(stop)
			}
			b.Cleanup(func() { client.Close(); origin.Close() })

			const size = 64 << 20
			go func() { // origin: read each 64 MiB, then acknowledge it
				buf := make([]byte, 256<<10)
				for {
					for got := 0; got < size; {
						n, err := origin.Read(buf)
						if err != nil {
							return
						}
						got += n
					}
					if _, err := origin.Write([]byte{1}); err != nil {
						return
					}
				}
			}()
			buf := make([]byte, 256<<10)
			ack := make([]byte, 1)
			b.SetBytes(size)
			for b.Loop() {
				for sent := 0; sent < size; sent += len(buf) {
					if _, err := client.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				if _, err := io.ReadFull(client, ack); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// testBlob returns 16 MiB of deterministic pseudo-random bytes, shared by all tests.
var testBlob = sync.OnceValue(func() []byte {
	b := make([]byte, 16<<20)
	rand.NewChaCha8([32]byte{'a', 'z', 'e', 'g', 'r', 'e', 's', 's'}).Read(b)
	return b
})

// tcpPair returns both ends of a new loopback connection accepted by ln.
// ln must not be accepting anywhere else.
func tcpPair(tb testing.TB, ln net.Listener) (dialed, accepted *net.TCPConn) {
	tb.Helper()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		c.Close()
		tb.Fatal(err)
	}
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

// sendAndCheck writes send to c, half-closes it, and reads c to EOF,
// checking that it received want.
func sendAndCheck(c *net.TCPConn, send, want []byte) error {
	errc := make(chan error, 1)
	go func() {
		_, err := c.Write(send)
		if err == nil {
			err = c.CloseWrite()
		}
		errc <- err
	}()
	h := sha256.New()
	n, err := io.Copy(h, struct{ io.Reader }{c}) // hide WriterTo: hash what arrives
	if err != nil {
		return err
	}
	if wantSum := sha256.Sum256(want); n != int64(len(want)) || !bytes.Equal(h.Sum(nil), wantSum[:]) {
		return fmt.Errorf("received %d bytes that differ from the %d sent", n, len(want))
	}
	return <-errc
}

// pingPong passes 4 bytes each way between client and origin.
func pingPong(tb testing.TB, client, origin net.Conn) {
	tb.Helper()
	buf := make([]byte, 4)
	for _, step := range []struct{ from, to net.Conn }{{client, origin}, {origin, client}} {
		if _, err := step.from.Write([]byte("ping")); err != nil {
			tb.Fatal(err)
		}
		if _, err := io.ReadFull(step.to, buf); err != nil {
			tb.Fatal(err)
		}
	}
}

// isClosed reports whether c has been closed locally.
func isClosed(c net.Conn) bool {
	return errors.Is(c.SetDeadline(time.Time{}), net.ErrClosed) ||
		errors.Is(c.SetDeadline(time.Time{}), io.ErrClosedPipe)
}
