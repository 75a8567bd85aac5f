package evloop

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps the engine a protocol piece: it depends on nothing of the
// module; what a connection gets is the handler's to decide.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}
