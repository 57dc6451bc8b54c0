// Package loader loads lvsprobe's eBPF programs, attaches them to network
// interfaces and reads what they record, reporting [ErrNotSupported] where
// the kernel cannot run them so that callers can fall back.
//
// The SYN-probe receiver needs Linux 5.8 (ring buffer, BPF_F_TEST_RUN-free
// TC programs); it attaches with TCX on 6.6 and later and with a clsact
// qdisc plus a direct-action filter on older kernels (Debian's 6.1).
package loader
