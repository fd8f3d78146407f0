/* SPDX-License-Identifier: GPL-2.0 */
/*
 * exit.h: telling, at sched:sched_process_exit, whether the exiting thread
 * is the last of its process (execsnoop's exitsnoop, zombies, serve's exit
 * counts), what wait(2) will report, and the parent. Include after common.h.
 */
#ifndef BPFKIT_EXIT_H
#define BPFKIT_EXIT_H

static __always_inline u32 parent_tgid(struct task_struct *task)
{
	return BPF_CORE_READ(task, real_parent, tgid);
}

/* Processes already reported, for kernels whose exit tracepoint does not
 * say which thread is the last: two threads exiting together can both see no
 * live thread left, and only the first may report. Keyed by the leader's
 * tgid and start time, which no later process shares. */
struct process_key {
	u64 start;
	u32 tgid;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct process_key);
	__type(value, u8);
} exited SEC(".maps");

/* last_thread reports whether task is the last thread of its process to
 * exit, where the exit tracepoint does not say (before 6.16): signal->live
 * was decremented before the tracepoint, so at zero no thread is left, and
 * the map picks one reporter. */
static __always_inline bool last_thread(struct task_struct *task)
{
	struct process_key key = {};
	u8 one = 1;

	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return false;
	key.tgid = BPF_CORE_READ(task, tgid);
	key.start = BPF_CORE_READ(task, group_leader, start_time);
	return bpf_map_update_elem(&exited, &key, &one, BPF_NOEXIST) == 0;
}

/* group_dead reports, at sched:sched_process_exit (its record ctx),
 * whether task is the last thread of its process to exit, and so reports
 * the process's exit. */
static __always_inline bool group_dead(void *ctx, struct task_struct *task)
{
	struct trace_event_raw_sched_process_exit *tp = ctx;

	if (bpf_core_field_exists(tp->group_dead))
		return tp->group_dead;
	return last_thread(task);
}

/* group_dead_arg is group_dead at the BTF or raw tracepoint, whose
 * arguments (ctx) are (p[, group_dead]): the argument came with the
 * record's field (6.16). */
static __always_inline bool group_dead_arg(u64 *ctx, struct task_struct *task)
{
	struct trace_event_raw_sched_process_exit *tp = NULL;

	if (bpf_core_field_exists(tp->group_dead))
		return (u8)ctx[1];
	return last_thread(task);
}

/* exit_code is what wait(2) reports for task's exit: the group's code once
 * the group exits (only it has the core-dumped bit when another thread
 * dumped the core), else this thread's. */
static __always_inline int exit_code(struct task_struct *task, bool group_dead)
{
	if (group_dead && (BPF_CORE_READ(task, signal, flags) & SIGNAL_GROUP_EXIT))
		return BPF_CORE_READ(task, signal, group_exit_code);
	return BPF_CORE_READ(task, exit_code);
}

#endif
