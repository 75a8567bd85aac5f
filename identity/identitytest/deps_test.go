package identitytest

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps: the identity provider of the tests is built on identity alone.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Only(t, "identity")
}
