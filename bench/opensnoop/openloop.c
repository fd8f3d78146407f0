// openloop: N openat+close of one path, timed; prints ns per iteration.
// With ERRNO (a number), every openat must fail with that errno instead
// (a path that does not exist and 2, ENOENT: N failed opens, no close).
// Usage: openloop N PATH [ERRNO]
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: openloop N PATH [ERRNO]\n");
		return 2;
	}
	long n = atol(argv[1]);
	int want = argc == 4 ? atoi(argv[3]) : 0;
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		int fd = openat(AT_FDCWD, argv[2], O_RDONLY);
		if (want) {
			if (fd >= 0 || errno != want) {
				fprintf(stderr, "openat: want errno %d, got fd %d errno %d\n", want, fd, errno);
				return 1;
			}
			continue;
		}
		if (fd < 0) {
			perror("openat");
			return 1;
		}
		close(fd);
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec);
	printf("%.1f\n", ns / n);
	return 0;
}
