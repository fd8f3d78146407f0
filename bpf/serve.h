/* SPDX-License-Identifier: GPL-2.0 */
/*
 * serve.h: the per-cgroup counters `bpfkit serve` reads at scrape time.
 * Every map here is keyed by the cgroup v2 id of the task the event belongs
 * to (its kernfs node id, the inode number of its directory); counters only
 * grow, and user space only reads them.
 */
#ifndef BPFKIT_SERVE_H
#define BPFKIT_SERVE_H

#define SERVE_SLOTS 32		/* log2 slots of run-queue latency, in µs */

/* Exits of processes: signal is the number of the signal that ended the
 * process, 0 for an exit by exit(2)/exit_group(2) (any status). */
struct serve_exit_key {
	__u64 cgroup;
	__u32 signal;
	__u32 pad;
};

/* Context switches of a cgroup's tasks, as /proc/PID/status counts them. */
struct serve_cswitch {
	__u64 voluntary;
	__u64 involuntary;
};

/* Run-queue latency of a cgroup's tasks: slots[i] counts waits whose
 * floor(log2(µs)) is i (slot 0 also holds 0); sum_ns adds them all up. */
struct serve_hist {
	__u64 slots[SERVE_SLOTS];
	__u64 sum_ns;
};

/* Reads and writes on regular files that returned >= 0. */
struct serve_fileio {
	__u64 reads;
	__u64 writes;
	__u64 read_bytes;
	__u64 write_bytes;
};

/* Failed opens, by errno (positive). */
struct serve_errno_key {
	__u64 cgroup;
	__u32 err;
	__u32 pad;
};

/* System calls returned, by syscall number (raw_syscalls:sys_exit). */
struct serve_syscall_key {
	__u64 cgroup;
	__u32 nr;
	__u32 pad;
};
struct serve_syscall {
	__u64 calls;
	__u64 errors;		/* of which failed (-4095 <= ret < 0) */
};

#ifdef BPFKIT_COMMON_H
/*
 * A per-cgroup map. What does not fit is counted in common.h's `lost`, shown
 * as bpfkit_events_lost_total. Maps written from process context (exec,
 * exit, syscalls) allocate entries as cgroups appear (SERVE_GROWING: room
 * for many cgroups, memory only for those seen); the scheduler's maps are
 * preallocated (SERVE_PREALLOC), since allocating under the run-queue lock
 * could wake kswapd and deadlock on that lock.
 */
#define SERVE_GROWING 65536, BPF_F_NO_PREALLOC
#define SERVE_PREALLOC 16384, 0

#define SERVE_MAP(name, key_t, value_t, size)		\
	SERVE_MAP_(name, key_t, value_t, size)
#define SERVE_MAP_(name, key_t, value_t, entries, flags)	\
struct {						\
	__uint(type, BPF_MAP_TYPE_HASH);		\
	__uint(max_entries, entries);			\
	__uint(map_flags, flags);			\
	__type(key, key_t);				\
	__type(value, value_t);				\
} name SEC(".maps")

/* count_one adds one to a u64 counter of map under key. A cgroup's
 * counters (lookup_or_insert's values) are added to atomically: tasks of
 * one cgroup run on many CPUs. */
static __always_inline void count_one(void *map, const void *key)
{
	u64 zero = 0, *n = lookup_or_insert(map, key, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
}
#endif

/* serve_cswitch counts each thread's switches in an entry of its own, keyed
 * by thread id, for the cgroup it is in, and moves them to that cgroup's
 * serve_cswitch when the thread changes cgroup or exits: a cgroup's
 * switches are its serve_cswitch plus its threads' entries. */
struct serve_cswitch_thread {
	__u64 start;		/* task->start_time: a reused thread id starts afresh */
	__u64 cgroup;		/* cgroup v2 id the counts belong to */
	__u64 nvcsw;		/* the kernel's, at the thread's last switch */
	__u64 voluntary;
	__u64 involuntary;
};

#endif
