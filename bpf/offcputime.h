/* SPDX-License-Identifier: GPL-2.0 */
/* offcputime.h: the off-CPU time offcputime adds up per task and stacks. */
#ifndef BPFKIT_OFFCPUTIME_H
#define BPFKIT_OFFCPUTIME_H

/* Key of the totals map: a thread and where it blocked. The stacks are
 * keys of the stacks map (stack.h): 0 for a stack not taken (-k/-u), an
 * error for one lost (-EFAULT: a kernel thread's user stack; the map full). */
struct offcpu_key {
	__u32 pid;		/* thread group id */
	__u32 tid;
	__u64 kstack;
	__u64 ustack;
	char comm[16];
};

/* Value of the totals map. */
struct offcpu_val {
	__u64 ns;		/* total time off CPU */
	__u64 count;		/* number of times */
};

/* Bits of the state filter (const volatile state_mask); 0: any state. */
enum offcpu_state {
	OFFCPU_INTERRUPTIBLE = 1,	/* S: TASK_INTERRUPTIBLE */
	OFFCPU_UNINTERRUPTIBLE = 2,	/* D: TASK_UNINTERRUPTIBLE */
	OFFCPU_PREEMPTED = 1 << 30,	/* R: switched out while runnable */
};

#define OFFCPU_STACK_DEPTH 127

#endif
