/* SPDX-License-Identifier: GPL-2.0 */
/* syscount.h: what syscount counts, per syscall (and process). */
#ifndef BPFKIT_SYSCOUNT_H
#define BPFKIT_SYSCOUNT_H

#define SYSCOUNT_MAX_NR 1024	/* syscall numbers named and counted */
/* Replaced in each copy of syscall_name by its tracepoint's event id. */
#define SYSCOUNT_EVENT_PLACEHOLDER 0x5ca1ab1e

#define SYSCOUNT_NAME_LEN 64	/* a syscall's name in the kernel's table, with "sys_" */

/* What syscall_table read of one trace event. */
struct syscount_meta {
	__u64 next;		/* the next event's list node (kernel address) */
	__s32 nr;		/* a sys_enter_* event's syscall number; -1: other event */
	char name[SYSCOUNT_NAME_LEN];	/* its syscall, "sys_openat", NUL-terminated */
};

/* Key of the counts map: the process (0 unless per_process) and syscall. */
struct syscount_key {
	__u32 pid;
	__u32 nr;
};

/* Value of the totals map (per syscall and CPU, when not per process). */
struct syscount_total {
	__u64 count;		/* calls returned */
	__u64 errors;		/* of which failed (-4095 <= ret < 0) */
	__u64 total_ns;		/* time in the calls, with latency only */
};

/* Value of the counts map; counters only grow. */
struct syscount_val {
	__u64 count;		/* calls returned */
	__u64 errors;		/* of which failed (-4095 <= ret < 0) */
	__u64 total_ns;		/* time in the calls, with latency only */
	char comm[16];		/* the process's name at its first call seen */
};

#endif
