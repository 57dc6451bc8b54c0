//go:build ignore

/* passive.c: TC programs that watch client traffic to the real servers on
 * the director's real-server-facing links (issue 6).
 *
 *   passive_egress  - toward the real servers: client SYNs, and the same
 *                     4-tuple's SYN seen again (a retransmission: the
 *                     handshake went unanswered);
 *   passive_ingress - from the real servers: SYN-ACKs (with the latency
 *                     since the first SYN, a log2 histogram) and RSTs.
 *
 * Counters live in real_servers, a hash Go fills from the configuration
 * (a packet of any other endpoint is not counted). A real server is the
 * packet's IP destination (LVS-NAT), the outer destination of an IPIP
 * packet (LVS-TUN), or, failing both, its link-layer destination (LVS-DR,
 * where the IP destination is the virtual address; dr_macs). In-flight
 * handshakes live in a direct-mapped table (see handshakes). The first
 * RST (and the first SYN retransmission) of a real server after a quiet
 * gap also goes up a ring buffer at once, so Go sees a dying server
 * without polling.
 *
 * Every packet goes on untouched (TC_ACT_OK). Packets that are not plain
 * TCP over IPv4/IPv6 - truncated headers, IPv4 fragments, IPv6 extension
 * headers, UDP, ICMP - are counted by reason in stats and nowhere else.
 * The director's own packets - sent with no input link, or answering one
 * of its addresses (local_addrs) or SYN-probe ports - are left to the
 * tracepoints of passive_trace.c.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "passive.h"
#include "passive_common.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* The SYN prober's reserved source ports (host order): its answers are not
 * client traffic. 0-0 means none. */
volatile const __u16 probe_port_lo = 0;
volatile const __u16 probe_port_hi = 0;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* the loader sizes it */
	__type(key, struct passive_rs_key);
	__type(value, struct passive_rs_stats);
} real_servers SEC(".maps");

/* LVS-DR real servers by link-layer address and port, filled by Go from
 * the neighbour table. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* the loader sizes it */
	__type(key, struct passive_mac_key);
	__type(value, struct passive_rs_key);
} dr_macs SEC(".maps");

/* The director's own addresses, filled and refreshed by Go. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct passive_addr);
	__type(value, __u8);
} local_addrs SEC(".maps");

/* In-flight handshakes: a direct-mapped table indexed by a keyed hash of
 * the 4-tuple, each slot holding a tag of the hash (a one-way cache with
 * replacement). An array needs no allocation, lock or eviction scan, so a
 * SYN costs about what a data packet does; a slot taken over while its
 * handshake was still in flight is counted (PASSIVE_STAT_HS_FULL). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << 17); /* the loader sizes it: a power of two */
	__type(key, __u32);
	__type(value, struct passive_hs);
} handshakes SEC(".maps");

/* handshakes' max_entries - 1, and the hash key; set by the loader. */
volatile const __u32 hs_mask = (1 << 17) - 1;
volatile const __u64 hs_seed = 0x9e3779b97f4a7c15ULL;

/* How long an unanswered handshake's slot says "in flight": a SYN of the
 * same 4-tuple within it is a retransmission (Linux retries at 1, 3, 7 s). */
#define HS_WINDOW_NS (10ULL * 1000000000ULL)

/* Emit the shared records into BTF for bpf2go's -type. */
const struct passive_event *unused_event __attribute__((unused));

#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* A parsed TCP packet. Ports in network order. */
struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 flags;
	__u8 tunneled;  /* IPIP: tunnel holds the outer destination */
	__u8 tunnel[4];
	__u8 dmac[ETH_ALEN];
};

/* parse fills t and returns 1 for a plain TCP packet whose headers are all
 * in the linear data; otherwise it counts why not and returns 0. */
static __always_inline int parse(struct __sk_buff *skb, struct tuple *t)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;

	if ((void *)(eth + 1) > end) {
		count(PASSIVE_STAT_TRUNCATED);
		return 0;
	}
	__builtin_memcpy(t->dmac, eth->h_dest, ETH_ALEN);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > end) {
			count(PASSIVE_STAT_TRUNCATED);
			return 0;
		}
		if (ip->protocol == IPPROTO_IPIP) {
			/* LVS-TUN: the real server is the outer destination. */
			if (ip->frag_off & bpf_htons(0x3fff)) {
				count(PASSIVE_STAT_FRAGMENT);
				return 0;
			}
			ihl = ip->ihl * 4;
			if (ihl < sizeof(*ip)) {
				count(PASSIVE_STAT_TRUNCATED);
				return 0;
			}
			__builtin_memcpy(t->tunnel, &ip->daddr, 4);
			t->tunneled = 1;
			ip = (void *)ip + ihl;
			if ((void *)(ip + 1) > end) {
				count(PASSIVE_STAT_TRUNCATED);
				return 0;
			}
		}
		if (ip->protocol != IPPROTO_TCP) {
			count(PASSIVE_STAT_NOT_TCP);
			return 0;
		}
		if (ip->frag_off & bpf_htons(0x3fff)) {
			count(PASSIVE_STAT_FRAGMENT);
			return 0;
		}
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip) || bpf_ntohs(ip->tot_len) < ihl + sizeof(*tcp)) {
			count(PASSIVE_STAT_TRUNCATED);
			return 0;
		}
		tcp = (void *)ip + ihl;
		t->family = 4;
		__builtin_memcpy(t->saddr, &ip->saddr, 4);
		__builtin_memcpy(t->daddr, &ip->daddr, 4);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > end) {
			count(PASSIVE_STAT_TRUNCATED);
			return 0;
		}
		if (ip6->nexthdr != IPPROTO_TCP) {
			switch (ip6->nexthdr) {
			case 0:   /* hop-by-hop */
			case 43:  /* routing */
			case 44:  /* fragment */
			case 50:  /* ESP */
			case 51:  /* AH */
			case 60:  /* destination options */
			case 135: /* mobility */
			case 139: /* HIP */
			case 140: /* shim6 */
				count(PASSIVE_STAT_IPV6_EXT);
				break;
			default:
				count(PASSIVE_STAT_NOT_TCP);
			}
			return 0;
		}
		if (bpf_ntohs(ip6->payload_len) < sizeof(*tcp)) {
			count(PASSIVE_STAT_TRUNCATED);
			return 0;
		}
		tcp = (void *)(ip6 + 1);
		t->family = 6;
		__builtin_memcpy(t->saddr, &ip6->saddr, 16);
		__builtin_memcpy(t->daddr, &ip6->daddr, 16);
	} else {
		count(PASSIVE_STAT_NOT_IP);
		return 0;
	}
	if ((void *)(tcp + 1) > end || tcp->doff < 5) {
		count(PASSIVE_STAT_TRUNCATED);
		return 0;
	}
	count(PASSIVE_STAT_TCP);
	t->sport = tcp->source;
	t->dport = tcp->dest;
	t->flags = ((__u8 *)tcp)[13];
	return 1;
}

/* probe_port reports whether a host-order port is one of the SYN prober's. */
static __always_inline int probe_port(__u16 port)
{
	return probe_port_hi && port >= probe_port_lo && port <= probe_port_hi;
}

/* local_addr reports whether addr is one of the director's own addresses
 * (local_addrs, filled by Go): packets to it are the director's own. */
static __always_inline int local_addr(__u8 *addr, __u8 family)
{
	struct passive_addr a = {};

	__builtin_memcpy(a.addr, addr, 16);
	a.family = family;
	return bpf_map_lookup_elem(&local_addrs, &a) != 0;
}

/* mix64 is a 64-bit finaliser (xor-shift, multiply). */
static __always_inline __u64 mix64(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* hs_hash hashes a handshake's 4-tuple, client and server in that order
 * whichever way the packet goes. */
static __always_inline __u64 hs_hash(struct tuple *t, int egress)
{
	__u8 *c = egress ? t->saddr : t->daddr;
	__u8 *sv = egress ? t->daddr : t->saddr;
	__u32 cw[4], sw[4];
	__u64 h;

	__builtin_memcpy(cw, c, 16);
	__builtin_memcpy(sw, sv, 16);
	h = mix64(hs_seed ^ ((__u64)cw[0] << 32 | sw[0]));
	if (t->family == 6) {
		h = mix64(h ^ ((__u64)cw[1] << 32 | sw[1]));
		h = mix64(h ^ ((__u64)cw[2] << 32 | sw[2]));
		h = mix64(h ^ ((__u64)cw[3] << 32 | sw[3]));
	}
	return mix64(h ^ ((__u64)(egress ? t->sport : t->dport) << 16 | (egress ? t->dport : t->sport)));
}

static __always_inline int handle(struct __sk_buff *skb, int egress)
{
	struct tuple t = {};
	struct passive_rs_key rk = {};
	struct passive_rs_stats *v;
	struct passive_hs *h;
	__u64 now, hash;
	__u32 idx, tag;
	int live, ours;

	if (!parse(skb, &t))
		return TC_ACT_OK;
	if (egress) {
		/* A client's SYN toward a real server. */
		if ((t.flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) != TCPF_SYN)
			return TC_ACT_OK;
		/* Sent by the director itself (no input link): a check or a
		 * SYN probe, left to the tracepoints. */
		if (skb->ingress_ifindex == 0)
			return TC_ACT_OK;
		if (t.tunneled)
			__builtin_memcpy(rk.addr, t.tunnel, 4);
		else
			__builtin_memcpy(rk.addr, t.daddr, 16);
		rk.port = t.dport;
	} else {
		/* A real server's SYN-ACK or RST. */
		if (!(t.flags & TCPF_RST) &&
		    (t.flags & (TCPF_SYN | TCPF_ACK)) != (TCPF_SYN | TCPF_ACK))
			return TC_ACT_OK;
		__builtin_memcpy(rk.addr, t.saddr, 16);
		rk.port = t.sport;
	}
	rk.proto = IPPROTO_TCP;
	rk.family = t.family;
	v = bpf_map_lookup_elem(&real_servers, &rk);
	if (!v && egress) {
		/* LVS-DR: the destination is the virtual address; the real
		 * server is the link-layer destination. */
		struct passive_mac_key mk = {};
		struct passive_rs_key *dr;

		__builtin_memcpy(mk.mac, t.dmac, ETH_ALEN);
		mk.port = t.dport;
		dr = bpf_map_lookup_elem(&dr_macs, &mk);
		if (dr)
			v = bpf_map_lookup_elem(&real_servers, dr);
		if (v)
			__builtin_memcpy(&rk, dr, sizeof(rk));
	}
	if (!v) {
		count(PASSIVE_STAT_UNKNOWN_RS);
		return TC_ACT_OK;
	}
	/* An answer to the director itself: a SYN probe's or a check's. */
	if (!egress && (probe_port(bpf_ntohs(t.dport)) || local_addr(t.daddr, t.family)))
		return TC_ACT_OK;

	now = bpf_ktime_get_ns();
	hash = hs_hash(&t, egress);
	idx = (__u32)hash & hs_mask;
	tag = (__u32)(hash >> 32) | 1; /* never 0: 0 is an empty slot */
	h = bpf_map_lookup_elem(&handshakes, &idx);
	if (!h)
		return TC_ACT_OK; /* cannot happen: idx is within the array */
	live = h->syns && now - h->syn_ns < HS_WINDOW_NS; /* an unanswered handshake */
	if (egress) {
		__sync_fetch_and_add(&v->syns, 1);
		if (h->tag != tag || !live) {
			if (live)
				count(PASSIVE_STAT_HS_FULL); /* another in-flight handshake's slot */
			h->tag = tag;
			h->syn_ns = now;
			h->syns = 1;
			return TC_ACT_OK;
		}
		/* The same 4-tuple's SYN again: the handshake went unanswered. */
		h->syns++;
		__sync_fetch_and_add(&v->syn_retrans, 1);
		if (now - v->retrans_event_ns >= event_gap_ns) {
			v->retrans_event_ns = now;
			send_event(&rk, PASSIVE_EV_SYN_RETRANS, now);
		}
		return TC_ACT_OK;
	}
	ours = h->tag == tag && live;
	if (t.flags & TCPF_RST) {
		__sync_fetch_and_add(&v->rsts, 1);
		if (ours) {
			__sync_fetch_and_add(&v->refused, 1);
			h->syns = 0; /* answered */
		}
		if (now - v->rst_event_ns >= event_gap_ns) {
			v->rst_event_ns = now;
			send_event(&rk, PASSIVE_EV_RST, now);
		}
		return TC_ACT_OK;
	}
	__sync_fetch_and_add(&v->synacks, 1);
	if (!ours) {
		count(PASSIVE_STAT_HS_MISS);
		return TC_ACT_OK;
	}
	/* Karn: a retransmitted handshake's latency is ambiguous. */
	if (h->syns == 1 && now > h->syn_ns)
		record_latency(v->lat, &v->lat_count, &v->lat_sum_ns, now - h->syn_ns);
	h->syns = 0; /* answered */
	return TC_ACT_OK;
}

SEC("tc")
int passive_egress(struct __sk_buff *skb)
{
	return handle(skb, 1);
}

SEC("tc")
int passive_ingress(struct __sk_buff *skb)
{
	return handle(skb, 0);
}
