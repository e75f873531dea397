/*
 * loadgen: many WebSocket clients on one epoll loop, for load and delivery
 * tests of the router. Client i connects with the id <prefix><ids-from + i>,
 * receives what the producer (tests/tools/produce) wrote for that id, and
 * checks it: the key, the per-key seq order (lost, duplicated, reordered),
 * the latency from the record's "ts", the longest gap between two records.
 * It speaks the kws.v1 subprotocol (README: "Positions and resume") and can
 * resume with its position after a close, to the next router of the list.
 *
 * The client side of RFC 6455 is written out here (handshake with SHA-1 and
 * base64, unmasked server frames, masked pong and close): a library would
 * cost a thread or a context per connection, and this needs very little.
 * Every client costs a small struct; input is read into one shared buffer
 * and only a partial frame is kept per client.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h> /* isfinite(), a macro: no libm */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <jwt.h>
#include <zlib.h>

#include "stages.h"
#include "util.h"

#define MAX_CLIENTS 1000000
#define MAX_URLS 255
#define MAX_SOURCE_ADDRS 254
#define MAX_PREFIX 200
#define RECONNECT_DELAY_MS 200
/* TCP connect plus the handshake response. */
#define HANDSHAKE_TIMEOUT_MS 10000
/* How long a close we sent waits for the server's close. */
#define CLOSE_TIMEOUT_MS 2000
/* A stalled client sends an unsolicited pong this often, so that it learns
 * of a router that closed the connection (the router's TCP answers with a
 * reset) without reading the data queued in front of the close. */
#define STALL_PROBE_MS 1000
#define MAX_RESPONSE_BYTES 16384
#define MAX_MESSAGE_BYTES (64u << 20)
#define READ_BYTES (256 * 1024)
#define MAX_EVENTS 512
#define LIST_IDS 20
#define MAX_TALLY 64
/* File descriptors besides the clients': stdio, epoll, the report, slack. */
#define FD_RESERVE 32
#define MAX_LOGGED 5
#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define SUBPROTOCOL "kws.v1"

/* ---- SHA-1 and base64, for Sec-WebSocket-Accept ---- */

static uint32_t rol32(uint32_t x, int k)
{
	return x << k | x >> (32 - k);
}

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

	for (int i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (int i = 16; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (int i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

static void sha1(const void *data, size_t len, uint8_t out[20])
{
	uint32_t h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0 };
	const uint8_t *p = data;
	uint8_t tail[128] = { 0 };
	size_t full = len / 64 * 64, rest = len - full, tlen;
	uint64_t bits = (uint64_t)len * 8;

	for (size_t i = 0; i < full; i += 64)
		sha1_block(h, p + i);
	memcpy(tail, p + full, rest);
	tail[rest] = 0x80;
	tlen = rest + 1 + 8 <= 64 ? 64 : 128;
	for (int i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (uint8_t)(bits >> (8 * i));
	for (size_t i = 0; i < tlen; i += 64)
		sha1_block(h, tail + i);
	for (int i = 0; i < 5; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

/* Writes the base64 of in to out (4 * ceil(n / 3) + 1 bytes, terminated). */
static void base64(const uint8_t *in, size_t n, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		*out++ = tab[v >> 18 & 63];
		*out++ = tab[v >> 12 & 63];
		*out++ = i + 1 < n ? tab[v >> 6 & 63] : '=';
		*out++ = i + 2 < n ? tab[v & 63] : '=';
	}
	*out = '\0';
}

/* Sec-WebSocket-Key (24 characters) and the Sec-WebSocket-Accept it asks
 * for (28) from a 16-byte nonce. */
static void ws_key(const uint8_t nonce[16], char key[25], char accept[29])
{
	char buf[24 + sizeof WS_GUID];
	uint8_t digest[20];

	base64(nonce, 16, key);
	memcpy(buf, key, 24);
	memcpy(buf + 24, WS_GUID, sizeof WS_GUID - 1);
	sha1(buf, 24 + sizeof WS_GUID - 1, digest);
	base64(digest, 20, accept);
}

/* ---- latency histogram: log-linear, under 1.6% error ---- */

#define HIST_SUB 64
#define HIST_BUCKETS (2 * HIST_SUB + 57 * HIST_SUB)

struct hist {
	uint64_t n;
	uint64_t min, max;
	double sum;
	uint64_t b[HIST_BUCKETS];
};

static unsigned hist_index(uint64_t v)
{
	int e, shift;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	e = 63 - __builtin_clzll(v); /* 7 .. 63 */
	shift = e - 6;               /* v >> shift is in [64, 128) */
	return (unsigned)(2 * HIST_SUB + (e - 7) * HIST_SUB + (int)((v >> shift) - HIST_SUB));
}

/* The largest value that falls into bucket i. */
static uint64_t hist_top(unsigned i)
{
	unsigned e, m;

	if (i < 2 * HIST_SUB)
		return i;
	e = (i - 2 * HIST_SUB) / HIST_SUB + 7;
	m = (i - 2 * HIST_SUB) % HIST_SUB + HIST_SUB;
	return ((uint64_t)(m + 1) << (e - 6)) - 1;
}

static void hist_add(struct hist *h, uint64_t v)
{
	if (!h->n || v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
	h->n++;
	h->sum += (double)v;
	h->b[hist_index(v)]++;
}

/* The q-quantile (nearest rank), as the top of its bucket, at most max. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	double want = q * (double)h->n;
	uint64_t rank = (uint64_t)want, cum = 0;

	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	for (unsigned i = 0; i < HIST_BUCKETS; i++) {
		cum += h->b[i];
		if (cum >= rank)
			return hist_top(i) < h->max ? hist_top(i) : h->max;
	}
	return h->max;
}

/* ---- counters keyed by a short string (close codes, HTTP statuses) ---- */

struct tally {
	char key[24];
	uint64_t n;
	char *note; /* the first close reason or failure detail */
};

struct tallies {
	struct tally t[MAX_TALLY];
	unsigned n;
};

/* Counts one of key; returns whether it is the first. */
static bool tally_add(struct tallies *ts, const char *key, const char *note, size_t note_len)
{
	struct tally *t;
	unsigned i;

	for (i = 0; i < ts->n; i++)
		if (!strcmp(ts->t[i].key, key))
			break;
	if (i == ts->n) {
		if (ts->n >= MAX_TALLY - 1)
			key = "more";
		for (i = 0; i < ts->n; i++)
			if (!strcmp(ts->t[i].key, key))
				break;
	}
	t = &ts->t[i];
	if (i == ts->n) {
		ts->n++;
		snprintf(t->key, sizeof t->key, "%s", key);
	}
	if (!t->note && note) {
		/* Printable ASCII only, so it can go to a log line and JSON. */
		t->note = xmalloc(note_len + 1);
		for (size_t j = 0; j < note_len; j++)
			t->note[j] = note[j] >= 0x20 && note[j] < 0x7f ? note[j] : '?';
		t->note[note_len] = '\0';
	}
	return t->n++ == 0;
}

/* Numeric keys first, by value; then the others by name. */
static int tally_cmp(const void *a, const void *b)
{
	const struct tally *x = a, *y = b;
	char *ex, *ey;
	long vx = strtol(x->key, &ex, 10), vy = strtol(y->key, &ey, 10);
	bool nx = ex != x->key && !*ex, ny = ey != y->key && !*ey;

	if (nx && ny)
		return vx < vy ? -1 : vx > vy;
	if (nx != ny)
		return nx ? -1 : 1;
	return strcmp(x->key, y->key);
}

static void tallies_free(struct tallies *ts)
{
	for (unsigned i = 0; i < ts->n; i++)
		free(ts->t[i].note);
	ts->n = 0;
}

/* ---- options ---- */

struct url {
	const char *text;
	char *hostport; /* for the Host header */
	char *path;
	struct sockaddr_in addr;
};

struct disconnect {
	uint32_t client;
	int64_t at_ms, for_ms; /* from the start of the run */
	bool done;
};

struct options {
	struct url *urls;
	unsigned nurls;
	uint32_t clients;
	const char *prefix;
	uint64_t ids_from;
	bool kws;
	int source_addrs;    /* -1: not given */
	double connect_rate; /* per second; 0: no limit */
	int64_t duration_ms; /* -1: not given */
	int64_t idle_ms;     /* -1: not given */
	int64_t connect_timeout_ms;
	int64_t progress_ms; /* 0: no progress lines */
	uint64_t expect;     /* 0: not given */
	const char *tag;
	const char *report;
	const char **stall_args;
	unsigned nstall_args;
	struct disconnect *disc;
	unsigned ndisc;
	const char **disc_args;
	bool resume;
	char *headers; /* extra "Name: value\r\n" lines */
	size_t headers_len;
	bool deflate;    /* offer permessage-deflate, as browsers do */
	const char *jwt; /* ALG:KEYFILE[:KID]: sign a token per client */
};

/* ---- per client state ---- */

enum cstate {
	C_IDLE,       /* no connection and none planned */
	C_WAIT,       /* waiting for its timer to connect */
	C_QUEUED,     /* in the connect queue (--connect-rate) */
	C_CONNECTING, /* TCP connect in progress */
	C_HANDSHAKE,  /* request sent, reading the response */
	C_OPEN,
	C_CLOSING, /* we sent a close, waiting for the server's */
};

enum {
	F_EVER_OPEN = 1 << 0, /* completed a handshake once */
	F_GAVE_UP = 1 << 1,   /* did not connect within --connect-timeout-s */
	F_SEEN = 1 << 2,      /* received a record of its own */
	F_STALL = 1 << 3,     /* --stall: stops reading once the run starts */
	F_STALLED = 1 << 4,   /* not reading now */
	F_KWS = 1 << 5,       /* this connection speaks kws.v1 */
	F_PRESENTED = 1 << 6, /* this connection presented a position */
	F_GOT_STATE = 1 << 7, /* this connection got its first s message */
	F_CLOSE_SENT = 1 << 8,
	F_FRAG = 1 << 9,          /* inside a fragmented message */
	F_HAS_POS = 1 << 10,      /* part:offset is a position */
	F_DISCONNECTED = 1 << 11, /* closed by --disconnect; reconnects at due */
	F_COMPLETE = 1 << 12,     /* has every seq below --expect-per-client */
	F_BAD_ORDER = 1 << 13,    /* a kws.v1 error of this connection was counted */
	F_PMD = 1 << 14,          /* permessage-deflate was agreed on this connection */
	F_FRAG_Z = 1 << 15,       /* the fragmented message is compressed */
};

enum { ST_LIVE, ST_COMPLETE, ST_INCOMPLETE, ST_UNKNOWN, NSTATES };
static const char *const state_names[NSTATES] = { "live", "complete", "incomplete", "unknown" };

/* Seqs in [lo, hi) not received (yet). */
struct span {
	uint64_t lo, hi;
};

struct client {
	int fd;
	uint32_t flags;
	uint32_t events; /* epoll interest; 0: not registered */
	uint8_t state;
	uint8_t url;         /* --url of the current or next connection */
	uint8_t first_state; /* state of its first kws.v1 session; NSTATES: none */
	uint8_t fop;         /* opcode of the fragmented message */
	uint8_t nonce[16];   /* of the Sec-WebSocket-Key in flight */
	int32_t part;        /* position: partition and next offset */
	int64_t offset;
	int64_t due;          /* timer, monotonic ms; 0: none */
	int64_t last_rx;      /* monotonic ms of its last own record */
	uint32_t longest_gap; /* ms between two of its records */
	uint32_t wlen, woff;  /* wbuf: output the socket did not take */
	char *wbuf;
	char *rbuf; /* input not parsed yet: a partial frame */
	uint32_t rlen;
	uint32_t flen; /* frag: the fragments received so far */
	char *frag;
	z_stream *z;   /* permessage-deflate's inflater, from the first compressed message */
	uint8_t zbits; /* its window: the server's server_max_window_bits, else 15 */
	uint64_t next; /* highest seq received + 1 */
	uint64_t min_seq;
	uint64_t have;     /* distinct seqs below --expect-per-client */
	struct span *gaps; /* sorted */
	uint32_t ngaps, gcap;
	uint32_t records, dups, reorders, foreign;
};

enum phase { P_CONNECT, P_RUN, P_CLOSING, P_DONE };
enum act { ACT_OK, ACT_END };

struct loadgen {
	struct options o;
	struct client *c;
	int ep;
	enum phase phase;
	uint32_t *queue; /* ring of client indexes waiting to connect */
	uint32_t qhead, qlen;
	double tokens;
	int64_t tokens_at;
	int64_t now, wall; /* clocks of the event being handled */
	int64_t t_start, t_run, t_stop, t_last_msg, next_due, next_progress;
	int64_t connect_ms;
	double cpu_at_run;      /* process CPU seconds when the run began */
	uint32_t pending_first; /* neither connected once nor given up */
	uint32_t open, ever_open, complete;
	uint64_t messages, records, other, unparsed, foreign, dups, reorders;
	uint64_t proto_errors, reconnects, presented, refused;
	uint64_t deflated; /* messages that came compressed */
	uint32_t pmd_open; /* connections that agreed permessage-deflate */
	uint64_t close_timeouts, disc_skipped, state_changes;
	uint64_t states[NSTATES], resumed[NSTATES];
	unsigned logged_unparsed, logged_proto;
	bool warned_refused;
	struct tallies closes, hs_fail;
	struct hist lat;
	FILE *report;
	char *rd;   /* the shared read buffer */
	char *zout; /* a compressed message inflated */
	size_t zcap;
	char **jwts; /* --jwt: client i's token */
};

static struct loadgen L;
static volatile sig_atomic_t stop_signals;

static void usage(FILE *f)
{
	fputs("usage: loadgen --url ws://HOST[:PORT]/PATH [--url ...]... --clients N\n"
	      "               [--prefix PREFIX] [--ids-from K] [--subprotocol kws.v1|none]\n"
	      "               [--source-addrs S] [--connect-rate R] [--connect-timeout-s T]\n"
	      "               [--duration-s S | --until-idle-s S] [--expect-per-client M]\n"
	      "               [--tag TAG] [--report FILE.json] [--stall ID,ID...]\n"
	      "               [--disconnect ID:AT_S:FOR_S]... [--resume]\n"
	      "               [--header NAME:VALUE]... [--progress-s P] [--deflate]\n"
	      "               [--jwt ALG:KEYFILE[:KID]]\n"
	      "\n"
	      "Opens N WebSocket clients with ids PREFIX<K> .. PREFIX<K+N-1> (header\n"
	      "X-Client-Id), round-robin over the --url list, on one epoll loop, and\n"
	      "checks the records they receive. Records are the JSON values of\n"
	      "tests/tools/produce: {\"key\":\"client-3\",\"seq\":17,\"ts\":<wall ms>,...},\n"
	      "seq counting the records of a key from 0.\n"
	      "\n"
	      "  --url URL            a router's WebSocket URL (ws:// only); repeat for\n"
	      "                       several routers\n"
	      "  --clients N          number of clients, 1 to 1000000 (required)\n"
	      "  --prefix PREFIX      id prefix (default \"client-\")\n"
	      "  --ids-from K         number of the first id (default 0)\n"
	      "  --subprotocol P      kws.v1 (default): ask for it, track positions and\n"
	      "                       states; none: every message is a bare record\n"
	      "  --source-addrs S     connect from 127.0.0.1 .. 127.0.0.S (default 8 when\n"
	      "                       every URL is on 127/8, else 0: no bind)\n"
	      "  --connect-rate R     new connections per second, reconnects included\n"
	      "                       (default 2000; 0: no limit)\n"
	      "  --connect-timeout-s T  clients not connected T seconds after the start\n"
	      "                       give up (default 60); failed attempts are retried\n"
	      "                       every 200 ms on the next URL until then\n"
	      "  --duration-s S       run S seconds after every client connected\n"
	      "  --until-idle-s S     run until every client has all of its\n"
	      "                       --expect-per-client records, or until no message\n"
	      "                       arrived for S seconds (counted from the moment every\n"
	      "                       client connected or from the last message)\n"
	      "                       (neither: run until SIGINT or SIGTERM)\n"
	      "  --expect-per-client M  each client should get seqs 0 .. M-1 (see lost)\n"
	      "  --tag TAG            check only records with \"tag\":\"TAG\"; others count\n"
	      "                       as \"other\"\n"
	      "  --report FILE        also write every counter as a JSON object to FILE\n"
	      "  --stall IDS          these clients (full ids, comma-separated) stop reading\n"
	      "                       once every client connected; the socket stays open.\n"
	      "                       A stalled client sends an unsolicited pong each\n"
	      "                       second, so that it notices (by a reset) when the\n"
	      "                       router drops it; it then reads what did arrive\n"
	      "                       (records, perhaps the router's close frame; if not,\n"
	      "                       the close counts as 1006) and, with --resume,\n"
	      "                       reconnects and reads normally. A client stalled\n"
	      "                       before its first record has no position to present\n"
	      "                       and resumes at the live end\n"
	      "  --disconnect ID:AT_S:FOR_S  client ID closes (code 1000) AT_S seconds after\n"
	      "                       every client connected and reconnects with its\n"
	      "                       position FOR_S seconds after that; may be repeated\n"
	      "  --resume             after any close or reset, reconnect after 200 ms to\n"
	      "                       the next URL, presenting X-Kws-Position (kws.v1)\n"
	      "  --header NAME:VALUE  an extra handshake header; may be repeated\n"
	      "  --deflate            offer permessage-deflate (RFC 7692) as browsers do\n"
	      "                       (\"permessage-deflate; client_max_window_bits\") and\n"
	      "                       inflate the compressed messages; what is sent stays\n"
	      "                       uncompressed. Without it an agreed extension is a\n"
	      "                       handshake failure (bad-extension)\n"
	      "  --jwt ALG:KEYFILE[:KID]  sign a token for each client before the run\n"
	      "                       ({\"sub\":ID,\"exp\":now+1 day}, ALG HS256, RS256 or\n"
	      "                       ES256, with header kid KID if given) and send it as\n"
	      "                       Authorization: Bearer (for a router with --auth jwt)\n"
	      "  --progress-s P       a progress line on stderr every P seconds (default 5;\n"
	      "                       0: none)\n"
	      "  --help               this text\n"
	      "\n"
	      "Per client, over its own records (key = its id, tag matching):\n"
	      "  duplicated  a seq received again\n"
	      "  reordered   a seq received after a higher one, the first time\n"
	      "  lost        seqs never received in [lo, hi], where without\n"
	      "              --expect-per-client lo and hi are the lowest and highest seq\n"
	      "              it received (nothing received: 0 lost), and with it lo = 0 and\n"
	      "              hi = max(M - 1, highest seq received) (nothing received: M)\n"
	      "  foreign     records of another key (not checked further)\n"
	      "  records     its own records, duplicates included\n"
	      "  longest_gap_ms  the longest time between two of its records; the summary\n"
	      "              gives the maximum over the clients and gap_p99_ms the 99th\n"
	      "              percentile\n"
	      "Latency is receive wall clock minus \"ts\", over its own records.\n"
	      "closes counts the close codes the routers sent, 1006 for a connection\n"
	      "that ended without a close frame; the final close is not counted. states\n"
	      "counts the first kws.v1 state line of each session, resumed those of the\n"
	      "sessions that presented a position. unparsed: messages that are not\n"
	      "producer records; protocol_errors: WebSocket or kws.v1 violations;\n"
	      "subprotocol_refused: 101 responses without kws.v1 (their messages are then\n"
	      "taken as bare records); handshake_failures: failed connection attempts by\n"
	      "HTTP status or cause.\n"
	      "\n"
	      "Prints one summary line on stdout. Exit status: 0 after a run (judge the\n"
	      "counters), 1 on an internal error or when no client connected at all,\n"
	      "2 on bad arguments.\n",
	      f);
}

__attribute__((format(printf, 1, 2), noreturn)) static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("loadgen: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'loadgen --help'.\n", stderr);
	exit(2);
}

/* Parses a whole unsigned decimal number up to max; returns 0 or -1. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

/* Parses seconds (a non-negative decimal, at most a year) into ms. */
static int parse_secs(const char *s, int64_t *ms)
{
	double v;
	char *end;

	if ((*s < '0' || *s > '9') && *s != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < 0 || v > 366 * 86400.0)
		return -1;
	*ms = (int64_t)(v * 1000 + 0.5);
	return 0;
}

static void parse_url(const char *text, struct url *u)
{
	const char *p = text, *hp, *slash, *colon;
	char host[256], port[8] = "80";
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res;
	size_t hlen;
	uint64_t v;
	int err;

	if (!strncmp(p, "wss://", 6))
		die_usage("--url %s: wss:// is not supported; use ws://", text);
	if (strncmp(p, "ws://", 5))
		die_usage("--url wants ws://HOST[:PORT][/PATH], got '%s'", text);
	hp = p + 5;
	slash = strchr(hp, '/');
	if (!slash)
		slash = hp + strlen(hp);
	if (*hp == '[')
		die_usage("--url %s: IPv6 addresses are not supported", text);
	colon = memchr(hp, ':', (size_t)(slash - hp));
	hlen = (size_t)((colon ? colon : slash) - hp);
	if (hlen == 0 || hlen >= sizeof host)
		die_usage("--url %s: bad host", text);
	memcpy(host, hp, hlen);
	host[hlen] = '\0';
	if (colon) {
		size_t plen = (size_t)(slash - colon - 1);

		if (plen == 0 || plen >= sizeof port)
			die_usage("--url %s: bad port", text);
		memcpy(port, colon + 1, plen);
		port[plen] = '\0';
		if (parse_u64(port, 65535, &v) || v == 0)
			die_usage("--url %s: bad port '%s'", text, port);
	}
	for (const char *q = hp; *q; q++)
		if ((unsigned char)*q <= 0x20 || *q == 0x7f)
			die_usage("--url %s: spaces or control characters", text);
	u->text = text;
	u->hostport = xstrndup(hp, (size_t)(slash - hp));
	u->path = xstrdup(*slash ? slash : "/");
	err = getaddrinfo(host, port, &hints, &res);
	if (err)
		die_usage("--url %s: cannot resolve '%s': %s", text, host, gai_strerror(err));
	memcpy(&u->addr, res->ai_addr, sizeof u->addr);
	freeaddrinfo(res);
}

/* Parses a full client id into its index; returns 0 or -1. */
static int parse_id(const struct options *o, const char *id, size_t len, uint32_t *idx)
{
	size_t plen = strlen(o->prefix);
	char num[24];
	uint64_t v;

	if (len <= plen || memcmp(id, o->prefix, plen) || len - plen >= sizeof num)
		return -1;
	memcpy(num, id + plen, len - plen);
	num[len - plen] = '\0';
	if ((num[0] == '0' && num[1]) || parse_u64(num, UINT64_MAX, &v))
		return -1;
	if (v < o->ids_from || v - o->ids_from >= o->clients)
		return -1;
	*idx = (uint32_t)(v - o->ids_from);
	return 0;
}

static void add_header(struct options *o, const char *arg)
{
	const char *colon = strchr(arg, ':'), *val;
	size_t nlen, vlen;

	if (!colon || colon == arg)
		die_usage("--header wants NAME:VALUE, got '%s'", arg);
	nlen = (size_t)(colon - arg);
	for (size_t i = 0; i < nlen; i++)
		if (!strchr("!#$%&'*+-.^_`|~", arg[i]) && !(arg[i] >= '0' && arg[i] <= '9') &&
		    !(arg[i] >= 'a' && arg[i] <= 'z') && !(arg[i] >= 'A' && arg[i] <= 'Z'))
			die_usage("--header %s: bad character in the name", arg);
	val = colon + 1;
	while (*val == ' ' || *val == '\t')
		val++;
	vlen = strlen(val);
	for (size_t i = 0; i < vlen; i++)
		if (((unsigned char)val[i] < 0x20 && val[i] != '\t') || val[i] == 0x7f)
			die_usage("--header %s: control character in the value", arg);
	o->headers = xrealloc(o->headers, o->headers_len + nlen + vlen + 5);
	o->headers_len +=
		(size_t)sprintf(o->headers + o->headers_len, "%.*s: %s\r\n", (int)nlen, arg, val);
}

static void parse_args(int argc, char **argv, struct options *o)
{
	enum {
		O_URL = 256,
		O_CLIENTS,
		O_PREFIX,
		O_IDS_FROM,
		O_SUBPROTOCOL,
		O_SOURCE_ADDRS,
		O_CONNECT_RATE,
		O_CONNECT_TIMEOUT,
		O_DURATION,
		O_IDLE,
		O_EXPECT,
		O_TAG,
		O_REPORT,
		O_STALL,
		O_DISCONNECT,
		O_RESUME,
		O_HEADER,
		O_PROGRESS,
		O_DEFLATE,
		O_JWT,
		O_HELP
	};
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, O_URL },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "ids-from", required_argument, NULL, O_IDS_FROM },
		{ "subprotocol", required_argument, NULL, O_SUBPROTOCOL },
		{ "source-addrs", required_argument, NULL, O_SOURCE_ADDRS },
		{ "connect-rate", required_argument, NULL, O_CONNECT_RATE },
		{ "connect-timeout-s", required_argument, NULL, O_CONNECT_TIMEOUT },
		{ "duration-s", required_argument, NULL, O_DURATION },
		{ "until-idle-s", required_argument, NULL, O_IDLE },
		{ "expect-per-client", required_argument, NULL, O_EXPECT },
		{ "tag", required_argument, NULL, O_TAG },
		{ "report", required_argument, NULL, O_REPORT },
		{ "stall", required_argument, NULL, O_STALL },
		{ "disconnect", required_argument, NULL, O_DISCONNECT },
		{ "resume", no_argument, NULL, O_RESUME },
		{ "header", required_argument, NULL, O_HEADER },
		{ "progress-s", required_argument, NULL, O_PROGRESS },
		{ "deflate", no_argument, NULL, O_DEFLATE },
		{ "jwt", required_argument, NULL, O_JWT },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	const char **url_args = NULL;
	unsigned nurl_args = 0;
	bool clients_set = false;
	uint64_t v;
	char *end;
	int c;

	o->prefix = "client-";
	o->kws = true;
	o->source_addrs = -1;
	o->connect_rate = 2000;
	o->duration_ms = -1;
	o->idle_ms = -1;
	o->connect_timeout_ms = 60000;
	o->progress_ms = 5000;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case O_URL:
			if (nurl_args == MAX_URLS)
				die_usage("at most %d --url", MAX_URLS);
			url_args = xrealloc(url_args, (nurl_args + 1) * sizeof *url_args);
			url_args[nurl_args++] = optarg;
			break;
		case O_CLIENTS:
			if (parse_u64(optarg, MAX_CLIENTS, &v) || v == 0)
				die_usage("--clients wants an integer from 1 to %d, got '%s'",
					  MAX_CLIENTS, optarg);
			o->clients = (uint32_t)v;
			clients_set = true;
			break;
		case O_PREFIX:
			if (strlen(optarg) > MAX_PREFIX)
				die_usage("--prefix is longer than %d bytes", MAX_PREFIX);
			for (const char *q = optarg; *q; q++)
				if ((unsigned char)*q < 0x20 || *q == 0x7f)
					die_usage("--prefix has a control character");
			o->prefix = optarg;
			break;
		case O_IDS_FROM:
			if (parse_u64(optarg, UINT64_MAX - MAX_CLIENTS, &o->ids_from))
				die_usage("--ids-from wants a non-negative integer, got '%s'",
					  optarg);
			break;
		case O_SUBPROTOCOL:
			if (!strcmp(optarg, SUBPROTOCOL))
				o->kws = true;
			else if (!strcmp(optarg, "none"))
				o->kws = false;
			else
				die_usage("--subprotocol wants %s or none, got '%s'", SUBPROTOCOL,
					  optarg);
			break;
		case O_SOURCE_ADDRS:
			if (parse_u64(optarg, MAX_SOURCE_ADDRS, &v))
				die_usage("--source-addrs wants an integer from 0 to %d, got '%s'",
					  MAX_SOURCE_ADDRS, optarg);
			o->source_addrs = (int)v;
			break;
		case O_CONNECT_RATE:
			errno = 0;
			o->connect_rate = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(o->connect_rate) ||
			    o->connect_rate < 0)
				die_usage("--connect-rate wants a non-negative number of "
					  "connections per second, got '%s'",
					  optarg);
			break;
		case O_CONNECT_TIMEOUT:
			if (parse_secs(optarg, &o->connect_timeout_ms) ||
			    o->connect_timeout_ms == 0)
				die_usage("--connect-timeout-s wants a positive number of "
					  "seconds, got '%s'",
					  optarg);
			break;
		case O_DURATION:
			if (parse_secs(optarg, &o->duration_ms) || o->duration_ms == 0)
				die_usage("--duration-s wants a positive number of seconds, "
					  "got '%s'",
					  optarg);
			break;
		case O_IDLE:
			if (parse_secs(optarg, &o->idle_ms) || o->idle_ms == 0)
				die_usage("--until-idle-s wants a positive number of seconds, "
					  "got '%s'",
					  optarg);
			break;
		case O_EXPECT:
			if (parse_u64(optarg, UINT32_MAX, &o->expect) || o->expect == 0)
				die_usage("--expect-per-client wants a positive integer, got '%s'",
					  optarg);
			break;
		case O_TAG:
			if (!*optarg || strpbrk(optarg, "\"\\"))
				die_usage("--tag wants a non-empty tag without quotes or "
					  "backslashes");
			o->tag = optarg;
			break;
		case O_REPORT:
			if (!*optarg)
				die_usage("--report wants a file name");
			o->report = optarg;
			break;
		case O_STALL:
			o->stall_args = xrealloc(o->stall_args,
						 (o->nstall_args + 1) * sizeof *o->stall_args);
			o->stall_args[o->nstall_args++] = optarg;
			break;
		case O_DISCONNECT:
			o->disc_args =
				xrealloc(o->disc_args, (o->ndisc + 1) * sizeof *o->disc_args);
			o->disc_args[o->ndisc++] = optarg;
			break;
		case O_RESUME:
			o->resume = true;
			break;
		case O_DEFLATE:
			o->deflate = true;
			break;
		case O_JWT:
			o->jwt = optarg;
			break;
		case O_HEADER:
			add_header(o, optarg);
			break;
		case O_PROGRESS:
			if (parse_secs(optarg, &o->progress_ms))
				die_usage("--progress-s wants a number of seconds, got '%s'",
					  optarg);
			break;
		case O_HELP:
			usage(stdout);
			exit(0);
		case ':':
			die_usage("option '%s' needs a value", argv[optind - 1]);
		default:
			die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die_usage("unexpected argument '%s'", argv[optind]);
	if (!nurl_args)
		die_usage("missing --url ws://HOST:PORT/ws");
	if (!clients_set)
		die_usage("missing --clients N");
	if (o->duration_ms >= 0 && o->idle_ms >= 0)
		die_usage("--duration-s and --until-idle-s exclude each other");

	o->urls = xcalloc(nurl_args, sizeof *o->urls);
	o->nurls = nurl_args;
	for (unsigned i = 0; i < nurl_args; i++)
		parse_url(url_args[i], &o->urls[i]);
	free(url_args);
	{
		bool loopback = true;

		for (unsigned i = 0; i < o->nurls; i++)
			if (ntohl(o->urls[i].addr.sin_addr.s_addr) >> 24 != 127)
				loopback = false;
		if (o->source_addrs < 0)
			o->source_addrs = loopback ? 8 : 0;
		else if (o->source_addrs > 0 && !loopback)
			die_usage("--source-addrs binds to 127.0.0.x, so every --url must be "
				  "on 127/8; use --source-addrs 0");
	}

	/* Ids need --prefix, --ids-from and --clients, so they come last. */
	for (unsigned i = 0; i < o->nstall_args; i++) {
		const char *s = o->stall_args[i];

		for (;;) {
			size_t len = strcspn(s, ",");
			uint32_t idx;

			if (parse_id(o, s, len, &idx))
				die_usage("--stall: '%.*s' is not one of the ids %s%" PRIu64
					  " .. %s%" PRIu64,
					  (int)len, s, o->prefix, o->ids_from, o->prefix,
					  o->ids_from + o->clients - 1);
			if (!s[len])
				break;
			s += len + 1;
		}
	}
	o->disc = xcalloc(o->ndisc ? o->ndisc : 1, sizeof *o->disc);
	for (unsigned i = 0; i < o->ndisc; i++) {
		const char *s = o->disc_args[i];
		const char *c2 = strrchr(s, ':'), *c1;
		char at[32], dur[32];

		if (!c2 || c2 == s)
			die_usage("--disconnect wants ID:AT_S:FOR_S, got '%s'", s);
		c1 = c2 - 1;
		while (c1 > s && *c1 != ':')
			c1--;
		if (*c1 != ':' || c1 == s || (size_t)(c2 - c1 - 1) >= sizeof at ||
		    strlen(c2 + 1) >= sizeof dur)
			die_usage("--disconnect wants ID:AT_S:FOR_S, got '%s'", s);
		memcpy(at, c1 + 1, (size_t)(c2 - c1 - 1));
		at[c2 - c1 - 1] = '\0';
		strcpy(dur, c2 + 1);
		if (parse_id(o, s, (size_t)(c1 - s), &o->disc[i].client))
			die_usage("--disconnect %s: '%.*s' is not one of the ids %s%" PRIu64
				  " .. %s%" PRIu64,
				  s, (int)(c1 - s), s, o->prefix, o->ids_from, o->prefix,
				  o->ids_from + o->clients - 1);
		if (parse_secs(at, &o->disc[i].at_ms) || parse_secs(dur, &o->disc[i].for_ms))
			die_usage("--disconnect %s: AT_S and FOR_S want seconds", s);
	}
}

/* ---- clients ---- */

static uint32_t client_index(const struct client *c)
{
	return (uint32_t)(c - L.c);
}

/* Writes the id of c into buf; returns its length. */
static size_t client_id(const struct client *c, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%s%" PRIu64, L.o.prefix, L.o.ids_from + client_index(c));

	return n < 0 ? 0 : (size_t)n < cap ? (size_t)n : cap - 1;
}

#define ID_MAX (MAX_PREFIX + 24)

static void set_due(struct client *c, int64_t at)
{
	c->due = at;
	if (at && (!L.next_due || at < L.next_due))
		L.next_due = at;
}

/* Sets the epoll interest the state asks for. */
static void arm(struct client *c)
{
	struct epoll_event ev = { 0 };
	uint32_t want;

	if (c->fd < 0)
		return;
	if (c->state == C_CONNECTING) {
		want = EPOLLOUT;
	} else {
		want = c->flags & F_STALLED ? EPOLLRDHUP : EPOLLIN;
		if (c->woff < c->wlen)
			want |= EPOLLOUT;
	}
	if (want == c->events)
		return;
	ev.events = want;
	ev.data.u32 = client_index(c);
	if (epoll_ctl(L.ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &ev) < 0) {
		log_error("epoll_ctl: %s", strerror(errno));
		exit(1);
	}
	c->events = want;
}

static void enqueue(struct client *c)
{
	c->state = C_QUEUED;
	c->due = 0;
	L.queue[(L.qhead + L.qlen) % L.o.clients] = client_index(c);
	L.qlen++;
}

/* Counts a failed connection attempt; logs the first of each kind. */
static void hs_fail(struct client *c, const char *key, const char *note, size_t note_len)
{
	char id[ID_MAX];

	if (tally_add(&L.hs_fail, key, note, note_len)) {
		client_id(c, id, sizeof id);
		log_warn("%s: connecting to %s failed (%s): %.*s%s", id, L.o.urls[c->url].text, key,
			 (int)note_len, note ? note : "",
			 L.o.kws && (!strcmp(key, "eof") || !strcmp(key, "400"))
				 ? " (does the router support the subprotocol " SUBPROTOCOL
				   "? try --subprotocol none)"
				 : "");
	}
}

/* Ends the connection of c (if any) and plans the next one. */
static void conn_end(struct client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->events = 0;
	if (c->state == C_OPEN || c->state == C_CLOSING)
		L.open--;
	free(c->wbuf);
	free(c->rbuf);
	free(c->frag);
	c->wbuf = c->rbuf = c->frag = NULL;
	if (c->z) {
		inflateEnd(c->z);
		free(c->z);
		c->z = NULL;
	}
	if (c->flags & F_PMD)
		L.pmd_open--;
	c->wlen = c->woff = c->rlen = c->flen = 0;
	/* A stalled client reads normally on its next connection. */
	if (c->flags & F_STALLED)
		c->flags &= ~(uint32_t)(F_STALL | F_STALLED);
	c->flags &= ~(uint32_t)(F_KWS | F_PRESENTED | F_GOT_STATE | F_CLOSE_SENT | F_FRAG |
				F_BAD_ORDER | F_PMD | F_FRAG_Z);
	c->state = C_IDLE;
	c->due = 0;
	if (L.phase >= P_CLOSING)
		return;
	if (c->flags & F_DISCONNECTED) {
		int64_t at = 0;

		c->flags &= ~(uint32_t)F_DISCONNECTED;
		for (unsigned i = 0; i < L.o.ndisc; i++)
			if (L.o.disc[i].client == client_index(c) && L.o.disc[i].done)
				at = L.t_run + L.o.disc[i].at_ms + L.o.disc[i].for_ms;
		c->url = (uint8_t)((c->url + 1) % L.o.nurls);
		c->state = C_WAIT;
		set_due(c, at > L.now ? at : L.now);
	} else if ((c->flags & F_EVER_OPEN) ? L.o.resume : L.phase == P_CONNECT) {
		c->url = (uint8_t)((c->url + 1) % L.o.nurls);
		c->state = C_WAIT;
		set_due(c, L.now + RECONNECT_DELAY_MS);
	}
}

/* Counts a close the router sent (1006: none); logs the first of each code. */
static void count_close(struct client *c, const char *code, const char *reason, size_t len)
{
	char id[ID_MAX];

	if (tally_add(&L.closes, code, reason, len)) {
		client_id(c, id, sizeof id);
		log_info("%s: first close %s from %s: %.*s", id, code, L.o.urls[c->url].text,
			 (int)len, reason);
	}
}

/* The connection of c broke: a reset, or the end without a close frame. */
static void conn_lost(struct client *c, const char *why)
{
	if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
		hs_fail(c, "eof", why, strlen(why));
	else if (c->state == C_OPEN && L.phase < P_CLOSING)
		count_close(c, "1006", why, strlen(why));
	conn_end(c);
}

/* Sends (or queues) n bytes; returns -1 when the connection broke. */
static int conn_send(struct client *c, const void *p, size_t n)
{
	size_t done = 0;

	if (c->woff == c->wlen) {
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -1;
			w = 0;
		}
		done = (size_t)w;
		if (done == n)
			return 0;
	}
	if (c->woff) {
		memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
		c->wlen -= c->woff;
		c->woff = 0;
	}
	c->wbuf = xrealloc(c->wbuf, c->wlen + n - done);
	memcpy(c->wbuf + c->wlen, (const char *)p + done, n - done);
	c->wlen += (uint32_t)(n - done);
	arm(c);
	return 0;
}

static int conn_flush(struct client *c)
{
	while (c->woff < c->wlen) {
		ssize_t w = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -1;
		}
		c->woff += (uint32_t)w;
	}
	if (c->woff == c->wlen) {
		free(c->wbuf);
		c->wbuf = NULL;
		c->wlen = c->woff = 0;
	}
	arm(c);
	return 0;
}

/* Sends a masked control frame (payload up to 125 bytes). */
static int send_control(struct client *c, unsigned op, const void *payload, size_t n)
{
	uint8_t f[6 + 125];
	uint64_t mask = random_u64();
	const uint8_t *p = payload;

	if (n > 125)
		n = 125;
	f[0] = (uint8_t)(0x80 | op);
	f[1] = (uint8_t)(0x80 | n);
	memcpy(f + 2, &mask, 4);
	for (size_t i = 0; i < n; i++)
		f[6 + i] = p[i] ^ f[2 + (i & 3)];
	return conn_send(c, f, 6 + n);
}

static int send_close(struct client *c, unsigned code, const char *reason)
{
	uint8_t p[125];
	size_t n = strlen(reason);

	if (n > sizeof p - 2)
		n = sizeof p - 2;
	p[0] = (uint8_t)(code >> 8);
	p[1] = (uint8_t)code;
	memcpy(p + 2, reason, n);
	c->flags |= F_CLOSE_SENT;
	return send_control(c, 0x8, p, n + 2);
}

/* Starts a close handshake from our side. */
static void conn_close(struct client *c, const char *reason)
{
	if (send_close(c, 1000, reason) < 0) {
		conn_end(c);
		return;
	}
	c->state = C_CLOSING;
	set_due(c, L.now + CLOSE_TIMEOUT_MS);
}

static void stall(struct client *c)
{
	c->flags |= F_STALLED;
	arm(c);
	set_due(c, L.now + STALL_PROBE_MS);
}

static void send_request(struct client *c)
{
	const struct url *u = &L.o.urls[c->url];
	char key[25], accept[29], id[ID_MAX], pos[48] = "";
	uint64_t r0 = random_u64(), r1 = random_u64();
	const char *tok = L.jwts ? L.jwts[client_index(c)] : NULL;
	size_t cap = 512 + strlen(u->path) + strlen(u->hostport) + sizeof id + L.o.headers_len +
		     (tok ? strlen(tok) : 0);
	char *req = xmalloc(cap);
	int n;

	memcpy(c->nonce, &r0, 8);
	memcpy(c->nonce + 8, &r1, 8);
	ws_key(c->nonce, key, accept);
	client_id(c, id, sizeof id);
	if (c->flags & F_HAS_POS) {
		snprintf(pos, sizeof pos, "X-Kws-Position: %" PRId32 ":%" PRId64 "\r\n", c->part,
			 c->offset);
		c->flags |= F_PRESENTED;
	}
	n = snprintf(req, cap,
		     "GET %s HTTP/1.1\r\n"
		     "Host: %s\r\n"
		     "Upgrade: websocket\r\n"
		     "Connection: Upgrade\r\n"
		     "Sec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Version: 13\r\n"
		     "%s%s"
		     "X-Client-Id: %s\r\n"
		     "%s%s%s%s%.*s\r\n",
		     u->path, u->hostport, key,
		     L.o.kws ? "Sec-WebSocket-Protocol: " SUBPROTOCOL "\r\n" : "",
		     L.o.deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
				   "client_max_window_bits\r\n"
				 : "",
		     id, tok ? "Authorization: Bearer " : "", tok ? tok : "", tok ? "\r\n" : "",
		     pos, (int)L.o.headers_len, L.o.headers ? L.o.headers : "");
	c->state = C_HANDSHAKE;
	if (conn_send(c, req, (size_t)n) < 0) {
		const char *e = strerror(errno);

		free(req);
		conn_lost(c, e);
		return;
	}
	free(req);
	arm(c);
}

static void conn_start(struct client *c)
{
	const struct url *u = &L.o.urls[c->url];
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		const char *e = strerror(errno);

		hs_fail(c, "socket", e, strlen(e));
		conn_end(c);
		return;
	}
	c->fd = fd;
	c->events = 0;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (L.o.source_addrs > 0) {
		struct sockaddr_in src = { .sin_family = AF_INET };

		src.sin_addr.s_addr =
			htonl(0x7f000001u + client_index(c) % (uint32_t)L.o.source_addrs);
		/* The port is picked at connect(), per destination, so the
		 * ephemeral ports of one source address serve every router. */
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
		if (bind(fd, (const struct sockaddr *)&src, sizeof src) < 0) {
			const char *e = strerror(errno);

			hs_fail(c, "bind", e, strlen(e));
			conn_end(c);
			return;
		}
	}
	set_due(c, L.now + HANDSHAKE_TIMEOUT_MS);
	if (connect(fd, (const struct sockaddr *)&u->addr, sizeof u->addr) < 0) {
		if (errno != EINPROGRESS) {
			const char *e = strerror(errno);

			hs_fail(c, "connect", e, strlen(e));
			conn_end(c);
			return;
		}
		c->state = C_CONNECTING;
		arm(c);
		return;
	}
	send_request(c);
}

static void on_connected(struct client *c)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err) {
		const char *e = strerror(err);

		hs_fail(c, "connect", e, strlen(e));
		conn_end(c);
		return;
	}
	send_request(c);
}

/* ---- records ---- */

/* Compares the JSON string body raw (escapes not decoded) with want. */
static bool json_str_eq(const char *raw, size_t n, const char *want, size_t wlen)
{
	size_t i = 0, j = 0;

	/* Without escapes the raw bytes are the string (the usual case: one
	 * memcmp instead of one per character, a tenth of loadgen's CPU per
	 * 4 KiB record in a drain). */
	if (!memchr(raw, '\\', n))
		return n == wlen && !memcmp(raw, want, n);
	while (i < n) {
		unsigned ch = (unsigned char)raw[i++];
		char out[4];
		size_t olen = 1;

		if (ch == '\\') {
			if (i >= n)
				return false;
			ch = (unsigned char)raw[i++];
			switch (ch) {
			case 'b':
				ch = '\b';
				break;
			case 'f':
				ch = '\f';
				break;
			case 'n':
				ch = '\n';
				break;
			case 'r':
				ch = '\r';
				break;
			case 't':
				ch = '\t';
				break;
			case 'u': {
				unsigned v = 0;

				if (n - i < 4)
					return false;
				for (int k = 0; k < 4; k++) {
					char h = raw[i++];

					v <<= 4;
					if (h >= '0' && h <= '9')
						v |= (unsigned)(h - '0');
					else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f')
						v |= (unsigned)((h | 0x20) - 'a' + 10);
					else
						return false;
				}
				if (v >= 0xd800 && v < 0xe000)
					return false; /* surrogates: not in our ids */
				if (v < 0x80) {
					ch = v;
				} else if (v < 0x800) {
					out[0] = (char)(0xc0 | v >> 6);
					out[1] = (char)(0x80 | (v & 0x3f));
					olen = 2;
				} else {
					out[0] = (char)(0xe0 | v >> 12);
					out[1] = (char)(0x80 | (v >> 6 & 0x3f));
					out[2] = (char)(0x80 | (v & 0x3f));
					olen = 3;
				}
				break;
			}
			default:
				break; /* \" \\ \/ */
			}
		}
		if (olen == 1)
			out[0] = (char)ch;
		if (wlen - j < olen || memcmp(want + j, out, olen))
			return false;
		j += olen;
	}
	return j == wlen;
}

struct rec {
	const char *key, *tag;
	size_t key_len, tag_len;
	bool has_key, has_seq, has_ts, has_tag;
	uint64_t seq;
	int64_t ts;
};

static size_t skip_ws(const char *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

/* Scans a JSON string starting at its opening quote p[i]; returns the index
 * after the closing quote, or 0. */
static size_t scan_string(const char *p, size_t n, size_t i)
{
	/* memchr to each quote, then its backslashes: an odd run escapes it.
	 * Byte by byte, a 4 KiB record took loadgen about a microsecond, on
	 * the cores the router and the edge share with it (bench). */
	for (i++; i < n;) {
		const char *q = memchr(p + i, '"', n - i);
		if (!q)
			return 0;
		size_t j = (size_t)(q - p), k = j;
		while (k > i && p[k - 1] == '\\')
			k--;
		if ((j - k) % 2 == 0)
			return j + 1;
		i = j + 1;
	}
	return 0;
}

/* Parses a flat JSON object of strings, numbers and literals, taking the
 * fields key, seq, ts and tag; returns 0, or -1 if it is not such an object
 * or key or seq is missing or not of the producer's type. */
static int parse_record(const char *p, size_t n, struct rec *r)
{
	size_t i = skip_ws(p, n, 0);

	memset(r, 0, sizeof *r);
	if (i >= n || p[i] != '{')
		return -1;
	i = skip_ws(p, n, i + 1);
	if (i < n && p[i] == '}')
		return -1;
	for (;;) {
		size_t name, name_len, val, end;

		if (i >= n || p[i] != '"' || !(end = scan_string(p, n, i)))
			return -1;
		name = i + 1;
		name_len = end - i - 2;
		i = skip_ws(p, n, end);
		if (i >= n || p[i] != ':')
			return -1;
		i = skip_ws(p, n, i + 1);
		if (i >= n)
			return -1;
		val = i;
		if (p[i] == '"') {
			if (!(end = scan_string(p, n, i)))
				return -1;
			if (name_len == 3 && !memcmp(p + name, "key", 3)) {
				r->key = p + val + 1;
				r->key_len = end - val - 2;
				r->has_key = true;
			} else if (name_len == 3 && !memcmp(p + name, "tag", 3)) {
				r->tag = p + val + 1;
				r->tag_len = end - val - 2;
				r->has_tag = true;
			}
			i = end;
		} else if (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) {
			bool neg = p[i] == '-', integer = true;
			uint64_t v = 0;

			if (neg)
				i++;
			if (i >= n || p[i] < '0' || p[i] > '9')
				return -1;
			for (; i < n && p[i] >= '0' && p[i] <= '9'; i++) {
				if (v > (UINT64_MAX - 9) / 10)
					integer = false;
				v = v * 10 + (uint64_t)(p[i] - '0');
			}
			for (; i < n && strchr(".eE+-0123456789", p[i]); i++)
				integer = false;
			if (name_len == 3 && !memcmp(p + name, "seq", 3)) {
				if (neg || !integer)
					return -1;
				r->seq = v;
				r->has_seq = true;
			} else if (name_len == 2 && !memcmp(p + name, "ts", 2) && integer &&
				   v <= INT64_MAX) {
				r->ts = neg ? -(int64_t)v : (int64_t)v;
				r->has_ts = true;
			}
		} else if (n - i >= 4 && (!memcmp(p + i, "true", 4) || !memcmp(p + i, "null", 4))) {
			i += 4;
		} else if (n - i >= 5 && !memcmp(p + i, "false", 5)) {
			i += 5;
		} else {
			return -1; /* nested: not the producer's format */
		}
		i = skip_ws(p, n, i);
		if (i < n && p[i] == ',') {
			i = skip_ws(p, n, i + 1);
			continue;
		}
		if (i < n && p[i] == '}')
			break;
		return -1;
	}
	if (skip_ws(p, n, i + 1) != n)
		return -1;
	return r->has_key && r->has_seq ? 0 : -1;
}

static void gap_add(struct client *c, uint64_t lo, uint64_t hi)
{
	if (c->ngaps == c->gcap) {
		c->gcap = c->gcap ? c->gcap * 2 : 2;
		c->gaps = xrealloc(c->gaps, c->gcap * sizeof *c->gaps);
	}
	c->gaps[c->ngaps].lo = lo;
	c->gaps[c->ngaps].hi = hi;
	c->ngaps++;
}

/* Takes seq out of the gaps; returns whether it was missing. */
static bool gap_take(struct client *c, uint64_t seq)
{
	uint32_t lo = 0, hi = c->ngaps;
	struct span *g;

	while (lo < hi) { /* the first gap with hi > seq */
		uint32_t mid = lo + (hi - lo) / 2;

		if (c->gaps[mid].hi > seq)
			hi = mid;
		else
			lo = mid + 1;
	}
	if (lo == c->ngaps || c->gaps[lo].lo > seq)
		return false;
	g = &c->gaps[lo];
	if (g->lo == seq) {
		g->lo++;
	} else if (g->hi == seq + 1) {
		g->hi--;
	} else {
		uint64_t top = g->hi;

		g->hi = seq;
		gap_add(c, 0, 0);
		g = &c->gaps[lo]; /* gap_add may have moved the array */
		memmove(g + 2, g + 1, (c->ngaps - lo - 2) * sizeof *g);
		g[1].lo = seq + 1;
		g[1].hi = top;
	}
	if (g->lo == g->hi) {
		memmove(g, g + 1, (c->ngaps - lo - 1) * sizeof *g);
		c->ngaps--;
	}
	if (!c->ngaps) {
		free(c->gaps);
		c->gaps = NULL;
		c->gcap = 0;
	}
	return true;
}

static void new_seq(struct client *c, uint64_t seq)
{
	if (seq < c->min_seq)
		c->min_seq = seq;
	if (L.o.expect && seq < L.o.expect && ++c->have == L.o.expect) {
		c->flags |= F_COMPLETE;
		L.complete++;
	}
}

static void on_seq(struct client *c, uint64_t seq)
{
	if (!(c->flags & F_SEEN)) {
		c->flags |= F_SEEN;
		c->min_seq = seq;
		if (seq > 0)
			gap_add(c, 0, seq);
		c->next = seq + 1;
		new_seq(c, seq);
	} else if (seq >= c->next) {
		if (seq > c->next)
			gap_add(c, c->next, seq);
		c->next = seq + 1;
		new_seq(c, seq);
	} else if (gap_take(c, seq)) {
		c->reorders++;
		L.reorders++;
		new_seq(c, seq);
	} else {
		c->dups++;
		L.dups++;
	}
}

static void on_record(struct client *c, const char *p, size_t n)
{
	char id[ID_MAX];
	size_t idlen;
	struct rec r;

	if (parse_record(p, n, &r)) {
		L.unparsed++;
		if (L.logged_unparsed++ < MAX_LOGGED) {
			client_id(c, id, sizeof id);
			log_warn("%s: not a producer record: %.*s%s", id, n > 120 ? 120 : (int)n, p,
				 n > 120 ? "..." : "");
		}
		return;
	}
	if (L.o.tag && (!r.has_tag || !json_str_eq(r.tag, r.tag_len, L.o.tag, strlen(L.o.tag)))) {
		L.other++;
		return;
	}
	idlen = client_id(c, id, sizeof id);
	if (!json_str_eq(r.key, r.key_len, id, idlen)) {
		c->foreign++;
		L.foreign++;
		return;
	}
	c->records++;
	L.records++;
	if (r.has_ts)
		hist_add(&L.lat, L.wall > r.ts ? (uint64_t)(L.wall - r.ts) : 0);
	if (c->flags & F_SEEN) {
		int64_t gap = L.now - c->last_rx;

		if (gap > (int64_t)c->longest_gap)
			c->longest_gap = gap > UINT32_MAX ? UINT32_MAX : (uint32_t)gap;
	}
	c->last_rx = L.now;
	on_seq(c, r.seq);
}

__attribute__((format(printf, 2, 3))) static void proto_error(struct client *c, const char *fmt,
							      ...)
{
	char id[ID_MAX], msg[256];
	va_list ap;

	L.proto_errors++;
	if (L.logged_proto++ >= MAX_LOGGED)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	client_id(c, id, sizeof id);
	log_warn("%s: protocol error: %s", id, msg);
}

/* Parses a decimal integer of the header line at *p; returns 0 or -1. */
static int header_num(char **p, int64_t min, int64_t max, int64_t *out)
{
	long long v;
	char *end;

	if (**p != '-' && (**p < '0' || **p > '9'))
		return -1;
	errno = 0;
	v = strtoll(*p, &end, 10);
	if (errno || v < min || v > max || (*end != ' ' && *end != '\0'))
		return -1;
	*out = v;
	*p = *end == ' ' ? end + 1 : end;
	return 0;
}

/* A kws.v1 message: "d <partition> <offset>\n<value>" or
 * "s <state> <partition> <offset>\n". */
static void on_kws_message(struct client *c, char *p, size_t n)
{
	char *nl = memchr(p, '\n', n), *q;
	int64_t part, off;

	if (!nl) {
		proto_error(c, "kws.v1 message without a header line: %.*s", n > 60 ? 60 : (int)n,
			    p);
		return;
	}
	*nl = '\0';
	if (p[0] == 'd' && p[1] == ' ') {
		q = p + 2;
		if (header_num(&q, 0, INT32_MAX, &part) || header_num(&q, 0, INT64_MAX - 1, &off) ||
		    *q) {
			proto_error(c, "bad kws.v1 header '%.60s'", p);
			return;
		}
		if (!(c->flags & (F_GOT_STATE | F_BAD_ORDER))) {
			c->flags |= F_BAD_ORDER;
			proto_error(c, "a record before the session's state line");
		}
		if (stages_want(off))
			stages_mark('D', (uint32_t)part, off, stages_now_us(), -1);
		c->part = (int32_t)part;
		c->offset = off + 1;
		c->flags |= F_HAS_POS;
		on_record(c, nl + 1, n - (size_t)(nl + 1 - p));
	} else if (p[0] == 's' && p[1] == ' ') {
		int st;

		q = p + 2;
		for (st = 0; st < ST_UNKNOWN; st++) {
			size_t len = strlen(state_names[st]);

			if (!strncmp(q, state_names[st], len) && q[len] == ' ')
				break;
		}
		q = strchr(q, ' ');
		if (q)
			q++;
		if (!q || header_num(&q, 0, INT32_MAX, &part) ||
		    header_num(&q, -2, INT64_MAX, &off) || *q) {
			proto_error(c, "bad kws.v1 header '%.60s'", p);
			return;
		}
		if (st == ST_UNKNOWN)
			proto_error(c, "unknown kws.v1 state in '%.60s'", p);
		if (c->flags & F_GOT_STATE) {
			L.state_changes++;
			return;
		}
		c->flags |= F_GOT_STATE;
		L.states[st]++;
		if (c->first_state == NSTATES)
			c->first_state = (uint8_t)st;
		if (c->flags & F_PRESENTED)
			L.resumed[st]++;
	} else {
		proto_error(c, "unknown kws.v1 header '%.60s'", p);
	}
}

static void on_message(struct client *c, char *p, size_t n)
{
	L.messages++;
	L.t_last_msg = L.now;
	if (c->flags & F_KWS)
		on_kws_message(c, p, n);
	else
		on_record(c, p, n);
}

/* ---- input ---- */

static bool header_token(const char *v, size_t n, const char *tok)
{
	size_t tl = strlen(tok);

	while (n) {
		size_t len;

		while (n && (*v == ' ' || *v == '\t' || *v == ',')) {
			v++;
			n--;
		}
		len = 0;
		while (len < n && v[len] != ',')
			len++;
		{
			size_t l = len;

			while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
				l--;
			if (l == tl && !strncasecmp(v, tok, tl))
				return true;
		}
		v += len;
		n -= len;
	}
	return false;
}

/* Parses the handshake response at p; *used is 0 while it is incomplete. */
static enum act consume_response(struct client *c, char *p, size_t len, size_t *used)
{
	char *end = memmem(p, len, "\r\n\r\n", 4), *line, key[25], accept[29];
	bool upgrade = false, connection = false, accept_ok = false;
	const char *proto = NULL, *ext = NULL;
	size_t proto_len = 0, ext_len = 0, hlen;
	int status = -1;

	*used = 0;
	if (!end) {
		if (len > MAX_RESPONSE_BYTES) {
			hs_fail(c, "bad-response", "response headers too long", 25);
			return ACT_END;
		}
		return ACT_OK;
	}
	hlen = (size_t)(end - p) + 4;
	*end = '\0';
	if (!strncmp(p, "HTTP/1.", 7) && p[8] == ' ' && p[9] >= '1' && p[9] <= '5' &&
	    p[10] >= '0' && p[10] <= '9' && p[11] >= '0' && p[11] <= '9')
		status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (status != 101) {
		char k[16], note[256];
		size_t ll = strcspn(p, "\r"), blen = len - hlen;
		int nn;

		if (blen > 160)
			blen = 160;
		nn = snprintf(note, sizeof note, "%.*s: %.*s", ll > 80 ? 80 : (int)ll, p, (int)blen,
			      p + hlen);
		snprintf(k, sizeof k, "%d", status);
		hs_fail(c, status < 0 ? "bad-response" : k, note,
			nn < 0                     ? 0
			: (size_t)nn < sizeof note ? (size_t)nn
						   : sizeof note - 1);
		return ACT_END;
	}
	ws_key(c->nonce, key, accept);
	line = strstr(p, "\r\n");
	while (line) {
		char *name = line + 2, *colon, *v, *next = strstr(name, "\r\n");
		size_t nlen, vlen;

		line = next;
		vlen = next ? (size_t)(next - name) : strlen(name);
		colon = memchr(name, ':', vlen);
		if (!colon)
			continue;
		nlen = (size_t)(colon - name);
		v = colon + 1;
		vlen -= nlen + 1;
		while (vlen && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
#define IS(h) (nlen == sizeof h - 1 && !strncasecmp(name, h, nlen))
		if (IS("Upgrade"))
			upgrade = header_token(v, vlen, "websocket");
		else if (IS("Connection"))
			connection = header_token(v, vlen, "upgrade");
		else if (IS("Sec-WebSocket-Accept"))
			accept_ok = vlen == 28 && !memcmp(v, accept, 28);
		else if (IS("Sec-WebSocket-Protocol")) {
			proto = v;
			proto_len = vlen;
		} else if (IS("Sec-WebSocket-Extensions")) {
			ext = v;
			ext_len = vlen;
		}
#undef IS
	}
	if (!upgrade || !connection) {
		hs_fail(c, "bad-response", "101 without Upgrade: websocket and Connection: upgrade",
			54);
		return ACT_END;
	}
	if (!accept_ok) {
		hs_fail(c, "bad-accept", "wrong Sec-WebSocket-Accept", 26);
		return ACT_END;
	}
	if (ext) {
		/* One extension, the one offered. Of its parameters only the
		 * server's window matters here: the inflater needs no larger
		 * one (a browser keeps 32 KiB whatever the server says). */
		size_t tl = strcspn(ext, ";, \t");
		const char *w = memmem(ext, ext_len, "server_max_window_bits=", 23);
		if (!L.o.deflate || tl > ext_len || tl != 18 ||
		    memcmp(ext, "permessage-deflate", 18) || memchr(ext, ',', ext_len)) {
			hs_fail(c, "bad-extension", ext, ext_len);
			return ACT_END;
		}
		c->zbits = 15;
		if (w && w + 25 <= ext + ext_len && w[23] >= '0' && w[23] <= '9') {
			int bits = atoi(w + 23);
			if (bits >= 9 && bits <= 15)
				c->zbits = (uint8_t)bits;
		}
		c->flags |= F_PMD;
		L.pmd_open++;
	}
	if (proto) {
		if (!L.o.kws || proto_len != sizeof SUBPROTOCOL - 1 ||
		    memcmp(proto, SUBPROTOCOL, proto_len)) {
			hs_fail(c, "bad-subprotocol", proto, proto_len);
			return ACT_END;
		}
		c->flags |= F_KWS;
	} else if (L.o.kws) {
		L.refused++;
		if (!L.warned_refused) {
			L.warned_refused = true;
			log_warn("the router at %s accepted the WebSocket but not the "
				 "subprotocol " SUBPROTOCOL " (no Sec-WebSocket-Protocol in its "
				 "101): its messages are taken as bare records, without "
				 "positions or states",
				 L.o.urls[c->url].text);
		}
	}
	*used = hlen;
	c->state = C_OPEN;
	c->due = 0;
	L.open++;
	if (!(c->flags & F_EVER_OPEN)) {
		c->flags |= F_EVER_OPEN;
		L.ever_open++;
		L.pending_first--;
	} else {
		L.reconnects++;
	}
	if (c->flags & F_PRESENTED)
		L.presented++;
	if ((c->flags & F_STALL) && L.phase == P_RUN)
		stall(c);
	else
		arm(c);
	return ACT_OK;
}

static void frag_append(struct client *c, const char *p, size_t n)
{
	c->frag = xrealloc(c->frag, c->flen + n + 1);
	memcpy(c->frag + c->flen, p, n);
	c->flen += (uint32_t)n;
}

/* A compressed message (RFC 7692 7.2.2): its payload and the 4 bytes the
 * sender took off, inflated into L.zout, then handled as any message. The
 * inflater keeps its window across messages (the server may take its
 * context over); 0, or -1 after a protocol error. */
static int on_compressed(struct client *c, const char *p, size_t n)
{
	static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };
	size_t out = 0;

	if (!c->z) {
		c->z = xmalloc(sizeof *c->z);
		memset(c->z, 0, sizeof *c->z);
		if (inflateInit2(c->z, -(int)c->zbits) != Z_OK) {
			log_error("inflateInit2 failed");
			exit(1);
		}
	}
	for (int part = 0; part < 2; part++) {
		c->z->next_in = part ? (Bytef *)tail : (Bytef *)p;
		c->z->avail_in = part ? 4 : (uInt)n;
		do {
			if (out == L.zcap) {
				if (L.zcap > MAX_MESSAGE_BYTES) {
					proto_error(c, "compressed message over %u bytes inflated",
						    MAX_MESSAGE_BYTES);
					return -1;
				}
				L.zcap = L.zcap ? L.zcap * 2 : 64 * 1024;
				L.zout = xrealloc(L.zout, L.zcap);
			}
			c->z->next_out = (Bytef *)L.zout + out;
			c->z->avail_out = (uInt)(L.zcap - out);
			int rc = inflate(c->z, Z_SYNC_FLUSH);
			out = L.zcap - c->z->avail_out;
			if (rc == Z_STREAM_END) /* a final block: the next message starts anew */
				inflateReset(c->z);
			else if (rc == Z_BUF_ERROR && c->z->avail_out)
				break; /* no progress possible: the input is all taken */
			else if (rc != Z_OK && rc != Z_BUF_ERROR) {
				proto_error(c, "compressed message does not inflate: %s",
					    c->z->msg ? c->z->msg : "zlib error");
				return -1;
			}
		} while (c->z->avail_in || !c->z->avail_out);
	}
	L.deflated++;
	on_message(c, L.zout, out);
	return 0;
}

/* Handles the complete frames at p; *used is what they took. */
static enum act consume_frames(struct client *c, char *p, size_t len, size_t *used)
{
	size_t off = 0;

	*used = 0;
	while (len - off >= 2) {
		uint8_t b0 = (uint8_t)p[off], b1 = (uint8_t)p[off + 1];
		unsigned op = b0 & 0x0f;
		bool fin = b0 & 0x80, masked = b1 & 0x80;
		uint64_t plen = b1 & 0x7f;
		size_t hl = 2;
		char *pl;

		if (plen == 126) {
			if (len - off < 4)
				break;
			plen = (uint64_t)(uint8_t)p[off + 2] << 8 | (uint8_t)p[off + 3];
			hl = 4;
		} else if (plen == 127) {
			if (len - off < 10)
				break;
			plen = 0;
			for (int i = 0; i < 8; i++)
				plen = plen << 8 | (uint8_t)p[off + 2 + i];
			hl = 10;
		}
		bool rsv1 = b0 & 0x40;
		if ((b0 & 0x30) || (rsv1 && !(c->flags & F_PMD))) {
			proto_error(c, "frame with reserved bits set (no extension was agreed)");
			return ACT_END;
		}
		if (rsv1 && (op & 0x8 || op == 0x0)) {
			proto_error(c, "RSV1 on a control or continuation frame");
			return ACT_END;
		}
		if (masked) {
			proto_error(c, "masked frame from the server");
			return ACT_END;
		}
		if (plen > MAX_MESSAGE_BYTES || c->flen + plen > MAX_MESSAGE_BYTES) {
			proto_error(c, "message over %u bytes", MAX_MESSAGE_BYTES);
			return ACT_END;
		}
		if (len - off - hl < plen)
			break;
		pl = p + off + hl;
		off += hl + (size_t)plen;
		*used = off;
		if (op & 0x8) {
			if (!fin || plen > 125) {
				proto_error(c, "fragmented or long control frame");
				return ACT_END;
			}
			if (op == 0x8) {
				char key[16];
				unsigned code = 1005;

				if (plen >= 2)
					code = (unsigned)(uint8_t)pl[0] << 8 | (uint8_t)pl[1];
				snprintf(key, sizeof key, "%u", code);
				if (L.phase < P_CLOSING)
					count_close(c, key, plen > 2 ? pl + 2 : "",
						    plen > 2 ? (size_t)plen - 2 : 0);
				if (!(c->flags & F_CLOSE_SENT))
					send_close(c, code == 1005 ? 1000 : code, "");
				return ACT_END;
			}
			if (op == 0x9) {
				/* If the connection broke, the input that did arrive
				 * is still read; the read after it reports the end. */
				send_control(c, 0xA, pl, (size_t)plen);
			} else if (op != 0xA) {
				proto_error(c, "unknown control opcode %u", op);
				return ACT_END;
			}
			continue;
		}
		if (op == 0x1 || op == 0x2) {
			if (c->flags & F_FRAG) {
				proto_error(c, "new message inside a fragmented one");
				return ACT_END;
			}
			if (fin) {
				if (rsv1 ? on_compressed(c, pl, (size_t)plen) < 0 : 0)
					return ACT_END;
				if (!rsv1)
					on_message(c, pl, (size_t)plen);
			} else {
				c->flags |= F_FRAG | (rsv1 ? F_FRAG_Z : 0);
				c->fop = (uint8_t)op;
				frag_append(c, pl, (size_t)plen);
			}
		} else if (op == 0x0) {
			if (!(c->flags & F_FRAG)) {
				proto_error(c, "continuation frame outside a message");
				return ACT_END;
			}
			frag_append(c, pl, (size_t)plen);
			if (fin) {
				bool z = c->flags & F_FRAG_Z;
				c->flags &= ~(uint32_t)(F_FRAG | F_FRAG_Z);
				if (z ? on_compressed(c, c->frag, c->flen) < 0 : 0)
					return ACT_END;
				if (!z)
					on_message(c, c->frag, c->flen);
				free(c->frag);
				c->frag = NULL;
				c->flen = 0;
			}
		} else {
			proto_error(c, "unknown opcode %u", op);
			return ACT_END;
		}
	}
	return ACT_OK;
}

static enum act consume(struct client *c, char *p, size_t len, size_t *used)
{
	size_t off = 0, n;
	enum act a;

	if (c->state == C_HANDSHAKE) {
		a = consume_response(c, p, len, &off);
		if (a != ACT_OK || c->state == C_HANDSHAKE) {
			*used = off;
			return a;
		}
	}
	a = consume_frames(c, p + off, len - off, &n);
	*used = off + n;
	return a;
}

static void on_readable(struct client *c)
{
	ssize_t n = recv(c->fd, L.rd, READ_BYTES, 0);
	size_t len, used, rest;
	bool own = c->rlen > 0;
	char *p;

	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		conn_lost(c, strerror(errno));
		return;
	}
	if (n == 0) {
		if (c->state == C_CLOSING)
			conn_end(c);
		else
			conn_lost(c, c->rlen ? "connection closed inside a frame"
					     : "connection closed without a close frame");
		return;
	}
	L.now = now_mono_ms();
	L.wall = now_wall_ms();
	if (own) {
		c->rbuf = xrealloc(c->rbuf, c->rlen + (size_t)n);
		memcpy(c->rbuf + c->rlen, L.rd, (size_t)n);
		c->rlen += (uint32_t)n;
		p = c->rbuf;
		len = c->rlen;
	} else {
		p = L.rd;
		len = (size_t)n;
	}
	if (consume(c, p, len, &used) != ACT_OK) {
		conn_end(c);
		return;
	}
	rest = len - used;
	if (own) {
		if (!rest) {
			free(c->rbuf);
			c->rbuf = NULL;
		} else if (used) {
			memmove(c->rbuf, c->rbuf + used, rest);
			c->rbuf = xrealloc(c->rbuf, rest);
		}
		c->rlen = (uint32_t)rest;
	} else if (rest) {
		c->rbuf = xmalloc(rest);
		memcpy(c->rbuf, p + used, rest);
		c->rlen = (uint32_t)rest;
	}
}

/* The connection of a stalled client broke (the router dropped it): it
 * reads what did arrive (records, perhaps the close frame), as a client that
 * resumes reading would, and then meets the end of the connection. */
static void unstall(struct client *c)
{
	c->flags &= ~(uint32_t)(F_STALL | F_STALLED);
	c->due = 0;
	arm(c);
	on_readable(c);
}

static void on_event(struct client *c, uint32_t ev)
{
	if (c->fd < 0)
		return;
	if (c->state == C_CONNECTING) {
		on_connected(c);
		return;
	}
	if (c->flags & F_STALLED) {
		if ((ev & (EPOLLERR | EPOLLHUP | EPOLLRDHUP)) ||
		    ((ev & EPOLLOUT) && conn_flush(c) < 0))
			unstall(c);
		return;
	}
	if ((ev & EPOLLOUT) && conn_flush(c) < 0) {
		conn_lost(c, strerror(errno));
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(c);
}

/* ---- timers and phases ---- */

static void on_timer(struct client *c)
{
	c->due = 0;
	switch (c->state) {
	case C_WAIT:
		enqueue(c);
		break;
	case C_CONNECTING:
	case C_HANDSHAKE:
		hs_fail(c, "timeout", "no handshake response in time", 29);
		conn_end(c);
		break;
	case C_OPEN:
		if (c->flags & F_STALLED) {
			/* An unsolicited pong (RFC 6455 5.5.3): see STALL_PROBE_MS. */
			if (c->woff == c->wlen && send_control(c, 0xA, NULL, 0) < 0) {
				unstall(c);
				break;
			}
			set_due(c, L.now + STALL_PROBE_MS);
		}
		break;
	case C_CLOSING:
		L.close_timeouts++;
		conn_end(c);
		break;
	default:
		break;
	}
}

static void run_timers(void)
{
	int64_t next = 0;

	if (!L.next_due || L.now < L.next_due)
		return;
	L.next_due = 0;
	for (uint32_t i = 0; i < L.o.clients; i++) {
		struct client *c = &L.c[i];

		if (c->due && c->due <= L.now)
			on_timer(c);
		if (c->due && (!next || c->due < next))
			next = c->due;
	}
	if (next && (!L.next_due || next < L.next_due))
		L.next_due = next;
}

static void pump_connects(void)
{
	double rate = L.o.connect_rate;

	if (rate > 0) {
		double burst = rate / 20 > 1 ? rate / 20 : 1;

		L.tokens += (double)(L.now - L.tokens_at) * rate / 1000;
		if (L.tokens > burst)
			L.tokens = burst;
	}
	L.tokens_at = L.now;
	while (L.qlen && (rate == 0 || L.tokens >= 1)) {
		struct client *c = &L.c[L.queue[L.qhead]];

		L.qhead = (L.qhead + 1) % L.o.clients;
		L.qlen--;
		if (c->state != C_QUEUED)
			continue;
		if (rate > 0)
			L.tokens -= 1;
		conn_start(c);
	}
}

static void begin_closing(const char *why)
{
	log_info("stopping: %s", why);
	L.phase = P_CLOSING;
	L.t_stop = L.now;
	L.qlen = 0;
	for (uint32_t i = 0; i < L.o.clients; i++) {
		struct client *c = &L.c[i];

		switch (c->state) {
		case C_OPEN:
			conn_close(c, "loadgen done");
			/* It does not read, so it would not see the answer. */
			if (c->fd >= 0 && (c->flags & F_STALLED))
				conn_end(c);
			break;
		case C_CONNECTING:
		case C_HANDSHAKE:
			conn_end(c);
			break;
		case C_WAIT:
		case C_QUEUED:
			c->state = C_IDLE;
			c->due = 0;
			break;
		default:
			break;
		}
	}
}

/* CPU seconds (user + system) this process has used so far. */
static double cpu_seconds(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void start_run(void)
{
	L.phase = P_RUN;
	L.t_run = L.now;
	L.cpu_at_run = cpu_seconds();
	L.connect_ms = L.now - L.t_start;
	log_info("%" PRIu32 " of %" PRIu32 " clients connected in %" PRId64 " ms", L.ever_open,
		 L.o.clients, L.connect_ms);
	for (uint32_t i = 0; i < L.o.clients; i++) {
		struct client *c = &L.c[i];

		if ((c->flags & F_STALL) && c->state == C_OPEN)
			stall(c);
	}
}

static void run_disconnects(void)
{
	char id[ID_MAX];

	for (unsigned i = 0; i < L.o.ndisc; i++) {
		struct disconnect *d = &L.o.disc[i];
		struct client *c = &L.c[d->client];

		if (d->done || L.now < L.t_run + d->at_ms)
			continue;
		d->done = true;
		client_id(c, id, sizeof id);
		if (c->state != C_OPEN) {
			L.disc_skipped++;
			log_warn("--disconnect %s: not connected at %.3f s; skipped", id,
				 (double)d->at_ms / 1000);
			continue;
		}
		log_info("--disconnect %s: closing, reconnecting in %.3f s", id,
			 (double)d->for_ms / 1000);
		c->flags |= F_DISCONNECTED;
		conn_close(c, "loadgen --disconnect");
	}
}

/* Resident memory now, in KiB (0 if /proc is not there). */
static long rss_kb(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, resident = 0;

	if (!f)
		return 0;
	if (fscanf(f, "%ld %ld", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* Peak resident memory in KiB: VmHWM, as getrusage() counts the memory of
 * the process that forked us before the exec. */
static long peak_rss_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kb = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "VmHWM: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void progress(void)
{
	if (!L.o.progress_ms || L.now < L.next_progress)
		return;
	L.next_progress = L.now + L.o.progress_ms;
	log_info("%.0f s: open %" PRIu32 " connected %" PRIu32 " messages %" PRIu64
		 " records %" PRIu64 " other %" PRIu64 " duplicated %" PRIu64 " reordered %" PRIu64
		 " reconnects %" PRIu64 " complete_clients %" PRIu32 " rss_kb %ld",
		 (double)(L.now - L.t_start) / 1000, L.open, L.ever_open, L.messages, L.records,
		 L.other, L.dups, L.reorders, L.reconnects, L.complete, rss_kb());
}

static void check_phase(void)
{
	switch (L.phase) {
	case P_CONNECT:
		if (stop_signals) {
			begin_closing("signal");
		} else if (!L.pending_first) {
			start_run();
		} else if (L.now >= L.t_start + L.o.connect_timeout_ms) {
			L.phase = P_RUN;
			for (uint32_t i = 0; i < L.o.clients; i++) {
				struct client *c = &L.c[i];

				if (c->flags & F_EVER_OPEN)
					continue;
				c->flags |= F_GAVE_UP;
				L.pending_first--;
				conn_end(c);
				c->state = C_IDLE;
				c->due = 0;
			}
			log_warn("--connect-timeout-s: %" PRIu32 " clients did not connect",
				 L.o.clients - L.ever_open);
			start_run();
			if (!L.ever_open)
				begin_closing("no client connected");
		}
		break;
	case P_RUN:
		run_disconnects();
		if (stop_signals) {
			begin_closing("signal");
		} else if (L.o.duration_ms > 0 && L.now >= L.t_run + L.o.duration_ms) {
			begin_closing("--duration-s reached");
		} else if (L.o.idle_ms > 0) {
			int64_t last = L.t_last_msg > L.t_run ? L.t_last_msg : L.t_run;

			if (L.o.expect && L.complete == L.o.clients)
				begin_closing("every client has its --expect-per-client records");
			else if (L.now - last >= L.o.idle_ms)
				begin_closing("--until-idle-s: no message for a while");
		}
		break;
	case P_CLOSING:
		if (!L.open || stop_signals > 1)
			L.phase = P_DONE;
		break;
	case P_DONE:
		break;
	}
}

static int wait_ms(void)
{
	int64_t wake = L.now + 100;

	if (L.next_due && L.next_due < wake)
		wake = L.next_due;
	if (L.qlen) {
		int64_t t = L.now;

		if (L.o.connect_rate > 0 && L.tokens < 1)
			t += (int64_t)((1 - L.tokens) * 1000 / L.o.connect_rate) + 1;
		if (t < wake)
			wake = t;
	}
	return wake > L.now ? (int)(wake - L.now) : 0;
}

/* ---- results ---- */

static uint64_t client_lost(const struct client *c)
{
	uint64_t m = L.o.expect, lo, lost = 0;

	if (!(c->flags & F_SEEN))
		return m;
	lo = m ? 0 : c->min_seq;
	for (uint32_t i = 0; i < c->ngaps; i++)
		if (c->gaps[i].hi > lo)
			lost += c->gaps[i].hi - (c->gaps[i].lo > lo ? c->gaps[i].lo : lo);
	if (m > c->next)
		lost += m - c->next;
	return lost;
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

struct results {
	uint64_t lost;
	uint32_t gap_max, gap_p99, gap_clients;
	uint32_t first_states[NSTATES + 1];
	uint32_t ids[5][LIST_IDS]; /* lost, duplicated, reordered, foreign, never */
	uint32_t nids[5];
};

static const char *const id_lists[5] = { "lost", "duplicated", "reordered", "foreign",
					 "never_connected" };

static void list_id(struct results *r, int which, uint32_t idx)
{
	if (r->nids[which] < LIST_IDS)
		r->ids[which][r->nids[which]++] = idx;
}

static void compute(struct results *r)
{
	uint32_t *gaps = xmalloc((L.o.clients ? L.o.clients : 1) * sizeof *gaps);

	memset(r, 0, sizeof *r);
	for (uint32_t i = 0; i < L.o.clients; i++) {
		const struct client *c = &L.c[i];
		uint64_t lost = client_lost(c);

		r->lost += lost;
		if (lost)
			list_id(r, 0, i);
		if (c->dups)
			list_id(r, 1, i);
		if (c->reorders)
			list_id(r, 2, i);
		if (c->foreign)
			list_id(r, 3, i);
		if (!(c->flags & F_EVER_OPEN))
			list_id(r, 4, i);
		r->first_states[c->first_state]++;
		if (c->records >= 2)
			gaps[r->gap_clients++] = c->longest_gap;
	}
	if (r->gap_clients) {
		qsort(gaps, r->gap_clients, sizeof *gaps, u32_cmp);
		r->gap_max = gaps[r->gap_clients - 1];
		r->gap_p99 = gaps[(uint32_t)(((uint64_t)r->gap_clients * 99 + 99) / 100) - 1];
	}
	free(gaps);
}

static void print_tally_brief(FILE *f, struct tallies *ts)
{
	qsort(ts->t, ts->n, sizeof *ts->t, tally_cmp);
	fputc('{', f);
	for (unsigned i = 0; i < ts->n; i++)
		fprintf(f, "%s%s:%" PRIu64, i ? "," : "", ts->t[i].key, ts->t[i].n);
	fputc('}', f);
}

static void print_states_brief(FILE *f, const uint64_t *st)
{
	bool first = true;

	fputc('{', f);
	for (int i = 0; i < NSTATES; i++) {
		if (!st[i])
			continue;
		fprintf(f, "%s%s:%" PRIu64, first ? "" : ",", state_names[i], st[i]);
		first = false;
	}
	fputc('}', f);
}

static void summary(const struct results *r)
{
	printf("clients %" PRIu32 " connected %" PRIu32 " records %" PRIu64 " lost %" PRIu64
	       " duplicated %" PRIu64 " reordered %" PRIu64 " foreign %" PRIu64 " other %" PRIu64
	       " reconnects %" PRIu64 " closes ",
	       L.o.clients, L.ever_open, L.records, r->lost, L.dups, L.reorders, L.foreign, L.other,
	       L.reconnects);
	print_tally_brief(stdout, &L.closes);
	printf(" resumed ");
	print_states_brief(stdout, L.resumed);
	printf(" longest_gap_ms %" PRIu32 " latency_ms", r->gap_max);
	if (L.lat.n)
		printf(" p50 %" PRIu64 " p99 %" PRIu64 " p999 %" PRIu64 " max %" PRIu64,
		       hist_quantile(&L.lat, 0.5), hist_quantile(&L.lat, 0.99),
		       hist_quantile(&L.lat, 0.999), L.lat.max);
	else
		printf(" p50 - p99 - p999 - max -");
	printf(" gap_p99_ms %" PRIu32 " states ", r->gap_p99);
	print_states_brief(stdout, L.states);
	printf(" unparsed %" PRIu64 " protocol_errors %" PRIu64, L.unparsed, L.proto_errors);
	if (L.o.kws)
		printf(" subprotocol_refused %" PRIu64, L.refused);
	if (L.o.deflate)
		printf(" deflated %" PRIu64, L.deflated);
	printf(" handshake_failures ");
	print_tally_brief(stdout, &L.hs_fail);
	if (L.o.expect)
		printf(" complete_clients %" PRIu32, L.complete);
	printf(" connect_ms %" PRId64 "\n", L.connect_ms);
	fflush(stdout);
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_tally(FILE *f, const char *name, const char *notes, const struct tallies *ts)
{
	fprintf(f, "  \"%s\": {", name);
	for (unsigned i = 0; i < ts->n; i++)
		fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", ts->t[i].key, ts->t[i].n);
	fprintf(f, "},\n  \"%s\": {", notes);
	for (unsigned i = 0; i < ts->n; i++) {
		fprintf(f, "%s\"%s\": ", i ? ", " : "", ts->t[i].key);
		json_string(f, ts->t[i].note ? ts->t[i].note : "");
	}
	fprintf(f, "},\n");
}

static void json_states(FILE *f, const char *name, const uint64_t *st)
{
	fprintf(f, "  \"%s\": {", name);
	for (int i = 0; i < NSTATES; i++)
		fprintf(f, "%s\"%s\": %" PRIu64, i ? ", " : "", state_names[i], st[i]);
	fprintf(f, "},\n");
}

static int write_report(const struct results *r, long rss_kb)
{
	FILE *f = L.report;
	uint64_t first[NSTATES];
	char id[ID_MAX];

	fprintf(f,
		"{\n  \"clients\": %" PRIu32 ",\n  \"connected\": %" PRIu32
		",\n  \"never_connected\": %" PRIu32 ",\n  \"urls\": [",
		L.o.clients, L.ever_open, L.o.clients - L.ever_open);
	for (unsigned i = 0; i < L.o.nurls; i++) {
		fputs(i ? ", " : "", f);
		json_string(f, L.o.urls[i].text);
	}
	fprintf(f,
		"],\n  \"subprotocol\": \"%s\",\n  \"subprotocol_refused\": %" PRIu64
		",\n  \"tag\": ",
		L.o.kws ? SUBPROTOCOL : "none", L.refused);
	if (L.o.tag)
		json_string(f, L.o.tag);
	else
		fputs("null", f);
	fprintf(f, ",\n  \"expect_per_client\": ");
	if (L.o.expect)
		fprintf(f, "%" PRIu64 ",\n  \"complete_clients\": %" PRIu32, L.o.expect,
			L.complete);
	else
		fputs("null,\n  \"complete_clients\": null", f);
	fprintf(f, ",\n  \"deflate_offered\": %s,\n  \"deflated\": %" PRIu64,
		L.o.deflate ? "true" : "false", L.deflated);
	fprintf(f,
		",\n  \"connect_ms\": %" PRId64 ",\n  \"run_ms\": %" PRId64
		",\n  \"messages\": %" PRIu64 ",\n  \"records\": %" PRIu64 ",\n  \"lost\": %" PRIu64
		",\n  \"duplicated\": %" PRIu64 ",\n  \"reordered\": %" PRIu64
		",\n  \"foreign\": %" PRIu64 ",\n  \"other\": %" PRIu64
		",\n  \"unparsed\": %" PRIu64 ",\n  \"protocol_errors\": %" PRIu64
		",\n  \"reconnects\": %" PRIu64 ",\n  \"presented_position\": %" PRIu64
		",\n  \"close_timeouts\": %" PRIu64 ",\n  \"disconnects_skipped\": %" PRIu64
		",\n  \"state_changes\": %" PRIu64 ",\n  \"run_cpu_s\": %.3f,\n",
		L.connect_ms, L.t_run ? L.t_stop - L.t_run : 0, L.messages, L.records, r->lost,
		L.dups, L.reorders, L.foreign, L.other, L.unparsed, L.proto_errors, L.reconnects,
		L.presented, L.close_timeouts, L.disc_skipped, L.state_changes,
		L.t_run ? cpu_seconds() - L.cpu_at_run : 0.0);
	json_tally(f, "closes", "close_reasons", &L.closes);
	json_tally(f, "handshake_failures", "handshake_failure_notes", &L.hs_fail);
	json_states(f, "states", L.states);
	json_states(f, "resumed", L.resumed);
	for (int i = 0; i < NSTATES; i++)
		first[i] = r->first_states[i];
	json_states(f, "clients_by_first_state", first);
	fprintf(f,
		"  \"longest_gap_ms\": {\"max\": %" PRIu32 ", \"p99\": %" PRIu32
		", \"clients\": %" PRIu32 "},\n",
		r->gap_max, r->gap_p99, r->gap_clients);
	if (L.lat.n)
		fprintf(f,
			"  \"latency_ms\": {\"count\": %" PRIu64 ", \"min\": %" PRIu64
			", \"mean\": %.1f, \"p50\": %" PRIu64 ", \"p99\": %" PRIu64
			", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 "},\n",
			L.lat.n, L.lat.min, L.lat.sum / (double)L.lat.n, hist_quantile(&L.lat, 0.5),
			hist_quantile(&L.lat, 0.99), hist_quantile(&L.lat, 0.999), L.lat.max);
	else
		fprintf(f, "  \"latency_ms\": {\"count\": 0, \"min\": null, \"mean\": null, "
			   "\"p50\": null, \"p99\": null, \"p999\": null, \"max\": null},\n");
	fprintf(f, "  \"ids\": {");
	for (int w = 0; w < 5; w++) {
		fprintf(f, "%s\"%s\": [", w ? ", " : "", id_lists[w]);
		for (uint32_t i = 0; i < r->nids[w]; i++) {
			fputs(i ? ", " : "", f);
			client_id(&L.c[r->ids[w][i]], id, sizeof id);
			json_string(f, id);
		}
		fputc(']', f);
	}
	fprintf(f, "},\n  \"lost_definition\": ");
	json_string(
		f, L.o.expect
			   ? "per client, seqs in [0, max(M-1, highest received)] never received "
			     "(M = expect_per_client; a client that received nothing: M)"
			   : "per client, seqs between the lowest and the highest it received that "
			     "it never received");
	fprintf(f, ",\n  \"max_rss_kb\": %ld\n}\n", rss_kb);
	if (fflush(f) || ferror(f)) {
		log_error("--report %s: %s", L.o.report, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- main ---- */

static void on_signal(int sig)
{
	if (stop_signals < 2)
		stop_signals++;
}

static void setup_clients(void)
{
	L.c = xcalloc(L.o.clients, sizeof *L.c);
	L.queue = xcalloc(L.o.clients, sizeof *L.queue);
	for (uint32_t i = 0; i < L.o.clients; i++) {
		struct client *c = &L.c[i];

		c->fd = -1;
		c->part = -1;
		c->first_state = NSTATES;
		c->url = (uint8_t)(i % L.o.nurls);
		enqueue(c);
	}
	L.pending_first = L.o.clients;
	for (unsigned i = 0; i < L.o.nstall_args; i++) {
		const char *s = L.o.stall_args[i];

		for (;;) {
			size_t len = strcspn(s, ",");
			uint32_t idx;

			if (!parse_id(&L.o, s, len, &idx))
				L.c[idx].flags |= F_STALL;
			if (!s[len])
				break;
			s += len + 1;
		}
	}
}

static void cleanup(void)
{
	for (uint32_t i = 0; i < L.o.clients; i++) {
		struct client *c = &L.c[i];

		if (c->fd >= 0)
			close(c->fd);
		free(c->wbuf);
		free(c->rbuf);
		free(c->frag);
		free(c->gaps);
	}
	free(L.c);
	free(L.queue);
	free(L.rd);
	for (unsigned i = 0; i < L.o.nurls; i++) {
		free(L.o.urls[i].hostport);
		free(L.o.urls[i].path);
	}
	free(L.o.urls);
	free(L.o.disc);
	free(L.o.disc_args);
	free(L.o.stall_args);
	free(L.o.headers);
	tallies_free(&L.closes);
	tallies_free(&L.hs_fail);
	if (L.ep >= 0)
		close(L.ep);
}

/* --jwt ALG:KEYFILE[:KID]: a token for every client, signed before the run
 * (ES256 takes about 30 us a token, RS256 about 1 ms). */
static void sign_tokens(const char *spec)
{
	char *copy = xstrdup(spec), *alg_name = copy, *file = strchr(copy, ':'), *kid;
	if (!file)
		die_usage("--jwt %s: want ALG:KEYFILE[:KID]", spec);
	*file++ = '\0';
	kid = strchr(file, ':');
	if (kid)
		*kid++ = '\0';
	jwt_alg_t alg = jwt_str_alg(alg_name);
	if (alg != JWT_ALG_HS256 && alg != JWT_ALG_RS256 && alg != JWT_ALG_ES256)
		die_usage("--jwt %s: ALG is HS256, RS256 or ES256", spec);
	FILE *f = fopen(file, "rb");
	if (!f)
		die_usage("--jwt %s: %s", file, strerror(errno));
	unsigned char key[65536];
	size_t klen = fread(key, 1, sizeof key, f);
	fclose(f);
	L.jwts = xcalloc(L.o.clients, sizeof *L.jwts);
	int64_t t0 = now_mono_ms(), exp = now_wall_ms() / 1000 + 86400;
	for (uint32_t i = 0; i < L.o.clients; i++) {
		char id[ID_MAX];
		jwt_t *j = NULL;
		client_id(&L.c[i], id, sizeof id);
		if (jwt_new(&j) || jwt_add_grant(j, "sub", id) ||
		    jwt_add_grant_int(j, "exp", exp) || (kid && jwt_add_header(j, "kid", kid)) ||
		    jwt_set_alg(j, alg, key, (int)klen) || !(L.jwts[i] = jwt_encode_str(j))) {
			log_error("--jwt %s: cannot sign a token with that key", spec);
			exit(1);
		}
		jwt_free(j);
	}
	log_info("signed %" PRIu32 " %s tokens in %" PRId64 " ms", L.o.clients, alg_name,
		 now_mono_ms() - t0);
	free(copy);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct epoll_event *evs;
	struct results r;
	struct rlimit rl;
	int rc = 0;

	log_setup("loadgen", LOG_INFO, 0);
	if (stages_setup("loadgen") < 0)
		return 1;
	parse_args(argc, argv, &L.o);

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open file limit: %s", strerror(errno));
		if (rl.rlim_max != RLIM_INFINITY &&
		    (uint64_t)L.o.clients + FD_RESERVE > (uint64_t)rl.rlim_max)
			die_usage("--clients %" PRIu32 " needs %" PRIu32 " open files; the hard "
				  "limit (ulimit -Hn) is %llu",
				  L.o.clients, L.o.clients + FD_RESERVE,
				  (unsigned long long)rl.rlim_max);
	}
	if (L.o.report) {
		L.report = fopen(L.o.report, "w");
		if (!L.report)
			die_usage("--report %s: %s", L.o.report, strerror(errno));
	}

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	L.ep = epoll_create1(EPOLL_CLOEXEC);
	if (L.ep < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return 1;
	}
	L.rd = xmalloc(READ_BYTES);
	evs = xcalloc(MAX_EVENTS, sizeof *evs);
	L.now = L.t_start = L.tokens_at = now_mono_ms();
	L.wall = now_wall_ms();
	L.next_progress = L.now + L.o.progress_ms;
	L.tokens = 1;
	setup_clients();
	if (L.o.jwt) { /* signed before the clock of the run starts */
		sign_tokens(L.o.jwt);
		L.now = L.t_start = L.tokens_at = now_mono_ms();
		L.wall = now_wall_ms();
		L.next_progress = L.now + L.o.progress_ms;
	}
	log_info("%" PRIu32 " clients %s%" PRIu64 " .. %s%" PRIu64 " over %u URL(s), "
		 "subprotocol %s, from %d source address(es), %.0f connects/s",
		 L.o.clients, L.o.prefix, L.o.ids_from, L.o.prefix, L.o.ids_from + L.o.clients - 1,
		 L.o.nurls, L.o.kws ? SUBPROTOCOL : "none", L.o.source_addrs, L.o.connect_rate);

	while (L.phase != P_DONE) {
		int n;

		L.now = now_mono_ms();
		L.wall = now_wall_ms();
		run_timers();
		if (L.phase < P_CLOSING)
			pump_connects();
		check_phase();
		progress();
		if (L.phase == P_DONE)
			break;
		n = epoll_wait(L.ep, evs, MAX_EVENTS, wait_ms());
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %s", strerror(errno));
			rc = 1;
			break;
		}
		L.now = now_mono_ms();
		L.wall = now_wall_ms();
		for (int i = 0; i < n; i++)
			on_event(&L.c[evs[i].data.u32], evs[i].events);
	}
	if (!L.t_stop)
		L.t_stop = L.now;
	if (!L.ever_open) {
		log_error("no client connected%s",
			  L.o.kws ? " (if the router refuses the subprotocol " SUBPROTOCOL
				    ", try --subprotocol none)"
				  : "");
		rc = 1;
	}
	compute(&r);
	summary(&r);
	if (L.report) {
		if (write_report(&r, peak_rss_kb()))
			rc = 1;
		if (fclose(L.report)) {
			log_error("--report %s: %s", L.o.report, strerror(errno));
			rc = 1;
		}
	}
	free(evs);
	cleanup();
	stages_close();
	return rc;
}
