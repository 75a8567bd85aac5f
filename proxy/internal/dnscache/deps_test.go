package dnscache

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps dnscache a protocol piece: it depends on nothing of the
// module, the proxy and the policy included.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}
