package proxy

// Hardening: hostile clients, floods, upstream faults, leaks, malformed
// requests and reloads under load. Every test here is bounded in time and in
// count. Tests that compare goroutine, fd or heap counts with a baseline do
// not call t.Parallel: the testing package runs them before any parallel
// test of the package starts, so the process is otherwise quiet.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy/internal/nettest"
	"github.com/azegress/azegress/proxy/internal/relay"
)

// longHardening scales the hardening tests up to the full counts
// (100,000 tunnels, 5,000 slow clients): AZEGRESS_LONG=1 go test -run Hardening ./proxy
var longHardening = os.Getenv("AZEGRESS_LONG") != ""

// quietLogs keeps the log path (JSON encoding of every record) but throws
// the records away: tests that make thousands of requests do not inspect them.
func quietLogs(c *Config) { c.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// plainDials dials for real without reporting on tp.dials (whose buffer a
// test with thousands of dials would fill), spreading the proxy's source
// addresses over 127.0.0.0/8 so that long runs do not run out of ports.
func plainDials(c *Config) {
	var n atomic.Uint32
	c.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+n.Add(1)%250))}}
		return d.DialContext(ctx, network, addr)
	}
	c.engineDial = func(ap netip.AddrPort) netip.AddrPort { return ap }
}

// resources are what must return to their baseline once work is done.
type resources struct {
	goroutines int
	fds        int
	heap       uint64 // HeapInuse after a GC
}

func measureResources(t *testing.T) resources {
	t.Helper()
	runtime.GC() // also closes splice pipes Go's pool let go of
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, _ := nettest.CountFDs(t)
	return resources{goroutines: runtime.NumGoroutine(), fds: fds, heap: ms.HeapInuse}
}

// backToBaseline polls (for at most 20 s) until goroutines and fds are
// within slack of base, and fails with a goroutine dump if they do not get
// there. It returns the resources it settled at.
func backToBaseline(t *testing.T, base resources, slack int, what string) resources {
	t.Helper()
	var now resources
	for deadline := time.Now().Add(20 * time.Second); ; {
		now = measureResources(t)
		if now.goroutines <= base.goroutines+slack && now.fds <= base.fds+slack {
			return now
		}
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%s: goroutines %d (baseline %d), fds %d (baseline %d; open now %v), slack %d; goroutines:\n%s",
				what, now.goroutines, base.goroutines, now.fds, base.fds, nettest.FDKinds(t), slack, buf.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tunnelOnce opens a tunnel from src (or any loopback address if empty),
// passes one line through the echo origin behind it and closes it.
func tunnelOnce(proxyAddr, src, target string) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", proxyAddr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n"); err != nil {
		return err
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("CONNECT %s: %d %s", target, resp.StatusCode, bytes.TrimSpace(b))
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		return fmt.Errorf("echo through the tunnel: %q, %v", line, err)
	}
	return nil
}

// TestHardeningSlowClientCut: a client that trickles its CONNECT line is cut
// at the header timeout, before its head is complete (net/http answers 400
// and closes), the refusal is logged as bad_request, and nothing is dialed.
// The one byte per second against a 10 s timeout is scaled down to
// one byte per 50 ms against 300 ms: the head would take about 3 s.
func TestHardeningSlowClientCut(t *testing.T) {
	_, port := echoOrigin(t)
	const timeout = 300 * time.Millisecond
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"),
		func(c *Config) { c.ReadHeaderTimeout = timeout })
	target := fmt.Sprintf("allowed.example.com:%d", port)
	head := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"

	// Timed from before the dial: the server's header deadline starts at
	// its accept, which can come before Dial returns here.
	start := time.Now()
	c, err := net.Dial("tcp", tp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent, cut := 0, false
	var answer []byte
	buf := make([]byte, 512)
	for sent < len(head) && !cut {
		if _, err := c.Write([]byte{head[sent]}); err != nil {
			cut = true
			break
		}
		sent++
		// Wait up to 50 ms for the proxy to say or do anything.
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		n, err := c.Read(buf)
		answer = append(answer, buf[:n]...)
		var ne net.Error
		switch {
		case n > 0:
			// An answer to an incomplete head must be a refusal, and
			// the connection must end with it.
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, err := io.ReadAll(c)
			answer = append(answer, rest...)
			// A reset is a close too: the proxy closes with the rest of
			// the head unread.
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("connection not closed after %q: %v", answer, err)
			}
			cut = true
		case errors.As(err, &ne) && ne.Timeout():
		case err != nil:
			cut = true
		}
	}
	if !cut {
		t.Fatalf("a client sending its CONNECT head one byte per 50 ms was not cut at the %v header timeout: it sent all %d bytes in %v", timeout, len(head), time.Since(start))
	}
	if len(answer) > 0 && !bytes.HasPrefix(answer, []byte("HTTP/1.1 400 ")) {
		t.Errorf("answer to a head cut at the header timeout: %q, want a 400", answer)
	}
	if el := time.Since(start); el < timeout {
		t.Errorf("cut after %v, before the %v header timeout", el, timeout)
	}
	t.Logf("cut after %d of %d bytes, %v", sent, len(head), time.Since(start).Round(time.Millisecond))
	waitFor(t, func() bool {
		for _, r := range tp.logs.records("deny") {
			if r["reason"] == ReasonBadRequest && r["client"] == c.LocalAddr().String() {
				return true
			}
		}
		return false
	}, "a bad_request deny record for the slow client")
	tp.noDial()
}

// TestHardeningSlowClientsDoNotStarve: many clients trickling their heads
// (500 here, 5,000 with AZEGRESS_LONG=1) hold connections, and a
// well-behaved client is still served at once.
func TestHardeningSlowClientsDoNotStarve(t *testing.T) {
	n := 500
	if longHardening {
		n = 5000
	}
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"), quietLogs, func(c *Config) {
		c.ReadHeaderTimeout = time.Minute // they stay for the whole test
		c.MaxConnections = 2 * n          // a cap, not reached
	})
	target := fmt.Sprintf("allowed.example.com:%d", port)
	head := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n\r\n"

	slow := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("tcp", tp.addr)
		if err != nil {
			t.Fatalf("slow client %d: %v", i, err)
		}
		slow = append(slow, c)
	}
	// One goroutine trickles a byte to every slow client each round.
	stop := make(chan struct{})
	var trickle sync.WaitGroup
	trickle.Go(func() {
		for i := 0; i < len(head)-1; i++ { // never the last byte
			for _, c := range slow {
				_ = c.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = c.Write([]byte{head[i]})
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	defer func() { close(stop); trickle.Wait() }()
	waitFor(t, func() bool { return testutil.ToFloat64(tp.m.connsActive) >= float64(n) }, fmt.Sprintf("%d slow clients to be accepted", n))

	for i := range 5 {
		if err := tunnelOnce(tp.addr, "", target); err != nil {
			t.Fatalf("well-behaved client %d among %d slow ones: %v", i, n, err)
		}
	}
	if got := testutil.ToFloat64(tp.m.connsShed); got != 0 {
		t.Errorf("%v connections shed below the cap", got)
	}
}

// TestHardeningFloodShedsWithoutQueueing: with the global cap full of open
// tunnels, a flood of further connections is answered 503 at once. Nothing
// queues: the tunnels holding the cap stay open throughout, so a queued
// connection would never be answered. Goroutines, fds and heap return to
// where they were.
func TestHardeningFloodShedsWithoutQueueing(t *testing.T) {
	const capacity, flood = 20, 2000
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"), quietLogs,
		func(c *Config) { c.MaxConnections = capacity })
	target := fmt.Sprintf("allowed.example.com:%d", port)

	type tun struct {
		c  net.Conn
		br *bufio.Reader
	}
	var held []tun
	for range capacity {
		c, br := tp.openTunnel(target)
		held = append(held, tun{c, br})
	}
	base := measureResources(t)

	var wg sync.WaitGroup
	var next, shed atomic.Int64
	errs := make(chan error, flood)
	for range 32 {
		wg.Go(func() {
			for next.Add(1) <= flood {
				err := func() error {
					c, err := net.Dial("tcp", tp.addr)
					if err != nil {
						return err
					}
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(10 * time.Second))
					_, _ = io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\n\r\n")
					resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
					if err != nil {
						return fmt.Errorf("no answer while the cap is full (queued?): %w", err)
					}
					if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" || !resp.Close {
						return fmt.Errorf("over the cap: %d Retry-After %q close %v", resp.StatusCode, resp.Header.Get("Retry-After"), resp.Close)
					}
					return nil
				}()
				if err != nil {
					errs <- err
					continue
				}
				shed.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(tp.m.connsShed); got != flood {
		t.Errorf("shed counter = %v, want %d", got, flood)
	}
	for i, h := range held {
		echoLine(t, h.c, h.br, fmt.Sprintf("tunnel %d after the flood", i))
	}
	after := backToBaseline(t, base, 4, "after shedding a flood")
	if grown := int64(after.heap) - int64(base.heap); grown > 4<<20 {
		t.Errorf("heap in use grew by %d KiB after %d shed connections", grown>>10, flood)
	}

	// The slots come back when the tunnels end.
	for _, h := range held {
		h.c.Close()
	}
	waitFor(t, func() bool { return testutil.ToFloat64(tp.m.connsActive) == 0 }, "the cap's slots to be released")
	if err := tunnelOnce(tp.addr, "", target); err != nil {
		t.Fatalf("after the held tunnels closed: %v", err)
	}
}

// TestHardeningBlockLimitsIsolated: one client block exhausting its own rate
// and tunnel limits under a flood does not take anything from another block.
func TestHardeningBlockLimitsIsolated(t *testing.T) {
	_, port := echoOrigin(t)
	limits := `
  limits {
    connections_per_second = 0.5
    burst                  = 4
    max_tunnels            = 3
  }`
	src := fmt.Sprintf(`
client "noisy" {
  sources = ["127.0.0.2/32"]
  allow "echo" {
    hosts     = ["allowed.example.com"]
    ports     = [%[1]d]
    addresses = ["127.0.0.0/8"]
  }
%[2]s
}
client "quiet" {
  sources = ["127.0.0.3/32"]
  allow "echo" {
    hosts     = ["allowed.example.com"]
    ports     = [%[1]d]
    addresses = ["127.0.0.0/8"]
  }
%[2]s
}`, port, limits)
	tp := startProxy(t, src, loopbackNames("allowed.example.com"), quietLogs, plainDials)
	target := fmt.Sprintf("allowed.example.com:%d", port)

	// noisy holds its max_tunnels, then floods while quiet works.
	var noisyHeld []net.Conn
	defer func() {
		for _, c := range noisyHeld {
			c.Close()
		}
	}()
	for range 3 {
		c, _ := tp.openTunnelFrom("127.0.0.2", target)
		noisyHeld = append(noisyHeld, c)
	}
	var refused atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := tunnelOnce(tp.addr, "127.0.0.2", target)
				if err != nil && strings.Contains(err.Error(), ": 429 ") {
					refused.Add(1)
				} else if err == nil {
					t.Errorf("noisy got a tunnel over its limits")
				}
			}
		})
	}
	waitFor(t, func() bool { return refused.Load() >= 100 }, "the noisy block to be refused 100 times")
	// quiet is served in full while noisy keeps flooding: its burst of
	// new connections, up to its own max_tunnels at once.
	var quiet []net.Conn
	for i := range 3 {
		c, br := tp.openTunnelFrom("127.0.0.3", target)
		quiet = append(quiet, c)
		echoLine(t, c, br, fmt.Sprintf("quiet tunnel %d", i))
	}
	close(stop)
	wg.Wait()
	// quiet's own cap still applies: the limits are per block, not shared.
	resp, _, _ := tp.raw("127.0.0.3", "CONNECT "+target+" HTTP/1.1\r\n\r\n")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Azegress-Reason") != ReasonTooManyTunnels {
		t.Errorf("quiet's 4th tunnel: %d %s, want 429 %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), ReasonTooManyTunnels)
	}
	for _, c := range quiet {
		c.Close()
	}
	t.Logf("noisy refused %d times while quiet was served", refused.Load())
}

// TestHardeningIdleTunnelReleasesHTTPState: once a tunnel is established,
// net/http's connection goroutine has returned, so an idle tunnel holds only
// its own two goroutines, not that goroutine's stack, read buffer and
// request (which doubled the memory of an idle tunnel).
func TestHardeningIdleTunnelReleasesHTTPState(t *testing.T) {
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"), quietLogs)
	target := fmt.Sprintf("allowed.example.com:%d", port)
	const n = 20
	type tun struct {
		c  net.Conn
		br *bufio.Reader
	}
	var tuns []tun
	for range n {
		c, br := tp.openTunnel(target)
		tuns = append(tuns, tun{c, br})
	}
	serving := func() int {
		buf := make([]byte, 1<<20)
		return strings.Count(string(buf[:runtime.Stack(buf, true)]), "net/http.(*conn).serve(")
	}
	waitFor(t, func() bool { return serving() == 0 }, fmt.Sprintf("net/http's connection goroutines to return while %d tunnels are open", n))
	for i, tu := range tuns {
		echoLine(t, tu.c, tu.br, fmt.Sprintf("tunnel %d", i))
		tu.c.Close()
	}
}

// openTunnelFrom is openTunnel from a given source address.
func (tp *testProxy) openTunnelFrom(src, target string) (net.Conn, *bufio.Reader) {
	tp.t.Helper()
	resp, c, br := tp.raw(src, "CONNECT "+target+" HTTP/1.1\r\n\r\n")
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tp.t.Fatalf("CONNECT %s from %s: %d %s", target, src, resp.StatusCode, b)
	}
	_ = c.SetDeadline(time.Time{})
	return c, br
}

// blackholeOrigin returns a loopback address whose SYNs go unanswered: a
// listener with a backlog of 0 that never accepts, its queue filled by the
// test (the kernel drops SYNs to a full queue). Dials to it hang until their
// timeout, as to a firewalled host.
func blackholeOrigin(t *testing.T) uint16 {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err != nil {
			return uint16(port) // the queue is full: SYNs are dropped now
		}
		t.Cleanup(func() { c.Close() })
		if i == 10 {
			t.Skip("cannot make a blackhole origin: this kernel answers SYNs to a full accept queue")
		}
	}
}

// TestHardeningUpstreamFaults: origins that refuse, reset mid-stream, never
// answer or accept and stall. Each refusal is answered with its status, each
// tunnel is released and counted with its close reason, and goroutines and
// fds return to their baseline.
func TestHardeningUpstreamFaults(t *testing.T) {
	const rounds = 20 // per fault: a leak of one goroutine per tunnel exceeds the slack
	// idle leaves a reset origin time to answer under -race on a loaded machine:
	// at 300ms two of twenty reset tunnels once ended at the idle timeout.
	const dialTimeout, idle = 500 * time.Millisecond, time.Second

	// refuse: a port nobody listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusePort := portOf(t, ln.Addr())
	ln.Close()

	// reset: after one line each way, the origin resets the connection.
	resetLn := nettest.Listen(t)
	go func() {
		for {
			c, err := resetLn.Accept()
			if err != nil {
				return
			}
			go func() {
				_, _ = io.WriteString(c, "hello\n")
				_, _ = bufio.NewReader(c).ReadString('\n')
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	// stall: accepts, then neither reads nor writes nor closes.
	stallLn := nettest.Listen(t)
	var stalled sync.Mutex
	var stalledConns []net.Conn
	go func() {
		for {
			c, err := stallLn.Accept()
			if err != nil {
				return
			}
			stalled.Lock()
			stalledConns = append(stalledConns, c)
			stalled.Unlock()
		}
	}()
	t.Cleanup(func() {
		stalled.Lock()
		defer stalled.Unlock()
		for _, c := range stalledConns {
			c.Close()
		}
	})
	blackPort := blackholeOrigin(t)

	ports := []uint16{refusePort, portOf(t, resetLn.Addr()), portOf(t, stallLn.Addr()), blackPort}
	src := fmt.Sprintf(`
client "local" {
  sources = ["127.0.0.0/8"]
  allow "faults" {
    hosts     = ["*.fault.example.com"]
    ports     = [%s]
    addresses = ["127.0.0.0/8"]
  }
}`, strings.Join(strings.Fields(strings.Trim(fmt.Sprint(ports), "[]")), ", "))
	tp := startProxy(t, src, loopbackNames("refuse.fault.example.com", "reset.fault.example.com", "stall.fault.example.com", "blackhole.fault.example.com"),
		quietLogs, plainDials, func(c *Config) {
			c.DialTimeout = dialTimeout
			c.TunnelIdleTimeout = idle
		})
	// connect sends CONNECT target and returns the answer, closing the
	// connection (tp.connect leaves it to the test's cleanup).
	connect := func(target string) (*http.Response, string) {
		resp, c, _ := tp.raw("", "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\n\r\n")
		defer c.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	// Warm up the paths once so lazily made state is in the baseline.
	connect(fmt.Sprintf("refuse.fault.example.com:%d", refusePort))
	base := measureResources(t)

	var wg sync.WaitGroup
	fail := make(chan string, 4*rounds)
	for i := range rounds {
		wg.Go(func() { // refused: 502 dial_failed at once
			resp, body := connect(fmt.Sprintf("refuse.fault.example.com:%d", refusePort))
			if resp.StatusCode != http.StatusBadGateway || resp.Header.Get("X-Azegress-Reason") != ReasonDialFailed || !strings.Contains(body, "was refused") {
				fail <- fmt.Sprintf("refused origin %d: %d %q %s", i, resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body)
			}
		})
		wg.Go(func() { // never answers: 504 once the dial timeout has passed
			start := time.Now()
			resp, body := connect(fmt.Sprintf("blackhole.fault.example.com:%d", blackPort))
			if resp.StatusCode != http.StatusGatewayTimeout || resp.Header.Get("X-Azegress-Reason") != ReasonDialFailed || !strings.Contains(body, "timed out") {
				fail <- fmt.Sprintf("unanswering origin %d: %d %q %s", i, resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body)
			}
			if el := time.Since(start); el < dialTimeout {
				fail <- fmt.Sprintf("unanswering origin %d: 504 after %v, before the %v dial timeout", i, el, dialTimeout)
			}
		})
		wg.Go(func() { // reset mid-stream: the client sees the tunnel end
			c, br := tp.openTunnel(fmt.Sprintf("reset.fault.example.com:%d", ports[1]))
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if l, err := br.ReadString('\n'); err != nil || l != "hello\n" {
				fail <- fmt.Sprintf("reset origin %d: first line %q %v", i, l, err)
				return
			}
			_, _ = io.WriteString(c, "bye\n")
			// The proxy passes the reset on; either way the tunnel ends.
			var ne net.Error
			if _, err := io.Copy(io.Discard, br); errors.As(err, &ne) && ne.Timeout() {
				fail <- fmt.Sprintf("reset origin %d: the tunnel did not end", i)
			}
		})
		wg.Go(func() { // accept and stall: closed at the idle timeout
			c, br := tp.openTunnel(fmt.Sprintf("stall.fault.example.com:%d", ports[2]))
			defer c.Close()
			_, _ = io.WriteString(c, "anyone there?\n")
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var ne net.Error
			if _, err := io.Copy(io.Discard, br); errors.As(err, &ne) && ne.Timeout() {
				fail <- fmt.Sprintf("stalled origin %d: the tunnel did not end at the idle timeout", i)
			}
		})
	}
	wg.Wait()
	close(fail)
	for f := range fail {
		t.Error(f)
	}
	waitFor(t, func() bool { return testutil.ToFloat64(tp.m.tunnelsActive) == 0 }, "every tunnel to end")
	if got := tp.blocks.get("local").tunnels.Load(); got != 0 {
		t.Errorf("client block still counts %d tunnels", got)
	}
	// The stalling origin's own sockets are the test's, not the proxy's.
	stalled.Lock()
	for _, c := range stalledConns {
		c.Close()
	}
	stalledConns = nil
	stalled.Unlock()
	if got := testutil.ToFloat64(tp.m.tunnelsTotal.WithLabelValues(relay.ReasonIdleTimeout)); got != rounds {
		t.Errorf("tunnels closed at the idle timeout = %v, want %d", got, rounds)
	}
	if got := testutil.ToFloat64(tp.m.tunnelsTotal.WithLabelValues(relay.ReasonError)) + testutil.ToFloat64(tp.m.tunnelsTotal.WithLabelValues(relay.ReasonEOF)); got != rounds {
		t.Errorf("reset tunnels counted = %v, want %d", got, rounds)
	}
	if got := testutil.ToFloat64(tp.m.decisions.WithLabelValues(kindConnect, "deny", ReasonDialFailed, "enforce", "local")); got != 2*rounds+1 {
		t.Errorf("dial_failed denials = %v, want %d", got, 2*rounds+1)
	}
	backToBaseline(t, base, 6, "after upstream faults")
}

// TestHardeningNoLeakAfterManyTunnels opens, uses and closes 5,000 tunnels
// (100,000 with AZEGRESS_LONG=1) and checks that nothing stays behind:
// goroutines, fds, heap, tunnel and connection counts.
func TestHardeningNoLeakAfterManyTunnels(t *testing.T) {
	n := 5000
	if longHardening {
		n = 100_000
	}
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"), quietLogs, plainDials)
	target := fmt.Sprintf("allowed.example.com:%d", port)
	for range 50 {
		if err := tunnelOnce(tp.addr, "", target); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return testutil.ToFloat64(tp.m.connsActive) == 0 }, "warm-up tunnels to close")
	base := measureResources(t)

	start := time.Now()
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				// Client source addresses spread over 127.0.0.0/8 (ports).
				src := fmt.Sprintf("127.0.%d.%d", 2+i/250%200, 1+i%250)
				if err := tunnelOnce(tp.addr, src, target); err != nil {
					firstErr.CompareAndSwap(nil, err)
					if failed.Add(1) > 10 {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d of %d tunnels failed; first: %v", f, n, firstErr.Load())
	}
	elapsed := time.Since(start)
	waitFor(t, func() bool { return testutil.ToFloat64(tp.m.tunnelsActive) == 0 }, "every tunnel to end")
	waitFor(t, func() bool { return testutil.ToFloat64(tp.m.connsActive) == 0 }, "every client connection to close")
	closed := 0.0
	for _, r := range []string{relay.ReasonEOF, relay.ReasonError, relay.ReasonIdleTimeout, relay.ReasonCanceled} {
		closed += testutil.ToFloat64(tp.m.tunnelsTotal.WithLabelValues(r))
	}
	if closed != float64(n+50) {
		t.Errorf("tunnels counted closed = %v, want %d", closed, n+50)
	}
	if got := tp.blocks.get("local").tunnels.Load(); got != 0 {
		t.Errorf("client block still counts %d tunnels", got)
	}
	after := backToBaseline(t, base, 6, fmt.Sprintf("after %d tunnels", n))
	if grown := int64(after.heap) - int64(base.heap); grown > 8<<20 {
		t.Errorf("heap in use grew by %d KiB after %d tunnels", grown>>10, n)
	}
	t.Logf("%d tunnels in %v (%.0f/s); goroutines %d→%d, fds %d→%d, heap %d→%d KiB",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), base.goroutines, after.goroutines, base.fds, after.fds, base.heap>>10, after.heap>>10)
}

// TestHardeningMalformedRequests extends TestRequestHygiene: oversized heads,
// more bad CONNECT targets, Host headers with userinfo, and HTTP/1.0 without
// Host. Each is refused with 400 (431 for an oversized head), the connection
// is closed, a bad_request denial is logged for the client, and nothing is
// dialed.
func TestHardeningMalformedRequests(t *testing.T) {
	_, port := httpOrigin(t, "origin")
	tp := startProxy(t, httpPolicy(port), loopbackNames("allowed.example.com", "other.example.com"))
	p := port
	huge := strings.Repeat("a", 70<<10) // over the proxy's 64 KiB MaxHeaderBytes
	for _, tt := range []struct {
		name, req string
		status    int
	}{
		{"huge header value", fmt.Sprintf("GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\nX-Big: %s\r\n\r\n", p, p, huge), 431},
		{"huge CONNECT head", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nX-Big: %s\r\n\r\n", p, huge), 431},
		{"huge request target", fmt.Sprintf("GET http://allowed.example.com:%d/%s HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", p, huge, p), 431},
		{"many header lines", fmt.Sprintf("GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\n%s\r\n", p, p, strings.Repeat("X-A: b\r\n", 12000)), 431},
		{"CONNECT empty host", fmt.Sprintf("CONNECT :%d HTTP/1.1\r\n\r\n", p), 400},
		{"CONNECT two ports", fmt.Sprintf("CONNECT allowed.example.com:%d:%d HTTP/1.1\r\n\r\n", p, p), 400},
		{"CONNECT signed port", fmt.Sprintf("CONNECT allowed.example.com:+%d HTTP/1.1\r\n\r\n", p), 400},
		{"CONNECT unclosed IPv6 bracket", fmt.Sprintf("CONNECT [::1:%d HTTP/1.1\r\n\r\n", p), 400},
		{"CONNECT URL", fmt.Sprintf("CONNECT http://allowed.example.com:%d HTTP/1.1\r\n\r\n", p), 400},
		{"CONNECT path", "CONNECT /allowed.example.com HTTP/1.1\r\n\r\n", 400},
		{"CONNECT control character", fmt.Sprintf("CONNECT allowed\x01.example.com:%d HTTP/1.1\r\n\r\n", p), 400},
		{"CONNECT host:port with no port HTTP/1.0", "CONNECT allowed.example.com: HTTP/1.0\r\n\r\n", 400},
		{"Host with userinfo", fmt.Sprintf("GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: user@allowed.example.com:%d\r\n\r\n", p, p), 400},
		{"CONNECT Host with userinfo", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\nHost: user:pw@allowed.example.com:%d\r\n\r\n", p, p), 400},
		{"two Host headers", fmt.Sprintf("GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\nHost: allowed.example.com:%d\r\n\r\n", p, p, p), 400},
		{"URL with empty host", "GET http:///x HTTP/1.1\r\nHost: allowed.example.com\r\n\r\n", 400},
		{"URL port out of range", "GET http://allowed.example.com:65536/ HTTP/1.1\r\nHost: allowed.example.com:65536\r\n\r\n", 400},
		{"HTTP/1.0 origin-form without Host", "GET / HTTP/1.0\r\n\r\n", 400},
		{"HTTP/1.0 origin-form with Host", "GET / HTTP/1.0\r\nHost: allowed.example.com\r\n\r\n", 400},
		{"header name with a space", fmt.Sprintf("GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\nBad Name: x\r\n\r\n", p, p), 400},
		{"not HTTP", "HELLO\r\n\r\n", 400},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, c, br := tp.raw("", tt.req)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d: %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), tt.status, truncate(string(b), 200))
			}
			if r := resp.Header.Get("X-Azegress-Reason"); r != "" && r != ReasonBadRequest {
				t.Fatalf("reason %q, want %q", r, ReasonBadRequest)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := br.ReadByte(); err == nil {
				t.Errorf("connection still open after a bad request")
			}
			c.Close()
			waitFor(t, func() bool {
				for _, r := range tp.logs.records("deny") {
					if r["reason"] == ReasonBadRequest && r["client"] == c.LocalAddr().String() {
						return true
					}
				}
				return false
			}, "a bad_request deny record for this connection")
		})
	}
	tp.noDial()

	// HTTP/1.0 without Host is fine where the target names the destination:
	// absolute-form, and CONNECT (the Azure CLI sends that).
	resp, _, _ := tp.raw("", fmt.Sprintf("GET http://allowed.example.com:%d/ok HTTP/1.0\r\n\r\n", p))
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 200 || !strings.Contains(string(b), "path=/ok") {
		t.Errorf("HTTP/1.0 absolute-form without Host: %d %s", resp.StatusCode, b)
	}
	_, tlsPort := tlsOrigin(t, "tls")
	tp2 := startProxy(t, basePolicy(tlsPort, ""), loopbackNames("allowed.example.com"))
	resp, c, _ := tp2.raw("", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.0\r\n\r\n", tlsPort))
	c.Close()
	if resp.StatusCode != 200 || resp.Proto != "HTTP/1.0" {
		t.Errorf("CONNECT HTTP/1.0 without Host: %d %s", resp.StatusCode, resp.Proto)
	}
}

// TestHardeningReloadUnderLoad: the policy is reloaded every 100 ms while
// clients keep opening tunnels and tunnels opened before keep moving bytes.
// No tunnel fails.
func TestHardeningReloadUnderLoad(t *testing.T) {
	_, port := echoOrigin(t)
	// Two versions of a 200-rule policy (small enough to reload every
	// 100 ms under the race detector); both allow the origin.
	version := func(v int) string {
		var b strings.Builder
		for i := range 198 {
			if i%2 == 0 {
				fmt.Fprintf(&b, "  allow \"v%d-r%d\" {\n    hosts = [\"svc%d.v%d.example.net\"]\n  }\n", v, i, i, v)
			} else {
				fmt.Fprintf(&b, "  allow \"v%d-r%d\" {\n    hosts = [\"*.t%d.v%d.example.net\"]\n  }\n", v, i, i, v)
			}
		}
		return basePolicy(port, b.String())
	}
	srcs := []string{version(0), version(1)}
	tp := startProxy(t, srcs[0], loopbackNames("allowed.example.com", "a.wild.example.com"), quietLogs, plainDials)
	targets := []string{fmt.Sprintf("allowed.example.com:%d", port), fmt.Sprintf("a.wild.example.com:%d", port)}

	type tun struct {
		c  net.Conn
		br *bufio.Reader
	}
	var long []tun
	for i := range 4 {
		c, br := tp.openTunnel(targets[i%2])
		long = append(long, tun{c, br})
	}

	const minReloads, minTunnels = 10, 400
	var reloads, tunnels, failed atomic.Int64
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			src := srcs[i%2]
			if !tp.Reload(func() (*policy.Policy, hcl.Diagnostics) { return policy.Load("reload.hcl", []byte(src)) }) {
				firstErr.CompareAndSwap(nil, errors.New("a valid policy was rejected"))
				failed.Add(1)
			}
			reloads.Add(1)
		}
	})
	for w := range 8 {
		wg.Go(func() {
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if err := tunnelOnce(tp.addr, "", targets[i%2]); err != nil {
					firstErr.CompareAndSwap(nil, err)
					failed.Add(1)
				}
				tunnels.Add(1)
			}
		})
	}
	deadline := time.Now().Add(60 * time.Second)
	for reloads.Load() < minReloads || tunnels.Load() < minTunnels {
		if time.Now().After(deadline) || failed.Load() > 0 {
			break
		}
		for i, l := range long {
			echoLine(t, l.c, l.br, fmt.Sprintf("long-lived tunnel %d during reloads", i))
		}
	}
	close(stop)
	wg.Wait()
	if f := failed.Load(); f > 0 {
		t.Fatalf("%d tunnels failed during %d reloads; first: %v", f, reloads.Load(), firstErr.Load())
	}
	if reloads.Load() < minReloads || tunnels.Load() < minTunnels {
		t.Fatalf("only %d reloads and %d tunnels in 60 s", reloads.Load(), tunnels.Load())
	}
	for i, l := range long {
		echoLine(t, l.c, l.br, fmt.Sprintf("long-lived tunnel %d after the reloads", i))
		l.c.Close()
	}
	if got := testutil.ToFloat64(tp.m.reloads.WithLabelValues("success")); got != float64(reloads.Load()) {
		t.Errorf("successful reloads counted = %v, want %d", got, reloads.Load())
	}
	t.Logf("%d tunnels during %d reloads, none failed", tunnels.Load(), reloads.Load())
}
