package review

import (
	"testing"

	"github.com/azegress/azegress/policy/internal/policytest"
)

// TestDeps keeps the review kit on top of the policy core: of the module
// it imports policy and the packages below it.
func TestDeps(t *testing.T) {
	t.Parallel()
	policytest.Deps(t, "policy", "policy/host", "policy/catalog", "policy/internal/text")
}
