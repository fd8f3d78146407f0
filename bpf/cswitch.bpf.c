// SPDX-License-Identifier: GPL-2.0
/*
 * cswitch: voluntary and involuntary context switches per thread, counted
 * at sched_switch for the task switched out, as the kernel counts them for
 * /proc/PID/status (kernel/sched/core.c, __schedule):
 *
 *	if (!preempt && prev_state) switch_count = &prev->nvcsw;  (voluntary)
 *	else                        switch_count = &prev->nivcsw; (involuntary)
 *	...
 *	++*switch_count; trace_sched_switch(...);
 *
 * The tracepoint's arguments cannot always tell which: a task that tries to
 * block with a signal pending is set back to TASK_RUNNING first (since 6.13
 * the prev_state argument says so too), yet counted as voluntary. So the
 * kernel's own voluntary counter, just incremented or not, decides: a
 * thread's switch is voluntary when prev->nvcsw moved since its previous
 * switch. The first switch seen of a thread has no previous value and is
 * classified by the rule above from the task's state. The idle task (pid 0)
 * is skipped.
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
	u64 nvcsw;

	if (!tid || !task_wanted(id))
		return 0;
	nvcsw = TASK_READ(btf, prev, nvcsw);
	c = bpf_map_lookup_elem(&counts, &tid);
	if (c) {
		/* A task is switched out on one CPU at a time: no race. */
		if (nvcsw != c->nvcsw)
			c->voluntary++;
		else
			c->involuntary++;
		c->nvcsw = nvcsw;
		return 0;
	}
	voluntary = !preempt && task_state(prev, btf) != TASK_RUNNING;
	struct cswitch_count n = {
		.voluntary = voluntary,
		.involuntary = !voluntary,
		.pid = id >> 32,
		.tid = tid,
		.nvcsw = nvcsw,
	};
	bpf_get_current_comm(n.comm, sizeof(n.comm));
	if (bpf_map_update_elem(&counts, &tid, &n, BPF_NOEXIST))
		count_lost();	/* map full: this thread is not counted */
	return 0;
}

SCHED_TP(sched_switch, on_switch)
