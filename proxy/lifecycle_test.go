package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/proxy/internal/nettest"
)

// echoOrigin is a plain TCP origin that echoes every line back.
func echoOrigin(t *testing.T) (string, uint16) {
	t.Helper()
	ln := nettest.Serve(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	return ln.Addr().String(), portOf(t, ln.Addr())
}

// openTunnel CONNECTs to target and returns the tunnel, ready for bytes.
func (tp *testProxy) openTunnel(target string) (net.Conn, *bufio.Reader) {
	tp.t.Helper()
	resp, c, br := tp.raw("", "CONNECT "+target+" HTTP/1.1\r\n\r\n")
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		tp.t.Fatalf("CONNECT %s: %d %s", target, resp.StatusCode, b)
	}
	_ = c.SetDeadline(time.Time{})
	return c, br
}

func echoLine(t *testing.T, c net.Conn, br *bufio.Reader, msg string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		t.Fatalf("tunnel write: %v", err)
	}
	line, err := br.ReadString('\n')
	if err != nil || line != msg+"\n" {
		t.Fatalf("tunnel echo = %q, %v; want %q", line, err, msg)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, `
  limits {
    connections_per_second = 0.01
    burst                  = 2
  }`), loopbackNames("allowed.example.com"))
	target := fmt.Sprintf("allowed.example.com:%d", port)
	for i := 0; i < 2; i++ {
		if resp, body := tp.connect("", target); resp.StatusCode != 200 {
			t.Fatalf("within the burst, CONNECT %d: %d %s", i, resp.StatusCode, body)
		}
	}
	resp, body := tp.connect("", target)
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("over the limit: %d %s", resp.StatusCode, body)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 100 {
		t.Fatalf("Retry-After = %q, want seconds until the next token (1..100)", resp.Header.Get("Retry-After"))
	}
	if rec := tp.lastDeny(); rec["reason"] != ReasonRateLimited {
		t.Fatalf("logged %v", rec)
	}
	// Plain HTTP requests draw from the same bucket.
	resp, _, _ = tp.raw("", fmt.Sprintf("GET http://allowed.example.com:%d/ HTTP/1.1\r\nHost: allowed.example.com:%d\r\n\r\n", port, port))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("plain HTTP over the limit: %d", resp.StatusCode)
	}
}

func TestMaxTunnels(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, `
  limits {
    max_tunnels = 2
  }`), loopbackNames("allowed.example.com"))
	target := fmt.Sprintf("allowed.example.com:%d", port)
	c1, br1 := tp.openTunnel(target)
	c2, _ := tp.openTunnel(target)
	resp, body := tp.connect("", target)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Azegress-Reason") != ReasonTooManyTunnels || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("third tunnel: %d %q %s", resp.StatusCode, resp.Header.Get("X-Azegress-Reason"), body)
	}
	echoLine(t, c1, br1, "still working")
	c2.Close()
	// The slot comes back when the tunnel ends.
	waitFor(t, func() bool {
		resp, _ := tp.connect("", target)
		return resp.StatusCode == 200
	}, "a tunnel slot to be released")
}

func TestGlobalConnectionCap(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"),
		func(c *Config) { c.MaxConnections = 1 })
	c1, br1 := tp.openTunnel(fmt.Sprintf("allowed.example.com:%d", port))
	resp, _, _ := tp.raw("", fmt.Sprintf("CONNECT allowed.example.com:%d HTTP/1.1\r\n\r\n", port))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" ||
		resp.Header.Get("Proxy-Status") != `azegress; error=http_request_denied; details="too_many_connections"` {
		t.Fatalf("over the global cap: %d %v", resp.StatusCode, resp.Header)
	}
	echoLine(t, c1, br1, "first client unaffected")
	if got := testutil.ToFloat64(tp.m.connsShed); got != 1 {
		t.Errorf("shed counter = %v, want 1", got)
	}
}

// A reload that fails keeps the old policy; one that succeeds applies to new
// requests; an open tunnel survives both.
func TestReloadKeepsTunnels(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"))
	target := fmt.Sprintf("allowed.example.com:%d", port)
	c, br := tp.openTunnel(target)
	echoLine(t, c, br, "before")

	bad := func() (*policy.Policy, hcl.Diagnostics) {
		return policy.Load("bad.hcl", []byte(`client "x" { sources = ["not-a-cidr"] }`))
	}
	if tp.Reload(bad) {
		t.Fatal("a bad policy was applied")
	}
	if tp.Policy().Filename() != "test.hcl" {
		t.Fatalf("policy now %s", tp.Policy().Filename())
	}
	recs := tp.logs.records("policy reload rejected; the previous policy keeps serving")
	if len(recs) != 1 || !strings.Contains(fmt.Sprint(recs[0]["error"]), "bad.hcl:1:") {
		t.Fatalf("reload rejection record: %v", recs)
	}
	if resp, _ := tp.connect("", target); resp.StatusCode != 200 {
		t.Fatalf("after a bad reload the old policy must still allow: %d", resp.StatusCode)
	}
	echoLine(t, c, br, "after bad reload")

	denyAll := func() (*policy.Policy, hcl.Diagnostics) {
		return policy.Load("new.hcl", []byte(`client "local" {
  sources = ["127.0.0.0/8"]
}`))
	}
	if !tp.Reload(denyAll) {
		t.Fatal("a good policy was rejected")
	}
	resp, body := tp.connect("", target)
	if resp.StatusCode != 403 || !strings.Contains(body, "policy:  new.hcl") {
		t.Fatalf("after reload: %d %s", resp.StatusCode, body)
	}
	echoLine(t, c, br, "after good reload")

	want := `
# HELP azegress_policy_reloads_total Policy reload attempts by result (success, failure).
# TYPE azegress_policy_reloads_total counter
azegress_policy_reloads_total{result="failure"} 1
azegress_policy_reloads_total{result="success"} 1
# HELP azegress_policy_last_reload_successful Whether the last policy reload attempt succeeded (1) or was rejected (0).
# TYPE azegress_policy_last_reload_successful gauge
azegress_policy_last_reload_successful 1
# HELP azegress_policy_rules Allow rules in the policy being served.
# TYPE azegress_policy_rules gauge
azegress_policy_rules 0
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want),
		"azegress_policy_reloads_total", "azegress_policy_last_reload_successful", "azegress_policy_rules"); err != nil {
		t.Error(err)
	}
}

// Shutdown stops accepting at once but lets a transfer in flight finish.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"))
	c, br := tp.openTunnel(fmt.Sprintf("allowed.example.com:%d", port))
	echoLine(t, c, br, "before shutdown")

	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- tp.Shutdown(ctx)
	}()
	waitFor(t, func() bool { return !tp.Ready() }, "draining to start")
	waitFor(t, func() bool {
		nc, err := net.Dial("tcp", tp.addr)
		if err == nil {
			nc.Close()
		}
		return err != nil
	}, "the listener to close")
	// The transfer in flight goes on during the drain.
	for i := 0; i < 3; i++ {
		echoLine(t, c, br, fmt.Sprintf("during drain %d", i))
	}
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a tunnel still open", err)
	default:
	}
	c.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return after the last tunnel closed")
	}
	recs := tp.logs.records("tunnel closed")
	if len(recs) != 1 || recs[0]["bytes_up"].(float64) < 40 || recs[0]["rule"] != "allowed" {
		t.Fatalf("tunnel closed records: %v", recs)
	}
}

// A tunnel still open when the grace period ends is closed.
func TestShutdownGraceExpires(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"))
	c, br := tp.openTunnel(fmt.Sprintf("allowed.example.com:%d", port))
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("tunnel still open after the grace period")
	}
}

func TestMetricsAfterTraffic(t *testing.T) {
	t.Parallel()
	_, port := echoOrigin(t)
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com", "denied.example.com"))
	c, br := tp.openTunnel(fmt.Sprintf("allowed.example.com:%d", port))
	echoLine(t, c, br, "0123456789")
	c.Close()
	tp.connect("", fmt.Sprintf("denied.example.com:%d", port))
	tp.connect("", fmt.Sprintf("denied.example.com:%d", port))
	tp.connect("127.0.0.1", "1.2.3.999:443")
	waitFor(t, func() bool {
		return testutil.ToFloat64(tp.m.tunnelsActive) == 0 && len(tp.logs.records("tunnel closed")) == 1
	}, "the tunnel to close")

	want := `
# HELP azegress_decisions_total Policy decisions by request kind (connect, http), decision (allow, deny, would_deny), reason, mode and client block.
# TYPE azegress_decisions_total counter
azegress_decisions_total{client_block="",decision="deny",kind="connect",mode="",reason="bad_request"} 1
azegress_decisions_total{client_block="local",decision="allow",kind="connect",mode="enforce",reason="allowed"} 1
azegress_decisions_total{client_block="local",decision="deny",kind="connect",mode="enforce",reason="no_rule"} 2
# HELP azegress_rule_hits_total Requests allowed by each rule.
# TYPE azegress_rule_hits_total counter
azegress_rule_hits_total{client_block="local",rule="allowed"} 1
# HELP azegress_transferred_bytes_total Bytes moved through tunnels and forwarded requests; upstream is client to destination, downstream the reverse.
# TYPE azegress_transferred_bytes_total counter
azegress_transferred_bytes_total{direction="downstream"} 11
azegress_transferred_bytes_total{direction="upstream"} 11
# HELP azegress_tunnels_active CONNECT tunnels currently open.
# TYPE azegress_tunnels_active gauge
azegress_tunnels_active 0
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want),
		"azegress_decisions_total", "azegress_rule_hits_total", "azegress_transferred_bytes_total", "azegress_tunnels_active"); err != nil {
		t.Error(err)
	}
	if got := testutil.CollectAndCount(tp.m.dialSeconds); got != 1 {
		t.Errorf("dial histogram series = %d", got)
	}
	problems, err := testutil.GatherAndLint(tp.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
}

// A reload asked of WatchFile (serve's SIGHUP) loads the file, changed or
// not, also with the watch for changes off; a file missing when asked is
// reloaded too, so that its rejection says why, where a change the watch
// sees waits for the file to come back.
func TestWatchFileAsked(t *testing.T) {
	t.Parallel()
	tp := startProxy(t, basePolicy(443, ""), nil)
	path := filepath.Join(t.TempDir(), "policy.hcl")
	asked := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tp.WatchFile(ctx, path, 10*time.Millisecond, false, asked, func() (*policy.Policy, hcl.Diagnostics) { return policy.LoadFile(path) })
	}()
	t.Cleanup(func() { cancel(); <-done })

	const rejected = "policy reload rejected; the previous policy keeps serving"
	asked <- struct{}{}
	waitFor(t, func() bool { return len(tp.logs.records(rejected)) == 1 }, "the missing file's rejection")
	if rec := tp.logs.records(rejected)[0]; !strings.Contains(fmt.Sprint(rec["error"]), path) {
		t.Errorf("the rejection does not name the missing file: %v", rec)
	}
	if err := os.WriteFile(path, []byte(basePolicy(443, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	for n := 1; n <= 2; n++ { // the new file, then the same file again
		asked <- struct{}{}
		waitFor(t, func() bool { return len(tp.logs.records("policy reloaded")) == n }, "a reload of the file")
		if got := tp.Policy().Filename(); got != path {
			t.Fatalf("serving %s, want %s", got, path)
		}
	}
}

// A SIGHUP for a file last modified an interval ago or more loads it at
// once; one modified since waits until it has stayed the same for an
// interval.
func TestWatchFileAskedOldFile(t *testing.T) {
	t.Parallel()
	tp := startProxy(t, basePolicy(443, ""), nil)
	path := filepath.Join(t.TempDir(), "policy.hcl")
	if err := os.WriteFile(path, []byte(basePolicy(443, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
	asked := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tp.WatchFile(ctx, path, time.Hour, false, asked, func() (*policy.Policy, hcl.Diagnostics) { return policy.LoadFile(path) })
	}()
	t.Cleanup(func() { cancel(); <-done })
	asked <- struct{}{}
	waitFor(t, func() bool { return len(tp.logs.records("policy reloaded")) == 1 }, "the old file loaded at once, not after the hour's interval")
	if err := os.WriteFile(path, []byte(basePolicy(443, "")), 0o644); err != nil { // modified now
		t.Fatal(err)
	}
	asked <- struct{}{}
	time.Sleep(50 * time.Millisecond)
	if n := len(tp.logs.records("policy reloaded")); n != 1 {
		t.Errorf("%d reloads; a file modified just now must wait its interval", n)
	}
}

// Reloads run one at a time, load included: a reload that read the policy
// first cannot swap it in after a reload that read it later (SIGHUP during
// a WatchFile reload).
func TestReloadsInOrder(t *testing.T) {
	t.Parallel()
	tp := startProxy(t, basePolicy(443, ""), nil)
	load := func(name string) (*policy.Policy, hcl.Diagnostics) {
		return policy.Load(name, []byte(basePolicy(443, "")))
	}
	newerDone := make(chan struct{})
	older := func() (*policy.Policy, hcl.Diagnostics) {
		// The file changes again while this load runs, and is reloaded.
		go func() {
			defer close(newerDone)
			if !tp.Reload(func() (*policy.Policy, hcl.Diagnostics) { return load("newer.hcl") }) {
				t.Error("the newer policy was rejected")
			}
		}()
		select {
		case <-newerDone: // it overtook this reload
		case <-time.After(500 * time.Millisecond): // it waits for this one
		}
		return load("older.hcl")
	}
	if !tp.Reload(older) {
		t.Fatal("the older policy was rejected")
	}
	<-newerDone
	if got := tp.Policy().Filename(); got != "newer.hcl" {
		t.Errorf("serving %s after both reloads, want newer.hcl", got)
	}
}
