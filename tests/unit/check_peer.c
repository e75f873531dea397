/*
 * check_peer: unit tests of common/peer.c, the link protocol of both ends: a
 * router peer and an edge peer joined by a fake transport (each side's sends
 * are frames queued for the other). The handshake with and without a link
 * secret, wrong and missing proofs, numbering of both directions, the HELLO
 * echo, gaps (router: new HELLO; edge: one RESYNC), unknown types, malformed
 * messages, another version, and DELIVER batching order.
 */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linkauth.h"
#include "peer.h"
#include "wire.h"

#define MAXF 64

/* One direction of the fake connection: frames sent, not yet taken. */
struct fake {
	unsigned char *frame[MAXF];
	size_t len[MAXF];
	size_t n, next;
	bool closed;
	size_t recv_max;
	size_t taken; /* frames handed over by send_take */
};

static int fake_send(void *arg, const void *buf, size_t len)
{
	struct fake *f = arg;
	if (f->closed)
		return -EPIPE;
	ck_assert_uint_lt(f->n, MAXF);
	f->frame[f->n] = malloc(len);
	memcpy(f->frame[f->n], buf, len);
	f->len[f->n++] = len;
	return 0;
}

/* send_take: keeps buf itself (no copy), as chan_send_take does. */
static int fake_send_take(void *arg, void *buf, size_t len)
{
	struct fake *f = arg;
	if (f->closed)
		return -EPIPE;
	ck_assert_uint_lt(f->n, MAXF);
	f->frame[f->n] = buf;
	f->len[f->n++] = len;
	f->taken++;
	return 0;
}

static void fake_close(void *arg)
{
	((struct fake *)arg)->closed = true;
}

static void fake_set_recv_max(void *arg, size_t max)
{
	((struct fake *)arg)->recv_max = max;
}

static const char *fake_address(void *arg)
{
	(void)arg;
	return "fake:1";
}

/* to_edge: what the router sent; to_router: what the edge sent. */
static struct fake to_edge, to_router;
static struct peer rp, ep;
static struct linkauth_secret secret_a, secret_b;
static const struct linkauth_secret none;

static void fake_free(struct fake *f)
{
	for (size_t i = 0; i < f->n; i++)
		free(f->frame[i]);
	memset(f, 0, sizeof *f);
}

static void make_secret(struct linkauth_secret *s, char c)
{
	s->len = 32;
	s->key = malloc(s->len);
	memset(s->key, c, s->len);
}

static void setup(void)
{
	memset(&to_edge, 0, sizeof to_edge);
	memset(&to_router, 0, sizeof to_router);
	make_secret(&secret_a, 'a');
	make_secret(&secret_b, 'b');
}

static void teardown(void)
{
	peer_free(&rp);
	peer_free(&ep);
	fake_free(&to_edge);
	fake_free(&to_router);
	linkauth_secret_free(&secret_a);
	linkauth_secret_free(&secret_b);
}

/* Connects both peers: the router's sends go to to_edge, the edge's to
 * to_router. */
static void connect_peers(const struct linkauth_secret *rs, const struct linkauth_secret *es)
{
	peer_init(&rp, PEER_ROUTER, rs, "r1", "edge test");
	peer_init(&ep, PEER_EDGE, es, "e1", "router link 1");
	struct peer_io rio = { fake_send, fake_close, fake_set_recv_max, fake_address, &to_edge };
	/* The edge's connection takes DELIVER batches (send_take), as a chan
	 * does; the router's has only send. */
	struct peer_io eio = { fake_send,    fake_close, fake_set_recv_max,
			       fake_address, &to_router, fake_send_take };
	ck_assert_int_eq(peer_attach(&ep, &eio), 0);
	ck_assert_int_eq(peer_attach(&rp, &rio), 0);
}

static size_t pending(const struct fake *f)
{
	return f->n - f->next;
}

/* Hands the next frame of f to p. */
static enum peer_event take(struct fake *f, struct peer *p, struct wire_msg *m)
{
	ck_assert_uint_gt(pending(f), 0);
	size_t i = f->next++;
	return peer_recv(p, f->frame[i], f->len[i], m);
}

/* Decodes frame i of f (already taken or not) into *m, to look at it. */
static void peek(const struct fake *f, size_t i, struct wire_msg *m)
{
	ck_assert_uint_lt(i, f->n);
	ck_assert_int_eq(wire_decode(m, f->frame[i], f->len[i]), 0);
}

/* The edge's answer to a HELLO it passed: EDGE_HELLO with 2 of 4 partitions. */
static const uint32_t owned[] = { 0, 2 };
static void edge_answers(void)
{
	struct wire_msg out = { .type = WIRE_EDGE_HELLO,
				.u.edge_hello = { .upstream = true,
						  .assign = { .epoch = 3,
							      .partition_count = 4,
							      .count = 2,
							      .partitions = owned } } };
	ck_assert_int_eq(peer_send(&ep, &out), 0);
}

/* Runs the whole handshake; both sides end UP. */
static void handshake(void)
{
	struct wire_msg m;
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE); /* CHALLENGE */
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_HELLO);
	wire_msg_free(&m);
	edge_answers();
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_HELLO);
	ck_assert_uint_eq(m.u.edge_hello.assign.count, 2);
	wire_msg_free(&m);
	ck_assert_int_eq(rp.state, PEER_UP);
	ck_assert_int_eq(ep.state, PEER_UP);
}

static void send_sub(struct peer *p, uint64_t sid)
{
	struct wire_msg out = { .type = WIRE_SUB,
				.u.sub = { .sid = sid,
					   .partition = 1,
					   .key = { "k", 1 },
					   .from_offset = WIRE_OFFSET_LIVE } };
	ck_assert_int_eq(peer_send(p, &out), 0);
}

START_TEST(handshake_without_secret)
{
	connect_peers(&none, &none);
	/* The edge opens with CHALLENGE (seq 0), the router with HELLO at once. */
	ck_assert_uint_eq(pending(&to_router), 1);
	ck_assert_uint_eq(pending(&to_edge), 1);
	struct wire_msg m;
	peek(&to_router, 0, &m);
	ck_assert_uint_eq(m.type, WIRE_CHALLENGE);
	ck_assert_uint_eq(m.seq, 0);
	wire_msg_free(&m);
	peek(&to_edge, 0, &m);
	ck_assert_uint_eq(m.type, WIRE_HELLO);
	uint64_t hello = m.seq;
	ck_assert_uint_eq(hello, rp.hello_seq);
	ck_assert_uint_eq(hello & 0xffff, 1); /* a random multiple of 2^16, plus 1 */
	ck_assert_uint_eq(m.u.hello.auth.len, 0);
	ck_assert_uint_eq(m.u.hello.router_nonce.len, 0);
	wire_msg_free(&m);
	ck_assert_int_eq(rp.state, PEER_HELLO_SENT);
	ck_assert_int_eq(ep.state, PEER_WAIT_HELLO);

	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE);
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_HELLO);
	ck_assert_uint_eq(m.seq, hello);
	wire_msg_free(&m);
	ck_assert_str_eq(ep.peer_id, "r1");
	ck_assert_uint_eq(to_router.recv_max,
			  WIRE_MAX_MSG_BYTES); /* the edge takes whole frames now */
	edge_answers();
	peek(&to_router, 1, &m);
	ck_assert_uint_eq(m.type, WIRE_EDGE_HELLO);
	ck_assert_uint_eq(m.seq, 1);
	ck_assert_uint_eq(m.u.edge_hello.hello_seq, hello); /* the echo */
	ck_assert_uint_eq(m.u.edge_hello.auth.len, 0);
	wire_msg_free(&m);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_HELLO);
	ck_assert(m.u.edge_hello.upstream);
	ck_assert_uint_eq(m.u.edge_hello.assign.epoch, 3);
	wire_msg_free(&m);
	ck_assert_int_eq(rp.state, PEER_UP);
	ck_assert_str_eq(rp.peer_id, "e1");
	ck_assert_uint_eq(rp.rx_expect, 2);
	ck_assert_uint_eq(ep.rx_expect, hello + 1);
}
END_TEST

START_TEST(handshake_with_secret)
{
	connect_peers(&secret_a, &secret_a);
	/* With a secret the router waits for the CHALLENGE. */
	ck_assert_uint_eq(pending(&to_edge), 0);
	ck_assert_int_eq(rp.state, PEER_DOWN);
	struct wire_msg m;
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE);
	ck_assert(rp.have_nonce);
	ck_assert_uint_eq(pending(&to_edge), 1);
	peek(&to_edge, 0, &m);
	ck_assert_uint_eq(m.type, WIRE_HELLO);
	ck_assert_uint_eq(m.u.hello.router_nonce.len, LINKAUTH_NONCE);
	ck_assert_uint_eq(m.u.hello.auth.len, LINKAUTH_MAC);
	wire_msg_free(&m);
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_HELLO);
	wire_msg_free(&m);
	edge_answers();
	peek(&to_router, 1, &m);
	ck_assert_uint_eq(m.u.edge_hello.auth.len, LINKAUTH_MAC);
	wire_msg_free(&m);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_HELLO);
	wire_msg_free(&m);
	ck_assert_int_eq(rp.state, PEER_UP);
	ck_assert_uint_eq(rp.st.auth_failures + ep.st.auth_failures, 0);
	/* A second CHALLENGE on the connection changes nothing. */
	peer_send(&ep, &(struct wire_msg){ .type = WIRE_CHALLENGE });
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE);
	ck_assert_int_eq(rp.state, PEER_UP);
	ck_assert_uint_eq(pending(&to_edge), 0);
}
END_TEST

START_TEST(wrong_secret_refused)
{
	connect_peers(&secret_a, &secret_b);
	struct wire_msg m;
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE);
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_CLOSED);
	ck_assert(to_router.closed);
	ck_assert_uint_eq(ep.st.auth_failures, 1);
	ck_assert_uint_eq(pending(&to_router), 0); /* no EDGE_HELLO */
	ck_assert_uint_eq(ep.hellos, 0);
	ck_assert_uint_eq(to_router.recv_max, 0); /* the edge keeps its pre-HELLO bound */
}
END_TEST

START_TEST(router_without_secret_refused)
{
	connect_peers(&none, &secret_a);
	struct wire_msg m;
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_CLOSED);
	ck_assert_uint_eq(ep.st.auth_failures, 1);
	ck_assert(to_router.closed);
}
END_TEST

START_TEST(edge_without_secret_refused)
{
	connect_peers(&secret_a, &none);
	struct wire_msg m;
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE);
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_HELLO); /* the edge checks nothing */
	wire_msg_free(&m);
	edge_answers();
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_CLOSED); /* no proof */
	ck_assert(to_edge.closed);
	ck_assert_uint_eq(rp.st.auth_failures, 1);
	ck_assert_int_eq(rp.state, PEER_DOWN);
}
END_TEST

START_TEST(numbering)
{
	connect_peers(&none, &none);
	handshake();
	uint64_t hello = rp.hello_seq;
	send_sub(&rp, 7);
	send_sub(&rp, 8);
	ck_assert_int_eq(peer_send(&rp, &(struct wire_msg){ .type = WIRE_UNSUB, .u.unsub.sid = 7 }),
			 0);
	struct wire_msg m;
	for (uint64_t k = 1; k <= 3; k++) {
		ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_MSG);
		ck_assert_uint_eq(m.seq, hello + k);
		ck_assert_uint_eq(m.type, k < 3 ? WIRE_SUB : WIRE_UNSUB);
		wire_msg_free(&m);
	}
	/* The edge: a batch of two records, then a SUB_ACK; the batch goes
	 * first (seq 2), the SUB_ACK after it (seq 3). */
	uint64_t sids[] = { 7, 8 };
	struct wire_record rec = {
		.partition = 1, .offset = 10, .timestamp_ms = -1, .value = { "v", 1 }
	};
	ck_assert_int_eq(peer_deliver(&ep, &rec, sids, 2, 65536), 0);
	rec.offset = 11;
	ck_assert_int_eq(peer_deliver(&ep, &rec, sids, 1, 65536), 0);
	ck_assert_uint_eq(pending(&to_router), 0); /* still batching */
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = WIRE_SUB_ACK,
							    .u.sub_ack = { .sid = 8 } }),
			 0);
	ck_assert_uint_eq(to_router.taken, 1); /* the batch, not the SUB_ACK */
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_MSG);
	ck_assert_uint_eq(m.type, WIRE_DELIVER);
	ck_assert_uint_eq(m.seq, 2);
	ck_assert_uint_eq(m.u.deliver.count, 2);
	wire_msg_free(&m);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_MSG);
	ck_assert_uint_eq(m.type, WIRE_SUB_ACK);
	ck_assert_uint_eq(m.seq, 3);
	wire_msg_free(&m);
	/* A batch at its size goes at once. */
	ck_assert_int_eq(peer_deliver(&ep, &rec, sids, 1, 1), 0);
	ck_assert_uint_eq(to_router.taken, 2);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_MSG);
	ck_assert_uint_eq(m.seq, 4);
	ck_assert_uint_eq(m.u.deliver.count, 1);
	wire_msg_free(&m);
	ck_assert_uint_eq(rp.st.gaps + ep.st.gaps, 0);
	/* DELIVER only through peer_deliver; nothing when not connected. */
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = WIRE_DELIVER }), -EINVAL);
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = 99 }), -EINVAL);
	peer_detach(&ep);
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = WIRE_UP_ERR }), -ENOTCONN);
	ck_assert_int_eq(peer_deliver(&ep, &rec, sids, 1, 1), -ENOTCONN);
}
END_TEST

/* A frame the sender did not number itself: SUB of sequence seq. */
static struct wire_buf raw;
static enum peer_event inject_sub(struct peer *p, uint64_t seq, struct wire_msg *m)
{
	struct wire_sub s = { .sid = 1, .partition = 0, .key = { "k", 1 }, .from_offset = 0 };
	wire_buf_reset(&raw);
	wire_enc_sub(&raw, seq, &s);
	return peer_recv(p, raw.data, raw.len, m);
}

START_TEST(edge_gap_resyncs)
{
	wire_buf_init(&raw);
	connect_peers(&none, &none);
	handshake();
	struct wire_msg m;
	uint64_t expect = ep.rx_expect;
	ck_assert_int_eq(inject_sub(&ep, expect + 1, &m), PEER_RESYNC); /* one lost */
	ck_assert_uint_eq(ep.st.gaps, 1);
	ck_assert_int_eq(ep.state, PEER_DESYNCED);
	ck_assert_uint_eq(pending(&to_router), 1);
	/* Everything but HELLO is ignored now, and no second RESYNC goes out. */
	ck_assert_int_eq(inject_sub(&ep, expect + 2, &m), PEER_NONE);
	ck_assert_int_eq(inject_sub(&ep, 12345, &m), PEER_NONE);
	ck_assert_uint_eq(pending(&to_router), 1);
	ck_assert_uint_eq(ep.st.resyncs, 1);
	/* The router answers RESYNC with a new HELLO of a new number. */
	uint64_t old_hello = rp.hello_seq;
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_RESYNC);
	ck_assert_uint_eq(rp.hello_seq, old_hello + 1);
	ck_assert_int_eq(rp.state, PEER_HELLO_SENT);
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_HELLO);
	ck_assert_uint_eq(m.seq, old_hello + 1);
	wire_msg_free(&m);
	ck_assert_int_eq(ep.state, PEER_UP);
	edge_answers();
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_HELLO);
	wire_msg_free(&m);
	send_sub(&rp, 9);
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_MSG);
	wire_msg_free(&m);
	wire_buf_free(&raw);
}
END_TEST

START_TEST(router_gap_rehellos)
{
	wire_buf_init(&raw);
	connect_peers(&none, &none);
	handshake();
	struct wire_msg m;
	/* An edge message out of numbering: the router says HELLO again. */
	uint64_t old_hello = rp.hello_seq;
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = WIRE_SUB_ACK }), 0);
	ep.tx_seq++; /* the next one skips a number */
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = WIRE_SUB_ACK }), 0);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_MSG);
	wire_msg_free(&m);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_RESYNC);
	ck_assert_uint_eq(rp.st.gaps, 1);
	ck_assert_uint_eq(rp.st.resyncs, 1);
	ck_assert_int_eq(rp.state, PEER_HELLO_SENT);
	ck_assert_uint_eq(rp.hello_seq, old_hello + 1);
	/* Until the EDGE_HELLO echoing that HELLO, the router ignores all:
	 * more numbered messages, and an EDGE_HELLO answering an older HELLO. */
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = WIRE_SUB_ACK }), 0);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE);
	edge_answers(); /* still echoes old_hello: the edge has not read the new one */
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_NONE);
	ck_assert_int_eq(rp.state, PEER_HELLO_SENT);
	ck_assert_int_eq(take(&to_edge, &ep, &m), PEER_HELLO);
	wire_msg_free(&m);
	edge_answers();
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_HELLO);
	ck_assert_uint_eq(m.u.edge_hello.hello_seq, old_hello + 1);
	wire_msg_free(&m);
	ck_assert_int_eq(rp.state, PEER_UP);
	ck_assert_uint_eq(rp.st.gaps, 1);
	wire_buf_free(&raw);
}
END_TEST

/* [1, type, seq]: a well-formed envelope of a type nobody knows. */
static enum peer_event inject_unknown(struct peer *p, uint64_t seq, struct wire_msg *m)
{
	static unsigned char b[16];
	ck_assert_uint_lt(seq, 128);
	b[0] = 0x93;
	b[1] = 1;
	b[2] = 99;
	b[3] = (unsigned char)seq;
	return peer_recv(p, b, 4, m);
}

START_TEST(unknown_type_numbered)
{
	connect_peers(&none, &none);
	handshake();
	struct wire_msg m;
	/* In numbering: counted, and the expectation moves past it. */
	ck_assert_int_eq(inject_unknown(&rp, 2, &m), PEER_NONE);
	ck_assert_uint_eq(rp.st.unknown, 1);
	ck_assert_uint_eq(rp.rx_expect, 3);
	ep.tx_seq = 2; /* the edge "sent" seq 2 */
	ck_assert_int_eq(peer_send(&ep, &(struct wire_msg){ .type = WIRE_SUB_ACK }), 0);
	ck_assert_int_eq(take(&to_router, &rp, &m), PEER_MSG);
	ck_assert_uint_eq(m.seq, 3);
	wire_msg_free(&m);
	/* Out of numbering: a gap like any other. */
	ck_assert_int_eq(inject_unknown(&rp, 9, &m), PEER_RESYNC);
	ck_assert_uint_eq(rp.st.unknown, 2);
	ck_assert_uint_eq(rp.st.gaps, 1);
}
END_TEST

START_TEST(unknown_type_edge)
{
	/* A router whose HELLOs start low, so that inject_unknown's one-byte
	 * seq can follow its HELLO. */
	connect_peers(&none, &none);
	rp.hello_seq = 0;
	fake_free(&to_edge);
	struct peer_io rio = { fake_send, fake_close, fake_set_recv_max, fake_address, &to_edge };
	peer_attach(&rp, &rio);
	handshake();
	struct wire_msg m;
	ck_assert_uint_eq(ep.rx_expect, 2);
	ck_assert_int_eq(inject_unknown(&ep, 2, &m), PEER_NONE);
	ck_assert_uint_eq(ep.rx_expect, 3);
	ck_assert_uint_eq(pending(&to_router), 0);
	ck_assert_int_eq(inject_unknown(&ep, 5, &m), PEER_RESYNC);
	ck_assert_uint_eq(ep.st.unknown, 2);
	ck_assert_uint_eq(ep.st.gaps, 1);
	ck_assert_uint_eq(pending(&to_router), 1);
	peek(&to_router, to_router.next, &m);
	ck_assert_uint_eq(m.type, WIRE_RESYNC);
	wire_msg_free(&m);
	/* Before any HELLO an unknown type is only counted. */
	peer_free(&ep);
	peer_init(&ep, PEER_EDGE, &none, "e1", "router link 2");
	struct peer_io eio = { fake_send, fake_close, fake_set_recv_max, fake_address, &to_router };
	peer_attach(&ep, &eio);
	size_t before = to_router.n;
	ck_assert_int_eq(inject_unknown(&ep, 5, &m), PEER_NONE);
	ck_assert_uint_eq(to_router.n, before);
}
END_TEST

START_TEST(malformed_is_a_gap)
{
	connect_peers(&none, &none);
	handshake();
	struct wire_msg m;
	static const unsigned char bad[] = { 0x94, 0x01, 0x05, 0xc1 };
	uint64_t hello = rp.hello_seq;
	ck_assert_int_eq(peer_recv(&rp, bad, sizeof bad, &m), PEER_RESYNC);
	ck_assert_uint_eq(rp.st.malformed, 1);
	ck_assert_uint_eq(rp.hello_seq, hello + 1);
	ck_assert_int_eq(peer_recv(&ep, bad, sizeof bad, &m), PEER_RESYNC);
	ck_assert_uint_eq(ep.st.malformed, 1);
	ck_assert_int_eq(ep.state, PEER_DESYNCED);
	/* Even while it waits for its EDGE_HELLO, the router counts it a gap
	 * (it may have been that EDGE_HELLO) and says HELLO again. */
	ck_assert_int_eq(peer_recv(&rp, bad, sizeof bad, &m), PEER_RESYNC);
	ck_assert_uint_eq(rp.hello_seq, hello + 2);
}
END_TEST

START_TEST(other_version)
{
	connect_peers(&none, &none);
	handshake();
	struct wire_msg m;
	static const unsigned char v2[] = { 0x94, 0x02, 0x05, 0x03, 0x05 };
	/* The edge ignores it and stays up; the router hangs up. */
	ck_assert_int_eq(peer_recv(&ep, v2, sizeof v2, &m), PEER_NONE);
	ck_assert_int_eq(ep.state, PEER_UP);
	ck_assert(!to_router.closed);
	ck_assert_uint_eq(ep.st.malformed, 1);
	ck_assert_int_eq(peer_recv(&rp, v2, sizeof v2, &m), PEER_CLOSED);
	ck_assert(to_edge.closed);
	ck_assert_int_eq(rp.state, PEER_DOWN);
	ck_assert_uint_eq(rp.st.malformed, 1);
	ck_assert_str_eq(peer_state_name(PEER_HELLO_SENT), "hello-sent");
}
END_TEST

START_TEST(edge_waits_for_hello)
{
	wire_buf_init(&raw);
	connect_peers(&none, &none);
	struct wire_msg m;
	/* Before HELLO, application messages are not acted on. */
	ck_assert_int_eq(inject_sub(&ep, 1, &m), PEER_NONE);
	ck_assert_int_eq(peer_deliver(&ep, &(struct wire_record){ 0 }, NULL, 0, 1), -ENOTCONN);
	ck_assert_uint_eq(pending(&to_router), 1); /* the CHALLENGE only */
	wire_buf_free(&raw);
}
END_TEST

static Suite *peer_suite(void)
{
	Suite *s = suite_create("peer");
	TCase *tc = tcase_create("handshake");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, handshake_without_secret);
	tcase_add_test(tc, handshake_with_secret);
	tcase_add_test(tc, wrong_secret_refused);
	tcase_add_test(tc, router_without_secret_refused);
	tcase_add_test(tc, edge_without_secret_refused);
	tcase_add_test(tc, edge_waits_for_hello);
	suite_add_tcase(s, tc);

	tc = tcase_create("numbering");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, numbering);
	tcase_add_test(tc, edge_gap_resyncs);
	tcase_add_test(tc, router_gap_rehellos);
	tcase_add_test(tc, unknown_type_numbered);
	tcase_add_test(tc, unknown_type_edge);
	tcase_add_test(tc, malformed_is_a_gap);
	tcase_add_test(tc, other_version);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(peer_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
