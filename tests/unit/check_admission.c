/* Unit tests for router/admission.c: the per-address token bucket (burst,
 * refill, separate addresses, pruning), the position a client presents (the
 * header and the query forms, bounds and malformed values), query argument
 * matching, the Origin rule, the reason labels, the request head rewrite
 * (tokens out of the lws-visible list, duplicates marked, malformed heads),
 * cookies and the client id rule. */
#include "admission.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
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
		"3-12", ":1",   "1:",   "a:1",   "1:a",      "1:2x",
		"-1:2", "1:-2", " 1:2", "1:2 ",  "100000:1", "1:99999999999999999999",
		"+1:2", "1:+2", "1::2", "1:2:3",
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

static char *rewrite(const char *head, size_t *n)
{
	return admission_rewrite_head(head, strlen(head), "X-Client-Id", n);
}

START_TEST(head_end)
{
	ck_assert_uint_eq(admission_head_end("GET / HTTP/1.1\r\nA: b\r\n", 22), 0);
	ck_assert_uint_eq(admission_head_end("GET / HTTP/1.1\r\n\r\nxyz", 21), 18);
	ck_assert_uint_eq(admission_head_end("\r\n\r", 3), 0);
	ck_assert_uint_eq(admission_head_end("GET / HTTP/1.1\n\n", 16),
			  0); /* bare LF: not HTTP/1.1 */
}
END_TEST

START_TEST(head_tokens_leave_the_lws_list)
{
	char tok[2048];
	memset(tok, 'A', sizeof tok - 1);
	tok[sizeof tok - 1] = '\0';
	memcpy(tok, "e30.e30.", 8);
	char in[4096];
	snprintf(in, sizeof in,
		 "GET /ws?position=1:2 HTTP/1.1\r\nHost: h\r\nSec-WebSocket-Protocol: kws.v1, "
		 "kws.token.%s\r\nX-Other: keep me\r\n\r\n",
		 tok);
	size_t n;
	char *out = rewrite(in, &n);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(n, strlen(out));
	ck_assert(strncmp(out, "GET /ws?position=1:2 HTTP/1.1\r\nHost: h\r\n", 40) == 0);
	ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Protocol: kws.v1\r\n"));
	ck_assert_ptr_nonnull(strstr(out, "\r\nX-Other: keep me\r\n"));
	char *all = strstr(out, "\r\nx-kws-protocols: kws.v1, kws.token.e30.e30.AAA");
	ck_assert_ptr_nonnull(all);
	ck_assert_uint_eq(admission_head_end(out, n), n); /* still one complete head */
	ck_assert_ptr_null(strstr(out, "Sec-WebSocket-Protocol: kws.v1, kws.token"));
	free(out);
}
END_TEST

START_TEST(head_lists_merged_and_private_headers_dropped)
{
	size_t n;
	char *out =
		rewrite("GET /ws HTTP/1.1\r\nsec-websocket-protocol:  kws.token.abc ,kws\r\n"
			"Sec-WebSocket-Protocol: kws.v1\r\nX-Kws-Protocols: kws.token.forged\r\n"
			"x-kws-dup: nothing\r\n\r\n",
			&n);
	ck_assert_ptr_nonnull(out);
	ck_assert_str_eq(out, "GET /ws HTTP/1.1\r\n"
			      "Sec-WebSocket-Protocol: kws, kws.v1\r\n"
			      "x-kws-protocols: kws.token.abc, kws, kws.v1\r\n\r\n");
	free(out);
	/* only a token: lws sees no list at all */
	out = rewrite("GET /ws HTTP/1.1\r\nSec-WebSocket-Protocol: kws.token.abc\r\n\r\n", &n);
	ck_assert_str_eq(out, "GET /ws HTTP/1.1\r\nx-kws-protocols: kws.token.abc\r\n\r\n");
	free(out);
	/* nothing to rewrite: the head as it came */
	out = rewrite("GET /ws HTTP/1.1\r\nHost: h\r\n\r\n", &n);
	ck_assert_str_eq(out, "GET /ws HTTP/1.1\r\nHost: h\r\n\r\n");
	free(out);
}
END_TEST

START_TEST(head_duplicates_marked)
{
	size_t n;
	char *out = rewrite("GET /ws HTTP/1.1\r\nX-Client-Id: a\r\nx-client-id: b\r\n\r\n", &n);
	ck_assert_ptr_nonnull(strstr(out, "\r\nx-kws-dup: x-client-id\r\n\r\n"));
	free(out);
	out = rewrite("GET /ws HTTP/1.1\r\nAuthorization: a\r\nAUTHORIZATION: b\r\n"
		      "X-Client-Id: a\r\nX-Client-Id: a\r\n\r\n",
		      &n);
	ck_assert_ptr_nonnull(strstr(out, "\r\nx-kws-dup: x-client-id, authorization\r\n"));
	free(out);
	out = rewrite("GET /ws HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", &n);
	ck_assert_ptr_nonnull(strstr(out, "\r\nx-kws-dup: authorization\r\n"));
	free(out);
	out = rewrite("GET /ws HTTP/1.1\r\nAuthorization: a\r\nX-Client-Id: a\r\n\r\n", &n);
	ck_assert_ptr_null(strstr(out, "x-kws-dup"));
	free(out);
}
END_TEST

START_TEST(head_malformed)
{
	static const char *const bad[] = {
		"\r\n\r\n",               /* no request line */
		"GET\r\nHost: h\r\n\r\n", /* request line without a space */
		"GET / HTTP/1.1\r\nno colon here\r\n\r\n",
		"GET / HTTP/1.1\r\n: no name\r\n\r\n",
		"GET / HTTP/1.1\r\nA: b\r\n folded\r\n\r\n", /* obsolete line folding */
		"GET / HTTP/1.1\r\nA: b\n\r\n",              /* bare LF */
		"GET / HTTP/1.1\r\nA: b\r\n",                /* no empty line */
	};
	size_t n;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(rewrite(bad[i], &n) == NULL, "accepted: %s", bad[i]);
}
END_TEST

START_TEST(cookies)
{
	const char *c = "theme=dark; kws_token=abc.def.ghi; lang=en";
	size_t n;
	const char *v = admission_cookie(c, strlen(c), "kws_token", &n);
	ck_assert_ptr_nonnull(v);
	ck_assert_uint_eq(n, 11);
	ck_assert_mem_eq(v, "abc.def.ghi", 11);
	v = admission_cookie(c, strlen(c), "theme", &n);
	ck_assert_uint_eq(n, 4);
	ck_assert_mem_eq(v, "dark", 4);
	ck_assert_ptr_null(admission_cookie(c, strlen(c), "kws", &n));
	ck_assert_ptr_null(admission_cookie(c, strlen(c), "token", &n));
	ck_assert_ptr_null(admission_cookie("", 0, "kws_token", &n));
	const char *q = "a=1;kws_token=\"quoted\" ;b";
	v = admission_cookie(q, strlen(q), "kws_token", &n);
	ck_assert_uint_eq(n, 6);
	ck_assert_mem_eq(v, "quoted", 6);
	/* the first one wins; len bounds the search */
	const char *two = "kws_token=one; kws_token=two";
	v = admission_cookie(two, strlen(two), "kws_token", &n);
	ck_assert_mem_eq(v, "one", 3);
	ck_assert_ptr_null(admission_cookie(two, 5, "kws_token", &n));
}
END_TEST

START_TEST(client_ids)
{
	ck_assert(admission_id_ok("user-42", 7, 256));
	ck_assert(admission_id_ok("caf\xc3\xa9-\xe4\xb8\x96\xe7\x95\x8c", 12, 256));
	ck_assert(admission_id_ok("\xf0\x9f\x98\x80", 4, 256)); /* U+1F600 */
	ck_assert(!admission_id_ok("", 0, 256));
	ck_assert(!admission_id_ok("abcd", 4, 3));               /* too long */
	ck_assert(!admission_id_ok("a\tb", 3, 256));             /* C0 */
	ck_assert(!admission_id_ok("a\x7f", 2, 256));            /* DEL */
	ck_assert(!admission_id_ok("a\xc2\x85", 3, 256));        /* C1 (NEL) */
	ck_assert(!admission_id_ok("caf\xe9", 4, 256));          /* Latin-1, not UTF-8 */
	ck_assert(!admission_id_ok("\xc0\xaf", 2, 256));         /* overlong '/' */
	ck_assert(!admission_id_ok("\xe0\x80\xaf", 3, 256));     /* overlong, 3 bytes */
	ck_assert(!admission_id_ok("\xed\xa0\x80", 3, 256));     /* a surrogate */
	ck_assert(!admission_id_ok("\xf4\x90\x80\x80", 4, 256)); /* past U+10FFFF */
	ck_assert(!admission_id_ok("\xe4\xb8", 2, 256));         /* cut short */
	ck_assert(!admission_id_ok("a\0b", 3, 256));             /* NUL */
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
	tcase_add_test(tc, head_end);
	tcase_add_test(tc, head_tokens_leave_the_lws_list);
	tcase_add_test(tc, head_lists_merged_and_private_headers_dropped);
	tcase_add_test(tc, head_duplicates_marked);
	tcase_add_test(tc, head_malformed);
	tcase_add_test(tc, cookies);
	tcase_add_test(tc, client_ids);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
