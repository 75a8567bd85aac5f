// Package policytest has the helpers the tests of the policy packages
// share: golden files, hosts, and the dependency check that keeps the
// packages layered. Only tests import it.
//
// Of the module it imports only policy/host, so that the tests of every
// policy package, host's included (from package host_test), can use it.
package policytest
