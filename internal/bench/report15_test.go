//go:build linux

package bench

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy"
)

func TestParseStraceC(t *testing.T) {
	for _, tt := range []struct {
		name, out string
		want      []straceCall
		err       string
	}{
		{"with and without errors", `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.61    0.012000           3      3980           ioctl
 30.00    0.008000           2      3920      1980 splice
  0.10    0.000010          10         1           epoll_ctl
------ ----------- ----------- --------- --------- ----------------
100.00    0.020010           2      7901      1980 total
`, []straceCall{{"ioctl", 3980, 0}, {"splice", 3920, 1980}, {"epoll_ctl", 1, 0}, {"total", 7901, 1980}}, ""},
		{"strace's own lines around it", `strace: Process 12 attached
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
100.00    0.000004           4         1           read
------ ----------- ----------- --------- --------- ----------------
100.00    0.000004           4         1           total
`, []straceCall{{"read", 1, 0}, {"total", 1, 0}}, ""},
		{"no summary", "strace: attach: ptrace(PTRACE_SEIZE, 1): Operation not permitted\n", nil, "no total line"},
		{"garbled count", `% time     seconds  usecs/call     calls    errors syscall
 45.61    0.012000           3      many           ioctl
`, nil, "calls"},
	} {
		got, err := parseStraceC(tt.out)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: error %v, want one with %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("%s: %+v, %v", tt.name, got, err)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%s: line %d = %+v, want %+v", tt.name, i, got[i], tt.want[i])
			}
		}
	}
}

func TestParsePprofTop(t *testing.T) {
	const out = `File: azegress
Type: cpu
Time: 2026-12-07 00:01:02 UTC
Duration: 3s, Total samples = 1.20s (40.00%)
Showing nodes accounting for 0.80s, 66.67% of 1.20s total
Showing top 12 nodes out of 210
      flat  flat%   sum%        cum   cum%
     0.36s 30.00% 30.00%      0.40s 33.33%  internal/runtime/syscall.Syscall6
     0.12s 10.00% 40.00%      0.12s 10.00%  runtime.nextFreeFast (inline)
         0     0% 40.00%      0.90s 75.00%  github.com/azegress/azegress/proxy.(*Server).serveConn
`
	top, err := parsePprofTop(out)
	if err != nil {
		t.Fatal(err)
	}
	if top.Samples != "Duration: 3s, Total samples = 1.20s (40.00%)" {
		t.Errorf("samples %q", top.Samples)
	}
	want := []pprofFunc{
		{"internal/runtime/syscall.Syscall6", 30, 33.33},
		{"runtime.nextFreeFast (inline)", 10, 10},
		{"github.com/azegress/azegress/proxy.(*Server).serveConn", 0, 75},
	}
	if len(top.Funcs) != len(want) {
		t.Fatalf("%+v", top.Funcs)
	}
	for i := range want {
		if top.Funcs[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, top.Funcs[i], want[i])
		}
	}
	if _, err := parsePprofTop("failed to fetch profile\n"); err == nil {
		t.Error("output without a table was accepted")
	}
}

func TestSpreadOf(t *testing.T) {
	for _, tt := range []struct {
		in   []float64
		want spread
	}{
		{[]float64{5, 1, 3, 2, 4}, spread{N: 5, Median: 3, Q1: 2, Q3: 4, Min: 1, Max: 5}},
		{[]float64{4, 0, 1, 3, 2}, spread{N: 4, Median: 2.5, Q1: 1.75, Q3: 3.25, Min: 1, Max: 4}}, // a failed round (0) left out
		{[]float64{7}, spread{N: 1, Median: 7, Q1: 7, Q3: 7, Min: 7, Max: 7}},
		{nil, spread{}},
	} {
		if got := spreadOf(tt.in); got != tt.want {
			t.Errorf("spreadOf(%v) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

// A row of issue 15's table holds when azegress's figure is within each of
// its limits, and is "not measured" when a figure a limit needs is missing.
func TestRow15Verdict(t *testing.T) {
	setup := row15{maxSquid: 0.6, maxFloor: 1.2}
	for _, tt := range []struct {
		name      string
		r         row15
		az, squid float64
		floor     float64
		ok, known bool
	}{
		{"both met", setup, 120, 250, 137, true, true},
		{"on the limits", setup, 150, 250, 125, true, true},
		{"Squid's limit missed", setup, 160, 250, 137, false, true},
		{"the floor's limit missed", setup, 140, 250, 100, false, true},
		{"no Squid", setup, 120, 0, 137, false, false},
		{"no floor", setup, 120, 250, 0, false, false},
		{"azegress not measured", setup, 0, 250, 137, false, false},
		{"absolute limit met", row15{limit: 12}, 5.7, 31, 0, true, true},
		{"absolute limit missed", row15{limit: 12}, 12.5, 31, 0, false, true},
		{"round trip: 3× direct", row15{maxFloor: 3}, 72, 83, 17, false, true},
		{"CPU per GB: 0.5× Squid", row15{maxSquid: 0.5}, 0.28, 0.80, 0, true, true},
	} {
		r := tt.r
		r.vals, r.floor = map[string]float64{"azegress": tt.az, "squid": tt.squid}, tt.floor
		if ok, known := r.verdict("azegress"); ok != tt.ok || known != tt.known {
			t.Errorf("%s: verdict = %v, %v; want %v, %v", tt.name, ok, known, tt.ok, tt.known)
		}
	}
}

func TestSizeFor(t *testing.T) {
	ir := &idleResult{BaseRSS: 20 << 20, BaseFDs: 14, Levels: []idleLevel{
		{Want: 5000, Opened: 5000, FDs: 10014, PerKiB: 6},
		{Want: 10000, Opened: 10000, FDs: 20014, PerKiB: 5},
	}}
	s := sizeFor(250e3, 50e3, ir)
	if s.TunnelsPerCore != 4000 || s.RequestsPerCore != 20000 {
		t.Errorf("per core: %+v", s)
	}
	// 14 + 100,000 × 2 fds; 20 MiB + 100,000 × 6 KiB (the worst level).
	if s.IdleFDs != 200014 || s.IdleMiB != 20+600000.0/1024 {
		t.Errorf("idle: %+v", s)
	}
	if s := sizeFor(0, 0, nil); s != (sizing{}) {
		t.Errorf("nothing measured: %+v", s)
	}
}

// The issue-15 table marks the floors from the rounds: CPU ratios to Squid
// and to the direct run's endpoints, the round trip to direct's.
func TestRenderIssue15(t *testing.T) {
	cpu := func(setup, http float64) []roundResult {
		return []roundResult{{SetupCPU: cpuUse{Proxy: time.Duration(setup * 1e3), ProxySys: time.Duration(setup * 500)}, HTTPCPU: cpuUse{Proxy: time.Duration(http * 1e3)}}}
	}
	direct := []roundResult{{SetupCPU: cpuUse{Origin: 60e3, Client: 77e3}, HTTPCPU: cpuUse{Origin: 20e3, Client: 14e3}}}
	rep := report{Results: &results{
		Targets: []string{"direct", "azegress", "squid"},
		Rounds:  map[string][]roundResult{"direct": direct, "azegress": cpu(255, 40), "squid": cpu(233, 89)},
		RTT: map[string][]rttSample{
			"direct": {{P50: 17e3}, {P50: 19e3}, {P50: 16e3}}, "azegress": {{P50: 50e3}, {P50: 72e3}, {P50: 40e3}},
		},
		ProfileRaw: map[string]string{"azegress under rtt": "bench-out/azegress-rtt.pprof"},
	}, ProfileDir: "bench-out", Profiles: map[string]pprofTop{"azegress under rtt": {
		Samples: "Duration: 5s, Total samples = 1s (20.00%)",
		Funcs:   []pprofFunc{{"internal/runtime/syscall/linux.Syscall6", 80, 80}, {"runtime.futex", 2, 2}},
		ByCum:   []pprofFunc{{"runtime.goexit", 0, 95}},
	}}}
	var b strings.Builder
	rep.renderIssue15(&b)
	for _, w := range []string{
		"| CPU per CONNECT tunnel (connect, CONNECT/200, 1-byte echo, close) | 255 µs (sys 50%) | 233 µs (sys 50%) | 137 µs | 1.09× | 1.86× | ≤ 0.6× Squid and ≤ 1.2× floor | **no** |",
		"| CPU per keep-alive plain-HTTP request | 40 µs (sys 0%) | 89 µs (sys 0%) | 34 µs | 0.45× | 1.18× | ≤ 0.6× Squid and ≤ 1.5× floor | yes |",
		"| round trip, 64 B over an open tunnel, p50 (median of round p50s) | 50.0 µs | — | 17.0 µs | — | 2.94× | ≤ 3× direct | yes |",
		"| CPU per GB over one tunnel | — | — | — | — | — | keep ≤ 0.5× Squid | not measured |",
		"| azegress | 50.0 µs | 45.0 µs – 61.0 µs | 40.0 µs – 72.0 µs |",
		"| azegress | 3,922 | 25,000 | — | — |",
		"azegress under rtt (Duration: 5s, Total samples = 1s (20.00%)):",
		"| 80.0% | 80.0% | `internal/runtime/syscall/linux.Syscall6` | 0.0% | 95.0% | `runtime.goexit` |\n| 2.0% | 2.0% | `runtime.futex` |  |  |  |\n",
		"The profiles are in `bench-out/`.",
	} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("no %q in\n%s", w, b.String())
		}
	}
}

func TestCtxSwitches(t *testing.T) {
	const status = "Name:\tazegress\nvoluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t7\n"
	if got := ctxSwitches(status); got != 157 {
		t.Errorf("ctxSwitches = %d, want 157", got)
	}
	if got := ctxSwitches("Name:\tx\n"); got != 0 {
		t.Errorf("without the fields: %d", got)
	}
}

func TestTopSyscalls(t *testing.T) {
	m := map[string]float64{"read": 2, "write": 2, "splice": 3.9, "futex": 0.001, "close": 1}
	if got := topSyscalls(m, 3); got != "splice 3.90, read 2.00, write 2.00" {
		t.Errorf("topSyscalls = %q", got)
	}
	if got := topSyscalls(m, 10); strings.Contains(got, "futex") {
		t.Errorf("a syscall below 0.005 per exchange listed: %q", got)
	}
}

// The learning-mode row's policy loads, lets a destination no rule names
// through, and its hosts lines name distinct destinations.
func TestLearnPolicy(t *testing.T) {
	p, diags := policy.Load("learn.hcl", []byte(azegressLearnPolicy(benchRules(1000))))
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	c := p.Clients()[0]
	h, err := host.Parse(learnHost(7))
	if err != nil {
		t.Fatal(err)
	}
	if v := c.Verdict(c.Decide(h, uint16(echoPort))); v != policy.VerdictWouldDeny {
		t.Errorf("%s: verdict %v, want would_deny", learnHost(7), v)
	}
	if guarded, what := proxy.Guarded(netip.MustParseAddr(learnAddr)); guarded {
		t.Errorf("%s is guarded (%s): a learning-mode tunnel to it would be refused", learnAddr, what)
	}
	lines := strings.Split(strings.TrimSpace(learnHosts(3)), "\n")
	if len(lines) != 3 || lines[2] != learnAddr+" d00002.learn.azbench.example" {
		t.Errorf("learnHosts: %q", lines)
	}
}

// The bare relay tunnels a CONNECT to the origin and closes anything else.
func TestRelay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go serveTCP(ln, relayConn)
	checkRelay(t, ln.Addr().String())
}

// The event-loop relay does what the bare relay does, also for a transfer
// larger than its buffer and a socket's, both ways at once.
func TestEvloop(t *testing.T) {
	addr := startTestEvloop(t)
	checkRelay(t, addr)

	echo := echoListener(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\n\r\n", echo)
	want := "HTTP/1.1 200 Connection established\r\n\r\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
		t.Fatalf("read %q, %v", got, err)
	}
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	go func() {
		c.Write(data)
		c.(*net.TCPConn).CloseWrite()
	}()
	back, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(back, data) {
		t.Fatalf("echoed %d bytes (equal: %v), %v; want the %d sent, then EOF", len(back), bytes.Equal(back, data), err, len(data))
	}
}

// The event-loop relay forwards kept-alive plain-HTTP GETs in absolute
// form to the origin, one after another on one connection.
func TestEvloopHTTP(t *testing.T) {
	addr := startTestEvloop(t)
	var conns atomic.Int64
	origin := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "path %s", r.URL.Path)
	}))
	origin.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	origin.Start()
	defer origin.Close()
	u, _ := url.Parse(origin.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: addr})}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get(fmt.Sprintf("http://%s/p%d", u.Host, i))
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf("path /p%d", i); err != nil || string(body) != want {
			t.Errorf("request %d: %q, %v; want %q", i, body, err, want)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("the origin saw %d connections for 3 requests; want 1, kept alive", n)
	}
}

// startTestEvloop runs one event loop of the evloop control on a loopback
// port until the test binary exits (the control has no stop) and returns
// its address.
func startTestEvloop(t *testing.T) string {
	t.Helper()
	l, err := newLoop(netip.MustParseAddrPort("127.0.0.1:0"), NewNameCache())
	if err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(l.ln)
	if err != nil {
		t.Fatal(err)
	}
	go l.run()
	return fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

// echoListener serves echoConn on loopback and points echoPort at it; it
// returns its address.
func echoListener(t *testing.T) string {
	t.Helper()
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { echo.Close() })
	go serveTCP(echo, echoConn)
	old := echoPort
	t.Cleanup(func() { echoPort = old })
	echoPort = echo.Addr().(*net.TCPAddr).Port
	return echo.Addr().String()
}

// checkRelay runs tunnel setups through the CONNECT relay at addr, a
// CONNECT with bytes behind its head, and a GET it must close.
func checkRelay(t *testing.T, addr string) {
	t.Helper()
	dst := echoListener(t)
	rt := &target{name: "relay", addr: addr, connectOnly: true}
	for range 3 {
		if err := setupOnce(rt, "127.0.0.1", []byte{'x'}); err != nil {
			t.Fatalf("setup through the relay: %v", err)
		}
	}
	for _, tt := range []struct {
		name, send, want string
	}{
		// Bytes sent with the head are the tunnel's first.
		{"CONNECT with data after the head", "CONNECT " + dst + " HTTP/1.1\r\nHost: " + dst + "\r\n\r\nping", "HTTP/1.1 200 Connection established\r\n\r\nping"},
		{"GET", "GET " + dst + " HTTP/1.1\r\nHost: " + dst + "\r\n\r\n", ""},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, tt.send)
		got := make([]byte, len(tt.want))
		if _, err := io.ReadFull(c, got); err != nil || string(got) != tt.want {
			t.Errorf("%s: read %q, %v; want %q", tt.name, got, err, tt.want)
		}
		if tt.want == "" {
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("%s: read %d more, %v; want the connection closed", tt.name, n, err)
			}
		}
		c.Close()
	}
}

// parallel runs the operation exactly n times, each index once.
func TestParallel(t *testing.T) {
	for _, n := range []int{0, 1, 3, 1000} {
		var mu sync.Mutex
		seen := map[int]int{}
		err := parallel(n, func(w, i int) error {
			if w < 0 || w >= sysWorkers {
				t.Errorf("worker %d", w)
			}
			mu.Lock()
			seen[i]++
			mu.Unlock()
			return nil
		})
		if err != nil || len(seen) != n {
			t.Errorf("n=%d: %d distinct indices, %v", n, len(seen), err)
		}
		for i, k := range seen {
			if i < 0 || i >= n || k != 1 {
				t.Errorf("n=%d: index %d ran %d times", n, i, k)
			}
		}
	}
	if err := parallel(10, func(w, i int) error { return errors.New("boom") }); err == nil || err.Error() != "boom" {
		t.Errorf("error: %v", err)
	}
}
