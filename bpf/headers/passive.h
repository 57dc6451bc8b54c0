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

/* What the TC programs saw of one real server's traffic. Counters only
 * grow; Go takes differences between reads. */
struct passive_rs_stats {
	__u64 syns;        /* client SYNs forwarded to the real server */
	__u64 syn_retrans; /* of those, a SYN seen again for the same 4-tuple */
	__u64 synacks;     /* SYN-ACKs from the real server */
	__u64 rsts;        /* RSTs from the real server */
	__u64 refused;     /* of those, RSTs answering an in-flight SYN */
	__u64 lat_count;   /* handshakes timed (first SYN to SYN-ACK) */
	__u64 lat_sum_ns;  /* their total latency */
	__u64 lat[PASSIVE_LAT_BUCKETS];
	__u64 rst_event_ns;     /* ktime of the last RST event sent up */
	__u64 retrans_event_ns; /* ktime of the last retransmission event */
};

/* An LVS-DR real server as the link layer sees it. */
struct passive_mac_key {
	__u8 mac[6];
	__u16 port; /* network byte order: the virtual (and real) port */
};

/* One of the director's own addresses. */
struct passive_addr {
	__u8 addr[16]; /* IPv4 in the first 4 bytes, the rest zero */
	__u32 family;  /* 4 or 6 */
};

/* A slot of the handshake table (indexed by a hash of the 4-tuple). */
struct passive_hs {
	__u64 syn_ns; /* ktime of the handshake's first SYN */
	__u32 tag;    /* the rest of the 4-tuple's hash; 0: never used */
	__u32 syns;   /* SYNs seen; 0 once answered (SYN-ACK or RST) */
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
};

/* One event: the first of its kind for a real server after a quiet gap. */
struct passive_event {
	__u64 ktime_ns;
	struct passive_rs_key rs;
	__u32 kind;
	__u32 pad;
};

/* Indexes of the per-CPU counters of the TC programs. */
enum passive_stat {
	PASSIVE_STAT_TCP = 0,        /* TCP packets parsed */
	PASSIVE_STAT_NOT_IP = 1,     /* not IPv4/IPv6: passed, uncounted */
	PASSIVE_STAT_NOT_TCP = 2,    /* UDP, ICMP, ...: passed, uncounted */
	PASSIVE_STAT_FRAGMENT = 3,   /* IPv4 fragments */
	PASSIVE_STAT_IPV6_EXT = 4,   /* IPv6 with extension headers */
	PASSIVE_STAT_TRUNCATED = 5,  /* headers cut short or malformed */
	PASSIVE_STAT_UNKNOWN_RS = 6, /* handshake packets of no configured real server */
	PASSIVE_STAT_HS_FULL = 7,    /* handshake table full: SYN not tracked */
	PASSIVE_STAT_HS_MISS = 8,    /* SYN-ACK with no tracked SYN (evicted, or asymmetric) */
	PASSIVE_STAT_RB_FULL = 9,    /* events lost: ring buffer full */
	PASSIVE_STAT_OWN_FULL = 10,  /* own-connection table full */
	PASSIVE_STAT_MAX = 11,
};

#endif
