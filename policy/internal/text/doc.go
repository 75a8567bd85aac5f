// Package text formats the small pieces of text that policy diagnostics,
// lint warnings, reports and generated policies share: positions,
// prefixes, quoted lists, plurals.
//
// It imports nothing of the module (TestDeps).
package text
