// Package loader loads lvsprobe's eBPF programs, attaches them to network
// interfaces and reads what they record, reporting [ErrNotSupported] where
// the kernel cannot run them so that callers can fall back.
//
// The SYN-probe receiver (bpf/synprobe.c) needs Linux 5.8 for its ring
// buffer; it attaches with TCX on 6.6 and later and with a clsact qdisc
// plus a direct-action filter on older kernels (Debian's 6.1). A verifier
// rejection is logged with the verifier's full log (see [VerifierLog]).
//
// The passive observer ([LoadPassive], bpf/passive.c and
// bpf/passive_trace.c) counts, per configured real server, what client
// traffic and the director's own connections show: resets, unanswered
// SYNs, handshake latency. Its TC programs need Linux 5.8 (ring buffer)
// and attach like the receiver; its tracepoints are BTF tracepoints
// (tp_btf, Linux 5.8 with kernel BTF) and are optional. Go reads the
// counters in batches and hands them up as [Delta]s and [Event]s.
package loader
