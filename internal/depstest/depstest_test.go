package depstest

import "testing"

// TestDeps keeps depstest importable from every internal package's tests.
func TestDeps(t *testing.T) {
	t.Parallel()
	Leaf(t)
}
