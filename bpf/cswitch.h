/* SPDX-License-Identifier: GPL-2.0 */
/* cswitch.h: the per-thread context-switch counters cswitch keeps. */
#ifndef BPFKIT_CSWITCH_H
#define BPFKIT_CSWITCH_H

/* Value of the counts map, keyed by thread id; counters only grow. */
struct cswitch_count {
	__u64 voluntary;	/* switched out no longer runnable (blocked) */
	__u64 involuntary;	/* switched out still runnable (preempted, yielded) */
	__u32 pid;		/* thread group id */
	__u32 tid;
	char comm[16];		/* at the first switch seen */
	__u64 nvcsw;		/* the kernel's voluntary count at the last switch */
};

#endif
