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
 * The last nvcsw of each thread is kept in an LRU hash keyed by thread id
 * and start time, so that a thread id reused by a new thread starts afresh
 * and threads that are gone make room by themselves.
 */
#include "kernel.h"
#include "sched.h"
#include "serve.h"

SERVE_MAP(switches, u64, struct serve_cswitch, SERVE_PREALLOC);

struct thread_key {
	u64 start;	/* task->start_time */
	u32 tid;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct thread_key);
	__type(value, u64);	/* nvcsw at the thread's last switch */
} last_nvcsw SEC(".maps");

static __always_inline int on_switch(u64 *ctx, bool btf)
{
	bool preempt = (u8)ctx[0];
	struct task_struct *prev = (void *)ctx[1];
	u64 id = bpf_get_current_pid_tgid();	/* current is prev */
	struct thread_key tk = { .tid = (u32)id };
	struct serve_cswitch zero = {}, *c;
	u64 nvcsw, *last, cgroup;
	bool voluntary;

	if (!tk.tid || !task_wanted(id))
		return 0;
	tk.start = TASK_READ(btf, prev, start_time);
	nvcsw = TASK_READ(btf, prev, nvcsw);
	last = bpf_map_lookup_elem(&last_nvcsw, &tk);
	if (last) {
		/* A task is switched out on one CPU at a time: no race. */
		voluntary = nvcsw != *last;
		*last = nvcsw;
	} else {
		voluntary = !preempt && task_state(prev, btf) != TASK_RUNNING;
		bpf_map_update_elem(&last_nvcsw, &tk, &nvcsw, BPF_ANY);
	}
	cgroup = bpf_get_current_cgroup_id();
	c = cgroup_value(&switches, &cgroup, &zero);
	if (!c)
		return 0;
	if (voluntary)
		__sync_fetch_and_add(&c->voluntary, 1);
	else
		__sync_fetch_and_add(&c->involuntary, 1);
	return 0;
}

SCHED_TP(sched_switch, on_switch)
