package fasthcl_test

import (
	"testing"

	"github.com/azegress/azegress/policy/internal/policytest"
)

// TestDeps keeps fasthcl below the policy core, which it knows nothing of.
func TestDeps(t *testing.T) {
	t.Parallel()
	policytest.Deps(t, "policy/internal/slab")
}
