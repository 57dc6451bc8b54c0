# bpf/bpf.mk: rebuild the eBPF objects and their Go scaffolding with
# bpf2go (pinned in go.mod's tool block) and Debian's clang (14 or newer)
# plus libbpf-dev for <bpf/bpf_helpers.h>. The outputs,
# internal/loader/synprobe_bpfel.{go,o}, are committed, so a plain
# `go build` needs no clang.
#
# Include it from the top-level Makefile and make `generate` depend on
# bpf-generate:
#
#   include bpf/bpf.mk
#   generate: bpf-generate

GO ?= go
BPF_SOURCES := $(wildcard bpf/*.c bpf/headers/*.h)
BPF_OUTPUTS := internal/loader/synprobe_bpfel.go internal/loader/synprobe_bpfel.o \
	internal/loader/passive_bpfel.go internal/loader/passive_bpfel.o \
	internal/loader/passivetrace_bpfel.go internal/loader/passivetrace_bpfel.o \
	internal/testnet/benchresp_bpfel.go internal/testnet/benchresp_bpfel.o

.PHONY: bpf-generate bpf-check

## bpf-generate: regenerate the eBPF objects when bpf/ or gen.go changed.
bpf-generate: $(BPF_OUTPUTS)

$(BPF_OUTPUTS) &: $(BPF_SOURCES) internal/loader/gen.go internal/testnet/gen.go
	cd internal/loader && $(GO) generate ./...
	cd internal/testnet && $(GO) generate ./...

## bpf-check: fail when the committed objects differ from a fresh build.
bpf-check:
	cd internal/loader && $(GO) generate ./...
	cd internal/testnet && $(GO) generate ./...
	git diff --exit-code -- $(BPF_OUTPUTS)
