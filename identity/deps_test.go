package identity

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps identity a leaf the proxy calls: it may not depend on the
// proxy, the policy, goproxy or Prometheus (identitytest and tokensource
// check the same of themselves).
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Leaf(t)
}
