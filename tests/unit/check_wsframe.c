/* Unit tests for router/wsframe.c: the server frame header at every length
 * boundary (125/126, 65535/65536, 64-bit), FIN set, no mask bit, and the
 * opcode kept to its 4 bits; the UTF-8 check of text payloads at each edge
 * of RFC 3629 (overlong, surrogates, above U+10FFFF, truncated, stray). */
#include "wsframe.h"

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static size_t hdr(unsigned op, uint64_t len, unsigned char *out)
{
	memset(out, 0xee, 16);
	size_t n = wsframe_header(out, op, len);
	ck_assert_uint_le(n, WSFRAME_MAX_HEADER);
	ck_assert_uint_eq(out[n], 0xee); /* nothing written past the header */
	return n;
}

START_TEST(short_lengths)
{
	unsigned char b[16];
	ck_assert_uint_eq(hdr(WSFRAME_BINARY, 0, b), 2);
	ck_assert_uint_eq(b[0], 0x82);
	ck_assert_uint_eq(b[1], 0);
	ck_assert_uint_eq(hdr(WSFRAME_TEXT, 125, b), 2);
	ck_assert_uint_eq(b[0], 0x81);
	ck_assert_uint_eq(b[1], 125);
	/* A close frame (ws.c writes its own, code and reason: ≤ 125 bytes). */
	ck_assert_uint_eq(hdr(WSFRAME_CLOSE, 2 + 40, b), 2);
	ck_assert_uint_eq(b[0], 0x88);
	ck_assert_uint_eq(b[1], 42);
}
END_TEST

START_TEST(medium_lengths)
{
	unsigned char b[16];
	ck_assert_uint_eq(hdr(WSFRAME_BINARY, 126, b), 4);
	ck_assert_uint_eq(b[1], 126);
	ck_assert_uint_eq(b[2], 0);
	ck_assert_uint_eq(b[3], 126);
	ck_assert_uint_eq(hdr(WSFRAME_BINARY, 65535, b), 4);
	ck_assert_uint_eq(b[2], 0xff);
	ck_assert_uint_eq(b[3], 0xff);
	ck_assert_uint_eq(hdr(WSFRAME_BINARY, 0x1234, b), 4);
	ck_assert_uint_eq(b[2], 0x12);
	ck_assert_uint_eq(b[3], 0x34);
}
END_TEST

START_TEST(long_lengths)
{
	unsigned char b[16];
	static const unsigned char want[] = { 0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0 };
	ck_assert_uint_eq(hdr(WSFRAME_BINARY, 65536, b), 10);
	ck_assert_mem_eq(b, want, 10);
	static const unsigned char big[] = { 0x81, 127,  0x01, 0x23, 0x45,
					     0x67, 0x89, 0xab, 0xcd, 0xef };
	ck_assert_uint_eq(hdr(WSFRAME_TEXT, 0x0123456789abcdefULL, b), 10);
	ck_assert_mem_eq(b, big, 10);
}
END_TEST

static bool u8(const char *s)
{
	return wsframe_utf8_valid((const unsigned char *)s, strlen(s));
}

START_TEST(utf8_valid)
{
	ck_assert(wsframe_utf8_valid(NULL, 0));
	ck_assert(u8("plain ascii \x01\x7f"));
	ck_assert(u8("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5")); /* κόσμε */
	ck_assert(u8("\xc2\x80"));                                     /* U+0080, first 2-byte */
	ck_assert(u8("\xdf\xbf\xe0\xa0\x80"));                         /* U+07FF, U+0800 */
	ck_assert(u8("\xed\x9f\xbf\xee\x80\x80"));                     /* U+D7FF, U+E000 */
	ck_assert(u8("\xef\xbf\xbf\xf0\x90\x80\x80"));                 /* U+FFFF, U+10000 */
	ck_assert(u8("\xf4\x8f\xbf\xbf"));                             /* U+10FFFF */
}
END_TEST

START_TEST(utf8_invalid)
{
	ck_assert(!u8("\x80"));     /* a stray continuation byte */
	ck_assert(!u8("\xc0\xaf")); /* overlong '/' */
	ck_assert(!u8("\xc1\xbf"));
	ck_assert(!u8("\xe0\x9f\xbf"));     /* overlong U+07FF */
	ck_assert(!u8("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
	ck_assert(!u8("\xed\xa0\x80"));     /* U+D800, a surrogate */
	ck_assert(!u8("\xed\xbf\xbf"));     /* U+DFFF */
	ck_assert(!u8("\xf4\x90\x80\x80")); /* U+110000 */
	ck_assert(!u8("\xf5\x80\x80\x80"));
	ck_assert(!u8("\xff"));
	ck_assert(!u8("ok\xce")); /* truncated at the end */
	ck_assert(!u8("\xe2\x82"));
	ck_assert(!u8("\xe2\x28\xa1"));     /* a bad second byte */
	ck_assert(!u8("\xf0\x90\x28\xbc")); /* a bad third byte */
	static const unsigned char nul_then_bad[] = { 'a', 0, 0xc3 };
	ck_assert(!wsframe_utf8_valid(nul_then_bad, sizeof nul_then_bad));
}
END_TEST

START_TEST(fin_and_mask_bits)
{
	unsigned char b[16];
	hdr(0xf2, 5, b); /* only the low 4 bits are the opcode */
	ck_assert_uint_eq(b[0], 0x82);
	ck_assert_uint_eq(b[1] & 0x80, 0); /* servers never mask */
	hdr(WSFRAME_TEXT, 70000, b);
	ck_assert_uint_eq(b[1] & 0x80, 0);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wsframe");
	TCase *tc = tcase_create("wsframe");
	tcase_add_test(tc, short_lengths);
	tcase_add_test(tc, medium_lengths);
	tcase_add_test(tc, long_lengths);
	tcase_add_test(tc, fin_and_mask_bits);
	tcase_add_test(tc, utf8_valid);
	tcase_add_test(tc, utf8_invalid);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
