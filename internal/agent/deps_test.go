package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the agent a client of the token source and the host
// parsers: it forwards, it does not decide, so it may not depend on the
// proxy, the policy compiler, goproxy or Prometheus.
func TestDeps(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"azegress/proxy", "azegress/policy/learn", "azegress/policy/azfw", "elazarl/goproxy", "prometheus"} {
			if strings.Contains(dep, bad) {
				t.Errorf("internal/agent depends on %s", dep)
			}
		}
		if dep == "github.com/azegress/azegress/policy" {
			t.Errorf("internal/agent depends on the policy compiler")
		}
	}
}
