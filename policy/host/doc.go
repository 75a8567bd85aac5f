// Package host parses and normalizes destination host names: the names
// and IP literals clients put in CONNECT targets, URLs and TLS server
// names, and the names policy host patterns are made of.
//
// It is the leaf of the policy packages: it imports nothing of the module,
// so the catalog, the policy compiler and the proxy all read hosts the
// same way. TestDeps enforces that.
package host
