// SPDX-License-Identifier: GPL-2.0
/*
 * filetop: reads and writes per thread and file, added up in the kernel from
 * the syscalls tracepoints of read, write, pread64, pwrite64, readv, writev,
 * preadv, pwritev, preadv2 and pwritev2. The fd is remembered at entry; at
 * exit the file is looked up in the task's fd table and the call is added to
 * a `stats` map. User space takes the counts (and `paths`) every interval.
 *
 * A call counts as one read or write when it returns >= 0 (0 at end of file
 * counts too); failed calls are not counted. The path is resolved (in a tail
 * call) only when a key is first inserted in an interval and the file's path
 * is not in `paths`.
 */
#include "kernel.h"
#include "common.h"
#include "path.h"
#include "fdcall.h"
#include "filetop.h"

_Static_assert(sizeof(((struct file_path *)0)->path) == PATH_ROOM, "path room");

const volatile bool all_files = false;	/* also sockets, pipes and others */
const volatile bool per_process = false;	/* one key per process, tid 0 */
BTF_ENUM(file_type);
BTF_ENUM(file_path_flags);

/* The counters, double-buffered: the programs add to stats0 or stats1, as
 * `side` says, while user space drains the other one, so that no call is
 * added to an element being deleted. Inserts that fail (map full) are
 * counted in common.h's `lost`. max_entries is set by user space. */
#define STATS_MAP(name)					\
struct {						\
	__uint(type, BPF_MAP_TYPE_HASH);		\
	__uint(max_entries, 10240);			\
	__type(key, struct file_key);			\
	__type(value, struct file_stat);		\
} name SEC(".maps")

STATS_MAP(stats0);
STATS_MAP(stats1);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u32);
} side SEC(".maps");

/* Paths of the files seen since user space last read this map. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct file_id);
	__type(value, struct file_path);
} paths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct file_path);
} path_scratch SEC(".maps");

static __always_inline u8 type_of(u16 mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return FILE_REGULAR;
	case S_IFSOCK:
		return FILE_SOCKET;
	case S_IFIFO:
		return FILE_PIPE;
	}
	return FILE_OTHER;
}

/*
 * resolve_path resolves the path of the file the current thread's call (its
 * fd in inflight) used, unless it is known. It runs as a tail call, so
 * the dentry walk is verified once, not once per hook. Sockets and pipes
 * have no path worth walking: user space names them by inode.
 */
SEC("tracepoint/tail_call")
int resolve_path(void *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid(), zero = 0;
	struct call *c = bpf_map_lookup_elem(&inflight, &tid);
	struct file_id id = {};
	struct file_path *p;
	struct inode *inode;
	struct file *f;
	bool truncated = false;
	u8 type;

	if (!c)
		return 0;
	f = task_file(c->fd);
	if (!f)
		return 0;
	inode = BPF_CORE_READ(f, f_inode);
	id.ino = BPF_CORE_READ(inode, i_ino);
	id.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	if (bpf_map_lookup_elem(&paths, &id))
		return 0;
	p = bpf_map_lookup_elem(&path_scratch, &zero);
	if (!p)
		return 0;
	type = type_of(BPF_CORE_READ(inode, i_mode));
	p->len = 0;
	p->flags = 0;
	if (type == FILE_REGULAR || type == FILE_OTHER)
		p->len = path_write(&f->f_path, p->path, &truncated) & PATH_MASK;
	if (truncated)
		p->flags |= FILE_PATH_TRUNCATED;
	if (type == FILE_REGULAR && BPF_CORE_READ(inode, i_nlink) == 0)
		p->flags |= FILE_DELETED;
	bpf_map_update_elem(&paths, &id, p, BPF_NOEXIST);
	return 0;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__array(values, int(void *));
} tail_calls SEC(".maps") = {
	.values = { [0] = (void *)&resolve_path },
};

static __always_inline void add(struct file_stat *s, long ret, bool write)
{
	if (write) {
		__sync_fetch_and_add(&s->writes, 1);
		__sync_fetch_and_add(&s->write_bytes, ret);
	} else {
		__sync_fetch_and_add(&s->reads, 1);
		__sync_fetch_and_add(&s->read_bytes, ret);
	}
}

/* count adds a call to stats, a stats0 or stats1. */
static __always_inline int count(void *ctx, void *stats, struct file_key *k,
				 u8 type, long ret, bool write)
{
	struct file_stat *s = bpf_map_lookup_elem(stats, k);

	if (!s) {
		struct file_stat zero = { .type = type };

		bpf_get_current_comm(zero.comm, sizeof(zero.comm));
		s = lookup_or_insert(stats, k, &zero);
		if (!s)
			return 0;	/* map full: counted lost */
		add(s, ret, write);
		/* A new key (this CPU's or, at the same time, another's):
		 * resolve the path. */
		bpf_tail_call(ctx, &tail_calls, 0);
		return 0;
	}
	add(s, ret, write);
	return 0;
}

static __always_inline int leave(void *ctx, long ret, bool write)
{
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = (u32)id, zero = 0;
	struct call *c = bpf_map_lookup_elem(&inflight, &tid);
	struct file_key k = {};
	struct inode *inode;
	struct file *f;
	u32 *sd;
	int fd;
	u8 type;

	if (!c || !c->active)
		return 0;
	c->active = 0;
	fd = c->fd;
	if (ret < 0)
		return 0;
	f = task_file(fd);
	if (!f)
		return 0;
	inode = BPF_CORE_READ(f, f_inode);
	type = type_of(BPF_CORE_READ(inode, i_mode));
	if (type != FILE_REGULAR && !all_files)
		return 0;

	k.file.ino = BPF_CORE_READ(inode, i_ino);
	k.file.dev = BPF_CORE_READ(inode, i_sb, s_dev);
	k.pid = id >> 32;
	k.tid = per_process ? 0 : tid;
	sd = bpf_map_lookup_elem(&side, &zero);
	if (sd && *sd)
		return count(ctx, &stats1, &k, type, ret, write);
	return count(ctx, &stats0, &k, type, ret, write);
}

/*
 * One program for every entry and one for each direction's exits: user
 * space attaches them to the other calls' tracepoints too (AlsoAttach in
 * pkg/trace/filetop), so each is verified once. Every call here has the fd
 * as its first argument.
 */
SEC("tracepoint/syscalls/sys_enter_read")
int enter_fd_call(struct syscall_enter_ctx *ctx)
{
	return enter(ctx->args[0]);
}

SEC("tracepoint/syscalls/sys_exit_read")
int exit_read_call(struct syscall_exit_ctx *ctx)
{
	return leave(ctx, ctx->ret, false);
}

SEC("tracepoint/syscalls/sys_exit_write")
int exit_write_call(struct syscall_exit_ctx *ctx)
{
	return leave(ctx, ctx->ret, true);
}
