// Package depstest has the dependency check of the proxy's internal
// packages: the protocol pieces import nothing of the module, so that they
// stay usable, and testable, without the proxy and the policy. Only tests
// import it; it imports nothing of the module either.
package depstest
