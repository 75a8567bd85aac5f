package agent

import (
	"testing"

	"github.com/azegress/azegress/internal/depstest"
)

// TestDeps keeps the agent a client of the token source and the host
// parsers: it forwards, it does not decide, so it may not depend on the
// proxy, the policy compiler, goproxy or Prometheus.
func TestDeps(t *testing.T) {
	t.Parallel()
	depstest.Only(t, "identity/tokensource", "policy/host", "policy/catalog")
}
