// SPDX-License-Identifier: GPL-2.0
/* serve_syscalls: system calls and failed ones per cgroup and syscall,
 * counted at raw_syscalls:sys_exit as syscount does (exit and exit_group
 * never return and are not counted), named from the running kernel
 * (syscall_names.h). */
#include "kernel.h"
#include "common.h"
#include "serve.h"
#include "syscall_names.h"

SERVE_MAP(syscalls, struct serve_syscall_key, struct serve_syscall, SERVE_GROWING);

SEC("tracepoint/raw_syscalls/sys_exit")
int sys_exit(struct syscall_exit_ctx *ctx)
{
	struct serve_syscall_key k = {};
	struct serve_syscall zero = {}, *v;
	long ret = ctx->ret;

	if (ctx->id < 0 || ctx->id >= SYSCOUNT_MAX_NR)
		return 0;
	k.cgroup = bpf_get_current_cgroup_id();
	k.nr = ctx->id;
	v = lookup_or_insert(&syscalls, &k, &zero);
	if (!v)
		return 0;
	__sync_fetch_and_add(&v->calls, 1);
	if (ret < 0 && ret >= -4095)
		__sync_fetch_and_add(&v->errors, 1);
	return 0;
}
