/* SPDX-License-Identifier: GPL-2.0 */
/* malloc.h: what bpfkit malloc counts per function of the allocation API. */
#ifndef BPFKIT_MALLOC_H
#define BPFKIT_MALLOC_H

/* The functions traced; index of the counts map. */
enum malloc_fn {
	MALLOC_FN_MALLOC,
	MALLOC_FN_CALLOC,
	MALLOC_FN_REALLOC,
	MALLOC_FN_REALLOCARRAY,
	MALLOC_FN_FREE,
	MALLOC_FN_POSIX_MEMALIGN,
	MALLOC_FN_ALIGNED_ALLOC,
	MALLOC_FN_MEMALIGN,
	MALLOC_FN_VALLOC,
	MALLOC_FN_PVALLOC,
	MALLOC_FN_MALLOCX,	/* jemalloc's own API */
	MALLOC_FN_RALLOCX,
	MALLOC_FN_SDALLOCX,
	MALLOC_FN_DALLOCX,
	MALLOC_FN_MAX,
};

/* Calls and bytes of one function (per CPU). Bytes are the sizes asked
 * for; for free and dallocx the sizes of the tracked blocks freed (with
 * --outstanding), for sdallocx the size given. */
struct malloc_count {
	__u64 calls;
	__u64 bytes;
};

/* A block allocated and not freed yet (--outstanding), by address. */
struct malloc_alloc {
	__u64 size;
	__u64 ts;		/* bpf_ktime_get_ns at the allocation */
	__u64 stack;		/* user stack's key (stack.h): 0 if not taken, an error if lost */
	enum malloc_fn fn;
	__u32 pad;
};

/* Bytes allocated from one user stack (--stacks). */
struct malloc_stack {
	__u64 calls;
	__u64 bytes;
};

/* A traced process exec'd (-f): it is stopped until user space has
 * attached to its new allocator. */
struct malloc_exec {
	__u32 pid;		/* tgid */
};

/* serve: bytes asked for by the traced processes of a cgroup (v2 id) from
 * one allocator (serve's index of its name, from 1). */
struct malloc_cgroup_key {
	__u64 cgroup;
	__u32 allocator;
	__u32 pad;
};

#define MALLOC_SIZE_SLOTS 65	/* 0: size 0; k: [2^(k-1), 2^k) */
#define MALLOC_STACK_DEPTH 127

#endif
