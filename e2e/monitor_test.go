package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/azegress/azegress/identity/identitytest"
	"github.com/azegress/azegress/internal/testcert"
)

// Checks of the monitoring kit: deploy/prometheus/alerts.yml with promtool
// (its checks and the unit tests in alerts_test.yml), the structure of
// deploy/grafana/azegress.json, and a real Prometheus that scrapes a running
// azegress and answers every expression of both.

const (
	depAlerts     = depDir + "/prometheus/alerts.yml"
	depAlertTests = depDir + "/prometheus/alerts_test.yml"
	depDashboard  = depDir + "/grafana/azegress.json"
)

// monRule is one alerting rule of alerts.yml.
type monRule struct {
	name, expr, forDur, severity, summary, description string
}

func monRules(t *testing.T) []monRule {
	t.Helper()
	var rules []monRule
	for _, g := range depList(depYAML(t, depRead(t, depAlerts))[0], "groups") {
		for _, r := range depList(g, "rules") {
			rules = append(rules, monRule{
				name: depStr(r, "alert"), expr: depStr(r, "expr"), forDur: depStr(r, "for"),
				severity:    depStr(r, "labels", "severity"),
				summary:     depStr(r, "annotations", "summary"),
				description: depStr(r, "annotations", "description"),
			})
		}
	}
	if len(rules) == 0 {
		t.Fatalf("%s has no rules", depAlerts)
	}
	return rules
}

// monRuleNamed returns the rule of rules named name.
func monRuleNamed(t *testing.T, rules []monRule, name string) monRule {
	t.Helper()
	i := slices.IndexFunc(rules, func(r monRule) bool { return r.name == name })
	if i < 0 {
		t.Fatalf("%s has no %s", depAlerts, name)
	}
	return rules[i]
}

// Every alert has a for, a severity, a summary and a description that says
// what to do, a promtool unit test where it fires and one where it does
// not, and a line in README.md; promtool checks the file and runs the tests.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool := depTool(t, "promtool")
	rules := monRules(t)
	readme := depRead(t, "../README.md")
	seen := map[string]bool{}
	for _, r := range rules {
		if r.name == "" || seen[r.name] {
			t.Errorf("alert name %q is empty or repeated", r.name)
		}
		seen[r.name] = true
		if r.forDur == "" || r.expr == "" {
			t.Errorf("%s: needs an expr and a for (a single bad evaluation must not page)", r.name)
		}
		if r.severity != "critical" && r.severity != "warning" {
			t.Errorf("%s: severity %q, want critical or warning", r.name, r.severity)
		}
		if r.summary == "" || len(r.description) < 100 {
			t.Errorf("%s: needs a summary and a description that says what to do", r.name)
		}
		if !strings.Contains(readme, "`"+r.name+"`") {
			t.Errorf("%s is not described in README.md (section Monitoring)", r.name)
		}
	}

	// Each alert fires in some unit test and stays quiet in another.
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range depList(depYAML(t, depRead(t, depAlertTests))[0], "tests") {
		for _, at := range depList(tc, "alert_rule_test") {
			name := depStr(at, "alertname")
			if len(depList(at, "exp_alerts")) > 0 {
				fires[name] = true
			} else {
				quiet[name] = true
			}
		}
	}
	for _, r := range rules {
		if !fires[r.name] || !quiet[r.name] {
			t.Errorf("%s: %s needs a case where it fires (%v) and one where it does not (%v)", r.name, depAlertTests, fires[r.name], quiet[r.name])
		}
	}

	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Dir(depAlerts)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// monExpr is one PromQL expression of the dashboard or the rules, with
// where it comes from. label is set for a Grafana label_values(expr, label)
// variable query: expr must return series that carry label (others are
// skipped).
type monExpr struct {
	where, expr, label string
}

var (
	grafanaVar         = regexp.MustCompile(`\$\{?(\w+)\}?`)
	grafanaLabelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
)

// grafanaExpand substitutes the dashboard's variables and Grafana's own
// ($__rate_interval, $__range, $__interval) with what a Grafana would send
// for "All" instances and client blocks; an unknown variable is an error.
func grafanaExpand(expr string, vars map[string]string) (string, error) {
	builtin := map[string]string{"__rate_interval": "1m", "__range": "5m", "__interval": "15s"}
	var unknown []string
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		name := grafanaVar.FindStringSubmatch(m)[1]
		if v, ok := builtin[name]; ok {
			return v
		}
		if v, ok := vars[name]; ok {
			return v
		}
		unknown = append(unknown, m)
		return m
	})
	if unknown != nil {
		return "", fmt.Errorf("undefined variables %v", unknown)
	}
	return out, nil
}

// panelTypes are the core panels of a current Grafana; the AngularJS ones
// (graph, singlestat, table-old) are gone since Grafana 12.
var panelTypes = map[string]bool{"row": true, "stat": true, "timeseries": true, "table": true, "bargauge": true, "gauge": true, "state-timeline": true, "text": true}

// monDashboard checks the dashboard's structure and returns its
// expressions, variables substituted.
func monDashboard(t *testing.T) []monExpr {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(depRead(t, depDashboard)), &d); err != nil {
		t.Fatalf("%s: %v", depDashboard, err)
	}
	const ds = "${DS_PROMETHEUS}"
	if v, _ := d["schemaVersion"].(float64); v < 39 {
		t.Errorf("schemaVersion %v; a current Grafana (11, 12) writes 39 or later", d["schemaVersion"])
	}
	if _, ok := d["refresh"].(string); !ok {
		t.Errorf("refresh must be a string (schema 40)")
	}
	if !slices.ContainsFunc(depList(d, "__inputs"), func(in any) bool {
		return depStr(in, "name") == "DS_PROMETHEUS" && depStr(in, "type") == "datasource" && depStr(in, "pluginId") == "prometheus"
	}) {
		t.Errorf("__inputs has no DS_PROMETHEUS datasource input")
	}

	vars := map[string]string{}
	var exprs []monExpr
	for _, v := range depList(d, "templating", "list") {
		name := depStr(v, "name")
		if depStr(v, "datasource", "uid") != ds {
			t.Errorf("variable %s: datasource %v, want %s", name, depDig(v, "datasource"), ds)
		}
		if multi, _ := depDig(v, "multi").(bool); multi && depStr(v, "allValue") != ".*" {
			t.Errorf("variable %s: a multi-value variable needs allValue \".*\"", name)
		}
		q := depStr(v, "query", "query")
		m := grafanaLabelValues.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(expr, label)", name, q)
			continue
		}
		exprs = append(exprs, monExpr{where: "variable " + name, expr: m[1], label: m[2]})
		vars[name] = ".*"
	}
	for _, want := range []string{"job", "instance", "client_block"} {
		if _, ok := vars[want]; !ok {
			t.Errorf("no %s variable", want)
		}
	}
	vars["job"] = "azegress" // the scrape job of TestMonitorLive

	type box struct{ x, y, w, h int }
	var boxes []box
	ids := map[float64]bool{}
	var walk func(panels []any)
	walk = func(panels []any) {
		for _, p := range panels {
			title, typ := depStr(p, "title"), depStr(p, "type")
			id, _ := depDig(p, "id").(float64)
			if ids[id] {
				t.Errorf("panel %q: id %v repeated", title, id)
			}
			ids[id] = true
			g := func(k string) int { f, _ := depDig(p, "gridPos", k).(float64); return int(f) }
			b := box{g("x"), g("y"), g("w"), g("h")}
			if b.w <= 0 || b.h <= 0 || b.x < 0 || b.x+b.w > 24 {
				t.Errorf("panel %q: gridPos %+v outside the 24-column grid", title, b)
			}
			for _, o := range boxes {
				if b.x < o.x+o.w && o.x < b.x+b.w && b.y < o.y+o.h && o.y < b.y+b.h {
					t.Errorf("panel %q overlaps another at %+v", title, o)
				}
			}
			boxes = append(boxes, b)
			if !panelTypes[typ] {
				t.Errorf("panel %q: type %q is not a core panel of a current Grafana", title, typ)
			}
			if typ == "row" {
				walk(depList(p, "panels"))
				continue
			}
			if title == "" || depStr(p, "description") == "" {
				t.Errorf("panel %d needs a title and a description (%q)", int(id), title)
			}
			if depStr(p, "datasource", "uid") != ds {
				t.Errorf("panel %q: datasource %v, want %s", title, depDig(p, "datasource"), ds)
			}
			targets := depList(p, "targets")
			if len(targets) == 0 {
				t.Errorf("panel %q has no query", title)
			}
			refs := map[string]bool{}
			for _, tg := range targets {
				ref := depStr(tg, "refId")
				if ref == "" || refs[ref] {
					t.Errorf("panel %q: refId %q empty or repeated", title, ref)
				}
				refs[ref] = true
				if depStr(tg, "datasource", "uid") != ds {
					t.Errorf("panel %q %s: datasource %v, want %s", title, ref, depDig(tg, "datasource"), ds)
				}
				exprs = append(exprs, monExpr{where: fmt.Sprintf("panel %q %s", title, ref), expr: depStr(tg, "expr")})
			}
		}
	}
	walk(depList(d, "panels"))

	for i, e := range exprs {
		x, err := grafanaExpand(e.expr, vars)
		if err != nil {
			t.Errorf("%s: %v in %s", e.where, err, e.expr)
		}
		exprs[i].expr = x
	}
	return exprs
}

// The dashboard imports into a current Grafana: a DS_PROMETHEUS input used
// by every panel, instance and client block variables, core panel types,
// no overlapping panels, and only defined variables in its queries.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	if exprs := monDashboard(t); len(exprs) == 0 {
		t.Fatal("the dashboard has no queries")
	}
}

// monQuiet lists the rule expressions that return nothing at the end of
// TestMonitorLive, and why; every other expression of the rules and the
// dashboard must return data then.
var monQuiet = map[string]string{
	"AzegressDown": "up == 0 needs the proxy down; the test stops it at the end and checks this one then",
	"AzegressTargetMissing": "absent() returns data only when Prometheus has no target in job azegress, " +
		"which a test that scrapes azegress cannot arrange; alerts_test.yml covers it",
	"AzegressIdentityKeysStale": "the signing keys load during the test; its condition (none loaded since start, " +
		"the identity provider down) is made true and checked at the start",
}

// A real Prometheus scrapes a running azegress under a little traffic, with
// the alerting rules loaded. Every expression of the dashboard and of the
// rules parses, and returns data once the test has made its condition true:
// signing keys not loaded (the identity provider down at start), denials
// (spike), refused credentials (a spike of tokens for another audience, after
// valid ones), a rejected reload, rules expiring and expired, a TLS listener
// certificate expiring within a week and a plain-HTTP client on that
// listener, file descriptors above 80% and shed connections (a
// 128-descriptor limit and -max-conns 50, filled with tunnels), then the
// proxy stopped. Each of those alerts also goes pending in Prometheus itself.
func TestMonitorLive(t *testing.T) {
	t.Parallel()
	promBin := depTool(t, "prometheus")
	dashboard := monDashboard(t)
	rules := monRules(t)
	alertsFile, err := filepath.Abs(depAlerts)
	if err != nil {
		t.Fatal(err)
	}

	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "origin") }))
	t.Cleanup(origin.Close)
	port := origin.Listener.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	// The identity provider is down until Prometheus has seen that the
	// proxy could not load its keys.
	idp := identitytest.New(t)
	idp.SetDown(true)
	pair := testcert.NewCA(t).Issue(t, dir, "proxy", time.Now().Add(7*24*time.Hour), "127.0.0.1")
	policyFile := filepath.Join(dir, "policy.hcl")
	policy := fmt.Sprintf(`entra {
  tenant_id = %[3]q
  audiences = ["api://azegress", %[4]q]
  authority = %[5]q
}

client "mi" {
  identity {
    object_ids = [%[6]q]
  }
  allow "origin" {
    hosts     = ["localhost"]
    addresses = ["127.0.0.0/8"]
    ports     = [%[1]d]
  }
}

client "local" {
  sources = ["127.0.0.0/8"]
  allow "origin" {
    hosts     = ["localhost"]
    addresses = ["127.0.0.0/8"]
    ports     = [%[1]d]
  }
  allow "renew-me" {
    hosts   = ["renew-me.example"]
    expires = %[2]q
  }
  allow "lapsed" {
    hosts   = ["lapsed.example"]
    expires = "2020-01-01"
  }
}
`, port, time.Now().Add(72*time.Hour).UTC().Format(time.RFC3339), idp.TenantID, identitytest.ClientID, idp.Authority(), identitytest.ObjectID)
	if err := os.WriteFile(policyFile, []byte(policy), 0o644); err != nil {
		t.Fatal(err)
	}

	px := monStartProxy(t, dir, policyFile, "-listen-tls", "127.0.0.1:0", "-tls-cert", pair.CertFile, "-tls-key", pair.KeyFile)
	prom := monStartPrometheus(t, promBin, dir, alertsFile, px.metrics)
	prom.wait(t, "the first scrape of azegress", func() (bool, string) {
		r, err := prom.query(`up{job="azegress"} == 1`)
		return err == nil && len(r) == 1, fmt.Sprint(r, err)
	})

	// No signing keys since start: AzegressIdentityKeysStale's condition.
	stale := monRuleNamed(t, rules, "AzegressIdentityKeysStale")
	prom.wait(t, "AzegressIdentityKeysStale's expression to return data while the keys cannot load", func() (bool, string) {
		r, err := prom.query(stale.expr)
		return err == nil && len(r) == 1, fmt.Sprint(r, err)
	})
	prom.wait(t, "AzegressIdentityKeysStale to be pending", func() (bool, string) {
		return prom.alertsActive(t, nil, stale.name)
	})
	idp.SetDown(false)

	// A little traffic: allowed plain HTTP and CONNECT, denied both ways
	// (407: under an entra block a refusal without credentials carries the
	// Basic challenge), a valid token twice (a cache miss, then a hit), a
	// token for another audience, and plain HTTP on the TLS listener.
	var clients []*http.Client
	proxyClient := func(user *url.Userinfo) *http.Client {
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(&url.URL{Scheme: "http", Host: px.listen, User: user})}, Timeout: nhLimit}
		clients = append(clients, c)
		return c
	}
	statusOf := func(c *http.Client, u string) int {
		t.Helper()
		resp, err := c.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	get := func(c *http.Client, u string, want int) {
		t.Helper()
		if got := statusOf(c, u); got != want {
			t.Fatalf("GET %s: %d, want %d", u, got, want)
		}
	}
	client := proxyClient(nil)
	withToken := proxyClient(url.UserPassword("azegress", idp.Mint(t, identitytest.Token{})))
	wrongAud := proxyClient(url.UserPassword("azegress", idp.Mint(t, identitytest.Token{Claims: map[string]any{"aud": "https://management.azure.com/"}})))
	allowed := fmt.Sprintf("localhost:%d", port)
	get(client, "http://"+allowed+"/", 200)
	get(client, "http://denied.example/", 407)
	if c, status := monTunnel(t, px.listen, "denied.example:443"); status != 407 {
		t.Fatalf("CONNECT denied.example:443: %d", status)
	} else {
		c.Close()
	}
	if c, status := monTunnel(t, px.listen, allowed); status != 200 {
		t.Fatalf("CONNECT %s: %d", allowed, status)
	} else {
		c.Close()
	}
	// The token's unknown key starts a refresh at once; one of the
	// proxy's own that failed while the provider was down may still be
	// under way, and the token joins it (503 keys_unavailable): retry.
	deadline := time.Now().Add(nhLimit)
	for code := statusOf(withToken, "http://"+allowed+"/"); code != 200; code = statusOf(withToken, "http://"+allowed+"/") {
		if code != 503 || time.Now().After(deadline) {
			t.Fatalf("GET %s with a valid token: %d, want 200 once the keys load", allowed, code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	get(withToken, "http://"+allowed+"/", 200)
	get(wrongAud, "http://"+allowed+"/", 407)
	if code := monPlainOnTLS(t, px.listenTLS); code != 400 {
		t.Fatalf("plain HTTP to the TLS listener: %d, want 400", code)
	}
	prom.wait(t, "a scrape that saw the first traffic", func() (bool, string) {
		r, err := prom.query(`sum(azegress_decisions_total) >= 7 and sum(azegress_tunnels_closed_total) >= 1 and ` +
			`sum(azegress_auth_results_total{result="refused", reason="wrong_audience"}) >= 1 and ` +
			`sum(azegress_identity_token_cache_hits_total) >= 1 and sum(azegress_tls_handshake_failures_total) >= 1`)
		return err == nil && len(r) == 1, fmt.Sprint(r, err)
	})

	// Spikes of denials and of refused credentials, after a scrape has
	// seen the series.
	for range 100 {
		get(client, "http://denied.example/", 407)
		get(wrongAud, "http://"+allowed+"/", 407)
	}
	for _, c := range clients {
		c.CloseIdleConnections()
	}

	// A broken policy: the reload is rejected, the old policy keeps serving.
	mark := px.log.mark()
	if err := os.WriteFile(policyFile, []byte("client \"local\" {\n  sources = [\"127.0.0.0/8\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := px.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	px.log.wait(t, mark, "the rejected reload", func(r nhRecord) bool {
		return r.str("msg") == "policy reload rejected; the previous policy keeps serving"
	})

	// Tunnels up to the connection cap: each holds two of the 128
	// descriptors, so more than 80% are in use; the next one is shed.
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for status := 200; status == 200; {
		if len(held) > 60 {
			t.Fatalf("%d tunnels open and none shed under -max-conns 50", len(held))
		}
		var c net.Conn
		c, status = monTunnel(t, px.listen, allowed)
		switch status {
		case 200:
			held = append(held, c)
		case 503:
			c.Close()
		default:
			t.Fatalf("CONNECT %s after %d tunnels: %d, want 200 or 503", allowed, len(held), status)
		}
	}
	if len(held) < 45 {
		t.Fatalf("shed after %d tunnels, want about 50 (-max-conns)", len(held))
	}

	// Every expression parses and, but for monQuiet's, returns data.
	var all []monExpr
	for _, r := range rules {
		all = append(all, monExpr{where: "alert " + r.name, expr: r.expr})
	}
	all = append(all, dashboard...)
	for _, e := range all {
		name := strings.TrimPrefix(e.where, "alert ")
		if why, ok := monQuiet[name]; ok {
			if _, err := prom.query(e.expr); err != nil {
				t.Errorf("%s does not parse: %v\n%s", e.where, err, e.expr)
			}
			t.Logf("%s: parsed; no data expected yet: %s", e.where, why)
			continue
		}
		prom.wait(t, e.where+" to return data", func() (bool, string) {
			r, err := prom.query(e.expr)
			if err != nil {
				t.Fatalf("%s: %v\n%s", e.where, err, e.expr)
			}
			if len(r) == 0 {
				return false, "no data from " + e.expr
			}
			// label_values skips series without the label: refused
			// credentials and malformed requests have no client block.
			if e.label != "" && !slices.ContainsFunc(r, func(s monSample) bool { return s.Metric[e.label] != "" }) {
				return false, fmt.Sprintf("no series with label %s from %s: %v", e.label, e.expr, r)
			}
			return true, ""
		})
	}

	// Prometheus evaluates every rule without error, and the alerts whose
	// condition the test made true are pending (their for has not passed).
	prom.wait(t, "the provoked alerts to be pending", func() (bool, string) {
		return prom.alertsActive(t, rules, slices.Collect(maps.Keys(monQuiet))...)
	})

	// Metrics the dashboard does not show would be invisible to operators.
	var shown strings.Builder
	for _, e := range dashboard {
		shown.WriteString(e.expr + "\n")
	}
	for _, name := range monFamilies(t, px.metrics) {
		if !strings.Contains(shown.String(), name) {
			t.Errorf("%s is exported but no panel of %s shows it", name, depDashboard)
		}
	}

	// The proxy stops: the scrape fails, and AzegressDown's condition holds.
	for _, c := range held {
		c.Close()
	}
	held = nil
	px.stop(t)
	down := monRuleNamed(t, rules, "AzegressDown")
	prom.wait(t, "AzegressDown's expression to return data after the proxy stopped", func() (bool, string) {
		r, err := prom.query(down.expr)
		return err == nil && len(r) == 1, fmt.Sprint(r, err)
	})
	prom.wait(t, "AzegressDown to be pending", func() (bool, string) {
		return prom.alertsActive(t, nil, "AzegressDown")
	})
}

// monProxy is an `azegress serve` started by monStartProxy.
type monProxy struct {
	cmd                        *exec.Cmd
	log                        *nhLog
	listen, listenTLS, metrics string
	cancel                     context.CancelFunc
	exited                     chan error
}

// monStartProxy runs azegress with a 128-descriptor limit (soft and hard,
// set by sh before it execs azegress), -max-conns 50 and the flags in extra.
func monStartProxy(t *testing.T, dir, policyFile string, extra ...string) *monProxy {
	t.Helper()
	ml, err := net.Listen("tcp", "127.0.0.1:0") // a free port for -metrics
	if err != nil {
		t.Fatal(err)
	}
	px := &monProxy{log: &nhLog{changed: make(chan struct{})}, metrics: ml.Addr().String()}
	ml.Close()
	var ctx context.Context
	ctx, px.cancel = context.WithCancel(context.Background())
	args := append([]string{"-c", `ulimit -n 128 && exec "$0" "$@"`, azegressBin, "serve",
		"-policy", policyFile, "-listen", "127.0.0.1:0", "-metrics", px.metrics, "-max-conns", "50", "-drain", "1s"}, extra...)
	px.cmd = exec.CommandContext(ctx, "/bin/sh", args...)
	px.cmd.Dir = dir
	px.cmd.Env = []string{"PATH=/usr/bin:/bin"}
	px.cmd.Stderr = px.log
	px.exited = startDaemon(t, "azegress serve", px.cmd, px.cancel, px.log.text)
	r := px.log.wait(t, 0, "azegress listening", func(r nhRecord) bool {
		return r.str("msg") == "azegress listening" || r.str("level") == "ERROR"
	})
	if r.str("msg") != "azegress listening" || r.num("nofile") != 128 {
		t.Fatalf("azegress did not start with 128 descriptors: %v", r)
	}
	px.listen, px.listenTLS = r.str("listen"), r.str("listen_tls")
	return px
}

// stop sends SIGTERM and waits for azegress to exit.
func (px *monProxy) stop(t *testing.T) {
	t.Helper()
	px.cancel()
	err := <-px.exited
	px.exited <- err // for startDaemon's cleanup
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("azegress serve: %v", err)
	}
}

// monTunnel sends CONNECT target to the proxy. On a 200 it sends a request
// through the tunnel and reads the answer, and returns the open connection.
func monTunnel(t *testing.T, proxyAddr, target string) (net.Conn, int) {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxyAddr, nhLimit)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(nhLimit))
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		t.Fatalf("CONNECT %s: %v", target, err)
	}
	if resp.StatusCode != 200 {
		return c, resp.StatusCode
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", target)
	inner, err := http.ReadResponse(br, nil)
	if err != nil {
		c.Close()
		t.Fatalf("GET through the tunnel to %s: %v", target, err)
	}
	io.Copy(io.Discard, inner.Body)
	inner.Body.Close()
	c.SetDeadline(time.Time{})
	return c, 200
}

// monPlainOnTLS sends a plain-HTTP request to the TLS listener at addr, a
// failed handshake, and returns the status of the plain-text answer.
func monPlainOnTLS(t *testing.T, addr string) int {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, nhLimit)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(nhLimit))
	fmt.Fprintf(c, "GET http://localhost/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("plain HTTP to the TLS listener %s: %v", addr, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// monFamilies returns the names of the azegress_ metric families the proxy
// at addr exports.
func monFamilies(t *testing.T, addr string) []string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var names []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 4 && f[1] == "TYPE" && strings.HasPrefix(f[2], "azegress_") {
			names = append(names, f[2])
		}
	}
	if len(names) == 0 {
		t.Fatalf("no azegress_ metrics on http://%s/metrics", addr)
	}
	return names
}

// monProm is a Prometheus started by monStartPrometheus.
type monProm struct {
	base string // http://host:port
}

// monStartPrometheus runs Prometheus with a 1s scrape of azegress at
// metricsAddr (job azegress), 1s rule evaluation and the alerting rules, its
// storage in dir, on a port it picks and logs.
func monStartPrometheus(t *testing.T, bin, dir, alertsFile, metricsAddr string) *monProm {
	t.Helper()
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: azegress
    static_configs:
      - targets: [%q]
`, alertsFile, metricsAddr)
	confFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "--config.file="+confFile, "--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address=127.0.0.1:0")
	log := &monLines{found: make(chan string, 1)}
	cmd.Stdout, cmd.Stderr = log, log
	exited := startDaemon(t, "prometheus", cmd, cancel, log.text)
	var addr string
	select {
	case addr = <-log.found:
	case err := <-exited:
		exited <- err
		t.Fatalf("prometheus exited: %v\n%s", err, log.text())
	case <-time.After(nhLimit):
		t.Fatalf("prometheus logged no listening address within %v\n%s", nhLimit, log.text())
	}
	p := &monProm{base: "http://" + addr}
	p.wait(t, "prometheus to be ready", func() (bool, string) {
		resp, err := http.Get(p.base + "/-/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return p
}

// monLines collects Prometheus's log and reports the address it listens on.
type monLines struct {
	mu    sync.Mutex
	buf   strings.Builder
	found chan string
	sent  bool
}

var promListening = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

func (l *monLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	if m := promListening.FindStringSubmatch(l.buf.String()); m != nil && !l.sent {
		l.sent = true
		l.found <- m[1]
	}
	return len(p), nil
}

func (l *monLines) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// monSample is one series of an instant query's result.
type monSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// query runs an instant query; an error is Prometheus's (a parse error, say).
func (p *monProm) query(expr string) ([]monSample, error) {
	resp, err := http.PostForm(p.base+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, errors.New(r.Error)
	}
	switch r.Data.ResultType {
	case "vector":
		var s []monSample
		err := json.Unmarshal(r.Data.Result, &s)
		return s, err
	case "scalar":
		var v [2]any
		err := json.Unmarshal(r.Data.Result, &v)
		return []monSample{{Value: v}}, err
	}
	return nil, fmt.Errorf("result type %s", r.Data.ResultType)
}

// alertsActive reports whether Prometheus evaluates every rule without
// error and every rule (of rules, less except; or only names, when rules is
// nil) has an active alert, pending or firing.
func (p *monProm) alertsActive(t *testing.T, rules []monRule, names ...string) (bool, string) {
	t.Helper()
	resp, err := http.Get(p.base + "/api/v1/rules?type=alert")
	if err != nil {
		return false, err.Error()
	}
	defer resp.Body.Close()
	var r struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Name, Health, LastError string
					Alerts                  []struct{ State string }
				}
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return false, err.Error()
	}
	want := map[string]bool{}
	if rules == nil {
		for _, n := range names {
			want[n] = true
		}
	}
	for _, rl := range rules {
		if !slices.Contains(names, rl.name) {
			want[rl.name] = true
		}
	}
	loaded := 0
	for _, g := range r.Data.Groups {
		for _, rl := range g.Rules {
			loaded++
			if rl.Health == "err" {
				t.Fatalf("prometheus fails to evaluate %s: %s", rl.Name, rl.LastError)
			}
			if len(rl.Alerts) > 0 {
				delete(want, rl.Name)
			}
		}
	}
	if loaded == 0 {
		return false, "prometheus has loaded no rules"
	}
	return len(want) == 0, fmt.Sprintf("no active alert for %v", slices.Sorted(maps.Keys(want)))
}

// wait polls cond until it holds, failing the test after 30s with cond's
// last word: a bound on Prometheus's scrape and evaluation, never a pass
// condition.
func (p *monProm) wait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %s", what, why)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
