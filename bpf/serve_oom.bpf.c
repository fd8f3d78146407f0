// SPDX-License-Identifier: GPL-2.0
/* serve_oom: OOM kills per cgroup (v2) of the victim, at mark_victim's BTF
 * or raw tracepoint (no perf event, as serve_exec). Its arguments are the
 * victim's task and uid where its record carries the victim's figures
 * (6.8+), else only the victim's pid, and the task comes from
 * signal_generate (oom.h); the trigger's cgroup when that signal was not
 * seen. */
#include "kernel.h"
#include "sched.h"
#include "oom.h"
#include "serve.h"

/* Preallocated: an OOM kill may come when the kernel has no memory to give
 * a new map entry. */
SERVE_MAP(oom_kills, u64, u64, SERVE_PREALLOC);

static __always_inline int on_mark_victim(u64 *ctx, bool btf)
{
	struct trace_event_raw_mark_victim *tp = NULL;
	struct task_struct *v;
	u64 id;

	if (bpf_core_field_exists(tp->uid))
		v = (struct task_struct *)ctx[0];
	else
		v = oom_victim((u32)ctx[0]);
	id = v ? task_cgroup_id(v) : bpf_get_current_cgroup_id();
	count_one(&oom_kills, &id);
	return 0;
}

SCHED_TP(mark_victim, on_mark_victim)
