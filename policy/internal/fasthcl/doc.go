// Package fasthcl is the fast front end for the plain subset of HCL that
// policies are written in. A 100,000-rule policy loads within its floor
// because of it: hclsyntax and gohcl take about ten times the CPU and
// thirteen times the memory.
//
// A Parser calls back for each attribute and block of a body, and the
// caller binds them to its schema, declining what the schema does not
// have; attributes get compact values (Lit, List) that stand for
// hclsyntax's nodes. A large source can be parsed in two halves at once
// (Split). The parser declines anything outside the subset and anything
// hclsyntax would report, so the caller can fall back to hclsyntax, and
// every syntax diagnostic comes from hclsyntax.
//
// The subset: ASCII text (other valid UTF-8 only inside line comments);
// newlines "\n" or "\r\n"; "#", "//" and "/* */" comments; attributes whose
// value is a string, a number, true, false, null or a one-level list of
// those; and blocks with at most two quoted labels whose "{" ends its line
// or is followed by "}", and at most eight attributes per body. Strings
// have no escapes, "$" or "%" (so no templates). Literals are substrings
// of one copy of the source, so what a parse returns keeps the source in
// memory.
//
// Of the module it imports only policy/internal/slab (TestDeps).
package fasthcl
