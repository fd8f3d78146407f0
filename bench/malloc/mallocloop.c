// mallocloop: N malloc(64)+free pairs in a tight loop, timed; prints ns per
// pair. With "wait" it first reads one byte from stdin (a tracer attaches
// meanwhile), so only the loop is timed and traced alike for every tracer.
// Usage: mallocloop N [wait]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A compiler barrier: keeps every call and its result (-fno-builtin too). */
#define KEEP(p) __asm__ volatile("" : : "r"(p) : "memory")

int main(int argc, char **argv)
{
	if (argc < 2 || argc > 3 || (argc == 3 && strcmp(argv[2], "wait"))) {
		fprintf(stderr, "usage: mallocloop N [wait]\n");
		return 2;
	}
	long n = atol(argv[1]);
	struct timespec a, b;
	char c;

	if (argc == 3 && read(0, &c, 1) != 1) {
		fprintf(stderr, "mallocloop: stdin closed before the go byte\n");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		void *p = malloc(64);
		KEEP(p);
		free(p);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.1f\n", ns / n);
	return 0;
}
