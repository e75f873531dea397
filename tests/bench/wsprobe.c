/*
 * wsprobe: a small kws.v1 WebSocket client set for tests/bench, for what
 * tests/tools/loadgen does not report: each client's partition (from its
 * kws.v1 "s" line), its gaps between records with their times, and the whole
 * latency distribution with the receipt in microseconds (a CDF).
 *
 * N clients with ids PREFIX<K> .. on one epoll loop, from source addresses
 * 127.0.0.2 .. 127.0.0.<1+S>. Latency is receipt wall clock (us) minus the
 * record's "ts" (wall ms) x 1000, over records with "tag":"TAG" (all with
 * no --tag). It exits after --duration-s (counted from when all clients are
 * open), on SIGINT/SIGTERM, or, with --expect-per-client, once every client
 * has that many records.
 *
 * stdout: "OPEN <n> <mono_ms>" when every client is open, "LIVE <n>" when
 * every client got its first kws.v1 state line, then a summary line.
 * --dump FILE writes "<key> <seq> <receipt wall us>" per tagged record.
 * --report writes JSON: counts, latency quantiles and a 1000-point CDF (us),
 * and per client {id, partition, records, gap_ms, gap_end_ms, gaps: [[ms,
 * end_mono_ms], ...] (every gap over --gap-ms), states}.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

enum cstate { C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED };

struct gap {
	uint32_t ms;
	int64_t end_ms;
};

struct client {
	int fd;
	enum cstate st;
	char *buf;
	size_t len, cap;
	int32_t partition;
	uint32_t states;
	uint64_t records;
	int64_t last_ms;
	uint32_t gap_ms;
	int64_t gap_end_ms;
	struct gap *gaps;
	uint32_t ngaps, gcap;
};

static struct {
	const char *host, *prefix, *tag, *report;
	int port;
	uint32_t clients, ids_from, source_addrs;
	double duration_s;
	uint64_t expect;
	uint32_t gap_ms;
	const char *dump;
} O;

static FILE *dumpf;

static struct client *C;
static uint32_t *lat;
static size_t nlat, caplat;
static uint32_t nopen, nlive, nclosed, ncomplete;
static uint64_t proto_errors, other;
static char tagpat[300];
static size_t tagpat_len;
static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void start_connect(int ep, uint32_t i)
{
	struct client *c = &C[i];
	struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		log_error("socket: %s", strerror(errno));
		exit(1);
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (O.source_addrs) {
		src.sin_addr.s_addr = htonl(0x7f000002u + i % O.source_addrs);
		if (bind(c->fd, (struct sockaddr *)&src, sizeof src) < 0)
			log_warn("bind: %s", strerror(errno));
	}
	inet_pton(AF_INET, O.host, &dst.sin_addr);
	dst.sin_port = htons((uint16_t)O.port);
	if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
		log_error("connect: %s", strerror(errno));
		exit(1);
	}
	c->st = C_CONNECTING;
	c->partition = -1;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.u32 = i };
	epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void send_handshake(int ep, uint32_t i)
{
	char req[1024];
	int n = snprintf(req, sizeof req,
			 "GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
			 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			 "Sec-WebSocket-Protocol: kws.v1\r\nX-Client-Id: %s%u\r\n\r\n",
			 O.host, O.port, O.prefix, O.ids_from + i);
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };

	if (write(C[i].fd, req, (size_t)n) != n) {
		log_error("handshake write failed");
		exit(1);
	}
	epoll_ctl(ep, EPOLL_CTL_MOD, C[i].fd, &ev);
	C[i].st = C_HANDSHAKE;
}

static void close_client(struct client *c)
{
	if (c->st == C_CLOSED)
		return;
	if (c->st == C_OPEN)
		nopen--;
	close(c->fd);
	c->st = C_CLOSED;
	nclosed++;
}

static void add_gap(struct client *c, uint32_t ms, int64_t end)
{
	if (ms > c->gap_ms) {
		c->gap_ms = ms;
		c->gap_end_ms = end;
	}
	if (ms < O.gap_ms)
		return;
	if (c->ngaps == c->gcap) {
		c->gcap = c->gcap ? c->gcap * 2 : 4;
		c->gaps = xrealloc(c->gaps, c->gcap * sizeof *c->gaps);
	}
	c->gaps[c->ngaps].ms = ms;
	c->gaps[c->ngaps++].end_ms = end;
}

static void on_message(struct client *c, const char *p, size_t n, int64_t now_ms, int64_t wus)
{
	const char *nl = memchr(p, '\n', n);

	if (!nl || n < 2 || p[1] != ' ') {
		proto_errors++;
		return;
	}
	if (p[0] == 's') {
		char st[16];
		int part;
		if (sscanf(p, "s %15s %d", st, &part) == 2) {
			if (c->states++ == 0)
				nlive++;
			c->partition = part;
		} else {
			proto_errors++;
		}
		return;
	}
	if (p[0] != 'd') {
		proto_errors++;
		return;
	}
	const char *body = nl + 1;
	size_t blen = n - (size_t)(body - p);
	if (tagpat_len && !memmem(body, blen, tagpat, tagpat_len)) {
		other++;
		return;
	}
	const char *t = memmem(body, blen, "\"ts\":", 5);
	if (!t) {
		other++;
		return;
	}
	int64_t ts = 0;
	for (t += 5; t < body + blen && *t >= '0' && *t <= '9'; t++)
		ts = ts * 10 + (*t - '0');
	if (dumpf) {
		const char *sq = memmem(body, blen, "\"seq\":", 6);
		long long seq = 0;
		if (sq) {
			for (sq += 6; sq < body + blen && *sq >= '0' && *sq <= '9'; sq++)
				seq = seq * 10 + (*sq - '0');
			fprintf(dumpf, "%s%u %lld %" PRId64 "\n", O.prefix,
				O.ids_from + (uint32_t)(c - C), seq, wus);
		}
	}
	int64_t us = wus - ts * 1000;
	if (us < 0)
		us = 0;
	if (nlat == caplat) {
		caplat = caplat ? caplat * 2 : 65536;
		lat = xrealloc(lat, caplat * sizeof *lat);
	}
	lat[nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	if (c->records++)
		add_gap(c, (uint32_t)(now_ms - c->last_ms), now_ms);
	c->last_ms = now_ms;
	if (O.expect && c->records == O.expect)
		ncomplete++;
}

/* Parses whole frames from c->buf. */
static void frames(struct client *c, int64_t now_ms, int64_t wus)
{
	size_t off = 0;

	for (;;) {
		unsigned char *b = (unsigned char *)c->buf + off;
		size_t have = c->len - off, hl = 2;
		uint64_t plen;

		if (have < 2)
			break;
		plen = b[1] & 0x7f;
		if (plen == 126) {
			hl = 4;
			if (have < hl)
				break;
			plen = (uint64_t)b[2] << 8 | b[3];
		} else if (plen == 127) {
			hl = 10;
			if (have < hl)
				break;
			plen = 0;
			for (int k = 0; k < 8; k++)
				plen = plen << 8 | b[2 + k];
		}
		if (have < hl + plen)
			break;
		unsigned op = b[0] & 0x0f;
		if (op == 1 || op == 2)
			on_message(c, (char *)b + hl, (size_t)plen, now_ms, wus);
		else if (op == 8) {
			close_client(c);
			return;
		}
		off += hl + plen;
	}
	memmove(c->buf, c->buf + off, c->len - off);
	c->len -= off;
}

static void on_readable(uint32_t i)
{
	struct client *c = &C[i];

	for (;;) {
		if (c->cap - c->len < 65536) {
			c->cap = c->cap ? c->cap * 2 : 131072;
			c->buf = xrealloc(c->buf, c->cap);
		}
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			close_client(c);
			return;
		}
		if (n < 0)
			return;
		c->len += (size_t)n;
		int64_t now_ms = now_mono_ms(), wus = wall_us();
		if (c->st == C_HANDSHAKE) {
			char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
			if (!end)
				continue;
			if (c->len < 12 || memcmp(c->buf + 9, "101", 3) != 0) {
				log_warn("client %u: handshake refused: %.40s", i, c->buf);
				close_client(c);
				return;
			}
			size_t hl = (size_t)(end + 4 - c->buf);
			memmove(c->buf, c->buf + hl, c->len - hl);
			c->len -= hl;
			c->st = C_OPEN;
			nopen++;
		}
		frames(c, now_ms, wus);
		if (c->st == C_CLOSED)
			return;
	}
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t q(double f)
{
	size_t rank = (size_t)(f * (double)nlat + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > nlat)
		rank = nlat;
	return lat[rank - 1];
}

static void report(void)
{
	uint64_t records = 0;
	uint32_t gmax = 0;

	qsort(lat, nlat, sizeof *lat, u32_cmp);
	for (uint32_t i = 0; i < O.clients; i++) {
		records += C[i].records;
		if (C[i].gap_ms > gmax)
			gmax = C[i].gap_ms;
	}
	printf("wsprobe: clients %u open %u closed %u records %" PRIu64 " other %" PRIu64
	       " protocol_errors %" PRIu64 " longest_gap_ms %u",
	       O.clients, nopen, nclosed, records, other, proto_errors, gmax);
	if (nlat)
		printf(" latency_us p50 %u p99 %u p999 %u max %u", q(0.5), q(0.99), q(0.999),
		       lat[nlat - 1]);
	printf("\n");
	fflush(stdout);
	if (!O.report)
		return;
	FILE *f = fopen(O.report, "w");
	if (!f) {
		log_error("--report %s: %s", O.report, strerror(errno));
		return;
	}
	fprintf(f,
		"{\"clients\": %u, \"closed\": %u, \"records\": %" PRIu64 ", \"other\": %" PRIu64
		", \"protocol_errors\": %" PRIu64,
		O.clients, nclosed, records, other, proto_errors);
	if (nlat) {
		double sum = 0;
		for (size_t i = 0; i < nlat; i++)
			sum += lat[i];
		fprintf(f,
			",\n \"latency_us\": {\"count\": %zu, \"mean\": %.1f, \"min\": %u, "
			"\"p50\": %u, \"p90\": %u, \"p99\": %u, \"p999\": %u, \"max\": %u}",
			nlat, sum / (double)nlat, lat[0], q(0.5), q(0.9), q(0.99), q(0.999),
			lat[nlat - 1]);
		fprintf(f, ",\n \"cdf_us\": [");
		for (int i = 1; i <= 1000; i++)
			fprintf(f, "%s%u", i > 1 ? ", " : "", q(i / 1000.0));
		fprintf(f, "]");
	}
	fprintf(f, ",\n \"per_client\": [\n");
	for (uint32_t i = 0; i < O.clients; i++) {
		const struct client *c = &C[i];
		fprintf(f,
			"  {\"id\": \"%s%u\", \"partition\": %d, \"records\": %" PRIu64
			", \"states\": %u, \"gap_ms\": %u, \"gap_end_ms\": %" PRId64
			", \"gaps\": [",
			O.prefix, O.ids_from + i, c->partition, c->records, c->states, c->gap_ms,
			c->gap_end_ms);
		for (uint32_t g = 0; g < c->ngaps; g++)
			fprintf(f, "%s[%u, %" PRId64 "]", g ? ", " : "", c->gaps[g].ms,
				c->gaps[g].end_ms);
		fprintf(f, "]}%s\n", i + 1 < O.clients ? "," : "");
	}
	fprintf(f, " ]}\n");
	fclose(f);
}

static void usage(FILE *f)
{
	fputs("usage: wsprobe --url ws://127.0.0.1:PORT/ws --clients N [--prefix P]\n"
	      "               [--ids-from K] [--source-addrs S] [--tag TAG]\n"
	      "               [--duration-s D] [--expect-per-client M] [--gap-ms G]\n"
	      "               [--dump FILE] [--report FILE.json]\n"
	      "\n"
	      "kws.v1 clients that record each client's partition, gaps and the\n"
	      "latency CDF (tests/bench). Defaults: prefix client-, ids from 0,\n"
	      "8 source addresses, duration 60 s, gaps over 50 ms listed.\n"
	      "--dump writes \"<key> <seq> <receipt wall us>\" for every tagged record\n"
	      "(to pair with kfloor --dump: the per-record router+edge hop).\n",
	      f);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = { { "url", required_argument, NULL, 'u' },
					    { "clients", required_argument, NULL, 'n' },
					    { "prefix", required_argument, NULL, 'p' },
					    { "ids-from", required_argument, NULL, 'k' },
					    { "source-addrs", required_argument, NULL, 's' },
					    { "tag", required_argument, NULL, 't' },
					    { "duration-s", required_argument, NULL, 'd' },
					    { "expect-per-client", required_argument, NULL, 'e' },
					    { "gap-ms", required_argument, NULL, 'g' },
					    { "report", required_argument, NULL, 'o' },
					    { "dump", required_argument, NULL, 'D' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	static char host[64];
	struct sigaction sa = { .sa_handler = on_signal };
	int c;

	log_setup("wsprobe", LOG_INFO, 0);
	O.prefix = "client-";
	O.source_addrs = 8;
	O.duration_s = 60;
	O.gap_ms = 50;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'u':
			if (sscanf(optarg, "ws://%63[0-9.]:%d/", host, &O.port) != 2) {
				fprintf(stderr, "wsprobe: --url wants ws://A.B.C.D:PORT/ws\n");
				return 2;
			}
			O.host = host;
			break;
		case 'n':
			O.clients = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			O.prefix = optarg;
			break;
		case 'k':
			O.ids_from = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 's':
			O.source_addrs = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 't':
			O.tag = optarg;
			break;
		case 'd':
			O.duration_s = strtod(optarg, NULL);
			break;
		case 'e':
			O.expect = strtoull(optarg, NULL, 10);
			break;
		case 'g':
			O.gap_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'o':
			O.report = optarg;
			break;
		case 'D':
			O.dump = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!O.host || !O.clients || O.clients > 15000 || O.source_addrs > 250) {
		usage(stderr);
		return 2;
	}
	if (O.tag)
		tagpat_len = (size_t)snprintf(tagpat, sizeof tagpat, "\"tag\":\"%s\"", O.tag);
	if (O.dump && !(dumpf = fopen(O.dump, "w"))) {
		fprintf(stderr, "wsprobe: --dump %s: %s\n", O.dump, strerror(errno));
		return 2;
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	C = xcalloc(O.clients, sizeof *C);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int64_t t0 = now_mono_ms(), t_open = 0;
	uint32_t next = 0;
	bool said_live = false;
	struct epoll_event evs[256];

	while (!stop_requested) {
		/* Connect at most 1000 clients per 10 ms round. */
		for (int k = 0; k < 1000 && next < O.clients; k++)
			start_connect(ep, next++);
		int n = epoll_wait(ep, evs, 256, 10);
		for (int k = 0; k < n; k++) {
			uint32_t i = evs[k].data.u32;
			struct client *cl = &C[i];
			if (cl->st == C_CONNECTING) {
				int err = 0;
				socklen_t el = sizeof err;
				getsockopt(cl->fd, SOL_SOCKET, SO_ERROR, &err, &el);
				if (err) {
					log_warn("client %u: connect: %s", i, strerror(err));
					close_client(cl);
					continue;
				}
				send_handshake(ep, i);
			} else if (cl->st != C_CLOSED) {
				on_readable(i);
			}
		}
		int64_t now = now_mono_ms();
		if (!t_open && next == O.clients && nopen + nclosed >= O.clients) {
			t_open = now;
			printf("OPEN %u %" PRId64 "\n", nopen, now);
			fflush(stdout);
		}
		if (t_open && !said_live && nlive >= nopen) {
			said_live = true;
			printf("LIVE %u\n", nlive);
			fflush(stdout);
		}
		if (t_open && now - t_open > (int64_t)(O.duration_s * 1000))
			break;
		if (!t_open && now - t0 > 60000) {
			log_error("clients not open after 60 s");
			break;
		}
		if (O.expect && ncomplete >= O.clients)
			break;
		if (nclosed >= O.clients)
			break;
	}
	report();
	if (dumpf)
		fclose(dumpf);
	return 0;
}
