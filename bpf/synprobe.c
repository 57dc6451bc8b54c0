//go:build ignore

/* synprobe.c: TC ingress receiver for lvsprobe's stateless SYN probes.
 *
 * It picks out TCP SYN-ACKs and RSTs whose destination port lies in the
 * prober's reserved source-port range, stamps them with bpf_ktime_get_ns()
 * (CLOCK_MONOTONIC, the clock the Go sender stamps probes with) and hands
 * them up. The cookie (ack - 1 == keyed hash of the 4-tuple) is checked in
 * Go, which holds the rotating secret; this program only filters.
 *
 * The real server must not keep a half-open connection, so every SYN-ACK
 * gets a RST. By default (answer_rst) this program sends it: an answer
 * addressed to this host (the FIB says it is not forwarded: an LVS-NAT
 * reply to a client whose port happens to lie in the range goes on
 * untouched) is, once recorded, rewritten in place into the RST the
 * kernel would send (RFC 9293 3.10.7.1: seq = the SYN-ACK's ack, no ACK,
 * no options, window 0; addresses, ports and MACs swapped, TTL reset) and
 * redirected out of the device it came in on; a RST from the server (port
 * closed) is recorded and dropped, which is all the stack would do with
 * it. The director's stack then never sees a probe answer: no ip_rcv, no
 * socket lookup, no RST routed and sent through it. Checksums are updated
 * incrementally (bpf_l4_csum_replace), so a SYN-ACK that arrived with its
 * checksum left to offload (CHECKSUM_PARTIAL, from a local stack over
 * veth or virtio) leaves as a RST whose checksum the device completes.
 * A SYN-ACK the rewrite does not handle (IP options, payload) goes on to
 * the stack as before. With answer_rst off every packet goes on, and the
 * kernel answers a SYN-ACK to a port with no socket with its own RST.
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

/* 1: answer SYN-ACKs to us with our RST and drop RSTs to us (see the top
 * of the file); 0: leave both to the stack. Set by the loader. */
volatile const __u8 answer_rst = 1;

/* TTL (IPv4) and hop limit (IPv6) of the RSTs sent, the stack's default
 * (net.ipv4.ip_default_ttl, net.ipv6.conf.all.hop_limit), set by the
 * loader. */
volatile const __u8 rst_ttl = 64;
volatile const __u8 rst_hop_limit = 64;

/* Bytes one record takes in the ring: its 8-byte header and the record,
 * rounded up to 8. */
#define RECORD_SPAN ((8 + sizeof(struct synprobe_answer) + 7) / 8 * 8)

/* Bytes of pending records that make the reader wake at once. */
volatile const __u64 wakeup_bytes = 512 * RECORD_SPAN;

/* A RST wakes the reader at most once per rst_wake_gap_ns (a forced
 * wakeup is an irq_work, ~6 us of the NAPI thread on a VM, and real
 * servers that stay dead answer every probe with a RST). The Go notifier
 * sleeps longer than this after each wakeup and then drains once more
 * (internal/prober/synprobe/notify.go), which picks up the RSTs that came
 * within the gap: none waits longer than it did when each RST woke. */
volatile const __u64 rst_wake_gap_ns = 1000000;

/* bpf_ktime_get_ns() of the last wakeup for a RST (racy across CPUs: at
 * worst one more wakeup). */
__u64 rst_woke_ns = 0;

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
	__u32 l4off;
	__u16 family;
	__u16 sport;   /* the server's port, network order */
	__u16 dport;   /* our port, host order */
	__u8 flags;    /* TCP flags byte */
	__u8 tos;      /* IPv4 TOS (the RST keeps it, less the ECN bits) */
	__u32 ack;     /* host order */
	__u16 l4len;   /* TCP header and payload, from the IP header */
	__u16 ihl_ok;  /* 1: an IPv4 header without options, or IPv6 */
	__u8 addr[16]; /* the server's address */
	__u8 daddr[16]; /* ours: the answer's destination */
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
		__builtin_memcpy(p->daddr, &ip->daddr, 4);
		p->tos = ip->tos;
		p->ihl_ok = ip->ihl == 5;
		l4off = sizeof(*eth) + ip->ihl * 4;
		p->l4len = bpf_ntohs(ip->tot_len) - ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return 0;
		if (ip6->nexthdr != IPPROTO_TCP)
			return 0;
		p->family = 6;
		__builtin_memcpy(p->addr, &ip6->saddr, 16);
		__builtin_memcpy(p->daddr, &ip6->daddr, 16);
		p->ihl_ok = 1;
		l4off = sizeof(*eth) + sizeof(*ip6);
		p->l4len = bpf_ntohs(ip6->payload_len);
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
	p->l4off = l4off;
	return 1;
}

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef PACKET_HOST
#define PACKET_HOST 0
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

/* to_us reports whether the stack would deliver p's packet locally rather
 * than forward it: the FIB finds a local (or broadcast) route, or
 * forwarding is off on the device, when nothing is forwarded at all. A
 * forwarded packet - an LVS-NAT reply to a client port in our range - is
 * none of our business. */
static __always_inline int to_us(struct __sk_buff *skb, struct parsed *p)
{
	struct bpf_fib_lookup fib = {};
	long r;

	/* A frame to another MAC (a promiscuous device) the stack drops. */
	if (skb->pkt_type != PACKET_HOST)
		return 0;
	fib.l4_protocol = IPPROTO_TCP;
	fib.sport = p->sport;
	fib.dport = bpf_htons(p->dport);
	fib.ifindex = skb->ifindex;
	if (p->family == 4) {
		fib.family = AF_INET;
		fib.tot_len = p->l4len + 20;
		__builtin_memcpy(&fib.ipv4_src, p->addr, 4);
		__builtin_memcpy(&fib.ipv4_dst, p->daddr, 4);
	} else {
		fib.family = AF_INET6;
		fib.tot_len = p->l4len;
		__builtin_memcpy(fib.ipv6_src, p->addr, 16);
		__builtin_memcpy(fib.ipv6_dst, p->daddr, 16);
	}
	r = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	return r == BPF_FIB_LKUP_RET_NOT_FWDED || r == BPF_FIB_LKUP_RET_FWD_DISABLED;
}

/* Outcomes of rst_in_place. */
#define RST_SENT 0   /* the packet is now the RST */
#define RST_KERNEL 1 /* untouched: the stack answers it */
#define RST_BROKEN 2 /* half rewritten: drop it */

/* fold16 folds a 32-bit one's complement sum to 16 bits. */
static __always_inline __u16 fold16(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* rst_in_place rewrites the SYN-ACK p in skb into the RST the stack would
 * answer it with, headers at the same offsets, the tail trimmed. */
static __always_inline int rst_in_place(struct __sk_buff *skb, struct parsed *p)
{
	__u8 old[84] = {}, mac[ETH_ALEN];
	struct tcphdr nt = {};
	struct ethhdr eth;
	__u32 tcplen = p->l4len, l4off = p->l4off, newlen;
	__s64 diff;

	/* The header must be all there is: a SYN-ACK with data (never to a
	 * bare SYN, but not ours to judge) or IP options goes to the stack. */
	if (!p->ihl_ok || tcplen < 20 || tcplen > 60 || (tcplen & 3))
		return RST_KERNEL;
	/* The same value, its bounds ([20, 83]) spelled out for the
	 * verifier: the barrier keeps clang from dropping the mask. */
	tcplen -= 20;
	asm volatile("" : "+r"(tcplen));
	tcplen = (tcplen & 63) + 20;
	if (bpf_skb_load_bytes(skb, l4off, old, tcplen) < 0 ||
	    (old[12] >> 4) * 4 != tcplen)
		return RST_KERNEL;
	if (bpf_skb_load_bytes(skb, 0, &eth, sizeof(eth)) < 0)
		return RST_KERNEL;

	/* The new TCP header, its checksum field the old one's, so that the
	 * difference below leaves the field out. */
	nt.source = bpf_htons(p->dport);
	nt.dest = p->sport;
	__builtin_memcpy(&nt.seq, old + 8, 4); /* the SYN-ACK's ack */
	nt.doff = 5;
	nt.rst = 1;
	__builtin_memcpy(&nt.check, old + 16, 2);
	diff = bpf_csum_diff((__be32 *)old, tcplen, (__be32 *)&nt, sizeof(nt), 0);
	if (diff < 0)
		return RST_KERNEL;

	newlen = l4off + sizeof(nt);
	if (skb->len > newlen && bpf_skb_change_tail(skb, newlen, 0) < 0)
		return RST_KERNEL;

	/* From here on the packet is ours to finish or drop. */
	__builtin_memcpy(mac, eth.h_dest, ETH_ALEN);
	__builtin_memcpy(eth.h_dest, eth.h_source, ETH_ALEN);
	__builtin_memcpy(eth.h_source, mac, ETH_ALEN);
	if (bpf_skb_store_bytes(skb, 0, &eth, 2 * ETH_ALEN, 0) < 0)
		return RST_BROKEN;

	if (p->family == 4) {
		struct iphdr ip = {};
		__u16 *w = (__u16 *)&ip;
		__u32 sum = 0;

		ip.version = 4;
		ip.ihl = 5;
		ip.tos = p->tos & ~3;
		ip.tot_len = bpf_htons(20 + sizeof(nt));
		ip.frag_off = bpf_htons(0x4000); /* DF, ID 0, as the stack's RSTs */
		ip.ttl = rst_ttl;
		ip.protocol = IPPROTO_TCP;
		__builtin_memcpy(&ip.saddr, p->daddr, 4);
		__builtin_memcpy(&ip.daddr, p->addr, 4);
#pragma unroll
		for (int i = 0; i < 10; i++)
			sum += w[i];
		ip.check = ~fold16(sum);
		if (bpf_skb_store_bytes(skb, p->l3off, &ip, sizeof(ip), BPF_F_RECOMPUTE_CSUM) < 0)
			return RST_BROKEN;
	} else {
		struct ipv6hdr ip6 = {};

		ip6.version = 6;
		ip6.payload_len = bpf_htons(sizeof(nt));
		ip6.nexthdr = IPPROTO_TCP;
		ip6.hop_limit = rst_hop_limit;
		__builtin_memcpy(&ip6.saddr, p->daddr, 16);
		__builtin_memcpy(&ip6.daddr, p->addr, 16);
		if (bpf_skb_store_bytes(skb, p->l3off, &ip6, sizeof(ip6), BPF_F_RECOMPUTE_CSUM) < 0)
			return RST_BROKEN;
	}

	if (bpf_skb_store_bytes(skb, l4off, &nt, sizeof(nt), BPF_F_RECOMPUTE_CSUM) < 0)
		return RST_BROKEN;
	/* The header's own change (a no-op on a checksum left to offload,
	 * which the device computes over the new header), then the pseudo
	 * header's length; the swapped addresses sum the same. */
	if (bpf_l4_csum_replace(skb, l4off + 16, 0, diff, 0) < 0 ||
	    bpf_l4_csum_replace(skb, l4off + 16, bpf_htonl(tcplen), bpf_htonl(sizeof(nt)),
				BPF_F_PSEUDO_HDR | sizeof(__u32)) < 0)
		return RST_BROKEN;
	/* A checksum the device vouched for no longer applies. */
	bpf_csum_level(skb, BPF_CSUM_LEVEL_RESET);
	return RST_SENT;
}

/* verdict decides p's packet's fate once it is recorded: with answer_rst,
 * a SYN-ACK to us leaves as our RST and a RST to us is dropped; anything
 * else goes on. */
static __always_inline int verdict(struct __sk_buff *skb, struct parsed *p)
{
	if (!answer_rst || !to_us(skb, p))
		return PASS_ON;
	if (p->flags & TCPF_RST) {
		count(SYNPROBE_STAT_RST_DROPPED);
		return TC_ACT_SHOT;
	}
	switch (rst_in_place(skb, p)) {
	case RST_SENT:
		count(SYNPROBE_STAT_RST_SENT);
		return bpf_redirect(skb->ifindex, 0);
	case RST_KERNEL:
		count(SYNPROBE_STAT_RST_KERNEL);
		return PASS_ON;
	default:
		count(SYNPROBE_STAT_RST_BROKEN);
		return TC_ACT_SHOT;
	}
}

SEC("tc")
int synprobe_rb(struct __sk_buff *skb)
{
	struct parsed p = {};
	struct synprobe_answer *a;
	__u64 n, pending;
	int wake;

	if (!parse(skb, &p))
		return PASS_ON;
	count(SYNPROBE_STAT_MATCHED);
	a = bpf_ringbuf_reserve(&answers, sizeof(*a), 0);
	if (!a) {
		count(SYNPROBE_STAT_RB_FULL);
		return verdict(skb, &p);
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
	 * wakeup_bytes, and on a RST (a real server that stopped
	 * listening: the prober drains it at once, loader.AnswerNotifier),
	 * at most once per rst_wake_gap_ns;
	 * otherwise it polls on a short timer (loader.ReadAnswers, the SYN
	 * prober's send loop), so a steady stream of SYN-ACKs costs no
	 * wakeup each. */
	pending = bpf_ringbuf_query(&answers, BPF_RB_AVAIL_DATA);
	wake = pending >= wakeup_bytes && pending < wakeup_bytes + RECORD_SPAN;
	if ((p.flags & TCPF_RST) &&
	    (!rst_woke_ns || a->ktime_ns - rst_woke_ns >= rst_wake_gap_ns)) {
		rst_woke_ns = a->ktime_ns;
		wake = 1;
	}
	bpf_ringbuf_submit(a, wake ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return verdict(skb, &p);
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
			return verdict(skb, &p);
		}
		v = bpf_map_lookup_elem(&last_answer, &k);
		if (!v) {
			count(SYNPROBE_STAT_MAP_FULL);
			return verdict(skb, &p);
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
	return verdict(skb, &p);
}
