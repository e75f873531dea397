/* Unit tests for router/fanin.c (the workers' metrics merged into one
 * exposition: sums, the largest for same-valued gauges, histograms kept
 * together, series only one worker has, junk lines) and router/workcount.c
 * (the default worker count from CPUs, the cgroup limit and the file
 * limit). */
#include "fanin.h"
#include "workcount.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static char *merge(const char *a, const char *b, const char *const *maxf)
{
	const char *t[] = { a, b };
	size_t l[] = { a ? strlen(a) : 0, b ? strlen(b) : 0 }, n;
	char *out = fanin_metrics(t, l, 2, maxf, &n);
	ck_assert_uint_eq(strlen(out), n);
	return out;
}

START_TEST(sums_counters_and_gauges)
{
	const char *a = "# HELP m_total Messages\n# TYPE m_total counter\n"
			"m_total{d=\"in\"} 3\nm_total{d=\"out\"} 10\n"
			"# HELP s Sessions\n# TYPE s gauge\ns 7\n";
	const char *b = "# HELP m_total Messages\n# TYPE m_total counter\n"
			"m_total{d=\"in\"} 4\nm_total{d=\"out\"} 0.5\n"
			"# HELP s Sessions\n# TYPE s gauge\ns 5\n";
	char *out = merge(a, b, NULL);
	ck_assert_str_eq(out, "# HELP m_total Messages\n# TYPE m_total counter\n"
			      "m_total{d=\"in\"} 7\nm_total{d=\"out\"} 10.5\n"
			      "# HELP s Sessions\n# TYPE s gauge\ns 12\n");
	free(out);
}
END_TEST

START_TEST(max_families)
{
	static const char *const same[] = { "p", NULL };
	char *out = merge("# TYPE p gauge\np{state=\"owned\"} 6\nq 1\n",
			  "# TYPE p gauge\np{state=\"owned\"} 4\nq 1\n", same);
	/* q has no TYPE line: kept as a family of its own, summed. */
	ck_assert_str_eq(out, "# TYPE p gauge\np{state=\"owned\"} 6\nq 2\n");
	free(out);
}
END_TEST

START_TEST(histogram_and_late_series)
{
	const char *a = "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 3\n"
			"h_sum 1.25\nh_count 3\n# TYPE l counter\nl{edge=\"a\"} 1\n";
	const char *b = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n"
			"h_sum 0.5\nh_count 1\n# TYPE l counter\nl{edge=\"b\"} 5\n";
	char *out = merge(a, b, NULL);
	ck_assert_str_eq(out, "# TYPE h histogram\nh_bucket{le=\"1\"} 3\n"
			      "h_bucket{le=\"+Inf\"} 4\nh_sum 1.75\nh_count 4\n"
			      "# TYPE l counter\nl{edge=\"a\"} 1\nl{edge=\"b\"} 5\n");
	free(out);
}
END_TEST

START_TEST(skips_missing_and_junk)
{
	char *out = merge(NULL, "# TYPE c counter\nc 1\nnot a sample line\nc2\n\nc 2\n", NULL);
	/* "not a sample line" has a non-number value; "c2" has no value. */
	ck_assert_str_eq(out, "# TYPE c counter\nc 3\n");
	free(out);
}
END_TEST

START_TEST(worker_count)
{
	ck_assert_int_eq(workcount_pick(2, 0, 18000, 20000, 64), 2);
	ck_assert_int_eq(workcount_pick(8, 2, 18000, 20000, 64), 2); /* the pod's limit */
	ck_assert_int_eq(workcount_pick(8, 16, 18000, 20000, 64), 8);
	/* A worker's files: sessions, the door's handshakes, the reserve. */
	ck_assert_int_eq(workcount_files_needed(18000, 4096),
			 18000 + 4096 + WORKCOUNT_FILES_RESERVE);
	ck_assert_int_eq(workcount_files_needed(0, 0), WORKCOUNT_FILES_RESERVE);
	ck_assert_int_eq(workcount_pick(2, 0, 50000, 20000, 64), 3); /* files, not CPUs */
	ck_assert_int_eq(workcount_pick(1, 0, 19500, 20000, 64), 1);
	ck_assert_int_eq(workcount_pick(1, 0, 19501, 20000, 64), 2);
	ck_assert_int_eq(workcount_pick(0, 0, 100, 0, 64), 1);
	ck_assert_int_eq(workcount_pick(128, 0, 100, 0, 64), 64);
	ck_assert_int_eq(workcount_cpu_max_parse("max 100000\n"), 0);
	ck_assert_int_eq(workcount_cpu_max_parse("200000 100000\n"), 2);
	ck_assert_int_eq(workcount_cpu_max_parse("150000 100000"), 2);
	ck_assert_int_eq(workcount_cpu_max_parse("50000 100000"), 1);
	ck_assert_int_eq(workcount_cpu_max_parse(""), 0);
	ck_assert_int_eq(workcount_cpu_max_parse(NULL), 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("fanin");
	TCase *tc = tcase_create("fanin");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, sums_counters_and_gauges);
	tcase_add_test(tc, max_families);
	tcase_add_test(tc, histogram_and_late_series);
	tcase_add_test(tc, skips_missing_and_junk);
	tcase_add_test(tc, worker_count);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
