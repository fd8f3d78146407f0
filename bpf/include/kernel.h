/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kernel.h: the few kernel types bpfkit's programs read, declared with
 * preserve_access_index so that clang emits CO-RE relocations and the loader
 * fixes every field offset against the running kernel's BTF.
 *
 * Why not a generated vmlinux.h: only the fields named here are relied upon,
 * so a reviewer sees exactly what bpfkit reads; the header is tiny (fast
 * compiles) and carries no layout of the kernel it happened to be dumped on.
 * Add a field here when a program needs it.
 */
#ifndef BPFKIT_KERNEL_H
#define BPFKIT_KERNEL_H

typedef unsigned char __u8;
typedef signed char __s8;
typedef unsigned short __u16;
typedef short __s16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;
typedef __u8 u8;
typedef __s8 s8;
typedef __u16 u16;
typedef __s16 s16;
typedef __u32 u32;
typedef __s32 s32;
typedef __u64 u64;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

/* UAPI constants from <linux/bpf.h> (stable ABI). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PROG_ARRAY = 3,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_STACK_TRACE = 7,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_DEVMAP = 14,
	BPF_MAP_TYPE_DEVMAP_HASH = 25,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum { BPF_ANY = 0, BPF_NOEXIST = 1, BPF_EXIST = 2 };
enum { BPF_F_NO_PREALLOC = 1 };
enum { BPF_RB_NO_WAKEUP = 1, BPF_RB_FORCE_WAKEUP = 2 };
enum { BPF_RB_AVAIL_DATA = 0, BPF_RB_RING_SIZE = 1 };

#define AT_FDCWD -100
#define EBUSY 16
#define EEXIST 17
#define E2BIG 7

/* File types of inode i_mode (<linux/stat.h>). */
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define S_IFREG 0100000
#define S_IFIFO 0010000

/* Tracepoint contexts of syscalls:sys_enter_* and sys_exit_* (the layout of
 * the format files, fixed ABI): common header, syscall nr, then arguments. */
struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};
struct syscall_enter_ctx {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};
struct syscall_exit_ctx {
	struct trace_entry ent;
	long id;
	long ret;
};

/* XDP program context and verdicts from <linux/bpf.h> (stable ABI; the
 * verifier rewrites ctx accesses, so no CO-RE here). */
struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};
enum xdp_action { XDP_ABORTED = 0, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT };
/* sched:sched_process_exec (format file, fixed ABI). */
struct sched_process_exec_ctx {
	struct trace_entry ent;
	u32 filename_loc;	/* __data_loc: offset in the low 16 bits, length in the high */
	int pid;
	int old_pid;
};

/* Kernel structures, relocated by CO-RE. */
#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct list_head {
	struct list_head *next;
};
/* A trace event (include/linux/trace_events.h), on the kernel's list of all
 * of them (ftrace_events); a syscall event's data is its syscall's metadata. */
struct trace_event_call {
	struct list_head list;
	void *data;
};
/* A syscall's metadata (include/trace/syscall.h): ftrace sets syscall_nr at
 * boot and names its syscalls:sys_enter_* event (enter_event) after name. */
struct syscall_metadata {
	const char *name;	/* "sys_openat" */
	int syscall_nr;		/* -1: not in this architecture's table */
	struct trace_event_call *enter_event;
};
/* A perf event, on its owner's (the thread that opened it) perf_event_list. */
struct perf_event {
	struct list_head owner_entry;
	struct trace_event_call *tp_event;	/* a trace event's, else NULL */
};
struct qstr {
	u32 len;
	const unsigned char *name;
};
struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};
struct vfsmount {
	struct dentry *mnt_root;
};
struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};
struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};
struct super_block {
	u32 s_dev;		/* dev_t */
};
struct inode {
	u16 i_mode;		/* umode_t */
	unsigned int i_nlink;	/* in an anonymous union; 0 once unlinked */
	unsigned long i_ino;
	struct super_block *i_sb;
};
struct file {
	struct path f_path;
	struct inode *f_inode;
};
struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};
struct files_struct {
	struct fdtable *fdt;
};
struct fs_struct {
	struct path root;
	struct path pwd;
};
struct kernfs_node {
	u64 id;			/* the cgroup id (5.5+) */
};
struct cgroup {
	struct kernfs_node *kn;
};
struct cgroup_subsys_state {
	struct cgroup *cgroup;
};
struct css_set {
	struct cgroup_subsys_state *subsys[1];	/* CGROUP_SUBSYS_COUNT entries */
	struct cgroup *dfl_cgrp;
};
/* The controllers' indexes in css_set.subsys: their values depend on the
 * kernel's config, so they are relocated (bpf_core_enum_value). */
enum cgroup_subsys_id {
	memory_cgrp_id = 4,
};
struct ns_common {
	unsigned int inum;
};
struct pid_namespace {
	struct ns_common ns;
};
struct nsproxy {
	struct pid_namespace *pid_ns_for_children;
};
typedef struct {
	int counter;
} atomic_t;
/* The context of sched:sched_process_exit, relocated because it has grown:
 * group_dead appeared in 6.16. */
struct trace_event_raw_sched_process_exit {
	bool group_dead;
};
struct mm_struct {
	unsigned long arg_start;
	unsigned long arg_end;
};
struct signal_struct {
	atomic_t live;		/* threads not yet exited */
	int group_exit_code;
	unsigned int flags;	/* SIGNAL_* */
};
#define SIGNAL_GROUP_EXIT 0x00000004	/* exit_group or a fatal signal */
struct task_struct {
	unsigned int __state;	/* 5.14+; before: long state (task_struct___old) */
	int pid;
	int tgid;
	char comm[16];
	int exit_code;
	u64 start_time;		/* monotonic ns */
	u64 start_boottime;	/* boot-time ns; 5.5+ */
	struct task_struct *real_parent;
	struct task_struct *group_leader;
	struct mm_struct *mm;
	struct signal_struct *signal;
	struct files_struct *files;
	struct fs_struct *fs;
	struct css_set *cgroups;
	struct nsproxy *nsproxy;
	unsigned long nvcsw;	/* voluntary switches, as /proc/PID/status */
	struct list_head perf_event_list;	/* the perf events it opened */
};
/* task_struct before 5.14, for reading its state field. */
struct task_struct___old {
	long state;
};

#pragma clang attribute pop

#endif
