/*
 * produce: a keyed Kafka producer for tests, benchmarks and the quick start.
 * It writes records round-robin over a set of keys; each value is a small JSON
 * text, {"key":"client-3","seq":17,"ts":<wall ms>}, so a consumer can check
 * per-key order and ownership. It prints "PRODUCED <n> records, <f> failed"
 * at the end and exits 0 only if every record was delivered.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "stages.h"
#include "util.h"

#define MAX_KEYS 1000000
#define MAX_SIZE (64L * 1024 * 1024)
#define FLUSH_TIMEOUT_MS 30000
/* After the pacing falls this far behind (a stalled broker), it restarts from
 * now instead of bursting to catch up. */
#define PACE_MAX_LAG_US 1000000
/* A record made this much after its due time counts as late in the pacing
 * summary: the producer itself could not keep the rate. */
#define PACE_LATE_US 1000

struct key {
	char *raw; /* the record key */
	size_t len;
	char *json; /* raw, escaped for a JSON string */
};

struct options {
	const char *bootstrap;
	const char *topic;
	const char *partitioner;
	const char *prefix;
	const char *tag;   /* --tag: added to every value as "tag" */
	const char *value; /* --value: every record's value, verbatim */
	const char *keys_arg;
	long clients; /* -1: not given */
	uint64_t count;
	int count_set;
	int forever;
	double rate; /* records per second in total; 0: no limit */
	long size;
	const char **props; /* "k=v" strings from argv */
	size_t nprops;
};

struct stats {
	uint64_t enqueued;    /* accepted by rd_kafka_producev() */
	uint64_t ok;          /* delivery reports without error */
	uint64_t dr_failed;   /* delivery reports with an error */
	uint64_t sync_failed; /* refused by rd_kafka_producev() */
};

/* Number of SIGINT/SIGTERM received: 1 stops producing, 2 also cuts the
 * final flush short. */
static volatile sig_atomic_t stop_signals;

static void usage(FILE *f)
{
	fputs("usage: produce --bootstrap HOST:PORT[,...] --topic TOPIC\n"
	      "               [--clients N | --keys K1,K2,...] [--prefix PREFIX]\n"
	      "               [--count M | --forever] [--rate R] [--size BYTES]\n"
	      "               [--partitioner NAME] [--kafka-prop KEY=VALUE]...\n"
	      "\n"
	      "Writes records round-robin over the keys. Each value is JSON:\n"
	      "  {\"key\":\"client-3\",\"seq\":17,\"ts\":<wall ms>}\n"
	      "where seq counts the records of that key from 0.\n"
	      "\n"
	      "  --bootstrap LIST     Kafka bootstrap servers (required)\n"
	      "  --topic TOPIC        topic to write to (required)\n"
	      "  --clients N          keys PREFIX0 .. PREFIX(N-1) (default: 1 key)\n"
	      "  --keys K1,K2,...     explicit keys instead of --clients\n"
	      "  --prefix PREFIX      key prefix for --clients (default \"client-\")\n"
	      "  --tag TAG            add \"tag\":\"TAG\" to every value (tells test phases apart)\n"
	      "  --value TEXT         every record's value is TEXT, verbatim, instead of\n"
	      "                       the JSON below (excludes --tag and --size)\n"
	      "  --count M            records per key, so M * keys in total (default 1)\n"
	      "  --forever            produce until SIGINT/SIGTERM instead of --count\n"
	      "  --rate R             records per second over all keys, evenly paced;\n"
	      "                       0 = as fast as possible (default 0)\n"
	      "  --size BYTES         pad each value with a \"pad\" field (or, for a gap\n"
	      "                       under 9 bytes, spaces) to exactly BYTES when the\n"
	      "                       JSON is shorter\n"
	      "  --partitioner NAME   librdkafka partitioner (default murmur2_random,\n"
	      "                       as the Java client; also consistent_random,\n"
	      "                       consistent, murmur2, random, fnv1a, fnv1a_random)\n"
	      "  --kafka-prop K=V     any librdkafka property; may be repeated; applied\n"
	      "                       after the defaults linger.ms=5 and acks=all\n"
	      "  --help               this text\n"
	      "\n"
	      "On exit it flushes for up to 30 s (a second signal cuts that short) and\n"
	      "prints \"PRODUCED <delivered> records, <failed> failed\" on stdout.\n"
	      "Exit status: 0 if every record was delivered, 1 otherwise, 2 on bad\n"
	      "arguments.\n",
	      f);
}

__attribute__((format(printf, 1, 2), noreturn)) static void die_usage(const char *fmt, ...)
{
	va_list ap;

	fputs("produce: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'produce --help'.\n", stderr);
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

static void parse_args(int argc, char **argv, struct options *o)
{
	enum {
		O_BOOTSTRAP = 256,
		O_TOPIC,
		O_CLIENTS,
		O_KEYS,
		O_COUNT,
		O_FOREVER,
		O_RATE,
		O_SIZE,
		O_PARTITIONER,
		O_PREFIX,
		O_PROP,
		O_TAG,
		O_VALUE,
		O_HELP
	};
	static const struct option longopts[] = {
		{ "bootstrap", required_argument, NULL, O_BOOTSTRAP },
		{ "topic", required_argument, NULL, O_TOPIC },
		{ "clients", required_argument, NULL, O_CLIENTS },
		{ "keys", required_argument, NULL, O_KEYS },
		{ "count", required_argument, NULL, O_COUNT },
		{ "forever", no_argument, NULL, O_FOREVER },
		{ "rate", required_argument, NULL, O_RATE },
		{ "size", required_argument, NULL, O_SIZE },
		{ "partitioner", required_argument, NULL, O_PARTITIONER },
		{ "prefix", required_argument, NULL, O_PREFIX },
		{ "tag", required_argument, NULL, O_TAG },
		{ "value", required_argument, NULL, O_VALUE },
		{ "kafka-prop", required_argument, NULL, O_PROP },
		{ "help", no_argument, NULL, O_HELP },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t v;
	char *end;
	int c;

	o->clients = -1;
	o->count = 1;
	o->partitioner = "murmur2_random";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
		switch (c) {
		case O_BOOTSTRAP:
			o->bootstrap = optarg;
			break;
		case O_TOPIC:
			o->topic = optarg;
			break;
		case O_CLIENTS:
			if (parse_u64(optarg, MAX_KEYS, &v) || v == 0)
				die_usage("--clients wants an integer from 1 to %d, "
					  "got '%s'",
					  MAX_KEYS, optarg);
			o->clients = (long)v;
			break;
		case O_KEYS:
			o->keys_arg = optarg;
			break;
		case O_COUNT:
			if (parse_u64(optarg, UINT64_MAX, &o->count))
				die_usage("--count wants a non-negative integer, "
					  "got '%s'",
					  optarg);
			o->count_set = 1;
			break;
		case O_FOREVER:
			o->forever = 1;
			break;
		case O_RATE:
			errno = 0;
			o->rate = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(o->rate) || o->rate < 0)
				die_usage("--rate wants a non-negative number of "
					  "records per second, got '%s'",
					  optarg);
			break;
		case O_SIZE:
			if (parse_u64(optarg, MAX_SIZE, &v))
				die_usage("--size wants a byte count from 0 to %ld, "
					  "got '%s'",
					  MAX_SIZE, optarg);
			o->size = (long)v;
			break;
		case O_PARTITIONER:
			o->partitioner = optarg;
			break;
		case O_TAG:
			if (strpbrk(optarg, "\"\\"))
				die_usage("--tag may not contain quotes or backslashes");
			o->tag = optarg;
			break;
		case O_VALUE:
			o->value = optarg;
			break;
		case O_PREFIX:
			o->prefix = optarg;
			break;
		case O_PROP:
			if (!strchr(optarg, '=') || optarg[0] == '=')
				die_usage("--kafka-prop wants KEY=VALUE, got '%s'", optarg);
			o->props = xrealloc(o->props, (o->nprops + 1) * sizeof *o->props);
			o->props[o->nprops++] = optarg;
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
	if (!o->bootstrap || !*o->bootstrap)
		die_usage("missing --bootstrap HOST:PORT");
	if (!o->topic || !*o->topic)
		die_usage("missing --topic TOPIC");
	if (o->clients >= 0 && o->keys_arg)
		die_usage("--clients and --keys exclude each other");
	if (o->prefix && o->keys_arg)
		die_usage("--prefix applies to --clients, not to --keys");
	if (o->count_set && o->forever)
		die_usage("--count and --forever exclude each other");
	if (!*o->partitioner)
		die_usage("--partitioner wants a name");
	if (o->value && (o->tag || o->size))
		die_usage("--value excludes --tag and --size");
}

/* Returns s escaped for use inside a JSON string (caller frees). */
static char *json_escape(const char *s, size_t len)
{
	char *out = xmalloc(len * 6 + 1);
	char *p = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\') {
			*p++ = '\\';
			*p++ = (char)ch;
		} else if (ch < 0x20) {
			p += sprintf(p, "\\u%04x", ch);
		} else {
			*p++ = (char)ch;
		}
	}
	*p = '\0';
	return out;
}

static void key_init(struct key *k, const char *raw, size_t len)
{
	k->raw = xstrndup(raw, len);
	k->len = len;
	k->json = json_escape(raw, len);
}

/* Builds the key list from --clients or --keys; returns the count. */
static size_t make_keys(const struct options *o, struct key **out)
{
	struct key *keys = NULL;
	size_t n = 0;

	if (o->keys_arg) {
		const char *s = o->keys_arg;

		for (;;) {
			size_t len = strcspn(s, ",");

			if (len == 0)
				die_usage("--keys has an empty key in '%s'", o->keys_arg);
			if (n == MAX_KEYS)
				die_usage("--keys: more than %d keys", MAX_KEYS);
			keys = xrealloc(keys, (n + 1) * sizeof *keys);
			key_init(&keys[n++], s, len);
			if (!s[len])
				break;
			s += len + 1;
		}
	} else {
		const char *prefix = o->prefix ? o->prefix : "client-";
		size_t cap = strlen(prefix) + 24;
		char *buf = xmalloc(cap);

		n = o->clients > 0 ? (size_t)o->clients : 1;
		keys = xcalloc(n, sizeof *keys);
		for (size_t i = 0; i < n; i++) {
			int len = snprintf(buf, cap, "%s%zu", prefix, i);

			key_init(&keys[i], buf, (size_t)len);
		}
		free(buf);
	}
	*out = keys;
	return n;
}

static void keys_free(struct key *keys, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(keys[i].raw);
		free(keys[i].json);
	}
	free(keys);
}

/* Writes the value of record seq of key k into buf (cap bytes, enough for
 * the natural JSON and for size) and returns its length. */
static size_t format_value(char *buf, size_t cap, const struct key *k, uint64_t seq, long size,
			   const char *tag)
{
	static const char pad_open[] = ",\"pad\":\"";
	const size_t pad_overhead = sizeof pad_open - 1 + 1;
	size_t n = (size_t)snprintf(
		buf, cap, "{\"key\":\"%s\",\"seq\":%" PRIu64 ",\"ts\":%" PRId64 "%s%s%s", k->json,
		seq, now_wall_ms(), tag ? ",\"tag\":\"" : "", tag ? tag : "", tag ? "\"" : "");

	/* n + 1 is the natural length, closing brace included. */
	if ((size_t)size > n + 1) {
		size_t gap = (size_t)size - (n + 1);

		if (gap >= pad_overhead) {
			memcpy(buf + n, pad_open, sizeof pad_open - 1);
			n += sizeof pad_open - 1;
			memset(buf + n, 'x', gap - pad_overhead);
			n += gap - pad_overhead;
			buf[n++] = '"';
		} else {
			memset(buf + n, ' ', gap);
			n += gap;
		}
	}
	buf[n++] = '}';
	return n;
}

static void on_signal(int sig)
{
	if (stop_signals < 2)
		stop_signals++;
}

/* With KWS_STAGES (stages.h), a record's opaque says when it was made:
 * microseconds since stages_t0_us in its high 32 bits, and how late that was
 * against the pacing schedule (µs, at most UINT32_MAX) in its low 32 bits. */
static int64_t stages_t0_us;

static void *stages_opaque(int64_t due_mono_us)
{
	int64_t now = stages_now_us(), lag = now_mono_us() - due_mono_us;

	if (lag < 0)
		lag = 0;
	if (lag > UINT32_MAX)
		lag = UINT32_MAX;
	return (void *)(uintptr_t)((uint64_t)(now - stages_t0_us) << 32 | (uint64_t)lag);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct stats *st = opaque;

	if (!m->err) {
		st->ok++;
		if (stages_want(m->offset)) {
			uint64_t o = (uint64_t)(uintptr_t)m->_private;

			/* 'C': made (extra: its lag behind the schedule); 'A': acked. */
			stages_mark('C', (uint32_t)m->partition, m->offset,
				    stages_t0_us + (int64_t)(o >> 32), (int64_t)(o & 0xffffffffu));
			stages_mark('A', (uint32_t)m->partition, m->offset, stages_now_us(), -1);
		}
		return;
	}
	if (st->dr_failed++ == 0)
		log_error("first failed delivery: %s (key %.*s, partition %" PRId32 ")",
			  rd_kafka_err2str(m->err), (int)m->key_len, (const char *)m->key,
			  m->partition);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	if (err == RD_KAFKA_RESP_ERR__FATAL) {
		char buf[512];

		rd_kafka_fatal_error(rk, buf, sizeof buf);
		log_error("fatal client error: %s", buf);
		stop_signals = 2;
		return;
	}
	/* Connection failures reach log_cb as well; do not say them twice. */
	if (err == RD_KAFKA_RESP_ERR__TRANSPORT)
		return;
	log_warn("client error: %s: %s", rd_kafka_err2name(err), reason);
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	enum log_level l = level <= 3   ? LOG_ERROR
			   : level == 4 ? LOG_WARN
			   : level <= 6 ? LOG_INFO
					: LOG_DEBUG;

	if (log_enabled(l))
		log_msg(l, "rdkafka %s: %s", fac, buf);
}

/* Sets a librdkafka property; exits 2 naming it if librdkafka refuses. */
static void conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
	char errstr[512];

	if (rd_kafka_conf_set(conf, name, value, errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
		rd_kafka_conf_destroy(conf);
		die_usage("property %s=%s: %s", name, value, errstr);
	}
}

static rd_kafka_conf_t *make_conf(const struct options *o, struct stats *st)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();

	conf_set(conf, "bootstrap.servers", o->bootstrap);
	conf_set(conf, "linger.ms", "5");
	conf_set(conf, "acks", "all");
	conf_set(conf, "partitioner", o->partitioner);
	for (size_t i = 0; i < o->nprops; i++) {
		const char *eq = strchr(o->props[i], '=');
		char *name = xstrndup(o->props[i], (size_t)(eq - o->props[i]));
		char errstr[512];

		if (rd_kafka_conf_set(conf, name, eq + 1, errstr, sizeof errstr) !=
		    RD_KAFKA_CONF_OK) {
			rd_kafka_conf_destroy(conf);
			die_usage("--kafka-prop %s: %s", o->props[i], errstr);
		}
		free(name);
	}
	rd_kafka_conf_set_opaque(conf, st);
	rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
	rd_kafka_conf_set_error_cb(conf, error_cb);
	rd_kafka_conf_set_log_cb(conf, log_cb);
	return conf;
}

/* Sleeps until the monotonic time due_us (serving delivery reports in the
 * meantime) or until a stop signal. */
static void wait_until(rd_kafka_t *rk, int64_t due_us)
{
	int64_t left;

	while (!stop_signals && (left = due_us - now_mono_us()) > 0) {
		if (left >= 1000) {
			rd_kafka_poll(rk, left >= 100000 ? 100 : (int)(left / 1000));
		} else {
			struct timespec ts = { 0, (long)left * 1000 };

			nanosleep(&ts, NULL);
		}
	}
}

/* Enqueues one record, waiting while the local queue is full. Returns 0 when
 * enqueued, 1 when a stop signal came first, -1 when librdkafka refused it
 * (counted and logged). */
static int produce_one(rd_kafka_t *rk, rd_kafka_topic_t *rkt, const struct key *k, const char *val,
		       size_t len, struct stats *st, int64_t due_us)
{
	void *opaque = stages_every ? stages_opaque(due_us) : NULL;

	for (;;) {
		rd_kafka_resp_err_t err =
			rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_KEY(k->raw, k->len),
					  RD_KAFKA_V_VALUE((void *)val, len),
					  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					  RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);

		if (!err) {
			st->enqueued++;
			return 0;
		}
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			st->sync_failed++;
			log_error("cannot produce (key %s): %s", k->raw, rd_kafka_err2str(err));
			return -1;
		}
		if (stop_signals)
			return 1;
		rd_kafka_poll(rk, 100);
	}
}

/* Waits up to FLUSH_TIMEOUT_MS for outstanding deliveries; what is left
 * after that (or after a second signal) is purged and so reported failed. */
static void finish(rd_kafka_t *rk)
{
	int64_t deadline = now_mono_ms() + FLUSH_TIMEOUT_MS;
	int64_t left;

	while (rd_kafka_outq_len(rk) > 0 && stop_signals < 2 &&
	       (left = deadline - now_mono_ms()) > 0)
		rd_kafka_flush(rk, left > 100 ? 100 : (int)left);
	if (rd_kafka_outq_len(rk) > 0) {
		log_error("%d records still undelivered %s; purging them", rd_kafka_outq_len(rk),
			  stop_signals >= 2 ? "at the second signal" : "after a 30 s flush");
		rd_kafka_purge(rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_flush(rk, 1000);
	}
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct stats st = { 0 };
	struct {
		uint64_t late, resets;
		int64_t max_us;
	} pace = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	struct key *keys;
	size_t nkeys, maxjson = 0, cap;
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	uint64_t total, i, base_i = 0, failed;
	int64_t t0_us, base_us;
	char errstr[512];
	char *buf;

	log_setup("produce", LOG_INFO, 0);
	parse_args(argc, argv, &o);
	nkeys = make_keys(&o, &keys);
	if (o.forever)
		total = UINT64_MAX;
	else if (o.count > UINT64_MAX / nkeys)
		die_usage("--count %" PRIu64 " times %zu keys is too many", o.count, nkeys);
	else
		total = o.count * nkeys;

	conf = make_conf(&o, &st);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		log_error("cannot create the producer: %s", errstr);
		keys_free(keys, nkeys);
		free(o.props);
		return 1;
	}
	rkt = rd_kafka_topic_new(rk, o.topic, NULL);

	for (size_t k = 0; k < nkeys; k++)
		if (strlen(keys[k].json) > maxjson)
			maxjson = strlen(keys[k].json);
	cap = maxjson + 80 + (o.tag ? strlen(o.tag) + 10 : 0);
	if ((size_t)o.size + 1 > cap)
		cap = (size_t)o.size + 1;
	buf = xmalloc(cap);

	if (stages_setup("produce") < 0)
		return 1;
	stages_t0_us = stages_now_us();
	t0_us = base_us = now_mono_us();
	for (i = 0; i < total && !stop_signals; i++) {
		const struct key *k = &keys[i % nkeys];
		int64_t due = 0;
		size_t len;

		if (o.rate > 0) {
			int64_t late;

			due = base_us + (int64_t)((double)(i - base_i) * 1e6 / o.rate);
			late = now_mono_us() - due;
			if (late > PACE_MAX_LAG_US) {
				base_us = due = now_mono_us();
				base_i = i;
				pace.resets++;
			}
			wait_until(rk, due);
			if (stop_signals)
				break;
			late = now_mono_us() - due;
			if (late > pace.max_us)
				pace.max_us = late;
			if (late > PACE_LATE_US)
				pace.late++;
		}
		if (o.value) {
			if (produce_one(rk, rkt, k, o.value, strlen(o.value), &st, due))
				break;
			rd_kafka_poll(rk, 0);
			continue;
		}
		len = format_value(buf, cap, k, i / nkeys, o.size, o.tag);
		if (produce_one(rk, rkt, k, buf, len, &st, due))
			break;
		rd_kafka_poll(rk, 0);
	}
	if (stop_signals)
		log_info("signal received, stopping after %" PRIu64 " records", i);
	if (o.rate > 0)
		log_info("pacing: %" PRIu64 " of %" PRIu64 " records made over %d ms behind "
			 "schedule, the latest %.1f ms behind, %" PRIu64 " restarts",
			 pace.late, i, PACE_LATE_US / 1000, (double)pace.max_us / 1000.0,
			 pace.resets);

	finish(rk);
	failed = st.dr_failed + st.sync_failed;
	if (st.enqueued > st.ok + st.dr_failed) {
		uint64_t lost = st.enqueued - st.ok - st.dr_failed;

		log_error("%" PRIu64 " records got no delivery report", lost);
		failed += lost;
	}
	{
		double secs = (double)(now_mono_us() - t0_us) / 1e6;

		log_info("%" PRIu64 " records delivered in %.3f s (%.0f/s)", st.ok, secs,
			 secs > 0 ? (double)st.ok / secs : 0.0);
	}
	printf("PRODUCED %" PRIu64 " records, %" PRIu64 " failed\n", st.ok, failed);
	fflush(stdout);
	stages_close();

	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);
	free(buf);
	keys_free(keys, nkeys);
	free(o.props);
	return failed == 0 && st.ok == st.enqueued ? 0 : 1;
}
