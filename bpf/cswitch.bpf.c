// SPDX-License-Identifier: GPL-2.0
/*
 * cswitch: voluntary and involuntary context switches per thread, counted
 * at sched_switch for the task switched out, by the rule the kernel uses for
 * /proc/PID/status (kernel/sched/core.c, __schedule):
 *
 *	if (!preempt && prev_state) switch_count = &prev->nvcsw;  (voluntary)
 *	else                        switch_count = &prev->nivcsw; (involuntary)
 *
 * The tracepoint's preempt argument is the kernel's, and the task's state
 * read here is the prev_state the kernel compares (a task that had a signal
 * pending when it tried to block is set back to TASK_RUNNING before the
 * tracepoint; the kernel still counts that switch as voluntary, cswitch as
 * involuntary — see pkg/trace/cswitch). The idle task (pid 0) is skipped.
 */
#include "kernel.h"
#include "sched.h"
#include "cswitch.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);
	__type(value, struct cswitch_count);
} counts SEC(".maps");

static __always_inline int on_switch(u64 *ctx, bool btf)
{
	bool preempt = (u8)ctx[0];
	struct task_struct *prev = (void *)ctx[1];
	u64 id = bpf_get_current_pid_tgid();	/* current is prev */
	u32 tid = (u32)id;
	struct cswitch_count *c;
	bool voluntary;

	if (!tid || !task_wanted(id))
		return 0;
	voluntary = !preempt && task_state(prev, btf) != TASK_RUNNING;
	c = bpf_map_lookup_elem(&counts, &tid);
	if (c) {
		/* A task is switched out on one CPU at a time: no race. */
		if (voluntary)
			c->voluntary++;
		else
			c->involuntary++;
		return 0;
	}
	struct cswitch_count n = {
		.voluntary = voluntary,
		.involuntary = !voluntary,
		.pid = id >> 32,
		.tid = tid,
	};
	bpf_get_current_comm(n.comm, sizeof(n.comm));
	if (bpf_map_update_elem(&counts, &tid, &n, BPF_NOEXIST))
		count_lost();	/* map full: this thread is not counted */
	return 0;
}

SCHED_TP(sched_switch, on_switch)
