// SPDX-License-Identifier: GPL-2.0
/*
 * zombies: every process from the exit of its last thread (when it becomes
 * a zombie) to its reaping by a wait4(2) or waitid(2) that returns it
 * (zombie.h), reported when reaped.
 */
#include "kernel.h"
#include "sched.h"
#include "exit.h"
#include "zombies.h"
#include "zombie.h"

const volatile u64 min_zombie_ns = 0;	/* --over */
const volatile u32 filter_ppid = 0;	/* the reaping parent */

/* Puts struct zombie_event into BTF, for bpf2go's -type. */
const struct zombie_event *unused_zombie_event __attribute__((unused));

static __always_inline void zombie_reaped(u32 pid, const struct zombie *z, u64 now)
{
	u64 id = bpf_get_current_pid_tgid();
	struct zombie_event e = {};

	e.boot_ns = now;
	e.zombie_ns = now - z->exit_ns;
	e.pid = pid;
	e.ppid = id >> 32;
	e.status = z->status;
	if (e.zombie_ns < min_zombie_ns || (filter_ppid && e.ppid != filter_ppid))
		return;
	__builtin_memcpy(e.comm, z->comm, sizeof(e.comm));
	bpf_get_current_comm(e.parent_comm, sizeof(e.parent_comm));
	submit(&e, sizeof(e));
}
