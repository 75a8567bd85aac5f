package nettest

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps the kit importable from the tests of every package of the
// proxy.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}
