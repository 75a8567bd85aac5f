package policy

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy/internal/policytest"
	"github.com/hashicorp/hcl/v2"
)

// lintNow is the clock of the lint golden files.
var lintNow = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// TestLintGolden lints each testdata/lint/NAME.hcl at lintNow and compares
// the warnings with NAME.golden. Run with -update to rewrite them.
func TestLintGolden(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/lint/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("found %d lint cases, want at least 6", len(files))
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".hcl")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p, diags := LoadFile(file)
			if diags.HasErrors() {
				t.Fatalf("does not load:\n%s", FormatDiagnostics(diags))
			}
			lint := Lint(p, lintNow)
			for _, d := range lint {
				if d.Severity != hcl.DiagWarning || d.Subject == nil {
					t.Errorf("not a warning with a subject: %s", FormatDiagnostics(hcl.Diagnostics{d}))
				}
			}
			if len(lint) == 0 {
				t.Errorf("no warnings")
			}
			policytest.Golden(t, strings.TrimSuffix(file, ".hcl")+".golden", []byte(FormatDiagnostics(lint)))
		})
	}
}

// TestLintPresets requires the shipped presets to lint clean: they are
// what users copy.
func TestLintPresets(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../policies/*.hcl")
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		p, diags := LoadFile(file)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", file, FormatDiagnostics(diags))
		}
		if lint := Lint(p, lintNow); len(lint) > 0 {
			t.Errorf("%s:\n%s", file, FormatDiagnostics(lint))
		}
	}
}

// TestLintExpiryBoundaries pins the expiry warnings to the clock: nothing
// before the warning window, "expires soon" inside it, "expired" from the
// expiry instant on.
func TestLintExpiryBoundaries(t *testing.T) {
	t.Parallel()
	p := loadForTest(t, `client "a" {
  sources = ["10.0.0.0/8"]
  allow "tmp" {
    hosts   = ["tmp.example.com"]
    expires = "2026-12-31"
  }
}
`)
	end := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		now  time.Time
		want string
	}{
		{end.Add(-ExpiryWarning - time.Second), ""},
		{end.Add(-ExpiryWarning), "Rule expires soon"},
		{end.Add(-time.Second), "Rule expires soon"},
		{end, "Expired rule"},
		{end.AddDate(1, 0, 0), "Expired rule"},
	} {
		var got string
		if d := Lint(p, tt.now); len(d) == 1 {
			got = d[0].Summary
		} else if len(d) > 1 {
			got = FormatDiagnostics(d)
		}
		if got != tt.want {
			t.Errorf("at %s: got %q, want %q", tt.now.Format(time.RFC3339), got, tt.want)
		}
	}
}

// TestLintFindings checks that every warning says what it is about
// (its Extra), so that tools can tie it to a rule and host.
func TestLintFindings(t *testing.T) {
	t.Parallel()
	p, diags := LoadFile("testdata/lint/multi-tenant.hcl")
	if diags.HasErrors() {
		t.Fatal(FormatDiagnostics(diags))
	}
	files, _ := filepath.Glob("testdata/lint/*.hcl")
	for _, file := range files {
		q, _ := LoadFile(file)
		for _, d := range Lint(q, lintNow) {
			f, ok := d.Extra.(*LintFinding)
			if !ok || f.Check == "" || (f.Rule != nil && f.Client == nil) {
				t.Errorf("%s: warning without a finding: %s", file, FormatDiagnostics(hcl.Diagnostics{d}))
			}
		}
	}
	var found bool
	for _, d := range Lint(p, lintNow) {
		f := d.Extra.(*LintFinding)
		if f.Check == LintMultiTenantWildcard {
			found = true
			if f.Rule == nil || len(f.Hosts) != 1 || !strings.HasPrefix(f.Hosts[0], "*.") || !slices.Contains(f.Rule.Hosts, f.Hosts[0]) {
				t.Errorf("multi-tenant finding %+v does not name its rule and wildcard", f)
			}
		}
	}
	if !found {
		t.Errorf("no %s finding in testdata/lint/multi-tenant.hcl", LintMultiTenantWildcard)
	}
}

// TestCoverCandidates: the patterns coverCandidates lists for p are exactly
// those patternCovers says cover p, over every pattern of up to three labels
// from a small alphabet, plain and wildcard (the lint's index relies on it).
func TestCoverCandidates(t *testing.T) {
	var all []string
	var grow func(name string, depth int)
	grow = func(name string, depth int) {
		if name != "" {
			all = append(all, name, "*."+name)
		}
		if depth == 0 {
			return
		}
		for _, l := range []string{"a", "b", "ab"} {
			if name == "" {
				grow(l, depth-1)
			} else {
				grow(l+"."+name, depth-1)
			}
		}
	}
	grow("", 3)
	for _, p := range all {
		cands := coverCandidates(p)
		for _, q := range all {
			if got, want := slices.Contains(cands, q), patternCovers(q, p); got != want {
				t.Fatalf("coverCandidates(%q) = %q: contains %q is %v, patternCovers says %v", p, cands, q, got, want)
			}
		}
	}
}

// BenchmarkLint20kRules lints a 20,000-rule block in which every rule has
// peers to compare with (exact names and wildcards over them).
func BenchmarkLint20kRules(b *testing.B) {
	p := loadForTest(b, benchPolicy(20_000))
	now := time.Now()
	for b.Loop() {
		Lint(p, now)
	}
}
