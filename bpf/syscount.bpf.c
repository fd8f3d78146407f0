// SPDX-License-Identifier: GPL-2.0
/*
 * syscount: calls, errors and time per syscall (and per process), counted in
 * the kernel at raw_syscalls:sys_exit, so a call is counted once it returns
 * (exit and exit_group never return and are not counted, as in bcc). With
 * latency on, sys_enter stamps the thread and only calls whose entry was
 * seen are counted, so every counted call has its time.
 *
 * Names come from the running kernel (syscall_names.h).
 */
#include "kernel.h"
#include "common.h"
#include "syscount.h"
#include "syscall_names.h"

const volatile bool per_process = false;
const volatile bool latency = false;
const volatile bool failed_only = false;
const volatile s32 filter_errno = 0;	/* positive errno; 0: any */

/* Per syscall and CPU, when not per process: an index and plain adds (a
 * program is not preempted on its CPU, nor run again there until it
 * returns) instead of a hash lookup and atomic adds on a shared line. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SYSCOUNT_MAX_NR);
	__type(key, u32);
	__type(value, struct syscount_total);
} totals SEC(".maps");

/* Per process and syscall (per_process). Sized by user space (--map-size)
 * before load. */
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

SEC("tracepoint/raw_syscalls/sys_enter")
int sys_enter(struct syscall_enter_ctx *ctx)
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
int sys_exit(struct syscall_exit_ctx *ctx)
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
	if (!per_process) {
		u32 nr = ctx->id;
		struct syscount_total *t = bpf_map_lookup_elem(&totals, &nr);

		if (!t)
			return 0;
		t->count++;
		if (failed)
			t->errors++;
		t->total_ns += ns;
		return 0;
	}
	key.pid = id >> 32;
	key.nr = ctx->id;
	v = bpf_map_lookup_elem(&counts, &key);
	if (!v) {
		struct syscount_val zero = {};

		if (per_process)
			bpf_get_current_comm(zero.comm, sizeof(zero.comm));
		v = lookup_or_insert(&counts, &key, &zero);
		if (!v)
			return 0;	/* map full: counted lost */
	}
	__sync_fetch_and_add(&v->count, 1);
	if (failed)
		__sync_fetch_and_add(&v->errors, 1);
	if (ns)
		__sync_fetch_and_add(&v->total_ns, ns);
	return 0;
}
