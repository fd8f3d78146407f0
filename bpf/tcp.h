/* SPDX-License-Identifier: GPL-2.0 */
/* tcp.h: the record tcplife, tcpstates and tcpretrans send (one layout). */
#ifndef BPFKIT_TCP_H
#define BPFKIT_TCP_H

enum tcp_kind {
	TCP_KIND_LIFE = 1,	/* a connection closed (tcplife) */
	TCP_KIND_STATE = 2,	/* a state change (tcpstates) */
	TCP_KIND_RETRANS = 3,	/* a segment retransmitted (tcpretrans) */
	TCP_KIND_LOSS_PROBE = 4,	/* a tail loss probe retransmitted (tcpretrans) */
};

struct tcp_event {
	__u64 boot_ns;
	__u64 duration_ns;	/* life: since the first state seen; state: in old_state */
	__u64 tx_bytes;		/* payload the peer acknowledged (life) */
	__u64 rx_bytes;		/* payload received in order (life) */
	__u32 pid;		/* the socket's owner (see tcp.bpf.c) */
	__u16 family;		/* AF_INET, AF_INET6 */
	__u16 sport;		/* host order */
	__u16 dport;
	__u8 old_state;		/* TCP_ESTABLISHED... (state); the state at retransmit */
	__u8 new_state;
	__u8 kind;		/* enum tcp_kind */
	__u8 pad[3];
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	char comm[16];
};

/* Per connection, in tcpretrans --count mode. */
struct tcp_conn_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 pad;
	__u32 pid;
};

struct tcp_conn_count {
	__u64 retrans;
	__u64 loss_probes;
	char comm[16];
};

#endif
