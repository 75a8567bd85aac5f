package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// version is the release this binary is, set at link time with
// -ldflags "-X main.version=v1.2.3"; empty means the module version Go
// recorded ("devel" for a build from a checkout).
var version string

// buildInfo says which build this binary is.
type buildInfo struct {
	Version   string // the release, or "devel"
	GoVersion string // the Go toolchain: "go1.26.0"
	Revision  string // the VCS revision built from; "" when not recorded (-buildvcs=false)
	Modified  bool   // the working tree had uncommitted changes
}

// readBuildInfo returns what the linker and the Go toolchain recorded.
func readBuildInfo() buildInfo {
	b := buildInfo{Version: version, GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if ok {
		if b.Version == "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
	}
	if b.Version == "" {
		b.Version = "devel"
	}
	return b
}

// versionCommand is `azegress version`.
func versionCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintln(stderr, "usage: azegress version\n\nPrints the release, the Go version and the VCS revision this binary was built from.")
		return 2
	}
	b := readBuildInfo()
	fmt.Fprintf(stdout, "azegress %s\ngo version %s %s/%s\n", b.Version, b.GoVersion, runtime.GOOS, runtime.GOARCH)
	if b.Revision != "" {
		modified := ""
		if b.Modified {
			modified = " (modified)"
		}
		fmt.Fprintf(stdout, "revision %s%s\n", b.Revision, modified)
	}
	return 0
}

// buildInfoGauge is azegress_build_info: 1, labelled with the build, so a
// dashboard shows which release each instance runs.
func buildInfoGauge() prometheus.Gauge {
	b := readBuildInfo()
	rev := b.Revision
	if rev != "" && b.Modified {
		rev += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "azegress", Name: "build_info",
		Help:        "1, labelled with the release (version), Go toolchain (goversion) and VCS revision (empty when not recorded) of the running binary.",
		ConstLabels: prometheus.Labels{"version": b.Version, "goversion": b.GoVersion, "revision": rev},
	})
	g.Set(1)
	return g
}
