package identity

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps identity a leaf the proxy calls: neither it nor its test
// kit may depend on the proxy, the policy, goproxy or Prometheus.
func TestDeps(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	cmd := exec.Command(goTool, "list", "-deps", "./identity/...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps ./identity/...: %v", err)
	}
	for _, dep := range strings.Fields(string(out)) {
		for _, bad := range []string{"azegress/proxy", "azegress/policy", "elazarl/goproxy", "prometheus"} {
			if strings.Contains(dep, bad) {
				t.Errorf("identity depends on %s", dep)
			}
		}
	}
}
