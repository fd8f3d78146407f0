/* SPDX-License-Identifier: GPL-2.0 */
/*
 * syscall_names.h: naming syscall numbers from the running kernel
 * (syscount, serve's syscall counts). Include after common.h.
 *
 * Names come from the running kernel, not a copied table, in one of two ways.
 *
 * The kernel's own table: the metadata each syscall's sys_enter_<name> trace
 * event points to (its name and number, set by ftrace at boot). User space
 * opens one perf event on a sys_enter_* event and runs syscall_table
 * (BPF_PROG_TEST_RUN, on the same thread) once to find that event among the
 * thread's own perf events, then once per node of the kernel's list of trace
 * events, reading each syscall's number and name. Nothing stays attached.
 *
 * Otherwise, the namers: user space puts a
 * copy of syscall_name on every syscalls:sys_enter_<name> tracepoint this
 * kernel has, each with its own event number patched into the placeholder
 * (a tracepoint program may not read its record's common_type), and each
 * files that number under the syscall number its record carries. Each number
 * is learnt at its first call, so every syscall counted has its name.
 *
 * The copy that files a number says so in the named ring, once: user space
 * then detaches it (in the background: a detach waits for the kernel), so
 * that later calls pay neither the program nor the trace event's record.
 * The map keeps the name.
 */
#ifndef BPFKIT_SYSCALL_NAMES_H
#define BPFKIT_SYSCALL_NAMES_H

#include "syscount.h"

/* The placeholder's value, for user space to find (never read here). */
const volatile u32 event_placeholder = SYSCOUNT_EVENT_PLACEHOLDER;

/* syscall number -> trace event id of sys_enter_<name>, as learnt. A hash:
 * of two CPUs filing one number at once, only one insert succeeds, so each
 * number is announced once. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SYSCOUNT_MAX_NR);
	__type(key, u32);
	__type(value, u32);
} names SEC(".maps");

/* The event ids filed, each once, for user space to detach their copy.
 * Sized by user space to hold one record per copy (16 bytes each), so
 * that it never fills even unread. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} named SEC(".maps");

/* The record of a syscalls:sys_enter_<name> tracepoint up to the number:
 * an int, and nothing may be read past it (sys_enter_sync's record ends
 * there; attaching a program that reads further fails with EACCES). */
struct sys_enter_named_args {
	struct trace_entry ent;
	s32 syscall_nr;
};

/* Copied by user space onto every syscalls:sys_enter_* tracepoint, with
 * SYSCOUNT_EVENT_PLACEHOLDER replaced by that tracepoint's event id. */
SEC("tracepoint/syscalls/sys_enter_getpid")
int syscall_name(struct sys_enter_named_args *ctx)
{
	u32 nr = ctx->syscall_nr, id;

	asm volatile("%0 = %1" : "=r"(id) : "i"(SYSCOUNT_EVENT_PLACEHOLDER));
	/* Once filed, this copy runs until user space detaches it: a
	 * lookup per call (no bucket lock, as an insert would take). */
	if (nr >= SYSCOUNT_MAX_NR || bpf_map_lookup_elem(&names, &nr))
		return 0;
	if (!bpf_map_update_elem(&names, &nr, &id, BPF_NOEXIST))
		bpf_ringbuf_output(&named, &id, sizeof(id), 0);
	return 0;
}

/* What syscall_table read last. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct syscount_meta);
} syscall_entry SEC(".maps");

/* How many of the thread's own perf events syscall_table looks through. */
#define SYSCOUNT_OWNED_MAX 64

/* The syscall metadata of call if it is a syscalls:sys_enter_* event (its
 * metadata points back at it: the sys_exit_* event and every other kind of
 * data does not), else NULL. */
static __always_inline struct syscall_metadata *enter_meta(struct trace_event_call *call)
{
	struct syscall_metadata *meta = BPF_CORE_READ(call, data);

	if (!meta || BPF_CORE_READ(meta, enter_event) != call)
		return NULL;
	return meta;
}

/* Run by user space, never attached. With ctx[0] zero: finds the first perf
 * event of a sys_enter_* event among the current thread's own (a syscall
 * event is always on the kernel's list; a uprobe's made by perf is not), and
 * files its list node in next. Otherwise ctx[0] is a node of the kernel's
 * list of trace events: files the next node and, if the node's event is a
 * sys_enter_* one, its syscall's number and name. Returns 0, or 1 when it
 * found or read nothing. */
SEC("raw_tp")
int syscall_table(u64 *ctx)
{
	struct list_head *node = (void *)ctx[0];
	struct trace_event_call *call;
	struct syscall_metadata *meta;
	u32 zero = 0;
	struct syscount_meta *out = bpf_map_lookup_elem(&syscall_entry, &zero);

	if (!out)
		return 1;
	out->next = 0;
	out->nr = -1;
	out->name[0] = 0;
	if (!node) {
		struct task_struct *task = (void *)bpf_get_current_task();
		struct list_head *head = (void *)task + bpf_core_field_offset(struct task_struct, perf_event_list);
		struct list_head *pos = BPF_CORE_READ(task, perf_event_list.next);

		for (int i = 0; i < SYSCOUNT_OWNED_MAX && pos && pos != head; i++) {
			struct perf_event *event = (void *)pos - bpf_core_field_offset(struct perf_event, owner_entry);

			call = BPF_CORE_READ(event, tp_event);
			if (call && enter_meta(call)) {
				out->next = (u64)call + bpf_core_field_offset(struct trace_event_call, list);
				return 0;
			}
			pos = BPF_CORE_READ(pos, next);
		}
		return 1;
	}
	out->next = (u64)BPF_CORE_READ(node, next);
	if (!out->next)
		return 1;
	call = (void *)node - bpf_core_field_offset(struct trace_event_call, list);
	meta = enter_meta(call);
	if (!meta)
		return 0;
	out->nr = BPF_CORE_READ(meta, syscall_nr);
	if (bpf_probe_read_kernel_str(out->name, sizeof(out->name), BPF_CORE_READ(meta, name)) < 0)
		return 1;
	return 0;
}

#endif
