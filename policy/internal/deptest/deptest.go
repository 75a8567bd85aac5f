// Package deptest checks, in tests, that a policy package keeps to its
// place in the layering described in policy/doc.go: each package imports
// only the module's packages below it, and none of them the data plane,
// goproxy or Prometheus.
package deptest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/azegress/azegress/"

// forbidden are the packages no policy package may depend on, directly or
// not: policy is a pure library.
var forbidden = []string{"github.com/elazarl/goproxy", "github.com/prometheus/", module + "proxy"}

// Check fails t if the package in the test's directory depends on a
// package of the module other than itself and allowed (paths relative to
// the module, like "policy/host"), or on a forbidden package.
func Check(t *testing.T, allowed ...string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-f", "{{.ImportPath}}\n{{range .Deps}}{{.}}\n{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	self := deps[0]
	for _, dep := range deps[1:] {
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("%s depends on %s", self, dep)
			}
		}
		if rel, ok := strings.CutPrefix(dep, module); ok && !slices.Contains(allowed, rel) && !slices.Contains(forbidden, dep) {
			t.Errorf("%s depends on %s; of the module it may import %s", self, dep, allowedText(allowed))
		}
	}
}

func allowedText(allowed []string) string {
	if len(allowed) == 0 {
		return "nothing"
	}
	return "only " + strings.Join(allowed, ", ")
}
