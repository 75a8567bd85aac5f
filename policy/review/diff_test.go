package review

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/azegress/azegress/policy"
	"github.com/azegress/azegress/policy/internal/policytest"
)

// testAt is the instant the golden files are decided at.
var testAt = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func load(t testing.TB, path string) *policy.Policy {
	t.Helper()
	p, diags := policy.LoadFile(path)
	if diags.HasErrors() {
		t.Fatalf("%s", policy.FormatDiagnostics(diags))
	}
	return p
}

// TestDiffGolden diffs each testdata/diff/CASE/old.hcl with new.hcl and
// compares the text rendering with CASE/diff.golden (and the Markdown
// and JSON ones with diff.md.golden and diff.json.golden, where present).
// Run with -update to rewrite them.
func TestDiffGolden(t *testing.T) {
	t.Parallel()
	dirs, err := filepath.Glob("testdata/diff/*")
	if err != nil || len(dirs) < 6 {
		t.Fatalf("found %d diff cases (%v), want at least 6", len(dirs), err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			t.Parallel()
			d := Diff(load(t, filepath.Join(dir, "old.hcl")), load(t, filepath.Join(dir, "new.hcl")), testAt)
			policytest.Golden(t, filepath.Join(dir, "diff.golden"), d.Text())
			for _, f := range []struct {
				name string
				out  func() ([]byte, error)
			}{
				{"diff.md.golden", func() ([]byte, error) { return d.Markdown(), nil }},
				{"diff.json.golden", d.JSON},
			} {
				golden := filepath.Join(dir, f.name)
				if _, err := os.Stat(golden); err != nil && !(policytest.Update() && f.name != "" && filepath.Base(dir) == "narrowing") {
					continue
				}
				b, err := f.out()
				if err != nil {
					t.Fatal(err)
				}
				policytest.Golden(t, golden, b)
			}
		})
	}
}

// TestDiffChanged checks what each case says about access as a whole:
// formatting, comments, rule names and order, a renamed block and its
// limits change none.
func TestDiffChanged(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		dir     string
		changed bool
		summary DiffSummary
	}{
		{"reformat", false, DiffSummary{}},
		{"rename", false, DiffSummary{Other: 2}},
		{"narrowing", true, DiffSummary{Widenings: 6, Narrowings: 1}},
	} {
		t.Run(tt.dir, func(t *testing.T) {
			dir := filepath.Join("testdata/diff", tt.dir)
			d := Diff(load(t, filepath.Join(dir, "old.hcl")), load(t, filepath.Join(dir, "new.hcl")), testAt)
			if d.Changed != tt.changed || d.Summary != tt.summary {
				t.Errorf("changed %v, summary %+v; want %v, %+v\n%s", d.Changed, d.Summary, tt.changed, tt.summary, d.Text())
			}
			// The same policy against itself never changes.
			if same := Diff(load(t, filepath.Join(dir, "new.hcl")), load(t, filepath.Join(dir, "new.hcl")), testAt); same.Changed || len(same.Clients) > 0 {
				t.Errorf("new against itself:\n%s", same.Text())
			}
			if !strings.Contains(string(d.Text()), "decided at 2026-06-01T00:00:00Z") {
				t.Errorf("no instant in:\n%s", d.Text())
			}
		})
	}
}
