/*
 * linkfloor: what the kernel costs to carry a drain's bytes over loopback
 * TCP (tests/bench/README.md, "The floors of a drain").
 *
 * Moves --count records of --size bytes, each framed as on the link (a
 * 4-byte length, then the bytes: common/frame.h), from a writer thread to a
 * reader thread over --conns TCP connections on 127.0.0.1, and nothing
 * else: no encoding, no queue, no copy in user space. The writer sends
 * --write-bytes at a time to each connection in turn; the reader reads
 * whatever epoll says is ready, as much as it can at a time.
 *
 * With one connection and 256 KiB writes it is the edge -> router link as
 * the busiest link moves a backlog (the edge's chan writes up to 256 KiB,
 * the router's loopchan empties the socket). With 1,000 connections and 64
 * KiB writes it is the WebSocket leg as it would cost with every client's
 * records batched as deep as the router's writes go (WS_WRITE_BATCH_BYTES),
 * the least any router pays to put the bytes on its clients' sockets and
 * any client to read them. Both are floors: the least any design that puts
 * the edge and the router in two processes pays on top of the Kafka floor.
 *
 * Prints one JSON line: records, bytes, seconds, CPU seconds of the process
 * (both threads: getrusage) and CPU microseconds per record.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct {
	size_t size, count, write_bytes, read_bytes, conns;
} O = { 4096, 200000, 256 * 1024, 256 * 1024, 1 };

static int *wfds, *rfds;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *what)
{
	fprintf(stderr, "linkfloor: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* The writer: a buffer of whole frames, sent again and again (the bytes are
 * made once: making them is not the hop's cost), write_bytes to each
 * connection in turn, count / conns records each (the first ones take the
 * rest). */
static void *writer(void *arg)
{
	(void)arg;
	size_t frame = 4 + O.size;
	size_t per = O.write_bytes / frame ? O.write_bytes / frame : 1;
	unsigned char *buf = calloc(per, frame);
	if (!buf)
		die("calloc");
	for (size_t i = 0; i < per; i++) {
		uint32_t be = htonl((uint32_t)O.size);
		memcpy(buf + i * frame, &be, 4);
		memset(buf + i * frame + 4, 'a' + (int)(i % 26), O.size);
	}
	size_t *left = calloc(O.conns, sizeof *left);
	if (!left)
		die("calloc");
	for (size_t k = 0; k < O.conns; k++)
		left[k] = O.count / O.conns + (k < O.count % O.conns);
	for (size_t busy = O.conns; busy;) {
		busy = 0;
		for (size_t k = 0; k < O.conns; k++) {
			if (!left[k])
				continue;
			size_t n = left[k] < per ? left[k] : per;
			size_t len = n * frame, off = 0;
			while (off < len) {
				ssize_t w = send(wfds[k], buf + off, len - off, 0);
				if (w < 0 && errno == EINTR)
					continue;
				if (w < 0)
					die("send");
				off += (size_t)w;
			}
			left[k] -= n;
			busy += left[k] > 0;
		}
	}
	for (size_t k = 0; k < O.conns; k++)
		shutdown(wfds[k], SHUT_WR);
	free(left);
	free(buf);
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: linkfloor [--size B] [--count N] [--write-bytes B] "
			"[--read-bytes B] [--conns N]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "size", required_argument, 0, 's' },
					      { "count", required_argument, 0, 'n' },
					      { "write-bytes", required_argument, 0, 'w' },
					      { "read-bytes", required_argument, 0, 'r' },
					      { "conns", required_argument, 0, 'c' },
					      { 0, 0, 0, 0 } };
	int ch;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		size_t v = (size_t)strtoull(optarg, NULL, 10);
		switch (ch) {
		case 's':
			O.size = v;
			break;
		case 'n':
			O.count = v;
			break;
		case 'w':
			O.write_bytes = v;
			break;
		case 'r':
			O.read_bytes = v;
			break;
		case 'c':
			O.conns = v;
			break;
		default:
			return usage();
		}
	}
	if (optind != argc || !O.size || !O.count || !O.write_bytes || !O.read_bytes || !O.conns ||
	    O.conns > O.count)
		return usage();

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 4096) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	int ep = epoll_create1(0);
	wfds = calloc(O.conns, sizeof *wfds);
	rfds = calloc(O.conns, sizeof *rfds);
	if (ep < 0 || !wfds || !rfds)
		die("setup");
	for (size_t k = 0; k < O.conns; k++) {
		wfds[k] = socket(AF_INET, SOCK_STREAM, 0);
		if (wfds[k] < 0 || connect(wfds[k], (struct sockaddr *)&a, sizeof a) < 0)
			die("connect");
		rfds[k] = accept(ls, NULL, NULL);
		if (rfds[k] < 0)
			die("accept");
		int one = 1; /* as on the link and the router's sockets */
		setsockopt(wfds[k], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = k };
		if (epoll_ctl(ep, EPOLL_CTL_ADD, rfds[k], &ev) < 0)
			die("epoll_ctl");
	}
	close(ls);

	unsigned char *rbuf = malloc(O.read_bytes);
	if (!rbuf)
		die("malloc");
	double c0 = cpu_s(), t0 = now_s();
	pthread_t th;
	if (pthread_create(&th, NULL, writer, NULL))
		die("pthread_create");
	size_t want = O.count * (4 + O.size), got = 0, open = O.conns;
	struct epoll_event evs[256];
	while (open) {
		int n = epoll_wait(ep, evs, 256, -1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int i = 0; i < n; i++) {
			int fd = rfds[evs[i].data.u64];
			ssize_t r = recv(fd, rbuf, O.read_bytes, 0);
			if (r < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (r < 0)
				die("recv");
			if (r == 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
				open--;
				continue;
			}
			got += (size_t)r;
		}
	}
	pthread_join(th, NULL);
	double secs = now_s() - t0, cpu = cpu_s() - c0;
	for (size_t k = 0; k < O.conns; k++) {
		close(rfds[k]);
		close(wfds[k]);
	}
	close(ep);
	free(rfds);
	free(wfds);
	free(rbuf);
	if (got != want) {
		fprintf(stderr, "linkfloor: read %zu bytes of %zu\n", got, want);
		return 1;
	}
	printf("{\"records\": %zu, \"size\": %zu, \"conns\": %zu, \"write_bytes\": %zu, "
	       "\"bytes\": %zu, \"seconds\": %.4f, \"cpu_s\": %.4f, \"cpu_us_per_record\": %.3f}\n",
	       O.count, O.size, O.conns, O.write_bytes, got, secs, cpu,
	       cpu / (double)O.count * 1e6);
	return 0;
}
