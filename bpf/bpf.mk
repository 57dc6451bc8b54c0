# bpf/bpf.mk: regenerate the eBPF objects and their Go scaffolding.
# Included by the top-level Makefile. Needs clang (Debian's clang-14 is
# enough) and libbpf-dev for <bpf/bpf_helpers.h>. The outputs
# (internal/loader/*_bpfel.{go,o}) are committed.

BPF_SOURCES := $(wildcard bpf/*.c bpf/headers/*.h)

.PHONY: generate
generate: internal/loader/synprobe_bpfel.go

internal/loader/synprobe_bpfel.go: $(BPF_SOURCES) internal/loader/gen.go
	cd internal/loader && go generate ./...
