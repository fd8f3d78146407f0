/* SPDX-License-Identifier: GPL-2.0 */
/* oomkill.h: the record oomkill sends for each OOM kill. */
#ifndef BPFKIT_OOMKILL_H
#define BPFKIT_OOMKILL_H

struct oom_event {
	__u64 boot_ns;
	__u64 victim_memcg;	/* memory cgroup ids (0: no memcg) */
	__u64 trigger_memcg;
	/* The victim's figures as oom:mark_victim gives them (not 5.10), in kB. */
	__u64 total_vm;
	__u64 anon_rss;
	__u64 file_rss;
	__u64 shmem_rss;
	__u64 pgtables;
	__u32 pid;		/* the victim thread, as "Killed process N" */
	__u32 tgid;		/* its process; 0 when its task was not seen */
	__u32 trigger_pid;	/* the task that called the OOM killer */
	__u32 trigger_tid;
	__u32 uid;
	__s16 oom_score_adj;
	__u8 figures;		/* 1 when the record had the figures */
	__u8 pad;
	char comm[16];
	char trigger_comm[16];
};

#endif
