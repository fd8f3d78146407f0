// SPDX-License-Identifier: GPL-2.0
/*
 * workload: known numbers of calls of known sizes to every function of the
 * allocation API, for bpfkit malloc's tests (pkg/trace/malloc/workload_test.go
 * holds the same numbers). No stdio: nothing but the pattern allocates.
 *
 *   workload [wait] [hold] [none] [stacks] [thread] [fork] [exec PATH]
 *     wait   read one byte from stdin before the pattern (a tracer attaches)
 *     hold   read one byte from stdin after it, before exiting (stacks are
 *            symbolized while the process lives)
 *     none   skip the pattern (the start-up allocations alone)
 *     stacks after the pattern, 2048 mallocs of 48 bytes, each from a stack
 *            of its own (stacks_step)
 *     thread start a thread before wait; after the pattern it makes 5
 *            mallocs of 4444 bytes (and then sleeps until the exit)
 *     fork   after the pattern, fork a child that makes 7 mallocs of 333
 *            bytes and exits; wait for it
 *     exec   after that, fork a child that execs PATH with no arguments
 *            (the pattern of PATH, its stdout to /dev/null); wait for it
 * A child that fails exits 4; the workload then exits 5.
 *
 * jemalloc's own API (mallocx, rallocx, sdallocx, dallocx) is called when
 * the allocator loaded provides it (weak symbols the dynamic loader binds).
 * Built by `make testdata-malloc` (the static copy is committed) and by the
 * tests with clang-19: -O1 -fno-omit-frame-pointer -fno-builtin.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern void *mallocx(size_t size, int flags) __attribute__((weak));
extern void *rallocx(void *ptr, size_t size, int flags) __attribute__((weak));
extern void sdallocx(void *ptr, size_t size, int flags) __attribute__((weak));
extern void dallocx(void *ptr, int flags) __attribute__((weak));

#define NOINLINE __attribute__((noinline))

static void *blocks[64];
/* A compiler barrier: keeps every call and its result. */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

NOINLINE static void *wl_malloc(size_t n) { void *p = malloc(n); KEEP(p); return p; }
NOINLINE static void *wl_calloc(size_t n, size_t s) { void *p = calloc(n, s); KEEP(p); return p; }
NOINLINE static void *wl_realloc(void *o, size_t n) { void *p = realloc(o, n); KEEP(p); return p; }
NOINLINE static void *wl_reallocarray(void *o, size_t n, size_t s) { void *p = reallocarray(o, n, s); KEEP(p); return p; }
NOINLINE static void *wl_posix_memalign(size_t a, size_t n) { void *p = 0; if (posix_memalign(&p, a, n)) _exit(3); KEEP(p); return p; }
NOINLINE static void *wl_aligned_alloc(size_t a, size_t n) { void *p = aligned_alloc(a, n); KEEP(p); return p; }
NOINLINE static void *wl_memalign(size_t a, size_t n) { void *p = memalign(a, n); KEEP(p); return p; }
NOINLINE static void *wl_valloc(size_t n) { void *p = valloc(n); KEEP(p); return p; }
NOINLINE static void wl_free(void *p) { KEEP(p); free(p); }

NOINLINE static void pattern(void)
{
	void *m[16], *c[8], *pm[3], *v[2];
	int i;

	for (i = 0; i < 16; i++)		/* malloc: 16 x 1000 */
		m[i] = wl_malloc(1000);
	for (i = 0; i < 8; i++)			/* calloc: 8 x 4 x 250 */
		c[i] = wl_calloc(4, 250);
	for (i = 0; i < 4; i++)			/* realloc: 4 x 3000, of m[0..3] */
		m[i] = wl_realloc(m[i], 3000);
	for (i = 4; i < 6; i++)			/* reallocarray: 2 x 10 x 500, of m[4..5] */
		m[i] = wl_reallocarray(m[i], 10, 500);
	for (i = 0; i < 3; i++)			/* posix_memalign: 3 x 700 */
		pm[i] = wl_posix_memalign(64, 700);
	for (i = 0; i < 5; i++)			/* aligned_alloc: 5 x 1024 */
		blocks[i] = wl_aligned_alloc(128, 1024);
	for (i = 0; i < 6; i++)			/* memalign: 6 x 600 */
		blocks[5 + i] = wl_memalign(256, 600);
	for (i = 0; i < 2; i++)			/* valloc: 2 x 5000 */
		v[i] = wl_valloc(5000);
	/* free: 16 calls — the calloc blocks, the realloc'd ones, two of the
	 * posix_memalign ones and the valloc ones. Left: 10 malloc x 1000,
	 * 2 reallocarray x 5000, 1 posix_memalign x 700, 5 aligned_alloc x
	 * 1024, 6 memalign x 600: 24 blocks, 29420 bytes. */
	for (i = 0; i < 8; i++)
		wl_free(c[i]);
	for (i = 0; i < 4; i++)
		wl_free(m[i]);
	wl_free(pm[0]);
	wl_free(pm[1]);
	wl_free(v[0]);
	wl_free(v[1]);
	for (i = 0; i < 16; i++)
		blocks[16 + i] = m[i];
	blocks[32] = pm[2];

	/* jemalloc: 3 mallocx x 2000; one rallocx'd to 4000 (left), one
	 * sdallocx'd, one dallocx'd. */
	if (mallocx && rallocx && sdallocx && dallocx) {
		void *x[3];

		for (i = 0; i < 3; i++) {
			x[i] = mallocx(2000, 0);
			KEEP(x[i]);
		}
		blocks[33] = rallocx(x[0], 4000, 0);
		KEEP(blocks[33]);
		sdallocx(x[1], 2000, 0);
		dallocx(x[2], 0);
	}
}

/* stacks_step: call i of 2^STACKS_LEVELS goes down STACKS_LEVELS levels,
 * through stacks_a or stacks_b as bit `level` of i says, and mallocs
 * STACKS_BYTES at the bottom: as many stacks as calls, all different (far
 * more than a stack-trace map's hash keeps apart in 16384 buckets). */
#define STACKS_LEVELS 11
#define STACKS_BYTES 48
NOINLINE static void stacks_a(unsigned i, int level);
NOINLINE static void stacks_b(unsigned i, int level);

NOINLINE static void stacks_step(unsigned i, int level)
{
	if (level == STACKS_LEVELS) {
		wl_malloc(STACKS_BYTES);
		return;
	}
	if (i >> level & 1)
		stacks_b(i, level + 1);
	else
		stacks_a(i, level + 1);
	KEEP(i);	/* no tail call: each level keeps its frame */
}

NOINLINE static void stacks_a(unsigned i, int level) { stacks_step(i, level); KEEP(i); }
NOINLINE static void stacks_b(unsigned i, int level) { stacks_step(i, level); KEEP(i); }

static void wait_stdin(void)
{
	char b;

	if (read(0, &b, 1) < 0)
		_exit(2);
}

/* The thread: created before the tracer attaches (creating it
 * allocates), it makes its mallocs when the main thread writes to go[1],
 * says so on went[1], and stays (its exit would free). */
static int go[2], went[2];

static void *thread_main(void *arg)
{
	char b;
	int i;

	if (read(go[0], &b, 1) != 1)
		_exit(2);
	for (i = 0; i < 5; i++)
		wl_malloc(4444);
	if (write(went[1], "x", 1) != 1)
		_exit(2);
	for (;;)
		pause();
	return arg;
}

/* child_mallocs is the forked child's work. */
NOINLINE static void child_mallocs(void)
{
	int i;

	for (i = 0; i < 7; i++)
		wl_malloc(333);
}

/* reap waits for child pid; a child that failed fails the workload. */
static void reap(pid_t pid)
{
	int status;

	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		_exit(5);
}

int main(int argc, char **argv)
{
	int wait = 0, hold = 0, none = 0, stacks = 0, thread = 0, forks = 0;
	const char *exec_path = 0;
	pthread_t th;
	pid_t pid;
	char b;

	for (int i = 1; i < argc; i++) {
		wait |= !strcmp(argv[i], "wait");
		hold |= !strcmp(argv[i], "hold");
		none |= !strcmp(argv[i], "none");
		stacks |= !strcmp(argv[i], "stacks");
		thread |= !strcmp(argv[i], "thread");
		forks |= !strcmp(argv[i], "fork");
		if (!strcmp(argv[i], "exec") && i + 1 < argc)
			exec_path = argv[++i];
	}
	if (thread && (pipe(go) || pipe(went) || pthread_create(&th, 0, thread_main, 0)))
		_exit(2);
	if (wait)
		wait_stdin();
	if (!none)
		pattern();
	for (unsigned i = 0; stacks && i < 1U << STACKS_LEVELS; i++)
		stacks_step(i, 0);
	if (thread && (write(go[1], "x", 1) != 1 || read(went[0], &b, 1) != 1))
		_exit(2);
	if (forks) {
		pid = fork();
		if (!pid) {
			child_mallocs();
			_exit(0);
		}
		reap(pid);
	}
	if (exec_path) {
		pid = fork();
		if (!pid) {
			int null = open("/dev/null", O_WRONLY);

			if (null < 0 || dup2(null, 1) < 0)
				_exit(4);
			execl(exec_path, exec_path, (char *)0);
			_exit(4);
		}
		reap(pid);
	}
	if (write(1, "done\n", 5) != 5)
		_exit(2);
	if (hold)
		wait_stdin();
	_exit(0);	/* no exit handlers: they may free */
}
