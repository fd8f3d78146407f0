// SPDX-License-Identifier: GPL-2.0
/* serve_exec: successful execs per cgroup (sched:sched_process_exec fires
 * only once an exec can no longer fail). */
#include "kernel.h"
#include "common.h"
#include "serve.h"

SERVE_MAP(execs, u64, u64, SERVE_GROWING);

SEC("tracepoint/sched/sched_process_exec")
int exec_done(void *ctx)
{
	u64 cgroup;

	if (!task_wanted(bpf_get_current_pid_tgid()))
		return 0;
	cgroup = bpf_get_current_cgroup_id();
	count_one(&execs, &cgroup);
	return 0;
}
