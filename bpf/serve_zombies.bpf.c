// SPDX-License-Identifier: GPL-2.0
/* serve_zombies: how long processes stayed zombies (from the exit of their
 * last thread to the wait that reaped them, zombie.h), a log2 histogram per
 * cgroup of the zombie. */
#include "kernel.h"
#include "sched.h"
#include "exit.h"
#include "serve.h"
#include "zombie.h"

SERVE_MAP(zombie_hists, u64, struct serve_hist, SERVE_GROWING);

static __always_inline void zombie_reaped(u32 pid, const struct zombie *z, u64 now)
{
	struct serve_hist zero = {}, *h = lookup_or_insert(&zombie_hists, &z->cgroup, &zero);
	u64 ns = now - z->exit_ns;
	u32 slot = log2(ns / 1000);

	if (!h)
		return;
	if (slot >= SERVE_SLOTS)
		slot = SERVE_SLOTS - 1;
	__sync_fetch_and_add(&h->slots[slot], 1);
	__sync_fetch_and_add(&h->sum_ns, ns);
}
