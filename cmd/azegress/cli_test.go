package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/azegress/azegress/policy"
)

func runCLI(args ...string) (stdout, stderr string, code int) {
	var o, e strings.Builder
	code = run(args, &o, &e)
	return o.String(), e.String(), code
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.hcl")
	if err := os.WriteFile(bad, []byte("client \"a\" {\n  sources = [\"10.0.0.0/8\"]\n  allow \"x\" {\n    hosts = [\"a.*.com\"]\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	def, diags := policy.LoadFile("../../policies/default.hcl")
	if diags.HasErrors() {
		t.Fatal(policy.FormatDiagnostics(diags))
	}
	for _, tt := range []struct {
		name       string
		args       []string
		code       int
		out, errIn string
	}{
		{"shipped presets", []string{"check", "../../policies"}, 0, "policies/default.hcl: ok (1 client blocks, 2 rules) sha256:" + def.SHA256() + "\n", ""},
		{"bad policy", []string{"check", bad}, 1, "", bad + ":4:14: Invalid host pattern"},
		{"missing file", []string{"check", filepath.Join(dir, "nope.hcl")}, 1, "", "nope.hcl"},
		{"no args", []string{"check"}, 2, "", "usage: azegress check"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out, errs, code := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.out) || !strings.Contains(errs, tt.errIn) {
				t.Fatalf("exit %d (want %d)\nstdout: %s\nstderr: %s", code, tt.code, out, errs)
			}
		})
	}
}

// TestVersion checks azegress version against what the build recorded,
// and the release set at link time (-X main.version) when there is one.
func TestVersion(t *testing.T) {
	want := "azegress devel\ngo version " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + "\n"
	if out, errs, code := runCLI("version"); code != 0 || !strings.HasPrefix(out, want) || errs != "" {
		t.Errorf("azegress version: exit %d\n%s%s\nwant it to start with\n%s", code, out, errs, want)
	}
	if _, errs, code := runCLI("version", "extra"); code != 2 || !strings.Contains(errs, "usage: azegress version") {
		t.Errorf("azegress version extra: exit %d, %s", code, errs)
	}
	version = "v1.2.3"
	defer func() { version = "" }()
	if out, _, _ := runCLI("--version"); !strings.HasPrefix(out, "azegress v1.2.3\n") {
		t.Errorf("with -X main.version=v1.2.3: %s", out)
	}
}

func TestExplain(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"explain", "-no-dns", "management.azure.com"}, 0, []string{"decision: allow", `rule:     "arm" at embedded:policies/default.hcl:`}},
		{[]string{"explain", "-no-dns", "MANAGEMENT.azure.com.:443"}, 0, []string{"decision: allow", "target:   management.azure.com:443"}},
		{[]string{"explain", "-no-dns", "example.com:80"}, 1, []string{"decision: deny", "reason:   no_rule", `hosts = ["example.com"]`, "ports = [80]"}},
		{[]string{"explain", "-no-dns", "-client", "10.9.9.9", "management.azure.com"}, 1, []string{"reason:   client_unknown", `sources = ["10.9.9.9/32"]`}},
		{[]string{"explain", "-no-dns", "169.254.169.254:80"}, 1, []string{"NO_PROXY=169.254.169.254"}},
		{[]string{"explain", "-no-dns", "a..b"}, 2, nil},
	} {
		t.Run(strings.Join(tt.args[1:], " "), func(t *testing.T) {
			out, errs, code := runCLI(tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestTestCommand(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cases string
		code  int
		out   []string
	}{
		{"testdata/cases.hcl", 0, []string{"4 passed, 0 failed"}},
		{"testdata/cases-failing.hcl", 1, []string{
			`FAIL wrong expectation (testdata/cases-failing.hcl:1:1): management.azure.com:80 from 10.0.1.5 (client block "workloads"): expected allow, got deny: no_rule`,
			`FAIL wrong rule (testdata/cases-failing.hcl:7:1): management.azure.com:443 from 10.0.1.5 (client block "workloads"): expected allow by rule "key-vault", got allow by rule "arm" (testdata/policy.hcl:6:3)`,
			"0 passed, 2 failed",
		}},
		{"testdata/cases-invalid.hcl", 2, nil},
	} {
		t.Run(tt.cases, func(t *testing.T) {
			out, errs, code := runCLI("test", "testdata/policy.hcl", tt.cases)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, out, errs)
			}
			for _, w := range tt.out {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tt.code == 2 && !strings.Contains(errs, "testdata/cases-invalid.hcl:2:12: Invalid client") {
				t.Errorf("diagnostics: %s", errs)
			}
		})
	}
}
