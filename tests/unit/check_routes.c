/* Unit tests for router/routes.c: partition ownership from the edges' claims,
 * with fencing (a claim on a held partition waits for a revoke, the holder's
 * link to drop, or handover_ms). Every owner change is recorded through the
 * moved callback and checked. */
#include "routes.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HANDOVER 1000

struct move {
	uint32_t partition;
	int old_owner, new_owner;
};

static struct routes R;
static struct move moves[4096];
static int nmoves;
static int seen; /* moves already checked by expect_moves */

static void on_moved(void *arg, uint32_t partition, int old_owner, int new_owner)
{
	ck_assert_ptr_eq(arg, &R);
	ck_assert_int_lt(nmoves, (int)(sizeof moves / sizeof moves[0]));
	moves[nmoves++] = (struct move){ partition, old_owner, new_owner };
}

static void setup_n(int nedges)
{
	memset(moves, 0, sizeof moves);
	nmoves = 0;
	seen = 0;
	routes_init(&R, nedges, HANDOVER, on_moved, &R);
}

static void setup2(void)
{
	setup_n(2);
}

static void setup3(void)
{
	setup_n(3);
}

static void teardown(void)
{
	routes_free(&R);
}

static int assign(int edge, uint64_t epoch, uint32_t pc, const uint32_t *parts, uint32_t n,
		  int64_t now)
{
	return routes_assign(&R, edge, epoch, pc, parts, n, now);
}

#define PARTS(...)                           \
	((const uint32_t[]){ __VA_ARGS__ }), \
		(uint32_t)(sizeof((const uint32_t[]){ __VA_ARGS__ }) / sizeof(uint32_t))
#define NOPARTS NULL, 0

/* Asserts that the moves since the last call are exactly these (in any
 * order), n of them, and that generation counted each one. */
static void expect_moves(int line, int n, const struct move *want)
{
	ck_assert_msg(nmoves - seen == n, "line %d: %d moves, want %d", line, nmoves - seen, n);
	bool used[64] = { false };
	ck_assert_int_le(n, 64);
	for (int i = 0; i < n; i++) {
		int found = -1;
		for (int j = 0; j < n && found < 0; j++) {
			const struct move *m = &moves[seen + j];
			if (!used[j] && m->partition == want[i].partition &&
			    m->old_owner == want[i].old_owner && m->new_owner == want[i].new_owner)
				found = j;
		}
		ck_assert_msg(found >= 0, "line %d: missing move: partition %u %d -> %d", line,
			      want[i].partition, want[i].old_owner, want[i].new_owner);
		used[found] = true;
	}
	seen = nmoves;
	ck_assert_uint_eq(R.generation, (uint64_t)nmoves);
}

#define EXPECT_MOVES(...)                                                                       \
	expect_moves(__LINE__,                                                                  \
		     (int)(sizeof((const struct move[]){ __VA_ARGS__ }) / sizeof(struct move)), \
		     (const struct move[]){ __VA_ARGS__ })
#define EXPECT_NO_MOVES() expect_moves(__LINE__, 0, NULL)

static void expect_owners(int line, const int *want, uint32_t n)
{
	for (uint32_t p = 0; p < n; p++)
		ck_assert_msg(routes_owner(&R, p) == want[p],
			      "line %d: partition %u: owner %d, want %d", line, p,
			      routes_owner(&R, p), want[p]);
}

#define EXPECT_OWNERS(...)                                    \
	expect_owners(__LINE__, (const int[]){ __VA_ARGS__ }, \
		      (uint32_t)(sizeof((const int[]){ __VA_ARGS__ }) / sizeof(int)))

#define N ROUTES_NONE

/* Edge 0 owns 0..3 at t=0; edge 1 claims 2, 3 at t=100 and waits. */
static void edge1_waits(void)
{
	ck_assert_int_eq(assign(0, 1, 4, PARTS(0, 1, 2, 3), 0), 0);
	EXPECT_MOVES({ 0, N, 0 }, { 1, N, 0 }, { 2, N, 0 }, { 3, N, 0 });
	ck_assert_int_eq(assign(1, 1, 4, PARTS(2, 3), 100), 0);
	EXPECT_NO_MOVES();
	EXPECT_OWNERS(0, 0, 0, 0);
}

START_TEST(test_empty)
{
	ck_assert_int_eq(routes_owner(&R, 0), N);
	ck_assert(!routes_complete(&R));
	routes_tick(&R, 1000000);
	routes_edge_down(&R, 1);
	EXPECT_NO_MOVES();
	ck_assert_uint_eq(R.generation, 0);
}
END_TEST

START_TEST(test_first_claim_owns)
{
	ck_assert_int_eq(assign(0, 1, 4, PARTS(1, 3), 0), 0);
	EXPECT_MOVES({ 1, N, 0 }, { 3, N, 0 });
	EXPECT_OWNERS(N, 0, N, 0);
	ck_assert(!routes_complete(&R));

	ck_assert_int_eq(assign(1, 1, 4, PARTS(0, 2), 0), 0);
	EXPECT_MOVES({ 0, N, 1 }, { 2, N, 1 });
	EXPECT_OWNERS(1, 0, 1, 0);
	ck_assert(routes_complete(&R));
}
END_TEST

START_TEST(test_wait_until_revoked)
{
	edge1_waits();
	/* Not yet at handover: nothing moves. */
	routes_tick(&R, 100 + HANDOVER - 1);
	EXPECT_NO_MOVES();
	/* Edge 0 revokes 2 and 3: they pass to edge 1 at once. */
	ck_assert_int_eq(assign(0, 2, 4, PARTS(0, 1), 200), 0);
	EXPECT_MOVES({ 2, 0, 1 }, { 3, 0, 1 });
	EXPECT_OWNERS(0, 0, 1, 1);
	ck_assert(routes_complete(&R));
	/* Nothing left to hand over later. */
	routes_tick(&R, 100000);
	EXPECT_NO_MOVES();
	EXPECT_OWNERS(0, 0, 1, 1);
}
END_TEST

START_TEST(test_wait_until_edge_down)
{
	edge1_waits();
	routes_edge_down(&R, 0);
	EXPECT_MOVES({ 0, 0, N }, { 1, 0, N }, { 2, 0, 1 }, { 3, 0, 1 });
	EXPECT_OWNERS(N, N, 1, 1);
	ck_assert(!routes_complete(&R));
	/* Edge 0 comes back: its first assignment on the new link is accepted
	 * at any epoch, and the free partitions are its at once. */
	ck_assert_int_eq(assign(0, 1, 4, PARTS(0, 1), 300), 0);
	EXPECT_MOVES({ 0, N, 0 }, { 1, N, 0 });
	EXPECT_OWNERS(0, 0, 1, 1);
	ck_assert(routes_complete(&R));
}
END_TEST

START_TEST(test_wait_until_handover)
{
	edge1_waits();
	routes_tick(&R, 100);
	routes_tick(&R, 100 + HANDOVER / 2);
	routes_tick(&R, 100 + HANDOVER - 1);
	EXPECT_NO_MOVES();
	EXPECT_OWNERS(0, 0, 0, 0);
	routes_tick(&R, 100 + HANDOVER);
	EXPECT_MOVES({ 2, 0, 1 }, { 3, 0, 1 });
	EXPECT_OWNERS(0, 0, 1, 1);
	/* Edge 0 still claiming them, then revoking them late, changes nothing. */
	ck_assert_int_eq(assign(0, 2, 4, PARTS(0, 1, 2, 3), 2000), 0);
	EXPECT_NO_MOVES();
	ck_assert_int_eq(assign(0, 3, 4, PARTS(0, 1), 2100), 0);
	EXPECT_NO_MOVES();
	EXPECT_OWNERS(0, 0, 1, 1);
	routes_tick(&R, 100000);
	EXPECT_NO_MOVES();
}
END_TEST

START_TEST(test_handover_well_past)
{
	/* A tick long after the deadline grants too (>=, not ==). */
	edge1_waits();
	routes_tick(&R, 100 + 50 * HANDOVER);
	EXPECT_MOVES({ 2, 0, 1 }, { 3, 0, 1 });
}
END_TEST

START_TEST(test_wait_not_restarted_by_reassert)
{
	/* The waiting edge sends a new assignment that still claims the same
	 * partitions: the claim keeps waiting since its first time. */
	edge1_waits();
	ck_assert_int_eq(assign(1, 2, 4, PARTS(2, 3), 900), 0);
	EXPECT_NO_MOVES();
	routes_tick(&R, 100 + HANDOVER);
	EXPECT_MOVES({ 2, 0, 1 }, { 3, 0, 1 });
}
END_TEST

START_TEST(test_waiting_claim_withdrawn)
{
	edge1_waits();
	/* Edge 1 gives up 3 before the handover: only 2 passes at the deadline. */
	ck_assert_int_eq(assign(1, 2, 4, PARTS(2), 500), 0);
	EXPECT_NO_MOVES();
	routes_tick(&R, 100 + HANDOVER);
	EXPECT_MOVES({ 2, 0, 1 });
	EXPECT_OWNERS(0, 0, 1, 0);
	/* Edge 0 revoking 3 now leaves it to nobody (edge 1 does not claim it). */
	ck_assert_int_eq(assign(0, 2, 4, PARTS(0, 1), 2000), 0);
	EXPECT_MOVES({ 3, 0, N });
	EXPECT_OWNERS(0, 0, 1, N);
	ck_assert(!routes_complete(&R));
}
END_TEST

START_TEST(test_waiting_edge_down)
{
	edge1_waits();
	routes_edge_down(&R, 1);
	EXPECT_NO_MOVES();
	routes_tick(&R, 100 + 10 * HANDOVER);
	EXPECT_NO_MOVES();
	EXPECT_OWNERS(0, 0, 0, 0);
	ck_assert_int_eq(assign(0, 2, 4, PARTS(0), 20000), 0);
	EXPECT_MOVES({ 1, 0, N }, { 2, 0, N }, { 3, 0, N });
	EXPECT_OWNERS(0, N, N, N);
}
END_TEST

START_TEST(test_stale_epoch)
{
	ck_assert_int_eq(assign(0, 5, 4, PARTS(0, 1), 0), 0);
	EXPECT_MOVES({ 0, N, 0 }, { 1, N, 0 });
	/* Same and lower epochs are stale: no change, not even the count. */
	ck_assert_int_eq(assign(0, 5, 4, NOPARTS, 10), -1);
	ck_assert_int_eq(assign(0, 4, 8, PARTS(2, 3, 7), 10), -1);
	ck_assert_int_eq(assign(0, 0, 4, NOPARTS, 10), -1);
	EXPECT_NO_MOVES();
	EXPECT_OWNERS(0, 0, N, N);
	ck_assert_uint_eq(R.partition_count, 4);
	ck_assert_int_eq(routes_owner(&R, 7), N);

	/* A stale assignment from another edge is judged by that edge's epoch. */
	ck_assert_int_eq(assign(1, 1, 4, PARTS(2), 10), 0);
	EXPECT_MOVES({ 2, N, 1 });

	ck_assert_int_eq(assign(0, 6, 4, PARTS(1), 20), 0);
	EXPECT_MOVES({ 0, 0, N });
	EXPECT_OWNERS(N, 0, 1, N);

	/* After the link drops, any epoch is accepted, even a lower one (0). */
	routes_edge_down(&R, 0);
	EXPECT_MOVES({ 1, 0, N });
	ck_assert_int_eq(assign(0, 0, 4, PARTS(0, 3), 30), 0);
	EXPECT_MOVES({ 0, N, 0 }, { 3, N, 0 });
	/* And the new link's epoch then fences as before. */
	ck_assert_int_eq(assign(0, 0, 4, NOPARTS, 40), -1);
	EXPECT_NO_MOVES();
	EXPECT_OWNERS(0, N, 1, 0);
}
END_TEST

START_TEST(test_complete)
{
	ck_assert(!routes_complete(&R));
	ck_assert_int_eq(assign(0, 1, 3, PARTS(0, 1), 0), 0);
	ck_assert(!routes_complete(&R));
	ck_assert_int_eq(assign(1, 1, 3, PARTS(2), 0), 0);
	ck_assert(routes_complete(&R));
	routes_edge_down(&R, 1);
	ck_assert(!routes_complete(&R));
	ck_assert_int_eq(assign(0, 2, 3, PARTS(0, 1, 2), 0), 0);
	ck_assert(routes_complete(&R));
	/* An edge reporting more partitions makes the map incomplete again. */
	ck_assert_int_eq(assign(1, 1, 5, PARTS(3), 0), 0);
	ck_assert(!routes_complete(&R));
	ck_assert_int_eq(assign(1, 2, 5, PARTS(3, 4), 0), 0);
	ck_assert(routes_complete(&R));
}
END_TEST

START_TEST(test_complete_no_claims)
{
	/* A count but no claims: partitions exist, none owned. */
	ck_assert_int_eq(assign(0, 1, 2, NOPARTS, 0), 0);
	ck_assert_uint_eq(R.partition_count, 2);
	ck_assert(!routes_complete(&R));
	EXPECT_NO_MOVES();
}
END_TEST

START_TEST(test_partition_count_growth)
{
	ck_assert_int_eq(assign(0, 1, 4, PARTS(0, 1, 2, 3), 0), 0);
	EXPECT_MOVES({ 0, N, 0 }, { 1, N, 0 }, { 2, N, 0 }, { 3, N, 0 });
	ck_assert_uint_eq(R.partition_count, 4);
	ck_assert_int_eq(routes_owner(&R, 4), N);

	/* Edge 1 saw the topic grow to 8 partitions. */
	ck_assert_int_eq(assign(1, 1, 8, PARTS(4, 5, 6, 7), 10), 0);
	EXPECT_MOVES({ 4, N, 1 }, { 5, N, 1 }, { 6, N, 1 }, { 7, N, 1 });
	ck_assert_uint_eq(R.partition_count, 8);
	EXPECT_OWNERS(0, 0, 0, 0, 1, 1, 1, 1);
	ck_assert(routes_complete(&R));

	/* Edge 0 still reports 4: the count does not shrink, nothing moves. */
	ck_assert_int_eq(assign(0, 2, 4, PARTS(0, 1, 2, 3), 20), 0);
	EXPECT_NO_MOVES();
	ck_assert_uint_eq(R.partition_count, 8);

	/* Fencing still works on the grown map, for old and new partitions. */
	ck_assert_int_eq(assign(0, 3, 8, PARTS(0, 1, 2, 3, 4), 30), 0);
	EXPECT_NO_MOVES();
	ck_assert_int_eq(assign(1, 2, 8, PARTS(0, 5, 6, 7), 30), 0);
	EXPECT_MOVES({ 4, 1, 0 });
	EXPECT_OWNERS(0, 0, 0, 0, 0, 1, 1, 1);
	routes_tick(&R, 30 + HANDOVER);
	EXPECT_MOVES({ 0, 0, 1 });

	/* A claim beyond the reported count grows the map too. */
	ck_assert_int_eq(assign(1, 3, 8, PARTS(0, 5, 6, 7, 11), 40), 0);
	EXPECT_MOVES({ 11, N, 1 });
	ck_assert_uint_ge(R.partition_count, 12);
	ck_assert_int_eq(routes_owner(&R, 11), 1);
	ck_assert_int_eq(routes_owner(&R, 10), N);
	ck_assert_int_eq(routes_owner(&R, 3), 0);
	ck_assert(!routes_complete(&R));
}
END_TEST

START_TEST(test_owner_out_of_range)
{
	ck_assert_int_eq(routes_owner(&R, 0), N);
	ck_assert_int_eq(assign(0, 1, 2, PARTS(0, 1), 0), 0);
	ck_assert_int_eq(routes_owner(&R, 1), 0);
	ck_assert_int_eq(routes_owner(&R, 2), N);
	ck_assert_int_eq(routes_owner(&R, 1000), N);
	ck_assert_int_eq(routes_owner(&R, UINT32_MAX), N);
}
END_TEST

START_TEST(test_generation)
{
	uint64_t g = R.generation;
	ck_assert_int_eq(assign(0, 1, 2, PARTS(0), 0), 0);
	ck_assert_uint_eq(R.generation, g + 1);
	g = R.generation;
	/* No owner change: generation stays. */
	ck_assert_int_eq(assign(0, 2, 2, PARTS(0), 0), 0);
	ck_assert_int_eq(assign(1, 1, 2, PARTS(0), 0), 0);
	routes_tick(&R, HANDOVER - 1);
	ck_assert_uint_eq(R.generation, g);
	routes_tick(&R, HANDOVER);
	ck_assert_uint_eq(R.generation, g + 1);
	ck_assert_int_eq(routes_owner(&R, 0), 1);
	g = R.generation;
	/* Edge 0 revokes the partition it no longer owns: no change. */
	ck_assert_int_eq(assign(0, 3, 2, NOPARTS, 0), 0);
	ck_assert_uint_eq(R.generation, g);
	/* The owner goes down and nobody else claims it: 1 -> none. */
	routes_edge_down(&R, 1);
	ck_assert_uint_eq(R.generation, g + 1);
	ck_assert_int_eq(routes_owner(&R, 0), N);
	g = R.generation;
	ck_assert_int_eq(assign(1, 1, 2, PARTS(0, 1), 0), 0);
	ck_assert_uint_eq(R.generation, g + 2);
	ck_assert_uint_eq(R.generation, (uint64_t)nmoves);
}
END_TEST

START_TEST(test_three_edges_queue)
{
	/* Edge 0 owns 0; edge 1 claims it (waits), then edge 2 claims it too.
	 * When edge 0 revokes, exactly one edge gets it, in one move. */
	ck_assert_int_eq(assign(0, 1, 1, PARTS(0), 0), 0);
	ck_assert_int_eq(assign(1, 1, 1, PARTS(0), 10), 0);
	ck_assert_int_eq(assign(2, 1, 1, PARTS(0), 20), 0);
	EXPECT_MOVES({ 0, N, 0 });
	ck_assert_int_eq(assign(0, 2, 1, NOPARTS, 30), 0);
	ck_assert_int_eq(nmoves - seen, 1);
	int next = moves[seen].new_owner;
	ck_assert(next == 1 || next == 2);
	EXPECT_MOVES({ 0, 0, next });
	/* The other one waits behind the new owner, which goes down. */
	routes_edge_down(&R, next);
	EXPECT_MOVES({ 0, next, 3 - next });
}
END_TEST

/* regression test: failed until routes.c keeps the other waiting claims when the first waiting
 * claim is withdrawn: route.pending holds one edge, so when edge 1 (waiting)
 * withdraws, edge 2's claim is forgotten and never reaches handover_ms. */
START_TEST(test_second_waiting_claim_gets_handover)
{
	ck_assert_int_eq(assign(0, 1, 1, PARTS(0), 0), 0);
	ck_assert_int_eq(assign(1, 1, 1, PARTS(0), 10), 0);
	ck_assert_int_eq(assign(2, 1, 1, PARTS(0), 20), 0);
	EXPECT_MOVES({ 0, N, 0 });
	/* Edge 1 gives its claim up; edge 0 never revokes (it is stuck). */
	ck_assert_int_eq(assign(1, 2, 1, NOPARTS, 30), 0);
	EXPECT_NO_MOVES();
	/* Edge 2 has waited far more than handover_ms. */
	routes_tick(&R, 30 + 10 * HANDOVER);
	EXPECT_MOVES({ 0, 0, 2 });
	ck_assert_int_eq(routes_owner(&R, 0), 2);
}
END_TEST

/* regression test: failed until routes.c keeps the other waiting claims (same bug as above):
 * here the first waiting edge's link drops, and routes_edge_down clears
 * route.pending without passing the wait on to edge 2. */
START_TEST(test_second_waiting_claim_after_waiter_down)
{
	ck_assert_int_eq(assign(0, 1, 1, PARTS(0), 0), 0);
	ck_assert_int_eq(assign(1, 1, 1, PARTS(0), 10), 0);
	ck_assert_int_eq(assign(2, 1, 1, PARTS(0), 20), 0);
	EXPECT_MOVES({ 0, N, 0 });
	routes_edge_down(&R, 1);
	EXPECT_NO_MOVES();
	routes_tick(&R, 30 + 10 * HANDOVER);
	EXPECT_MOVES({ 0, 0, 2 });
}
END_TEST

START_TEST(test_moved_null_callback)
{
	/* Without a callback the map still works and counts generations. */
	struct routes r;
	routes_init(&r, 2, 50, NULL, NULL);
	const uint32_t p[] = { 0 };
	ck_assert_int_eq(routes_assign(&r, 0, 1, 1, p, 1, 0), 0);
	ck_assert_int_eq(routes_assign(&r, 1, 1, 1, p, 1, 0), 0);
	routes_tick(&r, 50);
	ck_assert_int_eq(routes_owner(&r, 0), 1);
	ck_assert_uint_eq(r.generation, 2);
	routes_free(&r);
}
END_TEST

static Suite *routes_suite(void)
{
	Suite *s = suite_create("routes");
	TCase *claims = tcase_create("claims");
	TCase *fencing = tcase_create("fencing");
	TCase *map = tcase_create("map");
	TCase *three = tcase_create("three-edges");

	tcase_add_checked_fixture(claims, setup2, teardown);
	tcase_add_test(claims, test_empty);
	tcase_add_test(claims, test_first_claim_owns);
	tcase_add_test(claims, test_stale_epoch);
	tcase_add_test(claims, test_moved_null_callback);
	suite_add_tcase(s, claims);

	tcase_add_checked_fixture(fencing, setup2, teardown);
	tcase_add_test(fencing, test_wait_until_revoked);
	tcase_add_test(fencing, test_wait_until_edge_down);
	tcase_add_test(fencing, test_wait_until_handover);
	tcase_add_test(fencing, test_handover_well_past);
	tcase_add_test(fencing, test_wait_not_restarted_by_reassert);
	tcase_add_test(fencing, test_waiting_claim_withdrawn);
	tcase_add_test(fencing, test_waiting_edge_down);
	suite_add_tcase(s, fencing);

	tcase_add_checked_fixture(map, setup2, teardown);
	tcase_add_test(map, test_complete);
	tcase_add_test(map, test_complete_no_claims);
	tcase_add_test(map, test_partition_count_growth);
	tcase_add_test(map, test_owner_out_of_range);
	tcase_add_test(map, test_generation);
	suite_add_tcase(s, map);

	tcase_add_checked_fixture(three, setup3, teardown);
	tcase_add_test(three, test_three_edges_queue);
	tcase_add_test(three, test_second_waiting_claim_gets_handover);
	tcase_add_test(three, test_second_waiting_claim_after_waiter_down);
	suite_add_tcase(s, three);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(routes_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
