// SPDX-License-Identifier: GPL-2.0
/*
 * netrx: where the stack processes received packets. net:netif_receive_skb
 * fires in __netif_receive_skb_core on the CPU that runs the protocol
 * stack for the packet: after RPS has moved it to its target CPU's
 * backlog. Counted per (namespace, interface, recorded RX queue, CPU).
 * napi:napi_poll counts the NAPI polls per device and CPU and those that
 * used their whole budget (the device had more to give: a "squeeze" when
 * it happens at the end of net_rx_action's time or budget). The polls of a
 * CPU's backlog (RPS, netif_rx, veth) have no device.
 *
 * Both tracepoints are the same on every kernel since 4.x; each is taken
 * as a BTF tracepoint, else a raw one. One entry per key and CPU: the CPU
 * is in the key, so only that CPU writes it.
 */
#include "kernel.h"
#include "sched.h"
#include "skb.h"
#include "netrx.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct netrx_key);
	__type(value, struct netrx_val);
} counts SEC(".maps");

/* Puts the structs into BTF, for bpf2go's -type. */
const struct netrx_key *unused_netrx_key __attribute__((unused));
const struct netrx_val *unused_netrx_val __attribute__((unused));

static __always_inline struct netrx_val *entry(struct netrx_key *k, struct net_device *dev)
{
	struct netrx_val *v = bpf_map_lookup_elem(&counts, k);
	struct netrx_val zero = {};

	if (v)
		return v;
	if (dev)
		bpf_probe_read_kernel_str(zero.name, sizeof(zero.name), dev->name);
	else
		__builtin_memcpy(zero.name, "backlog", 8);
	return lookup_or_insert(&counts, k, &zero);	/* NULL: table full, counted lost */
}

/* netif_receive_skb(struct sk_buff *skb) */
static __always_inline int on_receive(u64 *ctx, bool btf)
{
	struct sk_buff *skb = (void *)ctx[0];
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	u16 qm = BPF_CORE_READ(skb, queue_mapping);
	struct netrx_key k = {
		.ifindex = BPF_CORE_READ(dev, ifindex),
		.netns = dev_netns(dev),
		.queue = (s32)qm - 1,
		.cpu = bpf_get_smp_processor_id(),
	};
	struct netrx_val *v = entry(&k, dev);

	if (!v)
		return 0;
	v->packets++;
	v->bytes += BPF_CORE_READ(skb, len);
	return 0;
}

/* napi_poll(struct napi_struct *napi, int work, int budget) */
static __always_inline int on_poll(u64 *ctx, bool btf)
{
	struct napi_struct *napi = (void *)ctx[0];
	struct net_device *dev = BPF_CORE_READ(napi, dev);
	struct netrx_key k = { .queue = -1, .cpu = bpf_get_smp_processor_id() };
	struct netrx_val *v;

	if (dev) {
		k.ifindex = BPF_CORE_READ(dev, ifindex);
		k.netns = dev_netns(dev);
	}
	v = entry(&k, dev);
	if (!v)
		return 0;
	v->polls++;
	if ((int)ctx[1] >= (int)ctx[2])
		v->full++;
	return 0;
}

SCHED_TP(netif_receive_skb, on_receive)
SCHED_TP(napi_poll, on_poll)
