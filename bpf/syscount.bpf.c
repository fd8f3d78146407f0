// SPDX-License-Identifier: GPL-2.0
/*
 * syscount: calls, errors and time per syscall (and per process), counted in
 * the kernel at raw_syscalls:sys_exit, so a call is counted once it returns
 * (exit and exit_group never return and are not counted, as in bcc). With
 * latency on, sys_enter stamps the thread and only calls whose entry was
 * seen are counted, so every counted call has its time.
 *
 * Names come from the running kernel, not a copied table: user space puts a
 * copy of syscall_name on every syscalls:sys_enter_<name> tracepoint this
 * kernel has, each with its own event number patched into the placeholder
 * (a tracepoint program may not read its record's common_type), and each
 * files that number under the syscall number its record carries. Each number
 * is learnt at its first call, so every syscall counted has its name; after
 * that the copy costs one lookup per call.
 */
#include "kernel.h"
#include "common.h"
#include "syscount.h"

const volatile bool per_process = false;
const volatile bool latency = false;
const volatile bool failed_only = false;
const volatile s32 filter_errno = 0;	/* positive errno; 0: any */
/* The placeholder's value, for user space to find (never read here). */
const volatile u32 event_placeholder = SYSCOUNT_EVENT_PLACEHOLDER;

/* Sized by user space (--map-size) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct syscount_key);
	__type(value, struct syscount_val);
} counts SEC(".maps");

/* Entry time per thread, with latency only. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, u64);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYSCOUNT_MAX_NR);
	__type(key, u32);
	__type(value, u32);	/* trace event id of sys_enter_<name>; 0: not seen */
} names SEC(".maps");

/* The tracepoints' records (format files of raw_syscalls). */
struct sys_enter_args {
	u64 common;
	long id;
	unsigned long args[6];
};
struct sys_exit_args {
	u64 common;
	long id;
	long ret;
};

SEC("tracepoint/raw_syscalls/sys_enter")
int sys_enter(struct sys_enter_args *ctx)
{
	u64 id = bpf_get_current_pid_tgid(), now;
	u32 tid = (u32)id;

	if (!latency || !task_wanted(id))
		return 0;
	now = bpf_ktime_get_ns();
	if (bpf_map_update_elem(&start, &tid, &now, BPF_ANY))
		count_lost();
	return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int sys_exit(struct sys_exit_args *ctx)
{
	u64 id = bpf_get_current_pid_tgid(), ns = 0;
	u32 tid = (u32)id;
	long ret = ctx->ret;
	bool failed = ret < 0 && ret >= -4095;
	struct syscount_key key = {};
	struct syscount_val *v;

	if (ctx->id < 0 || ctx->id >= SYSCOUNT_MAX_NR)
		return 0;
	if (latency) {
		u64 *t = bpf_map_lookup_elem(&start, &tid);

		if (!t)
			return 0;	/* entry not seen, or not wanted */
		ns = bpf_ktime_get_ns() - *t;
		bpf_map_delete_elem(&start, &tid);
	} else if (!task_wanted(id)) {
		return 0;
	}
	if ((failed_only || filter_errno) && !failed)
		return 0;
	if (filter_errno && ret != -filter_errno)
		return 0;
	key.pid = per_process ? id >> 32 : 0;
	key.nr = ctx->id;
	v = bpf_map_lookup_elem(&counts, &key);
	if (!v) {
		struct syscount_val zero = {};

		if (per_process)
			bpf_get_current_comm(zero.comm, sizeof(zero.comm));
		/* NOEXIST: another CPU may have added it meanwhile. */
		if (bpf_map_update_elem(&counts, &key, &zero, BPF_NOEXIST) && !bpf_map_lookup_elem(&counts, &key)) {
			count_lost();	/* map full */
			return 0;
		}
		v = bpf_map_lookup_elem(&counts, &key);
		if (!v)
			return 0;
	}
	__sync_fetch_and_add(&v->count, 1);
	if (failed)
		__sync_fetch_and_add(&v->errors, 1);
	if (ns)
		__sync_fetch_and_add(&v->total_ns, ns);
	return 0;
}

/* The record of a syscalls:sys_enter_<name> tracepoint, up to the number. */
struct sys_enter_named_args {
	u64 common;
	s32 syscall_nr;
};

/* Copied by user space onto every syscalls:sys_enter_* tracepoint, with
 * SYSCOUNT_EVENT_PLACEHOLDER replaced by that tracepoint's event id. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int syscall_name(struct sys_enter_named_args *ctx)
{
	u32 nr = ctx->syscall_nr, *event, id;

	asm volatile("%0 = %1" : "=r"(id) : "i"(SYSCOUNT_EVENT_PLACEHOLDER));
	event = bpf_map_lookup_elem(&names, &nr);	/* NULL past SYSCOUNT_MAX_NR */
	if (event && !*event)
		*event = id;
	return 0;
}
