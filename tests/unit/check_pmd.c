/* Unit tests for router/pmd.c: the answer to each offer Autobahn's 13.*
 * cases make (RFC 7692 7.1), a browser's offer, the first acceptable of
 * several offers, and the offers that must be declined (unknown, repeated
 * or malformed parameters, server_max_window_bits=8). */
#include "pmd.h"

#include <check.h>
#include <string.h>

static const struct pmd_limits lim = { 10, 10, false };

/* The answer's parameters for header, or "declined". */
static const char *answer(const char *header, const struct pmd_limits *l)
{
	static char buf[PMD_PARAMS_MAX];
	struct pmd_answer a;
	if (pmd_negotiate(header, l, &a) != 1)
		return "declined";
	ck_assert_int_ge(pmd_format(&a, buf, sizeof buf), 0);
	return buf;
}

START_TEST(browser_offer)
{
	/* Chrome and Firefox: the client may be limited; the router is. */
	ck_assert_str_eq(answer("permessage-deflate; client_max_window_bits", &lim),
			 "; client_max_window_bits=10");
	ck_assert_str_eq(answer("permessage-deflate", &lim), "");
	struct pmd_answer a;
	ck_assert_int_eq(pmd_negotiate("permessage-deflate", &lim, &a), 1);
	ck_assert_int_eq(a.server_window, 10);
	ck_assert_int_eq(a.client_window, 15); /* not offered: the client may use 15 */
}
END_TEST

START_TEST(autobahn_13)
{
	/* 13.1 */
	ck_assert_str_eq(answer("permessage-deflate; client_no_context_takeover; "
				"client_max_window_bits",
				&lim),
			 "; client_no_context_takeover; client_max_window_bits=10");
	/* 13.2 */
	ck_assert_str_eq(answer("permessage-deflate; client_no_context_takeover; "
				"client_max_window_bits; server_no_context_takeover",
				&lim),
			 "; server_no_context_takeover; client_no_context_takeover; "
			 "client_max_window_bits=10");
	/* 13.3, 13.4: the same or a smaller window than asked */
	ck_assert_str_eq(answer("permessage-deflate; client_no_context_takeover; "
				"client_max_window_bits; server_max_window_bits=9",
				&lim),
			 "; client_no_context_takeover; server_max_window_bits=9; "
			 "client_max_window_bits=10");
	ck_assert_str_eq(answer("permessage-deflate; client_max_window_bits; "
				"server_max_window_bits=15",
				&lim),
			 "; server_max_window_bits=10; client_max_window_bits=10");
	/* 13.7: the first offer is acceptable */
	ck_assert_str_eq(answer("permessage-deflate; client_no_context_takeover; "
				"client_max_window_bits; server_no_context_takeover; "
				"server_max_window_bits=9, permessage-deflate; "
				"client_no_context_takeover; client_max_window_bits; "
				"server_no_context_takeover, permessage-deflate; "
				"client_no_context_takeover; client_max_window_bits",
				&lim),
			 "; server_no_context_takeover; client_no_context_takeover; "
			 "server_max_window_bits=9; client_max_window_bits=10");
}
END_TEST

START_TEST(client_window_value)
{
	ck_assert_str_eq(answer("permessage-deflate; client_max_window_bits=8", &lim),
			 "; client_max_window_bits=8");
	ck_assert_str_eq(answer("permessage-deflate; client_max_window_bits=\"12\"", &lim),
			 "; client_max_window_bits=10");
}
END_TEST

START_TEST(declined_then_next)
{
	/* 8 cannot be honoured (zlib); the next offer can. */
	ck_assert_str_eq(answer("permessage-deflate; server_max_window_bits=8, "
				"permessage-deflate; server_max_window_bits=9",
				&lim),
			 "; server_max_window_bits=9");
	ck_assert_str_eq(answer("x-webkit-deflate-frame, permessage-deflate", &lim), "");
	ck_assert_str_eq(answer("permessage-deflate; server_max_window_bits=8", &lim), "declined");
}
END_TEST

START_TEST(bad_offers)
{
	const char *bad[] = {
		"permessage-deflate; foo",
		"permessage-deflate; server_no_context_takeover; server_no_context_takeover",
		"permessage-deflate; server_max_window_bits",
		"permessage-deflate; server_max_window_bits=16",
		"permessage-deflate; server_max_window_bits=7",
		"permessage-deflate; server_max_window_bits=09",
		"permessage-deflate; client_max_window_bits=1x",
		"permessage-deflate; client_no_context_takeover=1",
		"permessage-deflate; client_max_window_bits=\"10",
		"permessage-deflate;",
		"x-other",
		"",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ck_assert_msg(!strcmp(answer(bad[i], &lim), "declined"), "accepted: %s", bad[i]);
}
END_TEST

START_TEST(router_no_takeover)
{
	/* --deflate no-context-takeover: said even when not asked (RFC 7692
	 * 7.1.1.1 allows it). */
	const struct pmd_limits nt = { 10, 10, true };
	ck_assert_str_eq(answer("permessage-deflate", &nt), "; server_no_context_takeover");
}
END_TEST

START_TEST(format_small_buffer)
{
	struct pmd_answer a = { 9, 10, true, true, true, true };
	char buf[16];
	ck_assert_int_eq(pmd_format(&a, buf, sizeof buf), -1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pmd");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, browser_offer);
	tcase_add_test(tc, autobahn_13);
	tcase_add_test(tc, client_window_value);
	tcase_add_test(tc, declined_then_next);
	tcase_add_test(tc, bad_offers);
	tcase_add_test(tc, router_no_takeover);
	tcase_add_test(tc, format_small_buffer);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
