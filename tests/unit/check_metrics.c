/*
 * check_metrics: unit tests of common/metrics.c: the exact text of each
 * metric type (golden strings), escaping, value spelling, family grouping
 * and order, re-registration, collect callbacks, and misuse aborts (only in
 * fork mode: CK_FORK=no runs them not).
 */
#include <check.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static struct metrics *m;
static char *text;

static void setup(void)
{
	m = metrics_new();
	text = NULL;
}

static void teardown(void)
{
	metrics_free(m);
	free(text);
}

/* Renders m into text and compares it with want. */
static void expect(const char *want)
{
	size_t len;

	free(text);
	metrics_render(m, &text, &len);
	ck_assert_uint_eq(len, strlen(text));
	ck_assert_str_eq(text, want);
}

START_TEST(empty)
{
	expect("");
}
END_TEST

START_TEST(counter)
{
	uint64_t *plain = metrics_counter(m, "kws_up_total", "Ups.");
	uint64_t *out = metrics_counter(m, "kws_msgs_total", "Messages.", "direction", "out");
	uint64_t *in = metrics_counter(m, "kws_msgs_total", "ignored", "direction", "in");

	(*plain)++;
	*out += 18446744073709551615u;
	*in = 3;
	expect("# HELP kws_up_total Ups.\n"
	       "# TYPE kws_up_total counter\n"
	       "kws_up_total 1\n"
	       "# HELP kws_msgs_total Messages.\n"
	       "# TYPE kws_msgs_total counter\n"
	       "kws_msgs_total{direction=\"out\"} 18446744073709551615\n"
	       "kws_msgs_total{direction=\"in\"} 3\n");
}
END_TEST

START_TEST(gauge_values)
{
	double *g[8];
	const char *names[8] = { "a", "b", "c", "d", "e", "f", "g", "h" };
	const double v[8] = { 0, -2, 0.1, 1e21, 1.0 / 3, INFINITY, -INFINITY, NAN };

	for (int i = 0; i < 8; i++) {
		g[i] = metrics_gauge(m, "kws_g", "Gauge.", "k", names[i]);
		*g[i] = v[i];
	}
	expect("# HELP kws_g Gauge.\n"
	       "# TYPE kws_g gauge\n"
	       "kws_g{k=\"a\"} 0\n"
	       "kws_g{k=\"b\"} -2\n"
	       "kws_g{k=\"c\"} 0.1\n"
	       "kws_g{k=\"d\"} 1e+21\n"
	       "kws_g{k=\"e\"} 0.3333333333333333\n"
	       "kws_g{k=\"f\"} +Inf\n"
	       "kws_g{k=\"g\"} -Inf\n"
	       "kws_g{k=\"h\"} NaN\n");
}
END_TEST

START_TEST(histogram)
{
	static const double b[] = { 0.005, 0.1, 1, INFINITY };
	struct metrics_histogram *h = metrics_histogram(m, "kws_lat_seconds", "Latency.", b, 4);
	struct metrics_histogram *l =
		metrics_histogram(m, "kws_lat_seconds", "x", b, 3, "op", "sub");

	metrics_observe(h, 0.005); /* le is inclusive */
	metrics_observe(h, 0.05);
	metrics_observe(h, 0.5);
	metrics_observe(h, 7);
	metrics_observe(h, 0.001);
	metrics_observe(l, 2);
	expect("# HELP kws_lat_seconds Latency.\n"
	       "# TYPE kws_lat_seconds histogram\n"
	       "kws_lat_seconds_bucket{le=\"0.005\"} 2\n"
	       "kws_lat_seconds_bucket{le=\"0.1\"} 3\n"
	       "kws_lat_seconds_bucket{le=\"1\"} 4\n"
	       "kws_lat_seconds_bucket{le=\"+Inf\"} 5\n"
	       "kws_lat_seconds_sum 7.556\n"
	       "kws_lat_seconds_count 5\n"
	       "kws_lat_seconds_bucket{op=\"sub\",le=\"0.005\"} 0\n"
	       "kws_lat_seconds_bucket{op=\"sub\",le=\"0.1\"} 0\n"
	       "kws_lat_seconds_bucket{op=\"sub\",le=\"1\"} 0\n"
	       "kws_lat_seconds_bucket{op=\"sub\",le=\"+Inf\"} 1\n"
	       "kws_lat_seconds_sum{op=\"sub\"} 2\n"
	       "kws_lat_seconds_count{op=\"sub\"} 1\n");
}
END_TEST

START_TEST(histogram_no_bounds)
{
	struct metrics_histogram *h = metrics_histogram(m, "kws_h", "H.", NULL, 0);

	metrics_observe(h, -1);
	expect("# HELP kws_h H.\n"
	       "# TYPE kws_h histogram\n"
	       "kws_h_bucket{le=\"+Inf\"} 1\n"
	       "kws_h_sum -1\n"
	       "kws_h_count 1\n");
}
END_TEST

START_TEST(escaping)
{
	*metrics_gauge(m, "kws_e", "Help with \\ and\nnewline and \"quotes\".", "v", "a\\b\"c\nd",
		       "w", "") = 1;
	expect("# HELP kws_e Help with \\\\ and\\nnewline and \"quotes\".\n"
	       "# TYPE kws_e gauge\n"
	       "kws_e{v=\"a\\\\b\\\"c\\nd\",w=\"\"} 1\n");
}
END_TEST

/* Families render in first-registration order with their series together,
 * however the registrations interleave; re-registering returns the same
 * series; rendering twice gives the same text. */
START_TEST(order_and_reuse)
{
	uint64_t *a1 = metrics_counter(m, "kws_a_total", "A.", "x", "1");
	double *b = metrics_gauge(m, "kws_b", "B.");
	uint64_t *a2 = metrics_counter(m, "kws_a_total", "A.", "x", "2");
	const char *want = "# HELP kws_a_total A.\n"
			   "# TYPE kws_a_total counter\n"
			   "kws_a_total{x=\"1\"} 1\n"
			   "kws_a_total{x=\"2\"} 2\n"
			   "# HELP kws_b B.\n"
			   "# TYPE kws_b gauge\n"
			   "kws_b 2.5\n";

	ck_assert_ptr_eq(metrics_counter(m, "kws_a_total", "other", "x", "1"), a1);
	ck_assert_ptr_eq(metrics_gauge(m, "kws_b", "B."), b);
	*a1 = 1;
	*a2 = 2;
	*b = 2.5;
	expect(want);
	expect(want);
}
END_TEST

static void lag(void *arg, struct metrics_writer *w)
{
	int *calls = arg;
	char part[16];

	(*calls)++;
	metrics_write_family(w, "kws_lag", "Lag\nper partition.", METRICS_GAUGE);
	for (int p = 0; p < 2; p++) {
		snprintf(part, sizeof part, "%d", p);
		metrics_write_sample(w, p * 10.5, "topic", "t\"1", "partition", part);
	}
	metrics_write_family(w, "kws_n_total", "N.", METRICS_COUNTER);
	metrics_write_sample(w, 42);
}

static void nothing(void *arg, struct metrics_writer *w)
{
	(*(int *)arg)++;
}

START_TEST(collect)
{
	int calls = 0, calls2 = 0;

	metrics_collect(m, lag, &calls);
	metrics_collect(m, nothing, &calls2);
	*metrics_counter(m, "kws_c_total", "C.") = 7;
	expect("# HELP kws_c_total C.\n"
	       "# TYPE kws_c_total counter\n"
	       "kws_c_total 7\n"
	       "# HELP kws_lag Lag\\nper partition.\n"
	       "# TYPE kws_lag gauge\n"
	       "kws_lag{topic=\"t\\\"1\",partition=\"0\"} 0\n"
	       "kws_lag{topic=\"t\\\"1\",partition=\"1\"} 10.5\n"
	       "# HELP kws_n_total N.\n"
	       "# TYPE kws_n_total counter\n"
	       "kws_n_total 42\n");
	ck_assert_int_eq(calls, 1);
	ck_assert_int_eq(calls2, 1);
}
END_TEST

/* Misuse aborts (fork mode only). */
START_TEST(bad_metric_name)
{
	metrics_counter(m, "1abc", "x");
}
END_TEST

START_TEST(bad_label_name)
{
	metrics_counter(m, "ok", "x", "__reserved", "v");
}
END_TEST

START_TEST(le_label)
{
	metrics_gauge(m, "ok", "x", "le", "v");
}
END_TEST

START_TEST(odd_labels)
{
	metrics_counter(m, "ok", "x", "k");
}
END_TEST

START_TEST(type_clash)
{
	metrics_counter(m, "ok", "x");
	metrics_gauge(m, "ok", "x");
}
END_TEST

START_TEST(bad_bounds)
{
	static const double b[] = { 1, 1 };

	metrics_histogram(m, "ok", "x", b, 2);
}
END_TEST

START_TEST(other_bounds)
{
	static const double b[] = { 1, 2 };

	metrics_histogram(m, "ok", "x", b, 2);
	metrics_histogram(m, "ok", "x", b, 1);
}
END_TEST

static Suite *metrics_suite(bool fork)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("render");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, empty);
	tcase_add_test(tc, counter);
	tcase_add_test(tc, gauge_values);
	tcase_add_test(tc, histogram);
	tcase_add_test(tc, histogram_no_bounds);
	tcase_add_test(tc, escaping);
	tcase_add_test(tc, order_and_reuse);
	tcase_add_test(tc, collect);
	suite_add_tcase(s, tc);

	if (fork) {
		tc = tcase_create("misuse");
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_add_test_raise_signal(tc, bad_metric_name, SIGABRT);
		tcase_add_test_raise_signal(tc, bad_label_name, SIGABRT);
		tcase_add_test_raise_signal(tc, le_label, SIGABRT);
		tcase_add_test_raise_signal(tc, odd_labels, SIGABRT);
		tcase_add_test_raise_signal(tc, type_clash, SIGABRT);
		tcase_add_test_raise_signal(tc, bad_bounds, SIGABRT);
		tcase_add_test_raise_signal(tc, other_bounds, SIGABRT);
		suite_add_tcase(s, tc);
	}
	return s;
}

int main(void)
{
	const char *ck_fork = getenv("CK_FORK");
	SRunner *sr = srunner_create(metrics_suite(!ck_fork || strcmp(ck_fork, "no") != 0));
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
