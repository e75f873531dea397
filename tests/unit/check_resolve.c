/* Unit tests for common/resolve.c: finding every edge behind one DNS name.
 * What the router relies on: "host:port" split as --edges-dns gives it; an
 * answer is the sorted, de-duplicated list of tcp://IP:PORT URLs of every
 * address; a new answer only when the set changes; a failed lookup is never
 * an answer (the last good set stands).
 *
 * A name with several addresses comes from nss_wrapper (Debian's
 * libnss-wrapper, preloaded by meson: see tests/unit/meson.build) reading a
 * hosts file this test writes, so neither /etc/hosts nor a DNS server is
 * needed. Without it those tests say so and pass as skipped. */
#include "resolve.h"

#include <check.h>
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000
#define INTERVAL_MS 20

static char hosts_path[256];
static bool have_wrapper;
static int hosts_generation;

/* ---- waiting for the wake callback ---- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned nwakes;

static void on_wake(void *arg)
{
	pthread_mutex_lock(&mu);
	nwakes++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	(void)arg;
}

static unsigned wakes(void)
{
	pthread_mutex_lock(&mu);
	unsigned n = nwakes;
	pthread_mutex_unlock(&mu);
	return n;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for an answer as the router's loop does (wake, then take): returns
 * 1 with the URLs, or 0 if none came within ms. */
static int take_within(struct resolver *r, char ***urls, size_t *n, int ms)
{
	long long deadline = now_ms() + ms;
	for (;;) {
		unsigned seen = wakes();
		if (resolver_take(r, urls, n))
			return 1;
		if (now_ms() >= deadline)
			return 0;
		pthread_mutex_lock(&mu);
		while (nwakes == seen && now_ms() < deadline) {
			struct timespec ts;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 10 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&cv, &mu, &ts);
		}
		pthread_mutex_unlock(&mu);
	}
}

static void free_urls(char **urls, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(urls[i]);
	free(urls);
}

/* Asserts urls[0..n) equals the NULL-terminated want, then frees urls. */
static void assert_urls(char **urls, size_t n, const char *const *want)
{
	size_t k = 0;
	while (want[k])
		k++;
	char got[1024] = "";
	for (size_t i = 0; i < n; i++)
		snprintf(got + strlen(got), sizeof got - strlen(got), " %s", urls[i]);
	ck_assert_msg(n == k, "got %zu URLs:%s", n, got);
	for (size_t i = 0; i < k; i++)
		ck_assert_msg(strcmp(urls[i], want[i]) == 0, "URL %zu: got%s", i, got);
	free_urls(urls, n);
}

/* Rewrites the hosts file nss_wrapper reads. It reloads a file whose mtime
 * changed, and mtimes have one-second steps: each version gets its own.
 * 0 or -1. */
static int put_hosts(const char *text)
{
	FILE *f = fopen(hosts_path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += 10 * ++hosts_generation;
	ts[1] = ts[0];
	return utimensat(AT_FDCWD, hosts_path, ts, 0);
}

static void write_hosts(const char *text)
{
	ck_assert_int_eq(put_hosts(text), 0);
}

/* ---- tests ---- */

START_TEST(test_split)
{
	char host[64], port[8];
	ck_assert_int_eq(resolver_split("edges.kws.svc:7100", host, sizeof host, port, sizeof port),
			 0);
	ck_assert_str_eq(host, "edges.kws.svc");
	ck_assert_str_eq(port, "7100");
	ck_assert_int_eq(resolver_split("localhost:1", host, sizeof host, port, sizeof port), 0);
	ck_assert_str_eq(host, "localhost");
	ck_assert_str_eq(port, "1");
	/* The last colon separates the port. */
	ck_assert_int_eq(resolver_split("a:b:80", host, sizeof host, port, sizeof port), 0);
	ck_assert_str_eq(host, "a:b");
	ck_assert_str_eq(port, "80");

	const char *bad[] = {
		"edges", ":7100", "edges:", "edges:71x0", "edges:-1", "edges: 80", ""
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(resolver_split(bad[i], host, sizeof host, port, sizeof port) < 0,
			      "'%s' was accepted", bad[i]);
	/* Too long for the caller's buffers: refused, not cut. */
	ck_assert_int_lt(resolver_split("abcdefgh:80", host, 8, port, sizeof port), 0);
	ck_assert_int_lt(resolver_split("h:12345678", host, sizeof host, port, 8), 0);
	ck_assert_int_eq(resolver_split("abcdefg:1234567", host, 8, port, 8), 0);
}
END_TEST

START_TEST(test_start_refuses_bad_arguments)
{
	ck_assert_ptr_null(resolver_start("", "7100", 1000, on_wake, NULL));
	ck_assert_ptr_null(resolver_start("localhost", "", 1000, on_wake, NULL));
	ck_assert_ptr_null(resolver_start("localhost", "7100", 5, on_wake, NULL));
	resolver_stop(NULL);
}
END_TEST

START_TEST(test_localhost)
{
	struct resolver *r = resolver_start("localhost", "7100", INTERVAL_MS, on_wake, NULL);
	ck_assert_ptr_nonnull(r);
	char **urls;
	size_t n;
	ck_assert_int_eq(take_within(r, &urls, &n, WAIT_MS), 1);
	/* IPv4 only; /etc/hosts may list 127.0.0.1 and 127.0.1.1. */
	ck_assert_uint_ge(n, 1);
	bool found = false;
	for (size_t i = 0; i < n; i++) {
		found |= strcmp(urls[i], "tcp://127.0.0.1:7100") == 0;
		ck_assert_msg(strncmp(urls[i], "tcp://127.", 10) == 0, "%s", urls[i]);
		if (i)
			ck_assert_str_lt(urls[i - 1], urls[i]);
	}
	ck_assert(found);
	free_urls(urls, n);
	/* The same answer again is no news: nothing to take in ten intervals. */
	ck_assert_int_eq(take_within(r, &urls, &n, 10 * INTERVAL_MS), 0);
	resolver_stop(r);
}
END_TEST

START_TEST(test_numeric)
{
	struct resolver *r = resolver_start("127.0.0.1", "9", INTERVAL_MS, on_wake, NULL);
	char **urls;
	size_t n;
	ck_assert_int_eq(take_within(r, &urls, &n, WAIT_MS), 1);
	assert_urls(urls, n, (const char *const[]){ "tcp://127.0.0.1:9", NULL });
	resolver_stop(r);
}
END_TEST

START_TEST(test_name_set_changes)
{
	if (!have_wrapper) {
		fprintf(stderr, "test_name_set_changes: skipped: nss_wrapper is not preloaded\n");
		return;
	}
	/* A headless Service with three ready pods (one listed twice). */
	write_hosts("127.0.0.11 edges.kws.test\n127.0.0.12 edges.kws.test\n"
		    "127.0.0.10 edges.kws.test\n127.0.0.11 edges.kws.test\n"
		    "127.0.0.99 other.kws.test\n");
	struct resolver *r = resolver_start("edges.kws.test", "7100", INTERVAL_MS, on_wake, NULL);
	char **urls;
	size_t n;
	ck_assert_int_eq(take_within(r, &urls, &n, WAIT_MS), 1);
	assert_urls(urls, n,
		    (const char *const[]){ "tcp://127.0.0.10:7100", "tcp://127.0.0.11:7100",
					   "tcp://127.0.0.12:7100", NULL });
	ck_assert_int_eq(take_within(r, &urls, &n, 10 * INTERVAL_MS), 0);

	/* A pod goes, another comes: the new set is an answer. */
	write_hosts("127.0.0.12 edges.kws.test\n127.0.0.13 edges.kws.test\n"
		    "127.0.0.10 edges.kws.test\n");
	ck_assert_int_eq(take_within(r, &urls, &n, WAIT_MS), 1);
	assert_urls(urls, n,
		    (const char *const[]){ "tcp://127.0.0.10:7100", "tcp://127.0.0.12:7100",
					   "tcp://127.0.0.13:7100", NULL });

	/* The name stops resolving (DNS outage, Service deleted): no answer,
	 * so the router keeps the edges it has. */
	write_hosts("127.0.0.99 other.kws.test\n");
	ck_assert_int_eq(take_within(r, &urls, &n, 25 * INTERVAL_MS), 0);
	/* It resolves again to the set it had before: still no news. */
	write_hosts("127.0.0.13 edges.kws.test\n127.0.0.10 edges.kws.test\n"
		    "127.0.0.12 edges.kws.test\n");
	ck_assert_int_eq(take_within(r, &urls, &n, 25 * INTERVAL_MS), 0);
	/* Down to one pod: an answer. */
	write_hosts("127.0.0.12 edges.kws.test\n");
	ck_assert_int_eq(take_within(r, &urls, &n, WAIT_MS), 1);
	assert_urls(urls, n, (const char *const[]){ "tcp://127.0.0.12:7100", NULL });
	resolver_stop(r);
}
END_TEST

START_TEST(test_unknown_name_never_answers)
{
	if (!have_wrapper) {
		fprintf(stderr, "test_unknown_name_never_answers: skipped: nss_wrapper is not "
				"preloaded\n");
		return;
	}
	write_hosts("127.0.0.99 other.kws.test\n");
	unsigned before = wakes();
	struct resolver *r = resolver_start("nothing.kws.test", "7100", INTERVAL_MS, on_wake, NULL);
	char **urls;
	size_t n;
	/* Not even an empty list: the router must not drop its edges because
	 * of a lookup that failed. */
	ck_assert_int_eq(take_within(r, &urls, &n, 25 * INTERVAL_MS), 0);
	ck_assert_uint_eq(wakes(), before);
	/* Once it resolves, the answer comes. */
	write_hosts("127.0.0.5 nothing.kws.test\n");
	ck_assert_int_eq(take_within(r, &urls, &n, WAIT_MS), 1);
	assert_urls(urls, n, (const char *const[]){ "tcp://127.0.0.5:7100", NULL });
	resolver_stop(r);
}
END_TEST

START_TEST(test_stop_while_waiting)
{
	/* A long interval does not delay stopping. */
	struct resolver *r = resolver_start("127.0.0.1", "9", 600000, on_wake, NULL);
	char **urls;
	size_t n;
	ck_assert_int_eq(take_within(r, &urls, &n, WAIT_MS), 1);
	free_urls(urls, n);
	long long t0 = now_ms();
	resolver_stop(r);
	ck_assert_int_lt(now_ms() - t0, 5000);
}
END_TEST

/* Writes an empty hosts file for nss_wrapper and checks that it is in use
 * (it must be preloaded; the variable is read at the first lookup). */
static void setup_wrapper(void)
{
	snprintf(hosts_path, sizeof hosts_path, "/tmp/check_resolve.XXXXXX");
	int fd = mkstemp(hosts_path);
	if (fd < 0)
		return;
	close(fd);
	setenv("NSS_WRAPPER_HOSTS", hosts_path, 1);
	/* Names the wrapper does not know go on to DNS: keep that short. */
	setenv("RES_OPTIONS", "timeout:1 attempts:1", 1);
	if (put_hosts("127.0.0.77 probe.kws.test\n") < 0)
		return;
	struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo("probe.kws.test", "1", &hints, &res) == 0) {
		have_wrapper = true;
		freeaddrinfo(res);
	}
}

static Suite *resolve_suite(void)
{
	Suite *s = suite_create("resolve");
	TCase *tc = tcase_create("resolve");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_split);
	tcase_add_test(tc, test_start_refuses_bad_arguments);
	tcase_add_test(tc, test_localhost);
	tcase_add_test(tc, test_numeric);
	tcase_add_test(tc, test_name_set_changes);
	tcase_add_test(tc, test_unknown_name_never_answers);
	tcase_add_test(tc, test_stop_while_waiting);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	setup_wrapper();
	if (!have_wrapper)
		fprintf(stderr, "check_resolve: nss_wrapper is not preloaded (install "
				"libnss-wrapper); the tests of a name with several addresses are "
				"skipped\n");
	SRunner *sr = srunner_create(resolve_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (*hosts_path)
		unlink(hosts_path);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
