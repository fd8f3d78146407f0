// SPDX-License-Identifier: GPL-2.0
/*
 * opensnoop: every open(2), openat(2) and openat2(2), from the syscalls
 * tracepoints. Arguments are remembered at entry; the event is made at exit,
 * when the name has surely been paged in and the returned fd tells which file
 * was opened.
 */
#include "kernel.h"
#include "common.h"
#include "path.h"
#include "opensnoop.h"

const volatile bool only_failed = false;
const volatile bool want_full_path = false;
BTF_ENUM(path_source);
BTF_ENUM(open_event_flags);

struct open_args {
	u64 name;	/* user pointer */
	s32 dirfd;
	u32 flags;
	u32 mode;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);
	__type(value, struct open_args);
} inflight SEC(".maps");

/* The event is built here: header, name, then path. */
struct open_record {
	struct open_event e;
	char data[2 * PATH_MAX + 1024];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct open_record);
} scratch SEC(".maps");

static __always_inline int enter(const char *name, int dirfd, u64 flags, u64 mode)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	struct open_args a = {
		.name = (u64)name,
		.dirfd = dirfd,
		.flags = flags,
		.mode = mode,
	};

	if (!task_wanted(id))
		return 0;
	bpf_map_update_elem(&inflight, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_open")
int enter_open(struct syscall_enter_ctx *ctx)
{
	return enter((const char *)ctx->args[0], AT_FDCWD, ctx->args[1], ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_openat")
int enter_openat(struct syscall_enter_ctx *ctx)
{
	return enter((const char *)ctx->args[1], (int)ctx->args[0], ctx->args[2], ctx->args[3]);
}

struct open_how {
	u64 flags;
	u64 mode;
	u64 resolve;
};

SEC("tracepoint/syscalls/sys_enter_openat2")
int enter_openat2(struct syscall_enter_ctx *ctx)
{
	struct open_how how = {};

	bpf_probe_read_user(&how, sizeof(how), (void *)ctx->args[2]);
	return enter((const char *)ctx->args[1], (int)ctx->args[0], how.flags, how.mode);
}

static __always_inline int leave(long ret)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id, zero = 0;
	struct open_args *a = bpf_map_lookup_elem(&inflight, &tid);
	struct open_record *r;
	u32 name_len = 0, path_len = 0;
	bool truncated = false;
	long n;

	if (!a)
		return 0;
	if (only_failed && ret >= 0)
		goto out;
	r = bpf_map_lookup_elem(&scratch, &zero);
	if (!r)
		goto out;

	r->e.boot_ns = bpf_ktime_get_boot_ns();
	r->e.pid = id >> 32;
	r->e.tid = tid;
	r->e.uid = (u32)bpf_get_current_uid_gid();
	r->e.ret = ret;
	r->e.flags = a->flags;
	r->e.mode = a->mode;
	r->e.trunc = 0;
	r->e.path_source = PATH_NONE;
	bpf_get_current_comm(r->e.comm, sizeof(r->e.comm));

	n = bpf_probe_read_user_str(r->data, PATH_MAX, (const char *)a->name);
	if (n > 0) {
		name_len = n - 1;
		if (n == PATH_MAX)
			r->e.trunc |= NAME_TRUNCATED;
	} else {
		r->e.trunc |= NAME_UNREAD;
	}
	name_len &= PATH_MASK;

	if (want_full_path || (n <= 0 && ret >= 0)) {
		struct path *p = NULL;

		if (ret >= 0) {
			struct file *f = task_file(ret);

			if (f)
				p = &f->f_path;
			r->e.path_source = PATH_FILE;
		} else if (name_len > 0 && r->data[0] == '/') {
			r->e.path_source = PATH_NAME;
		} else {
			p = dir_path(a->dirfd);
			r->e.path_source = PATH_DIR;
		}
		if (p)
			path_len = path_write(p, r->data + name_len, &truncated);
		if (truncated)
			r->e.trunc |= PATH_TRUNCATED;
	}
	path_len &= PATH_MASK;
	r->e.name_len = name_len;
	r->e.path_len = path_len;
	submit(r, sizeof(r->e) + name_len + path_len);
out:
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

/* One program for every exit hook (the loader attaches it to sys_exit_open
 * and sys_exit_openat2 too), so the path walk is verified once. */
SEC("tracepoint/syscalls/sys_exit_openat")
int exit_open(struct syscall_exit_ctx *ctx)
{
	return leave(ctx->ret);
}
