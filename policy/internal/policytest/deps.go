package policytest

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

// Deps fails t if the package in the test's directory imports a package of
// the module other than allowed (paths relative to the module, like
// "policy/host"), or depends, directly or not, on a forbidden package:
// each policy package imports only the packages below it (policy/doc.go),
// and none depends on the data plane, goproxy or Prometheus.
func Deps(t *testing.T, allowed ...string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go tool not found")
	}
	out, err := exec.Command(goTool, "list", "-f", "{{.ImportPath}}\n{{join .Imports \" \"}}\n{{join .Deps \" \"}}", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	lines := strings.Split(string(out), "\n")
	if len(lines) < 3 {
		t.Fatalf("go list: unexpected output %q", out)
	}
	self := lines[0]
	for _, dep := range strings.Fields(lines[2]) {
		for _, bad := range forbidden {
			if strings.HasPrefix(dep, bad) {
				t.Errorf("%s depends on %s", self, dep)
			}
		}
	}
	for _, imp := range strings.Fields(lines[1]) {
		if rel, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(allowed, rel) {
			t.Errorf("%s imports %s; of the module it may import %s", self, imp, allowedText(allowed))
		}
	}
}

func allowedText(allowed []string) string {
	if len(allowed) == 0 {
		return "nothing"
	}
	return "only " + strings.Join(allowed, ", ")
}
