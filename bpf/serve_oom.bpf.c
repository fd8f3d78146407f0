// SPDX-License-Identifier: GPL-2.0
/* serve_oom: OOM kills per cgroup (v2) of the victim, at oom:mark_victim
 * with the victim's task from signal:signal_generate (oom.h); the trigger's
 * cgroup when that signal was not seen. */
#include "kernel.h"
#include "sched.h"
#include "oom.h"
#include "serve.h"

/* Preallocated: an OOM kill may come when the kernel has no memory to give
 * a new map entry. */
SERVE_MAP(oom_kills, u64, u64, SERVE_PREALLOC);

SEC("tracepoint/oom/mark_victim")
int mark_victim(struct trace_event_raw_mark_victim *ctx)
{
	struct task_struct *v = oom_victim(ctx->pid);
	u64 id = v ? task_cgroup_id(v) : bpf_get_current_cgroup_id();

	count_one(&oom_kills, &id);
	return 0;
}
