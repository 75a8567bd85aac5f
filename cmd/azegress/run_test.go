package main

import (
	"runtime/debug"
	"testing"
)

// lazyGC raises GOGC for a load and puts it back; it never lowers it and
// never turns a disabled collector on.
func TestLazyGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	for _, tt := range []struct{ before, during int }{
		{100, loadGOGC},
		{50, loadGOGC},
		{loadGOGC, loadGOGC},
		{1000, 1000},
		{-1, -1},
	} {
		debug.SetGCPercent(tt.before)
		restore := lazyGC()
		during := debug.SetGCPercent(tt.during) // reads it; sets it to what it should be anyway
		restore()
		after := debug.SetGCPercent(100)
		if during != tt.during || after != tt.before {
			t.Errorf("GOGC %d: %d during the load, %d after, want %d and %d", tt.before, during, after, tt.during, tt.before)
		}
	}
}
