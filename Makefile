# azegress: `make test` installs what the tests need (Debian packages, as root)
# and runs every test; `make bench` runs the benchmarks.
GO      ?= go
PKGS    := ./...
export GOFLAGS := -buildvcs=false

# Debian packages the tests drive for real: curl as a proxy client,
# prometheus (the server and promtool) for the dashboard and alerting rules
# (e2e/monitor_test.go), the Azure CLI and the Azure SDK for Python for the
# end-to-end test (e2e/azcli_test.go); iproute2, nftables, systemd
# (systemd-analyze), python3-yaml and logrotate for deploy/ and its next-hop test;
# the JDK for Java's java.net.http proxy client (e2e/identity_test.go; Debian
# bookworm's default JDK is 17); podman and runc to build and run the container
# image (image-test; crun, podman's default, refuses a cgroup v1 host with a
# cgroup2 hierarchy beside it, as these machines have); lintian, mmdebstrap
# and systemd-container (systemd-nspawn) for the Debian package's test (make
# deb-test).
DEB_PACKAGES := curl prometheus azure-cli python3-azure iproute2 nftables systemd python3-yaml logrotate openjdk-17-jdk-headless \
	podman runc lintian mmdebstrap systemd-container

.PHONY: all build test deps vet unit fuzz-short image-test deb deb-root deb-test bench bench-quick bench-deps clean

all: build

build:
	$(GO) build -o bin/azegress ./cmd/azegress

test: deps vet unit fuzz-short deb-test image-test

deps:
	@scripts/install-deps.sh $(DEB_PACKAGES)

vet:
	@out=$$(gofmt -l cmd policy policies proxy internal identity e2e 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) build $(PKGS)
	$(GO) vet $(PKGS)

# The proxy package twice: its tests also run with every proxy on the
# event-loop engine (serve -event-loop), so both front doors pass them.
unit:
	$(GO) test -race -count=1 -timeout 10m $(PKGS)
	AZEGRESS_TEST_ENGINE=1 $(GO) test -race -count=1 -timeout 10m ./proxy

# A few seconds of each fuzz target on top of the seed corpora `unit` runs.
# The budget is a count, not a duration: Go 1.26's fuzz coordinator can fail
# a target with a bare "context deadline exceeded" when a duration -fuzztime
# ends while a worker is mid-run (golang/go#75804, fixed in Go 1.27); a count
# never arms that deadline.
# The fuzz targets of every package that has any: `go test -list` prints a
# package's targets before its "ok PKG" line.
fuzz-short:
	@dirs=$$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u); \
	list=$$($(GO) test -list '^Fuzz' $$dirs) || { echo "$$list"; exit 1; }; \
	echo "$$list" | awk '/^Fuzz/ { t[n++] = $$1 } /^ok/ { for (i = 0; i < n; i++) print $$2, t[i]; n = 0 }' | \
	while read pkg t; do \
	  echo "fuzz $$pkg $$t"; \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 20000x -fuzzminimizetime 100x $$pkg || exit 1; \
	done

# The container image (issue 16, part 2): builds deploy/container/Dockerfile
# with podman and runs it (e2e/image_test.go; needs root). Outside this target
# the image tests skip and TestKubernetesManifests checks the Dockerfile.
# With -race, as unit compiled e2e, so that make test does not compile it again.
image-test: deps
	AZEGRESS_IMAGE_TEST=1 $(GO) test -race -count=1 -timeout 15m -run '^(TestImageRun|TestKubernetesManifests|TestContainerImage)$$' ./e2e

# The Debian package (issue 16, part 1): dist/azegress_<version>_<arch>.deb,
# built with nfpm (scripts/deb.sh; VERSION=v1.2.3 names the release, default
# the latest v* tag, else v0.0.0-git<commit>).
deb:
	@GO=$(GO) scripts/deb.sh

# The bookworm root the package is boot-tested in, kept between runs.
DEB_ROOT := .cache/deb-root/bookworm
deb-root:
	@scripts/deb-root.sh $(DEB_ROOT)

# Builds the package and the root side by side (one compiles, the other
# downloads), then lintian and the boot test: e2e/deb_test.go (with -race,
# as unit compiled it, so that make test does not compile e2e twice).
deb-test:
	@$(MAKE) --no-print-directory -j2 deb deb-root
	$(GO) test -race -count=1 -timeout 15m -v -run '^TestDebPackage$$' ./e2e -deb "$$(realpath dist/azegress_*.deb)" -deb-root "$(CURDIR)/$(DEB_ROOT)"

# The benchmark of issues 5, 13 and 15: the Go benchmarks of ./policy/..., ./proxy and
# ./identity, then azegress (with and without identity-keyed selection) side by
# side with a direct connection, Squid and tinyproxy, all
# started by the harness (cmd/azegress-bench, internal/bench) in a network
# namespace of its own (needs root).
# Writes BENCHMARKS.md, keeping its hand-written part. About 10 minutes;
# BENCH_QUICK=1 for a short run, BENCH_ROUNDS=N for N rounds (default 5).
bench: build bench-deps
	$(GO) build -o bin/azegress-bench ./cmd/azegress-bench
	$(GO) build -o bin/azegress-engine-relay ./proxy/internal/evloop/benchrelay
	BENCH_QUICK=$(BENCH_QUICK) BENCH_ROUNDS=$(BENCH_ROUNDS) bin/azegress-bench run -azegress bin/azegress -engine bin/azegress-engine-relay $(if $(BEFORE),-azegress-before $(BEFORE)) -out BENCHMARKS.md

# Issue 15's rows only, in a few minutes, for A/B runs while optimising:
# BEFORE=/path/to/an/older/azegress measures it as azegress-before,
# alternating with bin/azegress in the same sitting. Writes
# bench-out/BENCHMARKS-quick.md and the CPU profiles beside it.
bench-quick: build bench-deps
	$(GO) build -o bin/azegress-bench ./cmd/azegress-bench
	$(GO) build -o bin/azegress-engine-relay ./proxy/internal/evloop/benchrelay
	BENCH_ROUNDS=$(BENCH_ROUNDS) bin/azegress-bench run -issue15 -azegress bin/azegress -engine bin/azegress-engine-relay $(if $(BEFORE),-azegress-before $(BEFORE)) -out bench-out/BENCHMARKS-quick.md

# The peers the benchmark measures azegress against, ip(8) and strace(1).
bench-deps:
	@scripts/install-deps.sh squid tinyproxy iproute2 strace

clean:
	rm -rf bin dist
