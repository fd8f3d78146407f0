/* SPDX-License-Identifier: GPL-2.0 */
/*
 * fdcall.h: the fd of each thread's read or write in progress, remembered
 * at the syscall's entry for its exit (filetop, serve's fileio). Include
 * after common.h. Declares the program thread_exit.
 */
#ifndef BPFKIT_FDCALL_H
#define BPFKIT_FDCALL_H

/* Each thread's read or write in progress. An entry stays while its thread
 * lives (updating it in place is much cheaper than inserting and deleting
 * per call) and goes when the thread exits. */
struct call {
	u32 fd;
	u32 active;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, u32);
	__type(value, struct call);
} inflight SEC(".maps");

static __always_inline int enter(u64 fd)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id;
	struct call *c;

	if (!task_wanted(id))
		return 0;
	c = bpf_map_lookup_elem(&inflight, &tid);
	if (c) {
		c->fd = fd;
		c->active = 1;
		return 0;
	}
	struct call n = { .fd = fd, .active = 1 };
	if (bpf_map_update_elem(&inflight, &tid, &n, BPF_NOEXIST))
		count_lost();	/* more threads than inflight holds */
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int thread_exit(void *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();

	bpf_map_delete_elem(&inflight, &tid);
	return 0;
}

#endif
