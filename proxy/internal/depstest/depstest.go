package depstest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/azegress/azegress/"

// forbidden are packages outside the module that a protocol piece has no
// business depending on.
var forbidden = []string{"github.com/elazarl/goproxy", "github.com/prometheus/"}

// Leaf fails t if the package in the test's directory depends, directly or
// not, on any package of the module but itself, or on goproxy or
// Prometheus.
func Leaf(t *testing.T) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-f", "{{.ImportPath}}\n{{join .Deps \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	self, deps, ok := strings.Cut(string(out), "\n")
	if !ok {
		t.Fatalf("go list: unexpected output %q", out)
	}
	for _, dep := range strings.Fields(deps) {
		if strings.HasPrefix(dep, module) && dep != self {
			t.Errorf("%s depends on %s; it may depend on nothing of the module", self, dep)
		}
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("%s depends on %s", self, dep)
			}
		}
	}
}
