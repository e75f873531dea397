/*
 * fuzz_wire: libFuzzer target for wire_decode. Every input is decoded; a
 * message that decodes is walked field by field (so a sanitizer sees every
 * byte it points at), encoded again with wire_enc_* and decoded again, and the
 * two decodes must agree field for field (round-trip property). Any mismatch
 * or out-of-range return aborts. The authentication fields (CHALLENGE's
 * nonce, HELLO's router_nonce and auth, EDGE_HELLO's auth) are walked, checked
 * for their only allowed lengths and round-tripped like any other field.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Sink for the walk, so that it is not optimised away. */
static volatile uint64_t sink;

static __attribute__((noreturn)) void fail(const char *what, uint32_t type)
{
	fprintf(stderr, "fuzz_wire: %s (type %u)\n", what, type);
	abort();
}

/* Reads every byte of s. */
static uint64_t touch(const struct wire_bytes *s)
{
	uint64_t h = s->len;

	for (uint32_t i = 0; i < s->len; i++)
		h = h * 31 + (uint8_t)s->ptr[i];
	return h;
}

/* Reads s, which must be n bytes long, or also 0 if may_be_empty. */
static uint64_t touch_fixed(const struct wire_bytes *s, uint32_t n, bool may_be_empty,
			    uint32_t type)
{
	if (s->len != n && (s->len != 0 || !may_be_empty))
		fail("authentication field of a wrong length", type);
	return touch(s);
}

static uint64_t touch_assignment(const struct wire_assignment *a)
{
	uint64_t h = a->epoch + a->partition_count + a->count;

	for (uint32_t i = 0; i < a->count; i++) {
		if (a->partitions[i] >= WIRE_MAX_PARTITIONS)
			fail("partition over the limit", 0);
		h = h * 31 + a->partitions[i];
	}
	return h;
}

/* Reads every field of a decoded message. */
static void walk(const struct wire_msg *m)
{
	uint64_t h = m->seq;
	struct wire_record r;

	switch (m->type) {
	case WIRE_HELLO:
		h += touch(&m->u.hello.router_id);
		h += touch_fixed(&m->u.hello.router_nonce, WIRE_NONCE_BYTES, true, m->type);
		h += touch_fixed(&m->u.hello.auth, WIRE_AUTH_BYTES, true, m->type);
		break;
	case WIRE_EDGE_HELLO:
		h += touch(&m->u.edge_hello.edge_id) + m->u.edge_hello.upstream;
		h += touch_assignment(&m->u.edge_hello.assign) + m->u.edge_hello.hello_seq;
		h += touch_fixed(&m->u.edge_hello.auth, WIRE_AUTH_BYTES, true, m->type);
		break;
	case WIRE_CHALLENGE:
		h += touch_fixed(&m->u.challenge.nonce, WIRE_NONCE_BYTES, false, m->type);
		break;
	case WIRE_ASSIGN:
		h += touch_assignment(&m->u.assign);
		break;
	case WIRE_SUB:
		if (m->u.sub.key.len == 0 || m->u.sub.key.len > WIRE_MAX_KEY_BYTES)
			fail("bad key length", m->type);
		h += m->u.sub.sid + m->u.sub.partition + touch(&m->u.sub.key) +
		     (uint64_t)m->u.sub.from_offset;
		break;
	case WIRE_UNSUB:
		h += m->u.unsub.sid;
		break;
	case WIRE_SUB_ACK:
		h += m->u.sub_ack.sid + m->u.sub_ack.status + (uint64_t)m->u.sub_ack.start_offset +
		     m->u.sub_ack.complete;
		break;
	case WIRE_DELIVER:
		for (uint32_t i = 0; i < m->u.deliver.count; i++) {
			wire_deliver_get(m, i, &r);
			if (r.value_null && r.value.len != 0)
				fail("tombstone with a value", m->type);
			h += r.partition + (uint64_t)r.offset + (uint64_t)r.timestamp_ms;
			h += touch(&r.value) + r.value_null;
			for (uint32_t j = 0; j < r.nsids; j++)
				h = h * 31 + wire_record_sid(&r, j);
		}
		break;
	case WIRE_UP:
		h += m->u.up.sid + m->u.up.partition + touch(&m->u.up.key) + touch(&m->u.up.data) +
		     m->u.up.text;
		break;
	case WIRE_UP_ERR:
		h += m->u.up_err.sid + m->u.up_err.code + touch(&m->u.up_err.reason);
		break;
	case WIRE_FLOW:
		h += m->u.flow.sid + m->u.flow.paused;
		break;
	case WIRE_RESYNC:
		h += touch(&m->u.resync.reason);
		break;
	default:
		fail("decoded an unknown type", m->type);
	}
	sink = sink + h;
}

/* Encodes a decoded message again. */
static void encode(struct wire_buf *b, const struct wire_msg *m)
{
	struct wire_record r;
	uint64_t *sids;

	switch (m->type) {
	case WIRE_HELLO:
		wire_enc_hello(b, m->seq, &m->u.hello);
		break;
	case WIRE_EDGE_HELLO:
		wire_enc_edge_hello(b, m->seq, &m->u.edge_hello);
		break;
	case WIRE_ASSIGN:
		wire_enc_assign(b, m->seq, &m->u.assign);
		break;
	case WIRE_SUB:
		wire_enc_sub(b, m->seq, &m->u.sub);
		break;
	case WIRE_UNSUB:
		wire_enc_unsub(b, m->seq, &m->u.unsub);
		break;
	case WIRE_SUB_ACK:
		wire_enc_sub_ack(b, m->seq, &m->u.sub_ack);
		break;
	case WIRE_DELIVER:
		wire_enc_deliver_begin(b);
		for (uint32_t i = 0; i < m->u.deliver.count; i++) {
			wire_deliver_get(m, i, &r);
			sids = xmalloc(r.nsids * sizeof(*sids));
			for (uint32_t j = 0; j < r.nsids; j++)
				sids[j] = wire_record_sid(&r, j);
			wire_enc_deliver_record(b, &r, sids, r.nsids);
			free(sids);
		}
		wire_enc_deliver_end(b, m->seq);
		if (wire_deliver_records(b) != m->u.deliver.count)
			fail("record count", m->type);
		break;
	case WIRE_UP:
		wire_enc_up(b, m->seq, &m->u.up);
		break;
	case WIRE_UP_ERR:
		wire_enc_up_err(b, m->seq, &m->u.up_err);
		break;
	case WIRE_FLOW:
		wire_enc_flow(b, m->seq, &m->u.flow);
		break;
	case WIRE_RESYNC:
		wire_enc_resync(b, m->seq, &m->u.resync);
		break;
	case WIRE_CHALLENGE:
		wire_enc_challenge(b, m->seq, &m->u.challenge);
		break;
	}
}

static int same_bytes(const struct wire_bytes *a, const struct wire_bytes *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->ptr, b->ptr, a->len) == 0);
}

static int same_assignment(const struct wire_assignment *a, const struct wire_assignment *b)
{
	return a->epoch == b->epoch && a->partition_count == b->partition_count &&
	       a->count == b->count &&
	       (a->count == 0 ||
		memcmp(a->partitions, b->partitions, a->count * sizeof(uint32_t)) == 0);
}

static int same_record(const struct wire_record *a, const struct wire_record *b)
{
	if (a->partition != b->partition || a->offset != b->offset ||
	    a->timestamp_ms != b->timestamp_ms || a->value_null != b->value_null ||
	    !same_bytes(&a->value, &b->value) || a->nsids != b->nsids)
		return 0;
	for (uint32_t j = 0; j < a->nsids; j++)
		if (wire_record_sid(a, j) != wire_record_sid(b, j))
			return 0;
	return 1;
}

/* Compares two decoded messages field by field. */
static int same(const struct wire_msg *a, const struct wire_msg *b)
{
	struct wire_record ra, rb;

	if (a->type != b->type || a->seq != b->seq)
		return 0;
	switch (a->type) {
	case WIRE_HELLO:
		return same_bytes(&a->u.hello.router_id, &b->u.hello.router_id) &&
		       same_bytes(&a->u.hello.router_nonce, &b->u.hello.router_nonce) &&
		       same_bytes(&a->u.hello.auth, &b->u.hello.auth);
	case WIRE_EDGE_HELLO:
		return same_bytes(&a->u.edge_hello.edge_id, &b->u.edge_hello.edge_id) &&
		       a->u.edge_hello.upstream == b->u.edge_hello.upstream &&
		       same_assignment(&a->u.edge_hello.assign, &b->u.edge_hello.assign) &&
		       a->u.edge_hello.hello_seq == b->u.edge_hello.hello_seq &&
		       same_bytes(&a->u.edge_hello.auth, &b->u.edge_hello.auth);
	case WIRE_CHALLENGE:
		return same_bytes(&a->u.challenge.nonce, &b->u.challenge.nonce);
	case WIRE_ASSIGN:
		return same_assignment(&a->u.assign, &b->u.assign);
	case WIRE_SUB:
		return a->u.sub.sid == b->u.sub.sid && a->u.sub.partition == b->u.sub.partition &&
		       same_bytes(&a->u.sub.key, &b->u.sub.key) &&
		       a->u.sub.from_offset == b->u.sub.from_offset;
	case WIRE_UNSUB:
		return a->u.unsub.sid == b->u.unsub.sid;
	case WIRE_SUB_ACK:
		return a->u.sub_ack.sid == b->u.sub_ack.sid &&
		       a->u.sub_ack.status == b->u.sub_ack.status &&
		       a->u.sub_ack.start_offset == b->u.sub_ack.start_offset &&
		       a->u.sub_ack.complete == b->u.sub_ack.complete;
	case WIRE_DELIVER:
		if (a->u.deliver.count != b->u.deliver.count)
			return 0;
		for (uint32_t i = 0; i < a->u.deliver.count; i++) {
			wire_deliver_get(a, i, &ra);
			wire_deliver_get(b, i, &rb);
			if (!same_record(&ra, &rb))
				return 0;
		}
		return 1;
	case WIRE_UP:
		return a->u.up.sid == b->u.up.sid && a->u.up.partition == b->u.up.partition &&
		       same_bytes(&a->u.up.key, &b->u.up.key) &&
		       same_bytes(&a->u.up.data, &b->u.up.data) && a->u.up.text == b->u.up.text;
	case WIRE_UP_ERR:
		return a->u.up_err.sid == b->u.up_err.sid && a->u.up_err.code == b->u.up_err.code &&
		       same_bytes(&a->u.up_err.reason, &b->u.up_err.reason);
	case WIRE_FLOW:
		return a->u.flow.sid == b->u.flow.sid && a->u.flow.paused == b->u.flow.paused;
	case WIRE_RESYNC:
		return same_bytes(&a->u.resync.reason, &b->u.resync.reason);
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wire_msg m, m2;
	struct wire_buf b;
	int err;

	err = wire_decode(&m, data, size);
	if (err > 0 || err < WIRE_ELIMIT || !wire_strerror(err))
		fail("error code out of range", m.type);
	if (err)
		return 0;

	walk(&m);
	wire_buf_init(&b);
	encode(&b, &m);
	if (b.len <= WIRE_MAX_MSG_BYTES) {
		err = wire_decode(&m2, b.data, b.len);
		if (err)
			fail(wire_strerror(err), m.type);
		if (!same(&m, &m2))
			fail("round trip changed the message", m.type);
		wire_msg_free(&m2);
		wire_msg_free(&m2); /* idempotent */
	}
	wire_buf_free(&b);
	wire_msg_free(&m);
	return 0;
}
