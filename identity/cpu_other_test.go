//go:build !unix

package identity

import "time"

// processCPU is not measured here: BenchmarkValidateCold then reports
// time per token only.
func processCPU() (time.Duration, bool) { return 0, false }
