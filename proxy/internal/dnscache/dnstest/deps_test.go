package dnstest

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps the kit independent of the cache it tests and of the rest
// of the module.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}
