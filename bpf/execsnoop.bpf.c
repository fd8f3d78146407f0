// SPDX-License-Identifier: GPL-2.0
/*
 * execsnoop and exitsnoop: every exec (execve and execveat, success or
 * failure) and every exit, from tracepoints, through one ring buffer so that
 * events keep the order they happened in.
 *
 * A successful exec is reported at sched:sched_process_exec with the command
 * line read from the new process's memory (mm->arg_start..arg_end, the bytes
 * of /proc/PID/cmdline). A failed one is reported at the syscall's exit with
 * the argv the caller passed, remembered at entry.
 */
#include "kernel.h"
#include "common.h"
#include "path.h"
#include "exit.h"
#include "execsnoop.h"

const volatile bool only_failed_execs = false;
const volatile bool only_failed_exits = false;	/* non-zero status or killed */
const volatile bool want_cwd = false;
const volatile bool all_threads = false;	/* report each thread's exit, not only a process's */
const volatile u32 filter_ppid = 0;
const volatile u32 args_limit = 32 << 10;	/* at most ARGS_MAX */
BTF_ENUM(record_kind);
BTF_ENUM(exec_event_flags);
BTF_ENUM(execsnoop_limits);

#define ARGS_MASK (2 * ARGS_MAX - 1)
#define MAX_ARGC 1024	/* arguments read from a failed exec's caller */

struct exec_args {
	u64 filename;	/* user pointers */
	u64 argv;
};

/* LRU: an exec whose caller dies inside it leaves its entry behind. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);
	__type(value, struct exec_args);
} inflight SEC(".maps");

/* The record is built here: header, filename, cwd, args. Too big for a
 * per-CPU array (32 KiB at most), so this is an array with one slot per
 * possible CPU (the loader sizes it), indexed by the current CPU: tracepoint
 * programs do not migrate and do not nest on a CPU. The args region is twice
 * the largest limit so that a variable offset below the limit plus a read of
 * up to the limit stays inside it. */
struct exec_record {
	struct exec_event e;
	char data[2 * PATH_MAX + 2 * ARGS_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);	/* set to the number of possible CPUs */
	__type(key, u32);
	__type(value, struct exec_record);
} exec_scratch SEC(".maps");

static __always_inline bool wanted(u64 id, struct task_struct *task)
{
	if (!task_wanted(id))
		return false;
	return !filter_ppid || parent_tgid(task) == filter_ppid;
}

static __always_inline struct exec_record *exec_record(u64 id, struct task_struct *task, long ret)
{
	u32 cpu = bpf_get_smp_processor_id();
	struct exec_record *r = bpf_map_lookup_elem(&exec_scratch, &cpu);

	if (!r)
		return NULL;
	r->e.kind = RECORD_EXEC;
	r->e.flags = 0;
	r->e.filename_len = 0;
	r->e.cwd_len = 0;
	r->e.args_len = 0;
	r->e.pid = id >> 32;
	r->e.ppid = parent_tgid(task);
	r->e.uid = (u32)bpf_get_current_uid_gid();
	r->e.ret = ret;
	r->e.boot_ns = bpf_ktime_get_boot_ns();
	bpf_get_current_comm(r->e.comm, sizeof(r->e.comm));
	return r;
}

/* write_cwd appends the working directory after the filename. */
static __always_inline void write_cwd(struct exec_record *r)
{
	bool truncated = false;
	u32 off = r->e.filename_len & PATH_MASK;
	u32 n;

	if (!want_cwd)
		return;
	n = path_write(dir_path(AT_FDCWD), r->data + off, &truncated);
	r->e.cwd_len = n & PATH_MASK;
	if (truncated)
		r->e.flags |= CWD_TRUNCATED;
}

static __always_inline u32 args_off(struct exec_record *r)
{
	return (r->e.filename_len & PATH_MASK) + (r->e.cwd_len & PATH_MASK);
}

static __always_inline void send(struct exec_record *r)
{
	u64 size = args_off(r) + (r->e.args_len & ARGS_MASK);

	submit(r, sizeof(r->e) + size);
}

SEC("tracepoint/sched/sched_process_exec")
int exec_done(struct sched_process_exec_ctx *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u32 old = ctx->old_pid;
	struct exec_record *r;
	u64 start, end, len;
	u32 loc;
	long n;

	/* An exec by a thread other than the leader takes the leader's id:
	 * forget the entry under the old one. */
	bpf_map_delete_elem(&inflight, &old);
	if (only_failed_execs || !wanted(id, task))
		return 0;
	r = exec_record(id, task, 0);
	if (!r)
		return 0;

	loc = ctx->filename_loc;
	n = bpf_probe_read_kernel_str(r->data, PATH_MAX, (void *)ctx + (loc & 0xffff));
	if (n > 0) {
		r->e.filename_len = (n - 1) & PATH_MASK;
		if (n == PATH_MAX)
			r->e.flags |= FILENAME_TRUNCATED;
	}
	write_cwd(r);

	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	len = end > start ? end - start : 0;
	if (len > args_limit) {
		len = args_limit;
		r->e.flags |= ARGS_TRUNCATED;
	}
	len &= ARGS_MASK;
	if (bpf_probe_read_user(r->data + args_off(r), len, (void *)start) == 0)
		r->e.args_len = len;
	send(r);
	return 0;
}

static __always_inline int enter(const char *filename, const char *const *argv)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	struct exec_args a = {
		.filename = (u64)filename,
		.argv = (u64)argv,
	};

	if (!wanted(id, (struct task_struct *)bpf_get_current_task()))
		return 0;
	bpf_map_update_elem(&inflight, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(struct syscall_enter_ctx *ctx)
{
	return enter((const char *)ctx->args[0], (const char *const *)ctx->args[1]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(struct syscall_enter_ctx *ctx)
{
	return enter((const char *)ctx->args[1], (const char *const *)ctx->args[2]);
}

/* caller_args copies the caller's argv, each argument with its NUL, up to
 * args_limit bytes. The offset goes through memory (r->e.args_len) so that
 * the verifier checks one state per iteration. */
static __always_inline void caller_args(struct exec_record *r, const char *const *argv)
{
	char *base = r->data + args_off(r);

	for (int i = 0; i < MAX_ARGC; i++) {
		const char *arg = NULL;
		u32 off = *(volatile u32 *)&r->e.args_len;
		u32 room;
		long n;

		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			return;
		if (off >= args_limit) {
			r->e.flags |= ARGS_TRUNCATED;
			return;
		}
		room = (args_limit - off) & ARGS_MASK;
		n = bpf_probe_read_user_str(base + (off & (ARGS_MAX - 1)), room, arg);
		if (n <= 0)
			return;
		r->e.args_len = off + (n & ARGS_MASK);
		if (n == room) {
			r->e.flags |= ARGS_TRUNCATED;
			return;
		}
	}
	r->e.flags |= ARGS_TRUNCATED;
}

static __always_inline int leave(long ret)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	struct exec_args *a = bpf_map_lookup_elem(&inflight, &tid);
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct exec_record *r;
	long n;

	if (!a)
		return 0;
	if (ret >= 0)
		goto out;
	r = exec_record(id, task, ret);
	if (!r)
		goto out;
	r->e.flags |= ARGS_FROM_CALLER;
	n = bpf_probe_read_user_str(r->data, PATH_MAX, (const char *)a->filename);
	if (n > 0) {
		r->e.filename_len = (n - 1) & PATH_MASK;
		if (n == PATH_MAX)
			r->e.flags |= FILENAME_TRUNCATED;
	}
	write_cwd(r);
	caller_args(r, (const char *const *)a->argv);
	send(r);
out:
	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_execve")
int exit_execve(struct syscall_exit_ctx *ctx)
{
	return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_execveat")
int exit_execveat(struct syscall_exit_ctx *ctx)
{
	return leave(ctx->ret);
}

/* Puts struct exit_event into BTF, for bpf2go's -type. */
const struct exit_event *unused_exit_event __attribute__((unused));

/* age returns how long before boot_now (CLOCK_BOOTTIME) task started. The
 * event's time is the same reading: a clock read again here could come
 * much later (a vCPU stalled in between, seen under TCG: 2.8 ms), and the
 * start that time minus age implies would come that much too early. */
static __always_inline u64 age(struct task_struct *task, u64 boot_now)
{
	if (bpf_core_field_exists(task->start_boottime))
		return boot_now - BPF_CORE_READ(task, start_boottime);
	/* Before 5.5 start_time was monotonic, too. */
	return bpf_ktime_get_ns() - BPF_CORE_READ(task, start_time);
}

SEC("tracepoint/sched/sched_process_exit")
int task_exit(void *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct exit_event e = {};

	e.group_dead = group_dead(ctx, task);
	if (!all_threads && !e.group_dead)
		return 0;
	if (!wanted(id, task))
		return 0;
	e.code = exit_code(task, e.group_dead);	/* what wait(2) reports */
	if (only_failed_exits && e.code == 0)
		return 0;
	e.kind = RECORD_EXIT;
	e.pid = id >> 32;
	e.tid = (u32)id;
	e.ppid = parent_tgid(task);
	e.boot_ns = bpf_ktime_get_boot_ns();
	e.age_ns = age(all_threads ? task : BPF_CORE_READ(task, group_leader), e.boot_ns);
	bpf_get_current_comm(e.comm, sizeof(e.comm));
	submit(&e, sizeof(e));
	return 0;
}
