/* SPDX-License-Identifier: GPL-2.0 */
/*
 * xdp_filter.h: the maps' keys and values shared by xdp_filter.bpf.c and
 * pkg/xdp. User space compiles the rule set into these tables (see
 * docs/xdp.md); the program only looks things up, a fixed number of times.
 */
#ifndef BPFKIT_XDP_FILTER_H
#define BPFKIT_XDP_FILTER_H

#define XDPF_MAX_RULES 131072	/* rule ids are 1..XDPF_MAX_RULES-1 */
#define XDPF_MAX_CLASSES 524288	/* entries of each compiled table, per generation */
#define XDPF_MAX_PORT_CLASSES 65536

/* sport and dport class of the match entry that gives the best rule with a
 * protocol and no ports. */
#define XDPF_NO_PORTS 0xffffffffu

enum xdpf_verdict_action {
	XDPF_ACT_PASS = 0,
	XDPF_ACT_DROP = 1,
	XDPF_ACT_REDIRECT = 2,
};

enum xdpf_policy {
	XDPF_POLICY_DENY = 0,	/* what no rule matches passes */
	XDPF_POLICY_ALLOW = 1,	/* what no rule matches is dropped */
};

/* Slots of the per-CPU stats array. */
enum xdpf_stat {
	XDPF_STAT_DEFAULT_PASS = 0,
	XDPF_STAT_DEFAULT_DROP = 1,
	XDPF_STAT_MALFORMED = 2,	/* truncated or malformed: dropped */
	XDPF_STAT_NON_IP = 3,		/* neither IPv4 nor IPv6: passed */
	XDPF_STAT_MAX = 4,
};

/* Flags of an address class entry (struct xdpf_ac). */
enum xdpf_ac_flags {
	XDPF_AC_VALID = 1,	/* this entry holds the address class */
	XDPF_AC_ANY = 2,	/* any is set */
	XDPF_AC_PROTO = 4,	/* the match table has protocol entries for it */
	XDPF_AC_PORTS = 8,	/* the match table has port entries for it */
	XDPF_AC_INLINE = 16,	/* in[] holds all its rules but any: no table lookup */
};

/* Flags of a stored rule (struct xdpf_rule): which fields are set. */
enum xdpf_rule_flags {
	XDPF_RULE_SPORT = 1,	/* sport_lo..sport_hi is set */
	XDPF_RULE_DPORT = 2,
	XDPF_RULE_SRC = 4,	/* src/src_len is set */
	XDPF_RULE_DST = 8,
};

struct xdpf_counter {
	__u64 packets;
	__u64 bytes;
};

struct xdpf_verdict {
	__u32 rule;	/* id, index of the counters */
	enum xdpf_verdict_action action;
	__u32 ifindex;	/* redirect target */
};

/* A rule compared in place, without a lookup: the protocol (0: TCP or
 * UDP, for a rule with ports and no protocol) and port ranges. */
struct xdpf_inline {
	__u8 proto;
	__u8 ports;	/* the ranges apply (TCP or UDP with ports only) */
	__u16 sport_lo, sport_hi;
	__u16 dport_lo, dport_hi;
	__u16 pad;
	struct xdpf_verdict v;
};

#define XDPF_INLINE 2

/* An address class and what the program needs to know about it without
 * another lookup. */
struct xdpf_ac {
	__u32 ac;
	enum xdpf_ac_flags flags;
	struct xdpf_verdict any;	/* best rule without protocol or ports */
	__u32 n_inline;			/* with XDPF_AC_INLINE: how many of in */
	struct xdpf_inline in[XDPF_INLINE];	/* every other rule of the class, best first */
};


/* LPM value: the field's class; when the other address field is the same
 * for every packet, also the address class (ac.flags has XDPF_AC_VALID). */
struct xdpf_class {
	__u32 class;
	__u32 pad;
	struct xdpf_ac ac;
};

/* Prefix lengths of one address field, longest first, when they are few:
 * the program then looks the address up in a hash per length instead of
 * the LPM trie (a hash lookup is several times cheaper). n == 0: use the
 * trie. */
#define XDPF_MAX_LENS 8
struct xdpf_lens {
	__u8 n;
	__u8 len[XDPF_MAX_LENS];
	__u8 pad[3];
};

/* Keys of the per-length hashes: generation << 8 | prefix length, then the
 * address masked to that length. */
struct xdpf_pfx4_key {
	__u32 gen_len;
	__u8 addr[4];
};

struct xdpf_pfx6_key {
	__u32 gen_len;
	__u8 addr[16];
};

/* Config entry 0: which generation of the tables is live, the policy, the
 * mode. Entries 1 and 2, one per generation: shortcuts that skip a lookup
 * when a table would always say the same. */
struct xdpf_config {
	__u32 gen;		/* 0 or 1 (entry 0) */
	enum xdpf_policy policy;	/* entry 0 */
	__u32 src4_class;	/* nonzero: every IPv4 source has this class */
	__u32 dst4_class;
	__u32 src6_class;
	__u32 dst6_class;
	__u32 pad;
	__u32 mode;		/* how it is attached, for status (entry 0; user space only) */
	struct xdpf_ac ac4;	/* valid when both IPv4 fields are constant */
	struct xdpf_ac ac6;
	struct xdpf_lens lens[4];	/* src4, dst4, src6, dst6 */
};

/* A rule as the user gave it, kept in the pinned rules map so separate
 * invocations share the rule set (the program never reads it). */
struct xdpf_rule {
	__u8 src[16];		/* IPv4 in the first 4 bytes */
	__u8 dst[16];
	__u8 src_len;		/* prefix length; 0 with family 0 is any */
	__u8 dst_len;
	__u8 family;		/* 0 (either), 4 or 6 */
	__u8 proto;		/* 0 is any */
	__u16 sport_lo, sport_hi;	/* 0-0 is any */
	__u16 dport_lo, dport_hi;
	__s32 priority;		/* lower wins among equally specific rules */
	enum xdpf_verdict_action action;
	__u32 ifindex;		/* redirect target */
	enum xdpf_rule_flags flags;
};

/* LPM keys: generation byte, then the address; prefixlen counts 32 bits of
 * generation and padding plus the address prefix. */
struct xdpf_lpm4_key {
	__u32 prefixlen;
	__u8 gen;
	__u8 pad[3];
	__u8 addr[4];
};

struct xdpf_lpm6_key {
	__u32 prefixlen;
	__u8 gen;
	__u8 pad[3];
	__u8 addr[16];
};

/* (source class, destination class) -> address class. */
struct xdpf_addr_key {
	__u32 gen;
	__u32 sc;
	__u32 dc;
};

/* (address class, protocol, source-port class, destination-port class)
 * -> the winning rule. */
struct xdpf_match_key {
	__u32 gen;
	__u32 ac;
	__u32 proto;
	__u32 spc;
	__u32 dpc;
};

#endif
