package policytest_test

import (
	"testing"

	"github.com/azegress/azegress/policy/internal/policytest"
)

// TestDeps keeps policytest below every policy package's tests.
func TestDeps(t *testing.T) {
	t.Parallel()
	policytest.Deps(t, "policy/host")
}
