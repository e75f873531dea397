/*
 * wsfloor: the WebSocket floor of the benchmark (tests/bench/README.md).
 *
 * A bare libwebsockets server built like the router's client side (same lws
 * 4.1 context options, the same event loop: libuv, or lws's default poll
 * loop with --event-loop poll; one thread, the same two
 * protocols "kws" and "kws.v1", the same handshake checks on /ws and
 * X-Client-Id, the same per-session queue of malloc'd messages written only
 * in the writeable callback, at most 64 per callback, stopping when the pipe
 * is choked). With --batch-bytes it frames a session's queued messages into
 * one send instead, as the router does since commit 13e99a5. It has no Kafka, no edge, no nng: it makes the records itself,
 * in the producer's JSON format
 *   {"key":"client-3","seq":17,"ts":<wall ms>[,"tag":"T"][,"pad":"xx.."]}
 * padded to --size bytes like tests/tools/produce, and frames them like the
 * router does for kws.v1: first "s live <partition> <offset>\n", then
 * "d <partition> <offset>\n<json>". So tests/tools/loadgen measures it
 * exactly as it measures the router.
 *
 * Generation starts once --start-sessions clients are connected (plus
 * --start-delay-ms): --count records per session (or --total in all),
 * round-robin over the sessions (ordered by connection), paced by schedule
 * at --rate records/s in total (each --tick-us tick of a timerfd adopted
 * into lws's loop makes every record that is due), or, with
 * --rate 0, as fast as the clients take them (each session is refilled by
 * --burst records in its writeable callback when its queue runs empty).
 * Without --start-sessions it only holds sessions (idle memory floor).
 *
 * Prints "LISTENING <port>", "START <mono_ms>" and "DONE <mono_ms> <n>" on
 * stdout (CLOCK_MONOTONIC ms, Python's time.monotonic()), and writes a JSON
 * report with --report at exit. Exits on SIGINT/SIGTERM or after --exit-after-s.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <uv.h>

#include "partition.h"
#include "util.h"

#define WRITES_PER_CALLBACK 64  /* plain lws_write per message */
#define BATCHES_PER_CALLBACK 16 /* --batch-bytes: as the router since 13e99a5 */
#define TIMER_US 1000           /* idle ticks are 50 of these */

struct msg {
	struct msg *next;
	uint32_t len;
	unsigned char data[]; /* LWS_PRE headroom, then the payload */
};

struct pss {
	struct lws *wsi;
	char *id;
	size_t id_len;
	char *id_json; /* id escaped for a JSON string */
	uint32_t partition;
	uint32_t index; /* in F.sess, or UINT32_MAX */
	bool framed;
	bool status_sent;
	uint64_t seq; /* records made for this session */
	struct msg *qhead, **qtail;
	size_t qbytes;
};

static struct {
	/* options */
	const char *host;
	int port;
	double rate;
	long size;
	const char *tag;
	uint64_t count;
	uint64_t total; /* 0: count x sessions */
	uint32_t start_sessions;
	long start_delay_ms;
	uint32_t burst;
	int32_t partitions;
	bool text;
	long exit_after_s;
	long tick_us;
	long batch_bytes;
	const char *report;
	/* state */
	struct lws_context *ctx;
	struct pss **sess;
	uint32_t nsess, cap;
	uint64_t *part_offset;
	lws_sorted_usec_list_t timer;
	bool started, done;
	int64_t start_us, start_mono_ms, done_mono_ms, t0_ms;
	uint64_t generated, written, written_bytes, target;
	uint32_t rr; /* next session in the round-robin */
	uint64_t connects, closes, rejected;
	uint32_t peak_sessions;
	uint64_t sends;
	char *buf;
	size_t bufcap;
	unsigned char *wbuf; /* --batch-bytes: LWS_PRE + batch_bytes */
	int timer_fd;        /* --rate ticks, -1 if none */
	bool uv;             /* --event-loop uv (default): lws on loop */
	uv_loop_t loop;
} F;

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	stop_requested = 1;
	if (F.ctx)
		lws_cancel_service(F.ctx); /* on_timer sees it within 50 ms */
}

/* Ends the service loop (on the loop's thread). */
static void stop_loop(void)
{
	if (F.uv)
		uv_stop(&F.loop);
	else
		lws_cancel_service(F.ctx);
}

static char *json_escape(const char *s, size_t n)
{
	char *out = xmalloc(n * 6 + 1), *o = out;

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (ch < 0x20) {
			o += sprintf(o, "\\u%04x", ch);
		} else {
			*o++ = (char)ch;
		}
	}
	*o = '\0';
	return out;
}

static void push(struct pss *p, const char *data, size_t len)
{
	struct msg *m = xmalloc(sizeof *m + LWS_PRE + len);
	bool was_empty = p->qhead == NULL;

	m->next = NULL;
	m->len = (uint32_t)len;
	memcpy(m->data + LWS_PRE, data, len);
	*p->qtail = m;
	p->qtail = &m->next;
	p->qbytes += len;
	if (was_empty)
		lws_callback_on_writable(p->wsi);
}

/* Makes the next record of session p, framed as the router frames it. */
static void make_record(struct pss *p)
{
	size_t need = (size_t)F.size + strlen(p->id_json) + 160 + (F.tag ? strlen(F.tag) : 0);
	size_t n = 0, body;

	if (need > F.bufcap) {
		F.bufcap = need;
		F.buf = xrealloc(F.buf, F.bufcap);
	}
	if (p->framed)
		n = (size_t)sprintf(F.buf, "d %u %" PRIu64 "\n", p->partition,
				    F.part_offset[p->partition]);
	body = n;
	n += (size_t)sprintf(F.buf + n,
			     "{\"key\":\"%s\",\"seq\":%" PRIu64 ",\"ts\":%" PRId64 "%s%s%s",
			     p->id_json, p->seq, now_wall_ms(), F.tag ? ",\"tag\":\"" : "",
			     F.tag ? F.tag : "", F.tag ? "\"" : "");
	/* Padding exactly as tests/tools/produce does it. */
	if ((size_t)F.size > n - body + 1) {
		static const char pad_open[] = ",\"pad\":\"";
		const size_t pad_overhead = sizeof pad_open - 1 + 1;
		size_t gap = (size_t)F.size - (n - body + 1);

		if (gap >= pad_overhead) {
			memcpy(F.buf + n, pad_open, sizeof pad_open - 1);
			n += sizeof pad_open - 1;
			memset(F.buf + n, 'x', gap - pad_overhead);
			n += gap - pad_overhead;
			F.buf[n++] = '"';
		} else {
			memset(F.buf + n, ' ', gap);
			n += gap;
		}
	}
	F.buf[n++] = '}';
	F.part_offset[p->partition]++;
	p->seq++;
	F.generated++;
	push(p, F.buf, n);
}

static void check_done(void)
{
	if (!F.done && F.started && F.generated >= F.target) {
		F.done = true;
		F.done_mono_ms = now_mono_ms();
		printf("DONE %" PRId64 " %" PRIu64 "\n", F.done_mono_ms, F.generated);
		fflush(stdout);
	}
}

/* Makes every record due by now (--rate): called on each tick. */
static void generate(void)
{
	int64_t now = now_mono_us();

	if (!F.started || F.rate <= 0 || F.done || !F.nsess)
		return;
	uint64_t due = (uint64_t)((double)(now - F.start_us) * F.rate / 1e6);

	if (due > F.target)
		due = F.target;
	while (F.generated < due) {
		struct pss *p = F.sess[F.rr++ % F.nsess];

		if (!F.total && p->seq >= F.count) {
			/* A session that joined late: skip it. */
			F.target--;
			if (due > F.target)
				due = F.target;
			continue;
		}
		make_record(p);
	}
	check_done();
}

/* Start, stop and, without a timerfd, the ticks. */
static void on_timer(lws_sorted_usec_list_t *sul)
{
	int64_t now = now_mono_us();

	if (stop_requested ||
	    (F.exit_after_s > 0 && now_mono_ms() - F.t0_ms > F.exit_after_s * 1000)) {
		stop_requested = 1;
		stop_loop();
		return;
	}
	if (!F.started && F.start_sessions && F.nsess >= F.start_sessions) {
		if (!F.start_us) {
			F.start_us = now + F.start_delay_ms * 1000;
		} else if (now >= F.start_us) {
			F.started = true;
			F.start_mono_ms = now_mono_ms();
			F.start_us = now;
			F.target = F.total ? F.total : F.count * F.nsess;
			printf("START %" PRId64 " %u\n", F.start_mono_ms, F.nsess);
			fflush(stdout);
			if (F.rate <= 0) {
				/* As fast as they take it: prime every session once. */
				for (uint32_t i = 0; i < F.nsess; i++)
					lws_callback_on_writable(F.sess[i]->wsi);
			}
		}
	}
	if (F.timer_fd < 0)
		generate();
	/* lws 4.1 polls with whole milliseconds and so spins through the last
	 * one before a timer: the ticks come from a timerfd in the poll set
	 * (on_tick_fd); this timer only starts and stops. */
	lws_sul_schedule(F.ctx, 0, &F.timer, on_timer,
			 F.timer_fd < 0 && F.started && F.rate > 0 && !F.done ? F.tick_us
									      : 50 * TIMER_US);
}

static int reject(struct lws *wsi, unsigned int status, const char *msg)
{
	F.rejected++;
	lws_return_http_status(wsi, status, msg);
	return -1;
}

static int check_handshake(struct lws *wsi)
{
	char uri[512];
	int n;

	if (lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI) <= 0)
		return reject(wsi, 400, "no request path");
	char *q = strchr(uri, '?');
	if (q)
		*q = '\0';
	if (strcmp(uri, "/ws") != 0)
		return reject(wsi, 404, "no WebSocket endpoint here; use /ws");
	n = lws_hdr_custom_length(wsi, "x-client-id:", 12);
	if (n <= 0)
		return reject(wsi, 400, "missing X-Client-Id header");
	if (n > 256)
		return reject(wsi, 400, "X-Client-Id is too long");
	return 0;
}

static void session_add(struct pss *p)
{
	if (F.nsess == F.cap) {
		F.cap = F.cap ? F.cap * 2 : 1024;
		F.sess = xrealloc(F.sess, F.cap * sizeof *F.sess);
	}
	p->index = F.nsess;
	F.sess[F.nsess++] = p;
	if (F.nsess > F.peak_sessions)
		F.peak_sessions = F.nsess;
}

static void session_remove(struct pss *p)
{
	if (p->index == UINT32_MAX)
		return;
	F.sess[p->index] = F.sess[--F.nsess];
	F.sess[p->index]->index = p->index;
	p->index = UINT32_MAX;
}

static int established(struct lws *wsi, struct pss *p)
{
	char id[300];
	int n = lws_hdr_custom_copy(wsi, id, sizeof id, "x-client-id:", 12);

	memset(p, 0, sizeof *p);
	p->index = UINT32_MAX;
	if (n <= 0)
		return -1;
	p->wsi = wsi;
	p->id = xstrndup(id, (size_t)n);
	p->id_len = (size_t)n;
	p->id_json = json_escape(id, (size_t)n);
	p->partition =
		(uint32_t)partition_for_key(PARTITIONER_MURMUR2, id, (size_t)n, F.partitions);
	p->qtail = &p->qhead;
	const struct lws_protocols *proto = lws_get_protocol(wsi);
	p->framed = proto && strcmp(proto->name, "kws.v1") == 0;
	F.connects++;
	session_add(p);
	if (p->framed) {
		char line[80];
		int l = snprintf(line, sizeof line, "s live %u %" PRIu64 "\n", p->partition,
				 F.part_offset[p->partition]);
		push(p, line, (size_t)l);
	}
	return 0;
}

static void pop(struct pss *p)
{
	struct msg *m = p->qhead;

	F.written++;
	F.written_bytes += m->len;
	p->qhead = m->next;
	if (!p->qhead)
		p->qtail = &p->qhead;
	p->qbytes -= m->len;
	free(m);
}

/* --batch-bytes: frames the oldest queued messages into one buffer (server
 * frames are unmasked: FIN and opcode, 7/16/64-bit length, payload) and
 * writes them with one LWS_WRITE_RAW, as the router does; a single message
 * goes through lws_write. 0 or -1. */
static int write_batch(struct lws *wsi, struct pss *p)
{
	unsigned char op = F.text ? 0x1 : 0x2;
	struct msg *m = p->qhead;
	size_t len = 0;
	unsigned char *out = F.wbuf + LWS_PRE;

	if (!m->next || m->len > (size_t)F.batch_bytes / 2) {
		int n = lws_write(wsi, m->data + LWS_PRE, m->len,
				  F.text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
		if (n < (int)m->len)
			return -1;
		F.sends++;
		pop(p);
		return 0;
	}
	while ((m = p->qhead) && len + 10 + m->len <= (size_t)F.batch_bytes) {
		out[len++] = 0x80 | op;
		if (m->len < 126) {
			out[len++] = (unsigned char)m->len;
		} else if (m->len < 65536) {
			out[len++] = 126;
			out[len++] = (unsigned char)(m->len >> 8);
			out[len++] = (unsigned char)m->len;
		} else {
			out[len++] = 127;
			for (int k = 7; k >= 0; k--)
				out[len++] = (unsigned char)((uint64_t)m->len >> (8 * k));
		}
		memcpy(out + len, m->data + LWS_PRE, m->len);
		len += m->len;
		pop(p);
	}
	F.sends++;
	return lws_write(wsi, out, len, LWS_WRITE_RAW) < (int)len ? -1 : 0;
}

static int writeable(struct lws *wsi, struct pss *p)
{
	enum lws_write_protocol kind = F.text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY;

	if (!p->id)
		return 0;
	if (F.started && F.rate <= 0 && !p->qhead) {
		for (uint32_t i = 0; i < F.burst && p->seq < F.count; i++)
			make_record(p);
		check_done();
	}
	if (F.batch_bytes) {
		for (int i = 0; i < BATCHES_PER_CALLBACK && p->qhead; i++) {
			if (write_batch(wsi, p) < 0)
				return -1;
			if (lws_send_pipe_choked(wsi))
				break;
		}
	} else {
		for (int i = 0; i < WRITES_PER_CALLBACK; i++) {
			struct msg *m = p->qhead;

			if (!m)
				break;
			int n = lws_write(wsi, m->data + LWS_PRE, m->len, kind);
			if (n < (int)m->len)
				return -1;
			F.sends++;
			pop(p);
			if (lws_send_pipe_choked(wsi))
				break;
		}
	}
	if (p->qhead || (F.started && F.rate <= 0 && p->seq < F.count))
		lws_callback_on_writable(wsi);
	return 0;
}

static void closed(struct pss *p)
{
	if (!p->id)
		return;
	F.closes++;
	session_remove(p);
	while (p->qhead) {
		struct msg *m = p->qhead;
		p->qhead = m->next;
		free(m);
	}
	free(p->id);
	free(p->id_json);
	p->id = NULL;
}

static int cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct pss *p = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return check_handshake(wsi);
	case LWS_CALLBACK_ESTABLISHED:
		return established(wsi, p);
	case LWS_CALLBACK_RECEIVE:
		return 0; /* client messages are not part of the floor */
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return writeable(wsi, p);
	case LWS_CALLBACK_CLOSED:
		closed(p);
		return 0;
	case LWS_CALLBACK_HTTP: {
		const char *path = in ? in : "";
		int code = strcmp(path, "/ws") == 0 ? 426 : 404;
		if (lws_return_http_status(wsi, (unsigned int)code, "use a WebSocket on /ws"))
			return -1;
		return lws_http_transaction_completed(wsi);
	}
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

/* The tick timerfd, adopted into lws's poll set as a raw file. */
static int cb_tick(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		   size_t len)
{
	uint64_t expirations;

	if (reason == LWS_CALLBACK_RAW_RX_FILE) {
		if (read(F.timer_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
			return -1;
		generate();
	}
	return 0;
}

/* Configured as the router's (router/ws.h): a 512-byte receive buffer per
 * connection instead of lws's 4 KiB default, and sends of up to a 64 KiB
 * batch at once instead of pt_serv_buf_size. */
#define FLOOR_RX_BUFFER_BYTES 512
#define FLOOR_TX_PACKET_BYTES (64 * 1024)
static const struct lws_protocols protocols[] = {
	{ "kws", cb, sizeof(struct pss), FLOOR_RX_BUFFER_BYTES, 0, NULL, FLOOR_TX_PACKET_BYTES },
	{ "kws.v1", cb, sizeof(struct pss), FLOOR_RX_BUFFER_BYTES, 0, NULL, FLOOR_TX_PACKET_BYTES },
	{ "wsfloor-tick", cb_tick, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void usage(FILE *f)
{
	fputs("usage: wsfloor [--listen HOST:PORT] [--rate R] [--size BYTES] [--tag TAG]\n"
	      "               [--count M | --total N] [--start-sessions N] [--start-delay-ms D]\n"
	      "               [--burst B] [--partitions P] [--message-type binary|text]\n"
	      "               [--tick-us T] [--batch-bytes N] [--exit-after-s S]\n"
	      "               [--event-loop uv|poll] [--report FILE.json]\n"
	      "\n"
	      "The WebSocket floor of tests/bench: a bare libwebsockets server that\n"
	      "serves /ws like the router (X-Client-Id, kws.v1) and makes the\n"
	      "producer's records itself, without Kafka or nng.\n"
	      "\n"
	      "  --listen HOST:PORT   default 127.0.0.1:8090 (port 0: any; printed)\n"
	      "  --rate R             records/s over all sessions, by schedule;\n"
	      "                       0: as fast as the clients take them (default 0)\n"
	      "  --size BYTES         pad each JSON value to BYTES, as produce --size\n"
	      "  --tag TAG            add \"tag\":\"TAG\" to every value\n"
	      "  --count M            records per session (default 1000)\n"
	      "  --total N            with --rate: N records in all, round-robin over the\n"
	      "                       sessions, instead of M per session\n"
	      "  --start-sessions N   start once N sessions are connected (default 0:\n"
	      "                       never; only hold sessions)\n"
	      "  --start-delay-ms D   and D ms after that (default 500)\n"
	      "  --tick-us T          with --rate: the generation timer's period; each\n"
	      "                       tick makes every record due by then (default 1000)\n"
	      "  --burst B            with --rate 0: records made per refill (default 16)\n"
	      "  --batch-bytes N      frame a session's queued messages into one send of\n"
	      "                       up to N bytes (as the router); default 0: one\n"
	      "                       lws_write per message, at most 64 per callback\n"
	      "  --partitions P       partition count for the framing (murmur2, as\n"
	      "                       the router; default 12)\n"
	      "  --message-type T     binary (default) or text\n"
	      "  --exit-after-s S     exit after S seconds (default 900)\n"
	      "  --event-loop L       uv (default: libuv, epoll, as the router) or poll\n"
	      "                       (lws's default poll() loop)\n"
	      "  --report FILE        JSON counters and CPU at exit\n",
	      f);
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = { { "listen", required_argument, NULL, 'l' },
					    { "rate", required_argument, NULL, 'r' },
					    { "size", required_argument, NULL, 's' },
					    { "tag", required_argument, NULL, 't' },
					    { "count", required_argument, NULL, 'c' },
					    { "total", required_argument, NULL, 'T' },
					    { "start-sessions", required_argument, NULL, 'n' },
					    { "start-delay-ms", required_argument, NULL, 'd' },
					    { "burst", required_argument, NULL, 'b' },
					    { "partitions", required_argument, NULL, 'p' },
					    { "message-type", required_argument, NULL, 'm' },
					    { "exit-after-s", required_argument, NULL, 'x' },
					    { "report", required_argument, NULL, 'o' },
					    { "tick-us", required_argument, NULL, 'k' },
					    { "batch-bytes", required_argument, NULL, 'B' },
					    { "event-loop", required_argument, NULL, 'e' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	static char host[256] = "127.0.0.1";
	int c;

	F.host = host;
	F.port = 8090;
	F.count = 1000;
	F.start_delay_ms = 500;
	F.burst = 16;
	F.partitions = 12;
	F.exit_after_s = 900;
	F.tick_us = TIMER_US;
	F.uv = true;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'l': {
			const char *colon = strrchr(optarg, ':');
			if (!colon || (size_t)(colon - optarg) >= sizeof host) {
				fprintf(stderr, "wsfloor: --listen wants HOST:PORT\n");
				exit(2);
			}
			memcpy(host, optarg, (size_t)(colon - optarg));
			host[colon - optarg] = '\0';
			F.port = atoi(colon + 1);
			break;
		}
		case 'r':
			F.rate = strtod(optarg, NULL);
			break;
		case 's':
			F.size = atol(optarg);
			break;
		case 't':
			F.tag = optarg;
			break;
		case 'c':
			F.count = strtoull(optarg, NULL, 10);
			break;
		case 'T':
			F.total = strtoull(optarg, NULL, 10);
			break;
		case 'n':
			F.start_sessions = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			F.start_delay_ms = atol(optarg);
			break;
		case 'b':
			F.burst = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'p':
			F.partitions = atoi(optarg);
			break;
		case 'm':
			F.text = strcmp(optarg, "text") == 0;
			break;
		case 'x':
			F.exit_after_s = atol(optarg);
			break;
		case 'o':
			F.report = optarg;
			break;
		case 'k':
			F.tick_us = atol(optarg);
			break;
		case 'B':
			F.batch_bytes = atol(optarg);
			break;
		case 'e':
			if (strcmp(optarg, "uv") && strcmp(optarg, "poll")) {
				fprintf(stderr, "wsfloor: --event-loop is uv or poll\n");
				exit(2);
			}
			F.uv = strcmp(optarg, "uv") == 0;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (F.partitions < 1 || F.size < 0 || F.size > 16 * 1024 * 1024 || F.burst < 1 ||
	    F.tick_us < 100 || F.tick_us > 1000000 || F.batch_bytes < 0 ||
	    F.batch_bytes > 16 * 1024 * 1024) {
		fprintf(stderr, "wsfloor: bad arguments\n");
		exit(2);
	}
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void write_report(void)
{
	struct rusage ru;
	FILE *f;

	if (!F.report)
		return;
	getrusage(RUSAGE_SELF, &ru);
	f = fopen(F.report, "w");
	if (!f) {
		log_error("--report %s: %s", F.report, strerror(errno));
		return;
	}
	fprintf(f,
		"{\"generated\": %" PRIu64 ", \"written\": %" PRIu64 ", \"written_bytes\": %" PRIu64
		", \"connects\": %" PRIu64 ", \"closes\": %" PRIu64 ", \"rejected\": %" PRIu64
		", \"sends\": %" PRIu64 ", \"peak_sessions\": %u, \"start_mono_ms\": %" PRId64
		", \"done_mono_ms\": %" PRId64 ", \"utime_s\": %.3f, \"stime_s\": %.3f"
		", \"max_rss_kb\": %ld}\n",
		F.generated, F.written, F.written_bytes, F.connects, F.closes, F.rejected, F.sends,
		F.peak_sessions, F.start_mono_ms, F.done_mono_ms, tv_s(ru.ru_utime),
		tv_s(ru.ru_stime), ru.ru_maxrss);
	fclose(f);
}

int main(int argc, char **argv)
{
	struct lws_context_creation_info info;
	struct sigaction sa = { .sa_handler = on_signal };
	struct lws_vhost *vh;

	log_setup("wsfloor", LOG_INFO, 0);
	parse(argc, argv);
	F.part_offset = xcalloc((size_t)F.partitions, sizeof *F.part_offset);
	if (F.batch_bytes)
		F.wbuf = xmalloc(LWS_PRE + (size_t)F.batch_bytes);
	F.t0_ms = now_mono_ms();
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR | LLL_WARN, NULL);

	/* The router's context settings (router/router.c, router_run). */
	memset(&info, 0, sizeof info);
	info.port = F.port;
	info.iface = F.host;
	info.protocols = protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 |
		       LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.vhost_name = "wsfloor";
	/* As the router: no lws validity timers (it pings on its own). */
	static const lws_retry_bo_t no_validity = { .secs_since_valid_ping = 0,
						    .secs_since_valid_hangup = 0 };
	info.retry_and_idle_policy = &no_validity;
	void *loops[1] = { &F.loop };
	if (F.uv) {
		/* As router/router.c: lws on our libuv loop (a foreign loop). */
		if (uv_loop_init(&F.loop) < 0) {
			log_error("cannot create the event loop");
			return 1;
		}
		info.options |= LWS_SERVER_OPTION_LIBUV;
		info.foreign_loops = loops;
		info.pcontext = &F.ctx;
	}
	F.ctx = lws_create_context(&info);
	if (!F.ctx) {
		log_error("cannot create the WebSocket context");
		return 1;
	}
	vh = lws_create_vhost(F.ctx, &info);
	if (!vh) {
		log_error("cannot listen on %s:%d", F.host, F.port);
		return 1;
	}
	F.timer_fd = -1;
	if (F.rate > 0) {
		struct itimerspec its = {
			.it_interval = { F.tick_us / 1000000, (F.tick_us % 1000000) * 1000 },
			.it_value = { F.tick_us / 1000000, (F.tick_us % 1000000) * 1000 },
		};
		lws_sock_file_fd_type u;

		F.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		u.filefd = F.timer_fd;
		if (F.timer_fd < 0 || timerfd_settime(F.timer_fd, 0, &its, NULL) < 0 ||
		    !lws_adopt_descriptor_vhost(vh, LWS_ADOPT_RAW_FILE_DESC, u, "wsfloor-tick",
						NULL)) {
			log_warn("no timerfd in the poll set; ticking with an lws timer");
			if (F.timer_fd >= 0)
				close(F.timer_fd);
			F.timer_fd = -1;
		}
	}
	printf("LISTENING %d\n", lws_get_vhost_listen_port(vh));
	fflush(stdout);
	lws_sul_schedule(F.ctx, 0, &F.timer, on_timer, TIMER_US);
	if (F.uv) {
		uv_run(&F.loop, UV_RUN_DEFAULT); /* until stop_loop() */
	} else {
		while (!stop_requested)
			if (lws_service(F.ctx, 0) < 0)
				break;
	}
	write_report();
	lws_context_destroy(F.ctx);
	if (F.uv) {
		/* libuv closes lws's handles in the loop; then the context goes. */
		uv_run(&F.loop, UV_RUN_DEFAULT);
		if (F.ctx)
			lws_context_destroy(F.ctx);
		uv_loop_close(&F.loop);
	}
	free(F.sess);
	free(F.part_offset);
	free(F.buf);
	free(F.wbuf);
	return 0;
}
