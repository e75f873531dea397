/* Unit tests for edge/tail.c: the ring of one partition's recent records
 * that replays a subscription's position from memory. What the edge relies
 * on: records kept in offset order with their bytes, the oldest dropped when
 * the byte budget is passed, tail_covers true exactly when every record from
 * an offset on is held, and tail_find locating an offset (also across gaps
 * and after the ring wrapped). */
#include "tail.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What one record costs against the budget (tail.c's rec_cost). */
static size_t cost(size_t key_len, size_t value_len)
{
	return sizeof(struct tail_rec) + sizeof(struct tail_rec *) + key_len + value_len;
}

/* Appends a record whose key is "k<offset>" and value "v<offset>". */
static void put(struct tail *t, int64_t off, size_t max_bytes)
{
	char k[32], v[32];
	int kl = snprintf(k, sizeof k, "k%lld", (long long)off);
	int vl = snprintf(v, sizeof v, "v%lld", (long long)off);
	tail_append(t, off, 1000 + off, k, (size_t)kl, v, (size_t)vl, false, max_bytes);
}

static void assert_rec(const struct tail *t, size_t i, int64_t off)
{
	const struct tail_rec *r = tail_at(t, i);
	char k[32], v[32];
	int kl = snprintf(k, sizeof k, "k%lld", (long long)off);
	int vl = snprintf(v, sizeof v, "v%lld", (long long)off);
	ck_assert_int_eq(r->offset, off);
	ck_assert_int_eq(r->timestamp_ms, 1000 + off);
	ck_assert_uint_eq(r->key_len, (unsigned)kl);
	ck_assert_uint_eq(r->value_len, (unsigned)vl);
	ck_assert(!r->value_null);
	ck_assert_mem_eq(r->data, k, (size_t)kl);
	ck_assert_mem_eq(r->data + kl, v, (size_t)vl);
}

/* The record sizes of put() for offsets 100..999 are all the same. */
#define REC_COST cost(4, 4)

START_TEST(test_empty)
{
	struct tail t;
	tail_init(&t);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_uint_eq(t.bytes, 0);
	/* Nothing known yet: no position can be served from memory. */
	ck_assert(!tail_covers(&t, 0));
	ck_assert(!tail_covers(&t, 100));
	ck_assert_uint_eq(tail_find(&t, 0), 0);
	tail_free(&t);
	tail_free(&t); /* a freed tail is a zeroed one again */

	struct tail z;
	memset(&z, 0, sizeof z);
	tail_free(&z);
}
END_TEST

START_TEST(test_reset_covers_from_start)
{
	struct tail t;
	tail_init(&t);
	/* A new assignment starting at 100: a subscription at 100 (the live
	 * end) is served from memory, an older one is not. */
	tail_reset(&t, 100);
	ck_assert(tail_covers(&t, 100));
	ck_assert(!tail_covers(&t, 99));
	ck_assert_int_eq(t.next, 100);
	put(&t, 100, 1 << 20);
	put(&t, 101, 1 << 20);
	ck_assert_uint_eq(t.count, 2);
	/* Another reset empties it and starts elsewhere. */
	tail_reset(&t, 500);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_uint_eq(t.bytes, 0);
	ck_assert(!tail_covers(&t, 101));
	ck_assert(tail_covers(&t, 500));
	tail_free(&t);
}
END_TEST

START_TEST(test_append_in_order)
{
	struct tail t;
	tail_init(&t);
	tail_reset(&t, 100);
	for (int64_t o = 100; o < 110; o++)
		put(&t, o, 1 << 20);
	ck_assert_uint_eq(t.count, 10);
	ck_assert_int_eq(t.next, 110);
	ck_assert_uint_eq(t.bytes, 10 * REC_COST);
	for (size_t i = 0; i < 10; i++)
		assert_rec(&t, i, 100 + (int64_t)i);
	/* Lookup from an offset. */
	ck_assert_uint_eq(tail_find(&t, 100), 0);
	ck_assert_uint_eq(tail_find(&t, 105), 5);
	ck_assert_uint_eq(tail_find(&t, 109), 9);
	ck_assert_uint_eq(tail_find(&t, 110), 10); /* nothing yet: count */
	ck_assert_uint_eq(tail_find(&t, 0), 0);
	for (int64_t o = 100; o <= 110; o++)
		ck_assert(tail_covers(&t, o));
	ck_assert(!tail_covers(&t, 99));
	tail_free(&t);
}
END_TEST

START_TEST(test_null_and_empty_values)
{
	struct tail t;
	tail_init(&t);
	tail_reset(&t, 0);
	tail_append(&t, 0, 5, "key", 3, NULL, 0, true, 1 << 20);  /* a tombstone */
	tail_append(&t, 1, 6, "key", 3, "", 0, false, 1 << 20);   /* an empty value */
	tail_append(&t, 2, 7, NULL, 0, "val", 3, false, 1 << 20); /* no key */
	const struct tail_rec *r = tail_at(&t, 0);
	ck_assert(r->value_null);
	ck_assert_uint_eq(r->value_len, 0);
	ck_assert_mem_eq(r->data, "key", 3);
	r = tail_at(&t, 1);
	ck_assert(!r->value_null);
	ck_assert_uint_eq(r->value_len, 0);
	r = tail_at(&t, 2);
	ck_assert_uint_eq(r->key_len, 0);
	ck_assert_mem_eq(r->data, "val", 3);
	ck_assert_uint_eq(t.bytes, 2 * cost(3, 0) + cost(0, 3));
	tail_free(&t);
}
END_TEST

START_TEST(test_gaps)
{
	/* Compacted topics and transaction markers leave gaps in the offsets. */
	struct tail t;
	tail_init(&t);
	tail_reset(&t, 100);
	put(&t, 100, 1 << 20);
	put(&t, 102, 1 << 20);
	put(&t, 105, 1 << 20);
	ck_assert_int_eq(t.next, 106);
	ck_assert_uint_eq(tail_find(&t, 101), 1); /* the first record at or after */
	ck_assert_uint_eq(tail_find(&t, 102), 1);
	ck_assert_uint_eq(tail_find(&t, 103), 2);
	ck_assert_uint_eq(tail_find(&t, 106), 3);
	/* A position inside a gap is covered: nothing there is missing. */
	ck_assert(tail_covers(&t, 101));
	ck_assert(tail_covers(&t, 104));
	tail_free(&t);
}
END_TEST

START_TEST(test_eviction_by_bytes)
{
	struct tail t;
	tail_init(&t);
	tail_reset(&t, 100);
	size_t max = 3 * REC_COST;
	for (int64_t o = 100; o < 105; o++) {
		put(&t, o, max);
		ck_assert_uint_le(t.bytes, max);
	}
	/* The three newest are held, in order; the older two are gone and the
	 * tail says so. */
	ck_assert_uint_eq(t.count, 3);
	ck_assert_uint_eq(t.bytes, max);
	for (size_t i = 0; i < 3; i++)
		assert_rec(&t, i, 102 + (int64_t)i);
	ck_assert(!tail_covers(&t, 100));
	ck_assert(!tail_covers(&t, 101));
	ck_assert(tail_covers(&t, 102));
	ck_assert_int_eq(t.cover_from, 102);
	ck_assert_uint_eq(tail_find(&t, 101), 0);
	ck_assert_uint_eq(tail_find(&t, 103), 1);

	/* One large record pushes out as many old ones as it needs. */
	char big[300];
	memset(big, 'x', sizeof big);
	tail_append(&t, 105, 0, "k", 1, big, sizeof big, false, max + sizeof big);
	ck_assert_uint_le(t.bytes, max + sizeof big);
	ck_assert_int_eq(tail_at(&t, t.count - 1)->offset, 105);
	ck_assert_int_eq(tail_at(&t, 0)->offset, t.cover_from);
	ck_assert(!tail_covers(&t, 102));
	tail_free(&t);
}
END_TEST

START_TEST(test_full_tail_reuses_memory)
{
	/* A full tail puts a new record in the memory of the one it pushes out
	 * when that is a little larger or the same (no malloc, no free), and
	 * counts the room it takes: the bytes stay right and within the
	 * budget, whatever the mix of sizes. */
	struct tail t;
	tail_init(&t);
	tail_reset(&t, 0);
	size_t max = 4000;
	static char v[600];
	size_t total_first = 0;
	for (int64_t o = 0; o < 400; o++) {
		size_t vl = (size_t)(o * 37 % 500) + 1;
		memset(v, 'a' + (int)(o % 26), vl);
		tail_append(&t, o, o, "key", 3, v, vl, false, max);
		ck_assert_uint_le(t.bytes, max);
		const struct tail_rec *r = tail_at(&t, t.count - 1);
		ck_assert_int_eq(r->offset, o);
		ck_assert_uint_eq(r->value_len, vl);
		ck_assert_uint_ge(r->room, 3 + vl);
		ck_assert_mem_eq(r->data, "key", 3);
		ck_assert_mem_eq(r->data + 3, v, vl);
		if (o == 0)
			total_first = t.bytes;
	}
	ck_assert_uint_eq(total_first, cost(3, 1));
	size_t sum = 0;
	for (size_t i = 0; i < t.count; i++) {
		const struct tail_rec *r = tail_at(&t, i);
		ck_assert_int_eq(r->offset, 400 - (int64_t)t.count + (int64_t)i);
		sum += sizeof(struct tail_rec) + sizeof(struct tail_rec *) + r->room;
	}
	ck_assert_uint_eq(t.bytes, sum);
	ck_assert_int_eq(t.cover_from, 400 - (int64_t)t.count);
	tail_free(&t);
}
END_TEST

START_TEST(test_record_over_budget)
{
	/* A record larger than the whole budget is not held, and the tail still
	 * covers the live end after it (a subscription there needs nothing). */
	struct tail t;
	tail_init(&t);
	tail_reset(&t, 100);
	put(&t, 100, 1 << 20);
	char big[1000];
	memset(big, 'y', sizeof big);
	tail_append(&t, 101, 0, "k", 1, big, sizeof big, false, 500);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_uint_eq(t.bytes, 0);
	ck_assert_int_eq(t.next, 102);
	ck_assert(tail_covers(&t, 102));
	ck_assert(!tail_covers(&t, 101));
	ck_assert(!tail_covers(&t, 100));
	/* A zero budget (--tail-bytes 0) keeps nothing. */
	put(&t, 102, 0);
	ck_assert_uint_eq(t.count, 0);
	ck_assert(tail_covers(&t, 103));
	ck_assert(!tail_covers(&t, 102));
	tail_free(&t);
}
END_TEST

START_TEST(test_start_unknown)
{
	/* Never reset (position unknown): the first record starts coverage. */
	struct tail t;
	tail_init(&t);
	put(&t, 50, 1 << 20);
	ck_assert(tail_covers(&t, 50));
	ck_assert(!tail_covers(&t, 49));
	ck_assert_uint_eq(tail_find(&t, 50), 0);
	tail_free(&t);
}
END_TEST

START_TEST(test_ring_wraps)
{
	/* Enough records to grow the ring and to wrap it many times while the
	 * budget holds about 100: order and lookup survive both. */
	struct tail t;
	tail_init(&t);
	tail_reset(&t, 100);
	size_t max = 100 * REC_COST;
	for (int64_t o = 100; o < 1000; o++) {
		put(&t, o, max);
		int64_t first = o - (int64_t)t.count + 1;
		ck_assert_int_eq(t.cover_from, first);
		if (o % 97 == 0) {
			for (size_t i = 0; i < t.count; i++)
				assert_rec(&t, i, first + (int64_t)i);
			for (int64_t q = first; q <= o; q++)
				ck_assert_uint_eq(tail_find(&t, q), (size_t)(q - first));
		}
	}
	ck_assert_uint_eq(t.count, 100);
	ck_assert_int_eq(tail_at(&t, 0)->offset, 900);
	ck_assert_int_eq(tail_at(&t, 99)->offset, 999);
	ck_assert_uint_eq(tail_find(&t, 950), 50);
	ck_assert(tail_covers(&t, 900));
	ck_assert(!tail_covers(&t, 899));
	/* Growing the ring while it is wrapped keeps the order: raise the
	 * budget and add more than its capacity. */
	for (int64_t o = 1000; o < 1300; o++)
		put(&t, o, 1 << 20);
	ck_assert_uint_eq(t.count, 400);
	for (size_t i = 0; i < t.count; i++)
		assert_rec(&t, i, 900 + (int64_t)i);
	ck_assert_uint_eq(tail_find(&t, 1234), 334);
	tail_free(&t);
}
END_TEST

static Suite *tail_suite(void)
{
	Suite *s = suite_create("tail");
	TCase *tc = tcase_create("tail");
	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_reset_covers_from_start);
	tcase_add_test(tc, test_append_in_order);
	tcase_add_test(tc, test_null_and_empty_values);
	tcase_add_test(tc, test_gaps);
	tcase_add_test(tc, test_eviction_by_bytes);
	tcase_add_test(tc, test_record_over_budget);
	tcase_add_test(tc, test_full_tail_reuses_memory);
	tcase_add_test(tc, test_start_unknown);
	tcase_add_test(tc, test_ring_wraps);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(tail_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
