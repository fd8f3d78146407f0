/* SPDX-License-Identifier: GPL-2.0 */
/*
 * syscall_names.h: naming syscall numbers from the running kernel
 * (syscount, serve's syscall counts). Include after common.h.
 *
 * Names come from the running kernel, not a copied table: user space puts a
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

#endif
