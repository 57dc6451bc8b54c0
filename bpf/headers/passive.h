/* Records shared by bpf/passive.c, bpf/passive_trace.c and
 * internal/loader (bpf2go mirrors them as Go types). Keep the layout free
 * of implicit padding. */
#ifndef LVSPROBE_PASSIVE_H
#define LVSPROBE_PASSIVE_H

#include <linux/types.h>

/* Buckets of the handshake-latency histogram: bucket i counts latencies
 * in [2^i, 2^(i+1)) microseconds (bucket 0 also takes everything below
 * 1 us, the last everything above). 2^27 us is about 134 s. */
#define PASSIVE_LAT_BUCKETS 28

/* A real server as the configuration names it: the key of the map Go
 * fills from the configuration. */
struct passive_rs_key {
	__u8 addr[16]; /* IPv4 in the first 4 bytes, the rest zero */
	__u16 port;    /* network byte order */
	__u8 proto;    /* IPPROTO_TCP */
	__u8 family;   /* 4 or 6 */
};

/* How many in-flight handshakes a real server's entry keeps (one cache
 * line of struct passive_hs). */
#define PASSIVE_HS_WAYS 8

/* One in-flight client handshake, kept in its real server's entry (the
 * line after the one every SYN already touches): any way of the eight
 * that is free takes a new SYN. tag is 0 when the way is free (never
 * used, or answered); otherwise bits 2-31 of a keyed hash of the
 * 4-tuple, bit 0 set, and bit 1 (PASSIVE_HS_RETRANS) once the SYN was
 * seen again. A way whose first SYN is older than the window (3.5 s, or
 * 10 s once retransmitted: see bpf/passive.c) is free too. */
struct passive_hs {
	__u32 tag;
	__u32 t; /* ktime >> PASSIVE_HS_SHIFT of the handshake's first SYN (wraps every 18 minutes):
		  * the precise clock's for a timed handshake, the coarse one's
		  * (a tick behind at most) for the others (see hs_sample_mask
		  * in bpf/passive.c) */
};

/* Bit 0 of rst_event_ns (its nanosecond, never needed): the refusal
 * event of the gap that the last RST event started has gone up. A RST
 * event starts a gap; within it, other RSTs send nothing, but the first
 * refusal (a RST answering a tracked SYN) still sends its own event: at
 * most one plain and one refusal event per real server and gap, and one
 * event per gap from a server that refuses every SYN. */
#define PASSIVE_RST_REFUSED 1ULL

#define PASSIVE_HS_RETRANS 2u
#define PASSIVE_HS_SHIFT 8 /* time units of 256 ns */

/* What the TC programs saw of one real server's traffic: the rs_stats
 * entry of its slot. Go writes key (and zero counters) when it gives the
 * real server the slot; the counters only grow after that, and Go takes
 * differences between reads. The entry is six cache lines (rs_stats'
 * values start on a page boundary, see bpf/passive.c; 384 bytes, so the
 * first two lines are always one aligned 128-byte pair in one page),
 * laid out by the packet that touches them. */
struct passive_rs_stats {
	/* Line 1: all a SYN (new or retransmitted) or a RST touches, and
	 * what an endpoint lookup checks. */
	struct passive_rs_key key; /* the real server: events name it, lookups check it */
	__u32 rst_event_j;         /* low 32 bits of jiffies at the last RST event */
	__u64 syns;             /* client SYNs forwarded to the real server */
	__u64 rsts;             /* RSTs from the real server */
	__u64 rst_event_ns;     /* ktime of the last RST event sent up; bit 0: PASSIVE_RST_REFUSED */
	__u64 refused;          /* of the RSTs, those answering an in-flight SYN */
	__u64 syn_retrans;      /* of the SYNs, those seen again for the same 4-tuple */
	/* Line 2: the in-flight handshakes (a SYN, a SYN-ACK, a refusal). */
	struct passive_hs hs[PASSIVE_HS_WAYS];
	/* Line 3: a SYN-ACK (an untracked one: synacks only), with the
	 * histogram's first five buckets (latencies below 32 us). */
	__u64 synacks;          /* SYN-ACKs from the real server */
	__u64 lat_count;        /* handshakes timed (first SYN to SYN-ACK): a sample of 1 in N, see hs_sample_mask */
	__u64 lat_sum_ns;       /* their total latency */
	__u64 lat[PASSIVE_LAT_BUCKETS];
	/* The rest of line 6. */
	__u64 retrans_event_ns; /* ktime of the last retransmission event */
};

/* The endpoint table (passive.c's endpoints and ep_keys) maps three kinds
 * of keys, all laid out as struct passive_rs_key with the kind in proto:
 *
 *   a real server (IPPROTO_TCP): its address and port;
 *   an LVS-DR real server (PASSIVE_EP_DR): the MAC its frames go to in
 *     addr[0..5], the (virtual = real) port, family 0;
 *   one of the director's own addresses (PASSIVE_EP_LOCAL): port 0.
 *
 * It is an open-addressed hash table that Go fills and the programs read
 * with array lookups the verifier inlines (no hash-map helper, no lock): a
 * key's home bucket is its hash & mask; once the home bucket is full (its
 * overflow flag says so) keys go to their second bucket. A way holds a
 * fingerprint of the hash and an entry id: a real server's slot in
 * rs_stats, whose key the lookup checks, or, with PASSIVE_EP_OTHER set,
 * an index in ep_keys (DR and local keys). A real server's key is looked
 * for at its two home slots in rs_stats first (passive.c's rs_find):
 * every real server is in the table, but those at home are found
 * without it. */
#define PASSIVE_EP_DR 0xfe
#define PASSIVE_EP_LOCAL 0xff
#define PASSIVE_EP_WAYS 7
#define PASSIVE_EP_OTHER 0x80000000u

/* A filter of the director's own addresses (passive.c's local_filter,
 * one cache line that Go writes): bit (hash >> 48) % PASSIVE_LOCAL_BITS
 * of each PASSIVE_EP_LOCAL key's endpoint hash is set. A clear bit means
 * the address is not the director's, without reading the endpoint
 * table; a set one is checked there. */
#define PASSIVE_LOCAL_BITS 512

/* One way of a bucket; fp is 0 when the way is free. */
struct passive_ep_way {
	__u32 fp; /* the key's hash >> 32, | 1 */
	__u32 id; /* an rs_stats slot, or PASSIVE_EP_OTHER | an ep_keys index */
};

/* A bucket of the endpoint table: one cache line. */
struct passive_ep_bucket {
	struct passive_ep_way way[PASSIVE_EP_WAYS];
	__u32 overflow; /* non-zero: some keys of this home bucket are in their second bucket */
	__u32 pad;
};

/* An ep_keys entry: a DR or local key and (DR) the real server's slot. */
struct passive_ep {
	struct passive_rs_key key;
	__u32 slot;
};

/* What the tracepoint programs saw of the director's own connections to
 * one real server. */
struct passive_own_stats {
	__u64 connects;    /* SYN_SENT entered */
	__u64 established; /* SYN_SENT -> ESTABLISHED */
	__u64 failed;      /* SYN_SENT -> CLOSE (refused, timed out, aborted) */
	__u64 refused;     /* RST received in SYN_SENT */
	__u64 resets;      /* RST received in any later state */
	__u64 retrans;     /* segments retransmitted */
	__u64 syn_retrans; /* of those, SYNs */
	__u64 lat_count;
	__u64 lat_sum_ns;
	__u64 lat[PASSIVE_LAT_BUCKETS];
	__u64 rst_event_ns; /* ktime of the last reset/refusal event sent up */
};

/* Kinds of ring-buffer events. */
enum passive_event_kind {
	PASSIVE_EV_RST = 1,        /* a RST from the real server (TC) */
	PASSIVE_EV_SYN_RETRANS = 2, /* a client SYN retransmitted (TC) */
	PASSIVE_EV_OWN_RESET = 3,  /* the director's own connection reset or refused */
	PASSIVE_EV_REFUSED = 4,    /* a client SYN answered by a RST from the real server: nothing listens (TC) */
};

/* One event: the first of its kind for a real server after a quiet gap
 * (a refusal: the first in the gap of the RST events, see
 * PASSIVE_RST_REFUSED). */
struct passive_event {
	__u64 ktime_ns;
	struct passive_rs_key rs;
	__u32 kind;
	__u32 pad;
};

/* Indexes of the per-CPU counters of the TC programs. */
enum passive_stat {
	PASSIVE_STAT_TCP = 0,        /* handshake packets examined (SYN, SYN-ACK, RST) */
	PASSIVE_STAT_NOT_IP = 1,     /* not IPv4/IPv6: passed, uncounted */
	PASSIVE_STAT_NOT_TCP = 2,    /* UDP, ICMP, ...: passed, uncounted */
	PASSIVE_STAT_FRAGMENT = 3,   /* IPv4 fragments */
	PASSIVE_STAT_IPV6_EXT = 4,   /* IPv6 with extension headers */
	PASSIVE_STAT_TRUNCATED = 5,  /* headers cut short or malformed */
	PASSIVE_STAT_UNKNOWN_RS = 6, /* handshake packets of no configured real server */
	PASSIVE_STAT_HS_FULL = 7,    /* the real server's handshake ways all in flight: SYN not tracked */
	PASSIVE_STAT_HS_MISS = 8,    /* SYN-ACK with no tracked SYN (evicted, or asymmetric) */
	PASSIVE_STAT_RB_FULL = 9,    /* events lost: ring buffer full */
	PASSIVE_STAT_OWN_FULL = 10,  /* own-connection table full */
	PASSIVE_STAT_MAX = 11,
};

/* Load-time immediates: PASSIVE_IMM(marker) is a 64-bit immediate load
 * of a marker that the loader replaces, in every program's instructions,
 * with the value of the matching variable before the verifier sees them
 * (internal/loader/passive_imm.go keeps the same list). The asm keeps
 * clang from folding the marker into other constants. */
#define PASSIVE_IMM_EP_MASK  0x4c5650494d4d0001ULL
#define PASSIVE_IMM_EP_SEED  0x4c5650494d4d0002ULL
#define PASSIVE_IMM_RS_SLOTS 0x4c5650494d4d0003ULL
#define PASSIVE_IMM_HS_MASK  0x4c5650494d4d0004ULL
#define PASSIVE_IMM_HS_SEED  0x4c5650494d4d0005ULL
#define PASSIVE_IMM_HS_SAMPLE 0x4c5650494d4d0006ULL
#define PASSIVE_IMM(marker) ({ __u64 __imm; asm("%0 = %1 ll" : "=r"(__imm) : "i"(marker)); __imm; })

#endif
