/*
 * linkfloor: the floor of the edge -> router hop (tests/bench/README.md,
 * "The floors of a drain").
 *
 * Moves --count records of --size bytes, each framed as on the link (a
 * 4-byte length, then the bytes: common/frame.h), through one TCP
 * connection on 127.0.0.1, from a writer thread to a reader thread, the way
 * the busiest link moves a backlog: the writer sends --write-bytes at a time
 * (the edge's chan writes up to 256 KiB), the reader reads as much as it
 * can at a time (the router's loopchan empties the socket). Nothing else
 * happens to the bytes: no encoding, no queue, no copy in user space. What
 * it costs is what the kernel and the loopback device cost to carry those
 * bytes once, the least any design that puts the edge and the router in
 * two processes pays on top of the Kafka floor and the WebSocket floor.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static struct {
	size_t size, count, write_bytes, read_bytes;
} O = { 4096, 200000, 256 * 1024, 256 * 1024 };

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
 * made once: making them is not the hop's cost). */
static void *writer(void *arg)
{
	int fd = *(int *)arg;
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
	size_t left = O.count;
	while (left) {
		size_t n = left < per ? left : per;
		size_t len = n * frame, off = 0;
		while (off < len) {
			ssize_t w = send(fd, buf + off, len - off, 0);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				die("send");
			off += (size_t)w;
		}
		left -= n;
	}
	free(buf);
	shutdown(fd, SHUT_WR);
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: linkfloor [--size B] [--count N] [--write-bytes B] "
			"[--read-bytes B]\n");
	return 2;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "size", required_argument, 0, 's' },
					      { "count", required_argument, 0, 'n' },
					      { "write-bytes", required_argument, 0, 'w' },
					      { "read-bytes", required_argument, 0, 'r' },
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
		default:
			return usage();
		}
	}
	if (optind != argc || !O.size || !O.count || !O.write_bytes || !O.read_bytes)
		return usage();

	int ls = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof a;
	if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) < 0 || listen(ls, 1) < 0 ||
	    getsockname(ls, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	int wfd = socket(AF_INET, SOCK_STREAM, 0);
	if (wfd < 0 || connect(wfd, (struct sockaddr *)&a, sizeof a) < 0)
		die("connect");
	int rfd = accept(ls, NULL, NULL);
	if (rfd < 0)
		die("accept");
	close(ls);
	int one = 1; /* as on the link: frames are not held back */
	setsockopt(wfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

	unsigned char *rbuf = malloc(O.read_bytes);
	if (!rbuf)
		die("malloc");
	double c0 = cpu_s(), t0 = now_s();
	pthread_t th;
	if (pthread_create(&th, NULL, writer, &wfd))
		die("pthread_create");
	size_t want = O.count * (4 + O.size), got = 0;
	for (;;) {
		ssize_t n = recv(rfd, rbuf, O.read_bytes, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("recv");
		if (n == 0)
			break;
		got += (size_t)n;
	}
	pthread_join(th, NULL);
	double secs = now_s() - t0, cpu = cpu_s() - c0;
	close(rfd);
	close(wfd);
	free(rbuf);
	if (got != want) {
		fprintf(stderr, "linkfloor: read %zu bytes of %zu\n", got, want);
		return 1;
	}
	printf("{\"records\": %zu, \"size\": %zu, \"bytes\": %zu, \"seconds\": %.4f, "
	       "\"cpu_s\": %.4f, \"cpu_us_per_record\": %.3f}\n",
	       O.count, O.size, got, secs, cpu, cpu / (double)O.count * 1e6);
	return 0;
}
