/* Unit tests for router/sessions.c: the session table (by sid, by client id,
 * by partition), the session state machine and the bounded write queue. */
#include "sessions.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A bound no test reaches. */
#define BIG (1u << 20)

static struct sessions T;

/* What a queued record of len bytes (no prefix, a buffer of its own) counts
 * in qbytes. */
static size_t cost(size_t len)
{
	return sessions_msg_cost(0, NULL) + sizeof(struct recbuf) + len;
}

/* The payload of a message queued by sessions_offer (no prefix). */
static const unsigned char *payload(const struct outmsg *m)
{
	ck_assert_uint_eq(m->hlen, 0);
	ck_assert_ptr_nonnull(m->body);
	return m->body->data;
}

static void setup(void)
{
	sessions_init(&T);
}

static void teardown(void)
{
	sessions_free(&T);
}

static struct session *create(const char *id, uint32_t partition)
{
	return sessions_create(&T, id, strlen(id), partition, NULL);
}

/* Puts s in LIVE through the state machine, with start offset start. */
static void make_live(struct session *s, int64_t start)
{
	ck_assert_int_eq(sessions_pin(s, 0), 0);
	ck_assert_int_eq(sessions_acked(s, start), 0);
	ck_assert_int_eq(s->state, SESSION_LIVE);
}

/* Asserts that partition p lists exactly want[0..n) (in any order), each
 * once, and that the list is consistent both ways. */
static void expect_partition(uint32_t p, struct session *const *want, size_t n)
{
	size_t found = 0;
	struct session *prev = NULL;
	for (struct session *s = sessions_in_partition(&T, p); s; s = s->pnext) {
		ck_assert_uint_lt(found, n + 1);
		ck_assert_uint_eq(s->partition, p);
		ck_assert_ptr_eq(s->pprev, prev);
		size_t i = 0;
		while (i < n && want[i] != s)
			i++;
		ck_assert_msg(i < n, "partition %u lists sid %llu, which it should not", p,
			      (unsigned long long)s->sid);
		for (struct session *q = sessions_in_partition(&T, p); q != s; q = q->pnext)
			ck_assert_ptr_ne(q, s);
		found++;
		prev = s;
	}
	ck_assert_msg(found == n, "partition %u lists %zu sessions, want %zu", p, found, n);
}

#define EXPECT_PARTITION(p, ...)                                            \
	expect_partition((p), (struct session *const[]){ __VA_ARGS__ },     \
			 sizeof((struct session *const[]){ __VA_ARGS__ }) / \
				 sizeof(struct session *))

struct collected {
	struct session *v[16];
	int n;
};

static void collect(struct session *s, void *arg)
{
	struct collected *c = arg;
	ck_assert_int_lt(c->n, 16);
	c->v[c->n++] = s;
}

static int collected_has(const struct collected *c, const struct session *s)
{
	for (int i = 0; i < c->n; i++)
		if (c->v[i] == s)
			return 1;
	return 0;
}

/* ---- table ---- */

START_TEST(test_create)
{
	int conn_a, conn_b;
	struct session *a = sessions_create(&T, "alice", 5, 3, &conn_a);
	struct session *b = sessions_create(&T, "bob", 3, 3, &conn_b);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert_uint_ne(a->sid, b->sid);
	ck_assert_int_eq(a->state, SESSION_WAITING);
	ck_assert_int_eq(a->next_offset, -1);
	ck_assert_int_eq(a->edge, -1);
	ck_assert_uint_eq(a->partition, 3);
	ck_assert_ptr_eq(a->conn, &conn_a);
	ck_assert_ptr_eq(b->conn, &conn_b);
	ck_assert_uint_eq(a->id_len, 5);
	ck_assert_str_eq(a->id, "alice");
	ck_assert_str_eq(b->id, "bob");
	ck_assert_ptr_null(sessions_peek(a));
	ck_assert_uint_eq(a->qbytes, 0);
	ck_assert_uint_eq(a->qcount, 0);
	ck_assert_uint_eq(T.count, 2);
}
END_TEST

START_TEST(test_create_copies_id)
{
	char buf[8] = "carol";
	/* Only idlen bytes count, and the copy is NUL-terminated. */
	struct session *s = sessions_create(&T, buf, 3, 0, NULL);
	memset(buf, 'x', sizeof buf);
	ck_assert_uint_eq(s->id_len, 3);
	ck_assert_str_eq(s->id, "car");
	struct collected c = { .n = 0 };
	ck_assert_uint_eq(sessions_for_client(&T, "car", 3, collect, &c), 1);
	ck_assert_ptr_eq(c.v[0], s);
}
END_TEST

START_TEST(test_unique_sids)
{
	enum { NS = 2000 };
	static uint64_t sids[NS];
	for (int i = 0; i < NS; i++) {
		struct session *s = create(i % 2 ? "same" : "other", (uint32_t)(i % 7));
		sids[i] = s->sid;
		if (i % 3 == 0)
			sessions_delete(&T, s); /* a sid is not reused after a delete */
	}
	for (int i = 0; i < NS; i++)
		for (int j = i + 1; j < NS && j < i + 50; j++)
			ck_assert_uint_ne(sids[i], sids[j]);
	/* Fully: sort and compare neighbours. */
	for (int i = 1; i < NS; i++) {
		uint64_t v = sids[i];
		int j = i - 1;
		while (j >= 0 && sids[j] > v) {
			sids[j + 1] = sids[j];
			j--;
		}
		sids[j + 1] = v;
	}
	for (int i = 1; i < NS; i++)
		ck_assert_uint_ne(sids[i - 1], sids[i]);
	ck_assert_uint_eq(T.count, NS - (NS + 2) / 3);
}
END_TEST

START_TEST(test_get)
{
	struct session *v[100];
	for (int i = 0; i < 100; i++)
		v[i] = create("c", (uint32_t)(i % 4));
	for (int i = 0; i < 100; i++)
		ck_assert_ptr_eq(sessions_get(&T, v[i]->sid), v[i]);
	uint64_t gone = v[50]->sid;
	sessions_delete(&T, v[50]);
	ck_assert_ptr_null(sessions_get(&T, gone));
	ck_assert_ptr_eq(sessions_get(&T, v[51]->sid), v[51]);
	ck_assert_ptr_eq(sessions_get(&T, v[49]->sid), v[49]);
	ck_assert_ptr_null(sessions_get(&T, 0));
	ck_assert_ptr_null(sessions_get(&T, UINT64_MAX));
	ck_assert_uint_eq(T.count, 99);
}
END_TEST

START_TEST(test_partition_lists)
{
	ck_assert_ptr_null(sessions_in_partition(&T, 0));
	ck_assert_ptr_null(sessions_in_partition(&T, 100));
	struct session *a = create("a", 1);
	struct session *b = create("b", 2);
	struct session *c = create("c", 1);
	struct session *d = create("d", 1);
	struct session *e = create("e", 2);
	struct session *f = create("f", 1);
	EXPECT_PARTITION(1, a, c, d, f);
	EXPECT_PARTITION(2, b, e);
	ck_assert_ptr_null(sessions_in_partition(&T, 0));
	ck_assert_ptr_null(sessions_in_partition(&T, 3));
	ck_assert_ptr_null(sessions_in_partition(&T, UINT32_MAX));

	/* A far partition grows the table; the earlier lists stay intact. */
	struct session *g = create("g", 500);
	EXPECT_PARTITION(500, g);
	EXPECT_PARTITION(1, a, c, d, f);
	EXPECT_PARTITION(2, b, e);
	ck_assert_ptr_null(sessions_in_partition(&T, 499));
	ck_assert_ptr_null(sessions_in_partition(&T, 501));
}
END_TEST

/* Deletes the session at position pos (0 = head, -1 = tail, else the middle)
 * of partition p's list and returns it (dangling). */
static struct session *delete_at(uint32_t p, int pos)
{
	struct session *s = sessions_in_partition(&T, p);
	ck_assert_ptr_nonnull(s);
	if (pos < 0) {
		while (s->pnext)
			s = s->pnext;
	} else {
		for (int i = 0; i < pos; i++) {
			ck_assert_ptr_nonnull(s->pnext);
			s = s->pnext;
		}
	}
	sessions_delete(&T, s);
	return s;
}

START_TEST(test_partition_deletes)
{
	struct session *v[6];
	for (int i = 0; i < 6; i++)
		v[i] = create("x", 7);
	struct session *other = create("x", 8);

	/* Middle. */
	struct session *gone = delete_at(7, 2);
	struct session *left[6];
	int n = 0;
	for (int i = 0; i < 6; i++)
		if (v[i] != gone)
			left[n++] = v[i];
	ck_assert_int_eq(n, 5);
	expect_partition(7, left, 5);

	/* Head. */
	gone = delete_at(7, 0);
	n = 0;
	for (int i = 0; i < 5; i++)
		if (left[i] != gone)
			left[n++] = left[i];
	ck_assert_int_eq(n, 4);
	expect_partition(7, left, 4);

	/* Tail. */
	gone = delete_at(7, -1);
	n = 0;
	for (int i = 0; i < 4; i++)
		if (left[i] != gone)
			left[n++] = left[i];
	ck_assert_int_eq(n, 3);
	expect_partition(7, left, 3);
	EXPECT_PARTITION(8, other);

	/* New sessions join the remaining list. */
	struct session *nw = create("y", 7);
	left[n++] = nw;
	expect_partition(7, left, 4);

	/* All of them. */
	while (sessions_in_partition(&T, 7))
		delete_at(7, 0);
	ck_assert_ptr_null(sessions_in_partition(&T, 7));
	EXPECT_PARTITION(8, other);
	ck_assert_uint_eq(T.count, 1);
}
END_TEST

START_TEST(test_partition_single)
{
	struct session *a = create("a", 0);
	sessions_delete(&T, a);
	ck_assert_ptr_null(sessions_in_partition(&T, 0));
	struct session *b = create("b", 0);
	EXPECT_PARTITION(0, b);
}
END_TEST

START_TEST(test_for_client)
{
	struct session *a1 = create("alice", 0);
	struct session *a2 = create("alice", 5);
	struct session *other = create("alice2", 0);
	struct session *prefix = create("alic", 0);
	struct session *a3 = create("alice", 0);
	create("bob", 0);

	struct collected c = { .n = 0 };
	ck_assert_uint_eq(sessions_for_client(&T, "alice", 5, collect, &c), 3);
	ck_assert_int_eq(c.n, 3);
	ck_assert(collected_has(&c, a1));
	ck_assert(collected_has(&c, a2));
	ck_assert(collected_has(&c, a3));
	ck_assert(!collected_has(&c, other));
	ck_assert(!collected_has(&c, prefix));

	c.n = 0;
	ck_assert_uint_eq(sessions_for_client(&T, "alice2", 6, collect, &c), 1);
	ck_assert_ptr_eq(c.v[0], other);
	c.n = 0;
	ck_assert_uint_eq(sessions_for_client(&T, "alic", 4, collect, &c), 1);
	ck_assert_ptr_eq(c.v[0], prefix);
	c.n = 0;
	ck_assert_uint_eq(sessions_for_client(&T, "ali", 3, collect, &c), 0);
	ck_assert_uint_eq(sessions_for_client(&T, "alicex", 6, collect, &c), 0);
	ck_assert_uint_eq(sessions_for_client(&T, "nobody", 6, collect, &c), 0);
	ck_assert_int_eq(c.n, 0);

	/* "alice" given with a longer buffer: only idlen counts. */
	c.n = 0;
	ck_assert_uint_eq(sessions_for_client(&T, "alice2", 5, collect, &c), 3);

	sessions_delete(&T, a2);
	c.n = 0;
	ck_assert_uint_eq(sessions_for_client(&T, "alice", 5, collect, &c), 2);
	ck_assert(!collected_has(&c, a2));
}
END_TEST

START_TEST(test_for_client_many)
{
	/* Many clients so the table rehashes; each id still finds its own. */
	char id[32];
	for (int i = 0; i < 300; i++) {
		snprintf(id, sizeof id, "client-%d", i % 100);
		create(id, (uint32_t)i);
	}
	for (int k = 0; k < 100; k++) {
		snprintf(id, sizeof id, "client-%d", k);
		struct collected c = { .n = 0 };
		ck_assert_uint_eq(sessions_for_client(&T, id, strlen(id), collect, &c), 3);
		for (int i = 0; i < c.n; i++)
			ck_assert_str_eq(c.v[i]->id, id);
	}
}
END_TEST

static void delete_cb(struct session *s, void *arg)
{
	(*(int *)arg)++;
	sessions_delete(&T, s);
}

/* regression test: failed until sessions_for_client (router/sessions.c) survives fn deleting
 * the session it was given: it saves the next node before calling fn, but
 * sessions_delete -> hmap_remove may shrink the by_client map, and the rehash
 * reverses the chain, so the saved node's ->next no longer leads to the
 * client's remaining sessions. */
START_TEST(test_for_client_delete_in_fn)
{
	/* 65 sessions grow the maps to 128 buckets; deleting others down to 16
	 * puts them one delete away from shrinking. */
	struct session *others[62];
	char id[16];
	for (int i = 0; i < 3; i++)
		create("x", 0);
	for (int i = 0; i < 62; i++) {
		snprintf(id, sizeof id, "o%d", i);
		others[i] = create(id, 0);
	}
	for (int i = 0; i < 49; i++)
		sessions_delete(&T, others[i]);
	ck_assert_uint_eq(T.count, 16);

	int calls = 0;
	size_t n = sessions_for_client(&T, "x", 1, delete_cb, &calls);
	ck_assert_int_eq(calls, 3);
	ck_assert_uint_eq(n, 3);
	struct collected c = { .n = 0 };
	ck_assert_uint_eq(sessions_for_client(&T, "x", 1, collect, &c), 0);
	ck_assert_uint_eq(T.count, 13);
}
END_TEST

/* ---- state machine ---- */

START_TEST(test_pin)
{
	struct session *s = create("a", 0);
	ck_assert_int_eq(sessions_pin(s, 2), 0);
	ck_assert_int_eq(s->state, SESSION_SUBSCRIBING);
	ck_assert_int_eq(s->edge, 2);
	/* Not again from SUBSCRIBING. */
	ck_assert_int_eq(sessions_pin(s, 3), -1);
	ck_assert_int_eq(s->state, SESSION_SUBSCRIBING);
	ck_assert_int_eq(s->edge, 2);
	/* Nor from LIVE. */
	ck_assert_int_eq(sessions_acked(s, 0), 0);
	ck_assert_int_eq(sessions_pin(s, 3), -1);
	ck_assert_int_eq(s->state, SESSION_LIVE);
	ck_assert_int_eq(s->edge, 2);
	/* Nor from CLOSING. */
	sessions_close(s);
	ck_assert_int_eq(sessions_pin(s, 3), -1);
	ck_assert_int_eq(s->state, SESSION_CLOSING);
}
END_TEST

START_TEST(test_acked)
{
	struct session *s = create("a", 0);
	/* Not from WAITING. */
	ck_assert_int_eq(sessions_acked(s, 42), -1);
	ck_assert_int_eq(s->state, SESSION_WAITING);
	ck_assert_int_eq(s->next_offset, -1);

	ck_assert_int_eq(sessions_pin(s, 1), 0);
	ck_assert_int_eq(sessions_acked(s, 42), 0);
	ck_assert_int_eq(s->state, SESSION_LIVE);
	ck_assert_int_eq(s->next_offset, 42);
	ck_assert_int_eq(s->edge, 1);

	/* Not from LIVE. */
	ck_assert_int_eq(sessions_acked(s, 7), -1);
	ck_assert_int_eq(s->state, SESSION_LIVE);
	ck_assert_int_eq(s->next_offset, 42);

	/* Known position kept across unpin / pin / ack from a later start. */
	ck_assert_int_eq(sessions_offer(&T, s, 100, "x", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(s->next_offset, 101);
	ck_assert_int_eq(sessions_unpin(s), 0);
	ck_assert_int_eq(s->next_offset, 101);
	ck_assert_int_eq(sessions_pin(s, 2), 0);
	ck_assert_int_eq(sessions_acked(s, 500), 0);
	ck_assert_int_eq(s->next_offset, 101);
	ck_assert_int_eq(sessions_unpin(s), 0);
	ck_assert_int_eq(sessions_pin(s, 2), 0);
	ck_assert_int_eq(sessions_acked(s, 101), 0);
	ck_assert_int_eq(s->next_offset, 101);
	/* An edge that starts below the position: the position was past the
	 * partition's end; records from the start on are new, not duplicates. */
	ck_assert_int_eq(sessions_unpin(s), 0);
	ck_assert_int_eq(sessions_pin(s, 2), 0);
	ck_assert_int_eq(sessions_acked(s, 50), 0);
	ck_assert_int_eq(s->next_offset, 50);
	ck_assert_int_eq(sessions_offer(&T, s, 50, "y", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(s->next_offset, 51);

	/* Not from CLOSING. */
	sessions_close(s);
	ck_assert_int_eq(sessions_acked(s, 7), -1);
	ck_assert_int_eq(s->state, SESSION_CLOSING);
}
END_TEST

START_TEST(test_acked_unknown_start)
{
	/* No start offset (-1) and no position: the position stays unknown
	 * and the first record offered sets it. */
	struct session *s = create("a", 0);
	make_live(s, -1);
	ck_assert_int_eq(s->next_offset, -1);
	ck_assert_int_eq(sessions_offer(&T, s, 777, "x", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(s->next_offset, 778);
	ck_assert_int_eq(sessions_offer(&T, s, 777, "x", 1, BIG), SESSION_DUPLICATE);
}
END_TEST

START_TEST(test_unpin)
{
	struct session *s = create("a", 0);
	/* Not from WAITING. */
	ck_assert_int_eq(sessions_unpin(s), -1);
	ck_assert_int_eq(s->state, SESSION_WAITING);

	ck_assert_int_eq(sessions_pin(s, 3), 0);
	ck_assert_int_eq(sessions_unpin(s), 0);
	ck_assert_int_eq(s->state, SESSION_WAITING);
	ck_assert_int_eq(s->edge, -1);

	make_live(s, 5);
	ck_assert_int_eq(sessions_unpin(s), 0);
	ck_assert_int_eq(s->state, SESSION_WAITING);
	ck_assert_int_eq(s->edge, -1);
	ck_assert_int_eq(s->next_offset, 5);

	make_live(s, 5);
	sessions_close(s);
	ck_assert_int_eq(sessions_unpin(s), -1);
	ck_assert_int_eq(s->state, SESSION_CLOSING);
}
END_TEST

START_TEST(test_close_any_state)
{
	struct session *w = create("w", 0);
	struct session *sub = create("s", 0);
	struct session *l = create("l", 0);
	struct session *c = create("c", 0);
	ck_assert_int_eq(sessions_pin(sub, 0), 0);
	make_live(l, 0);
	ck_assert_int_eq(sessions_offer(&T, l, 0, "abc", 3, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_offer(&T, l, 1, "defg", 4, BIG), SESSION_QUEUED);
	sessions_close(c);

	struct session *all[] = { w, sub, l, c };
	for (int i = 0; i < 4; i++) {
		sessions_close(all[i]);
		ck_assert_int_eq(all[i]->state, SESSION_CLOSING);
		ck_assert_ptr_null(sessions_peek(all[i]));
		ck_assert_uint_eq(all[i]->qbytes, 0);
		ck_assert_uint_eq(all[i]->qcount, 0);
		/* Nothing more is queued. */
		ck_assert_int_eq(sessions_offer(&T, all[i], 100, "z", 1, BIG), SESSION_NOT_LIVE);
		ck_assert_ptr_null(sessions_peek(all[i]));
		ck_assert_uint_eq(all[i]->qcount, 0);
		/* Still in the table until deleted. */
		ck_assert_ptr_eq(sessions_get(&T, all[i]->sid), all[i]);
	}
}
END_TEST

START_TEST(test_state_names)
{
	const char *n[] = {
		sessions_state_name(SESSION_WAITING),
		sessions_state_name(SESSION_SUBSCRIBING),
		sessions_state_name(SESSION_LIVE),
		sessions_state_name(SESSION_CLOSING),
	};
	for (int i = 0; i < 4; i++) {
		ck_assert_ptr_nonnull(n[i]);
		ck_assert_uint_gt(strlen(n[i]), 0);
		for (int j = 0; j < i; j++)
			ck_assert_str_ne(n[i], n[j]);
	}
}
END_TEST

/* ---- offer and queue ---- */

START_TEST(test_offer_not_live)
{
	struct session *s = create("a", 0);
	ck_assert_int_eq(sessions_offer(&T, s, 0, "x", 1, BIG), SESSION_NOT_LIVE);
	ck_assert_int_eq(sessions_pin(s, 0), 0);
	ck_assert_int_eq(sessions_offer(&T, s, 0, "x", 1, BIG), SESSION_NOT_LIVE);
	ck_assert_ptr_null(sessions_peek(s));
	ck_assert_uint_eq(s->qcount, 0);
	ck_assert_uint_eq(s->qbytes, 0);
	ck_assert_int_eq(s->next_offset, -1);

	/* LIVE, then unpinned: not live any more, the queue stays. */
	ck_assert_int_eq(sessions_acked(s, 0), 0);
	ck_assert_int_eq(sessions_offer(&T, s, 0, "x", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_unpin(s), 0);
	ck_assert_int_eq(sessions_offer(&T, s, 1, "y", 1, BIG), SESSION_NOT_LIVE);
	ck_assert_uint_eq(s->qcount, 1);
	ck_assert_int_eq(s->next_offset, 1);
}
END_TEST

START_TEST(test_offer_position)
{
	struct session *s = create("a", 0);
	make_live(s, 10);
	ck_assert_int_eq(sessions_offer(&T, s, 9, "a", 1, BIG), SESSION_DUPLICATE);
	ck_assert_int_eq(sessions_offer(&T, s, 0, "a", 1, BIG), SESSION_DUPLICATE);
	ck_assert_int_eq(s->next_offset, 10);
	ck_assert_uint_eq(s->qcount, 0);

	ck_assert_int_eq(sessions_offer(&T, s, 10, "b", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(s->next_offset, 11);
	ck_assert_int_eq(sessions_offer(&T, s, 10, "b", 1, BIG), SESSION_DUPLICATE);
	/* A gap is fine (compacted or filtered offsets). */
	ck_assert_int_eq(sessions_offer(&T, s, 15, "c", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(s->next_offset, 16);
	ck_assert_int_eq(sessions_offer(&T, s, 12, "d", 1, BIG), SESSION_DUPLICATE);
	ck_assert_int_eq(sessions_offer(&T, s, 16, "e", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(s->next_offset, 17);
	ck_assert_uint_eq(s->qcount, 3);
	ck_assert_uint_eq(s->qbytes, 3 * cost(1));
}
END_TEST

START_TEST(test_offer_overflow)
{
	struct session *s = create("a", 0);
	make_live(s, 0);
	size_t max = cost(6) + cost(4); /* room for exactly 6 and 4 bytes */
	ck_assert_int_eq(sessions_offer(&T, s, 0, "123456", 6, max), SESSION_QUEUED);
	ck_assert_int_eq(sessions_offer(&T, s, 1, "12345", 5, max), SESSION_OVERFLOW);
	ck_assert_uint_eq(s->qcount, 1);
	ck_assert_uint_eq(s->qbytes, cost(6));
	ck_assert_int_eq(s->next_offset, 1);
	struct outmsg *m = sessions_peek(s);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->offset, 0);
	ck_assert_ptr_null(m->next);

	/* Exactly max fits. */
	ck_assert_int_eq(sessions_offer(&T, s, 1, "1234", 4, max), SESSION_QUEUED);
	ck_assert_uint_eq(s->qbytes, max);
	ck_assert_uint_eq(s->qcount, 2);
	ck_assert_int_eq(sessions_offer(&T, s, 2, "1", 1, max), SESSION_OVERFLOW);
	ck_assert_uint_eq(s->qbytes, max);
	ck_assert_uint_eq(s->qcount, 2);
	ck_assert_int_eq(s->next_offset, 2);

	/* After a pop there is room again; the refused offset is still wanted. */
	sessions_pop_free(s);
	ck_assert_uint_eq(s->qbytes, cost(4));
	ck_assert_int_eq(sessions_offer(&T, s, 2, "123456", 6, max), SESSION_QUEUED);
	ck_assert_uint_eq(s->qbytes, max);
}
END_TEST

START_TEST(test_offer_overflow_single)
{
	struct session *s = create("a", 0);
	make_live(s, 0);
	/* One record larger than max, on an empty queue. */
	ck_assert_int_eq(sessions_offer(&T, s, 0, "12345678901", 11, cost(10)), SESSION_OVERFLOW);
	ck_assert_ptr_null(sessions_peek(s));
	ck_assert_uint_eq(s->qcount, 0);
	ck_assert_uint_eq(s->qbytes, 0);
	ck_assert_int_eq(s->next_offset, 0);
}
END_TEST

START_TEST(test_offer_copies)
{
	struct session *s = create("a", 0);
	make_live(s, 0);
	ck_assert_int_eq(sessions_offer(&T, s, 3, "hello", 5, BIG), SESSION_QUEUED);
	struct outmsg *m = sessions_peek(s);
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->len, 5);
	ck_assert_int_eq(m->offset, 3);
	ck_assert_mem_eq(payload(m), "hello", 5);
	/* The payload is a copy. */
	char buf[4] = "abc";
	ck_assert_int_eq(sessions_offer(&T, s, 4, buf, 3, BIG), SESSION_QUEUED);
	memset(buf, 0, sizeof buf);
	ck_assert_mem_eq(payload(m->next), "abc", 3);
	ck_assert_uint_eq(s->qbytes, cost(5) + cost(3));
}
END_TEST

START_TEST(test_offer_empty)
{
	struct sessions t;
	sessions_init(&t);
	struct session *s = sessions_create(&t, "z", 1, 0, NULL);
	ck_assert_int_eq(sessions_pin(s, 0), 0);
	ck_assert_int_eq(sessions_acked(s, 0), 0);
	ck_assert_int_eq(sessions_offer(&t, s, 0, "payload", 7, BIG), SESSION_QUEUED);
	ck_assert_mem_eq(payload(sessions_peek(s)), "payload", 7);
	/* An empty record is still a message, with no buffer. */
	ck_assert_int_eq(sessions_offer_prefixed(&t, s, 1, -1, NULL, 0, NULL, BIG), SESSION_QUEUED);
	ck_assert_uint_eq(s->qcount, 2);
	ck_assert_uint_eq(sessions_peek(s)->next->len, 0);
	ck_assert_ptr_null(sessions_peek(s)->next->body);
	ck_assert_uint_eq(s->qbytes, cost(7) + sessions_msg_cost(0, NULL));
	sessions_free(&t);
}
END_TEST

START_TEST(test_queue_fifo)
{
	struct session *s = create("a", 0);
	make_live(s, 0);
	size_t total = 0;
	char data[64];
	for (int i = 0; i < 10; i++) {
		size_t len = (size_t)i * 3 + 1;
		memset(data, 'a' + i, len);
		ck_assert_int_eq(sessions_offer(&T, s, i, data, len, BIG), SESSION_QUEUED);
		total += cost(len);
		ck_assert_uint_eq(s->qbytes, total);
		ck_assert_uint_eq(s->qcount, (uint32_t)i + 1);
	}
	for (int i = 0; i < 10; i++) {
		struct outmsg *m = sessions_peek(s);
		ck_assert_ptr_nonnull(m);
		size_t len = (size_t)i * 3 + 1;
		ck_assert_int_eq(m->offset, i);
		ck_assert_uint_eq(m->len, len);
		ck_assert_int_eq(payload(m)[0], 'a' + i);
		ck_assert_int_eq(payload(m)[len - 1], 'a' + i);
		/* Peek does not consume. */
		ck_assert_ptr_eq(sessions_peek(s), m);
		sessions_pop_free(s);
		total -= cost(len);
		ck_assert_uint_eq(s->qbytes, total);
		ck_assert_uint_eq(s->qcount, (uint32_t)(9 - i));
	}
	ck_assert_ptr_null(sessions_peek(s));
	/* Pop on an empty queue is harmless. */
	sessions_pop_free(s);
	ck_assert_uint_eq(s->qcount, 0);
	ck_assert_uint_eq(s->qbytes, 0);

	/* The queue works again after being drained (the tail was reset). */
	ck_assert_int_eq(sessions_offer(&T, s, 20, "x", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_offer(&T, s, 21, "yy", 2, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_peek(s)->offset, 20);
	sessions_pop_free(s);
	ck_assert_int_eq(sessions_offer(&T, s, 22, "zzz", 3, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_peek(s)->offset, 21);
	sessions_pop_free(s);
	ck_assert_int_eq(sessions_peek(s)->offset, 22);
	ck_assert_uint_eq(s->qbytes, cost(3));
	ck_assert_uint_eq(s->qcount, 1);
	sessions_pop_free(s);
	ck_assert_ptr_null(sessions_peek(s));
	ck_assert_int_eq(sessions_offer(&T, s, 23, "w", 1, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_peek(s)->offset, 23);
	ck_assert_ptr_null(sessions_peek(s)->next);
}
END_TEST

START_TEST(test_queues_independent)
{
	struct session *a = create("a", 0);
	struct session *b = create("b", 0);
	make_live(a, 0);
	make_live(b, 0);
	ck_assert_int_eq(sessions_offer(&T, a, 0, "aa", 2, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_offer(&T, b, 0, "bbb", 3, BIG), SESSION_QUEUED);
	ck_assert_int_eq(sessions_offer(&T, a, 1, "a", 1, BIG), SESSION_QUEUED);
	ck_assert_uint_eq(a->qbytes, cost(2) + cost(1));
	ck_assert_uint_eq(b->qbytes, cost(3));
	ck_assert_uint_eq(a->qcount, 2);
	ck_assert_uint_eq(b->qcount, 1);
	sessions_close(a);
	ck_assert_uint_eq(b->qcount, 1);
	ck_assert_mem_eq(payload(sessions_peek(b)), "bbb", 3);
}
END_TEST

/* ---- lifetime ---- */

START_TEST(test_delete_with_queue)
{
	struct session *s = create("a", 0);
	make_live(s, 0);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(sessions_offer(&T, s, i, "data", 4, BIG), SESSION_QUEUED);
	uint64_t sid = s->sid;
	sessions_delete(&T, s);
	ck_assert_ptr_null(sessions_get(&T, sid));
	ck_assert_uint_eq(T.count, 0);
	struct collected c = { .n = 0 };
	ck_assert_uint_eq(sessions_for_client(&T, "a", 1, collect, &c), 0);
	ck_assert_int_eq(c.n, 0);
	ck_assert_ptr_null(sessions_in_partition(&T, 0));
	/* Valgrind / LeakSanitizer report the queue if it was not freed. */
}
END_TEST

START_TEST(test_free_populated)
{
	struct sessions t;
	sessions_init(&t);
	char id[16];
	for (int i = 0; i < 200; i++) {
		snprintf(id, sizeof id, "c%d", i % 30);
		struct session *s = sessions_create(&t, id, strlen(id), (uint32_t)(i % 9), NULL);
		if (i % 2) {
			ck_assert_int_eq(sessions_pin(s, 0), 0);
			ck_assert_int_eq(sessions_acked(s, 0), 0);
			for (int k = 0; k < i % 5; k++)
				ck_assert_int_eq(sessions_offer(&t, s, k, "payload", 7, BIG),
						 SESSION_QUEUED);
		}
	}
	ck_assert_uint_eq(t.count, 200);
	sessions_free(&t);
	ck_assert_uint_eq(t.count, 0);
	ck_assert_ptr_null(sessions_in_partition(&t, 0));
}
END_TEST

START_TEST(test_free_zeroed)
{
	struct sessions t;
	memset(&t, 0, sizeof t);
	sessions_free(&t);
	ck_assert_uint_eq(t.count, 0);
}
END_TEST

static Suite *sessions_suite(void)
{
	Suite *s = suite_create("sessions");
	TCase *table = tcase_create("table");
	TCase *state = tcase_create("state");
	TCase *queue = tcase_create("queue");
	TCase *life = tcase_create("lifetime");

	tcase_add_checked_fixture(table, setup, teardown);
	tcase_add_test(table, test_create);
	tcase_add_test(table, test_create_copies_id);
	tcase_add_test(table, test_unique_sids);
	tcase_add_test(table, test_get);
	tcase_add_test(table, test_partition_lists);
	tcase_add_test(table, test_partition_deletes);
	tcase_add_test(table, test_partition_single);
	tcase_add_test(table, test_for_client);
	tcase_add_test(table, test_for_client_many);
	tcase_add_test(table, test_for_client_delete_in_fn);
	suite_add_tcase(s, table);

	tcase_add_checked_fixture(state, setup, teardown);
	tcase_add_test(state, test_pin);
	tcase_add_test(state, test_acked);
	tcase_add_test(state, test_acked_unknown_start);
	tcase_add_test(state, test_unpin);
	tcase_add_test(state, test_close_any_state);
	tcase_add_test(state, test_state_names);
	suite_add_tcase(s, state);

	tcase_add_checked_fixture(queue, setup, teardown);
	tcase_add_test(queue, test_offer_not_live);
	tcase_add_test(queue, test_offer_position);
	tcase_add_test(queue, test_offer_overflow);
	tcase_add_test(queue, test_offer_overflow_single);
	tcase_add_test(queue, test_offer_copies);
	tcase_add_test(queue, test_offer_empty);
	tcase_add_test(queue, test_queue_fifo);
	tcase_add_test(queue, test_queues_independent);
	suite_add_tcase(s, queue);

	tcase_add_checked_fixture(life, setup, teardown);
	tcase_add_test(life, test_delete_with_queue);
	tcase_add_test(life, test_free_populated);
	tcase_add_test(life, test_free_zeroed);
	suite_add_tcase(s, life);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(sessions_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
