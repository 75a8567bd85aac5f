package depstest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/azegress/azegress/"

// forbidden are packages outside the module that no package checked here
// has any business depending on: the proxy's own libraries.
var forbidden = []string{"github.com/elazarl/goproxy", "github.com/prometheus/"}

// Leaf fails t if the package in the test's directory depends, directly or
// not, on any package of the module but itself, or on goproxy or
// Prometheus.
func Leaf(t *testing.T) {
	t.Helper()
	Only(t)
}

// Only fails t if the package in the test's directory depends, directly or
// not, on a package of the module that is neither itself nor in allowed
// (paths relative to the module; "policy/..." is policy and every package
// below it), or on goproxy or Prometheus.
func Only(t *testing.T, allowed ...string) {
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
		if rel, ok := strings.CutPrefix(dep, module); ok && dep != self && !allows(allowed, rel) {
			t.Errorf("%s depends on %s; of the module it may depend on %s", self, dep, allowedText(allowed))
		}
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("%s depends on %s", self, dep)
			}
		}
	}
}

// allows reports whether rel, a package path relative to the module, is
// one of allowed or below an allowed "dir/...".
func allows(allowed []string, rel string) bool {
	for _, a := range allowed {
		if dir, ok := strings.CutSuffix(a, "/..."); ok {
			if rel == dir || strings.HasPrefix(rel, dir+"/") {
				return true
			}
		} else if rel == a {
			return true
		}
	}
	return false
}

func allowedText(allowed []string) string {
	if len(allowed) == 0 {
		return "nothing"
	}
	return "only " + strings.Join(allowed, ", ")
}
