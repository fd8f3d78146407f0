// SPDX-License-Identifier: GPL-2.0
/*
 * bio: block I/O requests from start to completion, for biolatency
 * (log2 histograms), biosnoop (one event per request) and biotop (counters
 * per process and disk). One object, three modes (const volatile mode).
 *
 * Hooks, chosen by the loader at run time (loader Options.Alternatives):
 *   start:    block_io_start (6.5+, in blk_mq_bio_to_request: always in the
 *             submitter's context), else block_rq_insert;
 *   issue:    block_rq_issue (the driver gets the request);
 *   done:     block_io_done (6.5+, once, when the request ends), else
 *             block_rq_complete (when its last bytes complete);
 *   requeue:  block_rq_requeue;  merge: block_rq_merge (request merged into
 *             another: it will not complete by itself).
 * Each as a BTF tracepoint, else a raw one.
 *
 * Attribution is taken at the start, in the context of the task that
 * submitted the request: its pid, name and cgroup ride in the start map,
 * keyed by the request's address, and are used at completion (which runs
 * in interrupt or driver context, where the current task is whoever was
 * running). Requests submitted by a kernel thread (writeback, journal,
 * loop workers) get pid 0 and the thread's name.
 *
 * Before 6.5, a request that a driver takes directly (no I/O scheduler,
 * nothing queued) is never inserted: its start is its issue, traced in the
 * submitter's context.
 *
 * biolatency without -Q and task filters (start_at_issue) loads only the
 * issue and done hooks: latency from issue needs no start, and nothing is
 * attributed. Work a mode does not need (reading the device, the flags,
 * the sector) is left out by the constants, before the verifier sees it.
 *
 * Every time here is CLOCK_BOOTTIME, the clock of the events' own time, and
 * a completion reads it once: its event's time minus its service time is
 * exactly the issue's reading (a second read could come a stalled vCPU's
 * milliseconds later).
 *
 * A request is counted once, at completion: a requeued request is issued
 * (and before 6.5 inserted) again but keeps its start, submitter, sector
 * and size; a completion whose start was not seen (in flight when tracing
 * began) is counted in STAT_NO_START, not in the histograms. Before 6.5
 * the start of a request that the driver takes without an insert is its
 * issue, so an issue (or a requeued request's insert) of a request that
 * was already there when tracing began must not pass for a start: the
 * request's allocation time (rq->start_time_ns) tells them apart.
 */
#include "kernel.h"
#include "common.h"
#include "bio.h"

const volatile u32 mode = MODE_HIST;
const volatile bool have_io_start = false;	/* block_io_start is the start hook */
const volatile bool start_at_issue = false;	/* no start hook: latency from issue only, nothing to attribute */
const volatile u32 rq_arg = 0;			/* index of the request among the block_rq_* arguments (1 before 5.11) */
const volatile bool in_ms = false;
const volatile bool queued = false;		/* latency from start, not from issue (-Q) */
const volatile bool by_disk = false;
const volatile u32 flags_mask = 0;		/* -F: the cmd_flags bits a histogram is kept for */
const volatile u32 filter_dev = 0;		/* kernel dev_t; 0: any */
const volatile bool filter_whole_disk = false;	/* filter_dev is a disk: its partitions match too */
const volatile u64 min_ns = 0;			/* biosnoop: shortest latency shown */
const volatile bool top_per_cgroup = false;	/* biotop rows per cgroup and device only (serve) */
const volatile bool hist_sum = false;		/* keep each histogram's sum of latencies (serve's _sum) */
/* When the last program was attached (CLOCK_MONOTONIC, the clock of
 * rq->start_time_ns): the loader sets it (loader.Load). Until then every
 * request is one that was there before tracing began. */
volatile u64 attached_ns = ~0ULL;
BTF_ENUM(bio_mode);
BTF_ENUM(bio_stat);

/* Only built on the stack: named here so that its type is in the BTF that
 * bpf2go reads. */
const volatile struct bio_event unused_bio_event = {};

#define PF_KTHREAD 0x00200000
#define MINORBITS 20
#define REQ_OP_MASK 0xff

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)
struct gendisk {
	int major;
	int first_minor;
};
struct request_queue {
	struct gendisk *disk;		/* 5.15+ */
};
struct block_device {
	u32 bd_dev;
};
struct request {
	struct request_queue *q;
	unsigned int cmd_flags;
	u64 __sector;
	unsigned int __data_len;
	struct block_device *part;	/* 5.11+ */
	u64 start_time_ns;		/* allocation, when the queue keeps I/O statistics or has a scheduler; else 0 */
};
/* Before 5.18 the request names its disk; before 5.11 its partition is an
 * hd_struct. */
struct request___rq_disk {
	struct gendisk *rq_disk;
};
struct device {
	u32 devt;
};
struct hd_struct {
	struct device __dev;
};
struct request___hd {
	struct hd_struct *part;
};
struct task_struct___flags {
	unsigned int flags;
};
#pragma clang attribute pop

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, u64);		/* struct request * */
	__type(value, struct bio_start);
} start SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct bio_hist_key);
	__type(value, struct bio_hist);
} hists SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct bio_top_key);
	__type(value, struct bio_top_val);
} top SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static __always_inline void stat_inc(u32 i)
{
	u64 *n = bpf_map_lookup_elem(&stats, &i);

	if (n)
		(*n)++;
}

/* log2 is floor(log2(v)), 0 for 0. */
static __always_inline u32 log2(u64 v)
{
	u32 r = 0, shift;

	shift = (v > 0xFFFFFFFF) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

/*
 * RQ_READ reads a field (path) of a request: in a BTF tracepoint the
 * verifier knows the pointer's type, so it is a plain load; in a raw
 * tracepoint it is a CO-RE probe read. btf is a constant: each program
 * keeps one of the two.
 */
#define RQ_READ(btf, rq, ...) ((btf) ? (rq)->__VA_ARGS__ : BPF_CORE_READ(rq, __VA_ARGS__))

static __always_inline struct gendisk *disk_of(struct request *rq)
{
	if (bpf_core_field_exists(((struct request___rq_disk *)rq)->rq_disk))
		return BPF_CORE_READ((struct request___rq_disk *)rq, rq_disk);
	return BPF_CORE_READ(rq, q, disk);
}

static __always_inline u32 disk_devt(struct gendisk *disk)
{
	if (!disk)
		return 0;
	return (BPF_CORE_READ(disk, major) << MINORBITS) | BPF_CORE_READ(disk, first_minor);
}

/* dev_of is the device the request is for: its partition, else its disk. */
static __always_inline u32 dev_of(struct request *rq, bool btf)
{
	if (bpf_core_type_exists(struct hd_struct)) {
		struct hd_struct *p = BPF_CORE_READ((struct request___hd *)rq, part);

		if (p)
			return BPF_CORE_READ(p, __dev.devt);
	} else {
		struct block_device *b = RQ_READ(btf, rq, part);

		if (b)
			return RQ_READ(btf, b, bd_dev);
	}
	return disk_devt(disk_of(rq));
}

/* need_dev: the device is used (split, filtered or reported). */
static __always_inline bool need_dev(void)
{
	return filter_dev || by_disk || (mode & (MODE_EVENTS | MODE_TOP));
}

static __always_inline bool dev_wanted(struct request *rq, u32 dev)
{
	if (!filter_dev)
		return true;
	if (filter_whole_disk)
		return disk_devt(disk_of(rq)) == filter_dev;
	return dev == filter_dev;
}

/*
 * began_before reports whether rq was allocated before tracing began (before
 * the last program was attached): its start may have been missed. The block
 * layer stamps rq->start_time_ns at allocation when the queue keeps I/O
 * statistics (iostats, the default) or has a scheduler; 0 says nothing, and
 * such a request is taken as new.
 */
static __always_inline bool began_before(struct request *rq, bool btf)
{
	u64 t = RQ_READ(btf, rq, start_time_ns);

	return t && t < attached_ns;
}

/* set_submitter records the current task as the request's submitter. */
static __always_inline void set_submitter(struct bio_start *s)
{
	u64 id = bpf_get_current_pid_tgid();
	struct task_struct___flags *task = (void *)bpf_get_current_task();

	s->skip = !task_wanted(id);
	s->pid = BPF_CORE_READ(task, flags) & PF_KTHREAD ? 0 : id >> 32;
	s->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(s->comm, sizeof(s->comm));
}

static __always_inline int on_start(struct request *rq, bool insert, bool btf)
{
	u64 key = (u64)rq;
	struct bio_start *s, v = {};

	if (insert) {
		/* A requeued request is inserted again: same start, same
		 * submitter (the task inserting it now is a kworker). */
		s = bpf_map_lookup_elem(&start, &key);
		if (s && s->requeued) {
			s->requeued = 0;
			return 0;
		}
		/* Inserted now (its plug flushed, or requeued) but there
		 * before tracing began: its start was not seen. */
		if (began_before(rq, btf))
			return 0;
	}
	v.start_ns = bpf_ktime_get_boot_ns();
	set_submitter(&v);
	/* Where and how much, as the request stands now: the issue reads
	 * them again (a bio merged in since grows it), but when the kernel
	 * skips the issue program (another BPF program was running on that
	 * CPU) the event still says where the I/O went. */
	if (mode & (MODE_EVENTS | MODE_TOP)) {
		v.sector = RQ_READ(btf, rq, __sector);
		v.bytes = RQ_READ(btf, rq, __data_len);
	}
	if (bpf_map_update_elem(&start, &key, &v, BPF_ANY))
		stat_inc(STAT_START_FULL);
	return 0;
}

static __always_inline int on_issue(struct request *rq, bool btf)
{
	u64 key = (u64)rq, now = bpf_ktime_get_boot_ns();
	struct bio_start *s;

	if (start_at_issue && !(mode & (MODE_EVENTS | MODE_TOP))) {
		/* biolatency from issue: only the last issue's time counts (a
		 * requeued request is issued again), so no lookup first. */
		struct bio_start v = { .start_ns = now, .issue_ns = now };

		if (bpf_map_update_elem(&start, &key, &v, BPF_ANY))
			stat_inc(STAT_START_FULL);
		return 0;
	}
	s = bpf_map_lookup_elem(&start, &key);
	if (!s) {
		struct bio_start v = {};

		if (have_io_start && !start_at_issue)
			return 0;	/* started before tracing began */
		/* Before 6.5: inserted before tracing began, issued now. */
		if (!start_at_issue && began_before(rq, btf))
			return 0;
		/* Before 6.5: taken by the driver without being inserted, in
		 * the submitter's context. */
		v.start_ns = now;
		v.issue_ns = now;
		if (!start_at_issue)
			set_submitter(&v);
		if (mode & (MODE_EVENTS | MODE_TOP)) {
			v.sector = RQ_READ(btf, rq, __sector);
			v.bytes = RQ_READ(btf, rq, __data_len);
		}
		if (bpf_map_update_elem(&start, &key, &v, BPF_ANY))
			stat_inc(STAT_START_FULL);
		return 0;
	}
	/* Where and how much as the first issue has them: after a requeue
	 * the request is issued again, and a driver that completed part of
	 * it (a short read) gives it back with the rest only, while the
	 * kernel counts all of it; it may only grow (a bio merged into it
	 * while it waited again). The time is the last issue's. */
	if (mode & (MODE_EVENTS | MODE_TOP)) {
		u32 bytes = RQ_READ(btf, rq, __data_len);

		if (!s->issue_ns)
			s->sector = RQ_READ(btf, rq, __sector);
		if (!s->issue_ns || bytes > s->bytes)
			s->bytes = bytes;
	}
	s->issue_ns = now;
	return 0;
}

static __always_inline int on_requeue(struct request *rq, bool btf)
{
	u64 key = (u64)rq;
	struct bio_start *s = bpf_map_lookup_elem(&start, &key);
	u32 dev = 0;

	if (!s)
		return 0;
	s->requeued = 1;
	/* Starts are kept for every device: count the selected ones. */
	if (filter_dev && !filter_whole_disk)
		dev = dev_of(rq, btf);
	if (!s->skip && dev_wanted(rq, dev))
		stat_inc(STAT_REQUEUED);
	return 0;
}

/* on_merge forgets a request merged into another: it ends with that one. */
static __always_inline int on_merge(struct request *rq)
{
	u64 key = (u64)rq;

	bpf_map_delete_elem(&start, &key);
	return 0;
}

static __always_inline void count_hist(u32 dev, u32 cmd_flags, u64 lat)
{
	struct bio_hist_key k = {};
	struct bio_hist *h;
	u32 slot;

	if (by_disk)
		k.dev = dev;
	k.flags = cmd_flags & flags_mask;
	h = bpf_map_lookup_elem(&hists, &k);
	if (!h) {
		struct bio_hist zero = {};

		bpf_map_update_elem(&hists, &k, &zero, BPF_NOEXIST);
		h = bpf_map_lookup_elem(&hists, &k);
		if (!h) {
			stat_inc(STAT_HIST_FULL);
			return;
		}
	}
	if (hist_sum)
		__sync_fetch_and_add(&h->sum_ns, lat);
	lat /= in_ms ? 1000000 : 1000;
	slot = log2(lat);
	if (slot >= BIO_SLOTS)
		slot = BIO_SLOTS - 1;
	__sync_fetch_and_add(&h->slots[slot], 1);
}

static __always_inline void count_top(struct bio_start *s, u32 dev, u32 cmd_flags, u64 lat)
{
	struct bio_top_key k = {};
	struct bio_top_val *v;

	k.cgroup = s->cgroup;
	k.dev = dev;
	if (!top_per_cgroup) {
		k.pid = s->pid;
		__builtin_memcpy(k.comm, s->comm, sizeof(k.comm));
	}
	v = bpf_map_lookup_elem(&top, &k);
	if (!v) {
		struct bio_top_val zero = {};

		bpf_map_update_elem(&top, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&top, &k);
		if (!v) {
			stat_inc(STAT_TOP_FULL);
			return;
		}
	}
	if (cmd_flags & 1) {	/* op_is_write: the kernel's rq_data_dir */
		__sync_fetch_and_add(&v->writes, 1);
		__sync_fetch_and_add(&v->write_bytes, s->bytes);
	} else {
		__sync_fetch_and_add(&v->reads, 1);
		__sync_fetch_and_add(&v->read_bytes, s->bytes);
	}
	__sync_fetch_and_add(&v->ns, lat);
}

static __always_inline int on_done(struct request *rq, bool btf)
{
	u64 key = (u64)rq, now = bpf_ktime_get_boot_ns();
	struct bio_start *p = bpf_map_lookup_elem(&start, &key);
	struct bio_start s = {};
	u64 issue, lat;
	u32 dev = 0, cmd_flags = 0;

	if (need_dev())
		dev = dev_of(rq, btf);
	if (!p) {
		if (dev_wanted(rq, dev))
			stat_inc(STAT_NO_START);
		return 0;
	}
	/* Copied before the delete frees it: all of it for biosnoop and
	 * biotop, the times for biolatency. */
	if (mode & (MODE_EVENTS | MODE_TOP)) {
		s = *p;
	} else {
		s.start_ns = p->start_ns;
		s.issue_ns = p->issue_ns;
		s.skip = p->skip;
	}
	bpf_map_delete_elem(&start, &key);
	if (s.skip || !dev_wanted(rq, dev))
		return 0;
	stat_inc(STAT_DONE);

	/* Never issued: ended by the kernel (a flush the flush machinery
	 * completed for it), all of it counted as service. */
	issue = s.issue_ns ? s.issue_ns : s.start_ns;
	lat = now - (queued ? s.start_ns : issue);
	if ((s64)lat < 0)
		lat = 0;
	if (flags_mask || (mode & (MODE_EVENTS | MODE_TOP)))
		cmd_flags = RQ_READ(btf, rq, cmd_flags);

	if (mode & MODE_HIST)
		count_hist(dev, cmd_flags, lat);
	if (mode & MODE_TOP)
		count_top(&s, dev, cmd_flags, lat);
	if ((mode & MODE_EVENTS) && lat >= min_ns) {
		struct bio_event e = {};

		e.boot_ns = now;	/* the clock of the times: done - service is the issue */
		e.queue_ns = issue - s.start_ns;
		e.service_ns = now - issue;
		e.sector = s.sector;
		e.cgroup = s.cgroup;
		e.pid = s.pid;
		e.dev = dev;
		e.bytes = s.bytes;
		e.cmd_flags = cmd_flags;
		__builtin_memcpy(e.comm, s.comm, sizeof(e.comm));
		submit(&e, sizeof(e));
	}
	return 0;
}

/* The request among the arguments of block_rq_{insert,issue,requeue,merge}:
 * they lost their request_queue argument in 5.11. */
static __always_inline struct request *rq_of(u64 *ctx)
{
	return (void *)(rq_arg ? ctx[1] : ctx[0]);
}

static __always_inline int io_start(u64 *ctx, bool btf) { return on_start((void *)ctx[0], false, btf); }
static __always_inline int rq_insert(u64 *ctx, bool btf) { return on_start(rq_of(ctx), true, btf); }
static __always_inline int rq_issue(u64 *ctx, bool btf) { return on_issue(rq_of(ctx), btf); }
static __always_inline int rq_requeue(u64 *ctx, bool btf) { return on_requeue(rq_of(ctx), btf); }
static __always_inline int rq_merge(u64 *ctx, bool btf) { return on_merge(rq_of(ctx)); }
static __always_inline int io_done(u64 *ctx, bool btf) { return on_done((void *)ctx[0], btf); }

/* block_rq_complete(rq, error, nr_bytes) runs for each part of a request
 * that completes; the request ends when the last of its bytes does. */
static __always_inline int rq_complete(u64 *ctx, bool btf)
{
	struct request *rq = (void *)ctx[0];

	if ((unsigned int)ctx[2] < RQ_READ(btf, rq, __data_len))
		return 0;
	return on_done(rq, btf);
}

/* BLOCK_TP declares fn on the block tracepoint tp twice: as a BTF
 * tracepoint (tp_btf) and as a raw tracepoint; the loader keeps one. */
#define BLOCK_TP(tp, fn)							\
	SEC("tp_btf/" #tp) int tp##_btf(u64 *ctx) { return fn(ctx, true); }	\
	SEC("raw_tracepoint/" #tp) int tp##_raw(u64 *ctx) { return fn(ctx, false); }

BLOCK_TP(block_io_start, io_start)
BLOCK_TP(block_io_done, io_done)
BLOCK_TP(block_rq_insert, rq_insert)
BLOCK_TP(block_rq_issue, rq_issue)
BLOCK_TP(block_rq_complete, rq_complete)
BLOCK_TP(block_rq_requeue, rq_requeue)
BLOCK_TP(block_rq_merge, rq_merge)
