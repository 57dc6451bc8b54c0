/* Records shared by bpf/benchresp.c and internal/testnet (bpf2go mirrors
 * them as Go types). Keep the layout free of implicit padding. */
#ifndef LVSPROBE_BENCHRESP_H
#define LVSPROBE_BENCHRESP_H

#include <linux/types.h>

/* Most address:port ranges one responder answers. */
#define BENCHRESP_MAX_RANGES 16

/* One range answered: an IPv4 address and its ports port_lo..port_hi. */
struct benchresp_range {
	__u32 addr;    /* IPv4, network byte order */
	__u16 port_lo; /* first port, host order */
	__u16 port_hi; /* last port, host order */
};

/* Indexes of the per-CPU counters. */
enum benchresp_stat {
	BENCHRESP_STAT_SYNACK = 0,  /* SYN-ACKs sent */
	BENCHRESP_STAT_DROPPED = 1, /* other segments to a range, dropped */
	BENCHRESP_STAT_ODD = 2,     /* SYNs not answered (data, odd header), dropped */
	BENCHRESP_STAT_MAX = 3,
};

#endif
