/* Unit tests for common/partition.c: published vectors from Kafka and
 * librdkafka, then a cross-check against librdkafka's own partitioners. */
#include "partition.h"

#include <check.h>
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

struct str_hash {
	const char *key;
	uint32_t hash;
};

/*
 * Java murmur2 outputs. From confluentinc/librdkafka src/rdmurmur2.c,
 * unittest_murmur2() (values generated with the Java implementation; the
 * suffixes of "1234" and of the long string are its unaligned cases).
 */
static const struct str_hash librdkafka_murmur2[] = {
	{ "kafka", 0xd067cf64 },
	{ "giberish123456789", 0x8f552b0c },
	{ "1234", 0x9fc97b14 },
	{ "234", 0xe7c009ca },
	{ "34", 0x873930da },
	{ "4", 0x5a4b5ca1 },
	{ "PreAmbleWillBeRemoved,ThePrePartThatIs", 0x78424f1c },
	{ "reAmbleWillBeRemoved,ThePrePartThatIs", 0x4a62b377 },
	{ "eAmbleWillBeRemoved,ThePrePartThatIs", 0xe0e4e09e },
	{ "AmbleWillBeRemoved,ThePrePartThatIs", 0x62b8b43f },
	{ "", 0x106e08d9 },
};

/*
 * Kafka's own test of Utils.murmur2: apache/kafka
 * clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java,
 * testMurmur2() (expected values are Java ints).
 */
static const struct {
	const char *key;
	int32_t hash;
} kafka_utils_murmur2[] = {
	{ "21", -973932308 },
	{ "foobar", -790332482 },
	{ "a-little-bit-long-string", -985981536 },
	{ "a-little-bit-longer-string", -1486304829 },
	{ "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971 },
	{ "abc", 479470107 },
};

/*
 * Utils.toPositive(murmur2(key)) values from an earlier revision of
 * confluentinc/librdkafka src/rdmurmur2.c (unittest_murmurhashneutral2()).
 */
static const struct str_hash librdkafka_murmur2_positive[] = {
	{ "kafka", 1348980580 },
	{ "amqp", 767747138 },
	{ "giberish123456789", 257239820 },
};

/*
 * confluentinc/librdkafka tests/0048-partitioner.c, do_test_partitioners():
 * keys (the NULL key left out; "23456" is its `unaligned + 1`) with their
 * "consistent" (crc32, from the OSX crc32 command) and "murmur2" (from
 * tests/java/Murmur2Cli) hashes; the expected partition is hash % part_cnt
 * for part_cnt 7 (quick mode) or 17.
 */
static const struct {
	const char *key;
	uint32_t crc32;
	uint32_t murmur2;
} librdkafka_0048[] = {
	{ "", 0x0, 0x106e08d9 },
	{ "23456", 0xb1b451d7, 0x058d780f },
	{ "this is another string with more length to it perhaps", 0xb0150df7, 0x4f7703da },
	{ "hejsan", 0xd077037e, 0x5ec19395 },
};

START_TEST(test_murmur2_librdkafka_vectors)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(librdkafka_murmur2); i++) {
		const char *k = librdkafka_murmur2[i].key;
		uint32_t h = kafka_murmur2(k, strlen(k));

		ck_assert_msg(h == librdkafka_murmur2[i].hash,
			      "murmur2(\"%s\") = 0x%08x, want 0x%08x", k, (unsigned)h,
			      (unsigned)librdkafka_murmur2[i].hash);
	}
	for (i = 0; i < ARRAY_LEN(librdkafka_murmur2_positive); i++) {
		const char *k = librdkafka_murmur2_positive[i].key;
		uint32_t h = kafka_murmur2(k, strlen(k)) & 0x7fffffffu;

		ck_assert_uint_eq(h, librdkafka_murmur2_positive[i].hash);
	}
	/* NULL with length 0 is the empty key (librdkafka's NULL case). */
	ck_assert_uint_eq(kafka_murmur2(NULL, 0), 0x106e08d9u);
}
END_TEST

START_TEST(test_murmur2_kafka_vectors)
{
	size_t i;

	for (i = 0; i < ARRAY_LEN(kafka_utils_murmur2); i++) {
		const char *k = kafka_utils_murmur2[i].key;
		int32_t h = (int32_t)kafka_murmur2(k, strlen(k));

		ck_assert_msg(h == kafka_utils_murmur2[i].hash, "murmur2(\"%s\") = %d, want %d", k,
			      h, kafka_utils_murmur2[i].hash);
	}
}
END_TEST

START_TEST(test_murmur2_unaligned)
{
	/* The same bytes at every alignment hash the same. */
	static const char src[] = "PreAmbleWillBeRemoved,ThePrePartThatIs";
	char buf[sizeof(src) + 8];
	size_t off;

	for (off = 0; off < 8; off++) {
		memcpy(buf + off, src, sizeof(src) - 1);
		ck_assert_uint_eq(kafka_murmur2(buf + off, sizeof(src) - 1), 0x78424f1cu);
	}
}
END_TEST

START_TEST(test_crc32_vectors)
{
	size_t i;

	/* CRC-32/ISO-HDLC (zlib) check value: crc("123456789"). */
	ck_assert_uint_eq(kafka_crc32("123456789", 9), 0xcbf43926u);
	ck_assert_uint_eq(kafka_crc32(NULL, 0), 0);
	for (i = 0; i < ARRAY_LEN(librdkafka_0048); i++) {
		const char *k = librdkafka_0048[i].key;
		uint32_t h = kafka_crc32(k, strlen(k));

		ck_assert_msg(h == librdkafka_0048[i].crc32, "crc32(\"%s\") = 0x%08x, want 0x%08x",
			      k, (unsigned)h, (unsigned)librdkafka_0048[i].crc32);
	}
}
END_TEST

START_TEST(test_partition_0048_vectors)
{
	static const int32_t counts[] = { 7, 17 };
	size_t i, c;

	for (c = 0; c < ARRAY_LEN(counts); c++) {
		int32_t n = counts[c];

		for (i = 0; i < ARRAY_LEN(librdkafka_0048); i++) {
			const char *k = librdkafka_0048[i].key;
			size_t len = strlen(k);

			ck_assert_int_eq(partition_for_key(PARTITIONER_CRC32, k, len, n),
					 (int32_t)(librdkafka_0048[i].crc32 % (uint32_t)n));
			ck_assert_int_eq(partition_for_key(PARTITIONER_MURMUR2, k, len, n),
					 (int32_t)(librdkafka_0048[i].murmur2 % (uint32_t)n));
		}
	}
}
END_TEST

START_TEST(test_partition_murmur2_positive)
{
	/* "kafka" hashes with the top bit set: toPositive masks it, it does
	 * not negate (Math.abs would give a different partition). */
	uint32_t h = kafka_murmur2("kafka", 5);

	ck_assert_uint_eq(h >> 31, 1);
	ck_assert_int_eq(partition_for_key(PARTITIONER_MURMUR2, "kafka", 5, 10),
			 (int32_t)((h & 0x7fffffffu) % 10));
	ck_assert_int_eq(partition_for_key(PARTITIONER_MURMUR2, "kafka", 5, INT32_MAX), 1348980580);
}
END_TEST

START_TEST(test_partition_bad_args)
{
	static const int32_t bad[] = { 0, -1, -100, INT32_MIN };
	size_t i;

	for (i = 0; i < ARRAY_LEN(bad); i++) {
		ck_assert_int_eq(partition_for_key(PARTITIONER_MURMUR2, "a", 1, bad[i]), -1);
		ck_assert_int_eq(partition_for_key(PARTITIONER_CRC32, "a", 1, bad[i]), -1);
	}
	ck_assert_int_eq(partition_for_key(PARTITIONER_CRC32, NULL, 3, 10), -1);
	ck_assert_int_eq(partition_for_key((enum partitioner)7, "a", 1, 10), -1);
	ck_assert_int_eq(partition_for_key(PARTITIONER_MURMUR2, "a", 1, 1), 0);
	ck_assert_int_eq(partition_for_key(PARTITIONER_CRC32, "a", 1, 1), 0);
}
END_TEST

START_TEST(test_parse)
{
	static const char *const bad[] = {
		"",
		"MURMUR2",
		"Murmur2",
		"murmur2 ",
		" crc32",
		"CRC32",
		"crc",
		"murmur",
		"crc32\n",
		"consistent",
		"consistent_random",
		"murmur2_random",
		"random",
		"fnv1a",
		"default",
	};
	enum partitioner p = PARTITIONER_CRC32;
	size_t i;

	ck_assert_int_eq(partitioner_parse("murmur2", &p), 0);
	ck_assert_int_eq(p, PARTITIONER_MURMUR2);
	ck_assert_int_eq(partitioner_parse("crc32", &p), 0);
	ck_assert_int_eq(p, PARTITIONER_CRC32);

	for (i = 0; i < ARRAY_LEN(bad); i++) {
		p = PARTITIONER_MURMUR2;
		ck_assert_msg(partitioner_parse(bad[i], &p) == -1, "accepted \"%s\"", bad[i]);
		ck_assert_int_eq(p, PARTITIONER_MURMUR2);
	}
	ck_assert_int_eq(partitioner_parse(NULL, &p), -1);

	ck_assert_str_eq(partitioner_name(PARTITIONER_MURMUR2), "murmur2");
	ck_assert_str_eq(partitioner_name(PARTITIONER_CRC32), "crc32");
	ck_assert_str_eq(partitioner_name((enum partitioner)7), "unknown");
	ck_assert_int_eq(partitioner_parse(partitioner_name(PARTITIONER_CRC32), &p), 0);
	ck_assert_int_eq(p, PARTITIONER_CRC32);
	ck_assert_int_eq(partitioner_parse(partitioner_name(PARTITIONER_MURMUR2), &p), 0);
	ck_assert_int_eq(p, PARTITIONER_MURMUR2);
}
END_TEST

/* Cross-check against the librdkafka linked in, which producers using
 * partitioner=murmur2 / consistent run. */

#define XCHECK_KEYS 10000
#define XCHECK_MAX_LEN 64
#define XCHECK_MAX_COUNT 100

static void quiet_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
}

static uint32_t xorshift32(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	*s = x;
	return x;
}

START_TEST(test_crosscheck_librdkafka)
{
	char errstr[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	rd_kafka_topic_t *rkt;
	unsigned char buf[XCHECK_MAX_LEN + 4];
	uint32_t seed = 0x2545f491;
	long compared = 0, high = 0, mismatches = 0;
	char first[256] = "";
	int i;

	rd_kafka_conf_set_log_cb(conf, quiet_log);
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	ck_assert_msg(rk != NULL, "rd_kafka_new: %s", errstr);
	/* on success rk owns conf */
	rkt = rd_kafka_topic_new(rk, "kws-check-partition", NULL);
	ck_assert_msg(rkt != NULL, "rd_kafka_topic_new: %s",
		      rd_kafka_err2str(rd_kafka_last_error()));

	for (i = 0; i < XCHECK_KEYS; i++) {
		/* Vary the alignment: librdkafka has separate paths. */
		unsigned char *key = buf + (i & 3);
		size_t len = 1 + xorshift32(&seed) % XCHECK_MAX_LEN;
		size_t j;
		int32_t n;

		for (j = 0; j < len; j++) {
			key[j] = (unsigned char)(xorshift32(&seed) >> 24);
			if (i % 4 == 1) /* all bytes >= 0x80 */
				key[j] |= 0x80;
			high += key[j] >= 0x80;
		}

		for (n = 1; n <= XCHECK_MAX_COUNT + 1; n++) {
			/* The last round uses INT32_MAX: nearly the whole
			 * hash survives the modulo. */
			int32_t cnt = n > XCHECK_MAX_COUNT ? INT32_MAX : n;
			int32_t want_m =
				rd_kafka_msg_partitioner_murmur2(rkt, key, len, cnt, NULL, NULL);
			int32_t want_c =
				rd_kafka_msg_partitioner_consistent(rkt, key, len, cnt, NULL, NULL);
			int32_t got_m = partition_for_key(PARTITIONER_MURMUR2, key, len, cnt);
			int32_t got_c = partition_for_key(PARTITIONER_CRC32, key, len, cnt);

			compared += 2;
			if (got_m == want_m && got_c == want_c)
				continue;
			if (mismatches++ == 0)
				snprintf(first, sizeof(first),
					 "key #%d len %zu count %d: murmur2 "
					 "%d want %d, crc32 %d want %d",
					 i, len, cnt, got_m, want_m, got_c, want_c);
		}
	}

	rd_kafka_topic_destroy(rkt);
	rd_kafka_destroy(rk);

	ck_assert_msg(mismatches == 0, "%ld of %ld differ; first: %s", mismatches, compared, first);
	ck_assert_int_eq(compared, 2L * XCHECK_KEYS * (XCHECK_MAX_COUNT + 1));
	ck_assert_msg(high > XCHECK_KEYS, "too few bytes >= 0x80: %ld", high);
}
END_TEST

static Suite *partition_suite(void)
{
	Suite *s = suite_create("partition");
	TCase *tc = tcase_create("vectors");
	TCase *api = tcase_create("api");
	TCase *x = tcase_create("librdkafka");

	tcase_add_test(tc, test_murmur2_librdkafka_vectors);
	tcase_add_test(tc, test_murmur2_kafka_vectors);
	tcase_add_test(tc, test_murmur2_unaligned);
	tcase_add_test(tc, test_crc32_vectors);
	tcase_add_test(tc, test_partition_0048_vectors);
	tcase_add_test(tc, test_partition_murmur2_positive);
	suite_add_tcase(s, tc);

	tcase_add_test(api, test_partition_bad_args);
	tcase_add_test(api, test_parse);
	suite_add_tcase(s, api);

	/* Generous: valgrind runs this about 50 times slower. */
	tcase_set_timeout(x, 300);
	tcase_add_test(x, test_crosscheck_librdkafka);
	suite_add_tcase(s, x);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(partition_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
