/* SPDX-License-Identifier: GPL-2.0 */
/*
 * common.h: what every bpfkit tracer shares — the event ring buffer, the
 * per-CPU counter of events the ring had no room for, and batched wake-ups.
 *
 * Waking the reader for every record costs more than producing it, so records
 * are submitted with BPF_RB_NO_WAKEUP and the reader is woken only when the
 * unread data crosses wakeup_bytes; the reader's own flush timer picks up a
 * lone record within a few milliseconds.
 */
#ifndef BPFKIT_COMMON_H
#define BPFKIT_COMMON_H

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

/* Sized by the loader (--ring-size) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} events SEC(".maps");

/* Records that did not fit, per CPU; summed and shown by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} lost SEC(".maps");

/* Wake the reader when this much unread data is waiting. Set by the loader. */
const volatile u64 wakeup_bytes = 64 << 10;

/* BTF_ENUM(name) puts enum name into the object's BTF, so that bpf2go -type
 * emits its values as Go constants: an enum used only for its values, or
 * stored in a field narrower than an enum, is otherwise left out. It is a
 * constant nothing reads. */
#define BTF_ENUM(name) const volatile enum name unused_enum_##name = 0

static __always_inline void count_lost(void)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&lost, &zero);

	if (n)
		(*n)++;
}

/* lookup_or_insert returns map's value under key, inserting *init first if
 * there is none; NULL, counted as lost, when the map has no room for it.
 * An insert that fails because another CPU inserted the key meanwhile finds
 * that CPU's entry. The insert's error is not compared with -EEXIST: before
 * 6.4 (d7ba4cc900bf "bpf: return long from bpf_map_ops funcs") the map
 * operations, which the verifier makes the program call directly, returned
 * int, so the program saw -EEXIST zero-extended (0xffffffef, seen on 6.1;
 * bcc #4571) and counted a race as a full map.
 * Whether the key is there after the insert is what tells them apart. */
static __always_inline void *lookup_or_insert(void *map, const void *key, const void *init)
{
	void *v = bpf_map_lookup_elem(map, key);

	if (v)
		return v;
	bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	v = bpf_map_lookup_elem(map, key);
	if (!v)
		count_lost();
	return v;
}

/* submit copies size bytes of data into the ring buffer. */
static __always_inline void submit(void *data, u64 size)
{
	u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	u64 flags = BPF_RB_NO_WAKEUP;

	if (avail < wakeup_bytes && avail + size >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, data, size, flags))
		count_lost();
}

/* Task filters every tracer offers, set before load; zero means "any". */
const volatile u32 filter_pid = 0;	/* thread group id */
const volatile u32 filter_tid = 0;
const volatile bool filter_uid_on = false;
const volatile u32 filter_uid = 0;
const volatile u64 filter_cgroup = 0;	/* cgroup v2 id */
const volatile char filter_comm[16] = {};

/* comm_is_filter reports whether a task name equals filter_comm. */
static __always_inline bool comm_is_filter(const char comm[16])
{
	for (int i = 0; i < 16; i++) {
		if (comm[i] != filter_comm[i])
			return false;
		if (!comm[i])
			break;
	}
	return true;
}

static __always_inline bool comm_matches(void)
{
	char comm[16];

	if (!filter_comm[0])
		return true;
	bpf_get_current_comm(comm, sizeof(comm));
	return comm_is_filter(comm);
}

/* task_wanted applies the task filters to the current task. */
static __always_inline bool task_wanted(u64 pid_tgid)
{
	u32 tgid = pid_tgid >> 32, tid = (u32)pid_tgid;

	if (filter_pid && tgid != filter_pid)
		return false;
	if (filter_tid && tid != filter_tid)
		return false;
	if (filter_uid_on && (u32)bpf_get_current_uid_gid() != filter_uid)
		return false;
	if (filter_cgroup && bpf_get_current_cgroup_id() != filter_cgroup)
		return false;
	return comm_matches();
}

#endif
