/* SPDX-License-Identifier: GPL-2.0 */
/* bio.h: what bio.bpf.c shares with pkg/trace/bio (biolatency, biosnoop,
 * biotop). */
#ifndef BPFKIT_BIO_H
#define BPFKIT_BIO_H

#define BIO_SLOTS 32

/* What the programs produce (const volatile mode, a bit set). */
enum bio_mode {
	MODE_HIST = 1,		/* biolatency: log2 histograms */
	MODE_EVENTS = 2,	/* biosnoop: one bio_event per request */
	MODE_TOP = 4,		/* biotop: counters per process and disk */
};

/* One request from its start to its completion, in the start map keyed by
 * the request's address. Who and where are taken at the start, in the
 * context of the task that submitted it. */
struct bio_start {
	__u64 start_ns;		/* block_io_start or block_rq_insert (0: not seen) */
	__u64 issue_ns;		/* block_rq_issue, the last one (0: not yet) */
	__u64 cgroup;		/* submitter's cgroup v2 id */
	__u64 sector;		/* at the first issue: merges are done by then */
	__u32 bytes;		/* at the first issue; more if it grew after a requeue */
	__u32 pid;		/* submitter's thread group id; 0 for a kernel thread */
	__u32 requeued;		/* block_rq_requeue seen: the next insert is not a new start */
	__u32 skip;		/* submitter not selected by the task filters */
	char comm[16];		/* submitter's name (the kernel thread's, for pid 0) */
};

/* A completed request, for biosnoop. */
struct bio_event {
	__u64 boot_ns;		/* completion, CLOCK_BOOTTIME */
	__u64 queue_ns;		/* start to issue; 0 when issued at once */
	__u64 service_ns;	/* issue to completion */
	__u64 sector;
	__u64 cgroup;
	__u32 pid;
	__u32 dev;		/* kernel dev_t (major << 20 | minor) of the partition or disk */
	__u32 bytes;
	__u32 cmd_flags;	/* the request's op and flags, as the kernel numbers them */
	char comm[16];
};

/* Key of a biolatency histogram: zeros unless split per disk (-D) or per
 * request flags (-F). */
struct bio_hist_key {
	__u32 dev;
	__u32 flags;		/* cmd_flags & flags_mask */
};

struct bio_hist {
	__u64 slots[BIO_SLOTS];
	__u64 sum_ns;		/* sum of the latencies counted: serve only (hist_sum) */
};

/* Key of a biotop row. */
struct bio_top_key {
	__u64 cgroup;
	__u32 pid;
	__u32 dev;
	char comm[16];
};

/* A biotop row: counters only grow. */
struct bio_top_val {
	__u64 reads;
	__u64 writes;
	__u64 read_bytes;
	__u64 write_bytes;
	__u64 ns;		/* sum of latencies (start or issue to completion) */
};

/* Indexes of the stats array. */
enum bio_stat {
	STAT_DONE = 0,		/* selected requests completed and counted */
	STAT_NO_START = 1,	/* completed, start not seen (in flight at attach) */
	STAT_START_FULL = 2,	/* starts not recorded: start map full */
	STAT_HIST_FULL = 3,	/* latencies not recorded: histogram map full */
	STAT_TOP_FULL = 4,	/* completions not counted: biotop map full */
	STAT_REQUEUED = 5,	/* requeues of selected requests seen (each counted once, at completion) */
	STAT_MAX = 6,
};

#endif
