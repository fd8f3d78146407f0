// SPDX-License-Identifier: GPL-2.0
/*
 * malloc: calls and bytes per function of a process's allocator, by
 * uprobes on the allocator's own entry points (the Go side finds the
 * object that serves malloc and attaches there only). In the kernel:
 * the traced processes (a hash of tgids, grown at fork with -f), per
 * function counts, a log2 histogram of sizes, the blocks not yet freed
 * (address -> size, --outstanding) and the bytes per user stack
 * (--stacks); for serve, the bytes asked for per cgroup and allocator.
 *
 * A call made from inside another traced call of the same thread (glibc's
 * reallocarray calls realloc, tcmalloc's valloc calls memalign) is the
 * allocator's own work: it is not counted. Only functions with a return
 * probe can hide such calls; ret_mask says which have one.
 */
#include "kernel.h"
#include "sched.h"
#include "malloc.h"

#define BPF_F_USER_STACK (1ULL << 8)

const volatile bool follow = false;	/* -f: add children at fork */
const volatile bool sizes_on = false;	/* --sizes */
const volatile bool outstanding_on = false; /* --outstanding */
const volatile bool stacks_on = false;	/* --stacks or stacks of outstanding */
const volatile u32 ret_mask = 0;	/* 1 << fn: has a return probe */
const volatile bool per_cgroup = false;	/* serve: cgroup_bytes */

/* x86-64 user registers, the uprobe's context (UAPI struct pt_regs). */
struct uregs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8;
	unsigned long ax, cx, dx, si, di, orig_ax, ip, cs, flags, sp, ss;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, u32);	/* tgid */
	__type(value, u8);	/* its allocator: 1, or serve's index + 1 */
} traced SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MALLOC_FN_MAX);
	__type(key, u32);
	__type(value, struct malloc_count);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MALLOC_SIZE_SLOTS);
	__type(key, u32);
	__type(value, u64);
} sizes SEC(".maps");

/* A call in progress, by thread, from entry to return. */
struct pending {
	u64 size;
	u64 arg;	/* realloc's old block; posix_memalign's memptr */
	u32 fn;
	u32 depth;	/* nested calls of the same function */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);	/* pid_tgid */
	__type(value, struct pending);
} pending SEC(".maps");

/* Sized by the Go side: 1 unless per_cgroup. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct malloc_cgroup_key);
	__type(value, u64);	/* bytes asked for */
} cgroup_bytes SEC(".maps");

/* Sized by the Go side (--max-blocks); 1 when not wanted. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1 << 18);
	__type(key, u64);	/* address */
	__type(value, struct malloc_alloc);
} allocs SEC(".maps");

#define STACK_DEPTH MALLOC_STACK_DEPTH
#define STACK_ENTRIES 16384
#define STACK_MAP_FLAGS BPF_F_NO_PREALLOC	/* uprobes run where they may allocate */
#include "stack.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);	/* stack key (stack.h) */
	__type(value, struct malloc_stack);
} stack_bytes SEC(".maps");

/* traced_by is the traced process's allocator, NULL if not traced. */
static __always_inline u8 *traced_by(u64 id)
{
	u32 tgid = id >> 32;

	return bpf_map_lookup_elem(&traced, &tgid);
}

/* add_cgroup adds bytes to the current cgroup's for allocator. */
static __always_inline void add_cgroup(u8 allocator, u64 bytes)
{
	struct malloc_cgroup_key k = { .cgroup = bpf_get_current_cgroup_id(), .allocator = allocator };
	u64 *n = bpf_map_lookup_elem(&cgroup_bytes, &k);

	if (!n) {
		u64 zero = 0;

		bpf_map_update_elem(&cgroup_bytes, &k, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&cgroup_bytes, &k);
	}
	if (n)
		__sync_fetch_and_add(n, bytes);
	else
		count_lost();
}

static __always_inline void count(u32 fn, u64 bytes)
{
	struct malloc_count *c = bpf_map_lookup_elem(&counts, &fn);

	if (c) {
		c->calls++;
		c->bytes += bytes;
	}
}

/* on_alloc: entry of a function that returns a block of size bytes. */
static __always_inline int on_alloc(u32 fn, u64 size, u64 arg)
{
	u64 id = bpf_get_current_pid_tgid();
	struct pending *p;
	u8 *allocator = traced_by(id);

	if (!allocator)
		return 0;
	p = bpf_map_lookup_elem(&pending, &id);
	if (p) {		/* inside another traced call */
		if (p->fn == fn)
			p->depth++;
		return 0;
	}
	count(fn, size);
	if (per_cgroup)
		add_cgroup(*allocator, size);
	if (sizes_on) {
		u32 slot = size ? log2(size) + 1 : 0;
		u64 *n = bpf_map_lookup_elem(&sizes, &slot);

		if (n)
			(*n)++;
	}
	if (ret_mask & (1U << fn)) {
		struct pending n = { .size = size, .arg = arg, .fn = fn };

		if (bpf_map_update_elem(&pending, &id, &n, BPF_ANY))
			count_lost();
	}
	return 0;
}

/* forget removes a tracked block and returns its size (0 if untracked). */
static __always_inline u64 forget(u64 addr)
{
	struct malloc_alloc *a;
	u64 size;

	if (!outstanding_on || !addr)
		return 0;
	a = bpf_map_lookup_elem(&allocs, &addr);
	if (!a)
		return 0;
	size = a->size;
	bpf_map_delete_elem(&allocs, &addr);
	return size;
}

/* on_free: entry of a function that frees addr (size: the size given, or
 * 0 for the tracked block's). */
static __always_inline int on_free(u32 fn, u64 addr, u64 size)
{
	u64 id = bpf_get_current_pid_tgid();
	u64 freed;

	if (!traced_by(id) || bpf_map_lookup_elem(&pending, &id))
		return 0;
	freed = forget(addr);
	count(fn, size ? size : freed);
	return 0;
}

/* on_return: return of a function that allocates; ret is its result. */
static __always_inline int on_return(struct uregs *ctx, u32 fn)
{
	u64 id = bpf_get_current_pid_tgid();
	struct pending *p = bpf_map_lookup_elem(&pending, &id);
	u64 addr = ctx->ax, size, old, stack = STACK_NONE;

	if (!p || p->fn != fn)	/* not traced, or a nested call's return */
		return 0;
	if (p->depth) {
		p->depth--;
		return 0;
	}
	size = p->size;
	old = p->arg;
	bpf_map_delete_elem(&pending, &id);
	if (fn == MALLOC_FN_POSIX_MEMALIGN) {
		if ((int)addr != 0 || bpf_probe_read_user(&addr, sizeof(addr), (void *)old))
			return 0;
	} else if (fn == MALLOC_FN_REALLOC || fn == MALLOC_FN_REALLOCARRAY || fn == MALLOC_FN_RALLOCX) {
		/* realloc(p, 0) frees p and may return NULL; a failed realloc
		 * keeps p. */
		if (addr || !size)
			forget(old);
	}
	if (!addr)
		return 0;
	if (stacks_on) {
		stack = stack_key(ctx, BPF_F_USER_STACK);
		if (stack_taken(stack)) {
			struct malloc_stack zero = {}, *s = lookup_or_insert(&stack_bytes, &stack, &zero);

			if (s) {
				__sync_fetch_and_add(&s->calls, 1);
				__sync_fetch_and_add(&s->bytes, size);
			}
		} else {
			count_lost();
		}
	}
	if (outstanding_on) {
		struct malloc_alloc a = {
			.size = size,
			.ts = bpf_ktime_get_ns(),
			.stack = stack,
			.fn = fn,
		};

		if (bpf_map_update_elem(&allocs, &addr, &a, BPF_ANY))
			count_lost();
	}
	return 0;
}

#define ALLOC(fn, ID, SIZE, ARG)						\
	SEC("uprobe") int fn##_enter(struct uregs *ctx) { return on_alloc(ID, SIZE, ARG); } \
	SEC("uretprobe") int fn##_return(struct uregs *ctx) { return on_return(ctx, ID); }

/* Sizes that overflow (calloc's n * size) fail the call: counted as asked. */
ALLOC(malloc, MALLOC_FN_MALLOC, ctx->di, 0)
ALLOC(calloc, MALLOC_FN_CALLOC, ctx->di * ctx->si, 0)
ALLOC(realloc, MALLOC_FN_REALLOC, ctx->si, ctx->di)
ALLOC(reallocarray, MALLOC_FN_REALLOCARRAY, ctx->si * ctx->dx, ctx->di)
ALLOC(posix_memalign, MALLOC_FN_POSIX_MEMALIGN, ctx->dx, ctx->di)
ALLOC(aligned_alloc, MALLOC_FN_ALIGNED_ALLOC, ctx->si, 0)
ALLOC(memalign, MALLOC_FN_MEMALIGN, ctx->si, 0)
ALLOC(valloc, MALLOC_FN_VALLOC, ctx->di, 0)
ALLOC(pvalloc, MALLOC_FN_PVALLOC, ctx->di, 0)
ALLOC(mallocx, MALLOC_FN_MALLOCX, ctx->di, 0)
ALLOC(rallocx, MALLOC_FN_RALLOCX, ctx->si, ctx->di)

SEC("uprobe") int free_enter(struct uregs *ctx) { return on_free(MALLOC_FN_FREE, ctx->di, 0); }
SEC("uprobe") int sdallocx_enter(struct uregs *ctx) { return on_free(MALLOC_FN_SDALLOCX, ctx->di, ctx->si); }
SEC("uprobe") int dallocx_enter(struct uregs *ctx) { return on_free(MALLOC_FN_DALLOCX, ctx->di, 0); }

/* -f: a child of a traced process is traced (threads share the tgid). */
static __always_inline int on_fork(u64 *ctx, bool btf)
{
	struct task_struct *parent = (void *)ctx[0], *child = (void *)ctx[1];
	u32 ptgid = TASK_READ(btf, parent, tgid), ctgid = TASK_READ(btf, child, tgid);
	u8 *allocator;

	if (!follow || ptgid == ctgid)
		return 0;
	allocator = bpf_map_lookup_elem(&traced, &ptgid);
	if (!allocator)
		return 0;
	if (bpf_map_update_elem(&traced, &ctgid, allocator, BPF_ANY))
		count_lost();
	return 0;
}

SCHED_TP(sched_process_fork, on_fork)

#define SIGSTOP 19

const struct malloc_exec *unused_malloc_exec __attribute__((unused));

/*
 * -f: a traced process that execs may now run another allocator, one with
 * no probes yet. It is stopped before the new program's first instruction
 * (bpf_send_signal: the SIGSTOP is delivered on its way back to user mode)
 * and user space, told by the event, attaches to that allocator and
 * continues it (SIGCONT). No event, no stop: a full ring counts as lost.
 * The Go side removes this program without -f.
 */
SEC("tracepoint/sched/sched_process_exec")
int exec_done(void *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct malloc_exec e = { .pid = tgid };

	if (!follow || !bpf_map_lookup_elem(&traced, &tgid))
		return 0;
	if (bpf_ringbuf_output(&events, &e, sizeof(e), BPF_RB_FORCE_WAKEUP)) {
		count_lost();
		return 0;
	}
	bpf_send_signal(SIGSTOP);
	return 0;
}
