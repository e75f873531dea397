/* Unit tests for router/cidr.c: parsing address lists (good entries, bad
 * prefix lengths, host bits, garbage) and matching IPv4, IPv6 and
 * IPv4-mapped IPv6 peers. */
#include "cidr.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

static struct sockaddr_storage ss;

static const struct sockaddr *addr(const char *s)
{
	memset(&ss, 0, sizeof ss);
	if (strchr(s, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		a->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, s, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, s, &a->sin_addr), 1);
	}
	return (const struct sockaddr *)&ss;
}

static bool match(const char *list, const char *a)
{
	struct cidr_list l;
	char err[256];
	bool m;

	ck_assert_msg(cidr_parse(list, &l, err, sizeof err) == 0, "%s: %s", list, err);
	m = cidr_match(&l, addr(a));
	cidr_free(&l);
	return m;
}

static void bad(const char *list, const char *want)
{
	struct cidr_list l = { (struct cidr *)1, 99 };
	char err[256] = "";

	ck_assert_msg(cidr_parse(list, &l, err, sizeof err) == -1, "accepted: %s", list);
	ck_assert_msg(strstr(err, want) != NULL, "%s: error \"%s\" lacks \"%s\"", list, err, want);
	ck_assert_ptr_null(l.v);
	ck_assert_uint_eq(l.n, 0);
}

START_TEST(parse_good)
{
	struct cidr_list l;
	char err[256];

	ck_assert_int_eq(cidr_parse("10.0.0.0/8,192.168.1.7,::1/128", &l, err, sizeof err), 0);
	ck_assert_uint_eq(l.n, 3);
	ck_assert_int_eq(l.v[0].family, AF_INET);
	ck_assert_uint_eq(l.v[0].prefix, 8);
	ck_assert_int_eq(l.v[1].family, AF_INET);
	ck_assert_uint_eq(l.v[1].prefix, 32);
	ck_assert_int_eq(l.v[2].family, AF_INET6);
	ck_assert_uint_eq(l.v[2].prefix, 128);
	cidr_free(&l);
	ck_assert_int_eq(
		cidr_parse(" 0.0.0.0/0 ,\t::/0 , fd00::/8,2001:db8::/32 ", &l, err, sizeof err), 0);
	ck_assert_uint_eq(l.n, 4);
	ck_assert_uint_eq(l.v[0].prefix, 0);
	ck_assert_uint_eq(l.v[1].prefix, 0);
	cidr_free(&l);
	/* A mapped IPv6 network is stored as IPv4. */
	ck_assert_int_eq(cidr_parse("::ffff:10.0.0.0/104", &l, err, sizeof err), 0);
	ck_assert_int_eq(l.v[0].family, AF_INET);
	ck_assert_uint_eq(l.v[0].prefix, 8);
	cidr_free(&l);
	/* Empty and blank lists are empty. */
	ck_assert_int_eq(cidr_parse("", &l, err, sizeof err), 0);
	ck_assert_uint_eq(l.n, 0);
	ck_assert_int_eq(cidr_parse("  ", &l, err, sizeof err), 0);
	ck_assert_uint_eq(l.n, 0);
	ck_assert(!cidr_match(&l, addr("10.0.0.1")));
	cidr_free(&l);
	cidr_free(&l);
	cidr_free(NULL);
}
END_TEST

START_TEST(parse_bad_prefix)
{
	bad("10.0.0.0/33", "prefix length over 32");
	bad("::/129", "prefix length over 128");
	bad("10.0.0.0/", "bad prefix length");
	bad("10.0.0.0/-1", "bad prefix length");
	bad("10.0.0.0/+8", "bad prefix length");
	bad("10.0.0.0/08", "bad prefix length");
	bad("10.0.0.0/8a", "bad prefix length");
	bad("10.0.0.0/1000", "bad prefix length");
	bad("10.0.0.0/8/8", "bad prefix length");
	bad("10.0.0.0/ 8", "bad prefix length");
	bad("10.0.0.1/8", "host bits set");
	bad("192.168.1.128/24", "host bits set");
	bad("fd00::1/8", "host bits set");
	bad("10.0.0.0/8,10.1.0.0/8", "10.1.0.0/8");
}
END_TEST

START_TEST(parse_garbage)
{
	bad("x", "not an IPv4 or IPv6 address");
	bad("10.0.0", "not an IPv4 or IPv6 address");
	bad("10.0.0.256", "not an IPv4 or IPv6 address");
	bad("/8", "not an IPv4 or IPv6 address");
	bad("fe80::1%eth0", "not an IPv4 or IPv6 address");
	bad("10.0.0.0/8,", "empty entry");
	bad(",10.0.0.0/8", "empty entry");
	bad("10.0.0.0/8,,::1", "empty entry");
	bad("10.0.0.0/8, ,::1", "empty entry");
	bad("10.0.0.0 8", "not an IPv4 or IPv6 address");
	bad("1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc/128", "too long");
	bad("good.example.com", "not an IPv4 or IPv6 address");
}
END_TEST

START_TEST(match_v4)
{
	ck_assert(match("10.0.0.0/8", "10.0.0.0"));
	ck_assert(match("10.0.0.0/8", "10.255.255.255"));
	ck_assert(!match("10.0.0.0/8", "11.0.0.0"));
	ck_assert(!match("10.0.0.0/8", "9.255.255.255"));
	ck_assert(match("192.168.1.7", "192.168.1.7"));
	ck_assert(!match("192.168.1.7", "192.168.1.6"));
	ck_assert(match("172.16.0.0/12", "172.31.1.1"));
	ck_assert(!match("172.16.0.0/12", "172.32.0.0"));
	ck_assert(match("192.168.1.128/25", "192.168.1.200"));
	ck_assert(!match("192.168.1.128/25", "192.168.1.100"));
	ck_assert(match("0.0.0.0/0", "203.0.113.9"));
	ck_assert(!match("0.0.0.0/0", "::1"));
	ck_assert(match("1.2.3.4, 5.6.7.8", "5.6.7.8"));
}
END_TEST

START_TEST(match_v6)
{
	ck_assert(match("::1/128", "::1"));
	ck_assert(!match("::1/128", "::2"));
	ck_assert(match("::1", "::1"));
	ck_assert(match("fd00::/8", "fdff:1::9"));
	ck_assert(!match("fd00::/8", "fe00::1"));
	ck_assert(match("2001:db8::/33", "2001:db8:7fff::1"));
	ck_assert(!match("2001:db8::/33", "2001:db8:8000::1"));
	ck_assert(match("::/0", "2001:db8::1"));
	ck_assert(!match("::/0", "127.0.0.1"));
	ck_assert(!match("10.0.0.0/8", "::a00:1")); /* IPv4-compatible is not mapped */
}
END_TEST

START_TEST(match_mapped)
{
	/* A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d. */
	ck_assert(match("10.0.0.0/8", "::ffff:10.1.2.3"));
	ck_assert(!match("10.0.0.0/8", "::ffff:11.1.2.3"));
	ck_assert(match("127.0.0.1", "::ffff:127.0.0.1"));
	ck_assert(match("::ffff:10.0.0.0/104", "10.9.9.9"));
	ck_assert(match("::ffff:10.0.0.0/104", "::ffff:10.9.9.9"));
	ck_assert(!match("::ffff:10.0.0.0/104", "11.9.9.9"));
	ck_assert(!match("::/0", "::ffff:10.1.2.3")); /* an IPv4 peer, no IPv4 entry */
	/* A short prefix over the mapped range stays IPv6 and matches IPv6. */
	ck_assert(match("::fffe:0:0/95", "::fffe:0:1"));
	ck_assert(!match("::fffe:0:0/95", "::ffff:10.0.0.1"));
}
END_TEST

START_TEST(match_other)
{
	struct cidr_list l, c;
	struct sockaddr_un un = { .sun_family = AF_UNIX };
	char err[64];

	ck_assert_int_eq(cidr_parse("0.0.0.0/0,::/0", &l, err, sizeof err), 0);
	ck_assert(!cidr_match(&l, NULL));
	ck_assert(!cidr_match(&l, (const struct sockaddr *)&un));
	ck_assert(!cidr_match(NULL, addr("10.0.0.1")));
	cidr_copy(&c, &l);
	cidr_free(&l);
	ck_assert_uint_eq(c.n, 2);
	ck_assert(cidr_match(&c, addr("10.0.0.1")));
	ck_assert(cidr_match(&c, addr("::1")));
	cidr_free(&c);
	cidr_copy(&c, &l);
	ck_assert_ptr_null(c.v);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cidr");
	TCase *tc = tcase_create("cidr");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, parse_good);
	tcase_add_test(tc, parse_bad_prefix);
	tcase_add_test(tc, parse_garbage);
	tcase_add_test(tc, match_v4);
	tcase_add_test(tc, match_v6);
	tcase_add_test(tc, match_mapped);
	tcase_add_test(tc, match_other);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
