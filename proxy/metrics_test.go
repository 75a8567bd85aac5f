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
