/* SPDX-License-Identifier: GPL-2.0 */
/*
 * path.h: absolute paths of open files, built in the kernel by walking
 * dentries up to the root and crossing mount points, since bpf_d_path is not
 * allowed from tracepoints. Also: a task's file by descriptor, and its cwd.
 */
#ifndef BPFKIT_PATH_H
#define BPFKIT_PATH_H

#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

#define PATH_MAX 4096
#define PATH_MASK (PATH_MAX - 1)
#define NAME_MASK 255		/* a component is at most NAME_MAX (255) bytes */
#define PATH_DEPTH 256		/* components walked at most; deeper is truncated */

/* Room a caller leaves after a path's start: PATH_MAX plus one component. */
#define PATH_ROOM (PATH_MAX + NAME_MASK + 2)

struct path_walk {
	struct dentry *d[PATH_DEPTH];
	u32 n;
	u32 off;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct path_walk);
} path_walks SEC(".maps");

/* task_file returns the struct file behind fd in the current task, or NULL. */
static __always_inline struct file *task_file(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *f = NULL;

	if (fd < 0 || !fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	return f;
}

/* dir_path returns the path of dirfd in the current task, or its cwd for
 * AT_FDCWD, or NULL. The result points into kernel memory. */
static __always_inline struct path *dir_path(int dirfd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	if (dirfd == AT_FDCWD)
		return &BPF_CORE_READ(task, fs)->pwd;
	struct file *f = task_file(dirfd);
	if (!f)
		return NULL;
	return &f->f_path;
}

/*
 * path_write writes the absolute path of p (a kernel pointer) to buf, which
 * must have PATH_ROOM bytes, without a trailing NUL. Returns the length; sets
 * *truncated when the path is longer than PATH_MAX-1 or deeper than
 * PATH_DEPTH, in which case the leading components are the ones kept.
 */
static __always_inline u32 path_write(struct path *p, char *buf, bool *truncated)
{
	u32 zero = 0, n = 0, off = 0;
	struct path_walk *w = bpf_map_lookup_elem(&path_walks, &zero);
	struct dentry *d, *parent, *mnt_root;
	struct vfsmount *vfsmnt;
	struct mount *mnt, *mnt_parent;

	if (!w)
		return 0;
	d = BPF_CORE_READ(p, dentry);
	vfsmnt = BPF_CORE_READ(p, mnt);
	mnt = (void *)vfsmnt - bpf_core_field_offset(struct mount, mnt);

	/* Leaf to root: remember the dentries, crossing mounts upwards. A
	 * crossing takes a slot too (NULL), so the slot index is the loop
	 * counter and the verifier sees one state per iteration. */
	for (n = 0; n < PATH_DEPTH; n++) {
		mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
		parent = BPF_CORE_READ(d, d_parent);
		if (d == mnt_root || d == parent) {
			mnt_parent = BPF_CORE_READ(mnt, mnt_parent);
			if (d != mnt_root || mnt == mnt_parent)
				break;	/* the root of everything */
			d = BPF_CORE_READ(mnt, mnt_mountpoint);
			mnt = mnt_parent;
			vfsmnt = (void *)mnt + bpf_core_field_offset(struct mount, mnt);
			w->d[n] = NULL;
			continue;
		}
		w->d[n] = d;
		d = parent;
	}
	if (n == PATH_DEPTH)
		*truncated = true;
	/* Through memory, so the verifier checks the next loop once, not
	 * once for every n the first loop can end with. */
	w->n = n;
	n = *(volatile u32 *)&w->n;

	/* Root to leaf: "/" name for each component. The offset, too, goes
	 * through memory: otherwise the verifier follows every combination
	 * of component lengths separately. */
	w->off = 0;
	for (int i = 0; i < PATH_DEPTH; i++) {
		if (i >= n)
			break;
		off = *(volatile u32 *)&w->off;
		d = w->d[(n - 1 - i) & (PATH_DEPTH - 1)];
		if (!d)
			continue;
		const unsigned char *name = BPF_CORE_READ(d, d_name.name);
		u32 len = BPF_CORE_READ(d, d_name.len) & NAME_MASK;

		if (off + 1 + len > PATH_MAX - 1) {
			*truncated = true;
			break;
		}
		buf[off & PATH_MASK] = '/';
		bpf_probe_read_kernel(buf + (off & PATH_MASK) + 1, len, name);
		off += 1 + len;
		w->off = off;
	}
	off = *(volatile u32 *)&w->off;
	if (off == 0 && !*truncated) {
		buf[0] = '/';
		off = 1;
	}
	return off;
}

#endif
