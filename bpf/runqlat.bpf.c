// SPDX-License-Identifier: GPL-2.0
/*
 * runqlat: how long runnable tasks wait for a CPU. A task becomes runnable
 * at sched_wakeup / sched_wakeup_new, or at sched_switch when it is switched
 * out while still runnable (preempted: it goes back to the run queue); the
 * wait ends when sched_switch switches it in. Latencies go into log2
 * histograms in the kernel; only the histograms cross to user space.
 *
 * Cost matters: this runs on every switch and wakeup of the machine. The
 * enqueue times live in an LRU hash written in place (a lookup, no insert
 * or delete once a thread has its entry; a switch-in zeroes it), and the
 * one histogram of the default mode is per CPU (no shared cache line, no
 * atomics); user space adds the CPUs up.
 */
#include "kernel.h"
#include "sched.h"
#include "runq.h"
#include "runqlat.h"

const volatile u32 key_by = KEY_ALL;
const volatile bool in_ms = false;
BTF_ENUM(runqlat_key);
BTF_ENUM(runqlat_stat);

/* Histograms per process, thread or pid namespace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);
	__type(value, struct runqlat_hist);
} hists SEC(".maps");

/* The histogram of KEY_ALL, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct runqlat_hist);
} hist_all SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 i)
{
	u64 *n = bpf_map_lookup_elem(&stats, &i);

	if (n)
		(*n)++;
}

static __always_inline struct runqlat_hist *hist_of(struct task_struct *next, bool btf, u32 tid)
{
	struct runqlat_hist *h;
	u32 key = 0;

	switch (key_by) {
	case KEY_PROCESS:
		key = TASK_READ(btf, next, tgid);
		break;
	case KEY_THREAD:
		key = tid;
		break;
	case KEY_PIDNS:
		key = task_pidns(next);
		break;
	default:
		return bpf_map_lookup_elem(&hist_all, &key);
	}
	h = bpf_map_lookup_elem(&hists, &key);
	if (h)
		return h;
	struct runqlat_hist zero = {};

	if (key_by == KEY_PROCESS || key_by == KEY_THREAD)
		bpf_probe_read_kernel_str(zero.comm, sizeof(zero.comm), next->comm);
	bpf_map_update_elem(&hists, &key, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&hists, &key);
}

static __always_inline int on_switch(u64 *ctx, bool btf)
{
	bool preempt = (u8)ctx[0];
	struct task_struct *prev = (void *)ctx[1];
	struct task_struct *next = (void *)ctx[2];
	struct runqlat_hist *h;
	u64 *ts, delta, now = bpf_ktime_get_ns();
	u32 tid, slot;

	if (preempt || task_state(prev, btf) == TASK_RUNNING)
		enqueue(prev, btf, now);

	tid = TASK_READ(btf, next, pid);
	if (!tid || !task_selected(next, btf))
		return 0;
	stat_inc(STAT_SWITCH_IN);
	ts = bpf_map_lookup_elem(&start, &tid);
	if (!ts || !*ts) {
		stat_inc(STAT_NO_START);
		return 0;
	}
	delta = now - *ts;
	*ts = 0;
	if ((s64)delta < 0)
		return 0;

	h = hist_of(next, btf, tid);
	if (!h) {
		count_lost();	/* map full */
		return 0;
	}
	delta /= in_ms ? 1000000 : 1000;
	slot = log2(delta);
	if (slot >= RUNQLAT_SLOTS)
		slot = RUNQLAT_SLOTS - 1;
	if (key_by == KEY_ALL)
		h->slots[slot]++;	/* per CPU */
	else
		__sync_fetch_and_add(&h->slots[slot], 1);
	return 0;
}

SCHED_TP(sched_wakeup, on_wakeup)
SCHED_TP(sched_wakeup_new, on_wakeup)
SCHED_TP(sched_switch, on_switch)
