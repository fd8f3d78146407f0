// SPDX-License-Identifier: GPL-2.0
/*
 * xdp_filter: CIDR, protocol and port rules at the NIC.
 *
 * User space compiles the rules into equivalence classes (docs/xdp.md), so a
 * packet costs the same fixed number of lookups whatever the rule count:
 *   source and destination LPM tries   -> source class, destination class
 *   (source class, destination class)  -> address class
 *   port arrays                        -> sport class, dport class
 *   (address class, proto, sport class, dport class) -> winning rule; else
 *   (address class, proto)             -> best rule with no ports, then
 *   the address class's own entry      -> best rule with no protocol
 * Lookups that would always give the same answer are skipped: a constant
 * class lives in the config, an address class in an LPM value, and a class
 * with at most XDPF_INLINE rules besides its catch-all carries them, to be
 * compared in place.
 * Every table holds two generations; the config entry says which one is
 * live, so a new rule set replaces the old one atomically.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xdp_filter.h"

#define ETH_P_IP	0x0800
#define ETH_P_IPV6	0x86DD
#define ETH_P_8021Q	0x8100
#define ETH_P_8021AD	0x88A8

#define IPPROTO_HOPOPTS	0
#define IPPROTO_ICMP	1
#define IPPROTO_TCP	6
#define IPPROTO_UDP	17
#define IPPROTO_ROUTING	43
#define IPPROTO_FRAGMENT 44
#define IPPROTO_AH	51
#define IPPROTO_ICMPV6	58
#define IPPROTO_DSTOPTS	60

/* How many IPv6 extension headers are skipped before giving up on ports. */
#define MAX_EXT_HDRS	6

/* Entry 0: the live generation, policy and mode; entry 1 + g: the class
 * shortcuts of generation g, written before entry 0 switches to it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 3);
	__type(key, u32);
	__type(value, struct xdpf_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * XDPF_MAX_RULES);
	__type(key, struct xdpf_lpm4_key);
	__type(value, struct xdpf_class);
} src4 SEC(".maps"), dst4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * XDPF_MAX_RULES);
	__type(key, struct xdpf_lpm6_key);
	__type(value, struct xdpf_class);
} src6 SEC(".maps"), dst6 SEC(".maps");

/* The same classes as the tries, by exact prefix (struct xdpf_lens). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * XDPF_MAX_RULES);
	__type(key, struct xdpf_pfx4_key);
	__type(value, struct xdpf_class);
} src4h SEC(".maps"), dst4h SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * XDPF_MAX_RULES);
	__type(key, struct xdpf_pfx6_key);
	__type(value, struct xdpf_class);
} src6h SEC(".maps"), dst6h SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * XDPF_MAX_CLASSES);
	__type(key, struct xdpf_addr_key);
	__type(value, struct xdpf_ac);
} addr_classes SEC(".maps");

/* Port -> port class, generation g at g * 65536 + port. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * XDPF_MAX_PORT_CLASSES);
	__type(key, u32);
	__type(value, u32);
} sport_class SEC(".maps"), dport_class SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2 * XDPF_MAX_CLASSES);
	__type(key, struct xdpf_match_key);
	__type(value, struct xdpf_verdict);
} matches SEC(".maps");

/* Per rule id, per CPU: what the rule matched. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPF_MAX_RULES);
	__type(key, u32);
	__type(value, struct xdpf_counter);
} rule_stats SEC(".maps");

/* Per CPU: default actions, malformed and non-IP frames. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XDPF_STAT_MAX);
	__type(key, u32);
	__type(value, struct xdpf_counter);
} stats SEC(".maps");

/* Redirect targets: ifindex -> ifindex. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u32);
} tx_ports SEC(".maps");

/* The rule set as given (user space only). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, XDPF_MAX_RULES);
	__type(key, u32);
	__type(value, struct xdpf_rule);
} rules SEC(".maps");

struct pkt {
	u32 proto;
	u32 sport;
	u32 dport;
	bool ports;	/* sport and dport are valid */
};

enum { PARSE_MALFORMED = -1, PARSE_NON_IP = 0, PARSE_V4 = 4, PARSE_V6 = 6 };

static __always_inline void count(void *map, u32 key, u64 bytes)
{
	struct xdpf_counter *c = bpf_map_lookup_elem(map, &key);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* Reads the ports of a TCP or UDP header, and checks that the L4 header is
 * whole for the protocols bpfkit knows. */
static __always_inline int parse_l4(void *l4, void *end, struct pkt *p)
{
	u32 need;

	switch (p->proto) {
	case IPPROTO_TCP: need = 20; break;
	case IPPROTO_UDP: need = 8; break;
	case IPPROTO_ICMP: need = 8; break;
	case IPPROTO_ICMPV6: need = 4; break;
	default: return 0;
	}
	if (l4 + need > end)
		return PARSE_MALFORMED;
	if (p->proto == IPPROTO_TCP || p->proto == IPPROTO_UDP) {
		p->sport = bpf_ntohs(*(u16 *)l4);
		p->dport = bpf_ntohs(*(u16 *)(l4 + 2));
		p->ports = true;
	}
	return 0;
}

static __always_inline int parse_v4(void *l3, void *end, struct pkt *p,
				    struct xdpf_lpm4_key *s, struct xdpf_lpm4_key *d)
{
	u8 *ip = l3;
	u32 hlen;

	if (l3 + 20 > end || (ip[0] >> 4) != 4)
		return PARSE_MALFORMED;
	hlen = (ip[0] & 0xf) * 4;
	if (hlen < 20 || l3 + hlen > end)
		return PARSE_MALFORMED;
	__builtin_memcpy(s->addr, ip + 12, 4);
	__builtin_memcpy(d->addr, ip + 16, 4);
	p->proto = ip[9];
	/* Fragments after the first carry no L4 header. */
	if (bpf_ntohs(*(u16 *)(ip + 6)) & 0x1fff)
		return PARSE_V4;
	if (parse_l4(l3 + hlen, end, p) < 0)
		return PARSE_MALFORMED;
	return PARSE_V4;
}

static __always_inline int parse_v6(void *l3, void *end, struct pkt *p,
				    struct xdpf_lpm6_key *s, struct xdpf_lpm6_key *d)
{
	u8 *ip = l3;
	u32 off = 40, nh;

	if (l3 + 40 > end || (ip[0] >> 4) != 6)
		return PARSE_MALFORMED;
	__builtin_memset(s, 0, sizeof(*s));
	__builtin_memset(d, 0, sizeof(*d));
	__builtin_memcpy(s->addr, ip + 8, 16);
	__builtin_memcpy(d->addr, ip + 24, 16);
	nh = ip[6];
	for (int i = 0; i < MAX_EXT_HDRS; i++) {
		u8 *h = l3 + off;

		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING && nh != IPPROTO_DSTOPTS &&
		    nh != IPPROTO_FRAGMENT && nh != IPPROTO_AH)
			break;
		if ((void *)(h + 8) > end)
			return PARSE_MALFORMED;
		if (nh == IPPROTO_FRAGMENT) {
			nh = h[0];
			off += 8;
			if (bpf_ntohs(*(u16 *)(h + 2)) & 0xfff8) {
				p->proto = nh;	/* not the first fragment: no ports */
				return PARSE_V6;
			}
			continue;
		}
		if (nh == IPPROTO_AH)
			off += (h[1] + 2) * 4;
		else
			off += (h[1] + 1) * 8;
		nh = h[0];
		if (off > 40 + MAX_EXT_HDRS * 2048)
			return PARSE_MALFORMED;
	}
	p->proto = nh;
	if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	    nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH)
		return PARSE_V6;	/* too many extension headers: match without ports */
	if (parse_l4(l3 + off, end, p) < 0)
		return PARSE_MALFORMED;
	return PARSE_V6;
}

static __always_inline u32 mask32(int bits)
{
	if (bits <= 0)
		return 0;
	if (bits >= 32)
		return 0xffffffff;
	return 0xffffffffu << (32 - bits);
}

/* The class of an IPv4 address: the longest rule prefix containing it. */
static __always_inline struct xdpf_class *
class4(void *trie, void *hash, struct xdpf_lens *l, struct xdpf_lpm4_key *k, u32 gen)
{
	if (!l->n)
		return bpf_map_lookup_elem(trie, k);
	u32 a = bpf_ntohl(*(u32 *)k->addr);
	for (int i = 0; i < XDPF_MAX_LENS; i++) {
		if (i >= l->n)
			break;
		u32 len = l->len[i] & 63;
		struct xdpf_pfx4_key pk = { .gen_len = gen << 8 | len };
		struct xdpf_class *c;

		*(u32 *)pk.addr = bpf_htonl(a & mask32(len));
		c = bpf_map_lookup_elem(hash, &pk);
		if (c)
			return c;
	}
	return NULL;
}

static __always_inline struct xdpf_class *
class6(void *trie, void *hash, struct xdpf_lens *l, struct xdpf_lpm6_key *k, u32 gen)
{
	if (!l->n)
		return bpf_map_lookup_elem(trie, k);
	for (int i = 0; i < XDPF_MAX_LENS; i++) {
		if (i >= l->n)
			break;
		int len = l->len[i] & 255;
		struct xdpf_pfx6_key pk = { .gen_len = gen << 8 | len };
		struct xdpf_class *c;

		for (int w = 0; w < 4; w++)
			((u32 *)pk.addr)[w] = ((u32 *)k->addr)[w] & bpf_htonl(mask32(len - 32 * w));
		c = bpf_map_lookup_elem(hash, &pk);
		if (c)
			return c;
	}
	return NULL;
}

/* The address class of a packet: a constant, or carried by the source or
 * destination class, or looked up by both classes. */
static __always_inline struct xdpf_ac *addr_class(struct xdpf_ac *both, u32 sc, u32 dc,
						  struct xdpf_class *s, struct xdpf_class *d, u32 gen)
{
	if (both->flags & XDPF_AC_VALID)
		return both;
	if (s) {
		if (s->ac.flags & XDPF_AC_VALID)
			return &s->ac;
		sc = s->class;
	}
	if (d) {
		if (d->ac.flags & XDPF_AC_VALID)
			return &d->ac;
		dc = d->class;
	}
	struct xdpf_addr_key ak = { .gen = gen, .sc = sc, .dc = dc };
	return bpf_map_lookup_elem(&addr_classes, &ak);
}

SEC("xdp")
int xdp_filter(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	u64 bytes = end - data;
	struct xdpf_lpm6_key s6, d6;	/* set by parse_v6: IPv4 frames skip zeroing them */
	struct xdpf_lpm4_key s4 = {}, d4 = {};
	struct xdpf_verdict *v = NULL;
	struct xdpf_config *cfg, *live;
	struct pkt p = {};
	u32 zero = 0, eth_proto;
	void *l3 = data + 14;
	int fam;

	live = bpf_map_lookup_elem(&config, &zero);
	if (!live)
		return XDP_PASS;
	u32 gen = live->gen & 1, gkey = 1 + gen;
	cfg = bpf_map_lookup_elem(&config, &gkey);
	if (!cfg)
		return XDP_PASS;

	if (l3 > end)
		goto malformed;
	eth_proto = bpf_ntohs(*(u16 *)(data + 12));
	for (int i = 0; i < 2; i++) {
		if (eth_proto != ETH_P_8021Q && eth_proto != ETH_P_8021AD)
			break;
		if (l3 + 4 > end)
			goto malformed;
		eth_proto = bpf_ntohs(*(u16 *)(l3 + 2));
		l3 += 4;
	}
	if (eth_proto == ETH_P_IP) {
		fam = parse_v4(l3, end, &p, &s4, &d4);
	} else if (eth_proto == ETH_P_IPV6) {
		fam = parse_v6(l3, end, &p, &s6, &d6);
	} else {
		count(&stats, XDPF_STAT_NON_IP, bytes);
		return XDP_PASS;
	}
	if (fam == PARSE_MALFORMED)
		goto malformed;

	struct xdpf_class *sv = NULL, *dv = NULL;
	struct xdpf_ac *ac;
	if (fam == PARSE_V4) {
		s4.prefixlen = d4.prefixlen = 64;
		s4.gen = d4.gen = gen;
		if (!(cfg->ac4.flags & XDPF_AC_VALID)) {
			if (!cfg->src4_class && !(sv = class4(&src4, &src4h, &cfg->lens[0], &s4, gen)))
				goto dflt;
			if (!(sv && (sv->ac.flags & XDPF_AC_VALID)) && !cfg->dst4_class &&
			    !(dv = class4(&dst4, &dst4h, &cfg->lens[1], &d4, gen)))
				goto dflt;
		}
		ac = addr_class(&cfg->ac4, cfg->src4_class, cfg->dst4_class, sv, dv, gen);
	} else {
		s6.prefixlen = d6.prefixlen = 160;
		s6.gen = d6.gen = gen;
		if (!(cfg->ac6.flags & XDPF_AC_VALID)) {
			if (!cfg->src6_class && !(sv = class6(&src6, &src6h, &cfg->lens[2], &s6, gen)))
				goto dflt;
			if (!(sv && (sv->ac.flags & XDPF_AC_VALID)) && !cfg->dst6_class &&
			    !(dv = class6(&dst6, &dst6h, &cfg->lens[3], &d6, gen)))
				goto dflt;
		}
		ac = addr_class(&cfg->ac6, cfg->src6_class, cfg->dst6_class, sv, dv, gen);
	}
	if (!ac)
		goto dflt;

	if (ac->flags & XDPF_AC_INLINE) {
		for (int i = 0; i < XDPF_INLINE; i++) {
			struct xdpf_inline *e = &ac->in[i];

			if (i >= ac->n_inline)
				break;
			if (e->proto ? e->proto != p.proto : p.proto != IPPROTO_TCP && p.proto != IPPROTO_UDP)
				continue;
			if (e->ports && (!p.ports || p.sport < e->sport_lo || p.sport > e->sport_hi ||
					 p.dport < e->dport_lo || p.dport > e->dport_hi))
				continue;
			v = &e->v;
			break;
		}
		goto fallback;
	}
	struct xdpf_match_key mk = { .gen = gen, .ac = ac->ac, .proto = p.proto };
	if (p.ports && (ac->flags & XDPF_AC_PORTS)) {
		u32 si = gen * XDPF_MAX_PORT_CLASSES + (p.sport & 0xffff);
		u32 di = gen * XDPF_MAX_PORT_CLASSES + (p.dport & 0xffff);
		u32 *spc = bpf_map_lookup_elem(&sport_class, &si);
		u32 *dpc = bpf_map_lookup_elem(&dport_class, &di);

		if (spc && dpc) {
			mk.spc = *spc;
			mk.dpc = *dpc;
			v = bpf_map_lookup_elem(&matches, &mk);
		}
	}
	if (!v && (ac->flags & XDPF_AC_PROTO)) {
		mk.spc = mk.dpc = XDPF_NO_PORTS;
		v = bpf_map_lookup_elem(&matches, &mk);
	}
fallback:
	if (!v && (ac->flags & XDPF_AC_ANY))
		v = &ac->any;
	if (!v)
		goto dflt;

	count(&rule_stats, v->rule, bytes);
	switch (v->action) {
	case XDPF_ACT_DROP:
		return XDP_DROP;
	case XDPF_ACT_REDIRECT:
		return bpf_redirect_map(&tx_ports, v->ifindex, XDP_DROP);
	default:	/* XDPF_ACT_PASS */
		return XDP_PASS;
	}


dflt:
	if (live->policy == XDPF_POLICY_ALLOW) {
		count(&stats, XDPF_STAT_DEFAULT_DROP, bytes);
		return XDP_DROP;
	}
	count(&stats, XDPF_STAT_DEFAULT_PASS, bytes);
	return XDP_PASS;

malformed:
	count(&stats, XDPF_STAT_MALFORMED, bytes);
	return XDP_DROP;
}

/* Loaded on the peer of a veth that receives redirected frames (veth only
 * accepts XDP frames when its peer has an XDP program), and as a trivial
 * baseline: pass everything. */
SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
