/* Unit tests for router/recbuf.c (the reference-counted record buffer) and
 * for session queues sharing one buffer (router/sessions.c): one copy per
 * record whatever the number of sessions, freed with its last reference,
 * each queue charged the whole buffer. Run under ASan/valgrind, a leak or a
 * use after free shows. */
#include "recbuf.h"
#include "sessions.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

START_TEST(test_new_copies)
{
	char data[] = "hello, world";
	struct recbuf *b = recbuf_new(data, 12);
	memset(data, 0, sizeof data);
	ck_assert_uint_eq(b->refs, 1);
	ck_assert_uint_eq(b->len, 12);
	ck_assert_mem_eq(b->data, "hello, world", 12);
	ck_assert_uint_eq(recbuf_cost(b), sizeof *b + 12);
	recbuf_unref(b);
}
END_TEST

START_TEST(test_refs)
{
	struct recbuf *b = recbuf_new("x", 1);
	ck_assert_ptr_eq(recbuf_ref(b), b);
	ck_assert_ptr_eq(recbuf_ref(b), b);
	ck_assert_uint_eq(b->refs, 3);
	recbuf_unref(b);
	recbuf_unref(b);
	ck_assert_uint_eq(b->refs, 1);
	ck_assert_mem_eq(b->data, "x", 1);
	recbuf_unref(b); /* freed: ASan/valgrind would see a leak otherwise */
	recbuf_unref(NULL);
}
END_TEST

START_TEST(test_empty)
{
	struct recbuf *b = recbuf_new(NULL, 0);
	ck_assert_uint_eq(b->len, 0);
	ck_assert(recbuf_utf8(b));
	recbuf_unref(b);
}
END_TEST

START_TEST(test_utf8_cached)
{
	struct recbuf *b = recbuf_new("caf\xc3\xa9", 5);
	ck_assert_int_eq(b->utf8, -1);
	ck_assert(recbuf_utf8(b));
	ck_assert_int_eq(b->utf8, 1);
	/* The answer is kept: asked again, the data is not looked at. */
	b->data[3] = 0xff;
	ck_assert(recbuf_utf8(b));
	recbuf_unref(b);
	b = recbuf_new("\xc3\x28", 2);
	ck_assert(!recbuf_utf8(b));
	ck_assert_int_eq(b->utf8, 0);
	recbuf_unref(b);
}
END_TEST

static struct session *live(struct sessions *t, const char *id)
{
	struct session *s = sessions_create(t, id, strlen(id), 0, NULL);
	ck_assert_int_eq(sessions_pin(s, 0), 0);
	ck_assert_int_eq(sessions_acked(s, 0), 0);
	return s;
}

START_TEST(test_shared_by_sessions)
{
	struct sessions t;
	sessions_init(&t);
	enum { N = 5 };
	struct session *s[N];
	for (int i = 0; i < N; i++)
		s[i] = live(&t, "same-key");
	char big[4096];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7);
	struct recbuf *b = recbuf_new(big, sizeof big);
	for (int i = 0; i < N; i++) {
		const char *pre = i % 2 ? "d 0 7\n" : NULL;
		size_t plen = pre ? 6 : 0;
		ck_assert_int_eq(sessions_offer_prefixed(&t, s[i], 7, 1234, pre, plen, b, 1u << 20),
				 SESSION_QUEUED);
		struct outmsg *m = sessions_peek(s[i]);
		/* The same memory, not a copy; the prefix is the session's. */
		ck_assert_ptr_eq(m->body, b);
		ck_assert_uint_eq(m->hlen, plen);
		ck_assert_uint_eq(m->len, plen + sizeof big);
		ck_assert_int_eq(m->timestamp_ms, 1234);
		if (pre)
			ck_assert_mem_eq(m->head, pre, plen);
		/* Each queue is charged the whole buffer. */
		ck_assert_uint_eq(s[i]->qbytes, sessions_msg_cost(plen, b));
		ck_assert_uint_ge(s[i]->qbytes, sizeof big + plen);
	}
	ck_assert_uint_eq(b->refs, N + 1);
	recbuf_unref(b); /* the receiver's reference */
	ck_assert_uint_eq(b->refs, N);
	/* Popped, closed, deleted: each drops its reference; the last frees. */
	sessions_pop_free(s[0]);
	ck_assert_uint_eq(b->refs, N - 1);
	ck_assert_uint_eq(s[0]->qbytes, 0);
	sessions_close(s[1]);
	ck_assert_uint_eq(b->refs, N - 2);
	sessions_delete(&t, s[2]);
	ck_assert_uint_eq(b->refs, N - 3);
	ck_assert_mem_eq(sessions_peek(s[3])->body->data, big, sizeof big);
	sessions_free(&t); /* frees s[3] and s[4]: the buffer goes with them */
}
END_TEST

START_TEST(test_refused_takes_no_reference)
{
	struct sessions t;
	sessions_init(&t);
	struct session *s = live(&t, "k");
	struct recbuf *b = recbuf_new("0123456789", 10);
	size_t one = sessions_msg_cost(0, b);
	ck_assert_int_eq(sessions_offer_prefixed(&t, s, 0, -1, NULL, 0, b, one), SESSION_QUEUED);
	/* The bound counts the shared buffer: a second one does not fit. */
	ck_assert_int_eq(sessions_offer_prefixed(&t, s, 1, -1, NULL, 0, b, one + 10),
			 SESSION_OVERFLOW);
	ck_assert_int_eq(sessions_offer_prefixed(&t, s, 0, -1, NULL, 0, b, 1u << 20),
			 SESSION_DUPLICATE);
	ck_assert_uint_eq(b->refs, 2);
	sessions_close(s);
	ck_assert_int_eq(sessions_offer_prefixed(&t, s, 5, -1, NULL, 0, b, 1u << 20),
			 SESSION_NOT_LIVE);
	ck_assert_uint_eq(b->refs, 1);
	recbuf_unref(b);
	sessions_free(&t);
}
END_TEST

START_TEST(test_push_inline)
{
	struct sessions t;
	sessions_init(&t);
	struct session *s = live(&t, "k");
	sessions_push(&t, s, "s live 0 5\n", 11);
	struct outmsg *m = sessions_peek(s);
	ck_assert_ptr_null(m->body);
	ck_assert_uint_eq(m->len, 11);
	ck_assert_uint_eq(m->hlen, 11);
	ck_assert_mem_eq(m->head, "s live 0 5\n", 11);
	ck_assert_uint_eq(s->qbytes, sessions_msg_cost(11, NULL));
	sessions_free(&t);
}
END_TEST

START_TEST(test_cut_head_survives_close)
{
	struct sessions t;
	sessions_init(&t);
	struct session *s = live(&t, "k");
	struct recbuf *b = recbuf_new("0123456789", 10);
	for (int64_t o = 0; o < 3; o++)
		ck_assert_int_eq(sessions_offer_prefixed(&t, s, o, -1, NULL, 0, b, 1u << 20),
				 SESSION_QUEUED);
	ck_assert_uint_eq(b->refs, 4);
	/* Nothing written yet: a close drops everything. */
	struct session *u = live(&t, "k");
	ck_assert_int_eq(sessions_offer_prefixed(&t, u, 0, -1, NULL, 0, b, 1u << 20),
			 SESSION_QUEUED);
	sessions_close(u);
	ck_assert_ptr_null(sessions_peek(u));
	ck_assert_uint_eq(u->qbytes, 0);
	ck_assert_uint_eq(b->refs, 4);
	/* A short write cut the oldest frame: a close keeps that one message
	 * (its frame must be finished), drops the rest, and refuses more. */
	s->qsent = 5;
	sessions_close(s);
	struct outmsg *m = sessions_peek(s);
	ck_assert_ptr_nonnull(m);
	ck_assert_int_eq(m->offset, 0);
	ck_assert_ptr_null(m->next);
	ck_assert_uint_eq(s->qcount, 1);
	ck_assert_uint_eq(s->qbytes, sessions_msg_cost(0, b));
	ck_assert_uint_eq(s->qsent, 5);
	ck_assert_uint_eq(b->refs, 2);
	ck_assert_int_eq(sessions_offer_prefixed(&t, s, 3, -1, NULL, 0, b, 1u << 20),
			 SESSION_NOT_LIVE);
	/* Its frame done: popped, the count cleared, the reference dropped. */
	sessions_pop_free(s);
	ck_assert_uint_eq(s->qsent, 0);
	ck_assert_ptr_null(sessions_peek(s));
	ck_assert_uint_eq(s->qbytes, 0);
	ck_assert_uint_eq(b->refs, 1);
	/* Deleting a session frees a cut message too. */
	struct session *v = live(&t, "k");
	ck_assert_int_eq(sessions_offer_prefixed(&t, v, 0, -1, NULL, 0, b, 1u << 20),
			 SESSION_QUEUED);
	v->qsent = 1;
	sessions_delete(&t, v);
	ck_assert_uint_eq(b->refs, 1);
	recbuf_unref(b);
	sessions_free(&t);
}
END_TEST

/* ---- values that point into a received frame ---- */

/* A frame's memory as the router gets it from chan_keep: released once. */
struct fake_mem {
	int released;
	size_t len;
	unsigned char bytes[1000];
};

static void fake_release(void *mem)
{
	struct fake_mem *fm = mem;
	fm->released++;
	memset(fm->bytes, 0xee, sizeof fm->bytes); /* a copy would still be right */
}

static void fake_fill(struct fake_mem *fm)
{
	memset(fm, 0, sizeof *fm);
	for (size_t i = 0; i < sizeof fm->bytes; i++)
		fm->bytes[i] = (unsigned char)(i * 13 + 1);
}

START_TEST(test_frame_points_not_copies)
{
	static struct fake_mem fm;
	fake_fill(&fm);
	struct recbuf_frame *f = recbuf_frame_new();
	struct recbuf *a = recbuf_in_frame(f, fm.bytes + 10, 300);
	struct recbuf *b = recbuf_in_frame(f, fm.bytes + 400, 300);
	ck_assert_ptr_eq(a->data, fm.bytes + 10);
	ck_assert_ptr_eq(b->data, fm.bytes + 400);
	ck_assert_uint_eq(f->live, 600);
	ck_assert_uint_eq(recbuf_cost(a), sizeof *a + 300); /* what a queue is charged */
	recbuf_frame_close(f, &fm, sizeof fm.bytes, fake_release);
	ck_assert_int_eq(fm.released, 0); /* 600 of 1000 bytes still wanted */
	recbuf_ref(a);
	recbuf_unref(a);
	ck_assert_int_eq(fm.released, 0);
	recbuf_unref(b); /* 300 of 1000: at least a quarter, kept */
	ck_assert_int_eq(fm.released, 0);
	ck_assert_ptr_eq(a->data, fm.bytes + 10);
	recbuf_unref(a); /* the last one: released */
	ck_assert_int_eq(fm.released, 1);
}
END_TEST

START_TEST(test_frame_compacted_below_a_quarter)
{
	/* A record still queued does not keep its whole frame: below a quarter
	 * of the frame's bytes, the rest get copies and the frame goes. */
	static struct fake_mem fm;
	fake_fill(&fm);
	unsigned char want[200];
	memcpy(want, fm.bytes + 800, sizeof want);
	struct recbuf_frame *f = recbuf_frame_new();
	struct recbuf *a = recbuf_in_frame(f, fm.bytes, 600);
	struct recbuf *b = recbuf_in_frame(f, fm.bytes + 800, 200);
	recbuf_utf8(b); /* the cached answer survives the move */
	int8_t utf8 = b->utf8;
	ck_assert_int_ge(utf8, 0);
	recbuf_frame_close(f, &fm, sizeof fm.bytes, fake_release);
	recbuf_unref(a); /* 200 of 1000 left: under a quarter */
	ck_assert_int_eq(fm.released, 1);
	ck_assert_ptr_ne(b->data, fm.bytes + 800);
	ck_assert_ptr_null(b->frame);
	ck_assert_mem_eq(b->data, want, sizeof want);
	ck_assert_int_eq(b->utf8, utf8);
	recbuf_ref(b);
	recbuf_unref(b);
	recbuf_unref(b); /* frees the copy: ASan/valgrind see a leak otherwise */
	ck_assert_int_eq(fm.released, 1);
}
END_TEST

START_TEST(test_frame_close_decides)
{
	static struct fake_mem fm;
	/* No recbuf lives at the close: released at once. */
	fake_fill(&fm);
	struct recbuf_frame *f = recbuf_frame_new();
	recbuf_unref(recbuf_in_frame(f, fm.bytes, 900)); /* open: not released yet */
	ck_assert_int_eq(fm.released, 0);
	recbuf_frame_close(f, &fm, sizeof fm.bytes, fake_release);
	ck_assert_int_eq(fm.released, 1);
	/* Too little lives at the close (the rest was fenced or not queued):
	 * copied at once. */
	fake_fill(&fm);
	f = recbuf_frame_new();
	struct recbuf *a = recbuf_in_frame(f, fm.bytes + 5, 100);
	unsigned char want[100];
	memcpy(want, fm.bytes + 5, sizeof want);
	recbuf_frame_close(f, &fm, sizeof fm.bytes, fake_release);
	ck_assert_int_eq(fm.released, 1);
	ck_assert_mem_eq(a->data, want, sizeof want);
	recbuf_unref(a);
	/* The memory could not be kept (NULL): copies at once, nothing points
	 * into memory the frame does not own. */
	fake_fill(&fm);
	f = recbuf_frame_new();
	a = recbuf_in_frame(f, fm.bytes, 900);
	memcpy(want, fm.bytes, sizeof want);
	recbuf_frame_close(f, NULL, 0, fake_release);
	ck_assert_ptr_null(a->frame);
	ck_assert_ptr_ne(a->data, fm.bytes);
	ck_assert_mem_eq(a->data, want, sizeof want);
	recbuf_unref(a);
	ck_assert_int_eq(fm.released, 0);
	/* No frame: the memory is released. */
	fake_fill(&fm);
	recbuf_frame_close(NULL, &fm, sizeof fm.bytes, fake_release);
	ck_assert_int_eq(fm.released, 1);
}
END_TEST

START_TEST(test_frame_shared_by_sessions)
{
	/* Sessions queue frame buffers as they queue copies: each queue is
	 * charged the value; the frame goes with the last queue that holds it. */
	static struct fake_mem fm;
	fake_fill(&fm);
	struct sessions t;
	sessions_init(&t);
	struct session *s = live(&t, "a"), *u = live(&t, "b");
	struct recbuf_frame *f = recbuf_frame_new();
	struct recbuf *b1 = recbuf_in_frame(f, fm.bytes, 500);
	struct recbuf *b2 = recbuf_in_frame(f, fm.bytes + 500, 500);
	ck_assert_int_eq(sessions_offer_prefixed(&t, s, 0, -1, NULL, 0, b1, 1u << 20),
			 SESSION_QUEUED);
	ck_assert_int_eq(sessions_offer_prefixed(&t, u, 0, -1, NULL, 0, b1, 1u << 20),
			 SESSION_QUEUED);
	ck_assert_int_eq(sessions_offer_prefixed(&t, u, 1, -1, NULL, 0, b2, 1u << 20),
			 SESSION_QUEUED);
	ck_assert_uint_eq(u->qbytes, 2 * sessions_msg_cost(0, b1));
	recbuf_unref(b1);
	recbuf_unref(b2);
	recbuf_frame_close(f, &fm, sizeof fm.bytes, fake_release);
	sessions_pop_free(s);
	ck_assert_int_eq(fm.released, 0); /* u still holds both */
	sessions_close(u);
	ck_assert_int_eq(fm.released, 1);
	sessions_free(&t);
}
END_TEST

static Suite *recbuf_suite(void)
{
	Suite *s = suite_create("recbuf");
	TCase *buf = tcase_create("buffer");
	TCase *shared = tcase_create("shared");
	tcase_add_test(buf, test_new_copies);
	tcase_add_test(buf, test_refs);
	tcase_add_test(buf, test_empty);
	tcase_add_test(buf, test_utf8_cached);
	tcase_add_test(shared, test_shared_by_sessions);
	tcase_add_test(shared, test_refused_takes_no_reference);
	tcase_add_test(shared, test_push_inline);
	tcase_add_test(shared, test_cut_head_survives_close);
	TCase *frame = tcase_create("frame");
	tcase_add_test(frame, test_frame_points_not_copies);
	tcase_add_test(frame, test_frame_compacted_below_a_quarter);
	tcase_add_test(frame, test_frame_close_decides);
	tcase_add_test(frame, test_frame_shared_by_sessions);
	suite_add_tcase(s, buf);
	suite_add_tcase(s, shared);
	suite_add_tcase(s, frame);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(recbuf_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
