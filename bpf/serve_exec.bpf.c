// SPDX-License-Identifier: GPL-2.0
/* serve_exec: successful execs per cgroup (sched_process_exec fires only
 * once an exec can no longer fail), on its BTF or raw tracepoint: no perf
 * event, which kernels with perf_event_paranoid above 2 refuse a service
 * without CAP_SYS_ADMIN, and no tracefs. */
#include "kernel.h"
#include "sched.h"
#include "serve.h"

SERVE_MAP(execs, u64, u64, SERVE_GROWING);

/* sched_process_exec(p, old_pid, bprm): p is the current task. */
static __always_inline int on_exec(u64 *ctx, bool btf)
{
	u64 cgroup;

	if (!task_wanted(bpf_get_current_pid_tgid()))
		return 0;
	cgroup = bpf_get_current_cgroup_id();
	count_one(&execs, &cgroup);
	return 0;
}

SCHED_TP(sched_process_exec, on_exec)
