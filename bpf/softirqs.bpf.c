// SPDX-License-Identifier: GPL-2.0
/*
 * softirqs: time spent in each softirq vector on each CPU, from
 * irq:softirq_entry to irq:softirq_exit (one vector runs at a time on a
 * CPU: softirqs do not nest), with the count of entries (the kernel counts
 * /proc/softirqs just before softirq_entry) and a log2 histogram of the
 * runs (left out, with their log2 and division, unless asked for).
 * Everything is per CPU: no atomics, no shared cache lines.
 */
#include "kernel.h"
#include "sched.h"
#include "softirqs.h"

const volatile bool in_ns = false;	/* histogram in ns, else µs */
const volatile bool hists = true;	/* fill the histograms (bpfkit softirqs -d, tests, serve) */

struct start {
	u64 ns;
	u32 vec;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct start);
} starts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SOFTIRQ_VECTORS);
	__type(key, u32);
	__type(value, struct softirq_stat);
} stats SEC(".maps");

/* Puts struct softirq_stat into BTF, for bpf2go's -type. */
const struct softirq_stat *unused_softirq_stat __attribute__((unused));

/* softirq_entry(unsigned int vec_nr), softirq_exit(unsigned int vec_nr) */
static __always_inline int on_entry(u64 *ctx, bool btf)
{
	u32 vec = (u32)ctx[0], zero = 0;
	struct softirq_stat *s = bpf_map_lookup_elem(&stats, &vec);
	struct start *st = bpf_map_lookup_elem(&starts, &zero);

	if (!s || !st)
		return 0;
	s->count++;
	st->vec = vec;
	st->ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int on_exit(u64 *ctx, bool btf)
{
	u32 vec = (u32)ctx[0], zero = 0;
	struct start *st = bpf_map_lookup_elem(&starts, &zero);
	struct softirq_stat *s;
	u64 d, slot;

	if (!st || !st->ns || st->vec != vec)
		return 0;	/* began before tracing did */
	d = bpf_ktime_get_ns() - st->ns;
	st->ns = 0;
	s = bpf_map_lookup_elem(&stats, &vec);
	if (!s)
		return 0;
	s->ns += d;
	if (!hists)
		return 0;
	slot = log2(in_ns ? d : d / 1000);
	if (slot >= SOFTIRQ_SLOTS)
		slot = SOFTIRQ_SLOTS - 1;
	s->hist[slot]++;
	return 0;
}

SCHED_TP(softirq_entry, on_entry)
SCHED_TP(softirq_exit, on_exit)
