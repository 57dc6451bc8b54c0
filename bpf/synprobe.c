//go:build ignore

/* synprobe.c: TC ingress receiver for lvsprobe's stateless SYN probes.
 *
 * It picks out TCP SYN-ACKs and RSTs whose destination port lies in the
 * prober's reserved source-port range, stamps them with bpf_ktime_get_ns()
 * (CLOCK_MONOTONIC, the clock the Go sender stamps probes with) and hands
 * them up. The cookie (ack - 1 == keyed hash of the 4-tuple) is checked in
 * Go, which holds the rotating secret; this program only filters. Every
 * packet goes on: the kernel answers a SYN-ACK to a port with no socket
 * with its own RST, so no half-open state is left on the server.
 *
 * "Goes on" is TC_ACT_UNSPEC (TCX_NEXT), not TC_ACT_OK: on a TCX hook (and
 * among direct-action clsact filters) TC_ACT_OK is a verdict that ends the
 * chain, so the programs attached after this one - the passive observer's
 * ingress program on the same link, anyone else's - would never see the
 * packet. With no program after it the packet passes as with TC_ACT_OK.
 *
 * Two ways up, selected by the program attached:
 *   synprobe_rb  - one ring-buffer record per answer (headers included);
 *   synprobe_map - newest answer per target in an LRU hash, read in batches.
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

#include "synprobe.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* What every packet gets: no verdict, the next program decides (see the
 * top of the file). */
#define PASS_ON TC_ACT_UNSPEC

/* The reserved source-port range, host order, set by the loader. */
volatile const __u16 port_lo = 0;
volatile const __u16 port_hi = 0;

/* Bytes one record takes in the ring: its 8-byte header and the record,
 * rounded up to 8. */
#define RECORD_SPAN ((8 + sizeof(struct synprobe_answer) + 7) / 8 * 8)

/* Bytes of pending records that make the reader wake at once. */
volatile const __u64 wakeup_bytes = 512 * RECORD_SPAN;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} answers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 17);
	__type(key, struct synprobe_target);
	__type(value, struct synprobe_last);
} last_answer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYNPROBE_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");


/* Emits struct synprobe_answer into BTF for bpf2go's -type. */
const struct synprobe_answer *unused_answer __attribute__((unused));

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

/* A parsed answer: where its network header starts and what it says. */
struct parsed {
	__u32 l3off;
	__u16 family;
	__u16 sport;   /* the server's port, network order */
	__u16 dport;   /* our port, host order */
	__u8 flags;    /* TCP flags byte */
	__u32 ack;     /* host order */
	__u8 addr[16]; /* the server's address */
};

#define TCPF_RST 0x04
#define TCPF_SYN 0x02
#define TCPF_ACK 0x10

/* parse fills p and returns 1 when skb is an answer to one of our probes. */
static __always_inline int parse(struct __sk_buff *skb, struct parsed *p)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct tcphdr *tcp;
	__u32 l4off;

	if ((void *)(eth + 1) > end)
		return 0;
	p->l3off = sizeof(*eth);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end)
			return 0;
		if (ip->protocol != IPPROTO_TCP || ip->ihl < 5 ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			return 0;
		p->family = 4;
		__builtin_memcpy(p->addr, &ip->saddr, 4);
		l4off = sizeof(*eth) + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return 0;
		if (ip6->nexthdr != IPPROTO_TCP)
			return 0;
		p->family = 6;
		__builtin_memcpy(p->addr, &ip6->saddr, 16);
		l4off = sizeof(*eth) + sizeof(*ip6);
	} else {
		return 0;
	}
	if (l4off > 14 + 60)
		return 0;
	tcp = data + l4off;
	if ((void *)(tcp + 1) > end)
		return 0;
	p->dport = bpf_ntohs(tcp->dest);
	if (p->dport < port_lo || p->dport > port_hi)
		return 0;
	p->flags = ((__u8 *)tcp)[13];
	if (!(p->flags & TCPF_RST) &&
	    (p->flags & (TCPF_SYN | TCPF_ACK)) != (TCPF_SYN | TCPF_ACK))
		return 0;
	p->sport = tcp->source;
	p->ack = bpf_ntohl(tcp->ack_seq);
	return 1;
}

SEC("tc")
int synprobe_rb(struct __sk_buff *skb)
{
	struct parsed p = {};
	struct synprobe_answer *a;
	__u64 n, pending;

	if (!parse(skb, &p))
		return PASS_ON;
	count(SYNPROBE_STAT_MATCHED);
	a = bpf_ringbuf_reserve(&answers, sizeof(*a), 0);
	if (!a) {
		count(SYNPROBE_STAT_RB_FULL);
		return PASS_ON;
	}
	a->ktime_ns = bpf_ktime_get_ns();
	n = skb->len > p.l3off ? skb->len - p.l3off : 0;
	a->wire_len = n;
	a->family = p.family;
	if (n > SYNPROBE_CAP)
		n = SYNPROBE_CAP;
	/* Keep clang from reusing the unclamped register for the call. */
	asm volatile("" : "+r"(n));
	/* "n < 20" rather than "n == 0": 6.1's verifier learns a lower bound
	 * from a range check only. No answer is shorter than an IPv4 header. */
	if (n < 20 || n > SYNPROBE_CAP ||
	    bpf_skb_load_bytes(skb, p.l3off, a->pkt, n) < 0)
		n = 0;
	a->cap_len = n;
	/* Wake the reader once, when the pending records first reach
	 * wakeup_bytes, and on every RST (a real server that stopped
	 * listening: the prober drains it at once, loader.AnswerNotifier);
	 * otherwise it polls on a short timer (loader.ReadAnswers, the SYN
	 * prober's send loop), so a steady stream of SYN-ACKs costs no
	 * wakeup each. */
	pending = bpf_ringbuf_query(&answers, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(a, (p.flags & TCPF_RST) ||
				      (pending >= wakeup_bytes &&
				       pending < wakeup_bytes + RECORD_SPAN) ?
				      BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return PASS_ON;
}

SEC("tc")
int synprobe_map(struct __sk_buff *skb)
{
	struct parsed p = {};
	struct synprobe_target k = {};
	struct synprobe_last *v, nv = {};
	__u64 now;

	if (!parse(skb, &p))
		return PASS_ON;
	count(SYNPROBE_STAT_MATCHED);
	now = bpf_ktime_get_ns();
	__builtin_memcpy(k.addr, p.addr, 16);
	k.port = p.sport;
	k.family = p.family;
	v = bpf_map_lookup_elem(&last_answer, &k);
	if (!v) {
		if (bpf_map_update_elem(&last_answer, &k, &nv, BPF_NOEXIST) < 0 &&
		    !(v = bpf_map_lookup_elem(&last_answer, &k))) {
			count(SYNPROBE_STAT_MAP_FULL);
			return PASS_ON;
		}
		v = bpf_map_lookup_elem(&last_answer, &k);
		if (!v) {
			count(SYNPROBE_STAT_MAP_FULL);
			return PASS_ON;
		}
	}
	if (p.flags & TCPF_RST) {
		v->rst_ns = now;
		v->rst_ack = p.ack;
		v->rst_dport = p.dport;
	} else {
		v->synack_ns = now;
		v->synack_ack = p.ack;
		v->synack_dport = p.dport;
	}
	__sync_fetch_and_add(&v->count, 1);
	return PASS_ON;
}
