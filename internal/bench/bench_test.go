//go:build linux

package bench

import (
	"bufio"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/identity"
	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/host"
	"github.com/azegress/azegress/proxy"
)

// The benchmark policy must stay a valid azegress policy that allows the
// origins by an exact and by a wildcard rule and nothing else of theirs.
func TestBenchPolicyLoads(t *testing.T) {
	rules := benchRules(1000)
	if len(rules) != 1000 {
		t.Fatalf("%d rules, want 1000", len(rules))
	}
	p, diags := policy.Load("bench.hcl", []byte(azegressPolicy(rules)))
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	if p.RuleCount() != 1000 {
		t.Fatalf("RuleCount = %d", p.RuleCount())
	}
	c := p.Clients()[0]
	for _, tt := range []struct {
		host  string
		port  uint16
		allow bool
	}{
		{originHost, uint16(echoPort), true},
		{wildHost, uint16(sourcePort), true},
		{originHost, uint16(httpPort), true},
		{originHost, 443, false},
		{"cdn.azbench.example", uint16(echoPort), false},
	} {
		h, err := host.Parse(tt.host)
		if err != nil {
			t.Fatal(err)
		}
		if d := c.Decide(h, tt.port); d.Allowed != tt.allow {
			t.Errorf("Decide(%s:%d) = %v, want %v", tt.host, tt.port, d.Allowed, tt.allow)
		}
	}
	sq := squidConf("/tmp/x", rules)
	if n := strings.Count(sq, "acl bench_dst dstdomain "); n != 1000 {
		t.Errorf("squid.conf has %d dstdomain entries, want 1000", n)
	}
	if !strings.Contains(sq, "acl bench_dst dstdomain .cdn.azbench.example\n") {
		t.Errorf("squid.conf lacks the wildcard rule as a dstdomain")
	}
}

// The azegress-identity target's policy gives the benchmark rules to the
// stand-in tenant's managed identity, and its token passes the proxy's own
// validator against the stand-in's documents and keys: it selects that
// block, which allows the origins.
func TestBenchIdentity(t *testing.T) {
	idp, err := startIdP()
	if err != nil {
		t.Fatal(err)
	}
	defer idp.close()
	p, diags := policy.Load("bench.hcl", []byte(azegressIdentityPolicy(benchRules(1000), idp.base)))
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	keys, err := identity.NewKeys(identity.KeysConfig{TenantID: p.Entra().TenantID, Authority: p.Entra().Authority})
	if err != nil {
		t.Fatal(err)
	}
	if err := keys.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, err := proxy.NewValidator(p.Entra(), keys)
	if err != nil {
		t.Fatal(err)
	}
	token, err := idp.token()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(token); n < 1200 || n > 1400 {
		t.Errorf("token of %d bytes; the report says 1.3 KB, the size of an Entra ID token", n)
	}
	id, err := v.Validate(t.Context(), token)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := p.ClientForIdentity(id.ObjectID, id.AppID, netip.MustParseAddr("127.0.0.1"))
	if c == nil || c.Name != "bench" {
		t.Fatalf("the token selects %v, want the bench block", c)
	}
	h, err := host.Parse(wildHost)
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Decide(h, uint16(echoPort)); !d.Allowed {
		t.Errorf("the identity's block refuses %s:%d", wildHost, echoPort)
	}
}

func TestStats(t *testing.T) {
	if got := median([]float64{3, 0, 1, 2}); got != 2 {
		t.Errorf("median ignoring a failed 0 = %v, want 2", got)
	}
	if got := median([]float64{4, 1, 2, 3}); got != 2.5 {
		t.Errorf("median = %v, want 2.5", got)
	}
	d := []time.Duration{5, 1, 4, 2, 3}
	if p50, p99 := percentile(d, 50), percentile(d, 99); p50 != 3 || p99 != 4 {
		t.Errorf("p50, p99 = %v, %v", p50, p99)
	}
	if got := strings.Join(rotate([]string{"a", "b", "c"}, 1), ""); got != "bca" {
		t.Errorf("rotate = %s", got)
	}
	if got := fmtCount(1234567.4); got != "1,234,567" {
		t.Errorf("fmtCount = %s", got)
	}
}

func TestParseGoBench(t *testing.T) {
	out := `goos: linux
pkg: github.com/azegress/azegress/policy
BenchmarkDecide/rules=100000/exact-2         	 9000000	       95.3 ns/op	       0 B/op	       0 allocs/op
BenchmarkLoad100kRules-2                 	       1	2860320615 ns/op	   2.75 MB/s	2139319880 B/op	14051493 allocs/op
BenchmarkIdleTunnelMemory/hybrid-2       	       1	 441700000 ns/op	      1376 B/tunnel	      1364 RSS-B/tunnel	 9198234 B/op	  173558 allocs/op
PASS
`
	gb := parseGoBench(out)
	if len(gb) != 3 {
		t.Fatalf("parsed %d lines: %+v", len(gb), gb)
	}
	if g := gb[0]; g.Name != "BenchmarkDecide/rules=100000/exact" || g.NsOp != 95.3 || !g.HasMem || g.Allocs != 0 || g.Pkg != "github.com/azegress/azegress/policy" {
		t.Errorf("first: %+v", g)
	}
	if g, ok := findBench(gb, "BenchmarkLoad100kRules"); !ok || g.NsOp != 2860320615 || g.MBs != 2.75 || g.Allocs != 14051493 {
		t.Errorf("second: %+v", g)
	}
	if g := gb[2]; strings.Join(g.Other, ", ") != "1376 B/tunnel, 1364 RSS-B/tunnel" || g.Allocs != 173558 {
		t.Errorf("third, with metrics of its own: %+v", g)
	}
}

// The identity floors are marked from the azegress-identity target's
// rounds and the Go benchmarks of ./identity and ./policy, and say "not
// measured" when those did not run.
func TestRenderIdentityFloors(t *testing.T) {
	const goBench = `pkg: github.com/azegress/azegress/identity
BenchmarkValidateCold-2   	    2000	    114636 ns/op	     76980 cpu-ns/op	   11048 B/op	     120 allocs/op
BenchmarkValidateCached-2 	  158583	       773.8 ns/op	       0 B/op	       0 allocs/op
BenchmarkValidate100kDistinct-2      	       1	8577368900 ns/op	       383.2 B/entry	         %s MiB-at-100k	         3.029 MiB-at-10k	     10000 cache-entries	1231256936 B/op	12389924 allocs/op
pkg: github.com/azegress/azegress/policy
BenchmarkDecideIdentity-2   	  971965	       262.1 ns/op	       0 B/op	       %s allocs/op
pkg: github.com/azegress/azegress/proxy
BenchmarkConnectSetup-2           	    3543	    400000 ns/op	   44855 B/op	     123 allocs/op
BenchmarkConnectSetupIdentity-2   	    1929	    420000 ns/op	   49575 B/op	     131 allocs/op
`
	rounds := func(us ...float64) []roundResult {
		var rs []roundResult
		for _, u := range us {
			rs = append(rs, roundResult{SetupCPU: cpuUse{Proxy: time.Duration(u * 1e3)}})
		}
		return rs
	}
	for _, tt := range []struct {
		name  string
		rep   report
		wants []string
	}{
		{"holds", report{GoBench: fmt.Sprintf(goBench, "3.654", "0"), Results: &results{Rounds: map[string][]roundResult{
			"azegress": rounds(200, 190, 210), "azegress-identity": rounds(204, 300, 100)}}}, []string{
			"| CONNECT with a cached valid token: proxy CPU per tunnel ≤ 1.05× the same tunnel's without identity (azegress-identity ÷ azegress) | 1.020 (204.0 / 200.0 µs) | yes |",
			"| cold verification (cache miss, RS256): CPU per token ≤ 150 µs | 77.0 µs CPU (114.6 µs wall) | yes |",
			"| 100,000 distinct valid tokens in a row: memory bounded by the verified-token cache (10,000 entries): the heap after 100,000 ≤ 1.5× the heap once the cache is full | 3.0 MiB full, 3.7 MiB after 100,000; 10,000 entries, 383 B each | yes |",
			"| the decision stays allocation-free with identity: a cached token's check, then its identity's block and rule | cached token 773.8 ns, 0 allocs; block and rule (1,000 identities, 1,000 rules) 262.1 ns, 0 allocs | yes |",
			"- azegress-identity is azegress with the same rules",
			"BenchmarkConnectSetup = 1.05 (420.0 µs / 400.0 µs).",
		}},
		{"does not hold", report{GoBench: fmt.Sprintf(goBench, "30.1", "1"), Results: &results{Rounds: map[string][]roundResult{
			"azegress": rounds(200), "azegress-identity": rounds(212)}}}, []string{
			"| 1.060 (212.0 / 200.0 µs) | **no** |",
			"| 3.0 MiB full, 30.1 MiB after 100,000; 10,000 entries, 383 B each | **no** |",
			"block and rule (1,000 identities, 1,000 rules) 262.1 ns, 1 allocs | **no** |",
		}},
		{"not measured", report{Results: &results{}}, []string{
			"| CONNECT with a cached valid token: proxy CPU per tunnel ≤ 1.05× the same tunnel's without identity (azegress-identity ÷ azegress) | not measured | — |",
			"| cold verification (cache miss, RS256): CPU per token ≤ 150 µs | not measured | — |",
			"the heap after 100,000 ≤ 1.5× the heap once the cache is full | not measured | — |",
			"then its identity's block and rule | not measured | — |",
		}},
	} {
		var b strings.Builder
		tt.rep.renderIdentity(&b)
		for _, w := range tt.wants {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: no %q in\n%s", tt.name, w, b.String())
			}
		}
		if tt.name == "not measured" && strings.Contains(b.String(), "azegress-identity is") {
			t.Errorf("%s: the target is described though it did not run:\n%s", tt.name, b.String())
		}
	}
}

// A run replaces the generated part of BENCHMARKS.md and keeps the part
// written by hand.
func TestWriteReportKeepsHandWritten(t *testing.T) {
	path := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	if err := writeReport(path, "# run 1\n"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), handMarker+defaultHand) {
		t.Fatalf("first run has no hand-written stub:\n%s", b)
	}
	hand := "\n\n## Fuzzing\n\nFuzzMatch ran for 5m.\n"
	os.WriteFile(path, []byte("# run 1\n"+handMarker+hand), 0o644)
	if err := writeReport(path, "# run 2\n"); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(path)
	if string(b) != "# run 2\n\n"+handMarker+hand {
		t.Fatalf("second run:\n%s", b)
	}
}

func TestReadHead(t *testing.T) {
	for _, tt := range []struct {
		resp        string
		status      int
		keep, chunk bool
		length      int64
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", 200, true, false, 3},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\n", 200, false, false, 3},
		{"HTTP/1.0 200 Connection established\r\nProxy-agent: tinyproxy/1.11.1\r\n\r\n", 200, false, false, -1},
		{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", 200, true, false, -1},
		{"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n", 403, true, true, -1},
	} {
		status, h, err := readHead(bufio.NewReader(strings.NewReader(tt.resp)))
		if err != nil || status != tt.status || h.keepAlive != tt.keep || h.chunked != tt.chunk || h.contentLength != tt.length {
			t.Errorf("%q: %d %+v %v", tt.resp, status, h, err)
		}
	}
	if _, _, err := readHead(bufio.NewReader(strings.NewReader("SSH-2.0\r\n\r\n"))); err == nil {
		t.Error("a non-HTTP answer was accepted")
	}
}

// The load generator's measurements work against origins directly (the
// proxies are exercised by `make bench` itself).
func TestMeasureDirect(t *testing.T) {
	lns := map[*int]net.Listener{}
	for _, p := range []*int{&echoPort, &sourcePort, &httpPort} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		lns[p] = ln
	}
	old := [3]int{echoPort, sourcePort, httpPort}
	t.Cleanup(func() { echoPort, sourcePort, httpPort = old[0], old[1], old[2] })
	echoPort, sourcePort, httpPort = lns[&echoPort].Addr().(*net.TCPAddr).Port, lns[&sourcePort].Addr().(*net.TCPAddr).Port, lns[&httpPort].Addr().(*net.TCPAddr).Port
	go serveTCP(lns[&echoPort], echoConn)
	go serveTCP(lns[&sourcePort], sourceConn)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }), ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(lns[&httpPort])
	t.Cleanup(func() { hs.Close() })

	direct := &target{name: "direct"}
	if r := measureSetup(direct, 4, 200*time.Millisecond); r.N == 0 || r.Errors > 0 || r.P50 <= 0 || r.P99 < r.P50 {
		t.Errorf("setup: %+v", r)
	}
	if mbs, cpu, err := measureBulk(direct, 2, 50*time.Millisecond, 200*time.Millisecond, cpuMeter{}); err != nil || mbs <= 0 || cpu.Client <= 0 || cpu.Proxy != 0 {
		t.Errorf("bulk: %v %+v %v", mbs, cpu, err)
	}
	if p50, p99, err := measureRTT(direct, 200*time.Millisecond); err != nil || p50 <= 0 || p99 < p50 {
		t.Errorf("rtt: %v %v %v", p50, p99, err)
	}
	if r := measureHTTP(direct, 4, 200*time.Millisecond); r.N == 0 || r.Errors > 0 || r.Reopens > 0 {
		t.Errorf("http: %+v", r)
	}
}

// TestGroupCPU: the CPU time of this test's process group includes the
// time this process spends.
func TestGroupCPU(t *testing.T) {
	end := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(end); x++ {
		_ = x * x
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	self := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	got := groupCPU(syscall.Getpgrp())
	if got < self-2*clockTick {
		t.Errorf("process group CPU %v, but this process alone used %v", got, self)
	}
	if _, _, _, ok := procStat(os.Getpid()); !ok {
		t.Errorf("procStat of this process failed")
	}
}
