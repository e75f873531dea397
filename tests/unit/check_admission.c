/* Unit tests for router/admission.c: the per-address token bucket (burst,
 * refill, separate addresses, pruning), the position a client presents (the
 * header and the query forms, bounds and malformed values), query argument
 * matching, the Origin rule and the reason labels. */
#include "admission.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t A[16] = { 10, 0, 0, 1 }, B[16] = { 10, 0, 0, 2 };

START_TEST(bucket_burst_then_rate)
{
	struct admission_rate t;
	admission_rate_init(&t, 10); /* 10/s, bursts of 20 */
	int ok = 0;
	for (int i = 0; i < 30; i++)
		ok += admission_rate_take(&t, A, 1000);
	ck_assert_int_eq(ok, 20);
	/* another address has its own bucket */
	ck_assert(admission_rate_take(&t, B, 1000));
	/* 100 ms later one token has come back, not two */
	ck_assert(admission_rate_take(&t, A, 1100));
	ck_assert(!admission_rate_take(&t, A, 1100));
	/* refill stops at the burst */
	ok = 0;
	for (int i = 0; i < 30; i++)
		ok += admission_rate_take(&t, A, 100000);
	ck_assert_int_eq(ok, 20);
	ck_assert_uint_eq(admission_rate_count(&t), 2);
	admission_rate_free(&t);
}
END_TEST

START_TEST(bucket_prune)
{
	struct admission_rate t;
	admission_rate_init(&t, 5);
	admission_rate_take(&t, A, 0);
	admission_rate_take(&t, B, 9000);
	admission_rate_prune(&t, 10000); /* A idle for exactly 10 s: kept */
	ck_assert_uint_eq(admission_rate_count(&t), 2);
	admission_rate_prune(&t, 10001);
	ck_assert_uint_eq(admission_rate_count(&t), 1);
	admission_rate_prune(&t, 30000);
	ck_assert_uint_eq(admission_rate_count(&t), 0);
	/* a forgotten address starts with a full burst again */
	int ok = 0;
	for (int i = 0; i < 20; i++)
		ok += admission_rate_take(&t, A, 30000);
	ck_assert_int_eq(ok, 10);
	admission_rate_free(&t);
	admission_rate_free(&t); /* twice: a freed table is a zeroed one */
}
END_TEST

START_TEST(addr_keys)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };
	struct sockaddr un = { .sa_family = AF_UNIX };
	uint8_t k[16];
	inet_pton(AF_INET, "10.0.0.1", &a4.sin_addr);
	ck_assert(admission_addr_key((struct sockaddr *)&a4, k));
	ck_assert_mem_eq(k, A, 16);
	inet_pton(AF_INET6, "2001:db8::1", &a6.sin6_addr);
	ck_assert(admission_addr_key((struct sockaddr *)&a6, k));
	ck_assert_mem_eq(k, &a6.sin6_addr, 16);
	ck_assert(!admission_addr_key(&un, k));
	ck_assert(!admission_addr_key(NULL, k));
}
END_TEST

static int pos(const char *h, const char *q, uint32_t *p, int64_t *o)
{
	return admission_position(h, h ? strlen(h) : 0, q, q ? strlen(q) : 0, p, o);
}

START_TEST(position_forms)
{
	uint32_t p = 77;
	int64_t o = 77;
	ck_assert_int_eq(pos(NULL, NULL, &p, &o), 0);
	ck_assert_int_eq(p, 77);
	ck_assert_int_eq(pos("3:1234", NULL, &p, &o), 1);
	ck_assert_int_eq(p, 3);
	ck_assert_int_eq(o, 1234);
	ck_assert_int_eq(pos(NULL, "0:0", &p, &o), 1);
	ck_assert_int_eq(p, 0);
	ck_assert_int_eq(o, 0);
	/* the header wins over the query */
	ck_assert_int_eq(pos("1:5", "2:6", &p, &o), 1);
	ck_assert_int_eq(p, 1);
	ck_assert_int_eq(o, 5);
	ck_assert_int_eq(pos("1:5", "garbage", &p, &o), 1);
	/* a present but empty header is malformed, not absent */
	ck_assert_int_eq(pos("", "2:6", &p, &o), -1);
	ck_assert_int_eq(pos(NULL, "", &p, &o), -1);
	ck_assert_int_eq(pos(NULL, "99999:9223372036854775807", &p, &o), 1);
	ck_assert_int_eq(o, INT64_MAX);
	/* the header is not NUL-terminated: only hlen bytes count */
	ck_assert_int_eq(admission_position("7:70xyz", 4, NULL, 0, &p, &o), 1);
	ck_assert_int_eq(o, 70);
}
END_TEST

START_TEST(position_malformed)
{
	static const char *const bad[] = {
		"3-12", ":1", "1:", "a:1", "1:a", "1:2x", "-1:2", "1:-2", " 1:2", "1:2 ",
		"100000:1", "1:99999999999999999999", "+1:2", "1:+2", "1::2", "1:2:3",
	};
	uint32_t p;
	int64_t o;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ck_assert_msg(pos(bad[i], NULL, &p, &o) == -1, "header %s accepted", bad[i]);
		ck_assert_msg(pos(NULL, bad[i], &p, &o) == -1, "query %s accepted", bad[i]);
	}
	ck_assert_int_eq(admission_position("1:\0002", 4, NULL, 0, &p, &o), -1);
	/* bounds: 63 characters at most, in either form */
	char longv[80];
	memset(longv, '0', sizeof longv);
	longv[0] = '1';
	longv[1] = ':';
	longv[ADMISSION_MAX_POSITION] = '\0';
	ck_assert_int_eq(pos(longv, NULL, &p, &o), 1);
	ck_assert_int_eq(pos(NULL, longv, &p, &o), 1);
	longv[ADMISSION_MAX_POSITION] = '0';
	longv[ADMISSION_MAX_POSITION + 1] = '\0';
	ck_assert_int_eq(pos(longv, NULL, &p, &o), -1);
	ck_assert_int_eq(pos(NULL, longv, &p, &o), -1);
}
END_TEST

START_TEST(query_args)
{
	size_t n;
	const char *v = admission_query_arg("position=3:12", 13, "position", &n);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(n, 4);
	ck_assert_mem_eq(v, "3:12", 4);
	v = admission_query_arg("position=", 9, "position", &n);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(n, 0);
	/* the name must match exactly, up to its '=' */
	ck_assert_ptr_null(admission_query_arg("positionx=1:2", 13, "position", &n));
	ck_assert_ptr_null(admission_query_arg("position", 8, "position", &n));
	ck_assert_ptr_null(admission_query_arg("positio=1:2", 11, "position", &n));
	ck_assert_ptr_null(admission_query_arg("xposition=1:2", 13, "position", &n));
	/* only len bytes are read */
	ck_assert_ptr_null(admission_query_arg("access_token=abc", 12, "access_token", &n));
	v = admission_query_arg("access_token=a.b.c&x", 18, "access_token", &n);
	ck_assert_uint_eq(n, 5);
	ck_assert_mem_eq(v, "a.b.c", 5);
}
END_TEST

START_TEST(origins)
{
	const char *items[] = { "https://app.example", "http://localhost:8080" };
	struct conf_list none = { 0 }, two = { items, 2, NULL };
	ck_assert(admission_origin_allowed(&none, "https://evil.example"));
	ck_assert(admission_origin_allowed(&none, NULL));
	ck_assert(admission_origin_allowed(&two, NULL));
	ck_assert(admission_origin_allowed(&two, "https://app.example"));
	ck_assert(admission_origin_allowed(&two, "HTTPS://APP.EXAMPLE"));
	ck_assert(admission_origin_allowed(&two, "http://localhost:8080"));
	ck_assert(!admission_origin_allowed(&two, "https://app.example.evil"));
	ck_assert(!admission_origin_allowed(&two, "https://app.exampl"));
	ck_assert(!admission_origin_allowed(&two, ""));
}
END_TEST

START_TEST(reason_names)
{
	ck_assert_str_eq(admission_reason_name(ADMISSION_NO_ID), "missing_id");
	ck_assert_str_eq(admission_reason_name(ADMISSION_BAD_POSITION), "bad_position");
	ck_assert_str_eq(admission_reason_name(ADMISSION_OTHER), "other");
	ck_assert_str_eq(admission_reason_name(ADMISSION_NREASONS), "other");
	for (int i = 0; i < ADMISSION_NREASONS; i++)
		for (int j = 0; j < i; j++)
			ck_assert_str_ne(admission_reason_name((enum admission_reason)i),
					 admission_reason_name((enum admission_reason)j));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("admission");
	TCase *tc = tcase_create("admission");
	tcase_add_test(tc, bucket_burst_then_rate);
	tcase_add_test(tc, bucket_prune);
	tcase_add_test(tc, addr_keys);
	tcase_add_test(tc, position_forms);
	tcase_add_test(tc, position_malformed);
	tcase_add_test(tc, query_args);
	tcase_add_test(tc, origins);
	tcase_add_test(tc, reason_names);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
