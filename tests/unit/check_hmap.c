/* Unit tests for common/hmap.c: the intrusive hash map under the router's
 * sessions and routes and the edge's subscriptions (insert, find by walking a
 * hash's chain, duplicates, removal, growth and shrinking, iteration), and
 * the two hash functions. */
#include "hmap.h"

#include <check.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct item {
	struct hnode node;
	char key[32];
	int value;
	int visits;
};

static uint64_t key_hash(const char *k)
{
	return hmap_hash_bytes(k, strlen(k));
}

/* What a user of the map writes: walk the hash's chain, compare keys. */
static struct item *find(const struct hmap *m, const char *k)
{
	for (struct hnode *n = hmap_first(m, key_hash(k)); n; n = hmap_next(n)) {
		struct item *it = hmap_entry(n, struct item, node);
		if (strcmp(it->key, k) == 0)
			return it;
	}
	return NULL;
}

static struct item *make_items(int n)
{
	struct item *v = calloc((size_t)n, sizeof *v);
	ck_assert_ptr_nonnull(v);
	for (int i = 0; i < n; i++) {
		snprintf(v[i].key, sizeof v[i].key, "client-%d", i);
		v[i].value = i;
	}
	return v;
}

/* Counts the nodes iteration visits, marking each item. */
static size_t iterate(const struct hmap *m)
{
	size_t b = 0, n = 0;
	for (struct hnode *it = hmap_iter_first(m, &b); it; it = hmap_iter_next(m, it, &b)) {
		hmap_entry(it, struct item, node)->visits++;
		n++;
	}
	return n;
}

START_TEST(test_empty_and_zeroed)
{
	struct hmap z;
	memset(&z, 0, sizeof z);
	size_t b = 0;
	/* A zeroed map (a struct's member never initialised) is usable. */
	ck_assert_ptr_null(hmap_first(&z, 42));
	ck_assert_ptr_null(hmap_iter_first(&z, &b));
	struct item it = { .key = "a" };
	hmap_insert(&z, &it.node, key_hash("a"));
	ck_assert_uint_eq(z.count, 1);
	ck_assert_ptr_eq(find(&z, "a"), &it);
	hmap_free(&z);
	ck_assert_ptr_null(z.buckets);
	ck_assert_uint_eq(z.count, 0);
	hmap_free(&z); /* twice is harmless */

	struct hmap m;
	hmap_init(&m);
	ck_assert_uint_eq(m.count, 0);
	ck_assert_ptr_null(hmap_first(&m, 42));
	ck_assert_ptr_null(hmap_iter_first(&m, &b));
	ck_assert_ptr_null(find(&m, "nobody"));
	hmap_free(&m);
}
END_TEST

START_TEST(test_insert_find_many)
{
	enum { N = 5000 };
	struct item *v = make_items(N);
	struct hmap m;
	hmap_init(&m);
	size_t first_buckets = m.mask + 1;
	for (int i = 0; i < N; i++)
		hmap_insert(&m, &v[i].node, key_hash(v[i].key));
	ck_assert_uint_eq(m.count, N);
	/* It grew: chains stay short (at most one item per bucket on average). */
	ck_assert_uint_gt(m.mask + 1, first_buckets);
	ck_assert_uint_ge(m.mask + 1, (size_t)N);
	for (int i = 0; i < N; i++) {
		struct item *it = find(&m, v[i].key);
		ck_assert_ptr_eq(it, &v[i]);
		ck_assert_int_eq(it->value, i);
	}
	ck_assert_ptr_null(find(&m, "client-5000"));
	ck_assert_ptr_null(find(&m, "client-"));
	/* Iteration visits every item exactly once. */
	ck_assert_uint_eq(iterate(&m), N);
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(v[i].visits, 1);
	hmap_free(&m);
	free(v);
}
END_TEST

START_TEST(test_duplicates_and_collisions)
{
	struct hmap m;
	hmap_init(&m);
	/* Two sessions of one client (same key), and a different key that the
	 * caller hashes to the same value (a collision): each is found. */
	struct item a1 = { .key = "alice", .value = 1 }, a2 = { .key = "alice", .value = 2 };
	struct item col = { .key = "mallory", .value = 3 };
	/* Same bucket, different hash: hmap_next must skip it. */
	struct item other = { .key = "bob", .value = 4 };
	uint64_t h = 0x1234;
	hmap_insert(&m, &a1.node, h);
	hmap_insert(&m, &other.node, h + (m.mask + 1));
	hmap_insert(&m, &a2.node, h);
	hmap_insert(&m, &col.node, h);
	ck_assert_uint_eq(m.count, 4);

	int seen = 0, sum = 0;
	for (struct hnode *n = hmap_first(&m, h); n; n = hmap_next(n)) {
		ck_assert_uint_eq(n->hash, h);
		seen++;
		sum += hmap_entry(n, struct item, node)->value;
	}
	ck_assert_int_eq(seen, 3);
	ck_assert_int_eq(sum, 1 + 2 + 3);
	ck_assert_ptr_eq(hmap_first(&m, h + (m.mask + 1)), &other.node);
	ck_assert_ptr_null(hmap_next(&other.node));

	/* Removing one duplicate leaves the other. */
	hmap_remove(&m, &a1.node);
	seen = 0;
	for (struct hnode *n = hmap_first(&m, h); n; n = hmap_next(n)) {
		ck_assert_ptr_ne(n, &a1.node);
		seen++;
	}
	ck_assert_int_eq(seen, 2);
	ck_assert_uint_eq(m.count, 3);
	hmap_free(&m);
}
END_TEST

START_TEST(test_remove_and_shrink)
{
	enum { N = 4096 };
	struct item *v = make_items(N);
	struct hmap m;
	hmap_init(&m);
	for (int i = 0; i < N; i++)
		hmap_insert(&m, &v[i].node, key_hash(v[i].key));
	size_t grown = m.mask + 1;
	/* Remove the even ones: the odd ones stay findable. */
	for (int i = 0; i < N; i += 2)
		hmap_remove(&m, &v[i].node);
	ck_assert_uint_eq(m.count, N / 2);
	for (int i = 0; i < N; i++)
		ck_assert_ptr_eq(find(&m, v[i].key), i % 2 ? &v[i] : NULL);
	/* Remove all but 3: the bucket array shrinks again. */
	for (int i = 1; i < N - 6; i += 2)
		hmap_remove(&m, &v[i].node);
	ck_assert_uint_eq(m.count, 3);
	ck_assert_uint_lt(m.mask + 1, grown);
	for (int i = N - 5; i < N; i += 2)
		ck_assert_ptr_eq(find(&m, v[i].key), &v[i]);
	ck_assert_uint_eq(iterate(&m), 3);
	/* An item can be inserted again after removal. */
	hmap_insert(&m, &v[0].node, key_hash(v[0].key));
	ck_assert_ptr_eq(find(&m, v[0].key), &v[0]);
	hmap_free(&m);
	free(v);
}
END_TEST

START_TEST(test_collect_then_remove_all)
{
	/* The documented way to empty a map: collect during iteration, then
	 * remove. */
	enum { N = 300 };
	struct item *v = make_items(N);
	struct hnode **all = calloc(N, sizeof *all);
	struct hmap m;
	hmap_init(&m);
	for (int i = 0; i < N; i++)
		hmap_insert(&m, &v[i].node, key_hash(v[i].key));
	size_t b = 0, k = 0;
	for (struct hnode *it = hmap_iter_first(&m, &b); it; it = hmap_iter_next(&m, it, &b))
		all[k++] = it;
	ck_assert_uint_eq(k, N);
	for (size_t i = 0; i < k; i++)
		hmap_remove(&m, all[i]);
	ck_assert_uint_eq(m.count, 0);
	ck_assert_ptr_null(hmap_iter_first(&m, &b));
	hmap_free(&m);
	free(all);
	free(v);
}
END_TEST

START_TEST(test_hash_bytes)
{
	/* Stable within a process, sensitive to every byte and to the length. */
	ck_assert_uint_eq(hmap_hash_bytes("client-1", 8), hmap_hash_bytes("client-1", 8));
	ck_assert_uint_ne(hmap_hash_bytes("client-1", 8), hmap_hash_bytes("client-2", 8));
	ck_assert_uint_ne(hmap_hash_bytes("client-1", 8), hmap_hash_bytes("client-1", 7));
	ck_assert_uint_ne(hmap_hash_bytes("", 0), hmap_hash_bytes("\0", 1));
	/* Every length around the 8-byte block boundary, and no two prefixes
	 * of one string hash alike. */
	const char s[] = "abcdefghijklmnopqrstuvwxyz";
	uint64_t hs[sizeof s];
	for (size_t n = 0; n < sizeof s; n++) {
		hs[n] = hmap_hash_bytes(s, n);
		for (size_t j = 0; j < n; j++)
			ck_assert_uint_ne(hs[j], hs[n]);
	}
	/* The same bytes at another address hash alike (no pointer hashing). */
	char copy[sizeof s];
	memcpy(copy, s, sizeof s);
	ck_assert_uint_eq(hmap_hash_bytes(copy + 3, 11), hmap_hash_bytes(s + 3, 11));
}
END_TEST

/* Runs this program again as "--hash" and reads what it prints. */
static uint64_t hash_in_new_process(const char *self)
{
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "'%s' --hash", self);
	FILE *p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	uint64_t v = 0;
	ck_assert_int_eq(fscanf(p, "%" SCNx64, &v), 1);
	ck_assert_int_eq(pclose(p), 0);
	return v;
}

static char self_path[4096];

START_TEST(test_hash_key_per_process)
{
	/* Client ids come from peers: the key is random per process, so nobody
	 * can precompute ids that all land in one chain. */
	uint64_t a = hash_in_new_process(self_path), b = hash_in_new_process(self_path);
	ck_assert_uint_ne(a, b);
	ck_assert_uint_ne(a, hmap_hash_bytes("client-1", 8));
}
END_TEST

START_TEST(test_hash_u64)
{
	ck_assert_uint_eq(hmap_hash_u64(7), hmap_hash_u64(7));
	/* Consecutive session ids spread over the low bits that pick buckets. */
	enum { N = 1024 };
	static unsigned char used[N];
	memset(used, 0, sizeof used);
	size_t distinct = 0;
	for (uint64_t i = 1; i <= N; i++) {
		size_t b = hmap_hash_u64(i) & (N - 1);
		distinct += !used[b];
		used[b] = 1;
		ck_assert_uint_ne(hmap_hash_u64(i), hmap_hash_u64(i + 1));
	}
	/* A random function fills about 63% of the buckets; a poor mix of
	 * sequential keys fills far fewer (or exactly all, as the identity). */
	ck_assert_uint_gt(distinct, N / 2);
	ck_assert_uint_lt(distinct, N);
}
END_TEST

static Suite *hmap_suite(void)
{
	Suite *s = suite_create("hmap");
	TCase *map = tcase_create("map");
	tcase_add_test(map, test_empty_and_zeroed);
	tcase_add_test(map, test_insert_find_many);
	tcase_add_test(map, test_duplicates_and_collisions);
	tcase_add_test(map, test_remove_and_shrink);
	tcase_add_test(map, test_collect_then_remove_all);
	suite_add_tcase(s, map);
	TCase *hash = tcase_create("hash");
	tcase_add_test(hash, test_hash_bytes);
	tcase_add_test(hash, test_hash_key_per_process);
	tcase_add_test(hash, test_hash_u64);
	suite_add_tcase(s, hash);
	return s;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "--hash") == 0) {
		printf("%" PRIx64 "\n", hmap_hash_bytes("client-1", 8));
		return 0;
	}
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
	if (n <= 0)
		snprintf(self_path, sizeof self_path, "%s", argv[0]);
	else
		self_path[n] = '\0';
	SRunner *sr = srunner_create(hmap_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
