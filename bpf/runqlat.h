/* SPDX-License-Identifier: GPL-2.0 */
/* runqlat.h: the run-queue latency histograms runqlat keeps. */
#ifndef BPFKIT_RUNQLAT_H
#define BPFKIT_RUNQLAT_H

#define RUNQLAT_SLOTS 32

/* What a histogram is kept for (const volatile key_by). */
enum runqlat_key {
	KEY_ALL = 0,		/* one histogram, key 0 */
	KEY_PROCESS = 1,	/* per thread group id */
	KEY_THREAD = 2,		/* per thread id */
	KEY_PIDNS = 3,		/* per pid namespace inode number */
};

/* Value of the hists map. slots[i] counts latencies whose floor(log2) is
 * i (slot 0 also holds 0), in µs or ms; counters only grow. */
struct runqlat_hist {
	__u64 slots[RUNQLAT_SLOTS];
	char comm[16];		/* per process or thread: at the first sample */
};

/* Indexes of the stats array. */
enum runqlat_stat {
	STAT_SWITCH_IN = 0,	/* selected tasks switched in */
	STAT_NO_START = 1,	/* ... of which no enqueue time was known */
	STAT_MAX = 2,
};

#endif
