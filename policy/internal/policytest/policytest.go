package policytest

import (
	"flag"
	"os"
	"testing"

	"github.com/azegress/azegress/policy/host"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// Update reports whether the test runs with -update, to rewrite its golden
// files instead of comparing with them.
func Update() bool { return *update }

// Golden compares got with the golden file, or rewrites it with -update.
func Golden(t testing.TB, golden string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run the test with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("output differs from %s (run the test with -update to rewrite it)\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

// Host is host.Parse(s), which must succeed.
func Host(t testing.TB, s string) host.Host {
	t.Helper()
	h, err := host.Parse(s)
	if err != nil {
		t.Fatalf("host.Parse(%q): %v", s, err)
	}
	return h
}
