package host

import (
	"testing"

	"github.com/azegress/azegress/policy/internal/deptest"
)

// TestDeps keeps host a leaf: it imports no package of the module.
func TestDeps(t *testing.T) {
	t.Parallel()
	deptest.Check(t)
}
