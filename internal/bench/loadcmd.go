//go:build linux

package bench

import (
	"flag"
	"fmt"
	"io"
	"time"
)

// loadMain is "load": one measurement against a proxy (or the origins
// directly) that is already running, for profiling it with pprof or perf
// while the load runs. It needs the origins ("origin") reachable on
// 127.0.0.1 and the benchmark names resolving there, as inside the
// namespace "run" creates; BENCHMARKS.md has the recipe.
func loadMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("proxy", "", "proxy `host:port` (empty: connect to the origins directly)")
	what := fs.String("what", "setup", "measurement: setup, bulk, rtt or http")
	dur := fs.Duration("dur", 10*time.Second, "how long to load")
	workers := fs.Int("workers", 32, "concurrent clients for setup and http")
	tunnels := fs.Int("tunnels", 1, "tunnels for bulk")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	t := &target{name: "proxy", addr: *addr}
	if *addr == "" {
		t.name = "direct"
	}
	switch *what {
	case "setup":
		r := measureSetup(t, *workers, *dur)
		fmt.Fprintf(stdout, "setup %.0f/s p50 %v p99 %v (%d, %d errors %s)\n", r.Rate, r.P50, r.P99, r.N, r.Errors, r.FirstErr)
	case "bulk":
		mbs, _, err := measureBulk(t, *tunnels, 300*time.Millisecond, *dur, cpuMeter{})
		if err != nil {
			fmt.Fprintln(stderr, "bulk:", err)
			return 1
		}
		fmt.Fprintf(stdout, "bulk %d tunnel(s) %.0f MB/s\n", *tunnels, mbs)
	case "rtt":
		p50, p99, err := measureRTT(t, *dur)
		if err != nil {
			fmt.Fprintln(stderr, "rtt:", err)
			return 1
		}
		fmt.Fprintf(stdout, "rtt p50 %v p99 %v\n", p50, p99)
	case "http":
		r := measureHTTP(t, *workers, *dur)
		fmt.Fprintf(stdout, "http %.0f/s (%d, %d reopens, %d errors %s)\n", r.Rate, r.N, r.Reopens, r.Errors, r.FirstErr)
	default:
		fmt.Fprintf(stderr, "load: unknown -what %q; choose setup, bulk, rtt or http\n", *what)
		return 2
	}
	return 0
}
