package proxy

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/learn"
)

// In learning mode what the policy would deny goes through and is recorded
// as would_deny; the destination guard still refuses IMDS and private
// ranges, because learning must never open them.
func TestLearningMode(t *testing.T) {
	t.Parallel()
	origin, port := echoOrigin(t)
	res := newResolver(map[string]string{
		"unlisted.example.com": "203.0.113.20",
		"listed.example.com":   "203.0.113.21",
		"imds.example.com":     "169.254.169.254",
	})
	rec := learn.NewRecorder(nil)
	var tp *testProxy
	tp = startProxy(t, fmt.Sprintf(`
mode = "learn"
client "local" {
  sources = ["127.0.0.0/8"]
  allow "listed" {
    hosts = ["listed.example.com"]
    ports = [%d]
  }
}`, port), res, redirectDials(&tp, origin), func(c *Config) { c.Observer = rec })

	c, br := tp.openTunnel(fmt.Sprintf("unlisted.example.com:%d", port))
	echoLine(t, c, br, "learning lets it through")
	c.Close()
	<-tp.dials
	c, br = tp.openTunnel(fmt.Sprintf("listed.example.com:%d", port))
	echoLine(t, c, br, "allowed anyway")
	c.Close()
	<-tp.dials
	if resp, _ := tp.connect("", fmt.Sprintf("imds.example.com:%d", port)); resp.StatusCode != 403 {
		t.Fatalf("learning mode opened a guarded address: %d", resp.StatusCode)
	}
	tp.noDial()

	if recs := tp.logs.records("would deny"); len(recs) != 1 || recs[0]["host"] != "unlisted.example.com" || recs[0]["mode"] != "learn" {
		t.Errorf("would deny records: %v", recs)
	}
	if got := testutil.ToFloat64(tp.m.decisions.WithLabelValues("connect", "would_deny", "no_rule", "learn", "local")); got != 1 {
		t.Errorf("would_deny counter = %v", got)
	}
	snap := rec.Snapshot()
	want := map[string]policy.Verdict{
		"unlisted.example.com": policy.VerdictWouldDeny,
		"listed.example.com":   policy.VerdictAllow,
		"imds.example.com":     policy.VerdictDeny,
	}
	if len(snap) != len(want) {
		t.Fatalf("observations %+v", snap)
	}
	for _, o := range snap {
		if want[o.Host] != o.Decision || o.ClientBlock != "local" || o.Mode != "learn" || o.Count != 1 {
			t.Errorf("observation %+v", o)
		}
	}
}
