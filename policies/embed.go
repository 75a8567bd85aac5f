// Package policies holds the shipped policy presets. Each is tested: it must
// load with no diagnostics.
package policies

import _ "embed"

// Default is policies/default.hcl, the policy `azegress serve` enforces when
// it is given none.
//
//go:embed default.hcl
var Default []byte

// DefaultName is how the embedded default policy is named in logs and
// diagnostics.
const DefaultName = "embedded:policies/default.hcl"
