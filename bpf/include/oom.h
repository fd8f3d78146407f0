/* SPDX-License-Identifier: GPL-2.0 */
/*
 * oom.h: finding an OOM kill's victim with tracepoints only (oomkill, serve's
 * oom counts). Include after common.h.
 *
 * oom:mark_victim carries only the victim's pid on older kernels (5.10);
 * where its record grew, its comm and figures, but neither its process
 * (tgid) nor its cgroups. But the kernel sends the victim SIGKILL
 * (do_send_sig_info with SEND_SIG_PRIV) just before it marks it, from the
 * same thread, and signal:signal_generate hands over the task: the
 * signalling thread remembers it in `killing` and mark_victim, from that
 * thread, takes it back if the pid matches. Both run in the context of the
 * task that called the OOM killer (__oom_kill_process): the allocating task
 * for a global or memcg OOM (also when a memcg OOM is finished at the end of
 * a page fault, mem_cgroup_oom_synchronize), the writer of memory.max when
 * shrinking a v2 limit kills, a kworker for sysrq-f.
 */
#ifndef BPFKIT_OOM_H
#define BPFKIT_OOM_H

#define SIGKILL 9
#define SEND_SIG_PRIV 1	/* (struct kernel_siginfo *)1: sent by the kernel */

/* oom:mark_victim's record: pid only on 5.10; on later kernels also the
 * victim's figures (kB, as in the kernel's "Killed process" line), whose
 * offsets CO-RE relocates. */
struct trace_event_raw_mark_victim {
	int pid;
	unsigned long total_vm;
	unsigned long anon_rss;
	unsigned long file_rss;
	unsigned long shmem_rss;
	u32 uid;
	unsigned long pgtables;
	short oom_score_adj;
} __attribute__((preserve_access_index));

/* The task each thread last sent a kernel SIGKILL, by the sender's tid. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} killing SEC(".maps");

/* signal_generate(sig, info, task, group, result), on every kernel bpfkit
 * supports (raw tracepoint: the task is an argument, not a record field). */
SEC("raw_tracepoint/signal_generate")
int signal_generate(u64 *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	u64 task = ctx[2];

	if ((int)ctx[0] != SIGKILL || ctx[1] != SEND_SIG_PRIV)
		return 0;
	bpf_map_update_elem(&killing, &tid, &task, BPF_ANY);
	return 0;
}

/* oom_victim returns the task marked as the victim of pid (NULL if the
 * signal was not seen), forgetting it. */
static __always_inline struct task_struct *oom_victim(u32 pid)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	u64 *p = bpf_map_lookup_elem(&killing, &tid);
	struct task_struct *t;

	if (!p)
		return NULL;
	t = (struct task_struct *)*p;
	bpf_map_delete_elem(&killing, &tid);
	if ((u32)BPF_CORE_READ(t, pid) != pid)
		return NULL;
	return t;
}

/* task_memcg_id is the id of the task's memory cgroup, in the hierarchy the
 * memory controller is mounted in (cgroup v1 or v2); 0 without memcg. */
static __always_inline u64 task_memcg_id(struct task_struct *t)
{
	struct cgroup_subsys_state *css = NULL;
	struct css_set *cset = BPF_CORE_READ(t, cgroups);
	u32 idx;

	if (!bpf_core_enum_value_exists(enum cgroup_subsys_id, memory_cgrp_id))
		return 0;
	idx = bpf_core_enum_value(enum cgroup_subsys_id, memory_cgrp_id);
	if (!cset || idx >= 64)
		return 0;
	bpf_probe_read_kernel(&css, sizeof(css), (void *)cset + bpf_core_field_offset(struct css_set, subsys) + idx * sizeof(css));
	if (!css)
		return 0;
	return BPF_CORE_READ(css, cgroup, kn, id);
}

#endif
