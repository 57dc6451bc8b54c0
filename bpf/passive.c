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
 * (a packet of any other endpoint is not counted); in-flight handshakes in
 * an LRU hash. The first RST (and the first SYN retransmission) of a real
 * server after a quiet gap also goes up a ring buffer at once, so Go sees a
 * dying server without polling.
 *
 * Every packet goes on untouched (TC_ACT_OK). Packets that are not plain
 * TCP over IPv4/IPv6 - truncated headers, IPv4 fragments, IPv6 extension
 * headers, UDP, ICMP - are counted by reason in stats and nowhere else.
 * The director's own packets (the SYN prober's ports, or a local socket's:
 * the checks) are left to the tracepoints of passive_trace.c.
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

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536); /* the loader sizes it */
	__type(key, struct passive_hs_key);
	__type(value, struct passive_hs);
} handshakes SEC(".maps");

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
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > end) {
			count(PASSIVE_STAT_TRUNCATED);
			return 0;
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

/* local_socket reports whether a packet belongs to a socket of the
 * director itself (a check's connection): it looks the connection up as
 * an incoming packet of it would be, so an outgoing packet's tuple is
 * turned around. Only handshake packets get here. */
static __always_inline int local_socket(struct __sk_buff *skb, struct tuple *t, int egress)
{
	struct bpf_sock_tuple st = {};
	struct bpf_sock *sk;
	__u8 *remote = egress ? t->daddr : t->saddr;
	__u8 *local = egress ? t->saddr : t->daddr;
	__u16 rport = egress ? t->dport : t->sport;
	__u16 lport = egress ? t->sport : t->dport;
	__u32 len;

	if (t->family == 4) {
		__builtin_memcpy(&st.ipv4.saddr, remote, 4);
		__builtin_memcpy(&st.ipv4.daddr, local, 4);
		st.ipv4.sport = rport;
		st.ipv4.dport = lport;
		len = sizeof(st.ipv4);
	} else {
		__builtin_memcpy(st.ipv6.saddr, remote, 16);
		__builtin_memcpy(st.ipv6.daddr, local, 16);
		st.ipv6.sport = rport;
		st.ipv6.dport = lport;
		len = sizeof(st.ipv6);
	}
	sk = bpf_skc_lookup_tcp(skb, &st, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

static __always_inline void hs_key(struct passive_hs_key *k, struct tuple *t, int egress)
{
	if (egress) {
		__builtin_memcpy(k->client, t->saddr, 16);
		__builtin_memcpy(k->server, t->daddr, 16);
		k->cport = t->sport;
		k->sport = t->dport;
	} else {
		__builtin_memcpy(k->client, t->daddr, 16);
		__builtin_memcpy(k->server, t->saddr, 16);
		k->cport = t->dport;
		k->sport = t->sport;
	}
	k->family = t->family;
}

static __always_inline int handle(struct __sk_buff *skb, int egress)
{
	struct tuple t = {};
	struct passive_rs_key rk = {};
	struct passive_hs_key hk = {};
	struct passive_rs_stats *v;
	struct passive_hs *h;
	__u64 now;

	if (!parse(skb, &t))
		return TC_ACT_OK;
	if (egress) {
		/* A client's SYN toward a real server. */
		if ((t.flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) != TCPF_SYN)
			return TC_ACT_OK;
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
	if (!v) {
		count(PASSIVE_STAT_UNKNOWN_RS);
		return TC_ACT_OK;
	}
	/* The director's own packets: a SYN probe, or a local socket's. */
	if (probe_port(bpf_ntohs(egress ? t.sport : t.dport)) || local_socket(skb, &t, egress))
		return TC_ACT_OK;

	now = bpf_ktime_get_ns();
	hs_key(&hk, &t, egress);
	h = bpf_map_lookup_elem(&handshakes, &hk);
	if (egress) {
		__sync_fetch_and_add(&v->syns, 1);
		if (!h) {
			struct passive_hs nh = { .syn_ns = now, .syns = 1 };

			if (bpf_map_update_elem(&handshakes, &hk, &nh, BPF_NOEXIST) == 0)
				return TC_ACT_OK;
			h = bpf_map_lookup_elem(&handshakes, &hk);
			if (!h) {
				count(PASSIVE_STAT_HS_FULL);
				return TC_ACT_OK;
			}
		}
		/* The same 4-tuple's SYN again: the handshake went unanswered. */
		__sync_fetch_and_add(&h->syns, 1);
		__sync_fetch_and_add(&v->syn_retrans, 1);
		if (now - v->retrans_event_ns >= event_gap_ns) {
			v->retrans_event_ns = now;
			send_event(&rk, PASSIVE_EV_SYN_RETRANS, now);
		}
		return TC_ACT_OK;
	}
	if (t.flags & TCPF_RST) {
		__sync_fetch_and_add(&v->rsts, 1);
		if (h) {
			__sync_fetch_and_add(&v->refused, 1);
			bpf_map_delete_elem(&handshakes, &hk);
		}
		if (now - v->rst_event_ns >= event_gap_ns) {
			v->rst_event_ns = now;
			send_event(&rk, PASSIVE_EV_RST, now);
		}
		return TC_ACT_OK;
	}
	__sync_fetch_and_add(&v->synacks, 1);
	if (!h) {
		count(PASSIVE_STAT_HS_MISS);
		return TC_ACT_OK;
	}
	/* Karn: a retransmitted handshake's latency is ambiguous. */
	if (h->syns == 1 && now > h->syn_ns)
		record_latency(v->lat, &v->lat_count, &v->lat_sum_ns, now - h->syn_ns);
	bpf_map_delete_elem(&handshakes, &hk);
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
