/* Unit tests for edge/position.c: what the edge answers a SUB that presents
 * a position (the pure part of replay.c's answer). */
#include "position.h"

#include <check.h>
#include <stdlib.h>

START_TEST(test_live_end)
{
	/* No position: live at the live point, complete, no replay. */
	struct position_plan p = position_plan(-1, 120, 10, 130);
	ck_assert_int_eq(p.start, 120);
	ck_assert(p.complete);
	ck_assert(!p.beyond_end);
	ck_assert_int_eq(p.replay_from, -1);
	ck_assert(!position_needs_watermarks(-1, 120, -1));
}
END_TEST

START_TEST(test_live_unknown)
{
	/* A partition that has no live point yet: as today, live and complete. */
	struct position_plan p = position_plan(50, -1, -1, -1);
	ck_assert_int_eq(p.start, -1);
	ck_assert(p.complete);
	ck_assert_int_eq(p.replay_from, -1);
	ck_assert(!position_needs_watermarks(50, -1, -1));
}
END_TEST

START_TEST(test_at_live)
{
	struct position_plan p = position_plan(120, 120, -1, -1);
	ck_assert_int_eq(p.start, 120);
	ck_assert(p.complete);
	ck_assert_int_eq(p.replay_from, -1);
	ck_assert(!position_needs_watermarks(120, 120, -1));
}
END_TEST

START_TEST(test_behind_in_retention)
{
	ck_assert(position_needs_watermarks(100, 120, 130));
	struct position_plan p = position_plan(100, 120, 100, 130);
	ck_assert_int_eq(p.start, 120);
	ck_assert(p.complete);
	ck_assert_int_eq(p.replay_from, 100);
}
END_TEST

START_TEST(test_behind_retention)
{
	/* Kafka deleted 100..109: incomplete, replays what is left. */
	struct position_plan p = position_plan(100, 120, 110, 130);
	ck_assert(!p.complete);
	ck_assert(!p.beyond_end);
	ck_assert_int_eq(p.replay_from, 100);
	ck_assert_int_eq(p.start, 120);
}
END_TEST

START_TEST(test_behind_low_unknown)
{
	/* No answer from Kafka: in the client's favour. */
	struct position_plan p = position_plan(100, 120, -1, -1);
	ck_assert(p.complete);
	ck_assert_int_eq(p.replay_from, 100);
}
END_TEST

START_TEST(test_ahead_within_end)
{
	/* A new owner behind the old one's commit: the session's position
	 * stands; records below it are its duplicates. */
	ck_assert(!position_needs_watermarks(125, 120, 130));
	ck_assert(position_needs_watermarks(125, 120, 124));
	ck_assert(position_needs_watermarks(125, 120, -1));
	struct position_plan p = position_plan(125, 120, 0, 130);
	ck_assert(p.complete);
	ck_assert(!p.beyond_end);
	ck_assert_int_eq(p.start, 125);
	ck_assert_int_eq(p.replay_from, -1);
	p = position_plan(130, 120, 0, 130); /* exactly the end */
	ck_assert(p.complete);
	ck_assert_int_eq(p.start, 130);
}
END_TEST

START_TEST(test_beyond_end)
{
	/* 5:1000000 on a partition that ends at 130 (or a recreated topic). */
	struct position_plan p = position_plan(1000000, 120, 0, 130);
	ck_assert(!p.complete);
	ck_assert(p.beyond_end);
	ck_assert_int_eq(p.start, 130);
	ck_assert_int_lt(p.start, 1000000);
	ck_assert_int_eq(p.replay_from, -1);
	/* The live point never goes back: a later live point wins. */
	p = position_plan(1000000, 140, 0, 130);
	ck_assert_int_eq(p.start, 140);
	/* An empty partition: the end is 0. */
	p = position_plan(7, 0, 0, 0);
	ck_assert(p.beyond_end);
	ck_assert_int_eq(p.start, 0);
}
END_TEST

START_TEST(test_beyond_unknown_end)
{
	/* No high watermark: cannot tell, so the position stands. */
	struct position_plan p = position_plan(1000000, 120, -1, -1);
	ck_assert(p.complete);
	ck_assert(!p.beyond_end);
	ck_assert_int_eq(p.start, 1000000);
}
END_TEST

static Suite *position_suite(void)
{
	Suite *s = suite_create("position");
	TCase *t = tcase_create("plan");
	tcase_add_test(t, test_live_end);
	tcase_add_test(t, test_live_unknown);
	tcase_add_test(t, test_at_live);
	tcase_add_test(t, test_behind_in_retention);
	tcase_add_test(t, test_behind_retention);
	tcase_add_test(t, test_behind_low_unknown);
	tcase_add_test(t, test_ahead_within_end);
	tcase_add_test(t, test_beyond_end);
	tcase_add_test(t, test_beyond_unknown_end);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(position_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
