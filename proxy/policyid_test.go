package proxy

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/azegress/azegress/policy"
)

// TestPolicyIdentity checks that every record naming the policy carries
// its hash (decisions, reloads) and that azegress_policy_info has one
// series, the served policy's, across reloads.
func TestPolicyIdentity(t *testing.T) {
	t.Parallel()
	_, port := httpOrigin(t, "origin")
	tp := startProxy(t, basePolicy(port, ""), loopbackNames("allowed.example.com"))
	first := tp.Policy().SHA256()
	checkPolicyInfo(t, tp, first)

	// One of each decision record: deny, tunnel closed, request.
	if resp, _ := tp.connect("", "denied.example.com:443"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("denied CONNECT: %d", resp.StatusCode)
	}
	c, _ := tp.openTunnel(fmt.Sprintf("allowed.example.com:%d", port))
	c.Close()
	resp, err := tp.client("").Get(fmt.Sprintf("http://allowed.example.com:%d/", port))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	waitFor(t, func() bool { return len(tp.logs.records(msgTunnelClosed)) > 0 }, "a tunnel closed record")
	for _, msg := range []string{"deny", msgTunnelClosed, msgRequest} {
		if recs := tp.logs.records(msg); len(recs) == 0 || recs[0][keyPolicySHA] != first {
			t.Errorf("%q records %v, want %s = %s", msg, recs, keyPolicySHA, first)
		}
	}

	// A rejected reload names the policy that keeps serving.
	bad := func() (*policy.Policy, hcl.Diagnostics) {
		return policy.Load("bad.hcl", []byte(`client "x" { sources = ["not-a-cidr"] }`))
	}
	if tp.Reload(bad) {
		t.Fatal("a bad policy was applied")
	}
	if rec := tp.lastRecord("policy reload rejected; the previous policy keeps serving"); rec[keyPolicySHA] != first {
		t.Errorf("reload rejected record %v, want %s = %s", rec, keyPolicySHA, first)
	}
	checkPolicyInfo(t, tp, first)

	// A new policy replaces the series; a reformatted copy of it keeps it.
	next := basePolicy(port, `  allow "more" { hosts = ["more.example.com"] }`)
	for _, src := range []string{next, strings.ReplaceAll(next, "  ", "\t")} {
		if !tp.Reload(func() (*policy.Policy, hcl.Diagnostics) { return policy.Load("next.hcl", []byte(src)) }) {
			t.Fatal("a good policy was rejected")
		}
		second := tp.Policy().SHA256()
		if second == first {
			t.Fatal("a policy with another rule has the same hash")
		}
		if rec := tp.lastRecord("policy reloaded"); rec[keyPolicySHA] != second {
			t.Errorf("policy reloaded record %v, want %s = %s", rec, keyPolicySHA, second)
		}
		checkPolicyInfo(t, tp, second)
	}
}

// checkPolicyInfo fails unless azegress_policy_info has exactly one
// series, 1 for sha.
func checkPolicyInfo(t *testing.T, tp *testProxy, sha string) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP azegress_policy_info 1 for the policy being served, labelled with the SHA-256 of its canonical compiled form (azegress check prints it; decision records carry it as policy_sha256).
# TYPE azegress_policy_info gauge
azegress_policy_info{sha256=%q} 1
`, sha)
	if err := testutil.GatherAndCompare(tp.reg, strings.NewReader(want), "azegress_policy_info"); err != nil {
		t.Error(err)
	}
}
