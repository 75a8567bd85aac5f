// Package depstest has the dependency check of the module's leaf and
// client packages (the proxy's protocol pieces, identity, the agent, the
// network audit): each depends only on the packages of the module it
// names, and none on the proxy's libraries, so that the layering
// ARCHITECTURE.md draws holds. Only tests import it; it imports nothing of
// the module. The policy packages check their direct imports with
// policy/internal/policytest, whose rule is layering, not leafness.
package depstest
