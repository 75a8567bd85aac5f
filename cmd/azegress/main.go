// Command azegress is an egress-filtering forward proxy for Azure workloads
// that authenticate with managed identities. See README.md.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
