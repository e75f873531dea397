/* Unit tests for router/pmdz.c, the permessage-deflate codec: its output
 * inflates with plain zlib (context kept and not, the empty message), and
 * it inflates what zlib compressed whatever the pieces' sizes, with the
 * context kept across messages, a final deflate block, the message limit
 * and corrupt input. */
#include "pmdz.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define HEAD 16

/* n bytes that compress to about a third: words from a small set. */
static unsigned char *sample(size_t n, unsigned seed)
{
	static const char *const words[] = { "order",      "price", "user",  "event", "{\"id\":",
					     "\"value\":", "42,",   "1337}", " ",     "\n" };
	unsigned char *b = malloc(n);
	size_t i = 0;
	while (i < n) {
		seed = seed * 1103515245u + 12345u;
		const char *w = words[(seed >> 16) % 10];
		for (size_t k = 0; w[k] && i < n; k++)
			b[i++] = (unsigned char)w[k];
		if (i < n)
			b[i++] = (unsigned char)(seed >> 8);
	}
	return b;
}

/* zlib's raw compression of m (context in *zs, set up by the caller), with
 * a sync flush and the last 4 bytes removed, as a client sends it. */
static size_t client_compress(z_stream *zs, const unsigned char *m, size_t n, unsigned char *out,
			      size_t cap)
{
	zs->next_in = (unsigned char *)m;
	zs->avail_in = (uInt)n;
	zs->next_out = out;
	zs->avail_out = (uInt)cap;
	ck_assert_int_eq(deflate(zs, Z_SYNC_FLUSH), Z_OK);
	ck_assert_int_eq(zs->avail_in, 0);
	size_t len = cap - zs->avail_out;
	ck_assert_uint_ge(len, 4);
	ck_assert_mem_eq(out + len - 4, "\x00\x00\xff\xff", 4);
	return len - 4;
}

/* Inflates in[0..len) with z in pieces of step bytes and a last empty call
 * with fin; returns the output (malloc'd) and its length. */
static unsigned char *feed(struct pmdz *z, const unsigned char *in, size_t len, size_t step,
			   size_t *out_len)
{
	unsigned char *all = NULL;
	size_t n = 0;
	for (size_t off = 0;; off += step) {
		size_t k = len - off < step ? len - off : step;
		bool fin = off + k >= len;
		unsigned char *o;
		size_t on;
		ck_assert_int_eq(pmdz_inflate(z, in + off, k, fin, &o, &on), 0);
		ck_assert_int_eq(o[on], 0); /* the writable byte after it */
		all = realloc(all, n + on + 1);
		memcpy(all + n, o, on);
		n += on;
		if (fin)
			break;
	}
	*out_len = n;
	return all;
}

START_TEST(deflate_inflates_with_zlib)
{
	struct pmdz z;
	pmdz_init(&z, 10, 15, 4, 1, false, false, 1 << 20, HEAD);
	z_stream in;
	memset(&in, 0, sizeof in);
	ck_assert_int_eq(inflateInit2(&in, -10), Z_OK);
	for (unsigned i = 0; i < 5; i++) {
		size_t n = i == 3 ? 0 : 1000 + 30000 * i;
		unsigned char *m = sample(n ? n : 1, i);
		unsigned char *c;
		size_t cl;
		ck_assert_int_eq(pmdz_deflate(&z, m, n, true, &c, &cl), 0);
		ck_assert_uint_ge(cl, 1);
		ck_assert_ptr_eq(c, z.tbuf + HEAD);
		if (n == 0)
			ck_assert_uint_eq(c[0], 0); /* RFC 7692 7.2.3.6 */
		unsigned char *buf = malloc(cl + 4);
		memcpy(buf, c, cl);
		memcpy(buf + cl, "\x00\x00\xff\xff", 4);
		unsigned char *plain = malloc(n + 16);
		in.next_in = buf;
		in.avail_in = (uInt)(cl + 4);
		in.next_out = plain;
		in.avail_out = (uInt)(n + 16);
		int rc = inflate(&in, Z_SYNC_FLUSH);
		ck_assert(rc == Z_OK || (n == 0 && rc == Z_BUF_ERROR));
		ck_assert_int_eq(in.avail_in, 0);
		ck_assert_uint_eq(n + 16 - in.avail_out, n);
		ck_assert_mem_eq(plain, m, n);
		free(buf);
		free(plain);
		free(m);
	}
	inflateEnd(&in);
	ck_assert(z.tx_init); /* context kept */
	pmdz_trim(&z);
	ck_assert_uint_le(z.tcap, PMDZ_KEEP_BYTES + HEAD);
	pmdz_free(&z);
}
END_TEST

START_TEST(deflate_no_takeover)
{
	struct pmdz z;
	pmdz_init(&z, 9, 15, 4, 1, true, false, 1 << 20, HEAD);
	unsigned char *m = sample(5000, 3);
	unsigned char *c;
	size_t cl1, cl2;
	ck_assert_int_eq(pmdz_deflate(&z, m, 5000, true, &c, &cl1), 0);
	ck_assert(!z.tx_init); /* freed after the message */
	unsigned char *first = malloc(cl1);
	memcpy(first, c, cl1);
	ck_assert_int_eq(pmdz_deflate(&z, m, 5000, true, &c, &cl2), 0);
	/* Each message alone: the same bytes twice. */
	ck_assert_uint_eq(cl1, cl2);
	ck_assert_mem_eq(first, c, cl1);
	free(first);
	free(m);
	pmdz_free(&z);
}
END_TEST

START_TEST(inflate_any_pieces)
{
	static const size_t steps[] = { 1, 7, 528, 4096, 1 << 20 };
	for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
		struct pmdz z;
		pmdz_init(&z, 10, 10, 4, 1, false, false, 1 << 20, HEAD);
		z_stream zs;
		memset(&zs, 0, sizeof zs);
		ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -10, 8, Z_DEFAULT_STRATEGY),
				 Z_OK);
		for (unsigned i = 0; i < 4; i++) {
			size_t n = 65536 >> i;
			unsigned char *m = sample(n, 7 + i % 2);
			size_t cap = n + 1024;
			unsigned char *c = malloc(cap);
			size_t cl = client_compress(&zs, m, n, c, cap);
			size_t got_n;
			unsigned char *got = feed(&z, c, cl, steps[s], &got_n);
			ck_assert_uint_eq(got_n, n);
			ck_assert_mem_eq(got, m, n);
			free(got);
			free(c);
			free(m);
		}
		deflateEnd(&zs);
		pmdz_free(&z);
	}
}
END_TEST

START_TEST(inflate_final_block_and_reset)
{
	struct pmdz z;
	pmdz_init(&z, 10, 15, 4, 1, false, false, 1 << 20, HEAD);
	for (int i = 0; i < 2; i++) {
		/* A client may end a message with a final block (Z_FINISH). */
		unsigned char *m = sample(3000, 11);
		z_stream zs;
		memset(&zs, 0, sizeof zs);
		ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY),
				 Z_OK);
		unsigned char c[4000];
		zs.next_in = m;
		zs.avail_in = 3000;
		zs.next_out = c;
		zs.avail_out = sizeof c;
		ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
		size_t cl = sizeof c - zs.avail_out;
		deflateEnd(&zs);
		size_t n;
		unsigned char *got = feed(&z, c, cl, 100, &n);
		ck_assert_uint_eq(n, 3000);
		ck_assert_mem_eq(got, m, 3000);
		ck_assert(!z.rx_init); /* the next message starts a new stream */
		free(got);
		free(m);
	}
	pmdz_free(&z);
}
END_TEST

START_TEST(inflate_limit_and_corrupt)
{
	struct pmdz z;
	pmdz_init(&z, 10, 15, 4, 1, false, true, 10000, HEAD);
	/* 1 MiB of zeros in about 1 KiB: output stops at the limit + 1. */
	unsigned char *zeros = calloc(1, 1 << 20);
	z_stream zs;
	memset(&zs, 0, sizeof zs);
	ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	unsigned char *c = malloc(1 << 16);
	size_t cl = client_compress(&zs, zeros, 1 << 20, c, 1 << 16);
	deflateEnd(&zs);
	size_t n;
	unsigned char *got = feed(&z, c, cl, 300, &n);
	ck_assert_uint_eq(n, 10001);
	ck_assert_uint_le(z.rcap, 2 * 10001 + 2);
	free(got);
	/* The inflater was reset (client_no_context_takeover): the next
	 * message inflates. */
	unsigned char *m = sample(2000, 5);
	memset(&zs, 0, sizeof zs);
	ck_assert_int_eq(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	cl = client_compress(&zs, m, 2000, c, 1 << 16);
	deflateEnd(&zs);
	got = feed(&z, c, cl, 64, &n);
	ck_assert_uint_eq(n, 2000);
	ck_assert_mem_eq(got, m, 2000);
	free(got);
	/* Corrupt: a reserved block type (11). */
	unsigned char bad[] = { 0x07, 0x00, 0x01 };
	unsigned char *o;
	ck_assert_int_eq(pmdz_inflate(&z, bad, sizeof bad, true, &o, &n), -1);
	free(m);
	free(c);
	free(zeros);
	pmdz_free(&z);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pmdz");
	TCase *tc = tcase_create("core");
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, deflate_inflates_with_zlib);
	tcase_add_test(tc, deflate_no_takeover);
	tcase_add_test(tc, inflate_any_pieces);
	tcase_add_test(tc, inflate_final_block_and_reset);
	tcase_add_test(tc, inflate_limit_and_corrupt);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
