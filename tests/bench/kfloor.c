/*
 * kfloor: the Kafka floor of the benchmark (tests/bench/README.md).
 *
 * A librdkafka consumer set up like the edge's (edge/edge.c, kafka_open and
 * edge_run): a member of a consumer group with cooperative-sticky
 * assignment, fetch.wait.max.ms=100, enable.auto.offset.store=false (offsets
 * stored after every batch, committed by librdkafka's auto-commit),
 * enable.partition.eof=false, start offsets set in the rebalance callback
 * (committed, else the live end), the consumer queue forwarded to a pipe and
 * drained with rd_kafka_consume_batch_queue(512) from a poll() loop. It reads
 * the same topic and discards every record: no tail, no routers, no nng.
 *
 * For each record whose JSON value carries "tag":"<--tag>" (all records
 * without --tag) it takes the end-to-end latency from the value's "ts"
 * (wall ms at production, as tests/tools/produce writes it) to receipt, both
 * as loadgen does (whole wall ms minus ts) and with receipt in microseconds.
 *
 * Prints "ASSIGNED <n>" once it owns partitions (start producing after
 * that), and writes a JSON report (--report) with counts, CLOCK_MONOTONIC
 * times of the first and last tagged record, CPU seconds (getrusage: every
 * librdkafka thread) and the latency quantiles (a CDF of 1000 points).
 * Stops after --expect tagged records, --idle-s without one (once one came),
 * --max-s, or SIGINT/SIGTERM. SIGUSR1 starts the measurement afresh (prints
 * "RESET <mono_ms>"): what came before is forgotten.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

#include "refill.h"

#include "util.h"

static struct {
	const char *bootstrap, *topic, *group, *tag, *report;
	const char **props;
	size_t nprops;
	bool earliest;
	uint64_t expect;
	double idle_s, max_s;
	uint32_t gap_ms;  /* 0: no per-partition gap lists */
	const char *dump; /* per-record receipt times of some keys */
	long dump_from, dump_to;
	uint64_t note_other; /* print "OTHER <n> <mono_ms>" once n others came */
} O;

/* Per partition: receipt times of tagged records, for pauses (--gap-ms). */
struct pgaps {
	uint64_t records;
	int64_t first_ms, last_ms;
	uint32_t gap_ms;
	int64_t gap_end_ms;
	int64_t (*gaps)[2]; /* [ms, end_mono_ms] of gaps over --gap-ms */
	uint32_t ngaps, gcap;
};

static struct {
	rd_kafka_t *rk;
	rd_kafka_queue_t *q;
	int pipefd[2];
	int32_t assigned;
	int32_t partition_count;
	int64_t *next_offset; /* [partition_count], -1: not owned */
	int64_t *stored;
	struct pgaps *pg;
	uint64_t records, tagged, other, no_ts, bytes;
	int64_t first_mono_us, last_mono_us;
	uint32_t *lat_us; /* per tagged record */
	uint64_t *lat_ms; /* histogram of whole ms, as loadgen */
	size_t nlat, caplat;
	size_t ms_buckets;
	char tagpat[300];
	size_t tagpat_len;
	FILE *dump;
	/* As the edge (edge/refill.h): librdkafka 2.0.2's fetcher sleeps up to
	 * 1 s after its local queue was full; a seek wakes it. */
	struct refill refill;
} K;

static volatile sig_atomic_t stop_requested, reset_requested;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		reset_requested = 1;
	else
		stop_requested = 1;
}

/* SIGUSR1: forget what was measured so far (a measurement window starts). */
static void reset(void)
{
	reset_requested = 0;
	K.tagged = K.other = K.no_ts = 0;
	K.first_mono_us = K.last_mono_us = 0;
	K.nlat = 0;
	memset(K.lat_ms, 0, K.ms_buckets * sizeof *K.lat_ms);
	for (int32_t p = 0; p < K.partition_count; p++) {
		free(K.pg[p].gaps);
		memset(&K.pg[p], 0, sizeof K.pg[p]);
	}
	printf("RESET %" PRId64 "\n", now_mono_ms());
	fflush(stdout);
}

static int64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void grow_parts(int32_t n)
{
	if (n <= K.partition_count)
		return;
	K.next_offset = xrealloc(K.next_offset, (size_t)n * sizeof *K.next_offset);
	K.stored = xrealloc(K.stored, (size_t)n * sizeof *K.stored);
	K.pg = xrealloc(K.pg, (size_t)n * sizeof *K.pg);
	for (int32_t p = K.partition_count; p < n; p++) {
		K.next_offset[p] = K.stored[p] = -1;
		memset(&K.pg[p], 0, sizeof K.pg[p]);
	}
	K.partition_count = n;
}

/* As edge.c start_offsets: committed, else the live end (or the low end). */
static void start_offsets(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts)
{
	rd_kafka_resp_err_t err = rd_kafka_committed(rk, parts, 5000);

	for (int i = 0; i < parts->cnt; i++) {
		rd_kafka_topic_partition_t *tp = &parts->elems[i];
		int64_t lo = -1, hi = -1;

		if (!err && tp->offset >= 0)
			continue;
		rd_kafka_resp_err_t werr = rd_kafka_query_watermark_offsets(
			rk, tp->topic, tp->partition, &lo, &hi, 5000);
		tp->offset = werr ? (O.earliest ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END)
				  : (O.earliest ? lo : hi);
	}
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	bool coop = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *error = NULL;

	for (int i = 0; i < parts->cnt; i++)
		grow_parts(parts->elems[i].partition + 1);
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		start_offsets(rk, parts);
		if (coop)
			error = rd_kafka_incremental_assign(rk, parts);
		else
			rd_kafka_assign(rk, parts);
		for (int i = 0; i < parts->cnt; i++) {
			int32_t p = parts->elems[i].partition;
			K.next_offset[p] = K.stored[p] = parts->elems[i].offset;
		}
		K.assigned += parts->cnt;
		printf("ASSIGNED %d %" PRId64 " ", K.assigned, now_mono_ms());
		for (int i = 0; i < parts->cnt; i++)
			printf("%s%d", i ? "," : "", parts->elems[i].partition);
		printf("\n");
		fflush(stdout);
	} else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
		for (int i = 0; i < parts->cnt; i++)
			K.next_offset[parts->elems[i].partition] = -1;
		K.assigned -= parts->cnt;
		printf("REVOKED %d %" PRId64 " ", K.assigned, now_mono_ms());
		for (int i = 0; i < parts->cnt; i++)
			printf("%s%d", i ? "," : "", parts->elems[i].partition);
		printf("\n");
		fflush(stdout);
		if (coop)
			error = rd_kafka_incremental_unassign(rk, parts);
		else
			rd_kafka_assign(rk, NULL);
	} else {
		rd_kafka_assign(rk, NULL);
	}
	if (error) {
		log_error("incremental (un)assign: %s", rd_kafka_error_string(error));
		rd_kafka_error_destroy(error);
	}
}

/* The integer after "ts": in a producer record; -1 if none. */
static int64_t find_ts(const char *v, size_t n)
{
	const char *p = memmem(v, n, "\"ts\":", 5);
	int64_t ts = 0;

	if (!p)
		return -1;
	p += 5;
	if (p >= v + n || *p < '0' || *p > '9')
		return -1;
	for (; p < v + n && *p >= '0' && *p <= '9'; p++)
		ts = ts * 10 + (*p - '0');
	return ts;
}

/* The number at the end of a key ("client-17": 17), or -1. */
static long key_number(const char *k, size_t n)
{
	size_t i = n;
	long v = 0, mul = 1;

	while (i > 0 && k[i - 1] >= '0' && k[i - 1] <= '9' && n - i < 9)
		i--;
	if (i == n)
		return -1;
	for (size_t j = n; j > i; j--, mul *= 10)
		v += (k[j - 1] - '0') * mul;
	return v;
}

/* --dump: "<key> <seq> <receipt wall us>" for keys numbered in --dump-ids. */
static void dump_record(const rd_kafka_message_t *m, int64_t now_us)
{
	long id = key_number(m->key, m->key_len);
	const char *v = m->payload, *p;
	long long seq = 0;

	if (id < O.dump_from || id >= O.dump_to)
		return;
	p = memmem(v, m->len, "\"seq\":", 6);
	if (!p)
		return;
	for (p += 6; p < v + m->len && *p >= '0' && *p <= '9'; p++)
		seq = seq * 10 + (*p - '0');
	fprintf(K.dump, "%.*s %lld %" PRId64 "\n", (int)m->key_len, (const char *)m->key, seq,
		now_us);
}

static void take(const rd_kafka_message_t *m)
{
	int64_t now_us = wall_us();

	K.records++;
	K.bytes += m->len;
	if (m->partition >= 0 && m->partition < K.partition_count)
		K.next_offset[m->partition] = m->offset + 1;
	if (!m->payload)
		return;
	if (K.tagpat_len && !memmem(m->payload, m->len, K.tagpat, K.tagpat_len)) {
		if (++K.other == O.note_other) {
			printf("OTHER %" PRIu64 " %" PRId64 "\n", K.other, now_mono_ms());
			fflush(stdout);
		}
		return;
	}
	int64_t ts = find_ts(m->payload, m->len);
	if (ts < 0) {
		K.no_ts++;
		return;
	}
	K.tagged++;
	K.last_mono_us = now_mono_us();
	if (!K.first_mono_us)
		K.first_mono_us = K.last_mono_us;
	if (O.gap_ms && m->partition >= 0 && m->partition < K.partition_count) {
		struct pgaps *g = &K.pg[m->partition];
		int64_t now_ms = K.last_mono_us / 1000;
		if (g->records++) {
			int64_t d = now_ms - g->last_ms;
			if (d > g->gap_ms) {
				g->gap_ms = (uint32_t)d;
				g->gap_end_ms = now_ms;
			}
			if (d >= O.gap_ms) {
				if (g->ngaps == g->gcap) {
					g->gcap = g->gcap ? g->gcap * 2 : 4;
					g->gaps = xrealloc(g->gaps, g->gcap * sizeof *g->gaps);
				}
				g->gaps[g->ngaps][0] = d;
				g->gaps[g->ngaps++][1] = now_ms;
			}
		} else {
			g->first_ms = now_ms;
		}
		g->last_ms = now_ms;
	}
	int64_t us = now_us - ts * 1000;
	int64_t ms = now_us / 1000 - ts; /* as loadgen: whole wall ms minus ts */
	if (us < 0)
		us = 0;
	if (ms < 0)
		ms = 0;
	if (K.nlat == K.caplat) {
		K.caplat = K.caplat ? K.caplat * 2 : 65536;
		K.lat_us = xrealloc(K.lat_us, K.caplat * sizeof *K.lat_us);
	}
	K.lat_us[K.nlat++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
	if (K.dump && m->key_len)
		dump_record(m, now_us);
	if ((uint64_t)ms >= K.ms_buckets)
		ms = (int64_t)K.ms_buckets - 1;
	K.lat_ms[ms]++;
}

/* As edge.c store_offsets: offsets of what was handed on, for the commit. */
static void store_offsets(void)
{
	rd_kafka_topic_partition_list_t *l = NULL;

	for (int32_t p = 0; p < K.partition_count; p++) {
		if (K.next_offset[p] < 0 || K.next_offset[p] == K.stored[p])
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(l, O.topic, p)->offset = K.next_offset[p];
		K.stored[p] = K.next_offset[p];
	}
	if (l) {
		rd_kafka_offsets_store(K.rk, l);
		rd_kafka_topic_partition_list_destroy(l);
	}
}

/* As the edge's any_lagging: a partition's last fetch response promised
 * more than has come. */
static bool any_lagging(void *arg)
{
	(void)arg;
	for (int32_t p = 0; p < K.partition_count; p++) {
		int64_t lo, hi;
		if (K.next_offset[p] >= 0 &&
		    rd_kafka_get_watermark_offsets(K.rk, O.topic, p, &lo, &hi) == 0 &&
		    hi > K.next_offset[p])
			return true;
	}
	return false;
}

static void refill_if_starved(void)
{
	rd_kafka_topic_partition_list_t *l = NULL;
	int64_t len = (int64_t)rd_kafka_queue_length(K.q);
	if (!refill_due(&K.refill, len) &&
	    !refill_idle_due(&K.refill, len, now_mono_ms(), any_lagging, NULL))
		return;
	for (int32_t p = 0; p < K.partition_count; p++) {
		if (K.next_offset[p] < 0)
			continue;
		if (!l)
			l = rd_kafka_topic_partition_list_new(8);
		rd_kafka_topic_partition_list_add(l, O.topic, p)->offset =
			refill_seek_offset(K.rk, O.topic, p, K.next_offset[p]);
		K.stored[p] = -1;
	}
	if (!l)
		return;
	rd_kafka_error_t *error = rd_kafka_seek_partitions(K.rk, l, 0);
	if (error)
		rd_kafka_error_destroy(error);
	rd_kafka_topic_partition_list_destroy(l);
}

static void consume(void)
{
	rd_kafka_message_t *msgs[512];
	ssize_t n;

	do {
		refill_seen(&K.refill, (int64_t)rd_kafka_queue_length(K.q), 512);
		n = rd_kafka_consume_batch_queue(K.q, 0, msgs, 512);
		int64_t now = n ? now_mono_ms() : 0;
		for (ssize_t i = 0; i < n; i++) {
			refill_record(&K.refill, msgs[i]->key_len + msgs[i]->len, now);
			if (!msgs[i]->err)
				take(msgs[i]);
			else if (msgs[i]->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				log_warn("consumer: %s", rd_kafka_message_errstr(msgs[i]));
			rd_kafka_message_destroy(msgs[i]);
		}
	} while (n == 512);
	store_offsets();
	refill_if_starved();
}

static int u32_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank quantile of the sorted samples. */
static uint32_t q_us(double q)
{
	size_t rank = (size_t)(q * (double)K.nlat + 0.999999);

	if (rank < 1)
		rank = 1;
	if (rank > K.nlat)
		rank = K.nlat;
	return K.lat_us[rank - 1];
}

static uint64_t q_ms(double q)
{
	double want = q * (double)K.nlat;
	uint64_t rank = (uint64_t)want, cum = 0;

	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < K.ms_buckets; i++) {
		cum += K.lat_ms[i];
		if (cum >= rank)
			return i;
	}
	return K.ms_buckets - 1;
}

static double tv_s(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void report(void)
{
	struct rusage ru;
	FILE *f = O.report ? fopen(O.report, "w") : NULL;
	double span;
	uint64_t max_ms = 0;

	getrusage(RUSAGE_SELF, &ru);
	qsort(K.lat_us, K.nlat, sizeof *K.lat_us, u32_cmp);
	for (size_t i = 0; i < K.ms_buckets; i++)
		if (K.lat_ms[i])
			max_ms = i;
	span = (double)(K.last_mono_us - K.first_mono_us) / 1e6;
	printf("kfloor: records %" PRIu64 " tagged %" PRIu64 " in %.3f s (%.0f/s) cpu %.2f s",
	       K.records, K.tagged, span, span > 0 ? (double)K.tagged / span : 0.0,
	       tv_s(ru.ru_utime) + tv_s(ru.ru_stime));
	if (K.nlat)
		printf(" latency_ms p50 %" PRIu64 " p99 %" PRIu64 " p999 %" PRIu64 " max %" PRIu64,
		       q_ms(0.5), q_ms(0.99), q_ms(0.999), max_ms);
	printf("\n");
	fflush(stdout);
	if (!f) {
		if (O.report)
			log_error("--report %s: %s", O.report, strerror(errno));
		return;
	}
	fprintf(f,
		"{\"records\": %" PRIu64 ", \"tagged\": %" PRIu64 ", \"other\": %" PRIu64
		", \"no_ts\": %" PRIu64 ", \"bytes\": %" PRIu64
		", \"first_mono_ms\": %.3f, \"last_mono_ms\": %.3f, \"span_s\": %.6f"
		", \"utime_s\": %.3f, \"stime_s\": %.3f, \"max_rss_kb\": %ld",
		K.records, K.tagged, K.other, K.no_ts, K.bytes, (double)K.first_mono_us / 1000,
		(double)K.last_mono_us / 1000, span, tv_s(ru.ru_utime), tv_s(ru.ru_stime),
		ru.ru_maxrss);
	if (K.nlat) {
		double sum = 0;
		for (size_t i = 0; i < K.nlat; i++)
			sum += K.lat_us[i];
		fprintf(f,
			",\n \"latency_ms\": {\"count\": %zu, \"p50\": %" PRIu64
			", \"p99\": %" PRIu64 ", \"p999\": %" PRIu64 ", \"max\": %" PRIu64 "}",
			K.nlat, q_ms(0.5), q_ms(0.99), q_ms(0.999), max_ms);
		fprintf(f,
			",\n \"latency_us\": {\"count\": %zu, \"mean\": %.1f, \"min\": %u"
			", \"p50\": %u, \"p90\": %u, \"p99\": %u, \"p999\": %u, \"max\": %u}",
			K.nlat, sum / (double)K.nlat, K.lat_us[0], q_us(0.5), q_us(0.9), q_us(0.99),
			q_us(0.999), K.lat_us[K.nlat - 1]);
		fprintf(f, ",\n \"cdf_us\": [");
		for (int i = 1; i <= 1000; i++)
			fprintf(f, "%s%u", i > 1 ? ", " : "", q_us(i / 1000.0));
		fprintf(f, "]");
	}
	if (O.gap_ms) {
		fprintf(f, ",\n \"partitions\": [");
		for (int32_t p = 0; p < K.partition_count; p++) {
			const struct pgaps *g = &K.pg[p];
			fprintf(f,
				"%s\n  {\"partition\": %d, \"records\": %" PRIu64
				", \"first_ms\": %" PRId64 ", \"last_ms\": %" PRId64
				", \"gap_ms\": %u, \"gap_end_ms\": %" PRId64 ", \"gaps\": [",
				p ? "," : "", p, g->records, g->first_ms, g->last_ms, g->gap_ms,
				g->gap_end_ms);
			for (uint32_t i = 0; i < g->ngaps; i++)
				fprintf(f, "%s[%" PRId64 ", %" PRId64 "]", i ? ", " : "",
					g->gaps[i][0], g->gaps[i][1]);
			fprintf(f, "]}");
		}
		fprintf(f, "]");
	}
	fprintf(f, "}\n");
	fclose(f);
}

static void usage(FILE *f)
{
	fputs("usage: kfloor --bootstrap HOST:PORT --topic TOPIC [--group G]\n"
	      "              [--kafka-prop K=V]... [--tag TAG] [--expect N]\n"
	      "              [--idle-s S] [--max-s S] [--from live|earliest]\n"
	      "              [--gap-ms G] [--dump FILE --dump-ids FROM:TO]\n"
	      "              [--report FILE.json]\n"
	      "\n"
	      "The Kafka floor of tests/bench: consumes TOPIC with the edge's consumer\n"
	      "settings and discards the records; measures rate, CPU and latency.\n"
	      "\n"
	      "  --group G        consumer group (default kws-kfloor)\n"
	      "  --kafka-prop K=V any librdkafka property (as the edge's --kafka-prop)\n"
	      "  --tag TAG        count and time only records with \"tag\":\"TAG\"\n"
	      "  --expect N       stop after N such records\n"
	      "  --idle-s S       stop S s after the last such record (default 5)\n"
	      "  --max-s S        stop after S s in any case (default 600)\n"
	      "  --from F         where a partition without a committed offset\n"
	      "                   starts: live (the high watermark, as the edge;\n"
	      "                   default) or earliest\n"
	      "  --gap-ms G       per partition: first/last receipt and every gap\n"
	      "                   of at least G ms between tagged records, with\n"
	      "                   its end (CLOCK_MONOTONIC ms), in the report\n"
	      "  --dump FILE      write \"<key> <seq> <receipt wall us>\" of each tagged\n"
	      "                   record whose key ends in a number in [FROM, TO)\n"
	      "                   (--dump-ids), to pair with wsprobe --dump\n"
	      "  --note-other N   print \"OTHER <N> <mono_ms>\" when the Nth record\n"
	      "                   without the tag has come (the bench's warm-up)\n"
	      "  --report FILE    JSON report\n",
	      f);
}

static void parse(int argc, char **argv)
{
	static const struct option lo[] = { { "bootstrap", required_argument, NULL, 'b' },
					    { "topic", required_argument, NULL, 't' },
					    { "group", required_argument, NULL, 'g' },
					    { "kafka-prop", required_argument, NULL, 'X' },
					    { "tag", required_argument, NULL, 'T' },
					    { "expect", required_argument, NULL, 'e' },
					    { "idle-s", required_argument, NULL, 'i' },
					    { "max-s", required_argument, NULL, 'm' },
					    { "from", required_argument, NULL, 'f' },
					    { "report", required_argument, NULL, 'o' },
					    { "gap-ms", required_argument, NULL, 'G' },
					    { "dump", required_argument, NULL, 'D' },
					    { "dump-ids", required_argument, NULL, 'I' },
					    { "note-other", required_argument, NULL, 'N' },
					    { "help", no_argument, NULL, 'h' },
					    { NULL, 0, NULL, 0 } };
	int c;

	O.group = "kws-kfloor";
	O.idle_s = 5;
	O.max_s = 600;
	O.props = xcalloc((size_t)argc, sizeof *O.props);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'b':
			O.bootstrap = optarg;
			break;
		case 't':
			O.topic = optarg;
			break;
		case 'g':
			O.group = optarg;
			break;
		case 'X':
			O.props[O.nprops++] = optarg;
			break;
		case 'T':
			O.tag = optarg;
			break;
		case 'e':
			O.expect = strtoull(optarg, NULL, 10);
			break;
		case 'i':
			O.idle_s = strtod(optarg, NULL);
			break;
		case 'm':
			O.max_s = strtod(optarg, NULL);
			break;
		case 'f':
			O.earliest = strcmp(optarg, "earliest") == 0;
			break;
		case 'o':
			O.report = optarg;
			break;
		case 'G':
			O.gap_ms = (uint32_t)strtoul(optarg, NULL, 10);
			break;
		case 'D':
			O.dump = optarg;
			break;
		case 'I':
			if (sscanf(optarg, "%ld:%ld", &O.dump_from, &O.dump_to) != 2) {
				fprintf(stderr, "kfloor: --dump-ids wants FROM:TO\n");
				exit(2);
			}
			break;
		case 'N':
			O.note_other = strtoull(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			exit(2);
		}
	}
	if (!O.bootstrap || !O.topic) {
		usage(stderr);
		exit(2);
	}
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
	char err[512];

	if (rd_kafka_conf_set(conf, k, v, err, sizeof err) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "kfloor: %s=%s: %s\n", k, v, err);
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	char err[512];
	int64_t t0, last_any;

	log_setup("kfloor", LOG_INFO, 0);
	parse(argc, argv);
	K.ms_buckets = 600001;
	K.lat_ms = xcalloc(K.ms_buckets, sizeof *K.lat_ms);
	if (O.dump) {
		K.dump = fopen(O.dump, "w");
		if (!K.dump) {
			fprintf(stderr, "kfloor: --dump %s: %s\n", O.dump, strerror(errno));
			return 2;
		}
	}
	if (O.tag)
		K.tagpat_len = (size_t)snprintf(K.tagpat, sizeof K.tagpat, "\"tag\":\"%s\"", O.tag);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);

	/* The edge's consumer settings (edge/edge.c, kafka_open). */
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	set(conf, "bootstrap.servers", O.bootstrap);
	set(conf, "group.id", O.group);
	set(conf, "partition.assignment.strategy", "cooperative-sticky");
	set(conf, "auto.offset.reset", "earliest");
	set(conf, "enable.partition.eof", "false");
	set(conf, "enable.auto.offset.store", "false");
	set(conf, "fetch.wait.max.ms", "100");
	set(conf, "client.id", "kfloor");
	for (size_t i = 0; i < O.nprops; i++) {
		char *eq = strchr(O.props[i], '=');
		if (!eq) {
			fprintf(stderr, "kfloor: --kafka-prop wants K=V\n");
			return 2;
		}
		*eq = '\0';
		set(conf, O.props[i], eq + 1);
	}
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	refill_init(&K.refill, conf);
	K.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!K.rk) {
		log_error("consumer: %s", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(K.rk);
	K.q = rd_kafka_queue_get_consumer(K.rk);
	if (pipe2(K.pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
		log_error("pipe: %s", strerror(errno));
		return 1;
	}
	rd_kafka_queue_io_event_enable(K.q, K.pipefd[1], "1", 1);
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, O.topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_resp_err_t e = rd_kafka_subscribe(K.rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (e) {
		log_error("subscribe: %s", rd_kafka_err2str(e));
		return 1;
	}

	t0 = last_any = now_mono_ms();
	struct pollfd pfd = { .fd = K.pipefd[0], .events = POLLIN };
	while (!stop_requested) {
		int n = poll(&pfd, 1, 100);
		if (n < 0 && errno != EINTR)
			break;
		if (pfd.revents & POLLIN) {
			char buf[256];
			while (read(K.pipefd[0], buf, sizeof buf) == (ssize_t)sizeof buf)
				;
		}
		if (reset_requested)
			reset();
		uint64_t before = K.tagged;
		consume();
		int64_t now = now_mono_ms();
		if (K.tagged != before)
			last_any = now;
		if (O.expect && K.tagged >= O.expect)
			break;
		if (K.tagged && now - last_any > (int64_t)(O.idle_s * 1000))
			break;
		if (now - t0 > (int64_t)(O.max_s * 1000))
			break;
	}
	report();
	if (K.dump)
		fclose(K.dump);
	rd_kafka_consumer_close(K.rk);
	rd_kafka_queue_destroy(K.q);
	rd_kafka_destroy(K.rk);
	return 0;
}
