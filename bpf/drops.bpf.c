// SPDX-License-Identifier: GPL-2.0
/*
 * drops: every packet the kernel frees as dropped, at skb:kfree_skb
 * (consume_skb, a packet freed after use, is another tracepoint). The
 * tracepoint's arguments are (skb, location) up to 5.16, then (skb,
 * location, reason) and since 6.11 also rx_sk: the reason is read only when
 * the running kernel has enum skb_drop_reason (which came with the argument
 * in 5.17), so one program serves every kernel. User space decodes the
 * reason from the running kernel's BTF and the location from kallsyms.
 *
 * Per event, the packet's device, namespace, addresses and ports are read
 * from the sk_buff (CO-RE); in summary mode only a per-CPU count per
 * (reason, location) is kept, so a flood of drops costs a hash update each.
 * With only_netns set, drops in other network namespaces are left out in
 * both modes, before anything is counted or sent.
 */
#include "kernel.h"
#include "sched.h"
#include "skb.h"
#include "drops.h"

const volatile bool summary = false;
const volatile u32 only_netns = 0;	/* a namespace's inode; 0: every namespace */

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 10240);
	__type(key, struct drop_key);
	__type(value, u64);
} counts SEC(".maps");

/* One event being built, per CPU (too big for the stack with the rest). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct drop_event);
} scratch SEC(".maps");

/* Puts struct drop_event and drop_key into BTF, for bpf2go's -type. */
const struct drop_event *unused_drop_event __attribute__((unused));
const struct drop_key *unused_drop_key __attribute__((unused));

static __always_inline void read_ports(struct drop_event *e, unsigned char *l4)
{
	u16 ports[2];

	if (e->l4proto != IPPROTO_TCP && e->l4proto != IPPROTO_UDP && e->l4proto != IPPROTO_SCTP)
		return;
	if (bpf_probe_read_kernel(ports, sizeof(ports), l4))
		return;
	e->sport = __builtin_bswap16(ports[0]);
	e->dport = __builtin_bswap16(ports[1]);
	e->has_ports = 1;
}

/* read_packet fills in the IPv4 or IPv6 header's addresses and the ports.
 * The network header is trusted only when its version agrees with
 * skb->protocol; the transport header is the one the stack set, else the
 * one after the IP header (IPv6: when no extension header comes first). */
static __always_inline void read_packet(struct drop_event *e, struct sk_buff *skb)
{
	unsigned char *head = BPF_CORE_READ(skb, head), *l3, *l4;
	u16 nh = BPF_CORE_READ(skb, network_header), th = BPF_CORE_READ(skb, transport_header);
	u8 ip[40];

	if (e->ethertype != ETH_P_IP && e->ethertype != ETH_P_IPV6)
		return;
	l3 = head + nh;
	if (bpf_probe_read_kernel(ip, 20, l3))
		return;
	if (e->ethertype == ETH_P_IP) {
		u16 frag = ((u16)ip[6] << 8) | ip[7];

		if (ip[0] >> 4 != 4)
			return;
		e->family = 4;
		e->l4proto = ip[9];
		__builtin_memcpy(e->saddr, ip + 12, 4);
		__builtin_memcpy(e->daddr, ip + 16, 4);
		if (frag & IP_OFFSET)
			return;	/* a later fragment: no L4 header */
		l4 = th != (u16)~0U && th > nh ? head + th : l3 + (ip[0] & 0xf) * 4;
	} else {
		if (bpf_probe_read_kernel(ip, 40, l3) || ip[0] >> 4 != 6)
			return;
		e->family = 6;
		e->l4proto = ip[6];
		__builtin_memcpy(e->saddr, ip + 8, 16);
		__builtin_memcpy(e->daddr, ip + 24, 16);
		l4 = th != (u16)~0U && th > nh ? head + th : l3 + 40;
	}
	read_ports(e, l4);
}

static __always_inline int on_kfree_skb(u64 *ctx, bool btf)
{
	struct sk_buff *skb = (void *)ctx[0];
	u32 reason = 0, zero = 0;
	struct drop_event *e;
	struct net_device *dev;

	if (only_netns && skb_netns(skb, BPF_CORE_READ(skb, dev)) != only_netns)
		return 0;
	if (bpf_core_type_exists(enum skb_drop_reason))
		reason = (u32)ctx[2];
	if (summary) {
		struct drop_key k = { .location = ctx[1], .reason = reason };
		u64 none = 0, *n = lookup_or_insert(&counts, &k, &none);

		if (n)
			(*n)++;	/* per CPU: no other writer; NULL: table full, counted lost */
		return 0;
	}
	e = bpf_map_lookup_elem(&scratch, &zero);
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	e->boot_ns = bpf_ktime_get_boot_ns();
	e->location = ctx[1];
	e->reason = reason;
	e->ethertype = __builtin_bswap16(BPF_CORE_READ(skb, protocol));
	dev = BPF_CORE_READ(skb, dev);
	if (dev)
		bpf_probe_read_kernel_str(e->iface, sizeof(e->iface), dev->name);
	e->netns = skb_netns(skb, dev);
	read_packet(e, skb);
	submit(e, sizeof(*e));
	return 0;
}

SCHED_TP(kfree_skb, on_kfree_skb)
