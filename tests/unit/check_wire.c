/*
 * check_wire: unit tests of the wire codec (common/wire.c): a round trip of
 * every message type with edge values, the exact layout of a DELIVER batch,
 * and every kind of bad input (truncated, trailing bytes, wrong version,
 * unknown type, wrong or missing fields, over the limits, hostile counts),
 * and the authentication fields (CHALLENGE; HELLO's router_nonce and auth,
 * EDGE_HELLO's auth: optional, of fixed lengths).
 *
 * With WIRE_CORPUS_DIR=dir in the environment it also writes the fuzz seed
 * corpus (tests/fuzz/corpus/wire) into dir before running the tests.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "util.h"
#include "wire.h"

/* A pattern of every byte value, for long keys, names and values. */
#define PAT_BYTES (64u * 1024)
static char pat[PAT_BYTES];

static struct wire_bytes bytes(const void *p, size_t len)
{
	struct wire_bytes b = { p, (uint32_t)len };

	return b;
}

static struct wire_bytes str(const char *s)
{
	return bytes(s, strlen(s));
}

/*
 * Samples: valid messages of every type with edge values. The round-trip
 * tests encode each one and compare the decode with it; the truncation tests
 * and the corpus writer use them as raw material.
 */

static const uint64_t seqs[] = { 1, UINT64_MAX, 0, 1234567890123ull };
#define SEQ(i) seqs[(i) % (sizeof(seqs) / sizeof(seqs[0]))]

static struct wire_hello hellos[3];
static struct wire_edge_hello edge_hellos[3];
static struct wire_assignment assigns[3];
static struct wire_sub subs[4];
static struct wire_unsub unsubs[3];
static struct wire_sub_ack sub_acks[4];
static struct wire_up ups[3];
static struct wire_up_err up_errs[3];
static struct wire_flow flows[2];
static struct wire_resync resyncs[3];
/* Authentication samples (PROTOCOL.md, "Authentication"): after all others,
 * so that the seed corpus's older file names stay as they were. */
static struct wire_hello auth_hellos[4];
static struct wire_edge_hello auth_edge_hellos[3];
static struct wire_challenge challenges[2];
/* Nonces and proofs: 00..0f, 10..1f and the router and edge proofs of
 * PROTOCOL.md's example (any 32 bytes would do here: wire.c does not check
 * proofs; check_linkauth does). */
static char nonce_e[WIRE_NONCE_BYTES], nonce_r[WIRE_NONCE_BYTES];
static const char proof_r[WIRE_AUTH_BYTES] = {
	(char)0xb3, 0x7d,       (char)0xa0, 0x7d,       0x7e,       0x44,       0x38,
	0x27,       0x7d,       0x4e,       0x6f,       (char)0xe7, (char)0xeb, 0x6b,
	(char)0x97, 0x79,       0x66,       0x4d,       0x3d,       (char)0xa0, (char)0xd7,
	(char)0xbb, (char)0xa5, (char)0x9f, (char)0x98, (char)0x9d, 0x43,       (char)0x85,
	0x77,       (char)0xf0, 0x40,       (char)0xf7,
};
static const char proof_e[WIRE_AUTH_BYTES] = {
	(char)0x89, (char)0xfa, 0x7d, (char)0xb3, (char)0xa2, (char)0xfd, 0x5d,       0x3a,
	(char)0x8f, 0x59,       0x7e, (char)0xd3, 0x4d,       0x2b,       (char)0xaa, 0x01,
	(char)0xef, 0x61,       0x6b, 0x77,       (char)0x87, 0x6c,       0x71,       (char)0x98,
	(char)0xa2, (char)0xfe, 0x6e, 0x5e,       (char)0xa7, (char)0xcf, (char)0x86, (char)0xb1,
};
static const char ff[WIRE_AUTH_BYTES] = {
	[0 ... WIRE_AUTH_BYTES - 1] = (char)0xff,
};

static const uint32_t parts3[] = { 0, 1, WIRE_MAX_PARTITIONS - 1 };
static const uint32_t parts12[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
static const uint32_t parts2[] = { WIRE_MAX_PARTITIONS - 1, 0 };

/* One record of a DELIVER sample, with its sids. */
struct rec_sample {
	struct wire_record r;
	const uint64_t *sids;
	uint32_t nsids;
};

struct deliver_sample {
	uint32_t n;
	struct rec_sample *recs;
};

#define NDELIVERS 5
static struct deliver_sample delivers[NDELIVERS];
static uint64_t *many_sids; /* 10000 sids */
static const uint64_t some_sids[] = { 0, 1, UINT64_MAX, 1ull << 32, 127, 128 };

static struct wire_record record(uint32_t partition, int64_t offset, int64_t ts, const void *value,
				 size_t len, bool null)
{
	struct wire_record r = {
		.partition = partition,
		.offset = offset,
		.timestamp_ms = ts,
		.value = bytes(value, len),
		.value_null = null,
	};

	return r;
}

static void samples_init(void)
{
	struct rec_sample *rs;

	for (size_t i = 0; i < PAT_BYTES; i++)
		pat[i] = (char)(i * 7 + i / 256);

	hellos[0].router_id = bytes("", 0);
	hellos[1].router_id = str("router-1");
	hellos[2].router_id = bytes(pat, WIRE_MAX_NAME_BYTES);

	edge_hellos[0] = (struct wire_edge_hello){ str("edge-a"), false, { 0, 0, 0, NULL }, 1 };
	edge_hellos[1] = (struct wire_edge_hello){ bytes(pat, WIRE_MAX_NAME_BYTES),
						   true,
						   { UINT64_MAX, WIRE_MAX_PARTITIONS, 3, parts3 },
						   UINT64_MAX };
	edge_hellos[2] =
		(struct wire_edge_hello){ str("e"), true, { 7, 12, 12, parts12 }, 1ull << 32 };

	assigns[0] = (struct wire_assignment){ 0, 0, 0, NULL };
	assigns[1] = (struct wire_assignment){ 8, 12, 12, parts12 };
	assigns[2] = (struct wire_assignment){ UINT64_MAX, WIRE_MAX_PARTITIONS, 2, parts2 };

	subs[0] = (struct wire_sub){ 0, 0, str("k"), WIRE_OFFSET_LIVE };
	subs[1] = (struct wire_sub){ UINT64_MAX, WIRE_MAX_PARTITIONS - 1,
				     bytes(pat, WIRE_MAX_KEY_BYTES), INT64_MAX };
	subs[2] = (struct wire_sub){ 42, 5, str("client-42"), 0 };
	subs[3] = (struct wire_sub){ 1, 1, str("x"), INT64_MIN };

	unsubs[0].sid = 0;
	unsubs[1].sid = UINT64_MAX;
	unsubs[2].sid = 300;

	sub_acks[0] = (struct wire_sub_ack){ 1, WIRE_SUB_OK, -1, false };
	sub_acks[1] = (struct wire_sub_ack){ UINT64_MAX, WIRE_SUB_NOT_OWNER, INT64_MAX, true };
	sub_acks[2] = (struct wire_sub_ack){ 5, WIRE_SUB_BAD, 0, true };
	sub_acks[3] = (struct wire_sub_ack){ 6, UINT32_MAX, INT64_MIN, false };

	ups[0] = (struct wire_up){ 1, 0, str("k"), bytes("", 0), false };
	ups[1] = (struct wire_up){ UINT64_MAX, WIRE_MAX_PARTITIONS - 1,
				   bytes(pat, WIRE_MAX_KEY_BYTES), bytes(pat, PAT_BYTES), true };
	ups[2] = (struct wire_up){ 9, 3, str("user-9"), str("{\"hi\":1}"), true };

	up_errs[0] = (struct wire_up_err){ 1, WIRE_UP_DISABLED, bytes("", 0) };
	up_errs[1] =
		(struct wire_up_err){ UINT64_MAX, UINT32_MAX, bytes(pat, WIRE_MAX_NAME_BYTES) };
	up_errs[2] = (struct wire_up_err){ 4, WIRE_UP_FAILED, str("Broker: timed out") };

	flows[0] = (struct wire_flow){ 1, true };
	flows[1] = (struct wire_flow){ UINT64_MAX, false };

	resyncs[0].reason = bytes("", 0);
	resyncs[1].reason = str("gap: expected 5, got 7");
	resyncs[2].reason = bytes(pat, WIRE_MAX_NAME_BYTES);

	for (unsigned i = 0; i < WIRE_NONCE_BYTES; i++) {
		nonce_e[i] = (char)i;
		nonce_r[i] = (char)(16 + i);
	}
	/* both fields; the longest id; auth alone (the nonce goes as an empty
	 * bin); the nonce alone */
	auth_hellos[0] = (struct wire_hello){ str("r1"), bytes(nonce_r, WIRE_NONCE_BYTES),
					      bytes(proof_r, WIRE_AUTH_BYTES) };
	auth_hellos[1] =
		(struct wire_hello){ bytes(pat, WIRE_MAX_NAME_BYTES), bytes(ff, WIRE_NONCE_BYTES),
				     bytes(ff, WIRE_AUTH_BYTES) };
	auth_hellos[2] = (struct wire_hello){ bytes("", 0), bytes(NULL, 0),
					      bytes(proof_r, WIRE_AUTH_BYTES) };
	auth_hellos[3] = (struct wire_hello){ str("router-2"), bytes(nonce_e, WIRE_NONCE_BYTES),
					      bytes(NULL, 0) };
	auth_edge_hellos[0] = (struct wire_edge_hello){
		str("e1"), false, { 3, 4, 2, parts2 }, 1, bytes(proof_r, WIRE_AUTH_BYTES)
	};
	auth_edge_hellos[1] =
		(struct wire_edge_hello){ bytes(pat, WIRE_MAX_NAME_BYTES),
					  true,
					  { UINT64_MAX, WIRE_MAX_PARTITIONS, 3, parts3 },
					  UINT64_MAX,
					  bytes(ff, WIRE_AUTH_BYTES) };
	auth_edge_hellos[2] = (struct wire_edge_hello){
		bytes("", 0), true, { 0, 0, 0, NULL }, 0, bytes(pat, WIRE_AUTH_BYTES)
	};
	challenges[0].nonce = bytes(nonce_e, WIRE_NONCE_BYTES);
	challenges[1].nonce = bytes(ff, WIRE_NONCE_BYTES);

	many_sids = xmalloc(10000 * sizeof(*many_sids));
	for (uint32_t j = 0; j < 10000; j++)
		many_sids[j] = UINT64_MAX - j * 1000003ull;

	/* 0: no records. */
	delivers[0] = (struct deliver_sample){ 0, NULL };
	/* 1: one tombstone for no session. */
	rs = xcalloc(1, sizeof(*rs));
	rs[0] = (struct rec_sample){ record(0, 0, -1, NULL, 0, true), NULL, 0 };
	delivers[1] = (struct deliver_sample){ 1, rs };
	/* 2: a mixed batch. */
	rs = xcalloc(5, sizeof(*rs));
	rs[0] = (struct rec_sample){ record(3, 17, 1700000000000, "hello", 5, false), some_sids,
				     1 };
	rs[1] = (struct rec_sample){ record(3, 18, -1, "", 0, false), some_sids, 6 };
	rs[2] = (struct rec_sample){ record(WIRE_MAX_PARTITIONS - 1, INT64_MAX, INT64_MIN, NULL, 0,
					    true),
				     some_sids + 2, 2 };
	rs[3] = (struct rec_sample){ record(0, 0, 0, pat, 4096, false), some_sids + 5, 1 };
	rs[4] = (struct rec_sample){ record(7, 1, INT64_MAX, pat + 1, 300, false), NULL, 0 };
	delivers[2] = (struct deliver_sample){ 5, rs };
	/* 3: one record for 10000 sessions. */
	rs = xcalloc(1, sizeof(*rs));
	rs[0] = (struct rec_sample){ record(1, 99, 5, "v", 1, false), many_sids, 10000 };
	delivers[3] = (struct deliver_sample){ 1, rs };
	/* 4: a typical full batch: 64 records of 1 KiB. */
	rs = xcalloc(64, sizeof(*rs));
	for (uint32_t i = 0; i < 64; i++)
		rs[i] = (struct rec_sample){ record(i % 4, 1000 + i, 1700000000000 + i, pat + i,
						    1024, false),
					     some_sids + i % 6, 1 };
	delivers[4] = (struct deliver_sample){ 64, rs };
}

static void samples_free(void)
{
	for (int i = 0; i < NDELIVERS; i++)
		free(delivers[i].recs);
	free(many_sids);
}

static void enc_deliver(struct wire_buf *b, uint64_t seq, const struct deliver_sample *d)
{
	wire_enc_deliver_begin(b);
	for (uint32_t i = 0; i < d->n; i++)
		wire_enc_deliver_record(b, &d->recs[i].r, d->recs[i].sids, d->recs[i].nsids);
	wire_enc_deliver_end(b, seq);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Appends sample i (of all types, in order) to b; returns its type, or 0 when
 * i is past the last sample. */
static uint32_t encode_sample(struct wire_buf *b, size_t i)
{
	uint64_t seq = SEQ(i);

#define SAMPLES(arr, fn, type)               \
	do {                                 \
		if (i < N(arr)) {            \
			fn(b, seq, &arr[i]); \
			return type;         \
		}                            \
		i -= N(arr);                 \
	} while (0)
	SAMPLES(hellos, wire_enc_hello, WIRE_HELLO);
	SAMPLES(edge_hellos, wire_enc_edge_hello, WIRE_EDGE_HELLO);
	SAMPLES(assigns, wire_enc_assign, WIRE_ASSIGN);
	SAMPLES(subs, wire_enc_sub, WIRE_SUB);
	SAMPLES(unsubs, wire_enc_unsub, WIRE_UNSUB);
	SAMPLES(sub_acks, wire_enc_sub_ack, WIRE_SUB_ACK);
	SAMPLES(delivers, enc_deliver, WIRE_DELIVER);
	SAMPLES(ups, wire_enc_up, WIRE_UP);
	SAMPLES(up_errs, wire_enc_up_err, WIRE_UP_ERR);
	SAMPLES(flows, wire_enc_flow, WIRE_FLOW);
	SAMPLES(resyncs, wire_enc_resync, WIRE_RESYNC);
	SAMPLES(auth_hellos, wire_enc_hello, WIRE_HELLO);
	SAMPLES(auth_edge_hellos, wire_enc_edge_hello, WIRE_EDGE_HELLO);
	SAMPLES(challenges, wire_enc_challenge, WIRE_CHALLENGE);
#undef SAMPLES
	return 0;
}

#define NSAMPLES                                                                       \
	(N(hellos) + N(edge_hellos) + N(assigns) + N(subs) + N(unsubs) + N(sub_acks) + \
	 N(delivers) + N(ups) + N(up_errs) + N(flows) + N(resyncs) + N(auth_hellos) +  \
	 N(auth_edge_hellos) + N(challenges))

/* Helpers. */

static int decode(struct wire_msg *m, const void *p, size_t len)
{
	return wire_decode(m, p, len);
}

/* Decodes b, which must hold one valid message of the given type and seq. */
static void decode_ok(struct wire_msg *m, const struct wire_buf *b, uint32_t type, uint64_t seq)
{
	int err = decode(m, b->data, b->len);

	ck_assert_msg(err == 0, "decode: %s", wire_strerror(err));
	ck_assert_uint_eq(m->type, type);
	ck_assert_uint_eq(m->seq, seq);
}

/* Decodes p[0..len), which must fail with -want; m needs no freeing then. */
static void decode_err(const void *p, size_t len, int want)
{
	struct wire_msg m;
	int err = decode(&m, p, len);

	ck_assert_msg(err == want, "got %d (%s), want %d (%s)", err, wire_strerror(err), want,
		      wire_strerror(want));
	ck_assert_ptr_null(m.parts_);
	ck_assert_ptr_null(m.up_.zone);
}

/* A decoded byte string equals want and points into the input buffer. */
static void assert_bytes(const struct wire_bytes *got, const struct wire_bytes *want,
			 const struct wire_buf *in)
{
	ck_assert_uint_eq(got->len, want->len);
	if (want->len) {
		ck_assert(got->ptr >= in->data && got->ptr + got->len <= in->data + in->len);
		ck_assert_mem_eq(got->ptr, want->ptr, want->len);
	}
}

static void assert_assignment(const struct wire_assignment *got, const struct wire_assignment *want)
{
	ck_assert_uint_eq(got->epoch, want->epoch);
	ck_assert_uint_eq(got->partition_count, want->partition_count);
	ck_assert_uint_eq(got->count, want->count);
	for (uint32_t i = 0; i < want->count; i++)
		ck_assert_uint_eq(got->partitions[i], want->partitions[i]);
}

/* Round trips, one loop test per type over its samples. */

static void rt_hello_one(const struct wire_hello *h, uint64_t seq)
{
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_hello(&b, seq, h);
	decode_ok(&m, &b, WIRE_HELLO, seq);
	assert_bytes(&m.u.hello.router_id, &h->router_id, &b);
	assert_bytes(&m.u.hello.router_nonce, &h->router_nonce, &b);
	assert_bytes(&m.u.hello.auth, &h->auth, &b);
	wire_msg_free(&m);
	wire_buf_free(&b);
}

START_TEST(rt_hello)
{
	rt_hello_one(&hellos[_i], SEQ(_i));
}
END_TEST

START_TEST(rt_hello_auth)
{
	rt_hello_one(&auth_hellos[_i], SEQ(_i));
}
END_TEST

static void rt_edge_hello_one(const struct wire_edge_hello *h, uint64_t seq)
{
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_edge_hello(&b, seq, h);
	decode_ok(&m, &b, WIRE_EDGE_HELLO, seq);
	assert_bytes(&m.u.edge_hello.edge_id, &h->edge_id, &b);
	ck_assert(m.u.edge_hello.upstream == h->upstream);
	assert_assignment(&m.u.edge_hello.assign, &h->assign);
	ck_assert_uint_eq(m.u.edge_hello.hello_seq, h->hello_seq);
	assert_bytes(&m.u.edge_hello.auth, &h->auth, &b);
	wire_msg_free(&m);
	wire_buf_free(&b);
}

START_TEST(rt_edge_hello)
{
	rt_edge_hello_one(&edge_hellos[_i], SEQ(_i));
}
END_TEST

START_TEST(rt_edge_hello_auth)
{
	rt_edge_hello_one(&auth_edge_hellos[_i], SEQ(_i));
}
END_TEST

START_TEST(rt_challenge)
{
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_challenge(&b, SEQ(_i), &challenges[_i]);
	decode_ok(&m, &b, WIRE_CHALLENGE, SEQ(_i));
	assert_bytes(&m.u.challenge.nonce, &challenges[_i].nonce, &b);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_assign)
{
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_assign(&b, SEQ(_i), &assigns[_i]);
	decode_ok(&m, &b, WIRE_ASSIGN, SEQ(_i));
	assert_assignment(&m.u.assign, &assigns[_i]);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_assign_max)
{
	/* The largest assignment allowed: every partition id there is. */
	struct wire_assignment a = { 3, WIRE_MAX_PARTITIONS, WIRE_MAX_PARTITIONS, NULL };
	uint32_t *p = xmalloc(WIRE_MAX_PARTITIONS * sizeof(*p));
	struct wire_buf b;
	struct wire_msg m;

	for (uint32_t i = 0; i < WIRE_MAX_PARTITIONS; i++)
		p[i] = WIRE_MAX_PARTITIONS - 1 - i;
	a.partitions = p;
	wire_buf_init(&b);
	wire_enc_assign(&b, 2, &a);
	decode_ok(&m, &b, WIRE_ASSIGN, 2);
	assert_assignment(&m.u.assign, &a);
	wire_msg_free(&m);
	wire_buf_free(&b);
	free(p);
}
END_TEST

START_TEST(rt_sub)
{
	const struct wire_sub *s = &subs[_i];
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_sub(&b, SEQ(_i), s);
	decode_ok(&m, &b, WIRE_SUB, SEQ(_i));
	ck_assert_uint_eq(m.u.sub.sid, s->sid);
	ck_assert_uint_eq(m.u.sub.partition, s->partition);
	assert_bytes(&m.u.sub.key, &s->key, &b);
	ck_assert_int_eq(m.u.sub.from_offset, s->from_offset);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_unsub)
{
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_unsub(&b, SEQ(_i), &unsubs[_i]);
	decode_ok(&m, &b, WIRE_UNSUB, SEQ(_i));
	ck_assert_uint_eq(m.u.unsub.sid, unsubs[_i].sid);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_sub_ack)
{
	const struct wire_sub_ack *a = &sub_acks[_i];
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_sub_ack(&b, SEQ(_i), a);
	decode_ok(&m, &b, WIRE_SUB_ACK, SEQ(_i));
	ck_assert_uint_eq(m.u.sub_ack.sid, a->sid);
	ck_assert_uint_eq(m.u.sub_ack.status, a->status);
	ck_assert_int_eq(m.u.sub_ack.start_offset, a->start_offset);
	ck_assert(m.u.sub_ack.complete == a->complete);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_deliver)
{
	const struct deliver_sample *d = &delivers[_i];
	struct wire_record r;
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	enc_deliver(&b, SEQ(_i), d);
	ck_assert_uint_eq(wire_deliver_records(&b), d->n);
	decode_ok(&m, &b, WIRE_DELIVER, SEQ(_i));
	ck_assert_uint_eq(m.u.deliver.count, d->n);
	for (uint32_t i = 0; i < d->n; i++) {
		const struct rec_sample *want = &d->recs[i];

		memset(&r, 0xa5, sizeof(r));
		wire_deliver_get(&m, i, &r);
		ck_assert_uint_eq(r.partition, want->r.partition);
		ck_assert_int_eq(r.offset, want->r.offset);
		ck_assert_int_eq(r.timestamp_ms, want->r.timestamp_ms);
		ck_assert(r.value_null == want->r.value_null);
		assert_bytes(&r.value, &want->r.value, &b);
		ck_assert_uint_eq(r.nsids, want->nsids);
		for (uint32_t j = 0; j < want->nsids; j++)
			ck_assert_uint_eq(wire_record_sid(&r, j), want->sids[j]);
	}
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_up)
{
	const struct wire_up *u = &ups[_i];
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_up(&b, SEQ(_i), u);
	decode_ok(&m, &b, WIRE_UP, SEQ(_i));
	ck_assert_uint_eq(m.u.up.sid, u->sid);
	ck_assert_uint_eq(m.u.up.partition, u->partition);
	assert_bytes(&m.u.up.key, &u->key, &b);
	assert_bytes(&m.u.up.data, &u->data, &b);
	ck_assert(m.u.up.text == u->text);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_up_err)
{
	const struct wire_up_err *e = &up_errs[_i];
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_up_err(&b, SEQ(_i), e);
	decode_ok(&m, &b, WIRE_UP_ERR, SEQ(_i));
	ck_assert_uint_eq(m.u.up_err.sid, e->sid);
	ck_assert_uint_eq(m.u.up_err.code, e->code);
	assert_bytes(&m.u.up_err.reason, &e->reason, &b);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_flow)
{
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_flow(&b, SEQ(_i), &flows[_i]);
	decode_ok(&m, &b, WIRE_FLOW, SEQ(_i));
	ck_assert_uint_eq(m.u.flow.sid, flows[_i].sid);
	ck_assert(m.u.flow.paused == flows[_i].paused);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(rt_resync)
{
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	wire_enc_resync(&b, SEQ(_i), &resyncs[_i]);
	decode_ok(&m, &b, WIRE_RESYNC, SEQ(_i));
	assert_bytes(&m.u.resync.reason, &resyncs[_i].reason, &b);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

/* Encoding details. */

START_TEST(enc_layout)
{
	/* [1, 5, 1, 5]: the smallest encodings, byte for byte. */
	static const char unsub[] = { (char)0x94, 1, WIRE_UNSUB, 1, 5 };
	/* [1, 7, seq as uint64, records as array32 [[...]]] */
	static const char deliver[] = {
		(char)0x94, 1,          WIRE_DELIVER, (char)0xcf, 0x01,
		0x02,       0x03,       0x04,         0x05,       0x06,
		0x07,       0x08,       (char)0xdd,   0,          0,
		0,          1,          (char)0x95,   2,          3,
		(char)0xff, (char)0xc0, (char)0x91,   9,
	};
	/* [1, 2, 1, "e1", false, 3, 4, [0, 2], 7]: EDGE_HELLO answering the
	 * HELLO of seq 7 (the example in PROTOCOL.md) */
	static const char edge_hello[] = {
		(char)0x99, 1, WIRE_EDGE_HELLO, 1, (char)0xc4, 2, 'e', '1', (char)0xc2,
		3,          4, (char)0x92,      0, 2,          7,
	};
	/* HELLO, seq 1, "r1", without and with router_nonce 10..1f and auth
	 * (PROTOCOL.md, "Examples"); with auth only, the nonce is an empty bin */
	static const char hello[] = { (char)0x94, 1, WIRE_HELLO, 1, (char)0xc4, 2, 'r', '1' };
	static const char hello_auth_head[] = {
		(char)0x96, 1, WIRE_HELLO, 1, (char)0xc4, 2, 'r', '1', (char)0xc4, 16,
	};
	static const char hello_noncefree[] = {
		(char)0x96, 1,   WIRE_HELLO, 1, (char)0xc4, 2,
		'r',        '1', (char)0xc4, 0, (char)0xc4, 32,
	};
	/* CHALLENGE, seq 0, nonce 00..0f */
	static const char challenge[] = {
		(char)0x94, 1,          WIRE_CHALLENGE,
		0,          (char)0xc4, 16,
		0,          1,          2,
		3,          4,          5,
		6,          7,          8,
		9,          10,         11,
		12,         13,         14,
		15,
	};
	static const uint32_t parts[] = { 0, 2 };
	struct wire_edge_hello eh = { str("e1"), false, { 3, 4, 2, parts }, 7 };
	struct wire_hello h = { str("r1") };
	struct wire_challenge c = { bytes(nonce_e, WIRE_NONCE_BYTES) };
	struct wire_unsub u = { 5 };
	struct wire_record r = record(2, 3, -1, NULL, 0, true);
	uint64_t sid = 9;
	struct wire_buf b;

	wire_buf_init(&b);
	wire_enc_unsub(&b, 1, &u);
	ck_assert_uint_eq(b.len, sizeof(unsub));
	ck_assert_mem_eq(b.data, unsub, sizeof(unsub));

	wire_buf_reset(&b);
	wire_enc_edge_hello(&b, 1, &eh);
	ck_assert_uint_eq(b.len, sizeof(edge_hello));
	ck_assert_mem_eq(b.data, edge_hello, sizeof(edge_hello));
	/* with auth: one more field, a bin8 of 32 (PROTOCOL.md's example:
	 * answering HELLO 1, with the edge proof of its vectors) */
	eh.auth = bytes(proof_e, WIRE_AUTH_BYTES);
	eh.hello_seq = 1;
	wire_buf_reset(&b);
	wire_enc_edge_hello(&b, 1, &eh);
	ck_assert_uint_eq(b.len, sizeof(edge_hello) + 2 + WIRE_AUTH_BYTES);
	ck_assert_uint_eq((uint8_t)b.data[0], 0x9a);
	ck_assert_mem_eq(b.data + 1, edge_hello + 1, sizeof(edge_hello) - 2);
	ck_assert_mem_eq(b.data + sizeof(edge_hello) - 1, "\x01\xc4\x20", 3);
	ck_assert_mem_eq(b.data + sizeof(edge_hello) + 2, proof_e, WIRE_AUTH_BYTES);

	/* a HELLO without the authentication fields is the HELLO of before */
	wire_buf_reset(&b);
	wire_enc_hello(&b, 1, &h);
	ck_assert_uint_eq(b.len, sizeof(hello));
	ck_assert_mem_eq(b.data, hello, sizeof(hello));
	h.router_nonce = bytes(nonce_r, WIRE_NONCE_BYTES);
	h.auth = bytes(proof_r, WIRE_AUTH_BYTES);
	wire_buf_reset(&b);
	wire_enc_hello(&b, 1, &h);
	ck_assert_uint_eq(b.len, sizeof(hello_auth_head) + WIRE_NONCE_BYTES + 2 + WIRE_AUTH_BYTES);
	ck_assert_mem_eq(b.data, hello_auth_head, sizeof(hello_auth_head));
	ck_assert_mem_eq(b.data + sizeof(hello_auth_head), nonce_r, WIRE_NONCE_BYTES);
	ck_assert_mem_eq(b.data + sizeof(hello_auth_head) + WIRE_NONCE_BYTES, "\xc4\x20", 2);
	ck_assert_mem_eq(b.data + sizeof(hello_auth_head) + WIRE_NONCE_BYTES + 2, proof_r,
			 WIRE_AUTH_BYTES);
	h.router_nonce = bytes(NULL, 0);
	wire_buf_reset(&b);
	wire_enc_hello(&b, 1, &h);
	ck_assert_uint_eq(b.len, sizeof(hello_noncefree) + WIRE_AUTH_BYTES);
	ck_assert_mem_eq(b.data, hello_noncefree, sizeof(hello_noncefree));

	wire_buf_reset(&b);
	wire_enc_challenge(&b, 0, &c);
	ck_assert_uint_eq(b.len, sizeof(challenge));
	ck_assert_mem_eq(b.data, challenge, sizeof(challenge));

	wire_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	wire_enc_deliver_begin(&b);
	ck_assert_uint_eq(wire_deliver_records(&b), 0);
	wire_enc_deliver_record(&b, &r, &sid, 1);
	ck_assert_uint_eq(wire_deliver_records(&b), 1);
	wire_enc_deliver_end(&b, 0x0102030405060708ull);
	ck_assert_uint_eq(b.len, sizeof(deliver));
	ck_assert_mem_eq(b.data, deliver, sizeof(deliver));
	wire_buf_free(&b);
	wire_buf_free(&b); /* idempotent */
}
END_TEST

START_TEST(enc_append)
{
	/* Encoders append: a buffer holding two messages is not one message,
	 * but each part decodes, a DELIVER after a HELLO included. */
	struct wire_buf b;
	struct wire_msg m;
	size_t first;

	wire_buf_init(&b);
	wire_enc_hello(&b, 1, &hellos[1]);
	first = b.len;
	enc_deliver(&b, 2, &delivers[2]);
	decode_err(b.data, b.len, WIRE_ETRUNC);
	ck_assert_int_eq(decode(&m, b.data, first), 0);
	ck_assert_uint_eq(m.type, WIRE_HELLO);
	wire_msg_free(&m);
	ck_assert_int_eq(decode(&m, b.data + first, b.len - first), 0);
	ck_assert_uint_eq(m.type, WIRE_DELIVER);
	ck_assert_uint_eq(m.seq, 2);
	ck_assert_uint_eq(m.u.deliver.count, 5);
	wire_msg_free(&m);

	/* Reuse after reset keeps the memory. */
	wire_buf_reset(&b);
	ck_assert_ptr_nonnull(b.data);
	wire_enc_flow(&b, 3, &flows[0]);
	ck_assert_int_eq(decode(&m, b.data, b.len), 0);
	ck_assert_uint_eq(m.type, WIRE_FLOW);
	wire_msg_free(&m);
	wire_buf_free(&b);
}
END_TEST

START_TEST(msg_free_zeroed)
{
	struct wire_msg m;

	memset(&m, 0, sizeof(m));
	wire_msg_free(&m);
	wire_msg_free(&m);
}
END_TEST

START_TEST(strerror_all)
{
	for (int e = WIRE_OK; e >= WIRE_ELIMIT; e--) {
		ck_assert_ptr_nonnull(wire_strerror(e));
		ck_assert_str_eq(wire_strerror(e), wire_strerror(-e));
		for (int f = WIRE_OK; f > e; f--)
			ck_assert_str_ne(wire_strerror(e), wire_strerror(f));
	}
	ck_assert_ptr_nonnull(wire_strerror(99));
	ck_assert_ptr_nonnull(wire_strerror(-99));
	ck_assert_ptr_nonnull(wire_strerror(INT32_MIN));
}
END_TEST

/*
 * Hand-made messages: [1, type, 9, fields...] with each field given as raw
 * msgpack bytes, so that any field can be replaced by a wrong one.
 */

struct lit {
	const char *b;
	size_t n;
};
#define L(s)                     \
	{                        \
		s, sizeof(s) - 1 \
	}

enum kind {
	K_NAME, /* bin/str <= WIRE_MAX_NAME_BYTES */
	K_KEY,  /* bin/str of 1..WIRE_MAX_KEY_BYTES */
	K_DATA, /* bin/str */
	K_BOOL,
	K_U64,
	K_U32,
	K_PCOUNT, /* uint32 <= WIRE_MAX_PARTITIONS */
	K_PART,   /* uint32 < WIRE_MAX_PARTITIONS */
	K_I64,
	K_PARTS, /* array of K_PART */
	K_RECORDS,
	K_NONCE,  /* bin/str of exactly WIRE_NONCE_BYTES */
	K_ONONCE, /* optional: bin/str of 0 or WIRE_NONCE_BYTES */
	K_AUTH,   /* optional: bin/str of 0 or WIRE_AUTH_BYTES */
	NKINDS
};

/* A type's fields: n required ones, then opt optional appended ones. */
struct layout {
	uint32_t type;
	unsigned n;
	enum kind k[7];
	unsigned opt;
};

/* All the fields a layout knows of. */
#define ALL(l) ((l)->n + (l)->opt)

static const struct layout layouts[] = {
	{ WIRE_HELLO, 1, { K_NAME, K_ONONCE, K_AUTH }, 2 },
	{ WIRE_EDGE_HELLO, 6, { K_NAME, K_BOOL, K_U64, K_PCOUNT, K_PARTS, K_U64, K_AUTH }, 1 },
	{ WIRE_ASSIGN, 3, { K_U64, K_PCOUNT, K_PARTS } },
	{ WIRE_SUB, 4, { K_U64, K_PART, K_KEY, K_I64 } },
	{ WIRE_UNSUB, 1, { K_U64 } },
	{ WIRE_SUB_ACK, 4, { K_U64, K_U32, K_I64, K_BOOL } },
	{ WIRE_DELIVER, 1, { K_RECORDS } },
	{ WIRE_UP, 5, { K_U64, K_PART, K_KEY, K_DATA, K_BOOL } },
	{ WIRE_UP_ERR, 3, { K_U64, K_U32, K_NAME } },
	{ WIRE_FLOW, 2, { K_U64, K_BOOL } },
	{ WIRE_RESYNC, 1, { K_NAME } },
	{ WIRE_CHALLENGE, 1, { K_NONCE } },
};

/* A valid value of each kind, in unusual but allowed encodings (str for bin,
 * wide or signed integer formats for small values). */
static const struct lit valid_val[NKINDS] = {
	[K_NAME] = L("\xa6"
		     "router"),
	[K_KEY] = L("\xd9\x03"
		    "key"),
	[K_DATA] = L("\xc4\x00"),
	[K_BOOL] = L("\xc3"),
	[K_U64] = L("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"),
	[K_U32] = L("\xce\xff\xff\xff\xff"),
	[K_PCOUNT] = L("\xd1\x01\x00"),                        /* int16 256 */
	[K_PART] = L("\xd0\x05"),                              /* int8 5 */
	[K_I64] = L("\xd3\x80\x00\x00\x00\x00\x00\x00\x00"),   /* INT64_MIN */
	[K_PARTS] = L("\x93\x00\xcc\x05\xce\x00\x01\x86\x9f"), /* [0, 5, 99999] */
	/* [[0, 0, -1, nil, []], [1, INT64_MAX, 0, bin "v", [1, 2]]] */
	[K_RECORDS] = L("\x92\x95\x00\x00\xff\xc0\x90"
			"\x95\x01\xd3\x7f\xff\xff\xff\xff\xff\xff\xff\x00\xc4\x01"
			"v"
			"\x92\x01\x02"),
	/* str8 of 16, str of 16, bin16 of 32 */
	[K_NONCE] = L("\xd9\x10"
		      "0123456789abcdef"),
	[K_ONONCE] = L("\xb0"
		       "fedcba9876543210"),
	[K_AUTH] = L("\xc5\x00\x20"
		     "0123456789abcdef0123456789ABCDEF"),
};

/* msgpack value classes, and which ones each kind accepts. */
enum {
	C_NIL = 1 << 0,
	C_MAP = 1 << 1,
	C_FLOAT = 1 << 2,
	C_EXT = 1 << 3,
	C_ARRAY = 1 << 4,
	C_BOOL = 1 << 5,
	C_UINT = 1 << 6,
	C_NINT = 1 << 7,
	C_STR = 1 << 8,
	C_BIN = 1 << 9,
};

static const unsigned accepts[NKINDS] = {
	[K_NAME] = C_STR | C_BIN,   [K_KEY] = C_STR | C_BIN,  [K_DATA] = C_STR | C_BIN,
	[K_BOOL] = C_BOOL,          [K_U64] = C_UINT,         [K_U32] = C_UINT,
	[K_PCOUNT] = C_UINT,        [K_PART] = C_UINT,        [K_I64] = C_UINT | C_NINT,
	[K_PARTS] = C_ARRAY,        [K_RECORDS] = C_ARRAY,    [K_NONCE] = C_STR | C_BIN,
	[K_ONONCE] = C_STR | C_BIN, [K_AUTH] = C_STR | C_BIN,
};

/* One value of each class; wrong for every kind that does not accept it. */
static const struct {
	struct lit v;
	unsigned cls;
} class_vals[] = {
	{ L("\xc0"), C_NIL },
	{ L("\x80"), C_MAP },
	{ L("\x81\x01\x02"), C_MAP },
	{ L("\xca\x3f\xc0\x00\x00"), C_FLOAT },
	{ L("\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"), C_FLOAT },
	{ L("\xd4\x01\x00"), C_EXT },
	{ L("\xc7\x02\x05"
	    "ab"),
	  C_EXT },
	{ L("\x91\x01"), C_ARRAY },
	{ L("\xc2"), C_BOOL },
	{ L("\x07"), C_UINT },
	{ L("\xff"), C_NINT },
	{ L("\xd3\xff\xff\xff\xff\xff\xff\xff\xfe"), C_NINT },
	{ L("\xa1"
	    "x"),
	  C_STR },
	{ L("\xc4\x01"
	    "x"),
	  C_BIN },
};

/* Wrong values of the right class for one kind, and the error they give. */
static const struct {
	enum kind k;
	struct lit v;
	int err;
} kind_wrongs[] = {
	{ K_KEY, L("\xc4\x00"), WIRE_EMALFORMED }, /* empty key */
	{ K_KEY, L("\xa0"), WIRE_EMALFORMED },
	{ K_U32, L("\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), WIRE_EMALFORMED }, /* 2^32 */
	{ K_PCOUNT, L("\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), WIRE_EMALFORMED },
	{ K_PCOUNT, L("\xce\x00\x01\x86\xa1"), WIRE_ELIMIT }, /* 100001 */
	{ K_PART, L("\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), WIRE_EMALFORMED },
	{ K_PART, L("\xce\x00\x01\x86\xa0"), WIRE_ELIMIT }, /* 100000 */
	{ K_PART, L("\xce\xff\xff\xff\xff"), WIRE_ELIMIT },
	{ K_I64, L("\xcf\x80\x00\x00\x00\x00\x00\x00\x00"), WIRE_EMALFORMED }, /* 2^63 */
	{ K_I64, L("\xcf\xff\xff\xff\xff\xff\xff\xff\xff"), WIRE_EMALFORMED },
	{ K_PARTS,
	  L("\x91\xa1"
	    "x"),
	  WIRE_EMALFORMED },
	{ K_PARTS, L("\x92\x00\xff"), WIRE_EMALFORMED },
	{ K_PARTS, L("\x91\xc0"), WIRE_EMALFORMED },
	{ K_PARTS, L("\x92\x01\xce\x00\x01\x86\xa0"), WIRE_ELIMIT },
	{ K_PARTS, L("\x91\xcf\x00\x00\x00\x01\x00\x00\x00\x00"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x01"), WIRE_EMALFORMED }, /* not an array */
	{ K_RECORDS, L("\x91\x80"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x94\x00\x00\x00\xc0"), WIRE_EMALFORMED }, /* 4 fields */
	{ K_RECORDS, L("\x91\x90"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\xff\x00\x00\xc0\x90"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\xce\x00\x01\x86\xa0\x00\x00\xc0\x90"), WIRE_ELIMIT },
	{ K_RECORDS, L("\x91\x95\x00\xc0\x00\xc0\x90"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\x00\xcf\x80\x00\x00\x00\x00\x00\x00\x00\x00\xc0\x90"),
	  WIRE_EMALFORMED },
	{ K_RECORDS,
	  L("\x91\x95\x00\x00\xa1"
	    "1"
	    "\xc0\x90"),
	  WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\x00\x00\x00\xc3\x90"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\x00\x00\x00\x00\x90"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\x00\x00\x00\x80\x90"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\x00\x00\x00\xc0\x05"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\x00\x00\x00\xc0\xc0"), WIRE_EMALFORMED },
	{ K_RECORDS, L("\x91\x95\x00\x00\x00\xc0\x92\x01\xff"), WIRE_EMALFORMED },
	{ K_RECORDS,
	  L("\x91\x95\x00\x00\x00\xc0\x91\xa1"
	    "1"),
	  WIRE_EMALFORMED },
	/* a good record, then a bad one: every record is checked */
	{ K_RECORDS, L("\x92\x95\x00\x00\x00\xc0\x90\x95\x00\x00\x00\xc0\x91\xc2"),
	  WIRE_EMALFORMED },
	/* authentication fields of another length: malformed (not a limit) */
	{ K_NONCE, L("\xc4\x00"), WIRE_EMALFORMED }, /* CHALLENGE needs one */
	{ K_NONCE,
	  L("\xc4\x0f"
	    "0123456789abcde"),
	  WIRE_EMALFORMED },
	{ K_NONCE,
	  L("\xc4\x11"
	    "0123456789abcdef0"),
	  WIRE_EMALFORMED },
	{ K_NONCE,
	  L("\xc4\x20"
	    "0123456789abcdef0123456789abcdef"),
	  WIRE_EMALFORMED },
	{ K_ONONCE,
	  L("\xc4\x01"
	    "0"),
	  WIRE_EMALFORMED },
	{ K_ONONCE,
	  L("\xc4\x0f"
	    "0123456789abcde"),
	  WIRE_EMALFORMED },
	{ K_ONONCE,
	  L("\xb1"
	    "0123456789abcdef0"),
	  WIRE_EMALFORMED },
	{ K_ONONCE,
	  L("\xc4\x20"
	    "0123456789abcdef0123456789abcdef"),
	  WIRE_EMALFORMED },
	{ K_AUTH,
	  L("\xc4\x01"
	    "0"),
	  WIRE_EMALFORMED },
	{ K_AUTH,
	  L("\xc4\x10"
	    "0123456789abcdef"),
	  WIRE_EMALFORMED },
	{ K_AUTH,
	  L("\xc4\x1f"
	    "0123456789abcdef0123456789abcde"),
	  WIRE_EMALFORMED },
	{ K_AUTH,
	  L("\xd9\x21"
	    "0123456789abcdef0123456789abcdef0"),
	  WIRE_EMALFORMED },
	{ K_AUTH,
	  L("\xc4\x40"
	    "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef"),
	  WIRE_EMALFORMED },
};

/* Appends raw bytes to b. */
static void put(struct wire_buf *b, const void *p, size_t n)
{
	if (b->cap - b->len < n) {
		b->cap = (b->len + n) * 2;
		b->data = xrealloc(b->data, b->cap);
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_lit(struct wire_buf *b, const struct lit *l)
{
	put(b, l->b, l->n);
}

/*
 * Builds into b (reset first) the message of layout l with its first nfields
 * fields, field `bad` (if < nfields) replaced by *with, and then nextra extra
 * fields whose raw bytes are *extra.
 */
static void build(struct wire_buf *b, const struct layout *l, unsigned nfields, unsigned bad,
		  const struct lit *with, unsigned nextra, const struct lit *extra)
{
	char env[4] = { (char)(0x90 | (3 + nfields + nextra)), 1, (char)l->type, 9 };

	wire_buf_reset(b);
	put(b, env, sizeof(env));
	for (unsigned f = 0; f < nfields; f++)
		put_lit(b, f == bad ? with : &valid_val[l->k[f]]);
	if (nextra)
		put_lit(b, extra);
}

START_TEST(hand_valid)
{
	/* Every field in an unusual encoding, with and without extra fields. */
	const struct layout *l = &layouts[_i];
	/* nil; {"k": [[], 0.0]} (depth 4 with the envelope); "z" */
	static const struct lit extra = L("\xc0"
					  "\x81\xa1"
					  "k"
					  "\x92\x90\xcb\x00\x00\x00\x00\x00\x00\x00\x00"
					  "\xa1"
					  "z");
	struct wire_buf b;
	struct wire_msg m;
	int err;

	wire_buf_init(&b);
	for (unsigned nextra = 0; nextra <= 3; nextra += 3) {
		build(&b, l, ALL(l), UINT32_MAX, NULL, nextra, &extra);
		err = decode(&m, b.data, b.len);
		ck_assert_msg(err == 0, "type %u: %s", l->type, wire_strerror(err));
		ck_assert_uint_eq(m.type, l->type);
		ck_assert_uint_eq(m.seq, 9);
		switch (l->type) {
		case WIRE_HELLO:
			ck_assert_uint_eq(m.u.hello.router_id.len, 6);
			ck_assert_mem_eq(m.u.hello.router_id.ptr, "router", 6);
			ck_assert_uint_eq(m.u.hello.router_nonce.len, WIRE_NONCE_BYTES);
			ck_assert_mem_eq(m.u.hello.router_nonce.ptr, "fedcba9876543210", 16);
			ck_assert_uint_eq(m.u.hello.auth.len, WIRE_AUTH_BYTES);
			ck_assert_mem_eq(m.u.hello.auth.ptr, "0123456789abcdef0123456789ABCDEF",
					 32);
			break;
		case WIRE_CHALLENGE:
			ck_assert_uint_eq(m.u.challenge.nonce.len, WIRE_NONCE_BYTES);
			ck_assert_mem_eq(m.u.challenge.nonce.ptr, "0123456789abcdef", 16);
			break;
		case WIRE_EDGE_HELLO:
			ck_assert_uint_eq(m.u.edge_hello.assign.partition_count, 256);
			ck_assert_uint_eq(m.u.edge_hello.assign.count, 3);
			ck_assert_uint_eq(m.u.edge_hello.assign.partitions[2], 99999);
			ck_assert(m.u.edge_hello.upstream);
			ck_assert_uint_eq(m.u.edge_hello.assign.epoch, UINT64_MAX);
			ck_assert_uint_eq(m.u.edge_hello.hello_seq, UINT64_MAX);
			ck_assert_uint_eq(m.u.edge_hello.auth.len, WIRE_AUTH_BYTES);
			break;
		case WIRE_SUB:
			ck_assert_uint_eq(m.u.sub.partition, 5);
			ck_assert_uint_eq(m.u.sub.key.len, 3);
			ck_assert_int_eq(m.u.sub.from_offset, INT64_MIN);
			break;
		case WIRE_SUB_ACK:
			ck_assert_uint_eq(m.u.sub_ack.status, UINT32_MAX);
			break;
		case WIRE_DELIVER: {
			struct wire_record r;

			ck_assert_uint_eq(m.u.deliver.count, 2);
			wire_deliver_get(&m, 0, &r);
			ck_assert(r.value_null);
			ck_assert_uint_eq(r.value.len, 0);
			ck_assert_int_eq(r.timestamp_ms, -1);
			ck_assert_uint_eq(r.nsids, 0);
			wire_deliver_get(&m, 1, &r);
			ck_assert(!r.value_null);
			ck_assert_int_eq(r.offset, INT64_MAX);
			ck_assert_uint_eq(r.nsids, 2);
			ck_assert_uint_eq(wire_record_sid(&r, 1), 2);
			break;
		}
		}
		wire_msg_free(&m);
	}
	wire_buf_free(&b);
}
END_TEST

START_TEST(record_extra_fields)
{
	/* A record with fields appended (a later minor revision) still reads. */
	static const char msg[] = "\x94\x01\x07\x01\x91\x97\x02\x03\x04\xc4\x01"
				  "v"
				  "\x91\x05\xc0\x80";
	struct wire_record r;
	struct wire_msg m;

	ck_assert_int_eq(decode(&m, msg, sizeof(msg) - 1), 0);
	ck_assert_uint_eq(m.u.deliver.count, 1);
	wire_deliver_get(&m, 0, &r);
	ck_assert_uint_eq(r.partition, 2);
	ck_assert_int_eq(r.offset, 3);
	ck_assert_int_eq(r.timestamp_ms, 4);
	ck_assert_uint_eq(r.value.len, 1);
	ck_assert_uint_eq(r.nsids, 1);
	ck_assert_uint_eq(wire_record_sid(&r, 0), 5);
	wire_msg_free(&m);
}
END_TEST

START_TEST(edge_hello_seq_required)
{
	/* hello_seq is required although it was appended (no release had
	 * EDGE_HELLO without it): the 5-field form is malformed, and so is a
	 * hello_seq that is not a uint64. */
	static const struct {
		struct lit v;
		int err;
	} cases[] = {
		{ L("\x98\x01\x02\x01\xc4\x02"
		    "e1"
		    "\xc2\x03\x04\x92\x00\x02"),
		  WIRE_EMALFORMED },
		{ L("\x99\x01\x02\x01\xc4\x02"
		    "e1"
		    "\xc2\x03\x04\x92\x00\x02\xc0"),
		  WIRE_EMALFORMED },
		{ L("\x99\x01\x02\x01\xc4\x02"
		    "e1"
		    "\xc2\x03\x04\x92\x00\x02\xff"),
		  WIRE_EMALFORMED },
		{ L("\x99\x01\x02\x01\xc4\x02"
		    "e1"
		    "\xc2\x03\x04\x92\x00\x02\xa1"
		    "7"),
		  WIRE_EMALFORMED },
		{ L("\x99\x01\x02\x01\xc4\x02"
		    "e1"
		    "\xc2\x03\x04\x92\x00\x02\xc3"),
		  WIRE_EMALFORMED },
	};
	static const struct lit ok = L("\x9b\x01\x02\x01\xc4\x02"
				       "e1"
				       "\xc2\x03\x04\x92\x00\x02"
				       "\xcf\x00\x00\x00\x00\x00\x00\x00\x07"
				       "\xc4\x00"
				       "\xc0");
	struct wire_msg m;

	for (size_t i = 0; i < N(cases); i++)
		decode_err(cases[i].v.b, cases[i].v.n, cases[i].err);
	/* a wide uint64, and an extra field after it (and after the optional
	 * auth, here empty), are fine */
	ck_assert_int_eq(decode(&m, ok.b, ok.n), 0);
	ck_assert_uint_eq(m.u.edge_hello.hello_seq, 7);
	ck_assert_uint_eq(m.u.edge_hello.assign.count, 2);
	wire_msg_free(&m);
}
END_TEST

START_TEST(auth_fields)
{
	/* The authentication fields: CHALLENGE's nonce is exactly 16 bytes;
	 * HELLO's router_nonce (0 or 16), HELLO's and EDGE_HELLO's auth (0 or
	 * 32) are optional, absent meaning length 0. Every other length, as
	 * each encoder writes it, is malformed. */
	static const struct lit absent[] = {
		L("\x94\x01\x01\x09\xc4\x02"
		  "r1"), /* no field */
		L("\x96\x01\x01\x09\xc4\x02"
		  "r1"
		  "\xc4\x00\xc4\x00"), /* both empty */
		L("\x97\x01\x01\x09\xc4\x02"
		  "r1"
		  "\xa0\xa0\xc0"), /* + an extra */
	};
	static const struct lit nonce_only = L("\x95\x01\x01\x09\xc4\x02"
					       "r1"
					       "\xc4\x10"
					       "0123456789abcdef");
	static const struct lit eh_empty = L("\x9a\x01\x02\x01\xc4\x02"
					     "e1"
					     "\xc2\x03\x04\x92\x00\x02\x07\xc4\x00");
	char buf[WIRE_AUTH_BYTES + 8];
	struct wire_buf b;
	struct wire_msg m;

	for (size_t i = 0; i < N(absent); i++) {
		ck_assert_int_eq(decode(&m, absent[i].b, absent[i].n), 0);
		ck_assert_uint_eq(m.u.hello.router_id.len, 2);
		ck_assert_uint_eq(m.u.hello.router_nonce.len, 0);
		ck_assert_uint_eq(m.u.hello.auth.len, 0);
		wire_msg_free(&m);
	}
	ck_assert_int_eq(decode(&m, nonce_only.b, nonce_only.n), 0);
	ck_assert_uint_eq(m.u.hello.router_nonce.len, WIRE_NONCE_BYTES);
	ck_assert_uint_eq(m.u.hello.auth.len, 0);
	wire_msg_free(&m);
	ck_assert_int_eq(decode(&m, eh_empty.b, eh_empty.n), 0);
	ck_assert_uint_eq(m.u.edge_hello.hello_seq, 7);
	ck_assert_uint_eq(m.u.edge_hello.auth.len, 0);
	wire_msg_free(&m);
	/* the edge_hellos samples have no auth: decoded as absent */
	wire_buf_init(&b);
	wire_enc_edge_hello(&b, 1, &edge_hellos[0]);
	ck_assert_int_eq(decode(&m, b.data, b.len), 0);
	ck_assert_uint_eq(m.u.edge_hello.auth.len, 0);
	wire_msg_free(&m);

	memset(buf, 'n', sizeof(buf));
	for (uint32_t len = 0; len <= sizeof(buf); len++) {
		struct wire_challenge c = { bytes(buf, len) };
		struct wire_hello h = { str("r1"), bytes(buf, len), bytes(NULL, 0) };
		struct wire_hello ha = { str("r1"), bytes(nonce_r, WIRE_NONCE_BYTES),
					 bytes(buf, len) };
		struct wire_edge_hello eh = edge_hellos[2];
		int err;

		eh.auth = bytes(buf, len);
		wire_buf_reset(&b);
		wire_enc_challenge(&b, 0, &c);
		err = decode(&m, b.data, b.len);
		ck_assert_int_eq(err, len == WIRE_NONCE_BYTES ? 0 : WIRE_EMALFORMED);
		if (!err) {
			ck_assert_uint_eq(m.type, WIRE_CHALLENGE);
			ck_assert_uint_eq(m.seq, 0);
			ck_assert_mem_eq(m.u.challenge.nonce.ptr, buf, len);
			wire_msg_free(&m);
		}

		wire_buf_reset(&b);
		wire_enc_hello(&b, 1, &h);
		err = decode(&m, b.data, b.len);
		ck_assert_int_eq(err, len == 0 || len == WIRE_NONCE_BYTES ? 0 : WIRE_EMALFORMED);
		if (!err) {
			ck_assert_uint_eq(m.u.hello.router_nonce.len, len);
			wire_msg_free(&m);
		}

		wire_buf_reset(&b);
		wire_enc_hello(&b, 1, &ha);
		err = decode(&m, b.data, b.len);
		ck_assert_int_eq(err, len == 0 || len == WIRE_AUTH_BYTES ? 0 : WIRE_EMALFORMED);
		if (!err) {
			ck_assert_uint_eq(m.u.hello.auth.len, len);
			wire_msg_free(&m);
		}

		wire_buf_reset(&b);
		wire_enc_edge_hello(&b, 1, &eh);
		err = decode(&m, b.data, b.len);
		ck_assert_int_eq(err, len == 0 || len == WIRE_AUTH_BYTES ? 0 : WIRE_EMALFORMED);
		if (!err) {
			ck_assert_uint_eq(m.u.edge_hello.auth.len, len);
			wire_msg_free(&m);
		}
	}
	wire_buf_free(&b);
}
END_TEST

START_TEST(wrong_types)
{
	/* Every field of the type replaced by every value of a wrong class. */
	const struct layout *l = &layouts[_i];
	struct wire_buf b;

	wire_buf_init(&b);
	for (unsigned f = 0; f < ALL(l); f++) {
		for (size_t v = 0; v < N(class_vals); v++) {
			if (accepts[l->k[f]] & class_vals[v].cls)
				continue;
			build(&b, l, ALL(l), f, &class_vals[v].v, 0, NULL);
			decode_err(b.data, b.len, WIRE_EMALFORMED);
		}
		for (size_t v = 0; v < N(kind_wrongs); v++) {
			if (kind_wrongs[v].k != l->k[f])
				continue;
			build(&b, l, ALL(l), f, &kind_wrongs[v].v, 0, NULL);
			decode_err(b.data, b.len, kind_wrongs[v].err);
			/* an optional field is checked when it is the last one */
			if (f >= l->n) {
				build(&b, l, f + 1, f, &kind_wrongs[v].v, 0, NULL);
				decode_err(b.data, b.len, kind_wrongs[v].err);
			}
		}
	}
	wire_buf_free(&b);
}
END_TEST

START_TEST(missing_fields)
{
	const struct layout *l = &layouts[_i];
	struct wire_buf b;

	wire_buf_init(&b);
	for (unsigned n = 0; n < l->n; n++) {
		build(&b, l, n, UINT32_MAX, NULL, 0, NULL);
		decode_err(b.data, b.len, WIRE_EMALFORMED);
	}
	wire_buf_free(&b);
}
END_TEST

START_TEST(truncated)
{
	/* Every proper prefix of every sample ends inside a value. (Of a big
	 * sample: every prefix near either end, and every 97th in between.) */
	struct wire_buf b;
	uint32_t type;

	wire_buf_init(&b);
	type = encode_sample(&b, _i);
	ck_assert_uint_ne(type, 0);
	for (size_t n = 0; n < b.len; n++) {
		if (b.len > 4096 && n > 512 && n < b.len - 512 && n % 97)
			continue;
		decode_err(b.data, n, WIRE_ETRUNC);
	}
	wire_buf_free(&b);
}
END_TEST

START_TEST(trailing)
{
	static const char tails[][2] = { { 0 }, { (char)0xc0 }, { (char)0xc1 }, { (char)0x91 } };
	struct wire_buf b;
	struct wire_msg m;

	wire_buf_init(&b);
	encode_sample(&b, _i);
	ck_assert_int_eq(decode(&m, b.data, b.len), 0);
	wire_msg_free(&m);
	for (size_t t = 0; t < N(tails); t++) {
		put(&b, tails[t], 1);
		decode_err(b.data, b.len, WIRE_ETRUNC);
		b.len--;
	}
	/* A whole second message is trailing bytes too. */
	encode_sample(&b, _i);
	decode_err(b.data, b.len, WIRE_ETRUNC);
	wire_buf_free(&b);
}
END_TEST

START_TEST(version)
{
	static const struct lit bad[] = {
		L("\x94\x00\x05\x01\x05"), /* version 0 */
		L("\x94\x02\x05\x01\x05"), /* version 2 */
		L("\x94\xcf\x00\x00\x00\x00\x00\x00\x00\x01\x05\x01\x05"
		  "\xc0"),
		L("\x94\xcf\xff\xff\xff\xff\xff\xff\xff\xff\x05\x01\x05"),
		/* a later version may change everything after the version */
		L("\x91\x02"),
		L("\x92\x02\xa1"
		  "x"),
		L("\x93\x02\x80\x80"),
	};
	static const struct lit ok = L("\x94\xcf\x00\x00\x00\x00\x00\x00\x00\x01\x05\x01\x05");
	struct wire_msg m;

	for (size_t i = 0; i < N(bad); i++) {
		/* the cf...01 + c0 one is version 1 with trailing bytes */
		decode_err(bad[i].b, bad[i].n, i == 2 ? WIRE_ETRUNC : WIRE_EVERSION);
	}
	ck_assert_int_eq(decode(&m, ok.b, ok.n), 0); /* a wide version 1 is fine */
	wire_msg_free(&m);
}
END_TEST

START_TEST(unknown_type)
{
	static const struct {
		struct lit v;
		uint32_t type;
		uint64_t seq;
	} cases[] = {
		{ L("\x93\x01\x00\x01"), 0, 1 },
		{ L("\x93\x01\x0d\x07"), 13, 7 },
		{ L("\x95\x01\xcd\x03\xe8\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xc0\x80"), 1000,
		  UINT64_MAX },
		{ L("\x93\x01\xce\xff\xff\xff\xff\x02"), UINT32_MAX, 2 },
		{ L("\x94\x01\x7f\x03\x92\x80\x90"), 127, 3 },
	};
	struct wire_msg m;

	for (size_t i = 0; i < N(cases); i++) {
		memset(&m, 0x5a, sizeof(m));
		ck_assert_int_eq(decode(&m, cases[i].v.b, cases[i].v.n), WIRE_EUNKNOWN);
		ck_assert_uint_eq(m.type, cases[i].type);
		ck_assert_uint_eq(m.seq, cases[i].seq);
		ck_assert_ptr_null(m.parts_);
		ck_assert_ptr_null(m.up_.zone);
	}
}
END_TEST

START_TEST(bad_envelope)
{
	static const struct {
		struct lit v;
		int err;
	} cases[] = {
		{ L(""), WIRE_ETRUNC },
		{ L("\x01"), WIRE_EMALFORMED }, /* not an array */
		{ L("\xc0"), WIRE_EMALFORMED },
		{ L("\xa3"
		    "abc"),
		  WIRE_EMALFORMED },
		{ L("\x83\x01\x01\x02\x05\x03\x01"), WIRE_EMALFORMED }, /* a map */
		{ L("\xc4\x03\x94\x01\x05"), WIRE_EMALFORMED },
		{ L("\x90"), WIRE_EMALFORMED },         /* [] */
		{ L("\x91\x01"), WIRE_EMALFORMED },     /* [1] */
		{ L("\x92\x01\x05"), WIRE_EMALFORMED }, /* [1, 5] */
		{ L("\x93\xa1"
		    "1"
		    "\x05\x01"),
		  WIRE_EMALFORMED },
		{ L("\x93\xff\x05\x01"), WIRE_EMALFORMED }, /* version -1 */
		{ L("\x93\xc3\x05\x01"), WIRE_EMALFORMED },
		{ L("\x93\x01\xa1"
		    "5"
		    "\x01"),
		  WIRE_EMALFORMED },
		{ L("\x93\x01\xff\x01"), WIRE_EMALFORMED }, /* type -1 */
		{ L("\x93\x01\xcf\x00\x00\x00\x01\x00\x00\x00\x00\x01"), WIRE_EMALFORMED },
		{ L("\x93\x01\x05\xff"), WIRE_EMALFORMED }, /* seq -1 */
		{ L("\x94\x01\x05\xc0\x05"), WIRE_EMALFORMED },
		{ L("\x94\x01\x05\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00\x05"), WIRE_EMALFORMED },
		{ L("\xc1"), WIRE_EMALFORMED }, /* never-used byte */
		{ L("\x94\x01\x05\x01\xc1"), WIRE_EMALFORMED },
		{ L("\x92\xc1\x01"), WIRE_EMALFORMED },
	};

	for (size_t i = 0; i < N(cases); i++)
		decode_err(cases[i].v.b, cases[i].v.n, cases[i].err);
}
END_TEST

START_TEST(limits)
{
	char *key = xmalloc(WIRE_MAX_KEY_BYTES + 1);
	struct wire_buf b;
	struct wire_sub s = { 1, 0, { key, WIRE_MAX_KEY_BYTES + 1 }, 0 };
	struct wire_up u = { 1, 0, { key, WIRE_MAX_KEY_BYTES + 1 }, { "d", 1 }, false };
	struct wire_hello h = { { key, WIRE_MAX_NAME_BYTES + 1 } };
	struct wire_resync r = { { key, WIRE_MAX_NAME_BYTES + 1 } };
	struct wire_up_err e = { 1, 1, { key, WIRE_MAX_NAME_BYTES + 1 } };
	struct wire_edge_hello eh = { { key, WIRE_MAX_NAME_BYTES + 1 }, false, { 0 } };
	struct wire_assignment a = { 1, WIRE_MAX_PARTITIONS + 1, 0, NULL };
	uint32_t *parts = xcalloc(WIRE_MAX_PARTITIONS + 1, sizeof(*parts));
	struct wire_record rec = record(WIRE_MAX_PARTITIONS, 0, 0, NULL, 0, true);

	memset(key, 'k', WIRE_MAX_KEY_BYTES + 1);
	wire_buf_init(&b);
#define OVER(enc, what)                                 \
	do {                                            \
		wire_buf_reset(&b);                     \
		enc(&b, 1, what);                       \
		decode_err(b.data, b.len, WIRE_ELIMIT); \
	} while (0)
	OVER(wire_enc_sub, &s);
	OVER(wire_enc_up, &u);
	OVER(wire_enc_hello, &h);
	OVER(wire_enc_resync, &r);
	OVER(wire_enc_up_err, &e);
	OVER(wire_enc_edge_hello, &eh);
	OVER(wire_enc_assign, &a); /* partition_count */
	a.partition_count = 0;
	a.count = WIRE_MAX_PARTITIONS + 1; /* too many entries */
	a.partitions = parts;
	OVER(wire_enc_assign, &a);
	a.count = 2;
	parts[1] = WIRE_MAX_PARTITIONS; /* an id too big */
	OVER(wire_enc_assign, &a);
	s.key.len = WIRE_MAX_KEY_BYTES;
	s.partition = WIRE_MAX_PARTITIONS;
	OVER(wire_enc_sub, &s);
	u.key.len = WIRE_MAX_KEY_BYTES;
	u.partition = UINT32_MAX;
	OVER(wire_enc_up, &u);
#undef OVER
	wire_buf_reset(&b);
	wire_enc_deliver_begin(&b);
	wire_enc_deliver_record(&b, &rec, NULL, 0);
	wire_enc_deliver_end(&b, 1);
	decode_err(b.data, b.len, WIRE_ELIMIT);

	/* An empty key is malformed, not over a limit. */
	s.partition = 0;
	s.key.len = 0;
	wire_buf_reset(&b);
	wire_enc_sub(&b, 1, &s);
	decode_err(b.data, b.len, WIRE_EMALFORMED);
	u.partition = 0;
	u.key.len = 0;
	wire_buf_reset(&b);
	wire_enc_up(&b, 1, &u);
	decode_err(b.data, b.len, WIRE_EMALFORMED);

	wire_buf_free(&b);
	free(parts);
	free(key);
}
END_TEST

START_TEST(msg_size)
{
	/* A message of exactly WIRE_MAX_MSG_BYTES decodes; one byte more is over
	 * the limit, whatever it holds. */
	size_t big = WIRE_MAX_MSG_BYTES;
	char *data = xcalloc(big, 1);
	struct wire_up u = { 1, 2, { "k", 1 }, { data, (uint32_t)(big - 64) }, true };
	struct wire_buf b;
	struct wire_msg m;
	size_t overhead;

	wire_buf_init(&b);
	wire_enc_up(&b, 1, &u);
	overhead = b.len - u.data.len;
	wire_buf_reset(&b);
	u.data.len = (uint32_t)(big - overhead);
	wire_enc_up(&b, 1, &u);
	ck_assert_uint_eq(b.len, WIRE_MAX_MSG_BYTES);
	ck_assert_int_eq(decode(&m, b.data, b.len), 0);
	ck_assert_uint_eq(m.u.up.data.len, u.data.len);
	wire_msg_free(&m);

	wire_buf_reset(&b);
	u.data.len++;
	wire_enc_up(&b, 1, &u);
	decode_err(b.data, b.len, WIRE_ELIMIT);
	/* checked before anything else: even garbage is ELIMIT */
	memset(b.data, 0xc1, b.len);
	decode_err(b.data, b.len, WIRE_ELIMIT);
	wire_buf_free(&b);
	free(data);
}
END_TEST

/* Inputs whose headers declare far more than is there. */
static const struct lit hostile[] = {
	L("\xdd\xff\xff\xff\xff\x01\x01\x01"),     /* array32, 2^32-1 */
	L("\xdf\xff\xff\xff\xff\x01\x01"),         /* map32 */
	L("\xdf\x80\x00\x00\x00\x01\x01"),         /* map32, 2^31 (x2) */
	L("\xdc\xff\xff\x01\x01\x01"),             /* array16 */
	L("\xde\xff\xff\x01\x01"),                 /* map16 */
	L("\x94\x01\x04\x01\xdd\xff\xff\xff\xff"), /* nested array32 */
	L("\x94\x01\x07\x01\x91\x95\x00\x00\x00\xc0\xdd\xff\xff\xff\xff\x01"), /* sids */
	L("\x94\x01\x01\x01\xc6\xff\xff\xff\xff"
	  "ab"), /* bin32 */
	L("\x94\x01\x01\x01\xdb\xff\xff\xff\xff"
	  "ab"), /* str32 */
	L("\x94\x01\x01\x01\xc9\xff\xff\xff\xff\x01"
	  "ab"), /* ext32 */
	L("\x94\x01\x01\x01\xc5\xff\xff"
	  "ab"), /* bin16 */
	L("\x94\x01\x01\x01\xd9\xff"
	  "ab"), /* str8 */
	L("\x94\x01\x01\x01\xd8\x01"
	  "ab"),                           /* fixext16 */
	L("\x94\x01\x01\x01\xc6\xff\xff"), /* bin32, header cut */
	L("\x94\x01\x01\x01\xdd\x00"),     /* array32, header cut */
};

START_TEST(huge_counts)
{
	/* Each is an error, at once, and without msgpack-c allocating what the
	 * header declares: in fork mode the address space is capped first, so
	 * such an allocation would fail and wire_decode would abort. */
	struct timespec t0, t1;
	double secs;

#if !defined(__SANITIZE_ADDRESS__)
	const char *ck_fork = getenv("CK_FORK");

	if (!ck_fork || strcmp(ck_fork, "no") != 0) {
		/* Only in a forked child (not under valgrind or ASan, which
		 * need the address space for themselves). */
		unsigned long pages = 0;
		FILE *f = fopen("/proc/self/statm", "r");
		struct rlimit rl;

		ck_assert_ptr_nonnull(f);
		ck_assert_int_eq(fscanf(f, "%lu", &pages), 1);
		fclose(f);
		rl.rlim_cur = rl.rlim_max = pages * 4096ul + (256ul << 20);
		if (setrlimit(RLIMIT_AS, &rl) < 0)
			perror("setrlimit");
	}
#endif
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int rep = 0; rep < 1000; rep++)
		for (size_t i = 0; i < N(hostile); i++)
			decode_err(hostile[i].b, hostile[i].n, WIRE_ETRUNC);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs < 10, "%.1f s for %zu hostile decodes", secs, 1000 * N(hostile));
}
END_TEST

START_TEST(depth)
{
	/* UNSUB with an extra field [[[]]]: depth 4 with the envelope, ok.
	 * (UNSUB, as it has no optional fields that an extra one would be.) */
	static const char ok[] = "\x95\x01\x05\x01\x00"
				 "\x91\x91\x90";
	/* ...and [[[[]]]], depth 5 (the innermost empty array counts too). */
	static const char deep5[] = "\x95\x01\x05\x01\x00"
				    "\x91\x91\x91\x90";
	static const char deep5map[] = "\x95\x01\x05\x01\x00"
				       "\x91\x91\x81\x01\x80";
	struct wire_msg m;
	char *deep;
	size_t n = 1 << 20;

	ck_assert_int_eq(decode(&m, ok, sizeof(ok) - 1), 0);
	wire_msg_free(&m);
	decode_err(deep5, sizeof(deep5) - 1, WIRE_ELIMIT);
	decode_err(deep5map, sizeof(deep5map) - 1, WIRE_ELIMIT);

	/* A million nested arrays: rejected without recursing. */
	deep = xmalloc(n);
	memset(deep, 0x91, n - 1);
	deep[n - 1] = 0;
	decode_err(deep, n, WIRE_ELIMIT);
	memset(deep, 0x81, n);
	decode_err(deep, n, WIRE_ELIMIT);
	free(deep);
}
END_TEST

/* The fuzz seed corpus. */

static void write_file(const char *dir, const char *name, const void *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		exit(1);
	}
}

static const char *const type_names[] = {
	"unknown", "hello", "edge_hello", "assign", "sub",    "unsub",     "sub_ack",
	"deliver", "up",    "up_err",     "flow",   "resync", "challenge",
};

/* Writes small seed inputs: every sample under 4 KiB, a truncated and a
 * trailing-byte copy of one sample per type, and the hand-made bad inputs. */
static void write_corpus(const char *dir)
{
	struct wire_buf b;
	char name[128], suffix[64];
	uint32_t type, last = 0, seen = 0;

	wire_buf_init(&b);
	for (size_t i = 0; i < NSAMPLES; i++) {
		wire_buf_reset(&b);
		type = encode_sample(&b, i);
		if (b.len > 4096)
			continue;
		snprintf(name, sizeof(name), "valid-%s-%zu", type_names[type], i);
		write_file(dir, name, b.data, b.len);
		if (type == last)
			continue;
		last = type;
		/* The first run of a type gives "trunc-hello"; a later one (the
		 * authentication samples) "trunc-hello-17", after its first
		 * sample. */
		if (seen & (1u << type))
			snprintf(suffix, sizeof(suffix), "%s-%zu", type_names[type], i);
		else
			snprintf(suffix, sizeof(suffix), "%s", type_names[type]);
		seen |= 1u << type;
		snprintf(name, sizeof(name), "trunc-%s", suffix);
		write_file(dir, name, b.data, b.len - 1 - b.len / 3);
		put(&b, "\xc0", 1);
		snprintf(name, sizeof(name), "trailing-%s", suffix);
		write_file(dir, name, b.data, b.len);
	}
	for (size_t i = 0; i < N(layouts); i++) {
		const struct layout *l = &layouts[i];
		static const struct lit extra = L("\x92\x81\x01\xc0\x91\x90");

		build(&b, l, ALL(l), UINT32_MAX, NULL, 1, &extra);
		snprintf(name, sizeof(name), "extra-%s", type_names[l->type]);
		write_file(dir, name, b.data, b.len);
		build(&b, l, l->n - 1, UINT32_MAX, NULL, 0, NULL);
		snprintf(name, sizeof(name), "missing-%s", type_names[l->type]);
		write_file(dir, name, b.data, b.len);
		build(&b, l, l->n, l->n - 1, &class_vals[0].v, 0, NULL);
		snprintf(name, sizeof(name), "wrongtype-%s", type_names[l->type]);
		write_file(dir, name, b.data, b.len);
	}
	for (size_t i = 0; i < N(kind_wrongs); i++) {
		for (size_t j = 0; j < N(layouts); j++) {
			const struct layout *l = &layouts[j];
			unsigned f;

			for (f = 0; f < ALL(l) && l->k[f] != kind_wrongs[i].k; f++)
				;
			if (f == ALL(l))
				continue;
			build(&b, l, ALL(l), f, &kind_wrongs[i].v, 0, NULL);
			snprintf(name, sizeof(name), "bad-%s-%zu", type_names[l->type], i);
			write_file(dir, name, b.data, b.len);
			break;
		}
	}
	for (size_t i = 0; i < N(hostile); i++) {
		snprintf(name, sizeof(name), "hostile-%zu", i);
		write_file(dir, name, hostile[i].b, hostile[i].n);
	}
	/* Every non-fix format byte alone: the input ends inside its header. */
	for (unsigned c = 0xc0; c <= 0xdf; c++) {
		char byte = (char)c;

		snprintf(name, sizeof(name), "lone-%02x", c);
		write_file(dir, name, &byte, 1);
	}
	write_file(dir, "version-2", "\x94\x02\x05\x01\x05", 5);
	write_file(dir, "unknown-type", "\x95\x01\x0d\x07\xc0\x80", 6);
	write_file(dir, "not-array", "\x83\x01\x01\x02\x05\x03\x01", 7);
	write_file(dir, "short-envelope", "\x92\x01\x05", 3);
	write_file(dir, "never-used-byte", "\x94\x01\x05\x01\xc1", 5);
	write_file(dir, "depth-5", "\x95\x01\x05\x01\x00\x91\x91\x91\x90", 9);
	write_file(dir, "depth-4", "\x95\x01\x05\x01\x00\x91\x91\x90", 8);
	/* HELLO with a nonce but a proof of 31 bytes; CHALLENGE with an empty
	 * nonce */
	wire_buf_reset(&b);
	put(&b,
	    "\x96\x01\x01\x01\xc4\x02"
	    "r1"
	    "\xc4\x10",
	    10);
	put(&b, nonce_r, WIRE_NONCE_BYTES);
	put(&b, "\xc4\x1f", 2);
	put(&b, proof_r, WIRE_AUTH_BYTES - 1);
	write_file(dir, "auth-short", b.data, b.len);
	write_file(dir, "challenge-empty", "\x94\x01\x0c\x00\xc4\x00", 6);
	write_file(dir, "empty", "", 0);
	wire_buf_free(&b);
}

static Suite *wire_suite(void)
{
	Suite *s = suite_create("wire");
	TCase *tc;

	tc = tcase_create("roundtrip");
	tcase_add_loop_test(tc, rt_hello, 0, N(hellos));
	tcase_add_loop_test(tc, rt_edge_hello, 0, N(edge_hellos));
	tcase_add_loop_test(tc, rt_assign, 0, N(assigns));
	tcase_add_test(tc, rt_assign_max);
	tcase_add_loop_test(tc, rt_sub, 0, N(subs));
	tcase_add_loop_test(tc, rt_unsub, 0, N(unsubs));
	tcase_add_loop_test(tc, rt_sub_ack, 0, N(sub_acks));
	tcase_add_loop_test(tc, rt_deliver, 0, N(delivers));
	tcase_add_loop_test(tc, rt_up, 0, N(ups));
	tcase_add_loop_test(tc, rt_up_err, 0, N(up_errs));
	tcase_add_loop_test(tc, rt_flow, 0, N(flows));
	tcase_add_loop_test(tc, rt_resync, 0, N(resyncs));
	tcase_add_loop_test(tc, rt_hello_auth, 0, N(auth_hellos));
	tcase_add_loop_test(tc, rt_edge_hello_auth, 0, N(auth_edge_hellos));
	tcase_add_loop_test(tc, rt_challenge, 0, N(challenges));
	suite_add_tcase(s, tc);

	tc = tcase_create("encoding");
	tcase_add_test(tc, enc_layout);
	tcase_add_test(tc, enc_append);
	tcase_add_test(tc, msg_free_zeroed);
	tcase_add_test(tc, strerror_all);
	suite_add_tcase(s, tc);

	tc = tcase_create("fields");
	tcase_add_loop_test(tc, hand_valid, 0, N(layouts));
	tcase_add_test(tc, record_extra_fields);
	tcase_add_test(tc, edge_hello_seq_required);
	tcase_add_test(tc, auth_fields);
	tcase_add_loop_test(tc, wrong_types, 0, N(layouts));
	tcase_add_loop_test(tc, missing_fields, 0, N(layouts));
	tcase_add_test(tc, limits);
	suite_add_tcase(s, tc);

	tc = tcase_create("malformed");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, truncated, 0, NSAMPLES);
	tcase_add_loop_test(tc, trailing, 0, NSAMPLES);
	tcase_add_test(tc, version);
	tcase_add_test(tc, unknown_type);
	tcase_add_test(tc, bad_envelope);
	tcase_add_test(tc, msg_size);
	tcase_add_test(tc, huge_counts);
	tcase_add_test(tc, depth);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	const char *corpus = getenv("WIRE_CORPUS_DIR");
	SRunner *sr;
	int failed;

	samples_init();
	if (corpus)
		write_corpus(corpus);
	sr = srunner_create(wire_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	samples_free();
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
