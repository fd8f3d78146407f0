/* SPDX-License-Identifier: GPL-2.0 */
/*
 * tcp_owner.h: what tcp.bpf.c (tcplife, tcpstates, tcpretrans) and
 * serve_tcp.bpf.c share: the kernel types they read, and who owns each TCP
 * socket. Include after common.h. Declares the programs exit_accept4 and
 * exit_accept.
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
 */
#ifndef BPFKIT_TCP_OWNER_H
#define BPFKIT_TCP_OWNER_H

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

/*
 * track updates what is known of sk at a state change old -> new seen now
 * (the owner, the states entered, the counters at ESTABLISHED) and returns
 * it, or NULL when the table is full; *in_old is the time spent in old (0
 * if the socket was not seen before). The caller deletes the entry at CLOSE.
 */
static __always_inline struct sock_info *track(struct sock___tcp *sk, int old, int new, u16 sport, u64 now, u64 *in_old)
{
	u64 key = (u64)sk;
	struct listen_key lk = {};
	struct sock_info *si, fresh = {};
	struct owner o;

	*in_old = 0;
	si = bpf_map_lookup_elem(&socks, &key);
	if (!si) {
		fresh.first_ns = now;
		fresh.state_ns = now;
		bpf_map_update_elem(&socks, &key, &fresh, BPF_ANY);
		si = bpf_map_lookup_elem(&socks, &key);
		if (!si)
			return NULL;
	} else {
		*in_old = now - si->state_ns;
	}
	if (by_syscall(old, new)) {
		current_owner(&o);
		set_owner(si, &o);
	}
	lk.net = (u64)BPF_CORE_READ(sk, __sk_common.skc_net.net);
	lk.port = sport;
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
	return si;
}

/* is_tcp reports whether a state change is a TCP socket's: the record has
 * the protocol since 4.16 upstream; else the socket's sk_protocol (a
 * bitfield before 5.6). */
static __always_inline bool is_tcp(struct trace_event_raw_inet_sock_set_state *ctx, struct sock___tcp *sk)
{
	if (bpf_core_field_exists(ctx->protocol))
		return ctx->protocol == IPPROTO_TCP;
	return BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) == IPPROTO_TCP;
}

/* retransmitted returns the socket of a tcp:tcp_retransmit_skb record, or
 * NULL for an attempt that failed. Read with helpers: the verifier refuses
 * loads from the record at an offset that CO-RE relocated into a register. */
static __always_inline struct sock___tcp *retransmitted(void *ctx)
{
	struct sock___tcp *sk = NULL;

	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb)) {
		struct trace_event_raw_tcp_retransmit_skb *r = ctx;
		int err = 0;

		/* 6.13+ also traces attempts that failed (err != 0): those
		 * sent nothing, and TcpRetransSegs does not count them. */
		if (bpf_core_field_exists(r->err))
			bpf_core_read(&err, sizeof(err), &r->err);
		if (err)
			return NULL;
		bpf_core_read(&sk, sizeof(sk), &r->skaddr);
	} else {
		struct trace_event_raw_tcp_event_sk_skb *r = ctx;
		bpf_core_read(&sk, sizeof(sk), &r->skaddr);
	}
	return sk;
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

#endif
