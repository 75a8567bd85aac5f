// Command azegress-bench measures azegress side by side with a direct
// connection, Squid and tinyproxy, and writes BENCHMARKS.md. `make bench`
// runs it; the work is in package e2e/bench.
package main

import (
	"os"

	"github.com/azegress/azegress/e2e/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr)) }
