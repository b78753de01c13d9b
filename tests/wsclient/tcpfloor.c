/*
 * tcpfloor: what one small message costs the kernel on this machine's
 * loopback TCP, without libwebsockets, poll() over many sockets or any
 * websocket framing: the floor under etl-wsd's CPU per send (and under the
 * load generator's CPU per received message) in bench/wsd_bench.py.
 * Opens N connections to itself, forks a receiver that drains them with
 * epoll, then sends one BYTES-byte message to every connection per round,
 * a round every GAP_US (the 100 msg/s of the latency benchmark: 10,000),
 * with TCP_NODELAY as lws sets it. Prints one JSON line with the sender's
 * and the receiver's CPU microseconds per message.
 *
 *   tcpfloor [-c CONNS] [-r ROUNDS] [-g GAP_US] [-b BYTES]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TCPFLOOR_MAX_BYTES 65536

static double
cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* Child: drains every socket until want bytes came or 10 s of silence;
 * writes its CPU seconds and the bytes it got to fd out. Exits. */
static void __attribute__((noreturn)) receive(const int *cs, int n, long long want, int out)
{
	struct epoll_event ev, evs[1024];
	static char buf[65536];
	long long got = 0;
	double c0, res[2];
	int ep, i, k;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1) {
		perror("tcpfloor: epoll_create1");
		_exit(1);
	}
	for (i = 0; i < n; i++) {
		ev.events = EPOLLIN;
		ev.data.fd = cs[i];
		if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i], &ev) != 0) {
			perror("tcpfloor: epoll_ctl");
			_exit(1);
		}
	}
	c0 = cpu_s();
	while (got < want) {
		k = epoll_wait(ep, evs, 1024, 10000);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		for (i = 0; i < k; i++) {
			ssize_t r = recv(evs[i].data.fd, buf, sizeof(buf), 0);

			if (r > 0)
				got += r;
		}
	}
	res[0] = cpu_s() - c0;
	res[1] = (double)got;
	if (write(out, res, sizeof(res)) != (ssize_t)sizeof(res))
		_exit(1);
	_exit(0);
}

static void __attribute__((noreturn)) usage(void)
{
	fprintf(stderr, "usage: tcpfloor [-c CONNS] [-r ROUNDS] [-g GAP_US] [-b BYTES]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct timespec t;
	static char msg[TCPFLOOR_MAX_BYTES];
	int n = 1000, rounds = 500, gap_us = 10000, bytes = 200;
	int ls = -1, one = 1, pfd[2] = { -1, -1 }, *cs = NULL, *ss = NULL;
	int ch, i, r, status, rc = 1, opened = 0;
	double c0, send_s, res[2];
	pid_t pid;

	while ((ch = getopt(argc, argv, "c:r:g:b:")) != -1) {
		switch (ch) {
		case 'c':
			n = atoi(optarg);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'g':
			gap_us = atoi(optarg);
			break;
		case 'b':
			bytes = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (n <= 0 || rounds <= 0 || gap_us < 0 || bytes <= 0 || bytes > TCPFLOOR_MAX_BYTES)
		usage();
	memset(msg, 'x', (size_t)bytes);
	cs = calloc((size_t)n, sizeof(*cs));
	ss = calloc((size_t)n, sizeof(*ss));
	if (cs == NULL || ss == NULL) {
		fprintf(stderr, "tcpfloor: out of memory\n");
		goto out;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(ls, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(ls, 4096) != 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) != 0) {
		perror("tcpfloor: listen");
		goto out;
	}
	for (opened = 0; opened < n; opened++) {
		cs[opened] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (cs[opened] == -1 ||
		    connect(cs[opened], (struct sockaddr *)&a, sizeof(a)) != 0 ||
		    (ss[opened] = accept4(ls, NULL, NULL, SOCK_CLOEXEC)) == -1 ||
		    setsockopt(ss[opened], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
			perror("tcpfloor: connect");
			goto out;
		}
	}
	if (pipe2(pfd, O_CLOEXEC) != 0) {
		perror("tcpfloor: pipe2");
		goto out;
	}
	fflush(stdout);
	if ((pid = fork()) == -1) {
		perror("tcpfloor: fork");
		goto out;
	}
	if (pid == 0)
		receive(cs, n, (long long)n * rounds * bytes, pfd[1]);
	c0 = cpu_s();
	if (clock_gettime(CLOCK_MONOTONIC, &t) != 0)
		goto out;
	for (r = 0; r < rounds; r++) {
		for (i = 0; i < n; i++)
			if (send(ss[i], msg, (size_t)bytes, MSG_NOSIGNAL) != bytes) {
				perror("tcpfloor: send (short or failed)");
				goto out;
			}
		if (gap_us == 0)
			continue;
		t.tv_nsec += (long)gap_us * 1000;
		while (t.tv_nsec >= 1000000000L) {
			t.tv_nsec -= 1000000000L;
			t.tv_sec++;
		}
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
			;
	}
	send_s = cpu_s() - c0;
	if (read(pfd[0], res, sizeof(res)) != (ssize_t)sizeof(res) ||
	    waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "tcpfloor: the receiver failed\n");
		goto out;
	}
	printf("{\"conns\":%d,\"rounds\":%d,\"gap_us\":%d,\"bytes\":%d,\"received\":%.0f,"
	       "\"send_cpu_us\":%.3f,\"recv_cpu_us\":%.3f}\n",
	    n, rounds, gap_us, bytes, res[1] / bytes, send_s * 1e6 / ((double)n * rounds),
	    res[0] * 1e6 / (res[1] / bytes > 0 ? res[1] / bytes : 1));
	rc = 0;
out:
	for (i = 0; i < opened && cs != NULL; i++) {
		close(cs[i]);
		close(ss[i]);
	}
	if (ls != -1)
		close(ls);
	if (pfd[0] != -1)
		close(pfd[0]);
	if (pfd[1] != -1)
		close(pfd[1]);
	free(cs);
	free(ss);
	return rc;
}
