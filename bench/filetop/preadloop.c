// preadloop: N preads of 4 KiB from a file that is in the page cache,
// timed; prints the thread's CPU ns per pread. CPU time (which includes the
// BPF programs run in the syscalls) rather than wall time, so that other
// tasks on a busy machine do not count. Usage: preadloop N PATH (>= 1 MiB).
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static char buf[4096];
	if (argc != 3) {
		fprintf(stderr, "usage: preadloop N PATH\n");
		return 2;
	}
	long n = atol(argv[1]);
	int fd = open(argv[2], O_RDONLY);
	struct timespec a, b;

	if (fd < 0) {
		perror("open");
		return 1;
	}
	for (int i = 0; i < 256; i++)	/* into the page cache */
		if (pread(fd, buf, sizeof(buf), (off_t)i * 4096) != sizeof(buf)) {
			perror("pread");
			return 1;
		}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
	for (long i = 0; i < n; i++) {
		if (pread(fd, buf, sizeof(buf), (off_t)(i & 255) * 4096) != sizeof(buf)) {
			perror("pread");
			return 1;
		}
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.1f\n", ns / n);
	return 0;
}
