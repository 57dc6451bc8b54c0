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
 * Counters live in rs_stats, an array indexed by the real server's slot,
 * which Go gives each real server of the configuration (a packet of any
 * other endpoint is not counted). A real server is the packet's IP
 * destination (LVS-NAT), the outer destination of an IPIP packet
 * (LVS-TUN), or, failing both, its link-layer destination (LVS-DR, where
 * the IP destination is the virtual address). Its slot is found at one
 * of its two home slots (rs_home, rs_home2 of its hash; Go puts every
 * real server at a home that is free: one cache line, the one the packet
 * then counts in) or else in the endpoint table (see passive.h), a hash table of arrays: no
 * hash-map helper runs per packet. In-flight handshakes live in eight
 * ways inside the real server's own entry (struct passive_hs), on the
 * line after the one the packet finds its real server by, in the same
 * page: a SYN touches no memory that its real server's counters do not
 * bring in anyway (docs/benchmarks.md 17.2). The first RST
 * (and the first SYN retransmission) of a real server after a quiet gap
 * also goes up a ring buffer at once, so Go sees a dying server without
 * polling; so does the gap's first refusal (a RST answering a tracked
 * SYN), even after an established connection's reset started the gap.
 *
 * Per handshake packet: one endpoint lookup (the home slots' lines, plus
 * the endpoint table for a real server away from home; two lookups for a
 * DR SYN, two for an untracked answer: the real server, then the
 * director's own address), the real server's handshake line (not for a
 * RST whose sequence is not 0: it resets a connection, it cannot answer
 * a SYN), one clock read (the coarse clock
 * for a RST and for the SYN and SYN-ACK of a handshake outside the
 * timed sample, see hs_sample_mask; the precise one for a timed
 * handshake's, and when an event may be due), two to five
 * atomic adds on the real server's counters. Data packets and ACKs of
 * IPv4 without options leave after a few header checks and the flags
 * (four instruction lines, no map), others after the general parse;
 * neither is counted.
 *
 * Every packet goes on untouched with TC_ACT_UNSPEC (TCX_NEXT), not
 * TC_ACT_OK: on a TCX hook, and among direct-action clsact filters,
 * TC_ACT_OK is a verdict that ends the chain, and the programs after this
 * one (the SYN prober's receiver on a link attached in the other order,
 * anyone else's) would never see the packet; with nothing after it the
 * packet passes as with TC_ACT_OK. Packets that are not plain
 * TCP over IPv4/IPv6 - truncated headers, IPv4 fragments, IPv6 extension
 * headers, UDP, ICMP - are counted by reason in stats and nowhere else.
 * The director's own packets - sent with no input link, or answering one
 * of its addresses (PASSIVE_EP_LOCAL keys) or SYN-probe ports - are left to the
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

/* What every packet gets: no verdict, the next program decides (see the
 * top of the file). */
#define PASS_ON TC_ACT_UNSPEC

/* The SYN prober's reserved source ports (host order): its answers are not
 * client traffic. 0-0 means none. */
volatile const __u16 probe_port_lo = 0;
volatile const __u16 probe_port_hi = 0;

/* The arrays the handshake path reads are BPF_F_MMAPABLE for their
 * alignment, not to be mapped: an array's values start 312 bytes into
 * struct bpf_array (6.18; 56 mod 64), so without the flag every 64-byte
 * endpoint bucket, and the first 64 bytes of every rs_stats entry, lay
 * across two cache lines, and one handshake slot in four did too. With
 * it the kernel puts the values on a page boundary (array_map_alloc),
 * so each of those is one line. Go reads and writes them as before. */

/* Each real server's counters, by slot (see struct passive_rs_stats). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 16384); /* the loader sizes it */
	__type(key, __u32);
	__type(value, struct passive_rs_stats);
} rs_stats SEC(".maps");

/* The endpoint table's buckets (see passive.h); a power of two of them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 8192); /* the loader sizes it */
	__type(key, __u32);
	__type(value, struct passive_ep_bucket);
} endpoints SEC(".maps");

/* The endpoint table's DR and local keys. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 16384 + 4096); /* the loader sizes it */
	__type(key, __u32);
	__type(value, struct passive_ep);
} ep_keys SEC(".maps");

/* The filter of the director's own addresses (see PASSIVE_LOCAL_BITS). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[PASSIVE_LOCAL_BITS / 64]);
} local_filter SEC(".maps");

/* endpoints' max_entries - 1, and the table's hash key; set by the loader. */
volatile const __u32 ep_mask = 8191;
volatile const __u64 ep_seed = 0x2545f4914f6cdd1dULL;

/* rs_stats' max_entries, set by the loader. A real server's two home
 * slots are functions of its endpoint hash (rs_home, rs_home2); Go gives
 * a real server one of them whenever it is free, so the lookup of most
 * real servers waits for one cache line, the first of their own
 * counters, instead of an endpoint bucket and then that line (two
 * dependent misses when the real servers are many). */
volatile const __u32 rs_slots = 16384;

/* The key of the handshakes' tuple hash (hs_hash); set by the loader. */
volatile const __u64 hs_seed = 0x9e3779b97f4a7c15ULL;

/* Which handshakes are timed: those whose tuple hash has
 * (hash & hs_sample_mask) == 0, a sample of 1 in hs_sample_mask + 1 (a
 * power of two, set by the loader: PassiveOptions.HandshakeSample; 0
 * times every one). The rule costs nothing a SYN does not compute
 * anyway, needs no state, and a SYN, its retransmissions, its SYN-ACK
 * and its refusal agree on it. A timed handshake reads the precise
 * clock at its first SYN and at its SYN-ACK, whose read orders every
 * load in flight (60-90 ns of a busy SYN, docs/benchmarks.md 18.2);
 * the others read the coarse clock only, and take a way all the same:
 * retransmissions, refusals and the DR real server's unanswered SYNs
 * are found through it. */
volatile const __u32 hs_sample_mask = 0;

/* How long an unanswered handshake's way says "in flight", in units of
 * 1 << PASSIVE_HS_SHIFT ns: a SYN of the same 4-tuple within it is a
 * retransmission. Until its first retransmission a handshake holds its
 * way for 3.5 s (clients retry after 1 s, Linux and most others, or 3 s);
 * once retransmitted for 10 s from its first SYN (Linux retries at 1, 3,
 * 7 s). A handshake answered out of sight (LVS-DR, TUN) so frees its way
 * after 3.5 s, not 10: a busy DR real server's eight ways turn over
 * faster, and a dying one's first unanswered SYNs find a free way
 * sooner. */
#define HS_UNITS(ns) ((__u32)((ns) >> PASSIVE_HS_SHIFT))
#define HS_FIRST_WINDOW HS_UNITS(3500000000ULL)
#define HS_WINDOW HS_UNITS(10000000000ULL)

/* hs_window is the window of a way's tag. */
static __always_inline __u32 hs_window(__u32 tag)
{
	return (tag & PASSIVE_HS_RETRANS) ? HS_WINDOW : HS_FIRST_WINDOW;
}

/* The five values above as the hot paths read them: immediates the
 * loader writes into the instructions (PASSIVE_IMM, internal/loader/
 * passive_imm.go), not loads from .rodata. A .rodata load is one more
 * cold cache line, and the SYN's and SYN-ACK's handshake slot cannot
 * be found before the seed arrives: the two misses came one after the
 * other (docs/benchmarks.md 16.2). The variables stay, set to the same
 * values, for older loaders and for the record. */
#define EP_MASK ((__u32)PASSIVE_IMM(PASSIVE_IMM_EP_MASK))
#define EP_SEED PASSIVE_IMM(PASSIVE_IMM_EP_SEED)
#define RS_SLOTS ((__u32)PASSIVE_IMM(PASSIVE_IMM_RS_SLOTS))
#define HS_SEED PASSIVE_IMM(PASSIVE_IMM_HS_SEED)
#define HS_SAMPLE_MASK ((__u32)PASSIVE_IMM(PASSIVE_IMM_HS_SAMPLE))

/* The event gap in whole ticks less one, set by the loader when it knows
 * the kernel's HZ (else 0): a RST fewer ticks than this after the last
 * event is within the gap for certain, known from jiffies (a load the
 * verifier inlines: no call, no clock read). */
volatile const __u32 gap_jiffies = 0;

/* The shortest event gap tested with the coarse clock (see ingress): a
 * few ticks at HZ 100 to 1000. */
#define COARSE_GAP_NS (20ULL * 1000000ULL)

/* More than the coarse clock's lag behind the precise one (a tick: 10 ms
 * at HZ 100). */
#define COARSE_LAG_NS (20ULL * 1000000ULL)

/* Emit the shared records into BTF for bpf2go's -type. */
const struct passive_event *unused_event __attribute__((unused));

/* A parsed TCP packet. Ports in network order. */
struct tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u8 family;
	__u8 flags;
	__u8 tunneled;  /* IPIP: tunnel holds the outer destination */
	__u8 refusal;   /* a RST that may answer a SYN: ACK set, sequence 0 */
	__u8 tunnel[16]; /* 4 bytes used, the rest 0: a key's address */
	__u8 dmac[ETH_ALEN];
};

/* TCP flags (byte 13 of the header). */
#define TCPF_FIN 0x01
#define TCPF_SYN 0x02
#define TCPF_RST 0x04
#define TCPF_ACK 0x10

/* wanted reports whether a hook looks any further at a TCP packet with
 * these flags: a SYN without ACK or RST toward the real servers, a RST or
 * SYN-ACK from them. Everything else (nearly all packets) stops here. */
static __always_inline int wanted(__u8 flags, int egress)
{
	if (egress)
		return (flags & (TCPF_SYN | TCPF_ACK | TCPF_RST)) == TCPF_SYN;
	return (flags & TCPF_RST) || (flags & (TCPF_SYN | TCPF_ACK)) == (TCPF_SYN | TCPF_ACK);
}

/* pass_on_now ends the program with PASS_ON right here. It is the
 * program's first exit instruction, where the x86-64 JIT puts the one
 * epilogue (every later exit jumps to it): the data packet's way out is
 * the instruction-cache line after its checks, not the far end of a
 * 15 KiB image, which a cold program fetches for nothing else
 * (docs/benchmarks.md 16.2). */
static __always_inline void pass_on_now(void)
{
	asm volatile("r0 = -1\n\texit" ::: "memory");
	__builtin_unreachable();
}

/* parse fills t and returns 1 for a plain TCP packet, whose headers are
 * all in the linear data, that the hook wants (see wanted); otherwise it
 * returns 0, having counted why when the packet is no plain TCP. The
 * flags are tested before anything is copied out of the packet: a data
 * segment or an ACK costs its header checks and nothing else. */
static __always_inline int parse(struct __sk_buff *skb, struct tuple *t, int egress)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = 0;
	struct ipv6hdr *ip6 = 0;
	struct iphdr *outer = 0;
	struct tcphdr *tcp;
	__u32 why;
	__u8 flags;

	/* The common case first, in few instructions and no other line
	 * than the packet's: IPv4 without options or tunnel, a whole TCP
	 * header. Its flags sit at a fixed offset, and a packet the hook
	 * does not want (nearly all: data and ACKs) leaves here. Anything
	 * else takes the general parse below, which checks it all again. */
	if (data + sizeof(*eth) + sizeof(*ip) + sizeof(*tcp) <= end) {
		struct iphdr *ip4 = (void *)(eth + 1);

		tcp = (void *)(ip4 + 1);
		if (eth->h_proto == bpf_htons(ETH_P_IP) && ((__u8 *)ip4)[0] == 0x45 &&
		    ip4->protocol == IPPROTO_TCP && !(ip4->frag_off & bpf_htons(0x3fff)) &&
		    bpf_ntohs(ip4->tot_len) >= sizeof(*ip) + sizeof(*tcp) && tcp->doff >= 5) {
			flags = ((__u8 *)tcp)[13];
			if (__builtin_expect(!wanted(flags, egress), 1))
				pass_on_now();
			ip = ip4;
			goto tcp_ok;
		}
	}
	if ((void *)(eth + 1) > end) {
		why = PASSIVE_STAT_TRUNCATED;
		goto bad;
	}
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		__u32 ihl;

		ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end) {
			why = PASSIVE_STAT_TRUNCATED;
			goto bad;
		}
		if (ip->protocol == IPPROTO_IPIP) {
			/* LVS-TUN: the real server is the outer destination. */
			if (ip->frag_off & bpf_htons(0x3fff)) {
				why = PASSIVE_STAT_FRAGMENT;
				goto bad;
			}
			ihl = ip->ihl * 4;
			if (ihl < sizeof(*ip)) {
				why = PASSIVE_STAT_TRUNCATED;
				goto bad;
			}
			outer = ip;
			ip = (void *)ip + ihl;
			if ((void *)(ip + 1) > end) {
				why = PASSIVE_STAT_TRUNCATED;
				goto bad;
			}
		}
		if (ip->protocol != IPPROTO_TCP) {
			why = PASSIVE_STAT_NOT_TCP;
			goto bad;
		}
		if (ip->frag_off & bpf_htons(0x3fff)) {
			why = PASSIVE_STAT_FRAGMENT;
			goto bad;
		}
		ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip) || bpf_ntohs(ip->tot_len) < ihl + sizeof(*tcp)) {
			why = PASSIVE_STAT_TRUNCATED;
			goto bad;
		}
		tcp = (void *)ip + ihl;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end) {
			why = PASSIVE_STAT_TRUNCATED;
			goto bad;
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
				why = PASSIVE_STAT_IPV6_EXT;
				break;
			default:
				why = PASSIVE_STAT_NOT_TCP;
			}
			goto bad;
		}
		if (bpf_ntohs(ip6->payload_len) < sizeof(*tcp)) {
			why = PASSIVE_STAT_TRUNCATED;
			goto bad;
		}
		tcp = (void *)(ip6 + 1);
	} else {
		why = PASSIVE_STAT_NOT_IP;
		goto bad;
	}
	if ((void *)(tcp + 1) > end || tcp->doff < 5) {
		why = PASSIVE_STAT_TRUNCATED;
		goto bad;
	}
	flags = ((__u8 *)tcp)[13];
#ifdef PASSIVE_ABLATE_FLAGS_ONLY
	/* For measurements only (see docs/benchmarks.md §7): a program that
	 * parses and reads the flags, and nothing more. */
	return flags == 0xff && egress == 2;
#endif
	if (!wanted(flags, egress))
		return 0;
tcp_ok:
	/* Counted here, not per packet: the per-CPU counter is one more
	 * cold line for a packet that touches nothing else (30 ns of a
	 * data packet on a lightly loaded director, docs/benchmarks.md
	 * 16.2). */
	count(PASSIVE_STAT_TCP);
	__builtin_memset(t, 0, sizeof(*t));
	__builtin_memcpy(t->dmac, eth->h_dest, ETH_ALEN);
	if (ip) {
		t->family = 4;
		__builtin_memcpy(t->saddr, &ip->saddr, 4);
		__builtin_memcpy(t->daddr, &ip->daddr, 4);
		if (outer) {
			__builtin_memcpy(t->tunnel, &outer->daddr, 4);
			t->tunneled = 1;
		}
	} else if (ip6) {
		t->family = 6;
		__builtin_memcpy(t->saddr, &ip6->saddr, 16);
		__builtin_memcpy(t->daddr, &ip6->daddr, 16);
	}
	t->sport = tcp->source;
	t->dport = tcp->dest;
	t->flags = flags;
	/* A RST answering a SYN takes its acknowledgement from the SYN's
	 * sequence and carries sequence 0 (RFC 9293 3.10.7.1); one that
	 * resets a connection carries the connection's next sequence. */
	t->refusal = (flags & (TCPF_RST | TCPF_ACK)) == (TCPF_RST | TCPF_ACK) && tcp->seq == 0;
	return 1;
bad:
	/* One block for every bad packet, out of the hot path: the
	 * instructions a data segment runs stay contiguous (fewer
	 * instruction-cache lines to fetch when the program is cold). */
	count(why);
	return 0;
}

/* probe_port reports whether a host-order port is one of the SYN prober's. */
static __always_inline int probe_port(__u16 port)
{
	return probe_port_hi && port >= probe_port_lo && port <= probe_port_hi;
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

/* key_words reads a key as the three native-endian words the endpoint
 * table hashes and compares (internal/loader/passive_ep.go does the same). */
static __always_inline void key_words(const struct passive_rs_key *k, __u64 *a, __u64 *b, __u32 *c)
{
	__builtin_memcpy(a, &k->addr[0], 8);
	__builtin_memcpy(b, &k->addr[8], 8);
	__builtin_memcpy(c, &k->port, 4);
}

/* ep_hash hashes a key's words: three independent multiplies and one
 * finishing round, a short dependency chain (internal/loader/passive_ep.go
 * computes the same). */
static __always_inline __u64 ep_hash(__u64 a, __u64 b, __u32 c)
{
	__u64 h = ((a ^ EP_SEED) * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL) ^
		  (((__u64)c ^ (EP_SEED >> 32)) * 0x165667b19e3779f9ULL);

	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ULL;
	return h ^ (h >> 32);
}

/* ep_match reports whether entry id holds the key (a, b, c), and gives
 * the real server's slot. */
static __always_inline int ep_match(__u32 id, __u64 a, __u64 b, __u32 c, __u32 *slot)
{
	__u64 ea, eb;
	__u32 ec;

	if (id & PASSIVE_EP_OTHER) {
		__u32 i = id & ~PASSIVE_EP_OTHER;
		struct passive_ep *e = bpf_map_lookup_elem(&ep_keys, &i);

		if (!e)
			return 0;
		key_words(&e->key, &ea, &eb, &ec);
		*slot = e->slot;
	} else {
		struct passive_rs_stats *v = bpf_map_lookup_elem(&rs_stats, &id);

		if (!v)
			return 0;
		key_words(&v->key, &ea, &eb, &ec);
		*slot = id;
	}
	return ea == a && eb == b && ec == c;
}

/* ep_find_h looks the key of words (a, b, c) and hash h up in the
 * endpoint table: 1 and the real server's slot (for a real-server or DR
 * key) when it is there, 0 when not. A miss reads one bucket (one cache
 * line) unless that bucket overflowed. Everything is inlined and
 * unrolled: on this kind of machine every call and return pays for the
 * speculative-execution mitigations (a BPF subprogram for ep_find cost
 * 15-40 ns more per packet, measured). */
static __always_inline int ep_find_h(__u64 a, __u64 b, __u32 c, __u64 h, __u32 *slot)
{
	__u32 fp, home, bk;
	int round, i;

	fp = (__u32)(h >> 32) | 1;
	home = (__u32)h & EP_MASK;
	bk = home;
#pragma unroll
	for (round = 0; round < 2; round++) {
		struct passive_ep_bucket *e = bpf_map_lookup_elem(&endpoints, &bk);

		if (!e)
			return 0;
#pragma unroll
		for (i = 0; i < PASSIVE_EP_WAYS; i++) {
			if (e->way[i].fp == fp && ep_match(e->way[i].id, a, b, c, slot))
				return 1;
		}
		if (!e->overflow)
			return 0;
		/* The second bucket: other bits of the hash, never the home one. */
		bk = (__u32)(h >> 16) & EP_MASK;
		if (bk == home)
			bk = (home + 1) & EP_MASK;
	}
	return 0;
}

/* ep_find looks k up in the endpoint table (see ep_find_h). */
static __always_inline int ep_find(const struct passive_rs_key *k, __u32 *slot)
{
	__u64 a, b;
	__u32 c;

	key_words(k, &a, &b, &c);
	return ep_find_h(a, b, c, ep_hash(a, b, c), slot);
}

/* rs_home and rs_home2 are the two home slots (below rs_slots) of a real
 * server's endpoint hash, from its two halves: multiply and shift, no
 * division (internal/loader/passive_home.go computes the same). */
static __always_inline __u32 rs_home(__u64 h)
{
	return (__u32)(((h >> 32) * (__u64)RS_SLOTS) >> 32);
}

static __always_inline __u32 rs_home2(__u64 h)
{
	return (__u32)(((h & 0xffffffffULL) * (__u64)RS_SLOTS) >> 32);
}

/* rs_find_x returns the counters of the real server k (an IPPROTO_TCP key)
 * and its slot, or 0 when k is no observed real server. Its two home
 * slots first: the key there is in the line the packet then counts in,
 * so a real server at home costs one cache line; any other (both homes
 * taken by others, or k unknown) goes on to the endpoint table. The
 * three lines (both homes' first lines, the endpoint bucket), and, with
 * early, both homes' handshake lines, are loaded before any key is
 * compared (without early only the first home's line is), so
 * their misses overlap: a real server at home waits for one miss, one
 * away from home for two one after the other (bucket, then its
 * counters), as every real server did before home slots
 * (docs/benchmarks.md 15.3 synline, 17.2 synslot). */
static __always_inline struct passive_rs_stats *rs_find_x(const struct passive_rs_key *k, __u32 *slot, int early)
{
	struct passive_rs_stats *v, *v2;
	struct passive_ep_bucket *e;
	__u64 a, b, h, ea, eb;
	__u32 c, ec, home, home2, bk;

	key_words(k, &a, &b, &c);
	h = ep_hash(a, b, c);
	home = rs_home(h);
	home2 = rs_home2(h);
	bk = (__u32)h & EP_MASK;
	v = bpf_map_lookup_elem(&rs_stats, &home);
	v2 = bpf_map_lookup_elem(&rs_stats, &home2);
	if (!v || !v2)
		return 0;
	if (early) {
		/* Loads whose values wait: they only start the misses,
		 * the handshake lines' too (the line after each home's
		 * first, the same page), so a SYN's handshake ways
		 * arrive with its real server's counters instead of
		 * after them. */
		(void)*(volatile __u32 *)&v2->key.addr[0];
		(void)*(volatile __u32 *)&v->hs[0].tag;
		(void)*(volatile __u32 *)&v2->hs[0].tag;
		e = bpf_map_lookup_elem(&endpoints, &bk);
		if (e)
			(void)*(volatile __u32 *)&e->way[0].fp;
	}
	key_words(&v->key, &ea, &eb, &ec);
	if (ea == a && eb == b && ec == c) {
		*slot = home;
		return v;
	}
	key_words(&v2->key, &ea, &eb, &ec);
	if (ea == a && eb == b && ec == c) {
		*slot = home2;
		return v2;
	}
	if (!ep_find_h(a, b, c, h, slot))
		return 0;
	return bpf_map_lookup_elem(&rs_stats, slot);
}

/* rs_find is the lookup of a SYN, whose real server's lines are cold
 * when the real servers are many: every line it may need is loaded at
 * once. rs_find_lazy is an answer's (SYN-ACK, RST): its real server's
 * lines are warm when its SYN was seen a moment ago, and the other
 * home's lines and the endpoint bucket would be misses that the
 * program's end waits for (docs/benchmarks.md 17.2): they are loaded
 * only when the first home is another real server's. */
#define rs_find(k, slot) rs_find_x(k, slot, 1)
#define rs_find_lazy(k, slot) rs_find_x(k, slot, 0)

/* local_addr reports whether addr is one of the director's own addresses
 * (PASSIVE_EP_LOCAL keys, filled by Go): packets to it are the director's
 * own. The filter answers for most addresses that are not (one line that
 * stays cached, where the endpoint bucket of a client's address is a
 * random one: 45 ns per untracked answer on a busy link, measured). */
static __always_inline int local_addr(const __u8 *addr, __u8 family)
{
	struct passive_rs_key k __attribute__((aligned(8))) = {};
	__u64 a, b, *bits;
	__u32 c, bit, zero = 0, slot;

	__builtin_memcpy(k.addr, addr, 16);
	k.proto = PASSIVE_EP_LOCAL;
	k.family = family;
	key_words(&k, &a, &b, &c);
	bit = (__u32)(ep_hash(a, b, c) >> 48) & (PASSIVE_LOCAL_BITS - 1);
	bits = bpf_map_lookup_elem(&local_filter, &zero);
	if (bits && !(bits[bit / 64] & (1ULL << (bit % 64))))
		return 0;
	return ep_find(&k, &slot);
}

/* rs_key_of fills k with the TCP real-server key of a 16-byte address
 * (an IPv4 one in its first 4, the rest 0) and a port in network order:
 * a SYN's destination, an answer's source. */
static __always_inline void rs_key_of(struct passive_rs_key *k, const __u8 *addr, __u16 port, __u8 family)
{
	__builtin_memcpy(k->addr, addr, 16);
	k->port = port;
	k->proto = IPPROTO_TCP;
	k->family = family;
}

/* hs_hash hashes a handshake's 4-tuple, client and server in that order
 * whichever way the packet goes. (A one-round IPv4 hash, two independent
 * multiplies, measured no cheaper in the busy SYN: docs/benchmarks.md
 * 18.2.) */
static __always_inline __u64 hs_hash(struct tuple *t, int egress)
{
	__u8 *c = egress ? t->saddr : t->daddr;
	__u8 *sv = egress ? t->daddr : t->saddr;
	__u32 cw[4], sw[4];
	__u64 h;

	__builtin_memcpy(cw, c, 16);
	__builtin_memcpy(sw, sv, 16);
	h = mix64(HS_SEED ^ ((__u64)cw[0] << 32 | sw[0]));
	if (t->family == 6) {
		h = mix64(h ^ ((__u64)cw[1] << 32 | sw[1]));
		h = mix64(h ^ ((__u64)cw[2] << 32 | sw[2]));
		h = mix64(h ^ ((__u64)cw[3] << 32 | sw[3]));
	}
	return mix64(h ^ ((__u64)(egress ? t->sport : t->dport) << 16 | (egress ? t->dport : t->sport)));
}

/* hs_tag is a way's tag for a 4-tuple's hash: bits 2-31 of its upper
 * half, bit 0 set (never 0), bit 1 (PASSIVE_HS_RETRANS) clear. */
static __always_inline __u32 hs_tag(__u64 hash)
{
	return ((__u32)(hash >> 32) & ~3u) | 1;
}

/* hs_timed reports whether the handshake of a tuple hash is timed (see
 * hs_sample_mask). Its bits are the hash's low ones; the tag's are the
 * high half's. */
static __always_inline int hs_timed(__u64 hash)
{
	return ((__u32)hash & HS_SAMPLE_MASK) == 0;
}

/* hs_find returns the way of v that holds the in-flight handshake of tag
 * (its first SYN less than its window before nt), or 0. All eight ways
 * are one cache line. */
static __always_inline struct passive_hs *hs_find(struct passive_rs_stats *v, __u32 tag, __u32 nt)
{
	int i;

#pragma unroll
	for (i = 0; i < PASSIVE_HS_WAYS; i++) {
		__u32 w = v->hs[i].tag;

		if ((w & ~PASSIVE_HS_RETRANS) == tag && nt - v->hs[i].t < hs_window(w))
			return &v->hs[i];
	}
	return 0;
}

/* egress handles a client's SYN toward a real server. */
static __always_inline int egress(struct __sk_buff *skb, struct tuple *t)
{
	struct passive_rs_key rk __attribute__((aligned(8))) = {};
	struct passive_rs_stats *v;
	struct passive_hs *h = 0, *free = 0;
	__u64 now, hash;
	__u32 tag, slot, nt, st;
	int i, timed;

	/* parse let only a SYN without ACK or RST through. */
	/* Sent by the director itself (no input link): a check or a SYN
	 * probe, left to the tracepoints. */
	if (skb->ingress_ifindex == 0)
		return PASS_ON;
	hash = hs_hash(t, 1);
	tag = hs_tag(hash);
	timed = hs_timed(hash);
	rs_key_of(&rk, t->tunneled ? t->tunnel : t->daddr, t->dport, t->family);
	v = rs_find(&rk, &slot);
	if (!v) {
		/* LVS-DR: the destination is the virtual address; the real
		 * server is the link-layer destination. */
		struct passive_rs_key dk __attribute__((aligned(8))) = {};

		__builtin_memcpy(dk.addr, t->dmac, ETH_ALEN);
		dk.port = t->dport;
		dk.proto = PASSIVE_EP_DR;
		if (!ep_find(&dk, &slot)) {
			count(PASSIVE_STAT_UNKNOWN_RS);
			return PASS_ON;
		}
		v = bpf_map_lookup_elem(&rs_stats, &slot);
		if (!v)
			return PASS_ON;
	}
	__sync_fetch_and_add(&v->syns, 1);

	if (timed) {
		now = bpf_ktime_get_ns();
		nt = HS_UNITS(now);
		st = nt;
	} else {
		/* Untimed: the coarse clock, which lags the precise one by
		 * less than COARSE_LAG_NS. The way keeps the coarse time
		 * itself (never ahead of a precise reader's now: no way's
		 * age goes negative), and the scan adds the lag (no timed
		 * way's age goes negative either): an age is at most
		 * COARSE_LAG_NS too long, a way frees that much early in a
		 * window of seconds. */
		now = bpf_ktime_get_coarse_ns();
		nt = HS_UNITS(now + COARSE_LAG_NS);
		st = HS_UNITS(now);
	}
	/* One pass over the eight ways: the 4-tuple's own (a retransmission)
	 * or else the first free one. */
#pragma unroll
	for (i = 0; i < PASSIVE_HS_WAYS; i++) {
		__u32 w = v->hs[i].tag;
		__u32 age = nt - v->hs[i].t;

		if (age >= hs_window(w))
			w = 0; /* expired: free */
		if ((w & ~PASSIVE_HS_RETRANS) == tag) {
			h = &v->hs[i];
			break;
		}
		if (!w && !free)
			free = &v->hs[i];
	}
	if (!h) {
		/* A new handshake. Every way in flight: not tracked, counted
		 * (a sample of the real server's handshakes is timed and
		 * watched for retransmission, those that found a way). */
		if (!free) {
			count(PASSIVE_STAT_HS_FULL);
			return PASS_ON;
		}
		free->t = st;
		free->tag = tag;
		return PASS_ON;
	}
	/* The same 4-tuple's SYN again: the handshake went unanswered. Its
	 * way now holds for the longer window and is not timed (Karn). */
	if (!(h->tag & PASSIVE_HS_RETRANS))
		h->tag = tag | PASSIVE_HS_RETRANS;
	__sync_fetch_and_add(&v->syn_retrans, 1);
	/* Rare: the event gap is the precise clock's, whatever the
	 * handshake's sample. */
	if (!timed)
		now = bpf_ktime_get_ns();
	/* 0: no event yet, whatever the clock (it is below the gap for the
	 * first event_gap_ns after boot). */
	if (!v->retrans_event_ns || now - v->retrans_event_ns >= event_gap_ns) {
		v->retrans_event_ns = now;
		send_event(&v->key, PASSIVE_EV_SYN_RETRANS, now);
	}
	return PASS_ON;
}

/* ingress handles a real server's SYN-ACK or RST. The real server comes
 * from the endpoint lookup of the packet's source; a SYN-ACK or a RST
 * that may answer a SYN then looks for its handshake in the real
 * server's ways; an answer to no tracked SYN is left out when it goes to
 * the director itself. */
static __always_inline int ingress(struct tuple *t)
{
	struct passive_rs_key rk __attribute__((aligned(8))) = {};
	struct passive_rs_stats *v;
	struct passive_hs *h = 0;
	__u64 now = 0, coarse = 0, hash;
	__u32 tag = 0, slot, kind;
	int timed = 0;

	/* parse let only a RST or a SYN-ACK through. A RST that cannot
	 * answer a SYN (a connection's reset) needs no handshake. */
	if (!(t->flags & TCPF_RST) || t->refusal) {
		hash = hs_hash(t, 0);
		tag = hs_tag(hash);
		/* Only a SYN-ACK is timed. */
		timed = !(t->flags & TCPF_RST) && hs_timed(hash);
	}
	rs_key_of(&rk, t->saddr, t->sport, t->family);
	v = rs_find_lazy(&rk, &slot);
	if (!v) {
		count(PASSIVE_STAT_UNKNOWN_RS);
		return PASS_ON;
	}
	if (tag) {
		/* In flight? A timed SYN-ACK's latency needs the precise
		 * clock; a RST's window, and an untimed SYN-ACK's, do with
		 * the coarse one (see the gap test below), which lags by
		 * less than a tick. */
		if (!timed) {
			/* The coarse clock can read before the SYN's precise
			 * one: a tick's lag added, the way's age is at most
			 * COARSE_LAG_NS too long, never negative. */
			coarse = bpf_ktime_get_coarse_ns();
			h = hs_find(v, tag, HS_UNITS(coarse + COARSE_LAG_NS));
		} else {
			now = bpf_ktime_get_ns();
			h = hs_find(v, tag, HS_UNITS(now));
		}
	}
	/* An answer to the director itself: a SYN probe's or a check's. */
	if (!h && (probe_port(bpf_ntohs(t->dport)) || local_addr(t->daddr, t->family)))
		return PASS_ON;
	if (t->flags & TCPF_RST) {
		__sync_fetch_and_add(&v->rsts, 1);
		if (h) {
			__sync_fetch_and_add(&v->refused, 1);
			h->tag = 0; /* answered */
		}
		/* A RST tests the event gap with the coarse clock: a tick's
		 * resolution, and no TSC read, whose ordering waits for every
		 * load in flight (130 ns of an untracked RST's cost on a busy
		 * link, measured). The coarse clock lags by less than a tick;
		 * a gap shorter than COARSE_GAP_NS takes the precise clock
		 * only. The event's own time is precise. */
		if (gap_jiffies) {
			if (v->rst_event_ns && (__u32)bpf_jiffies64() - v->rst_event_j < gap_jiffies)
				goto in_gap;
		} else if (event_gap_ns >= COARSE_GAP_NS) {
			if (!coarse)
				coarse = bpf_ktime_get_coarse_ns();
			if (v->rst_event_ns && (__s64)(coarse - v->rst_event_ns) < (__s64)event_gap_ns)
				goto in_gap;
		}
		now = bpf_ktime_get_ns();
		if (!v->rst_event_ns || now - v->rst_event_ns >= event_gap_ns) {
			/* A gap starts. A refusal's event is the gap's
			 * refusal event too (PASSIVE_RST_REFUSED). */
			v->rst_event_ns = (now & ~PASSIVE_RST_REFUSED) | (h ? PASSIVE_RST_REFUSED : 0);
			v->rst_event_j = (__u32)bpf_jiffies64();
			kind = h ? PASSIVE_EV_REFUSED : PASSIVE_EV_RST;
			goto send;
		}
	in_gap:
		/* Within the gap a refusal still goes up, once: when the
		 * gap's event was an established connection's reset, the
		 * refused SYNs after it say that nothing listens any more
		 * (what Go would otherwise learn from the counters, a poll
		 * later). The bit is in the line the gap test read; set
		 * atomically (only here, once per gap), so that of racing
		 * CPUs one sends, and none writes back an older gap's start. */
		if (!h || (v->rst_event_ns & PASSIVE_RST_REFUSED))
			return PASS_ON;
		if (__sync_fetch_and_or(&v->rst_event_ns, PASSIVE_RST_REFUSED) & PASSIVE_RST_REFUSED)
			return PASS_ON;
		if (!now)
			now = bpf_ktime_get_ns();
		kind = PASSIVE_EV_REFUSED;
	send:
		/* One call site: send_event is inlined. */
		send_event(&v->key, kind, now);
		return PASS_ON;
	}
	__sync_fetch_and_add(&v->synacks, 1);
	if (!h) {
		count(PASSIVE_STAT_HS_MISS);
		return PASS_ON;
	}
	/* Karn: a retransmitted handshake's latency is ambiguous. The time
	 * is in units of 1 << PASSIVE_HS_SHIFT ns at both ends: unbiased,
	 * within a unit of the true latency. An untimed handshake's way
	 * is only freed. */
	if (timed && !(h->tag & PASSIVE_HS_RETRANS))
		record_latency(v->lat, &v->lat_count, &v->lat_sum_ns,
			       (__u64)(HS_UNITS(now) - h->t) << PASSIVE_HS_SHIFT);
	h->tag = 0; /* answered */
	return PASS_ON;
}

SEC("tc")
int passive_egress(struct __sk_buff *skb)
{
	struct tuple t;

	if (!parse(skb, &t, 1))
		return PASS_ON;
	return egress(skb, &t);
}

SEC("tc")
int passive_ingress(struct __sk_buff *skb)
{
	struct tuple t;

	if (!parse(skb, &t, 0))
		return PASS_ON;
	return ingress(&t);
}
