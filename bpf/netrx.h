/* SPDX-License-Identifier: GPL-2.0 */
/* netrx.h: received packets and NAPI polls per interface, queue and CPU. */
#ifndef BPFKIT_NETRX_H
#define BPFKIT_NETRX_H

struct netrx_key {
	__u32 netns;	/* the device's network namespace inode; 0: a CPU's backlog */
	__u32 ifindex;
	__s32 queue;	/* the RX queue the driver recorded, -1 none (and for polls) */
	__u32 cpu;
};

struct netrx_val {
	__u64 packets;	/* sk_buffs the stack received (netif_receive_skb) */
	__u64 bytes;	/* their skb->len: from the network header on */
	__u64 polls;	/* NAPI polls */
	__u64 full;	/* of which used their whole budget (work == budget) */
	char name[16];
};

#endif
