/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sched.h: what the scheduler tracers (cswitch, runqlat, offcputime,
 * schedrecord) share — reading a task's state on every kernel, filtering a
 * task that is not the current one, and declaring one handler on both the
 * BTF tracepoint and the raw tracepoint of a sched event.
 */
#ifndef BPFKIT_SCHED_H
#define BPFKIT_SCHED_H

#include "common.h"

#define TASK_RUNNING 0

/*
 * SCHED_TP declares fn(u64 *args, bool btf) twice on the sched tracepoint
 * tp: as tp_btf/tp (program tp_btf, 5.5+; btf is true) and
 * raw_tracepoint/tp (program tp_raw; btf is false). Both receive the
 * tracepoint's arguments as an array of u64; the Go side passes
 * {"tp_btf", "tp_raw"} as loader alternatives so only one is loaded.
 * Arguments (include/trace/events/sched.h):
 *   sched_switch(bool preempt, prev, next[, unsigned int prev_state 5.18+])
 *   sched_wakeup(p), sched_wakeup_new(p)
 */
#define SCHED_TP(tp, fn)							\
	SEC("tp_btf/" #tp) int tp##_btf(u64 *ctx) { return fn(ctx, true); }	\
	SEC("raw_tracepoint/" #tp) int tp##_raw(u64 *ctx) { return fn(ctx, false); }

/*
 * TASK_READ reads a field (path) of a task: in a BTF tracepoint the
 * verifier knows the pointer's type, so it is a plain load (a few ns); in
 * a raw tracepoint it is a CO-RE probe read (a helper call). btf is a
 * constant: each program keeps one of the two.
 */
#define TASK_READ(btf, t, ...) ((btf) ? (t)->__VA_ARGS__ : BPF_CORE_READ(t, __VA_ARGS__))

/* task_state is the task's __state (5.14+) or state: 0 when runnable. */
static __always_inline long task_state(struct task_struct *t, bool btf)
{
	if (bpf_core_field_exists(t->__state))
		return TASK_READ(btf, t, __state);
	return TASK_READ(btf, (struct task_struct___old *)t, state);
}

/* task_cgroup_id is the id of the task's cgroup v2, as
 * bpf_get_current_cgroup_id gives it for the current task. */
static __always_inline u64 task_cgroup_id(struct task_struct *t)
{
	return BPF_CORE_READ(t, cgroups, dfl_cgrp, kn, id);
}

/* task_pidns is the inode number of the task's pid namespace. */
static __always_inline u32 task_pidns(struct task_struct *t)
{
	return BPF_CORE_READ(t, nsproxy, pid_ns_for_children, ns.inum);
}

/*
 * task_selected applies the task filters of common.h to any task (not only
 * the current one): pid, tid, comm and cgroup. The uid filter is not
 * applied here; the Go side refuses it for tools that use this.
 */
static __always_inline bool task_selected(struct task_struct *t, bool btf)
{
	char comm[16];

	if (filter_pid && TASK_READ(btf, t, tgid) != filter_pid)
		return false;
	if (filter_tid && TASK_READ(btf, t, pid) != filter_tid)
		return false;
	if (filter_cgroup && task_cgroup_id(t) != filter_cgroup)
		return false;
	if (!filter_comm[0])
		return true;
	bpf_probe_read_kernel_str(comm, sizeof(comm), t->comm);
	return comm_is_filter(comm);
}

/* log2 is floor(log2(v)), 0 for 0. */
static __always_inline u32 log2(u64 v)
{
	u32 r = 0, shift;

	shift = (v > 0xFFFFFFFF) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

#endif
