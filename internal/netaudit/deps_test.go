package netaudit

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps the audit beside the review kit: of the module it
// depends on the policy packages only (not the proxy), and it does not
// pull in the proxy's libraries.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Only(t, "policy/...")
}
