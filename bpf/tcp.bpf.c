// SPDX-License-Identifier: GPL-2.0
/*
 * tcp: tcplife, tcpstates and tcpretrans, on tracepoints only (no kprobes):
 * sock:inet_sock_set_state (4.16+) for every state change of a TCP socket,
 * tcp:tcp_retransmit_skb for retransmitted segments, and the exits of
 * accept(2)/accept4(2).
 *
 * Owner attribution. TCP state changes and retransmits mostly run in softirq
 * context, where the current task is whoever the interrupt hit. So every
 * socket's owner is remembered, keyed by its struct sock pointer, whenever
 * the socket is seen in process context:
 *   - a state change that only a system call makes (by_syscall): connect()
 *     (CLOSE -> SYN-SENT), listen(), close() and shutdown() (-> FIN-WAIT-1,
 *     -> LAST-ACK);
 *   - the exit of accept()/accept4(): the accepted socket belongs to the
 *     process that accepted it from then on.
 * Before an accepted socket is accepted (SYN-RECV -> ESTAB), its owner is
 * the process that called listen() on the same port in the same network
 * namespace (with SO_REUSEPORT, the last of them). The last process seen
 * wins: a socket passed to another process is attributed to it from its
 * next system call that changes the state, or accept.
 *
 * Byte counts come from the tcp_sock's bytes_acked and bytes_received,
 * less what they held at ESTABLISHED (the SYN, counted by the active side's
 * bytes_acked) and less the FIN each way, so they are payload bytes only.
 */
#include "kernel.h"
#include "common.h"
#include "tcp.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT,
	TCP_SYN_RECV,
	TCP_FIN_WAIT1,
	TCP_FIN_WAIT2,
	TCP_TIME_WAIT,
	TCP_CLOSE,
	TCP_CLOSE_WAIT,
	TCP_LAST_ACK,
	TCP_LISTEN,
	TCP_CLOSING,
	TCP_NEW_SYN_RECV,
};

#define SOCK_DONE 1		/* enum sock_flags: a FIN was received */
#define ICSK_TIME_LOSS_PROBE 5	/* icsk_pending while a TLP is sent */
#define TCP_CA_OPEN 0
#define TCP_CA_CWR 2

/* Set before load. */
const volatile u8 want_life = 0;	/* tcplife: an event per closed connection */
const volatile u8 want_states = 0;	/* tcpstates: an event per state change */
const volatile u8 count_retrans = 0;	/* tcpretrans --count: sum in conns */
const volatile u16 lports[8] = {};	/* -L: local ports, 0-terminated */
const volatile u16 dports[8] = {};	/* -D: remote ports, 0-terminated */

/*
 * The few kernel types read here, relocated by CO-RE. The ___tcp suffix
 * keeps them apart from kernel.h's (CO-RE ignores it); anonymous unions of
 * the kernel's layout are flattened, which CO-RE resolves by name.
 */
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
struct in6_addr___tcp {
	u8 u6_addr8[16];
};
struct sock_common___tcp {
	u32 skc_daddr;
	u32 skc_rcv_saddr;
	u16 skc_dport;		/* network order */
	u16 skc_num;		/* host order */
	unsigned short skc_family;
	unsigned long skc_flags;	/* 6.13+; sock's sk_flags before */
	volatile unsigned char skc_state;
	struct in6_addr___tcp skc_v6_daddr;
	struct in6_addr___tcp skc_v6_rcv_saddr;
	struct {
		void *net;
	} skc_net;
};
struct sock___tcp {
	struct sock_common___tcp __sk_common;
	unsigned long sk_flags;
	u16 sk_protocol;	/* a bitfield before 5.6 */
};
struct inet_connection_sock___tcp {
	u8 icsk_ca_state:5;
	u8 icsk_pending;
};
struct tcp_sock___tcp {
	u64 bytes_received;
	u64 bytes_acked;
	u32 snd_una;
	u32 write_seq;
};
struct socket___tcp {
	struct sock___tcp *sk;
};
struct file___tcp {
	void *private_data;
};
/* sock:inet_sock_set_state's record. */
struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	u16 sport;		/* host order */
	u16 dport;
	u16 family;
	u16 protocol;
	u8 saddr[4];
	u8 daddr[4];
	u8 saddr_v6[16];
	u8 daddr_v6[16];
};
/* tcp:tcp_retransmit_skb's record: its own class since 6.13 (with err),
 * before that the tcp_event_sk_skb class. skaddr is at the same offset. */
struct trace_event_raw_tcp_retransmit_skb {
	const void *skbaddr;
	const void *skaddr;
	int err;
};
struct trace_event_raw_tcp_event_sk_skb {
	const void *skbaddr;
	const void *skaddr;
};
#pragma clang attribute pop

/* What is known of a socket, from the first state change seen to CLOSE. */
struct sock_info {
	u64 first_ns;		/* the first state change seen */
	u64 state_ns;		/* entering the current state */
	u64 acked0;		/* bytes_acked and bytes_received at ESTABLISHED */
	u64 received0;
	u64 cgroup;		/* the owner's cgroup */
	u32 pid;		/* the owner, 0 while unknown */
	u32 states;		/* 1 << each state entered */
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, u64);
	__type(value, struct sock_info);
} socks SEC(".maps");

/* The owner of each listening port, by network namespace and port. */
struct listen_key {
	u64 net;
	u16 port;
	u16 pad[3];
};
struct owner {
	u64 cgroup;
	u32 pid;
	u32 pad;
	char comm[16];
};
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct listen_key);
	__type(value, struct owner);
} listeners SEC(".maps");

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

static __always_inline void current_owner(struct owner *o)
{
	o->pid = bpf_get_current_pid_tgid() >> 32;
	o->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(o->comm, sizeof(o->comm));
}

static __always_inline void set_owner(struct sock_info *si, const struct owner *o)
{
	si->pid = o->pid;
	si->cgroup = o->cgroup;
	__builtin_memcpy(si->comm, o->comm, sizeof(si->comm));
}

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

/*
 * by_syscall reports whether a state change is one that only a system call
 * on the socket makes: connect() (-> SYN-SENT), listen() (-> LISTEN), and
 * close() or shutdown() (tcp_close_state: -> FIN-WAIT-1, -> LAST-ACK, and
 * LISTEN or SYN-SENT -> CLOSE). The record's common_flags cannot tell: the
 * kernel fills them in after the program ran.
 */
static __always_inline bool by_syscall(int old, int new)
{
	switch (new) {
	case TCP_SYN_SENT:
	case TCP_LISTEN:
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		return true;
	case TCP_CLOSE:
		return old == TCP_LISTEN || old == TCP_SYN_SENT;
	}
	return false;
}

SEC("tracepoint/sock/inet_sock_set_state")
int set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock___tcp *sk = (void *)ctx->skaddr;
	u64 key = (u64)sk, now = bpf_ktime_get_boot_ns();
	int old = ctx->oldstate, new = ctx->newstate;
	struct listen_key lk = {};
	struct sock_info *si, fresh = {};
	struct owner o;
	u64 in_old = 0;

	if (bpf_core_field_exists(ctx->protocol)) {
		if (ctx->protocol != IPPROTO_TCP)
			return 0;
	} else if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP) {
		return 0;
	}
	si = bpf_map_lookup_elem(&socks, &key);
	if (!si) {
		fresh.first_ns = now;
		fresh.state_ns = now;
		bpf_map_update_elem(&socks, &key, &fresh, BPF_ANY);
		si = bpf_map_lookup_elem(&socks, &key);
		if (!si)
			return 0;
	} else {
		in_old = now - si->state_ns;
	}
	if (by_syscall(old, new)) {
		current_owner(&o);
		set_owner(si, &o);
	}
	lk.net = (u64)BPF_CORE_READ(sk, __sk_common.skc_net.net);
	lk.port = ctx->sport;
	if (new == TCP_LISTEN && si->pid) {
		o.pid = si->pid;
		o.cgroup = si->cgroup;
		__builtin_memcpy(o.comm, si->comm, sizeof(o.comm));
		bpf_map_update_elem(&listeners, &lk, &o, BPF_ANY);
	} else if (old == TCP_LISTEN && new == TCP_CLOSE) {
		bpf_map_delete_elem(&listeners, &lk);
	} else if (!si->pid) {
		/* Not yet accepted: the listener's owner. */
		struct owner *lo = bpf_map_lookup_elem(&listeners, &lk);
		if (lo)
			set_owner(si, lo);
	}
	si->state_ns = now;
	if (new >= 0 && new < 32)
		si->states |= 1 << new;
	if (new == TCP_ESTABLISHED) {
		struct tcp_sock___tcp *tp = (void *)sk;
		si->acked0 = BPF_CORE_READ(tp, bytes_acked);
		si->received0 = BPF_CORE_READ(tp, bytes_received);
	}

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

/* accepted records the current process as the owner of the socket that
 * accept returned as fd. */
static __always_inline void accepted(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file___tcp *f = NULL;
	struct file **fds;
	struct socket___tcp *sock;
	struct sock___tcp *sk;
	struct sock_info *si;
	struct owner o;
	u64 key;

	if (fd < 0 || !fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return;
	sock = BPF_CORE_READ(f, private_data);
	sk = BPF_CORE_READ(sock, sk);
	key = (u64)sk;
	si = bpf_map_lookup_elem(&socks, &key);
	if (!si)
		return;
	current_owner(&o);
	set_owner(si, &o);
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int exit_accept4(struct syscall_exit_ctx *ctx)
{
	accepted(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int exit_accept(struct syscall_exit_ctx *ctx)
{
	accepted(ctx->ret);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int retransmit(void *ctx)
{
	struct sock___tcp *sk = NULL;
	struct inet_connection_sock___tcp *icsk;
	struct tcp_event e = {};
	struct sock_info *si;
	u64 key;

	/* Read with helpers: the verifier refuses loads from the record at
	 * an offset that CO-RE relocated into a register. */
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb)) {
		struct trace_event_raw_tcp_retransmit_skb *r = ctx;
		int err = 0;

		/* 6.13+ also traces attempts that failed (err != 0): those
		 * sent nothing, and TcpRetransSegs does not count them. */
		if (bpf_core_field_exists(r->err))
			bpf_core_read(&err, sizeof(err), &r->err);
		if (err)
			return 0;
		bpf_core_read(&sk, sizeof(sk), &r->skaddr);
	} else {
		struct trace_event_raw_tcp_event_sk_skb *r = ctx;
		bpf_core_read(&sk, sizeof(sk), &r->skaddr);
	}
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
