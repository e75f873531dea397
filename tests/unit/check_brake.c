/* Unit tests for edge/brake.c: when the edge holds Kafka's records back for
 * a slow router. What the edge relies on: it holds while a link is deep and
 * its router reads, however long that takes up to BRAKE_MAX_MS; it consumes
 * on once the deep links took nothing for BRAKE_STALL_MS, and holds again
 * if they read again; a hold of BRAKE_MAX_MS stays released until the
 * backlog is gone; and a new backlog starts afresh. */
#include "brake.h"

#include <check.h>
#include <stdlib.h>

/* Not backlogged: nothing is held. */
START_TEST(test_off)
{
	struct brake b = { 0 };
	ck_assert_int_eq(brake_check(&b, false, 0, 1000), BRAKE_OFF);
	ck_assert_int_eq(brake_check(&b, false, 500, 90000), BRAKE_OFF);
}
END_TEST

/* A router that reads slower than Kafka but reads: held past the stall
 * bound, as long as bytes move within it, up to the max bound. */
START_TEST(test_slow_router_held)
{
	struct brake b = { 0 };
	int64_t t = 10000;
	uint64_t tx = 1u << 20;
	for (int64_t ms = 0; ms < BRAKE_MAX_MS; ms += BRAKE_STALL_MS / 2) {
		ck_assert_int_eq(brake_check(&b, true, tx, t + ms), BRAKE_HOLD);
		tx += 65536;
	}
	ck_assert_int_eq(brake_check(&b, true, tx + 1, t + BRAKE_MAX_MS), BRAKE_TOO_LONG);
	/* Released until the backlog is gone, even if bytes move. */
	ck_assert_int_eq(brake_check(&b, true, tx + 2, t + BRAKE_MAX_MS + 10), BRAKE_TOO_LONG);
	ck_assert_int_eq(brake_check(&b, false, tx + 3, t + BRAKE_MAX_MS + 20), BRAKE_OFF);
	/* A new backlog is held again. */
	ck_assert_int_eq(brake_check(&b, true, tx + 3, t + BRAKE_MAX_MS + 30), BRAKE_HOLD);
}
END_TEST

/* A router that reads nothing: released after BRAKE_STALL_MS, not before;
 * held again when its link takes bytes again. */
START_TEST(test_stalled_router_released)
{
	struct brake b = { 0 };
	int64_t t = 5000;
	ck_assert_int_eq(brake_check(&b, true, 100, t), BRAKE_HOLD);
	ck_assert_int_eq(brake_check(&b, true, 100, t + BRAKE_STALL_MS - 1), BRAKE_HOLD);
	ck_assert_int_eq(brake_check(&b, true, 100, t + BRAKE_STALL_MS), BRAKE_STALLED);
	ck_assert_int_eq(brake_check(&b, true, 100, t + BRAKE_STALL_MS + 400), BRAKE_STALLED);
	/* It reads again: held, and the stall bound counts from its last read. */
	ck_assert_int_eq(brake_check(&b, true, 200, t + BRAKE_STALL_MS + 500), BRAKE_HOLD);
	ck_assert_int_eq(brake_check(&b, true, 200, t + 2 * BRAKE_STALL_MS + 499), BRAKE_HOLD);
	ck_assert_int_eq(brake_check(&b, true, 200, t + 2 * BRAKE_STALL_MS + 500), BRAKE_STALLED);
}
END_TEST

/* The max bound counts from the backlog's start, stalls included. */
START_TEST(test_max_counts_from_start)
{
	struct brake b = { 0 };
	int64_t t = 1;
	ck_assert_int_eq(brake_check(&b, true, 0, t), BRAKE_HOLD);
	ck_assert_int_eq(brake_check(&b, true, 0, t + BRAKE_STALL_MS), BRAKE_STALLED);
	ck_assert_int_eq(brake_check(&b, true, 1, t + BRAKE_MAX_MS - 1), BRAKE_HOLD);
	ck_assert_int_eq(brake_check(&b, true, 2, t + BRAKE_MAX_MS), BRAKE_TOO_LONG);
}
END_TEST

/* A clock at 0 (a fresh monotonic clock) still starts a backlog. */
START_TEST(test_clock_zero)
{
	struct brake b = { 0 };
	ck_assert_int_eq(brake_check(&b, true, 0, 0), BRAKE_HOLD);
	ck_assert_int_eq(brake_check(&b, true, 0, BRAKE_STALL_MS), BRAKE_STALLED);
}
END_TEST

static Suite *brake_suite(void)
{
	Suite *s = suite_create("brake");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_off);
	tcase_add_test(tc, test_slow_router_held);
	tcase_add_test(tc, test_stalled_router_released);
	tcase_add_test(tc, test_max_counts_from_start);
	tcase_add_test(tc, test_clock_zero);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(brake_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
