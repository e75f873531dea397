/* Unit tests for edge/subs.c: the edge's table of subscriptions by
 * (pipe, sid) and by key, the key's subscriptions sorted by pipe. */
#include "subs.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct subs S;

static void setup(void)
{
	subs_init(&S);
}

static void teardown(void)
{
	subs_free(&S);
}

static struct sub *add_str(uint32_t pipe, uint64_t sid, uint32_t partition, const char *key)
{
	return subs_add(&S, pipe, sid, partition, key, strlen(key));
}

static const struct subs_key *lookup_str(const char *key)
{
	return subs_lookup(&S, key, strlen(key));
}

/* Asserts the key's subscriptions are sorted by pipe and point back to it. */
static void assert_key_sane(const struct subs_key *k)
{
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_gt(k->n, 0);
	for (uint32_t i = 0; i < k->n; i++) {
		ck_assert_ptr_eq(k->v[i]->key, k);
		ck_assert_ptr_eq(subs_get(&S, k->v[i]->pipe, k->v[i]->sid), k->v[i]);
		if (i)
			ck_assert_uint_le(k->v[i - 1]->pipe, k->v[i]->pipe);
	}
}

/* True when key k holds subscription (pipe, sid). */
static int key_has(const struct subs_key *k, uint32_t pipe, uint64_t sid)
{
	for (uint32_t i = 0; k && i < k->n; i++)
		if (k->v[i]->pipe == pipe && k->v[i]->sid == sid)
			return 1;
	return 0;
}

START_TEST(test_add_get_remove)
{
	ck_assert_uint_eq(S.count, 0);
	ck_assert_ptr_null(lookup_str("alice"));
	ck_assert_ptr_null(subs_get(&S, 1, 10));

	struct sub *x = add_str(1, 10, 4, "alice");
	ck_assert_ptr_nonnull(x);
	ck_assert_uint_eq(x->pipe, 1);
	ck_assert_uint_eq(x->sid, 10);
	ck_assert_uint_eq(x->partition, 4);
	ck_assert_uint_eq(S.count, 1);
	ck_assert_ptr_eq(subs_get(&S, 1, 10), x);
	/* Same sid on another pipe, another sid on the same pipe: different. */
	ck_assert_ptr_null(subs_get(&S, 2, 10));
	ck_assert_ptr_null(subs_get(&S, 1, 11));

	const struct subs_key *k = lookup_str("alice");
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_eq(k->n, 1);
	ck_assert_ptr_eq(k->v[0], x);
	ck_assert_uint_eq(k->len, 5);
	ck_assert_mem_eq(k->bytes, "alice", 5);
	ck_assert_ptr_eq(x->key, k);
	ck_assert_ptr_null(lookup_str("alic"));
	ck_assert_ptr_null(lookup_str("alicee"));
	ck_assert_ptr_null(lookup_str("bob"));

	struct sub *y = add_str(2, 10, 4, "alice");
	ck_assert_ptr_ne(x, y);
	ck_assert_uint_eq(S.count, 2);
	ck_assert_ptr_eq(lookup_str("alice"), k);
	ck_assert_uint_eq(k->n, 2);

	ck_assert(!subs_remove(&S, 3, 10));
	ck_assert(subs_remove(&S, 1, 10));
	ck_assert(!subs_remove(&S, 1, 10));
	ck_assert_ptr_null(subs_get(&S, 1, 10));
	ck_assert_ptr_eq(subs_get(&S, 2, 10), y);
	ck_assert_uint_eq(S.count, 1);
	k = lookup_str("alice");
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_eq(k->n, 1);
	ck_assert_ptr_eq(k->v[0], y);

	ck_assert(subs_remove(&S, 2, 10));
	ck_assert_uint_eq(S.count, 0);
	ck_assert_ptr_null(lookup_str("alice"));
}
END_TEST

START_TEST(test_replace_same_id)
{
	add_str(1, 7, 3, "old-key");
	add_str(1, 8, 3, "old-key");
	struct sub *x = add_str(1, 7, 5, "new-key");
	ck_assert_uint_eq(S.count, 2);
	ck_assert_ptr_eq(subs_get(&S, 1, 7), x);
	ck_assert_uint_eq(x->partition, 5);
	ck_assert_uint_eq(x->key->len, 7);
	ck_assert_mem_eq(x->key->bytes, "new-key", 7);

	const struct subs_key *old = lookup_str("old-key");
	ck_assert_ptr_nonnull(old);
	ck_assert_uint_eq(old->n, 1);
	ck_assert(!key_has(old, 1, 7));
	ck_assert(key_has(old, 1, 8));
	const struct subs_key *nk = lookup_str("new-key");
	ck_assert_ptr_nonnull(nk);
	ck_assert_uint_eq(nk->n, 1);
	ck_assert_ptr_eq(nk->v[0], x);

	/* The old partition no longer holds it, the new one does. */
	ck_assert_uint_eq(subs_remove_partition(&S, 3), 1);
	ck_assert_ptr_nonnull(subs_get(&S, 1, 7));
	ck_assert_uint_eq(subs_remove_partition(&S, 5), 1);
	ck_assert_uint_eq(S.count, 0);
}
END_TEST

START_TEST(test_replace_only_sub_of_key)
{
	/* Replacing the only subscription of a key, with the same key: the key
	 * must still be there afterwards, with one entry. */
	add_str(3, 1, 0, "k");
	struct sub *x = add_str(3, 1, 9, "k");
	ck_assert_uint_eq(S.count, 1);
	const struct subs_key *k = lookup_str("k");
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_eq(k->n, 1);
	ck_assert_ptr_eq(k->v[0], x);
	ck_assert_uint_eq(x->partition, 9);

	/* Moving the only subscription to another key frees the first key. */
	add_str(3, 1, 9, "other");
	ck_assert_uint_eq(S.count, 1);
	ck_assert_ptr_null(lookup_str("k"));
	ck_assert_ptr_nonnull(lookup_str("other"));
}
END_TEST

START_TEST(test_sorted_by_pipe)
{
	static const uint32_t pipes[] = { 5, 1, 3, 1, 2 };
	static const uint32_t want[] = { 1, 1, 2, 3, 5 };
	for (uint32_t i = 0; i < 5; i++)
		add_str(pipes[i], 100 + i, 0, "key");
	add_str(4, 999, 0, "other-key");

	const struct subs_key *k = lookup_str("key");
	ck_assert_ptr_nonnull(k);
	ck_assert_uint_eq(k->n, 5);
	for (uint32_t i = 0; i < 5; i++)
		ck_assert_uint_eq(k->v[i]->pipe, want[i]);
	for (uint32_t i = 0; i < 5; i++)
		ck_assert(key_has(k, pipes[i], 100 + i));
	ck_assert(!key_has(k, 4, 999));
	assert_key_sane(k);

	/* Still sorted after removing from the middle and adding again. */
	ck_assert(subs_remove(&S, 2, 104));
	add_str(4, 200, 0, "key");
	add_str(0, 201, 0, "key");
	k = lookup_str("key");
	ck_assert_uint_eq(k->n, 6);
	static const uint32_t want2[] = { 0, 1, 1, 3, 4, 5 };
	for (uint32_t i = 0; i < 6; i++)
		ck_assert_uint_eq(k->v[i]->pipe, want2[i]);
	assert_key_sane(k);
}
END_TEST

START_TEST(test_sorted_random)
{
	uint32_t seed = 12345;
	for (uint64_t sid = 0; sid < 300; sid++) {
		seed = seed * 1103515245u + 12345u;
		add_str((seed >> 16) % 17, sid, 0, "hot");
	}
	const struct subs_key *k = lookup_str("hot");
	ck_assert_uint_eq(k->n, 300);
	assert_key_sane(k);
	/* Remove every third and check again. */
	for (uint64_t sid = 0; sid < 300; sid += 3) {
		const struct sub *x = NULL;
		for (uint32_t p = 0; p < 17 && !x; p++)
			x = subs_get(&S, p, sid);
		ck_assert_ptr_nonnull(x);
		ck_assert(subs_remove(&S, x->pipe, sid));
	}
	k = lookup_str("hot");
	ck_assert_uint_eq(k->n, 200);
	ck_assert_uint_eq(S.count, 200);
	assert_key_sane(k);
}
END_TEST

START_TEST(test_remove_pipe)
{
	/* key a: pipes 1, 2; key b: pipe 2 only; key c: pipes 1, 3. */
	add_str(1, 1, 0, "a");
	add_str(2, 2, 0, "a");
	add_str(2, 3, 1, "b");
	add_str(2, 4, 1, "b");
	add_str(1, 5, 2, "c");
	add_str(3, 6, 2, "c");
	/* Same sid as a pipe-2 subscription, on pipe 3: must survive. */
	add_str(3, 2, 0, "a");
	ck_assert_uint_eq(S.count, 7);

	ck_assert_uint_eq(subs_remove_pipe(&S, 2), 3);
	ck_assert_uint_eq(S.count, 4);
	ck_assert_ptr_null(subs_get(&S, 2, 2));
	ck_assert_ptr_null(subs_get(&S, 2, 3));
	ck_assert_ptr_null(subs_get(&S, 2, 4));
	ck_assert_ptr_nonnull(subs_get(&S, 1, 1));
	ck_assert_ptr_nonnull(subs_get(&S, 1, 5));
	ck_assert_ptr_nonnull(subs_get(&S, 3, 6));
	ck_assert_ptr_nonnull(subs_get(&S, 3, 2));

	const struct subs_key *a = lookup_str("a");
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->n, 2);
	ck_assert(key_has(a, 1, 1));
	ck_assert(key_has(a, 3, 2));
	assert_key_sane(a);
	ck_assert_ptr_null(lookup_str("b"));
	const struct subs_key *c = lookup_str("c");
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->n, 2);

	ck_assert_uint_eq(subs_remove_pipe(&S, 2), 0);
	ck_assert_uint_eq(subs_remove_pipe(&S, 99), 0);
	ck_assert_uint_eq(S.count, 4);
}
END_TEST

START_TEST(test_remove_partition)
{
	add_str(1, 1, 7, "a");
	add_str(2, 2, 8, "a");
	add_str(1, 3, 7, "b");
	add_str(3, 4, 7, "b");
	add_str(1, 5, 9, "c");
	ck_assert_uint_eq(S.count, 5);

	ck_assert_uint_eq(subs_remove_partition(&S, 7), 3);
	ck_assert_uint_eq(S.count, 2);
	ck_assert_ptr_null(subs_get(&S, 1, 1));
	ck_assert_ptr_null(subs_get(&S, 1, 3));
	ck_assert_ptr_null(subs_get(&S, 3, 4));
	ck_assert_ptr_nonnull(subs_get(&S, 2, 2));
	ck_assert_ptr_nonnull(subs_get(&S, 1, 5));

	const struct subs_key *a = lookup_str("a");
	ck_assert_ptr_nonnull(a);
	ck_assert_uint_eq(a->n, 1);
	ck_assert(key_has(a, 2, 2));
	ck_assert_ptr_null(lookup_str("b"));
	ck_assert_ptr_nonnull(lookup_str("c"));

	ck_assert_uint_eq(subs_remove_partition(&S, 7), 0);
	ck_assert_uint_eq(subs_remove_partition(&S, 1000), 0);
	ck_assert_uint_eq(subs_remove_partition(&S, 8), 1);
	ck_assert_uint_eq(subs_remove_partition(&S, 9), 1);
	ck_assert_uint_eq(S.count, 0);
	ck_assert_ptr_null(lookup_str("a"));
	ck_assert_ptr_null(lookup_str("c"));
}
END_TEST

START_TEST(test_binary_keys)
{
	static const char k1[] = { 'a', '\0', 'b' };
	static const char k2[] = { 'a', '\0', 'c' };
	static const char k3[] = { 'a', '\0' };
	static const char k4[] = { '\0' };
	static const char k5[] = { '\0', '\0' };
	struct sub *x1 = subs_add(&S, 1, 1, 0, k1, sizeof k1);
	struct sub *x2 = subs_add(&S, 1, 2, 0, k2, sizeof k2);
	struct sub *x3 = subs_add(&S, 1, 3, 0, k3, sizeof k3);
	struct sub *x4 = subs_add(&S, 1, 4, 0, k4, sizeof k4);
	struct sub *x5 = subs_add(&S, 1, 5, 0, k5, sizeof k5);
	struct sub *x6 = subs_add(&S, 1, 6, 0, "a", 1);

	const struct {
		const void *key;
		size_t len;
		struct sub *x;
	} cases[] = {
		{ k1, sizeof k1, x1 }, { k2, sizeof k2, x2 }, { k3, sizeof k3, x3 },
		{ k4, sizeof k4, x4 }, { k5, sizeof k5, x5 }, { "a", 1, x6 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct subs_key *k = subs_lookup(&S, cases[i].key, cases[i].len);
		ck_assert_msg(k != NULL, "key %zu not found", i);
		ck_assert_uint_eq(k->n, 1);
		ck_assert_ptr_eq(k->v[0], cases[i].x);
		ck_assert_uint_eq(k->len, cases[i].len);
		ck_assert_mem_eq(k->bytes, cases[i].key, cases[i].len);
	}
	/* A copy of the key (not the caller's buffer) is kept. */
	char buf[3];
	memcpy(buf, k1, 3);
	struct sub *y = subs_add(&S, 2, 1, 0, buf, 3);
	memset(buf, 'z', sizeof buf);
	const struct subs_key *k = subs_lookup(&S, k1, sizeof k1);
	ck_assert_uint_eq(k->n, 2);
	ck_assert(key_has(k, 2, 1));
	ck_assert_ptr_eq(y->key, k);
	ck_assert_ptr_null(subs_lookup(&S, "zzz", 3));
}
END_TEST

START_TEST(test_many)
{
	enum { NSUBS = 10000, NKEYS = 1000, NPIPES = 10 };
	char key[32];
	for (uint64_t i = 0; i < NSUBS; i++) {
		int len = snprintf(key, sizeof key, "client-%04u", (unsigned)(i % NKEYS));
		/* Pipes in a scrambled order per key. */
		uint32_t pipe = (uint32_t)((i / NKEYS) * 7 % NPIPES);
		subs_add(&S, pipe, i, (uint32_t)(i % 32), key, (size_t)len);
	}
	ck_assert_uint_eq(S.count, NSUBS);
	for (unsigned k = 0; k < NKEYS; k++) {
		int len = snprintf(key, sizeof key, "client-%04u", k);
		const struct subs_key *sk = subs_lookup(&S, key, (size_t)len);
		ck_assert_ptr_nonnull(sk);
		ck_assert_uint_eq(sk->n, NPIPES);
		assert_key_sane(sk);
	}

	size_t removed = 0;
	for (uint32_t p = 0; p < NPIPES; p++) {
		size_t n = subs_remove_pipe(&S, p);
		ck_assert_uint_eq(n, NSUBS / NPIPES);
		removed += n;
		ck_assert_uint_eq(S.count, NSUBS - removed);
		if (p == NPIPES / 2 - 1) {
			/* Half the pipes gone: every key holds the other half. */
			for (unsigned k = 0; k < NKEYS; k += 37) {
				int len = snprintf(key, sizeof key, "client-%04u", k);
				const struct subs_key *sk = subs_lookup(&S, key, (size_t)len);
				ck_assert_ptr_nonnull(sk);
				ck_assert_uint_eq(sk->n, NPIPES / 2);
				assert_key_sane(sk);
				for (uint32_t i = 0; i < sk->n; i++)
					ck_assert_uint_ge(sk->v[i]->pipe, NPIPES / 2);
			}
		}
	}
	ck_assert_uint_eq(removed, NSUBS);
	ck_assert_uint_eq(S.count, 0);
	for (unsigned k = 0; k < NKEYS; k++) {
		int len = snprintf(key, sizeof key, "client-%04u", k);
		ck_assert_ptr_null(subs_lookup(&S, key, (size_t)len));
	}
	for (uint64_t i = 0; i < NSUBS; i += 101)
		for (uint32_t p = 0; p < NPIPES; p++)
			ck_assert_ptr_null(subs_get(&S, p, i));

	/* The table is usable again afterwards. */
	struct sub *x = add_str(1, 1, 1, "again");
	ck_assert_ptr_eq(subs_get(&S, 1, 1), x);
	ck_assert_uint_eq(S.count, 1);
}
END_TEST

START_TEST(test_free_populated)
{
	struct subs t;
	subs_init(&t);
	char key[16];
	for (uint64_t i = 0; i < 500; i++) {
		int len = snprintf(key, sizeof key, "k%u", (unsigned)(i % 50));
		subs_add(&t, (uint32_t)(i % 3), i, (uint32_t)(i % 4), key, (size_t)len);
	}
	ck_assert_uint_eq(t.count, 500);
	subs_free(&t);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_ptr_null(t.by_key.buckets);
	ck_assert_ptr_null(t.by_id.buckets);
	/* Valgrind / LeakSanitizer report anything left behind. */
}
END_TEST

START_TEST(test_free_zeroed)
{
	struct subs t;
	memset(&t, 0, sizeof t);
	subs_free(&t);
	ck_assert_uint_eq(t.count, 0);
	/* And freeing an emptied table twice is harmless. */
	subs_init(&t);
	subs_add(&t, 1, 1, 1, "x", 1);
	subs_free(&t);
	subs_free(&t);
	ck_assert_uint_eq(t.count, 0);
}
END_TEST

static Suite *subs_suite(void)
{
	Suite *s = suite_create("subs");
	TCase *basic = tcase_create("basic");
	TCase *bulk = tcase_create("bulk");
	TCase *life = tcase_create("lifetime");

	tcase_add_checked_fixture(basic, setup, teardown);
	tcase_add_test(basic, test_add_get_remove);
	tcase_add_test(basic, test_replace_same_id);
	tcase_add_test(basic, test_replace_only_sub_of_key);
	tcase_add_test(basic, test_sorted_by_pipe);
	tcase_add_test(basic, test_remove_pipe);
	tcase_add_test(basic, test_remove_partition);
	tcase_add_test(basic, test_binary_keys);
	suite_add_tcase(s, basic);

	tcase_add_checked_fixture(bulk, setup, teardown);
	/* Generous: valgrind runs these much slower. */
	tcase_set_timeout(bulk, 120);
	tcase_add_test(bulk, test_sorted_random);
	tcase_add_test(bulk, test_many);
	suite_add_tcase(s, bulk);

	tcase_add_test(life, test_free_populated);
	tcase_add_test(life, test_free_zeroed);
	suite_add_tcase(s, life);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(subs_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
