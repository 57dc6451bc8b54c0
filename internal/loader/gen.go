package loader

// The C sources live in bpf/; the generated synprobe_bpfel.{go,o} are
// committed so that `go build` needs no clang. Regenerate with
// `make generate` (bpf/bpf.mk) after changing bpf/.
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -type synprobe_answer -type synprobe_target -type synprobe_last synprobe ../../bpf/synprobe.c -- -O2 -g -Wall -Werror -I../../bpf/headers -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -type passive_rs_key -type passive_rs_stats -type passive_hs -type passive_event -type passive_ep -type passive_ep_bucket passive ../../bpf/passive.c -- -O2 -g -Wall -Werror -I../../bpf/headers -I/usr/include/x86_64-linux-gnu
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -type passive_own_stats passiveTrace ../../bpf/passive_trace.c -- -O2 -g -Wall -Werror -I../../bpf/headers -I/usr/include/x86_64-linux-gnu
