package catalog

import (
	"testing"

	"github.com/azegress/azegress/policy/internal/policytest"
)

// TestDeps keeps the catalog data below the policy compiler: of the module
// it imports only host.
func TestDeps(t *testing.T) {
	t.Parallel()
	policytest.Deps(t, "policy/host")
}
