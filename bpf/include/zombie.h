/* SPDX-License-Identifier: GPL-2.0 */
/*
 * zombie.h: following every process from the exit of its last thread (when
 * it becomes a zombie) to its reaping by a wait4(2) or waitid(2) that
 * returns it (zombies, serve's zombie histogram). Include after common.h,
 * sched.h and exit.h, with zombie_reaped declared.
 *
 * A process is remembered at sched:sched_process_exit of its last thread
 * (exit.h) and handed to zombie_reaped at the syscall exit of the wait that
 * returned its pid: wait4's return value, waitid's siginfo (si_pid), unless
 * WNOWAIT left it a zombie. A process reaped without a wait — its parent
 * ignores SIGCHLD or set SA_NOCLDWAIT, so it was never a zombie — is freed
 * (sched:sched_process_free) with no wait: it moves to a small LRU table,
 * where a wait that returns after the free (its caller preempted for longer
 * than an RCU grace period) still finds it; the rest age out unreported.
 */
#ifndef BPFKIT_ZOMBIE_H
#define BPFKIT_ZOMBIE_H

struct zombie;
/* zombie_reaped: zombie pid z was reaped now (boot-time ns). */
static __always_inline void zombie_reaped(u32 pid, const struct zombie *z, u64 now);

#define WNOWAIT 0x01000000

struct zombie {
	u64 exit_ns;
	u64 cgroup;	/* cgroup v2 id */
	u32 status;
	u32 pad;
	char comm[16];
};

/* Zombies now, by pid: bounded; a full table is counted as lost. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);
	__type(value, struct zombie);
} zombies SEC(".maps");

/* Freed with no wait seen yet. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, struct zombie);
} freed SEC(".maps");

/* waitid's siginfo pointer and options, from entry to exit, by thread. */
struct waitid_args {
	u64 infop;
	u32 options;
	u32 pad;
};
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, u32);
	__type(value, struct waitid_args);
} waiting SEC(".maps");

SEC("tracepoint/sched/sched_process_exit")
int task_exit(void *ctx)
{
	u64 id = bpf_get_current_pid_tgid();
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct zombie z = {};
	u32 pid = id >> 32;

	if (!group_dead(ctx, task) || !task_wanted(id))
		return 0;
	z.exit_ns = bpf_ktime_get_boot_ns();
	z.cgroup = bpf_get_current_cgroup_id();
	z.status = exit_code(task, true);
	bpf_get_current_comm(z.comm, sizeof(z.comm));
	if (bpf_map_update_elem(&zombies, &pid, &z, BPF_ANY))
		count_lost();
	return 0;
}

/* sched_process_free(p), on its BTF or raw tracepoint (its record's layout
 * changed over the kernels: comm became __data_loc). */
static __always_inline int on_free(u64 *ctx, bool btf)
{
	struct task_struct *p = (void *)ctx[0];
	u32 pid = TASK_READ(btf, p, pid);
	struct zombie *z = bpf_map_lookup_elem(&zombies, &pid);

	if (!z)
		return 0;
	bpf_map_update_elem(&freed, &pid, z, BPF_ANY);
	bpf_map_delete_elem(&zombies, &pid);
	return 0;
}

SCHED_TP(sched_process_free, on_free)

/* reaped finds the zombie pid (not seen exiting, or a stopped or continued
 * child: nothing), forgets it and hands it to zombie_reaped. */
static __always_inline void reaped(u32 pid)
{
	struct zombie *z, copy;
	void *table = &zombies;

	z = bpf_map_lookup_elem(&zombies, &pid);
	if (!z) {
		table = &freed;
		z = bpf_map_lookup_elem(&freed, &pid);
		if (!z)
			return;
	}
	copy = *z;
	bpf_map_delete_elem(table, &pid);
	zombie_reaped(pid, &copy, bpf_ktime_get_boot_ns());
}

SEC("tracepoint/syscalls/sys_exit_wait4")
int exit_wait4(struct syscall_exit_ctx *ctx)
{
	if (ctx->ret > 0)
		reaped(ctx->ret);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_waitid")
int enter_waitid(struct syscall_enter_ctx *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct waitid_args a = { .infop = ctx->args[2], .options = ctx->args[3] };

	if (a.infop && !(a.options & WNOWAIT))
		bpf_map_update_elem(&waiting, &tid, &a, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_waitid")
int exit_waitid(struct syscall_exit_ctx *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct waitid_args *a = bpf_map_lookup_elem(&waiting, &tid);
	s32 pid = 0;

	if (!a)
		return 0;
	/* siginfo_t: si_signo, si_errno, si_code, a pad, then si_pid. */
	if (ctx->ret == 0 && !bpf_probe_read_user(&pid, sizeof(pid), (void *)(a->infop + 16)) && pid > 0)
		reaped(pid);
	bpf_map_delete_elem(&waiting, &tid);
	return 0;
}

#endif
