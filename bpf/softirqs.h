/* SPDX-License-Identifier: GPL-2.0 */
/* softirqs.h: softirq time per vector, kept per CPU. */
#ifndef BPFKIT_SOFTIRQS_H
#define BPFKIT_SOFTIRQS_H

#define SOFTIRQ_VECTORS 16	/* NR_SOFTIRQS is 10 on every kernel bpfkit runs on */
#define SOFTIRQ_SLOTS 32

struct softirq_stat {
	__u64 count;			/* entries, as /proc/softirqs counts them */
	__u64 ns;			/* time from entry to exit, summed */
	__u64 hist[SOFTIRQ_SLOTS];	/* log2 of each run, in µs or ns */
};

#endif
