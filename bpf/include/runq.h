/* SPDX-License-Identifier: GPL-2.0 */
/*
 * runq.h: when each selected task was queued to run (runqlat, serve's
 * runqlat). A task is queued at sched_wakeup / sched_wakeup_new (on_wakeup)
 * or when switched out still runnable (the caller's enqueue of prev); the
 * enqueue times live in an LRU hash written in place, zeroed at switch-in.
 * Include after sched.h.
 */
#ifndef BPFKIT_RUNQ_H
#define BPFKIT_RUNQ_H

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);	/* tid */
	__type(value, u64);	/* enqueue time, ns; 0 when not queued */
} start SEC(".maps");

static __always_inline void enqueue(struct task_struct *t, bool btf, u64 now)
{
	u32 tid = TASK_READ(btf, t, pid);
	u64 *ts;

	if (!tid || !task_selected(t, btf))
		return;
	ts = bpf_map_lookup_elem(&start, &tid);
	if (ts)
		*ts = now;	/* the task is not running: no one else writes it */
	else
		bpf_map_update_elem(&start, &tid, &now, BPF_ANY);
}

static __always_inline int on_wakeup(u64 *ctx, bool btf)
{
	enqueue((void *)ctx[0], btf, bpf_ktime_get_ns());
	return 0;
}

#endif
