// SPDX-License-Identifier: GPL-2.0
/* serve_exit: process exits per cgroup and ending signal, counted once per
 * process, when its last thread exits (exit.h), with the code wait(2)
 * reports; on the BTF or raw tracepoint, as serve_exec. */
#include "kernel.h"
#include "sched.h"
#include "exit.h"
#include "serve.h"

SERVE_MAP(exits, struct serve_exit_key, u64, SERVE_GROWING);

/* sched_process_exit(p[, group_dead]): p is the current task. */
static __always_inline int on_exit(u64 *ctx, bool btf)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct serve_exit_key k = {};

	if (!group_dead_arg(ctx, task) || !task_wanted(bpf_get_current_pid_tgid()))
		return 0;
	k.cgroup = bpf_get_current_cgroup_id();
	k.signal = exit_code(task, true) & 0x7f;
	count_one(&exits, &k);
	return 0;
}

SCHED_TP(sched_process_exit, on_exit)
