// SPDX-License-Identifier: GPL-2.0
/*
 * serve_runqlat: run-queue latency per cgroup, measured as runqlat.bpf.c
 * measures it (a task is queued at sched_wakeup / sched_wakeup_new or when
 * switched out still runnable; the wait ends when sched_switch switches it
 * in) and added to a log2 histogram of the cgroup of the task switched in,
 * read through CO-RE (task->cgroups->dfl_cgrp->kn->id).
 */
#include "kernel.h"
#include "sched.h"
#include "runq.h"
#include "serve.h"

SERVE_MAP(hists, u64, struct serve_hist, SERVE_PREALLOC);

static __always_inline int on_switch(u64 *ctx, bool btf)
{
	bool preempt = (u8)ctx[0];
	struct task_struct *prev = (void *)ctx[1];
	struct task_struct *next = (void *)ctx[2];
	struct serve_hist zero = {}, *h;
	u64 *ts, delta, cgroup, now = bpf_ktime_get_ns();
	u32 tid, slot;

	if (preempt || task_state(prev, btf) == TASK_RUNNING)
		enqueue(prev, btf, now);

	tid = TASK_READ(btf, next, pid);
	if (!tid || !task_selected(next, btf))
		return 0;
	ts = bpf_map_lookup_elem(&start, &tid);
	if (!ts || !*ts)
		return 0;
	delta = now - *ts;
	*ts = 0;
	if ((s64)delta < 0)
		return 0;
	cgroup = task_cgroup_id(next);
	h = lookup_or_insert(&hists, &cgroup, &zero);
	if (!h)
		return 0;
	slot = log2(delta / 1000);
	if (slot >= SERVE_SLOTS)
		slot = SERVE_SLOTS - 1;
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->sum_ns, delta);
	return 0;
}

SCHED_TP(sched_wakeup, on_wakeup)
SCHED_TP(sched_wakeup_new, on_wakeup)
SCHED_TP(sched_switch, on_switch)
