// Package slab hands out values from shared backing arrays, one
// allocation per Size values instead of one each. The values live as long
// as any of them does, which suits the parts of one policy: the fast
// parser's attributes and literals, the compiler's ranges and strings.
//
// It imports nothing of the module (TestDeps).
package slab
