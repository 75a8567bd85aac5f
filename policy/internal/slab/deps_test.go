package slab_test

import (
	"testing"

	"github.com/azegress/azegress/policy/internal/policytest"
)

// TestDeps keeps slab a leaf: it imports no package of the module.
func TestDeps(t *testing.T) {
	t.Parallel()
	policytest.Deps(t)
}
