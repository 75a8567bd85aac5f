package manpage

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps: the renderer depends on nothing of the module; the help it
// renders comes from running the binary.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}
