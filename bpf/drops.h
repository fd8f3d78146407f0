/* SPDX-License-Identifier: GPL-2.0 */
/* drops.h: what drops sends per dropped packet, and its summary key. */
#ifndef BPFKIT_DROPS_H
#define BPFKIT_DROPS_H

struct drop_event {
	__u64 boot_ns;
	__u64 location;		/* return address in the function that freed it */
	__u32 reason;		/* enum skb_drop_reason; 0 before 5.17 */
	__u32 netns;		/* network namespace inode, 0 unknown */
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;		/* host order; 0 without ports */
	__u16 dport;
	__u16 ethertype;	/* skb->protocol, host order */
	__u8 l4proto;		/* IP protocol, for family 4 and 6 */
	__u8 family;		/* 4, 6, or 0: no IP header read */
	__u8 has_ports;
	__u8 pad[7];
	char iface[16];
};

struct drop_key {
	__u64 location;
	__u32 reason;
	__u32 pad;
};

#endif
