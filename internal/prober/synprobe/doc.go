// Package synprobe is the fast path's heartbeat: stateless raw-socket SYN
// probes to every real server, many times a second, at the cost of one
// packet out and one in.
//
// # How a probe works
//
// The sender builds a SYN (with an MSS option, checksummed in Go) whose
// sequence number is SipHash-2-4 of the 4-tuple under a secret that
// rotates every [Config].SecretRotation (the previous secret still
// validates), and sends every probe due within the next tick (10 ms; tick.go) in
// one go, paced by a global token bucket ([Config].PPS) and a per-target
// interval. A target whose next hop the kernel has resolved on an
// Ethernet link gets a prebuilt frame (Ethernet, IP and TCP headers; per
// probe only the port, the sequence number and an incremental checksum
// change) written into a PACKET_TX_RING of its interface, which one
// send() per 64 frames hands to the driver, bypassing the qdisc: no
// routing, neighbour or netfilter work and no system call per packet
// (BenchmarkSend, threaded NAPI: ~0.3-0.9 us of CPU per probe, against
// 2.6-3.5 with sendmmsg on a packet socket and 4.2-4.5 with raw sockets).
// A full device queue leaves frames in the ring for the next send. The
// frames follow the neighbour table (checked every second); other
// targets, targets that just missed (the kernel's path then revalidates
// the neighbour) and [Config].RawSockets use raw IPv4/IPv6 sockets with
// sendmmsg, where the kernel builds the IP header. Frames are not seen by
// the director's conntrack. Source ports come from a range the prober adds to
// /proc/sys/net/ipv4/ip_local_reserved_ports (per network namespace) and
// removes on Close, so no local socket ever owns them: every SYN-ACK gets
// a RST, and the real server keeps no half-open connection (the tests
// check its EmbryonicRsts counter and SYN_RECV list). The eBPF receiver
// sends that RST itself (the SYN-ACK rewritten in place and redirected
// out of its device; the real server's RSTs to us dropped once recorded),
// so the director's stack never sees a probe answer; [Config].KernelRST
// leaves both to the stack, which answers each SYN-ACK with its own RST.
//
// # How answers come back
//
// A TC ingress program (bpf/synprobe.c, loaded by internal/loader; TCX
// on 6.6+, clsact otherwise) picks out SYN-ACKs and RSTs to the reserved
// port range, stamps them with bpf_ktime_get_ns and copies their headers
// into a ring buffer, then answers them (above). Go decodes them, checks the IP and TCP checksums
// (a checksum left partial by a sender that offloads it is accepted), and
// accepts an answer only when ack-1 equals the cookie. The cookie check
// is in Go, not in the program: the secret then never enters a map, a
// forged answer costs one ring record, and one decoder serves the eBPF
// receiver and the fallback alike.
//
// Ring buffer or per-target map: both are in the program; the loader's
// BenchmarkDelivery measures them. Per answer, end to end, they are level
// within the noise of a shared machine (ring ~4.8-6.3 us, map ~4.8 us,
// both over a ~4.2 us BPF_PROG_TEST_RUN baseline; in the kernel 0.2-0.3
// vs 0.15 us). The ring buffer is kept: the map keeps only the newest
// answer of each kind per target, so it cannot validate every answer, a
// forged RST overwrites a real one, and duplicates and late answers
// cannot be told apart; the ring hands every answer up in order. The send
// loop drains it each time it wakes, without blocking (no wakeup and no
// system call of its own while the ring is empty): on every send tick, and
// after the last send at least every tick, backing off to 64 ms while
// nothing comes. A RST does not wait for the tick: the program wakes the
// ring's readers for it (never for a SYN-ACK), and a goroutine blocked on
// an edge-triggered epoll of the ring wakes the send loop, at most every
// 2 ms (notify.go).
//
// # Back-off on a starved CPU
//
// When the send loop takes its due probes, or drains answers, late in a
// quarter or more of its rounds over a second (more than 50 ms, resp.
// 100 ms), the CPU cannot carry the probe rate: every target's interval is
// doubled, down to 1/16 of the nominal rate; each second with at most one
// late round in twenty gives back 1/8 of it, or half the current rate if
// less (AIMD, pace.go). A change is judged once it has taken effect (an
// interval at the old rate later); for 5 s after targets are added in
// bulk (start-up) the rate is not cut. Metrics rate_factor,
// rate_cuts_total and pace_rounds_total{lateness}, one warning per cut
// with the window's late rounds by cause.
//
// # Spreading the probes
//
// The send loop wakes once a tick and sends the probes due within it: the
// tick is 10 ms while that is about 100 probes, and shrinks (in whole
// milliseconds, to 1 ms) as the rate grows, so that each wakeup puts about
// 100 frames on the links and never more than 128 not yet due (tick.go);
// probes already late are never held back, so a loop that wakes late
// sends its backlog at once. A small prober, whose 10 ms ticks would
// carry fewer, wakes on a grid instead: a tick of whole milliseconds
// that divides the interval, up to half of it and 50 ms (40 ms for 100
// targets every 80 ms), at its multiples, so that a target's probes still
// leave exactly an interval apart and are never late; each wakeup costs,
// more than its probes do. Metric probes_per_wakeup.
//
// RTT is the kernel's timestamp on the answer minus the send time, both
// CLOCK_MONOTONIC. An answer counts for the probe it acknowledges when the
// kernel saw it before the target's next probe left. A probe unanswered
// at its deadline, the earlier of its successor's departure and its own
// departure plus the target's nominal interval, is a miss, declared once
// the receiver has drained everything older (a late drain never makes a
// false miss), and at most a tick after the deadline (the send loop
// wakes for it; on a grid it drains again right after its sends, so a
// miss at a successor's departure is declared on that wakeup). At full rate that is the successor's departure; backed
// off, a probe's miss still comes one nominal interval after it left,
// not a stretched one. An answer that the kernel saw after the deadline
// but before the successor left still counts (RTT, a SynAck or Reset
// signal, consecutive misses back to 0); the miss declared stands.
// Forged (bad cookie), duplicated, late, malformed, truncated or
// badly checksummed answers are counted in answers_invalid_total{reason}
// and otherwise ignored.
//
// Where eBPF cannot load or attach, the prober falls back (with one
// warning and the metric lvsprobe_synprobe_receiver{kind="packet"}) to an
// AF_PACKET socket with a classic BPF filter doing the same selection; its
// timestamps are taken when Go reads the packet.
//
// # What it tells
//
// [Prober.Signals] delivers a [Signal] per answer and per miss (dropped
// and counted if the consumer falls behind), [Prober.Snapshot] the
// current [TargetState]: consecutive misses, last RTT, RST seen, SYN-ACK
// seen. These are fast signals: they decide when to run a full check,
// never what is true.
//
// Everything is done in the network namespace of the thread that calls
// [New] and [Prober.Add]; it needs CAP_NET_RAW, CAP_NET_ADMIN and, for the
// eBPF receiver, CAP_BPF (or root).
package synprobe
