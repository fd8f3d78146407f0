/* SPDX-License-Identifier: GPL-2.0 */
/*
 * skb.h: the few networking types the packet tracers (drops, netrx) read,
 * relocated by CO-RE like kernel.h's, and reading a packet's device,
 * network namespace and addresses from its sk_buff.
 */
#ifndef BPFKIT_SKB_H
#define BPFKIT_SKB_H

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_SCTP 132
#define IP_MF 0x2000
#define IP_OFFSET 0x1FFF

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
struct net {
	struct ns_common ns;
};
typedef struct {
	struct net *net;
} possible_net_t;
struct net_device {
	char name[16];
	int ifindex;
	possible_net_t nd_net;
};
struct sock_common {
	possible_net_t skc_net;
};
struct sock {
	struct sock_common __sk_common;
};
struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	u16 queue_mapping;	/* the RX queue + 1, 0 when not recorded */
	__be16 protocol;
	u16 transport_header;	/* offsets from head; ~0 when not set */
	u16 network_header;
	unsigned char *head;
};
struct napi_struct {
	struct net_device *dev;	/* NULL for a CPU's backlog (RPS, netif_rx) */
};
#pragma clang attribute pop

/* The value of the drop reason enum is read from the running kernel's BTF
 * by user space; declared here only for bpf_core_type_exists. */
enum skb_drop_reason { SKB_DROP_REASON_NOT_SPECIFIED___x };

/* dev_netns is the inode of a device's network namespace, 0 without one. */
static __always_inline u32 dev_netns(struct net_device *dev)
{
	return BPF_CORE_READ(dev, nd_net.net, ns.inum);
}

/* skb_netns is the packet's network namespace: its device's, else its
 * socket's (a packet not yet given a device). */
static __always_inline u32 skb_netns(struct sk_buff *skb, struct net_device *dev)
{
	if (dev)
		return dev_netns(dev);
	return BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
}

#endif
