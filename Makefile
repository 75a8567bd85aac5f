# azegress: `make test` installs what the tests need (Debian packages, as root)
# and runs every test; `make bench` runs the benchmarks.
GO      ?= go
PKGS    := ./...
export GOFLAGS := -buildvcs=false

# Debian packages the tests drive for real: curl as a proxy client, promtool
# to lint the metrics exposition, the Azure CLI and the Azure SDK for Python
# for the end-to-end test (e2e/azcli_test.go); iproute2, nftables, systemd
# (systemd-analyze) and python3-yaml for deploy/ and its next-hop test.
DEB_PACKAGES := curl prometheus azure-cli python3-azure iproute2 nftables systemd python3-yaml

.PHONY: all build test deps vet unit fuzz-short bench clean

all: build

build:
	$(GO) build -o bin/azegress ./cmd/azegress

test: deps vet unit fuzz-short

deps:
	@scripts/install-deps.sh $(DEB_PACKAGES)

vet:
	@out=$$(gofmt -l cmd policy policies proxy e2e 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

unit:
	$(GO) test -race -count=1 -timeout 10m $(PKGS)

# A few seconds of each fuzz target on top of the seed corpora `unit` runs.
fuzz-short:
	@for t in $$($(GO) test -list '^Fuzz' ./policy ./proxy | grep '^Fuzz'); do \
	  pkg=./policy; $(GO) test -list "^$$t$$" ./proxy | grep -q "^$$t$$" && pkg=./proxy; \
	  echo "fuzz $$pkg $$t"; \
	  $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime 5s $$pkg || exit 1; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./policy ./proxy

clean:
	rm -rf bin
