/* Unit tests for edge/refill.c: when the edge wakes librdkafka 2.0.2's
 * fetcher. The fetcher is modelled as librdkafka 2.0.2 behaves
 * (rd_kafka_toppar_fetch_decide): after each fetch response it stops while
 * the local queue holds queued.min.messages records or more, stale ones
 * included, and only a seek starts it again. The edge takes up to 512
 * records per batch and asks refill_due, then refill_idle_due, after each
 * turn. What the edge relies on: whenever the fetcher stopped on fresh
 * records, the refill is due the next time the queue is empty, whatever the
 * interleaving; when stale records (dropped, never taken) helped fill it, the
 * idle rule wakes it after REFILL_IDLE_MS instead of librdkafka's 1 s; a
 * queue that stays well below the bound seeks nothing; and a partition that
 * cannot be fetched is not asked more than a few times a second. */
#include "refill.h"

#include <check.h>
#include <stdlib.h>

enum { MIN_MSGS = 5000, BATCH = 512 };

static struct refill make(const char *min_msgs, const char *max_kbytes)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char err[256];
	ck_assert_int_eq(rd_kafka_conf_set(conf, "queued.min.messages", min_msgs, err, sizeof err),
			 RD_KAFKA_CONF_OK);
	ck_assert_int_eq(
		rd_kafka_conf_set(conf, "queued.max.messages.kbytes", max_kbytes, err, sizeof err),
		RD_KAFKA_CONF_OK);
	struct refill f;
	refill_init(&f, conf);
	rd_kafka_conf_destroy(conf);
	return f;
}

/* The model: a queue, and a fetcher that is running or stopped. */
struct model {
	int64_t queue;
	bool stopped;
};

static void response(struct model *m, int64_t records)
{
	m->queue += records;
	if (m->queue >= MIN_MSGS)
		m->stopped = true; /* fetch_decide: "queued.min.messages exceeded" */
}

static void take(struct model *m, struct refill *f, int64_t n, size_t len)
{
	if (n > m->queue)
		n = m->queue;
	for (int64_t i = 0; i < n; i++)
		refill_record(f, len, 0);
	m->queue -= n;
}

/* The edge's turn's end: refill_due, and the seek it leads to. */
static bool turn_end(struct model *m, struct refill *f)
{
	bool due = refill_due(f, m->queue);
	if (due)
		m->stopped = false;
	return due;
}

/* The interleaving the edge missed before: it looked at 4,900 (below the
 * bound), a response took the queue to 5,100 and stopped the fetcher, and by
 * its next look a batch had taken it below the bound again. */
START_TEST(test_crossing_between_looks_is_not_missed)
{
	struct refill f = make("5000", "65536");
	struct model m = { 0 };
	ck_assert(!turn_end(&m, &f));
	response(&m, 4900);
	ck_assert(!m.stopped);
	response(&m, 200);
	ck_assert(m.stopped);
	take(&m, &f, BATCH, 60);
	ck_assert_int_lt(m.queue, MIN_MSGS);
	ck_assert(!turn_end(&m, &f)); /* not empty yet */
	while (m.queue > 0)
		take(&m, &f, BATCH, 60);
	ck_assert(turn_end(&m, &f));
	ck_assert(!m.stopped);
	ck_assert_uint_eq(f.full, 1);
}
END_TEST

/* A queue that never comes near the bound: no seek. */
START_TEST(test_no_refill_below_the_bound)
{
	struct refill f = make("5000", "65536");
	struct model m = { 0 };
	for (int round = 0; round < 1000; round++) {
		response(&m, 600);
		take(&m, &f, BATCH, 60);
		take(&m, &f, BATCH, 60);
		ck_assert(!turn_end(&m, &f));
	}
	ck_assert_uint_eq(f.full, 0);
}
END_TEST

/* Random interleavings of responses (one message set per partition, as the
 * mock cluster and a broker under a small max.partition.fetch.bytes send),
 * batches and turn ends: the fetcher is never left stopped with the queue
 * empty at a turn's end. */
START_TEST(test_never_stopped_with_an_empty_queue)
{
	struct refill f = make("5000", "65536");
	struct model m = { 0 };
	unsigned seed = 13;
	uint64_t stops = 0;
	for (int step = 0; step < 200000; step++) {
		int what = rand_r(&seed) % 4;
		if (what == 0 && !m.stopped) {
			bool was = m.stopped;
			response(&m, 1 + rand_r(&seed) % 2400);
			stops += !was && m.stopped;
		} else if (what == 1) {
			refill_seen(&f, m.queue, BATCH); /* a response may land before the take */
		} else if (what == 2) {
			take(&m, &f, 1 + rand_r(&seed) % BATCH, 60);
		} else {
			turn_end(&m, &f);
			ck_assert_msg(
				!(m.stopped && m.queue == 0),
				"step %d: the fetcher stopped and the queue is empty, no refill",
				step);
		}
	}
	while (m.queue > 0)
		take(&m, &f, BATCH, 60);
	turn_end(&m, &f);
	ck_assert(!m.stopped);
	ck_assert_uint_gt(stops, 100);
	ck_assert_uint_ge(f.full, stops);
}
END_TEST

/* The byte bound (queued.max.messages.kbytes) stops the fetcher too. */
START_TEST(test_byte_bound)
{
	struct refill f = make("100000", "1024"); /* 1 MiB */
	for (int i = 0; i < 300; i++)
		refill_record(&f, 4096, 0); /* 1.2 MiB taken, 300 records */
	ck_assert(!refill_due(&f, 5));
	ck_assert(refill_due(&f, 0));
	for (int i = 0; i < 100; i++)
		refill_record(&f, 4096, 0); /* 400 KiB: below */
	ck_assert(!refill_due(&f, 0));
}
END_TEST

static bool yes(void *arg)
{
	int *asked = arg;
	(*asked)++;
	return true;
}

static bool no(void *arg)
{
	int *asked = arg;
	(*asked)++;
	return false;
}

/* What was seen on the mock cluster: a seek made a fetch in flight stale;
 * 3,000 stale and 2,500 fresh records stopped the fetcher; the edge dropped
 * the stale ones and took 2,500. The full rule cannot tell; the idle rule
 * wakes the fetcher REFILL_IDLE_MS after the last record. */
START_TEST(test_stale_records_are_caught_by_the_idle_rule)
{
	struct refill f = make("5000", "65536");
	int asked = 0;
	for (int i = 0; i < 2500; i++)
		refill_record(&f, 60, 1000);
	ck_assert(!refill_due(&f, 0));
	ck_assert(!refill_idle_due(&f, 0, 1000 + REFILL_IDLE_MS - 1, yes, &asked));
	ck_assert_int_eq(asked, 0); /* the lag is asked only once the wait is over */
	ck_assert(!refill_idle_due(&f, 3, 1000 + REFILL_IDLE_MS, yes, &asked));
	ck_assert(refill_idle_due(&f, 0, 1000 + REFILL_IDLE_MS, yes, &asked));
	ck_assert_int_eq(asked, 1);
	ck_assert_uint_eq(f.idle, 1);
	ck_assert_uint_eq(f.full, 0);
}
END_TEST

/* The same when the edge looked while the stale records were still in the
 * queue: the length it saw makes the full rule due at once. */
START_TEST(test_stale_records_seen_make_the_full_rule_due)
{
	struct refill f = make("5000", "65536");
	refill_seen(&f, 5500, BATCH);
	for (int i = 0; i < 2500; i++)
		refill_record(&f, 60, 1000);
	ck_assert(refill_due(&f, 0));
	/* and the next round starts from nothing */
	refill_seen(&f, 3000, BATCH);
	for (int i = 0; i < 3000; i++)
		refill_record(&f, 60, 1000);
	ck_assert(!refill_due(&f, 0));
}
END_TEST

/* A bound under a batch (queued.min.messages=100): looking at an empty
 * queue counts nothing, so an idle owner does not seek at every turn. */
START_TEST(test_small_bound_idle_seeks_nothing)
{
	struct refill f = make("100", "65536");
	for (int turn = 0; turn < 100; turn++) {
		refill_seen(&f, 0, BATCH);
		ck_assert(!refill_due(&f, 0));
	}
	refill_seen(&f, 30, BATCH);
	ck_assert(refill_due(&f, 0)); /* 30 + a batch: it may have stopped */
}
END_TEST

/* Caught up (no partition lags): however long the queue stays empty,
 * nothing is sought. */
START_TEST(test_idle_and_caught_up_seeks_nothing)
{
	struct refill f = make("5000", "65536");
	int asked = 0;
	for (int64_t now = 0; now < 60000; now += 100)
		ck_assert(!refill_idle_due(&f, 0, now, no, &asked));
	ck_assert_int_gt(asked, 500);
	ck_assert_uint_eq(f.idle, 0);
}
END_TEST

/* A partition that lags but yields nothing (its broker is down): the waits
 * double, 100 to 800 ms, then the rule rests (librdkafka's own 1 s wait does
 * as well); a record starts it again. */
START_TEST(test_idle_waits_double_then_rest)
{
	struct refill f = make("5000", "65536");
	int asked = 0, seeks = 0;
	int64_t last = -1, gaps[8], ngaps = 0;
	for (int64_t now = 0; now <= 20000; now += 10) {
		if (refill_idle_due(&f, 0, now, yes, &asked)) {
			if (last >= 0 && ngaps < 8)
				gaps[ngaps++] = now - last;
			last = now;
			seeks++;
		}
	}
	ck_assert_int_eq(seeks, 4);
	ck_assert_int_eq(last, REFILL_IDLE_MS * (1 + 2 + 4 + 8));
	ck_assert_int_eq(gaps[0], 2 * REFILL_IDLE_MS);
	ck_assert_int_eq(gaps[1], 4 * REFILL_IDLE_MS);
	ck_assert_int_eq(gaps[2], REFILL_IDLE_MAX_MS);
	refill_record(&f, 60, 30000);
	ck_assert(!refill_idle_due(&f, 0, 30000 + REFILL_IDLE_MS - 1, yes, &asked));
	ck_assert(refill_idle_due(&f, 0, 30000 + REFILL_IDLE_MS, yes, &asked));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("refill");
	TCase *tc = tcase_create("refill");
	tcase_add_test(tc, test_crossing_between_looks_is_not_missed);
	tcase_add_test(tc, test_no_refill_below_the_bound);
	tcase_add_test(tc, test_never_stopped_with_an_empty_queue);
	tcase_add_test(tc, test_byte_bound);
	tcase_add_test(tc, test_stale_records_are_caught_by_the_idle_rule);
	tcase_add_test(tc, test_stale_records_seen_make_the_full_rule_due);
	tcase_add_test(tc, test_small_bound_idle_seeks_nothing);
	tcase_add_test(tc, test_idle_and_caught_up_seeks_nothing);
	tcase_add_test(tc, test_idle_waits_double_then_rest);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
