// SPDX-License-Identifier: GPL-2.0
/*
 * offcputime: where tasks spend time off CPU. At sched_switch the task
 * switched out is stamped with the time and its kernel and user stacks;
 * when it is switched back in, the time it was away is added to a total
 * keyed by thread and stacks. Only the totals and the stacks they name
 * cross to user space.
 */
#include "kernel.h"
#include "sched.h"
#include "offcputime.h"

#define BPF_F_USER_STACK (1ULL << 8)

const volatile u32 state_mask = 0;	/* enum offcpu_state bits; 0: any */
const volatile u64 min_ns = 1;
const volatile u64 max_ns = 0;		/* 0: no maximum */
const volatile bool kernel_stacks = true;
const volatile bool user_stacks = true;
/* sched_switch passes prev_state (5.18+): loader.SchedSwitchHasPrevState. */
const volatile bool switch_prev_state = false;

#define TASK_WAKING 0x0200
BTF_ENUM(offcpu_state);

struct offcpu_start {
	u64 ts;
	u64 kstack;
	u64 ustack;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 32768);
	__type(key, u32);	/* tid */
	__type(value, struct offcpu_start);
} start SEC(".maps");

/* Preallocated: the program runs under the run-queue lock, where
 * allocating could wake kswapd and deadlock on that lock. */
#define STACK_DEPTH OFFCPU_STACK_DEPTH
#define STACK_ENTRIES 16384
#define STACK_MAP_FLAGS 0
#include "stack.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct offcpu_key);
	__type(value, struct offcpu_val);
} totals SEC(".maps");

/*
 * state_wanted: is the switch-out of prev in a state the user asked for?
 * The state is the one __schedule read when it counted the switch as
 * voluntary or not: the tracepoint's prev_state argument (5.18+). Before
 * that only the task's state can be read here, and a wakeup from another
 * CPU may already have set it to TASK_WAKING (the task blocked: its S or D
 * is gone); such a switch-out is counted as S.
 */
static __always_inline bool state_wanted(u64 *ctx, bool preempt, struct task_struct *prev, bool btf)
{
	long state;

	if (!state_mask)
		return true;
	state = switch_prev_state ? (long)(u32)ctx[3] : task_state(prev, btf);
	if (preempt || state == TASK_RUNNING)
		return state_mask & OFFCPU_PREEMPTED;
	if (state & TASK_WAKING)
		return state_mask & OFFCPU_INTERRUPTIBLE;
	return state & state_mask;
}

static __always_inline int on_switch(u64 *ctx, bool btf)
{
	bool preempt = (u8)ctx[0];
	struct task_struct *prev = (void *)ctx[1];
	struct task_struct *next = (void *)ctx[2];
	u64 id = bpf_get_current_pid_tgid();	/* current is prev */
	u32 tid = (u32)id;
	struct offcpu_start *s;
	u64 now = bpf_ktime_get_ns(), delta;

	if (tid && task_wanted(id) && state_wanted(ctx, preempt, prev, btf)) {
		struct offcpu_start n = {
			.ts = now,
			.kstack = kernel_stacks ? stack_key(ctx, 0) : STACK_NONE,
			.ustack = user_stacks ? stack_key(ctx, BPF_F_USER_STACK) : STACK_NONE,
		};
		bpf_map_update_elem(&start, &tid, &n, BPF_ANY);
	}

	tid = TASK_READ(btf, next, pid);
	s = bpf_map_lookup_elem(&start, &tid);
	if (!s)
		return 0;
	delta = now - s->ts;
	struct offcpu_key key = {
		.pid = TASK_READ(btf, next, tgid),
		.tid = tid,
		.kstack = s->kstack,
		.ustack = s->ustack,
	};
	bpf_map_delete_elem(&start, &tid);
	if ((s64)delta < 0 || delta < min_ns || (max_ns && delta > max_ns))
		return 0;
	bpf_probe_read_kernel_str(key.comm, sizeof(key.comm), next->comm);

	struct offcpu_val *v = bpf_map_lookup_elem(&totals, &key);
	if (!v) {
		struct offcpu_val zero = {};

		bpf_map_update_elem(&totals, &key, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&totals, &key);
		if (!v) {
			count_lost();	/* totals map full */
			return 0;
		}
	}
	__sync_fetch_and_add(&v->ns, delta);
	__sync_fetch_and_add(&v->count, 1);
	return 0;
}

SCHED_TP(sched_switch, on_switch)
