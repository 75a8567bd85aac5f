package proxy

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/policy"
)

const denyTestPolicy = `client "local" {
  sources = ["127.0.0.1"]

  allow "example" {
    hosts = ["*.example.com"]
    ports = [80, 443]
  }
  deny "no-admin" {
    hosts = ["admin.example.com"]
    ports = [80, 443]
  }
}

client "learner" {
  sources = ["127.0.0.2"]
  mode    = "learn"

  deny "no-admin" {
    hosts = ["admin.example.com"]
  }
}
`

// TestDenyRuleRefuses sends CONNECT and plain-HTTP requests that a deny
// rule matches: each is refused with 403 and reason deny_rule, before any
// dial, and the body and the log record name the rule and where it is. A
// deny rule refuses in learn mode too.
func TestDenyRuleRefuses(t *testing.T) {
	t.Parallel()
	tp := startProxy(t, denyTestPolicy, loopbackNames("admin.example.com", "www.example.com"))
	const at = `deny rule "no-admin" (test.hcl:8:3)`

	resp, body := tp.connect("127.0.0.1", "admin.example.com:443")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Azegress-Reason") != ReasonDenyRule {
		t.Fatalf("CONNECT: got %s reason %q, want 403 deny_rule", resp.Status, resp.Header.Get("X-Azegress-Reason"))
	}
	if !strings.Contains(body, at) || !strings.Contains(body, "reason:  deny_rule: ") {
		t.Errorf("CONNECT body does not name the rule:\n%s", body)
	}
	rec := tp.lastDeny()
	if rec[keyReason] != ReasonDenyRule || rec[keyRule] != "no-admin" || !strings.Contains(fmt.Sprint(rec[keyDetail]), at) {
		t.Errorf("deny record: %v", rec)
	}

	resp, _, _ = tp.raw("127.0.0.1", "GET http://admin.example.com/ HTTP/1.1\r\nHost: admin.example.com\r\n\r\n")
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), at) {
		t.Errorf("plain HTTP: got %s:\n%s", resp.Status, b)
	}

	resp, body = tp.connect("127.0.0.2", "admin.example.com:443")
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get("X-Azegress-Reason") != ReasonDenyRule {
		t.Errorf("learn mode: got %s reason %q, want 403 deny_rule:\n%s", resp.Status, resp.Header.Get("X-Azegress-Reason"), body)
	}
	tp.noDial()

	// A name the deny rule does not match gets past the policy, to the
	// destination guard (it resolves to loopback here).
	if resp, _ := tp.connect("127.0.0.1", "www.example.com:443"); resp.Header.Get("X-Azegress-Reason") != ReasonBlockedAddress {
		t.Errorf("www.example.com: got %s %q, want it past the policy (blocked_address)", resp.Status, resp.Header.Get("X-Azegress-Reason"))
	}

	for _, line := range []string{
		`azegress_decisions_total{client_block="learner",decision="deny",kind="connect",mode="learn",reason="deny_rule"} 1`,
		`azegress_decisions_total{client_block="local",decision="deny",kind="connect",mode="enforce",reason="deny_rule"} 1`,
		`azegress_decisions_total{client_block="local",decision="deny",kind="http",mode="enforce",reason="deny_rule"} 1`,
	} {
		if !strings.Contains(gatherText(t, tp, "azegress_decisions_total"), line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}

// gatherText returns the exposition text of the named metric.
func gatherText(t *testing.T, tp *testProxy, name string) string {
	t.Helper()
	mfs, err := tp.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			fmt.Fprintf(&b, "%s{%s} %g\n", name, strings.Join(labels, ","), v)
		}
	}
	return b.String()
}

// TestExplainDenyRule checks that explain names the deny rule, where it
// is, and what to do.
func TestExplainDenyRule(t *testing.T) {
	t.Parallel()
	p := loadPolicy(t, denyTestPolicy)
	e, err := Explain(context.Background(), p, netip.MustParseAddr("127.0.0.1"), "admin.example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.Decision != "deny" || e.Reason != ReasonDenyRule || e.DenyRule == nil || e.DenyRule.Name != "no-admin" || e.Rule != nil {
		t.Fatalf("got %+v", e)
	}
	if want := `deny rule "no-admin" (test.hcl:8:3) in client block "local" matches admin.example.com:443`; e.Detail != want {
		t.Errorf("detail %q, want %q", e.Detail, want)
	}
	if !strings.Contains(e.Fix, `narrow or remove deny rule "no-admin" in client "local" at test.hcl:8:3`) {
		t.Errorf("fix: %q", e.Fix)
	}
	e, _ = Explain(context.Background(), p, netip.MustParseAddr("127.0.0.2"), "admin.example.com", nil)
	if e.Decision != "deny" || e.Reason != ReasonDenyRule {
		t.Errorf("learn mode: got %s %s, want deny deny_rule", e.Decision, e.Reason)
	}
	e, _ = Explain(context.Background(), p, netip.MustParseAddr("127.0.0.2"), "www.example.com", nil)
	if e.Decision != "would_deny" || e.DenyRule != nil {
		t.Errorf("learn mode without a deny rule: got %s", e.Decision)
	}
}

// TestExpiryWarnings loads a policy with rules that expired, expire within
// a week and expire later: the load logs a warning for the first two, the
// gauges count them, an expired rule no longer allows, and a reload to a
// policy without expiry clears the gauges.
func TestExpiryWarnings(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	src := fmt.Sprintf(`client "local" {
  sources = ["127.0.0.1"]

  allow "old" {
    hosts   = ["old.example.com"]
    expires = %q
  }
  allow "soon" {
    hosts   = ["soon.example.com"]
    expires = %q
  }
  deny "freeze" {
    hosts   = ["frozen.example.com"]
    expires = %q
  }
  allow "later" {
    hosts   = ["later.example.com"]
    expires = %q
  }
}
`, now.Add(-24*time.Hour).Format(time.RFC3339), now.Add(3*24*time.Hour).Format(time.RFC3339),
		now.Add(5*24*time.Hour).Format(time.RFC3339), now.Add(30*24*time.Hour).Format(time.RFC3339))
	tp := startProxy(t, src, loopbackNames("old.example.com"))

	if recs := tp.logs.records("rule expired"); len(recs) != 1 || recs[0][keyRule] != "old" || recs[0][keyExpires] == nil {
		t.Errorf("rule expired records: %v", recs)
	}
	soon := tp.logs.records("rule expires soon")
	var names []string
	for _, r := range soon {
		names = append(names, fmt.Sprint(r[keyRule]))
	}
	if strings.Join(names, ",") != "soon,freeze" {
		t.Errorf("rule expires soon records for %v, want soon,freeze", names)
	}
	want := `
# HELP azegress_policy_rules_expired Rules (allow and deny) of the served policy whose expires has passed; they no longer match.
# TYPE azegress_policy_rules_expired gauge
azegress_policy_rules_expired 1
# HELP azegress_policy_rules_expiring Rules (allow and deny) of the served policy whose expires falls within the next 7 days.
# TYPE azegress_policy_rules_expiring gauge
azegress_policy_rules_expiring 2
`
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "azegress_policy_rules_expired", "azegress_policy_rules_expiring"); err != nil {
		t.Error(err)
	}
	if resp, _ := tp.connect("127.0.0.1", "old.example.com:443"); resp.Header.Get("X-Azegress-Reason") != ReasonNoRule {
		t.Errorf("expired rule: got %s %q, want no_rule", resp.Status, resp.Header.Get("X-Azegress-Reason"))
	}

	if !tp.Reload(func() (*policy.Policy, hcl.Diagnostics) { return policy.Load("new.hcl", []byte(basePolicy(443, ""))) }) {
		t.Fatal("reload failed")
	}
	want = strings.ReplaceAll(strings.ReplaceAll(want, "expired 1", "expired 0"), "expiring 2", "expiring 0")
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "azegress_policy_rules_expired", "azegress_policy_rules_expiring"); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(tp.reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric lint: %s: %s", p.Metric, p.Text)
	}
}
