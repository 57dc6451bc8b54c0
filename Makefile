# lvsprobe — build, test, generate, fuzz, bench and the labs.
# Every target runs on a fresh Debian 12 machine once .ci/run's install step
# (scripts/install-deps) has run; tests that need root run as root.

GO        ?= go
BIN       ?= bin/lvsprobe
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X main.version=$(VERSION)
PKGS      ?= ./...
FUZZTIME  ?= 10s
BENCHTIME ?= 1x
export CGO_ENABLED ?= 0

.PHONY: all build test test-host vet lint generate fuzz fuzz-long bench metrics-doc demo install-deps clean vagrant-validate

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/lvsprobe

## test: every test — on the host (root: netns, nginx, eBPF), then the
## packages that need real IPVS inside the kernel-lab guest.
test: install-deps vmlab-setup test-host vmtest

test-host:
	$(GO) test -count=1 -timeout 20m $(PKGS)

vet:
	$(GO) vet $(PKGS)

lint: vet vagrant-validate
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) tool staticcheck $(PKGS)
	shellcheck -x $$(git ls-files scripts .ci bpf | xargs grep -l '^#!/usr/bin/env bash')

## generate: rebuild the eBPF objects (bpf2go with Debian's clang);
## bpf-check (bpf/bpf.mk) fails when the committed objects are stale.
generate:
	$(GO) generate ./internal/loader/...
	$(GO) generate ./internal/testnet/...

## fuzz: run every Fuzz target for FUZZTIME each (fuzz-long: 10 minutes).
fuzz:
	scripts/fuzz $(FUZZTIME)

fuzz-long:
	scripts/fuzz 10m

bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) $(PKGS)

## metrics-doc: rewrite docs/metrics.md from the registered metric
## descriptors (TestMetricsDoc fails when it is stale).
metrics-doc:
	$(GO) test -count=1 -run '^TestMetricsDoc$$' ./cmd/lvsprobe -args -update-metrics-doc

## demo: lvsprobe's main job on a lab it builds itself.
demo: build
	scripts/demo

install-deps:
	scripts/install-deps

## vagrant-validate: the Vagrantfile is valid (no provider needed) and the
## keepalived.conf the lab's director gets passes lvsprobe check.
vagrant-validate: build
	vagrant validate --ignore-provider
	@f=$$(mktemp) && trap 'rm -f $$f' EXIT && \
	scripts/vagrant/provision print-config 198.18.0.100 198.18.1.11,198.18.1.12 >$$f && \
	$(BIN) check -f $$f

clean:
	rm -rf bin

include bpf/bpf.mk
include scripts/vmlab/vmlab.mk
