// udpflood N: sends N 16-byte UDP datagrams to 127.0.0.1 port 9 (closed:
// each is dropped by the stack, NO_SOCKET) and prints the ns per datagram.
// On loopback the receive path, drop included, runs in the sender's
// softirq, so the time per sendto includes it.
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 1000000;
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(9) };
	char buf[16] = "bpfkit bench";
	struct timespec a, b;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0 || inet_pton(AF_INET, "127.0.0.1", &to.sin_addr) != 1) {
		perror("socket");
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		if (sendto(fd, buf, sizeof(buf), 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
			perror("sendto");
			return 1;
		}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.1f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
