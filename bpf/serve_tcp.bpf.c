// SPDX-License-Identifier: GPL-2.0
/* serve_tcp: TCP connections closed and segments retransmitted, per cgroup
 * of the socket's owner (tcp_owner.h: the process that connected, listened
 * or accepted; cgroup 0 while not known), on the same tracepoints as
 * tcplife and tcpretrans. */
#include "kernel.h"
#include "common.h"
#include "serve.h"
#include "tcp_owner.h"

SERVE_MAP(closed, u64, u64, SERVE_GROWING);
SERVE_MAP(retransmits, u64, u64, SERVE_GROWING);

SEC("tracepoint/sock/inet_sock_set_state")
int set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock___tcp *sk = (void *)ctx->skaddr;
	int old = ctx->oldstate, new = ctx->newstate;
	u64 key = (u64)sk, in_old;
	struct sock_info *si;

	if (!is_tcp(ctx, sk))
		return 0;
	si = track(sk, old, new, ctx->sport, bpf_ktime_get_boot_ns(), &in_old);
	if (!si || new != TCP_CLOSE)
		return 0;
	/* A connection, as tcplife reports it: not a listener. */
	if (old != TCP_LISTEN && (si->states & ~(1 << TCP_CLOSE)))
		count_one(&closed, &si->cgroup);
	bpf_map_delete_elem(&socks, &key);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int retransmit(void *ctx)
{
	struct sock___tcp *sk = retransmitted(ctx);
	struct sock_info *si;
	u64 key = (u64)sk, cgroup = 0;

	if (!sk)
		return 0;
	si = bpf_map_lookup_elem(&socks, &key);
	if (si)
		cgroup = si->cgroup;
	count_one(&retransmits, &cgroup);
	return 0;
}
