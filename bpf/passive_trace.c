//go:build ignore

/* passive_trace.c: BTF tracepoints (tp_btf) on the director's own TCP
 * connections to the real servers: the confirming checks, any local proxy.
 *
 *   sock:inet_sock_set_state - SYN_SENT entered (a connect), SYN_SENT ->
 *                              ESTABLISHED (with its latency, a log2
 *                              histogram), SYN_SENT -> CLOSE (failed);
 *   tcp:tcp_receive_reset    - a RST: refused in SYN_SENT, a reset later;
 *   tcp:tcp_retransmit_skb   - retransmissions, SYNs among them.
 *
 * Only connections to a real server of the configuration count (own_targets,
 * filled by Go like passive.c's real_servers). tp_btf needs kernel BTF
 * (Debian's 6.1 has it) but no tracefs; struct sock is read with CO-RE, so
 * one object fits every kernel from 5.8 on. fentry/kprobes are not used.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "passive.h"
#include "passive_common.h"

char __license[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

/* The few kernel fields read, relocated by CO-RE against the kernel's BTF. */
struct in6_addr {
	union {
		__u8 u6_addr8[16];
	} in6_u;
} __attribute__((preserve_access_index));

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	unsigned short skc_family;
	volatile unsigned char skc_state;
	struct {
		struct net *net;
	} skc_net;
	struct in6_addr skc_v6_daddr;
} __attribute__((preserve_access_index));

struct ns_common {
	unsigned int inum;
} __attribute__((preserve_access_index));

struct net {
	struct ns_common ns;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	__u16 sk_protocol;
} __attribute__((preserve_access_index));

struct sk_buff;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384); /* the loader sizes it */
	__type(key, struct passive_rs_key);
	__type(value, struct passive_own_stats);
} own_targets SEC(".maps");

/* Connects in progress: the socket's address -> ktime of SYN_SENT. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u64);
} connecting SEC(".maps");

/* The inode number of the network namespace whose sockets are the
 * director's own (the loader's); 0 counts sockets of every namespace.
 * The tracepoints fire for the whole kernel, and the same address and
 * port can be a real server in one namespace and something else in
 * another (containers, test topologies). */
const volatile __u32 own_netns_inum = 0;

/* own_stats finds the real server a socket of the director's namespace is
 * connected to, or NULL. */
static __always_inline struct passive_own_stats *own_stats(const struct sock *sk, struct passive_rs_key *k)
{
	__u16 fam = sk->__sk_common.skc_family;

	if (own_netns_inum) {
		struct net *net = BPF_CORE_READ(sk, __sk_common.skc_net.net);

		if (!net || BPF_CORE_READ(net, ns.inum) != own_netns_inum)
			return 0;
	}

	if (fam == AF_INET) {
		__be32 a = sk->__sk_common.skc_daddr;

		__builtin_memcpy(k->addr, &a, 4);
		k->family = 4;
	} else if (fam == AF_INET6) {
		__u8 a[16];
		__u32 w0, w1, w2;

		bpf_core_read(a, sizeof(a), &sk->__sk_common.skc_v6_daddr);
		__builtin_memcpy(&w0, a, 4);
		__builtin_memcpy(&w1, a + 4, 4);
		__builtin_memcpy(&w2, a + 8, 4);
		if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0xffff)) {
			__builtin_memcpy(k->addr, a + 12, 4); /* v4-mapped */
			k->family = 4;
		} else {
			__builtin_memcpy(k->addr, a, 16);
			k->family = 6;
		}
	} else {
		return 0;
	}
	k->port = sk->__sk_common.skc_dport;
	k->proto = IPPROTO_TCP;
	return bpf_map_lookup_elem(&own_targets, k);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(passive_set_state, const struct sock *sk, int oldstate, int newstate)
{
	struct passive_rs_key k = {};
	struct passive_own_stats *v;
	__u64 key = (__u64)sk, now, *start;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (newstate != TCP_SYN_SENT && oldstate != TCP_SYN_SENT)
		return 0;
	v = own_stats(sk, &k);
	if (!v)
		return 0;
	now = bpf_ktime_get_ns();
	if (newstate == TCP_SYN_SENT) {
		__sync_fetch_and_add(&v->connects, 1);
		if (bpf_map_update_elem(&connecting, &key, &now, BPF_ANY) < 0)
			count(PASSIVE_STAT_OWN_FULL);
		return 0;
	}
	start = bpf_map_lookup_elem(&connecting, &key);
	if (newstate == TCP_ESTABLISHED) {
		__sync_fetch_and_add(&v->established, 1);
		if (start && now > *start)
			record_latency(v->lat, &v->lat_count, &v->lat_sum_ns, now - *start);
	} else if (newstate == TCP_CLOSE) {
		__sync_fetch_and_add(&v->failed, 1);
	}
	if (start)
		bpf_map_delete_elem(&connecting, &key);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(passive_receive_reset, struct sock *sk)
{
	struct passive_rs_key k = {};
	struct passive_own_stats *v = own_stats(sk, &k);
	__u64 now;

	if (!v)
		return 0;
	if (sk->__sk_common.skc_state == TCP_SYN_SENT)
		__sync_fetch_and_add(&v->refused, 1);
	else
		__sync_fetch_and_add(&v->resets, 1);
	now = bpf_ktime_get_ns();
	if (!v->rst_event_ns || now - v->rst_event_ns >= event_gap_ns) { /* 0: none yet */
		v->rst_event_ns = now;
		send_event(&k, PASSIVE_EV_OWN_RESET, now);
	}
	return 0;
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(passive_retransmit, const struct sock *sk, const struct sk_buff *skb)
{
	struct passive_rs_key k = {};
	struct passive_own_stats *v = own_stats(sk, &k);

	if (!v)
		return 0;
	__sync_fetch_and_add(&v->retrans, 1);
	if (sk->__sk_common.skc_state == TCP_SYN_SENT)
		__sync_fetch_and_add(&v->syn_retrans, 1);
	return 0;
}
