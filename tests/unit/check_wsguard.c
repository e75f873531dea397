/* Unit tests for router/wsguard.c: client frames followed across reads of
 * any size (header split anywhere, 7/16/64-bit lengths), a stop after each
 * whole Ping (header-only Pings too), an unmasked frame refused before its
 * header (or at once when its header began in an earlier read), and nothing
 * passing after that. */
#include "wsguard.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Appends a masked (or unmasked) client frame to b; returns the new length. */
static size_t put(uint8_t *b, size_t n, unsigned op, size_t len, int masked)
{
	b[n++] = (uint8_t)(0x80 | op);
	uint8_t m = masked ? 0x80 : 0;
	if (len < 126) {
		b[n++] = (uint8_t)(m | len);
	} else if (len < 65536) {
		b[n++] = m | 126;
		b[n++] = (uint8_t)(len >> 8);
		b[n++] = (uint8_t)len;
	} else {
		b[n++] = m | 127;
		for (int k = 7; k >= 0; k--)
			b[n++] = (uint8_t)((uint64_t)len >> (8 * k));
	}
	if (masked)
		for (int k = 0; k < 4; k++)
			b[n++] = (uint8_t)(0x11 * (k + 1));
	memset(b + n, 'x', len);
	return n + len;
}

/* Feeds b[0..n) in reads of at most chunk bytes, as recvhook does: each
 * read offers everything still unread (up to chunk), and the next read
 * starts where the guard stopped. Returns the bytes passed; counts stops. */
static size_t feed(struct wsguard *g, const uint8_t *b, size_t n, size_t chunk, int *pings,
		   int *unmasked)
{
	size_t at = 0;
	*pings = *unmasked = 0;
	for (int guard = 0; at < n && guard < 1000000; guard++) {
		size_t len = n - at < chunk ? n - at : chunk;
		enum wsguard_verdict v;
		size_t take = wsguard_scan(g, b + at, len, &v);
		ck_assert_uint_le(take, len);
		if (v == WSGUARD_PING)
			(*pings)++;
		if (v == WSGUARD_UNMASKED) {
			(*unmasked)++;
			return at + take;
		}
		ck_assert(take > 0 || len == 0);
		at += take;
	}
	return at;
}

START_TEST(many_frames_any_chunks)
{
	static uint8_t b[400000];
	size_t n = 0;
	for (int i = 0; i < 300; i++)
		n = put(b, n, 2, 205, 1);
	n = put(b, n, 1, 0, 1);
	n = put(b, n, 2, 70000, 1);
	n = put(b, n, 1, 125, 1);
	n = put(b, n, 1, 126, 1);
	size_t chunks[] = { 1, 2, 3, 7, 13, 4096, 65536, sizeof b };
	for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
		struct wsguard g = { 0 };
		int pings, unmasked;
		ck_assert_uint_eq(feed(&g, b, n, chunks[c], &pings, &unmasked), n);
		ck_assert_int_eq(pings, 0);
		ck_assert_int_eq(unmasked, 0);
		ck_assert_uint_eq(g.left, 0);
		ck_assert_uint_eq(g.hlen, 0);
		ck_assert_uint_eq(g.frames, 304);
	}
}
END_TEST

START_TEST(one_ping_per_read)
{
	uint8_t b[4096];
	size_t n = put(b, 0, 2, 10, 1);
	size_t first_ping_end = n = put(b, n, 9, 6, 1);
	for (int i = 1; i < 10; i++)
		n = put(b, n, 9, i == 5 ? 0 : 6, 1); /* one with no payload */
	n = put(b, n, 1, 3, 1);
	struct wsguard g = { 0 };
	enum wsguard_verdict v;
	ck_assert_uint_eq(wsguard_scan(&g, b, n, &v), first_ping_end);
	ck_assert_int_eq(v, WSGUARD_PING);
	struct wsguard g2 = { 0 };
	int pings, unmasked;
	ck_assert_uint_eq(feed(&g2, b, n, sizeof b, &pings, &unmasked), n);
	ck_assert_int_eq(pings, 10);
	ck_assert_int_eq(unmasked, 0);
	ck_assert_uint_eq(g2.frames, 12);
	struct wsguard g3 = { 0 };
	ck_assert_uint_eq(feed(&g3, b, n, 5, &pings, &unmasked), n);
	ck_assert_int_eq(pings, 10);
}
END_TEST

/* A frame counts once its last byte passed: the keepalive takes it as a
 * sign of life (an empty Pong is 6 bytes of header alone). */
START_TEST(frames_counted_at_their_end)
{
	uint8_t b[64];
	size_t pong = put(b, 0, 0xA, 0, 1);
	size_t n = put(b, pong, 2, 10, 1);
	struct wsguard g = { 0 };
	enum wsguard_verdict v;
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(wsguard_scan(&g, b + i, 1, &v), 1);
		ck_assert_int_eq(v, WSGUARD_GO);
		ck_assert_uint_eq(g.frames, i + 1 < pong ? 0 : i + 1 < n ? 1 : 2);
	}
}
END_TEST

START_TEST(unmasked_refused)
{
	uint8_t b[4096];
	size_t ok = put(b, 0, 2, 300, 1);
	size_t n = put(b, ok, 1, 5, 0);
	n = put(b, n, 1, 5, 1);
	struct wsguard g = { 0 };
	enum wsguard_verdict v;
	ck_assert_uint_eq(wsguard_scan(&g, b, n, &v), ok); /* up to its header */
	ck_assert_int_eq(v, WSGUARD_UNMASKED);
	ck_assert(g.failed);
	ck_assert_uint_eq(wsguard_scan(&g, b + ok, n - ok, &v), 0); /* nothing after */
	ck_assert_int_eq(v, WSGUARD_UNMASKED);
	/* The header's first byte came in an earlier read: stop at once. */
	struct wsguard g2 = { 0 };
	ck_assert_uint_eq(wsguard_scan(&g2, b, ok + 1, &v), ok + 1);
	ck_assert_int_eq(v, WSGUARD_GO);
	ck_assert_uint_eq(wsguard_scan(&g2, b + ok + 1, n - ok - 1, &v), 0);
	ck_assert_int_eq(v, WSGUARD_UNMASKED);
	/* Unmasked with a 16-bit length, first in the stream. */
	size_t m = put(b, 0, 2, 1000, 0);
	struct wsguard g3 = { 0 };
	ck_assert_uint_eq(wsguard_scan(&g3, b, m, &v), 0);
	ck_assert_int_eq(v, WSGUARD_UNMASKED);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("wsguard");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, many_frames_any_chunks);
	tcase_add_test(tc, one_ping_per_read);
	tcase_add_test(tc, frames_counted_at_their_end);
	tcase_add_test(tc, unmasked_refused);
	suite_add_tcase(s, tc);
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
