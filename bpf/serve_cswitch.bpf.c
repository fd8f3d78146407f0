// SPDX-License-Identifier: GPL-2.0
/*
 * serve_cswitch: voluntary and involuntary context switches per cgroup,
 * classified as cswitch.bpf.c classifies them (exact against
 * /proc/PID/task/TID/status): a switch is voluntary when the kernel's own
 * voluntary counter of the task switched out (prev->nvcsw) moved since that
 * thread's previous switch; a thread's first switch seen is classified by
 * the kernel's rule from the task's state. The switch counts for the cgroup
 * of the task switched out (current at the tracepoint).
 *
 * Counted per thread, as the CLI's cswitch counts: each thread has an entry
 * (keyed by thread id, as the CLI's; its start time in the entry tells a
 * thread id reused by a new thread) with the cgroup its counts belong to,
 * and a switch is one lookup and a plain increment (a task is switched out
 * on one CPU at a time). The counts move to their cgroup's `retired`
 * counters (atomic adds: a cgroup's tasks run on every CPU) only when the
 * thread is seen in another cgroup (at its first switch there) and at its
 * last switch, when it exits (prev in TASK_DEAD); its entry is then
 * deleted. User space adds `retired` and the entries up per cgroup at
 * scrape time.
 *
 * Nothing is evicted (a plain hash, not an LRU one, which would drop a live
 * thread's counts): a switch of a thread that finds the map full is added
 * to `retired` at once, classified as a first switch is.
 */
#include "kernel.h"
#include "sched.h"
#include "serve.h"

/* prev->__state (state before 5.14) at a task's last switch: do_task_dead
 * sets it and calls __schedule. 0x80 since 4.14 (include/linux/sched.h);
 * TestCswitchExitedThreadsLeave checks it on every kernel of the matrix. */
#define TASK_DEAD 0x80

SERVE_MAP(retired, u64, struct serve_cswitch, SERVE_PREALLOC);

/* Preallocated: entries are inserted and deleted under the run-queue lock
 * (see SERVE_PREALLOC). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, u32);	/* thread id */
	__type(value, struct serve_cswitch_thread);
} threads SEC(".maps");

/* retire adds switches to cgroup's retired counters. What does not fit
 * (the map full of cgroups) is counted in `lost`, one per switch. */
static __always_inline void retire(u64 cgroup, u64 voluntary, u64 involuntary)
{
	struct serve_cswitch zero = {}, *c;
	u32 key = 0;
	u64 *lost_n;

	c = lookup_or_insert(&retired, &cgroup, &zero);	/* counted one lost if NULL */
	if (!c) {
		lost_n = bpf_map_lookup_elem(&lost, &key);
		if (lost_n && voluntary + involuntary > 1)
			*lost_n += voluntary + involuntary - 1;
		return;
	}
	if (voluntary)
		__sync_fetch_and_add(&c->voluntary, voluntary);
	if (involuntary)
		__sync_fetch_and_add(&c->involuntary, involuntary);
}

/* fold moves a thread's counts to its cgroup's retired counters. They are
 * taken out of the entry first: a scrape between the two steps (user space
 * reads `retired`, then the entries) finds them in neither, never in both,
 * so it may come out lower than the truth, never higher. */
static __always_inline void fold(struct serve_cswitch_thread *t)
{
	u64 voluntary = t->voluntary, involuntary = t->involuntary;

	t->voluntary = 0;
	t->involuntary = 0;
	retire(t->cgroup, voluntary, involuntary);
}

static __always_inline int on_switch(u64 *ctx, bool btf)
{
	bool preempt = (u8)ctx[0];
	struct task_struct *prev = (void *)ctx[1];
	u64 id = bpf_get_current_pid_tgid();	/* current is prev */
	u32 tid = (u32)id;
	struct serve_cswitch_thread *t;
	u64 start, nvcsw, cgroup;
	bool voluntary;
	long state;

	if (!tid || !task_wanted(id))
		return 0;
	start = TASK_READ(btf, prev, start_time);
	nvcsw = TASK_READ(btf, prev, nvcsw);
	state = task_state(prev, btf);
	/* bpf_get_current_cgroup_id's loads, without the call on tp_btf. */
	cgroup = btf ? prev->cgroups->dfl_cgrp->kn->id : bpf_get_current_cgroup_id();
	t = bpf_map_lookup_elem(&threads, &tid);
	if (t && t->start == start) {
		/* A task is switched out on one CPU at a time: no race. */
		if (t->cgroup != cgroup) {
			fold(t);
			t->cgroup = cgroup;
		}
		if (nvcsw != t->nvcsw)
			t->voluntary++;
		else
			t->involuntary++;
		t->nvcsw = nvcsw;
		if (state == TASK_DEAD) {
			fold(t);
			bpf_map_delete_elem(&threads, &tid);
		}
		return 0;
	}
	voluntary = !preempt && state != TASK_RUNNING;
	struct serve_cswitch_thread n = {
		.start = start,
		.cgroup = cgroup,
		.nvcsw = nvcsw,
		.voluntary = voluntary,
		.involuntary = !voluntary,
	};
	if (t) {
		/* The entry of an earlier thread with this id, whose last
		 * switch was not seen: its counts go to its cgroup. */
		fold(t);
		if (state != TASK_DEAD) {
			*t = n;
			return 0;
		}
		bpf_map_delete_elem(&threads, &tid);
	} else if (state != TASK_DEAD && !bpf_map_update_elem(&threads, &tid, &n, BPF_NOEXIST)) {
		return 0;
	}
	/* Its last switch the first seen, or no room: straight to retired. */
	retire(cgroup, voluntary, !voluntary);
	return 0;
}

SCHED_TP(sched_switch, on_switch)
