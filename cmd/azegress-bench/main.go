//go:build linux

// Command azegress-bench measures azegress side by side with a direct
// connection, Squid and tinyproxy, and writes BENCHMARKS.md. `make bench`
// runs it; the work is in package internal/bench.
package main

import (
	"os"

	"github.com/azegress/azegress/internal/bench"
)

func main() { os.Exit(bench.Main(os.Args[1:], os.Stdout, os.Stderr)) }
