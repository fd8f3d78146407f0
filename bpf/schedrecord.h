/* SPDX-License-Identifier: GPL-2.0 */
/* schedrecord.h: the scheduler events `sched record` streams. */
#ifndef BPFKIT_SCHEDRECORD_H
#define BPFKIT_SCHEDRECORD_H

enum sched_event_kind {
	SCHED_SWITCH = 1,
	SCHED_WAKEUP = 2,
	SCHED_WAKEUP_NEW = 3,
};

/* One event. For a switch, prev is the task switched out and next the one
 * switched in; for a wakeup, next is the task woken (on the waker's CPU). */
struct sched_event {
	__u64 ts;		/* CLOCK_MONOTONIC ns (bpf_ktime_get_ns) */
	__u32 cpu;
	__u32 kind;		/* enum sched_event_kind */
	__u32 prev_tid, prev_pid;
	__u32 next_tid, next_pid;
	__s64 prev_state;	/* task state; -1 when preempted */
	char prev_comm[16];
	char next_comm[16];
};

#endif
