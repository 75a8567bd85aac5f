package proxy

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
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
