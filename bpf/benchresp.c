//go:build ignore

/* benchresp.c: a stateless SYN-ACK responder, a benchmark device that
 * stands in for thousands of real servers on other machines.
 *
 * Attached at TC ingress of the real servers' end of a veth, it answers
 * every TCP SYN (IPv4) to one of its configured address:port ranges with
 * a SYN-ACK built in place: MACs, addresses and ports swapped, the
 * sequence number a keyed hash of the 4-tuple (a retransmitted SYN gets
 * the same answer), the SYN's options replaced by one MSS option and
 * NOPs, both checksums recomputed; the packet leaves again through the
 * same device (bpf_redirect to its egress). Every other TCP segment to a
 * range (the ACK that completes the handshake, the RST of a TCP_CHECK or
 * of the kernel answering a SYN probe's SYN-ACK, a FIN) is dropped: the
 * responder keeps no connection. Everything else goes on to the real
 * stack (TC_ACT_OK), so real servers behind the same link keep working.
 *
 * Its CPU is the receiving side's softirq or NAPI thread, never the
 * director's.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "benchresp.h"

char __license[] SEC("license") = "Dual MIT/GPL";

/* The ranges answered, set by the loader before load; only the first
 * nranges count. */
volatile const struct benchresp_range ranges[BENCHRESP_MAX_RANGES];
volatile const __u32 nranges = 0;

/* Key of the cookie hash, set by the loader. */
volatile const __u32 cookie_key = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BENCHRESP_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);

	if (v)
		(*v)++;
}

/* in_range reports whether daddr:dport (network order) is answered. */
static __always_inline int in_range(__u32 daddr, __u16 dport)
{
	__u16 port = bpf_ntohs(dport);

	for (__u32 i = 0; i < BENCHRESP_MAX_RANGES; i++) {
		if (i >= nranges)
			break;
		if (ranges[i].addr == daddr && port >= ranges[i].port_lo && port <= ranges[i].port_hi)
			return 1;
	}
	return 0;
}

static __always_inline __u32 rol32(__u32 w, int s) { return (w << s) | (w >> (32 - s)); }

/* cookie mixes the 4-tuple with the key (the final mix of a 32-bit
 * murmur-style hash; any good mix does). */
static __always_inline __u32 cookie(__u32 saddr, __u32 daddr, __u32 ports)
{
	__u32 h = cookie_key ^ 0x9e3779b9;

	h ^= saddr;
	h = rol32(h, 13) * 0xcc9e2d51;
	h ^= daddr;
	h = rol32(h, 15) * 0x1b873593;
	h ^= ports;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("tc")
int benchresp(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct tcphdr *tcp;
	__u32 hlen, tlen, sum, seq;
	__u8 mac[ETH_ALEN];
	__u16 *w;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol != IPPROTO_TCP)
		return TC_ACT_OK;
	if (ip->frag_off & bpf_htons(0x3fff)) /* a fragment: not ours to judge */
		return TC_ACT_OK;
	tcp = (void *)(ip + 1);
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;
	if (!in_range(ip->daddr, tcp->dest))
		return TC_ACT_OK;
	if (!tcp->syn || tcp->ack || tcp->rst || tcp->fin) {
		count(BENCHRESP_STAT_DROPPED);
		return TC_ACT_SHOT;
	}
	hlen = tcp->doff * 4;
	tlen = bpf_ntohs(ip->tot_len);
	if (hlen < sizeof(*tcp) || hlen > 60 || tlen != sizeof(*ip) + hlen) {
		count(BENCHRESP_STAT_ODD);
		return TC_ACT_SHOT; /* a SYN with data or a bad header: no answer */
	}
	if ((void *)tcp + hlen > data_end)
		return TC_ACT_SHOT;

	__builtin_memcpy(mac, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);

	{
		__u32 a = ip->saddr;

		ip->saddr = ip->daddr;
		ip->daddr = a;
	}
	ip->ttl = 64;
	ip->check = 0;
	sum = 0;
	w = (__u16 *)ip;
	for (int i = 0; i < 10; i++)
		sum += w[i];
	ip->check = fold(sum);

	{
		__u16 p = tcp->source;

		tcp->source = tcp->dest;
		tcp->dest = p;
	}
	seq = bpf_ntohl(tcp->seq);
	tcp->ack_seq = bpf_htonl(seq + 1);
	tcp->seq = bpf_htonl(cookie(ip->saddr, ip->daddr, ((__u32)tcp->source << 16) | tcp->dest));
	tcp->ack = 1; /* SYN stays set; every other flag is clear (checked above) */
	tcp->psh = 0;
	tcp->urg = 0;
	tcp->ece = 0;
	tcp->cwr = 0;
	tcp->window = bpf_htons(65535);
	tcp->urg_ptr = 0;
	tcp->check = 0;

	/* Options: MSS 1460 where there is room, NOPs for the rest. */
	{
		__u8 *o = (__u8 *)(tcp + 1);

		for (int i = 0; i < 40; i++) {
			if (sizeof(*tcp) + i >= hlen || (void *)(o + i + 1) > data_end)
				break;
			o[i] = 1; /* NOP */
		}
		if (hlen >= sizeof(*tcp) + 4 && (void *)(o + 4) <= data_end) {
			o[0] = 2; /* MSS */
			o[1] = 4;
			o[2] = 1460 >> 8;
			o[3] = 1460 & 0xff;
		}
	}

	/* TCP checksum: the pseudo-header, then the header's 16-bit words. */
	sum = (ip->saddr & 0xffff) + (ip->saddr >> 16) + (ip->daddr & 0xffff) + (ip->daddr >> 16) +
	      bpf_htons(IPPROTO_TCP) + bpf_htons(hlen);
	w = (__u16 *)tcp;
	for (int i = 0; i < 30; i++) {
		if ((__u32)i * 2 >= hlen || (void *)(w + i + 1) > data_end)
			break;
		sum += w[i];
	}
	tcp->check = fold(sum);

	count(BENCHRESP_STAT_SYNACK);
	return bpf_redirect(skb->ifindex, 0);
}
