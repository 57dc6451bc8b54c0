/* Records shared by bpf/synprobe.c and internal/loader (bpf2go mirrors
 * them as Go types). Keep the layout free of implicit padding. */
#ifndef LVSPROBE_SYNPROBE_H
#define LVSPROBE_SYNPROBE_H

#include <linux/types.h>

/* Bytes of the answer copied from its network header on: an IPv6 header
 * (40) plus a TCP header with the largest option space (60) fit. */
#define SYNPROBE_CAP 104

/* One answer (SYN-ACK or RST) to a probe, as the ring buffer carries it. */
struct synprobe_answer {
	__u64 ktime_ns;          /* bpf_ktime_get_ns() at TC ingress */
	__u32 wire_len;          /* bytes from the network header to the end */
	__u16 cap_len;           /* bytes of pkt that are valid */
	__u16 family;            /* 4 or 6 */
	__u8 pkt[SYNPROBE_CAP];  /* the packet from its network header on */
};

/* Key of the per-target map: the answering address and port. */
struct synprobe_target {
	__u8 addr[16];  /* IPv4 in the first 4 bytes, the rest zero */
	__u16 port;     /* network byte order */
	__u16 family;   /* 4 or 6 */
};

/* Value of the per-target map: the newest answer of each kind. */
struct synprobe_last {
	__u64 synack_ns;  /* ktime of the newest SYN-ACK, 0 if none */
	__u64 rst_ns;     /* ktime of the newest RST, 0 if none */
	__u32 synack_ack; /* its acknowledgement number (host order) */
	__u32 rst_ack;    /* its acknowledgement number (host order) */
	__u16 synack_dport; /* our source port it answered (host order) */
	__u16 rst_dport;  /* our source port it answered (host order) */
	__u32 count;      /* answers seen for this target */
};

/* Indexes of the per-CPU counters. */
enum synprobe_stat {
	SYNPROBE_STAT_MATCHED = 0,  /* answers in our port range */
	SYNPROBE_STAT_RB_FULL = 1,  /* answers lost: ring buffer full */
	SYNPROBE_STAT_MAP_FULL = 2, /* answers lost: target map full */
	SYNPROBE_STAT_RST_SENT = 3, /* SYN-ACKs turned into our RST and sent back */
	SYNPROBE_STAT_RST_DROPPED = 4, /* the servers' RSTs to us, dropped after the record */
	SYNPROBE_STAT_RST_KERNEL = 5, /* SYN-ACKs to us left to the stack's RST (IP options, payload, a helper failed) */
	SYNPROBE_STAT_RST_BROKEN = 6, /* SYN-ACKs dropped half rewritten (a helper failed mid-way) */
	SYNPROBE_STAT_MAX = 7,
};

#endif
