/* SPDX-License-Identifier: GPL-2.0 */
/*
 * stack.h: stacks kept once each, under a 64-bit hash of their frames.
 *
 * A stack-trace map (BPF_MAP_TYPE_STACK_TRACE, bpf_get_stackid) keeps one
 * stack per bucket, the bucket a 32-bit hash of the frames modulo the map's
 * size, and refuses (-EEXIST) a stack whose bucket another stack holds: of n
 * stacks in b buckets about n²/2b are lost (2048 in 16384: ~120). Here the
 * program takes the frames (bpf_get_stack), hashes them to 64 bits and keeps
 * them in a hash map under that key: two stacks share a key with a
 * probability of about n²/2⁶⁵.
 *
 * Include after common.h, with STACK_DEPTH (frames kept), STACK_ENTRIES
 * (stacks kept) and STACK_MAP_FLAGS (0: preallocated, for programs that may
 * not allocate, as under the scheduler's locks; BPF_F_NO_PREALLOC: memory
 * for the stacks seen only) defined. User space reads the frames of a key
 * from the map `stacks` (pkg/trace: StackFrames), innermost first, ended by
 * a 0 or by the depth.
 */
#ifndef BPFKIT_STACK_H
#define BPFKIT_STACK_H

struct stack_frames {
	u64 ip[STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, STACK_ENTRIES);
	__uint(map_flags, STACK_MAP_FLAGS);
	__type(key, u64);
	__type(value, struct stack_frames);
} stacks SEC(".maps");

/* Where the frames are taken before they are hashed and kept (too big for
 * the BPF stack), one per CPU; busy counts the threads that claim it. */
struct stack_scratch {
	u64 busy;
	struct stack_frames f;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct stack_scratch);
} stack_scratch SEC(".maps");

/* STACK_NONE is the key of a stack not taken. An error is kept as its
 * negative errno, cast (u64)-4095 and above: bpf_get_stack's (-EFAULT: no
 * user stack, as in a kernel thread), the map full (-E2BIG), or -EBUSY
 * (below). */
#define STACK_NONE 0

/* stack_taken reports whether key is a stack's (not STACK_NONE, no error). */
static __always_inline bool stack_taken(u64 key)
{
	return key != STACK_NONE && key < (u64)-4095;
}

/* stack_key takes the current stack (flags: bpf_get_stack's, 0 for the
 * kernel's, BPF_F_USER_STACK for the user's), keeps its frames under their
 * hash and returns that key, or an error.
 *
 * Where the program can be preempted (uprobes; tracepoints on some 7.x
 * kernels), another thread could run it on this CPU while a preempted one
 * is using the CPU's scratch. So a thread claims the scratch (an atomic add
 * to busy, which no preemption splits) and uses it only if it then finds
 * itself the only claimant; else it gives its stack up (-EBUSY): lost, and
 * counted so, never mixed with another thread's frames. (An atomic add
 * without fetch: the only atomic every kernel's verifier takes.) */
static __always_inline u64 stack_key(void *ctx, u64 flags)
{
	u32 zero = 0;
	struct stack_scratch *s = bpf_map_lookup_elem(&stack_scratch, &zero);
	u64 h = (u64)-EBUSY;
	u32 frames;
	long n;

	if (!s)
		return h;
	__sync_fetch_and_add(&s->busy, 1);
	if (*(volatile u64 *)&s->busy != 1)
		goto out;
	n = bpf_get_stack(ctx, s->f.ip, sizeof(s->f.ip), flags);
	if (n < 0) {
		h = (u64)n;
		goto out;
	}
	frames = (u64)n / sizeof(u64);
	/* Each step is a bijection of h for a given frame (xor, an odd
	 * multiplier, an xorshift): stacks that differ in one frame never
	 * share a key, others by chance. */
	h = 0x9e3779b97f4a7c15ULL ^ frames;
	for (u32 i = 0; i < STACK_DEPTH; i++) {
		if (i >= frames)
			break;
		h ^= s->f.ip[i];
		h *= 0xff51afd7ed558ccdULL;
		h ^= h >> 33;
	}
	if (h == STACK_NONE || h >= (u64)-4095)
		h = 1;
	/* bpf_get_stack zeroed what it did not fill. */
	if (!bpf_map_lookup_elem(&stacks, &h) &&
	    bpf_map_update_elem(&stacks, &h, &s->f, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&stacks, &h))
		h = (u64)-E2BIG;	/* the map is full */
out:
	__sync_fetch_and_add(&s->busy, -1);
	return h;
}

#endif
