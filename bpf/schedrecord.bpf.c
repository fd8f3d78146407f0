// SPDX-License-Identifier: GPL-2.0
/*
 * sched record: every context switch and wakeup of every CPU, into the
 * ring buffer, for a timeline (user space turns them into trace-event
 * JSON). Nothing is filtered: the picture is of the whole machine.
 */
#include "kernel.h"
#include "sched.h"
#include "schedrecord.h"

const volatile bool want_wakeups = true;
BTF_ENUM(sched_event_kind);

/* Keeps struct sched_event in BTF for bpf2go (it only lives on the stack). */
const struct sched_event *unused_sched_event __attribute__((unused));

static __always_inline int on_switch(u64 *ctx, bool btf)
{
	bool preempt = (u8)ctx[0];
	struct task_struct *prev = (void *)ctx[1];
	struct task_struct *next = (void *)ctx[2];
	u64 id = bpf_get_current_pid_tgid();	/* current is prev */
	struct sched_event e = {
		.ts = bpf_ktime_get_ns(),
		.cpu = bpf_get_smp_processor_id(),
		.kind = SCHED_SWITCH,
		.prev_tid = (u32)id,
		.prev_pid = id >> 32,
		.next_tid = TASK_READ(btf, next, pid),
		.next_pid = TASK_READ(btf, next, tgid),
		.prev_state = preempt ? -1 : task_state(prev, btf),
	};

	bpf_get_current_comm(e.prev_comm, sizeof(e.prev_comm));
	bpf_probe_read_kernel_str(e.next_comm, sizeof(e.next_comm), next->comm);
	submit(&e, sizeof(e));
	return 0;
}

static __always_inline int wakeup(u64 *ctx, bool btf, u32 kind)
{
	struct task_struct *p = (void *)ctx[0];
	struct sched_event e = {
		.ts = bpf_ktime_get_ns(),
		.cpu = bpf_get_smp_processor_id(),
		.kind = kind,
		.next_tid = TASK_READ(btf, p, pid),
		.next_pid = TASK_READ(btf, p, tgid),
	};

	if (!want_wakeups)
		return 0;
	bpf_probe_read_kernel_str(e.next_comm, sizeof(e.next_comm), p->comm);
	submit(&e, sizeof(e));
	return 0;
}

static __always_inline int on_wakeup(u64 *ctx, bool btf) { return wakeup(ctx, btf, SCHED_WAKEUP); }
static __always_inline int on_wakeup_new(u64 *ctx, bool btf) { return wakeup(ctx, btf, SCHED_WAKEUP_NEW); }

SCHED_TP(sched_switch, on_switch)
SCHED_TP(sched_wakeup, on_wakeup)
SCHED_TP(sched_wakeup_new, on_wakeup_new)
