package proxy

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/identity/identitytest"
)

// Both reload results are exported from the start: a counter series that
// first appears at 1 has no increase in PromQL, so the first rejected reload
// would not show on the dashboard's reload panel.
func TestReloadResultsStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	want := `
# HELP azegress_policy_reloads_total Policy reload attempts by result (success, failure).
# TYPE azegress_policy_reloads_total counter
azegress_policy_reloads_total{result="failure"} 0
azegress_policy_reloads_total{result="success"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "azegress_policy_reloads_total"); err != nil {
		t.Error(err)
	}
}

// Every way a tunnel ends, both certificate reload results and every TLS
// handshake failure reason are exported at 0 from the start too, for the
// same reason: the first idle timeout or failed handshake must show in
// increase().
func TestLabelSetsStartAtZero(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	newTLSMetrics(reg)
	for _, tc := range []struct {
		name   string
		series []string
	}{
		{"azegress_tunnels_closed_total", []string{`reason="canceled"`, `reason="eof"`, `reason="error"`, `reason="idle_timeout"`}},
		{"azegress_tls_cert_reloads_total", []string{`result="failure"`, `result="success"`}},
		{"azegress_tls_handshake_failures_total", []string{`reason="client_alert"`, `reason="closed"`, `reason="not_tls"`, `reason="protocol"`, `reason="timeout"`}},
	} {
		n, err := testutil.GatherAndCount(reg, tc.name)
		if err != nil || n != len(tc.series) {
			t.Errorf("%s: %d series (%v), want %d: %s", tc.name, n, err, len(tc.series), strings.Join(tc.series, ", "))
		}
	}
}

// With an entra block, azegress_auth_results_total has every result and
// reason at 0, at start and after a reload that adds the block, so that
// increase() sees the first refused credential; without one it has none.
func TestAuthResultsStartAtZero(t *testing.T) {
	t.Parallel()
	idp := identitytest.New(t)
	want := []string{"missing/missing", "ok/valid"}
	for _, r := range []string{"bad_signature", "delegated_token", "expired", "header_too_large", "identity_source", "identity_unknown",
		"keys_unavailable", "malformed", "no_oid", "not_yet_valid", "unknown_key", "wrong_audience", "wrong_issuer", "wrong_tenant"} {
		want = append(want, "refused/"+r)
	}
	slices.Sort(want)
	// series returns the counter's result/reason pairs, each at 0, or
	// names one that is not.
	series := func(reg *prometheus.Registry) []string {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, mf := range mfs {
			if mf.GetName() != "azegress_auth_results_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				s := l["result"] + "/" + l["reason"]
				if v := m.GetCounter().GetValue(); v != 0 {
					s += fmt.Sprintf("=%v", v)
				}
				got = append(got, s)
			}
		}
		slices.Sort(got)
		return got
	}

	tp := startProxy(t, basePolicy(443, ""), nil)
	if got := series(tp.reg); len(got) != 0 {
		t.Errorf("without an entra block: %v, want no series", got)
	}
	if err := tp.SetPolicy(loadPolicy(t, identityPolicy(idp, 443, ""))); err != nil {
		t.Fatal(err)
	}
	if got := series(tp.reg); !slices.Equal(got, want) {
		t.Errorf("after a reload that adds an entra block:\n got %v\nwant %v", got, want)
	}

	tp = startIdentityProxy(t, identityPolicy(idp, 443, ""))
	if got := series(tp.reg); !slices.Equal(got, want) {
		t.Errorf("with an entra block from the start:\n got %v\nwant %v", got, want)
	}
}

// countAllowed counts every allowed decision under its rule's and kind's
// labels: the first of a generation through the vectors, the next through
// the counters it keeps, and a new generation's afresh into the same
// series.
func TestCountAllowed(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	fl := openingFlow(t, "")
	if _, d := applyRules(fl); d != nil || fl.rule == nil {
		t.Fatalf("the flow is not allowed by a rule: %v", d)
	}
	http := *fl
	http.kind = kindHTTP
	fl.gen.countAllowed(m, fl)
	fl.gen.countAllowed(m, fl)
	fl.gen.countAllowed(m, &http)
	next := *fl
	next.gen = &generation{pol: fl.gen.pol}
	next.gen.countAllowed(m, &next)

	want := fmt.Sprintf(`
# HELP azegress_decisions_total Policy decisions by request kind (connect, http), decision (allow, deny, would_deny), reason, mode and client block.
# TYPE azegress_decisions_total counter
azegress_decisions_total{client_block=%[1]q,decision="allow",kind="connect",mode="enforce",reason="allowed"} 3
azegress_decisions_total{client_block=%[1]q,decision="allow",kind="http",mode="enforce",reason="allowed"} 1
# HELP azegress_rule_hits_total Requests allowed by each rule.
# TYPE azegress_rule_hits_total counter
azegress_rule_hits_total{client_block=%[1]q,rule=%[2]q} 4
`, fl.block.Name, fl.rule.Name)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "azegress_decisions_total", "azegress_rule_hits_total"); err != nil {
		t.Error(err)
	}
}
