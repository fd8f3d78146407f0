/* SPDX-License-Identifier: GPL-2.0 */
/* opensnoop.h: the record opensnoop sends to user space. */
#ifndef BPFKIT_OPENSNOOP_H
#define BPFKIT_OPENSNOOP_H

/* How full_path was obtained. */
enum path_source {
	PATH_NONE = 0,		/* not asked for (no -F) */
	PATH_FILE = 1,		/* from the struct file the call returned */
	PATH_DIR = 2,		/* failed call: the directory (cwd or dirfd); name is relative to it */
	PATH_NAME = 3,		/* failed call with an absolute name: the name itself */
};

enum open_event_flags {
	NAME_TRUNCATED = 1,
	PATH_TRUNCATED = 2,
	/* The name was no longer readable in the caller's memory at exit (another
	 * thread dropped the page, or the kernel was migrating or collapsing it):
	 * for a call that returned a descriptor, the opened file's path (PATH_FILE)
	 * stands in for it; for a failed call the name is empty. */
	NAME_UNREAD = 4,
};

/* Followed by name_len bytes of the name as passed, then path_len bytes of
 * the resolved path (no NULs). */
struct open_event {
	__u64 boot_ns;
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__s32 ret;		/* fd, or -errno */
	__u32 flags;
	__u32 mode;
	__u16 name_len;
	__u16 path_len;
	__u8 path_source;	/* enum path_source */
	__u8 trunc;		/* enum open_event_flags */
	__u8 pad[2];
	char comm[16];
};

#endif
