/* SPDX-License-Identifier: GPL-2.0 */
/* execsnoop.h: the records execsnoop and exitsnoop send to user space. Both
 * share one ring buffer, so an exec and the exit of the same process arrive
 * in the order they happened; the first byte says which record it is. */
#ifndef BPFKIT_EXECSNOOP_H
#define BPFKIT_EXECSNOOP_H

enum execsnoop_limits {
	ARGS_MAX = 128 << 10,	/* largest argv limit user space may set; the default is 32 KiB */
};

enum record_kind {
	RECORD_EXEC = 1,
	RECORD_EXIT = 2,
};

enum exec_event_flags {
	ARGS_TRUNCATED = 1,	/* argv was longer than the limit */
	FILENAME_TRUNCATED = 2,
	CWD_TRUNCATED = 4,
	ARGS_FROM_CALLER = 8,	/* failed exec: argv read from the caller's memory */
};

/* Followed by filename_len bytes of the file name, cwd_len bytes of the
 * working directory (with want_cwd), then args_len bytes of argv: each
 * argument ends in a NUL, as in /proc/PID/cmdline, except a truncated last. */
struct exec_event {
	__u8 kind;		/* RECORD_EXEC */
	__u8 flags;		/* enum exec_event_flags */
	__u16 filename_len;
	__u16 cwd_len;
	__u16 pad;
	__u32 args_len;
	__u32 pid;
	__u32 ppid;
	__u32 uid;
	__s32 ret;		/* 0, or -errno of a failed exec */
	__u32 pad2;
	__u64 boot_ns;
	char comm[16];
};

struct exit_event {
	__u8 kind;		/* RECORD_EXIT */
	__u8 group_dead;	/* the last thread of its process */
	__u8 pad[2];
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 code;		/* task->exit_code: status << 8, or signal | 0x80 for a core */
	__u32 pad2;
	__u64 boot_ns;
	__u64 age_ns;		/* since the task (or, for a process, its leader) started */
	char comm[16];
};

#endif
