package netaudit

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDeps keeps the audit beside the review kit: of the module it
// imports the policy packages only (not the proxy), and it does not pull
// in the proxy's libraries.
func TestDeps(t *testing.T) {
	t.Parallel()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const module = "github.com/azegress/azegress/"
	for _, dep := range strings.Fields(string(out)) {
		switch {
		case dep == module+"internal/netaudit", strings.HasPrefix(dep, module+"policy"):
		case strings.HasPrefix(dep, module), strings.HasPrefix(dep, "github.com/elazarl/goproxy"), strings.HasPrefix(dep, "github.com/prometheus/"):
			t.Errorf("internal/netaudit depends on %s", dep)
		}
	}
}
