// SPDX-License-Identifier: GPL-2.0
/*
 * serve_fileio: reads and writes of regular files per cgroup, from the
 * same syscall tracepoints as filetop.bpf.c (the Go side attaches these
 * programs to every read and write call with filetop's AlsoAttach): the fd
 * is remembered at entry; at exit a call that returned >= 0 on a regular
 * file adds one operation and its bytes to the caller's cgroup.
 */
#include "kernel.h"
#include "common.h"
#include "path.h"
#include "fdcall.h"
#include "serve.h"

SERVE_MAP(fileio, u64, struct serve_fileio, SERVE_GROWING);

SEC("tracepoint/syscalls/sys_enter_read")
int enter_fd_call(struct syscall_enter_ctx *ctx)
{
	return enter(ctx->args[0]);
}

static __always_inline int leave(long ret, bool write)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct call *c = bpf_map_lookup_elem(&inflight, &tid);
	struct serve_fileio zero = {}, *s;
	struct file *f;
	u64 cgroup;

	if (!c || !c->active)
		return 0;
	c->active = 0;
	if (ret < 0)
		return 0;
	f = task_file(c->fd);
	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & S_IFMT) != S_IFREG)
		return 0;
	cgroup = bpf_get_current_cgroup_id();
	s = lookup_or_insert(&fileio, &cgroup, &zero);
	if (!s)
		return 0;
	if (write) {
		__sync_fetch_and_add(&s->writes, 1);
		__sync_fetch_and_add(&s->write_bytes, ret);
	} else {
		__sync_fetch_and_add(&s->reads, 1);
		__sync_fetch_and_add(&s->read_bytes, ret);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_read")
int exit_read_call(struct syscall_exit_ctx *ctx)
{
	return leave(ctx->ret, false);
}

SEC("tracepoint/syscalls/sys_exit_write")
int exit_write_call(struct syscall_exit_ctx *ctx)
{
	return leave(ctx->ret, true);
}
