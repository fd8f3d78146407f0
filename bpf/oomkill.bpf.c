// SPDX-License-Identifier: GPL-2.0
/*
 * oomkill: every OOM kill, at oom:mark_victim: the victim (its task from
 * signal:signal_generate, oom.h), the task that called the OOM killer (the
 * current one), both memory cgroups, and the victim's figures where the
 * tracepoint has them (its record grew after 5.10: CO-RE tells).
 */
#include "kernel.h"
#include "common.h"
#include "oom.h"
#include "oomkill.h"

/* Puts struct oom_event into BTF, for bpf2go's -type. */
const struct oom_event *unused_oom_event __attribute__((unused));

SEC("tracepoint/oom/mark_victim")
int mark_victim(struct trace_event_raw_mark_victim *ctx)
{
	struct task_struct *cur = (struct task_struct *)bpf_get_current_task();
	u64 id = bpf_get_current_pid_tgid();
	struct oom_event e = {};
	struct task_struct *v;

	e.boot_ns = bpf_ktime_get_boot_ns();
	e.pid = ctx->pid;
	e.trigger_pid = id >> 32;
	e.trigger_tid = (u32)id;
	bpf_get_current_comm(e.trigger_comm, sizeof(e.trigger_comm));
	e.trigger_memcg = task_memcg_id(cur);
	v = oom_victim(e.pid);
	if (v) {
		e.tgid = BPF_CORE_READ(v, tgid);
		BPF_CORE_READ_STR_INTO(&e.comm, v, comm);
		e.victim_memcg = task_memcg_id(v);
	}
	if (bpf_core_field_exists(ctx->total_vm)) {
		e.figures = 1;
		e.total_vm = ctx->total_vm;
		e.anon_rss = ctx->anon_rss;
		e.file_rss = ctx->file_rss;
		e.shmem_rss = ctx->shmem_rss;
		e.pgtables = ctx->pgtables;
		e.uid = ctx->uid;
		e.oom_score_adj = ctx->oom_score_adj;
	}
	submit(&e, sizeof(e));
	return 0;
}
