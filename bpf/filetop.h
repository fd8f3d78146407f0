/* SPDX-License-Identifier: GPL-2.0 */
/*
 * filetop.h: the maps filetop's user side reads each interval. Nothing is
 * sent per call: the kernel adds up, user space reads and clears.
 */
#ifndef BPFKIT_FILETOP_H
#define BPFKIT_FILETOP_H

/* What kind of file, from the inode's i_mode. */
enum file_type {
	FILE_REGULAR = 'R',
	FILE_SOCKET = 'S',
	FILE_PIPE = 'P',
	FILE_OTHER = 'O',	/* devices, directories, anon inodes, ... */
};

/* Which file: the inode, as (device, inode number). */
struct file_id {
	__u64 ino;
	__u32 dev;		/* kernel dev_t: major << 20 | minor */
	__u32 pad;
};

/* Key of the per-interval counters: a thread (or, with per_process, a
 * process: tid 0) and a file. */
struct file_key {
	struct file_id file;
	__u32 pid;
	__u32 tid;
};

/* A call counts as one read or write when it returns >= 0; bytes are what
 * it returned. */
struct file_stat {
	__u64 reads;
	__u64 writes;
	__u64 read_bytes;
	__u64 write_bytes;
	char comm[16];		/* of the thread that first used the file this interval */
	__u8 type;		/* enum file_type */
	__u8 pad[7];
};

enum file_path_flags {
	FILE_PATH_TRUNCATED = 1,	/* longer than PATH_MAX-1 or too deep */
	FILE_DELETED = 2,		/* unlinked (i_nlink == 0) when resolved */
};

/* The absolute path of a file, resolved when it is first seen in an
 * interval. path has no NUL; its room is path.h's PATH_ROOM. */
struct file_path {
	__u16 len;
	__u8 flags;		/* enum file_path_flags */
	__u8 pad[5];
	char path[4096 + 255 + 2];
};

#endif
