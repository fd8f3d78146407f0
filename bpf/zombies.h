/* SPDX-License-Identifier: GPL-2.0 */
/* zombies.h: the record zombies sends when a zombie is reaped. */
#ifndef BPFKIT_ZOMBIES_H
#define BPFKIT_ZOMBIES_H

struct zombie_event {
	__u64 boot_ns;		/* when it was reaped */
	__u64 zombie_ns;	/* from its last thread's exit to the reap */
	__u32 pid;		/* the process reaped */
	__u32 ppid;		/* the process that reaped it */
	__u32 status;		/* as wait(2) reports it */
	__u32 pad;
	char comm[16];
	char parent_comm[16];
};

#endif
