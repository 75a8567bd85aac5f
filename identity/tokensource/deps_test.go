package tokensource

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps: the client side of identity depends on nothing of the module.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}
