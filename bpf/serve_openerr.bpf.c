// SPDX-License-Identifier: GPL-2.0
/* serve_openerr: failed opens per cgroup and errno, at the exit of open,
 * openat and openat2 (the Go side attaches this one program to all three,
 * with opensnoop's AlsoAttach). */
#include "kernel.h"
#include "common.h"
#include "serve.h"

SERVE_MAP(open_errors, struct serve_errno_key, u64, SERVE_GROWING);

SEC("tracepoint/syscalls/sys_exit_openat")
int exit_open(struct syscall_exit_ctx *ctx)
{
	struct serve_errno_key k = {};

	if (ctx->ret >= 0 || !task_wanted(bpf_get_current_pid_tgid()))
		return 0;
	k.cgroup = bpf_get_current_cgroup_id();
	k.err = -ctx->ret;
	count_one(&open_errors, &k);
	return 0;
}
