//go:build unix

package identity

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) the process has used,
// the garbage collector's on other cores included.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}
