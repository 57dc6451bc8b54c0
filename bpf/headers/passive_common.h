/* Pieces shared by bpf/passive.c and bpf/passive_trace.c: the event ring
 * buffer (the loader hands both objects the same one), the per-CPU
 * counters and the latency histogram. Include after passive.h. */
#ifndef LVSPROBE_PASSIVE_COMMON_H
#define LVSPROBE_PASSIVE_COMMON_H

/* Shortest time between two events of one kind for one real server, in ns
 * (set by the loader). The counters carry everything in between. */
volatile const __u64 event_gap_ns = 100000000;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, PASSIVE_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

/* send_event puts one event in the ring and wakes the reader at once:
 * events are rare (one per real server per gap) and wanted now. */
static __always_inline void send_event(struct passive_rs_key *rs, __u32 kind, __u64 now)
{
	struct passive_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(PASSIVE_STAT_RB_FULL);
		return;
	}
	e->ktime_ns = now;
	__builtin_memcpy(&e->rs, rs, sizeof(*rs));
	e->kind = kind;
	e->pad = 0;
	bpf_ringbuf_submit(e, BPF_RB_FORCE_WAKEUP);
}

/* log2 of a non-zero 64-bit value, rounded down. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0;

	if (v >> 32) { v >>= 32; r += 32; }
	if (v >> 16) { v >>= 16; r += 16; }
	if (v >> 8) { v >>= 8; r += 8; }
	if (v >> 4) { v >>= 4; r += 4; }
	if (v >> 2) { v >>= 2; r += 2; }
	if (v >> 1) r += 1;
	return r;
}

/* record_latency adds one latency (ns) to a histogram and its totals. */
static __always_inline void record_latency(__u64 *lat, __u64 *n, __u64 *sum, __u64 ns)
{
	__u64 us = ns / 1000;
	__u32 b = us ? log2_u64(us) : 0;

	if (b >= PASSIVE_LAT_BUCKETS)
		b = PASSIVE_LAT_BUCKETS - 1;
	__sync_fetch_and_add(&lat[b], 1);
	__sync_fetch_and_add(n, 1);
	__sync_fetch_and_add(sum, ns);
}

#endif
