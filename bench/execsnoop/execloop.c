// execloop N PROG: fork+exec PROG N times, one after the other, each with a
// unique argument ("bench-<run>-<i>"), waiting for each; prints the mean
// nanoseconds per fork+exec+wait on stdout, then the mean CPU nanoseconds
// (user+system, of the loop and its children: this includes what BPF
// programs run in the exec path) per exec, which drifts less than wall time
// on a busy machine.
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: execloop N PROG TAG\n");
		return 2;
	}
	long n = atol(argv[1]);
	char arg[64];
	struct timespec a, b;

	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		snprintf(arg, sizeof(arg), "bench-%s-%ld", argv[3], i);
		pid_t pid = fork();
		if (pid < 0) {
			perror("fork");
			return 1;
		}
		if (pid == 0) {
			char *args[] = {argv[2], arg, NULL};
			execv(argv[2], args);
			_exit(127);
		}
		int status;
		if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "child %ld failed\n", i);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	struct rusage self, kids;
	getrusage(RUSAGE_SELF, &self);
	getrusage(RUSAGE_CHILDREN, &kids);
	long cpu_us = self.ru_utime.tv_sec * 1000000L + self.ru_utime.tv_usec +
		      self.ru_stime.tv_sec * 1000000L + self.ru_stime.tv_usec +
		      kids.ru_utime.tv_sec * 1000000L + kids.ru_utime.tv_usec +
		      kids.ru_stime.tv_sec * 1000000L + kids.ru_stime.tv_usec;
	printf("%ld %ld\n", ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec)) / n,
	       cpu_us * 1000 / n);
	return 0;
}
