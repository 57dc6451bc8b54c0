package testnet

// The C source of the benchmark responder lives in bpf/; the generated
// benchresp_bpfel.{go,o} are committed so that `go build` needs no clang.
// Regenerate with `make generate` (bpf/bpf.mk) after changing it.
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel benchresp ../../bpf/benchresp.c -- -O2 -g -Wall -Werror -I../../bpf/headers -I/usr/include/x86_64-linux-gnu
