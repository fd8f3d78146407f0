// SPDX-License-Identifier: GPL-2.0
/*
 * tcp: tcplife, tcpstates and tcpretrans, on tracepoints only (no kprobes):
 * sock:inet_sock_set_state (4.16+) for every state change of a TCP socket,
 * tcp:tcp_retransmit_skb for retransmitted segments, and the exits of
 * accept(2)/accept4(2). Whose socket it is: tcp_owner.h.
 *
 * Byte counts come from the tcp_sock's bytes_acked and bytes_received,
 * less what they held at ESTABLISHED (the SYN, counted by the active side's
 * bytes_acked) and less the FIN each way, so they are payload bytes only.
 */
#include "kernel.h"
#include "common.h"
#include "tcp.h"
#include "tcp_owner.h"

/* Set before load. */
const volatile u8 want_life = 0;	/* tcplife: an event per closed connection */
const volatile u8 want_states = 0;	/* tcpstates: an event per state change */
const volatile u8 count_retrans = 0;	/* tcpretrans --count: sum in conns */
const volatile u16 lports[8] = {};	/* -L: local ports, 0-terminated */
const volatile u16 dports[8] = {};	/* -D: remote ports, 0-terminated */

/* tcpretrans --count: per connection and owner. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct tcp_conn_key);
	__type(value, struct tcp_conn_count);
} conns SEC(".maps");

/* Puts the records into BTF, for bpf2go's -type. */
const struct tcp_event *unused_tcp_event __attribute__((unused));
const enum tcp_kind *unused_tcp_kind __attribute__((unused));

static __always_inline bool port_listed(const volatile u16 *ports, u16 port)
{
	if (!ports[0])
		return true;
	for (int i = 0; i < 8 && ports[i]; i++)
		if (ports[i] == port)
			return true;
	return false;
}

/* wanted applies -p, --cgroup, -L and -D to a socket's owner and ports. */
static __always_inline bool wanted(const struct sock_info *si, u16 sport, u16 dport)
{
	if (filter_pid && (!si || si->pid != filter_pid))
		return false;
	if (filter_cgroup && (!si || si->cgroup != filter_cgroup))
		return false;
	return port_listed(lports, sport) && port_listed(dports, dport);
}

/* fill_conn sets the family, addresses and ports of sk in e. */
static __always_inline void fill_conn(struct tcp_event *e, struct sock___tcp *sk)
{
	e->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	e->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->dport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (e->family == AF_INET6) {
		bpf_probe_read_kernel(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_probe_read_kernel(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	} else {
		bpf_probe_read_kernel(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_probe_read_kernel(e->daddr, 4, &sk->__sk_common.skc_daddr);
	}
}

static __always_inline void fill_owner(struct tcp_event *e, const struct sock_info *si)
{
	if (!si)
		return;
	e->pid = si->pid;
	__builtin_memcpy(e->comm, si->comm, sizeof(e->comm));
}

/* sock_done reports whether the socket received a FIN (SOCK_DONE in
 * sk_flags, which moved into sock_common as skc_flags in 6.13). */
static __always_inline bool sock_done(struct sock___tcp *sk)
{
	unsigned long flags;

	if (bpf_core_field_exists(sk->__sk_common.skc_flags))
		flags = BPF_CORE_READ(sk, __sk_common.skc_flags);
	else
		flags = BPF_CORE_READ(sk, sk_flags);
	return flags & (1 << SOCK_DONE);
}

/* life_bytes sets the payload bytes each way of a socket closing now. */
static __always_inline void life_bytes(struct tcp_event *e, struct sock___tcp *sk, const struct sock_info *si)
{
	struct tcp_sock___tcp *tp = (void *)sk;
	u64 acked = BPF_CORE_READ(tp, bytes_acked), received = BPF_CORE_READ(tp, bytes_received);
	bool est = si->states & (1 << TCP_ESTABLISHED);

	/* Our FIN went out (-> FIN-WAIT-1 or -> LAST-ACK) and all up to it,
	 * itself included, was acknowledged. */
	if ((si->states & ((1 << TCP_FIN_WAIT1) | (1 << TCP_LAST_ACK))) &&
	    BPF_CORE_READ(tp, snd_una) == BPF_CORE_READ(tp, write_seq) && acked)
		acked--;
	if (sock_done(sk) && received)
		received--;
	e->tx_bytes = est && acked >= si->acked0 ? acked - si->acked0 : acked;
	e->rx_bytes = est && received >= si->received0 ? received - si->received0 : received;
}

SEC("tracepoint/sock/inet_sock_set_state")
int set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock___tcp *sk = (void *)ctx->skaddr;
	u64 key = (u64)sk, now = bpf_ktime_get_boot_ns(), in_old;
	int old = ctx->oldstate, new = ctx->newstate;
	struct sock_info *si;

	if (!is_tcp(ctx, sk))
		return 0;
	si = track(sk, old, new, ctx->sport, now, &in_old);
	if (!si)
		return 0;

	/* The record's addresses and ports: by CLOSE the kernel has released
	 * the socket's local port (skc_num is 0), not inet_sport. */
	struct tcp_event e = { .family = ctx->family, .sport = ctx->sport, .dport = ctx->dport };
	if (e.family == AF_INET6) {
		bpf_probe_read_kernel(e.saddr, 16, ctx->saddr_v6);
		bpf_probe_read_kernel(e.daddr, 16, ctx->daddr_v6);
	} else {
		bpf_probe_read_kernel(e.saddr, 4, ctx->saddr);
		bpf_probe_read_kernel(e.daddr, 4, ctx->daddr);
	}
	if (want_states && wanted(si, e.sport, e.dport)) {
		e.boot_ns = now;
		e.duration_ns = in_old;
		e.old_state = old;
		e.new_state = new;
		e.kind = TCP_KIND_STATE;
		fill_owner(&e, si);
		submit(&e, sizeof(e));
	}
	if (new != TCP_CLOSE)
		return 0;
	/* A connection that ends: not a listener, not a connect that never
	 * got a socket state past CLOSE. */
	if (want_life && old != TCP_LISTEN && (si->states & ~(1 << TCP_CLOSE)) && wanted(si, e.sport, e.dport)) {
		e.boot_ns = now;
		e.duration_ns = now - si->first_ns;
		e.old_state = old;
		e.new_state = new;
		e.kind = TCP_KIND_LIFE;
		life_bytes(&e, sk, si);
		fill_owner(&e, si);
		submit(&e, sizeof(e));
	}
	bpf_map_delete_elem(&socks, &key);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int retransmit(void *ctx)
{
	struct sock___tcp *sk = retransmitted(ctx);
	struct inet_connection_sock___tcp *icsk;
	struct tcp_event e = {};
	struct sock_info *si;
	u64 key;

	if (!sk)
		return 0;
	key = (u64)sk;
	si = bpf_map_lookup_elem(&socks, &key);
	fill_conn(&e, sk);
	if (!wanted(si, e.sport, e.dport))
		return 0;
	/* A tail loss probe is sent from the retransmit timer while the
	 * pending timer event is still the loss probe, and only in the Open
	 * or CWR congestion state; a fast or RACK retransmit happens in
	 * Recovery or Loss, an RTO one after icsk_pending was cleared. */
	icsk = (void *)sk;
	e.kind = TCP_KIND_RETRANS;
	if (BPF_CORE_READ(icsk, icsk_pending) == ICSK_TIME_LOSS_PROBE) {
		u8 ca = BPF_CORE_READ_BITFIELD_PROBED(icsk, icsk_ca_state);
		if (ca == TCP_CA_OPEN || ca == TCP_CA_CWR)
			e.kind = TCP_KIND_LOSS_PROBE;
	}
	fill_owner(&e, si);
	if (count_retrans) {
		struct tcp_conn_key k = {};
		struct tcp_conn_count *c;

		__builtin_memcpy(k.saddr, e.saddr, 16);
		__builtin_memcpy(k.daddr, e.daddr, 16);
		k.family = e.family;
		k.sport = e.sport;
		k.dport = e.dport;
		k.pid = e.pid;
		c = bpf_map_lookup_elem(&conns, &k);
		if (!c) {
			struct tcp_conn_count z = {};
			__builtin_memcpy(z.comm, e.comm, 16);
			bpf_map_update_elem(&conns, &k, &z, BPF_NOEXIST);
			c = bpf_map_lookup_elem(&conns, &k);
			if (!c) {
				count_lost();
				return 0;
			}
		}
		if (e.kind == TCP_KIND_LOSS_PROBE)
			__sync_fetch_and_add(&c->loss_probes, 1);
		else
			__sync_fetch_and_add(&c->retrans, 1);
		return 0;
	}
	e.boot_ns = bpf_ktime_get_boot_ns();
	e.old_state = e.new_state = BPF_CORE_READ(sk, __sk_common.skc_state);
	submit(&e, sizeof(e));
	return 0;
}
