/* wire: see wire.h and PROTOCOL.md. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Fields of the envelope before the type's own fields: [version, type, seq]. */
#define ENVELOPE_FIELDS 3
/* Fields of one DELIVER record: [partition, offset, timestamp, value, sids]. */
#define RECORD_FIELDS 5

const char *wire_strerror(int err)
{
	/* Both err and -err name the same error (INT_MIN included). */
	int e = err > 0 ? -err : err;

	switch (e) {
	case WIRE_OK:
		return "ok";
	case WIRE_ETRUNC:
		return "truncated message or trailing bytes";
	case WIRE_EVERSION:
		return "unsupported protocol version";
	case WIRE_EUNKNOWN:
		return "unknown message type";
	case WIRE_EMALFORMED:
		return "malformed message";
	case WIRE_ELIMIT:
		return "message over a protocol limit";
	default:
		return "unknown wire error";
	}
}

/*
 * Decoder safety pre-pass.
 *
 * msgpack-c's unpacker allocates an array's or map's storage from the count
 * its header declares, before it sees the elements: five bytes could make it
 * allocate 100 GB. So wire_decode first walks the raw bytes here, without
 * allocating and without recursion, and unpacks only input in which every
 * declared element and byte really exists. After that, msgpack-c allocates at
 * most one msgpack_object (24 bytes) per input byte, plus its zone overhead.
 */

/* Reads an n-byte big-endian unsigned integer (n <= 8). */
static uint64_t be_read(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

/* Writes v as an n-byte big-endian unsigned integer (n <= 8). */
static void be_write(char *p, uint64_t v, unsigned n)
{
	for (unsigned i = n; i > 0; i--) {
		p[i - 1] = (char)(v & 0xff);
		v >>= 8;
	}
}

/*
 * Checks that p[0..len) is exactly one well-formed msgpack value, that no
 * container nests deeper than WIRE_MAX_DEPTH and that every length fits in
 * the input. Returns 0 or a negative enum wire_err.
 */
static int prescan(const uint8_t *p, size_t len)
{
	uint64_t left[WIRE_MAX_DEPTH]; /* elements still due in each open container */
	unsigned depth = 0;            /* open containers */
	size_t pos = 0;

	do {
		uint8_t c;
		unsigned hdr = 0;  /* bytes of length/count after the type byte */
		uint64_t skip = 0; /* payload bytes after the header */
		uint64_t n = 0;    /* elements of a container */
		int container = 0; /* 1 array, 2 map */

		if (pos >= len)
			return WIRE_ETRUNC;
		c = p[pos++];
		if (c <= 0x7f || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3)) {
			/* fixint, negative fixint, nil, bool */
		} else if (c <= 0x8f) {
			container = 2;
			n = c & 0x0f;
		} else if (c <= 0x9f) {
			container = 1;
			n = c & 0x0f;
		} else if (c <= 0xbf) {
			skip = c & 0x1f;
		} else {
			switch (c) {
			case 0xc1: /* never used */
				return WIRE_EMALFORMED;
			case 0xc4:
			case 0xd9: /* bin8, str8 */
				hdr = 1;
				break;
			case 0xc5:
			case 0xda: /* bin16, str16 */
				hdr = 2;
				break;
			case 0xc6:
			case 0xdb: /* bin32, str32 */
				hdr = 4;
				break;
			case 0xc7: /* ext8, ext16, ext32: length, then a type byte */
				hdr = 1;
				skip = 1;
				break;
			case 0xc8:
				hdr = 2;
				skip = 1;
				break;
			case 0xc9:
				hdr = 4;
				skip = 1;
				break;
			case 0xca: /* float32 */
				skip = 4;
				break;
			case 0xcb: /* float64 */
				skip = 8;
				break;
			case 0xcc:
			case 0xd0: /* (u)int8 */
				skip = 1;
				break;
			case 0xcd:
			case 0xd1:
				skip = 2;
				break;
			case 0xce:
			case 0xd2:
				skip = 4;
				break;
			case 0xcf:
			case 0xd3:
				skip = 8;
				break;
			case 0xd4:
			case 0xd5:
			case 0xd6:
			case 0xd7:
			case 0xd8:
				/* fixext 1, 2, 4, 8, 16: a type byte, then the data */
				skip = 1 + (1u << (c - 0xd4));
				break;
			case 0xdc: /* array16, array32 */
				container = 1;
				hdr = 2;
				break;
			case 0xdd:
				container = 1;
				hdr = 4;
				break;
			case 0xde: /* map16, map32 */
				container = 2;
				hdr = 2;
				break;
			case 0xdf:
				container = 2;
				hdr = 4;
				break;
			}
		}
		if (hdr) {
			if (len - pos < hdr)
				return WIRE_ETRUNC;
			if (container)
				n = be_read(p + pos, hdr);
			else
				skip += be_read(p + pos, hdr);
			pos += hdr;
		}
		if (container) {
			/* Each element takes at least one byte. */
			if (container == 2)
				n *= 2;
			if (n > len - pos)
				return WIRE_ETRUNC;
			if (depth >= WIRE_MAX_DEPTH)
				return WIRE_ELIMIT;
			if (n > 0) {
				left[depth++] = n;
				continue;
			}
		} else {
			if (skip > len - pos)
				return WIRE_ETRUNC;
			pos += skip;
		}
		/* A value ended: close every container it completes. */
		while (depth > 0 && --left[depth - 1] == 0)
			depth--;
	} while (depth > 0);

	return pos == len ? 0 : WIRE_ETRUNC;
}

/*
 * Field readers: each checks one msgpack object against the field's type and
 * limits, and returns 0 or a negative enum wire_err.
 */

static int get_u64(const msgpack_object *o, uint64_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return WIRE_EMALFORMED;
	*v = o->via.u64;
	return 0;
}

static int get_u32(const msgpack_object *o, uint32_t *v)
{
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER || o->via.u64 > UINT32_MAX)
		return WIRE_EMALFORMED;
	*v = (uint32_t)o->via.u64;
	return 0;
}

static int get_i64(const msgpack_object *o, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*v = o->via.i64;
	else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
		*v = (int64_t)o->via.u64;
	else
		return WIRE_EMALFORMED;
	return 0;
}

static int get_bool(const msgpack_object *o, bool *v)
{
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return WIRE_EMALFORMED;
	*v = o->via.boolean;
	return 0;
}

/* A partition id: a uint32 below WIRE_MAX_PARTITIONS. */
static int get_partition(const msgpack_object *o, uint32_t *v)
{
	int err = get_u32(o, v);

	if (!err && *v >= WIRE_MAX_PARTITIONS)
		err = WIRE_ELIMIT;
	return err;
}

/* A byte string (bin, or str) of at most max bytes. */
static int get_bytes(const msgpack_object *o, uint32_t max, struct wire_bytes *b)
{
	if (o->type == MSGPACK_OBJECT_BIN) {
		b->ptr = o->via.bin.ptr;
		b->len = o->via.bin.size;
	} else if (o->type == MSGPACK_OBJECT_STR) {
		b->ptr = o->via.str.ptr;
		b->len = o->via.str.size;
	} else {
		return WIRE_EMALFORMED;
	}
	return b->len > max ? WIRE_ELIMIT : 0;
}

/* A byte string (bin, or str) of exactly n bytes, or also of 0 bytes if
 * may_be_empty; any other length is malformed (these are fixed-size
 * authentication fields, not sizes a peer chooses). */
static int get_fixed(const msgpack_object *o, uint32_t n, bool may_be_empty, struct wire_bytes *b)
{
	int err = get_bytes(o, UINT32_MAX, b);

	if (!err && b->len != n && (b->len != 0 || !may_be_empty))
		err = WIRE_EMALFORMED;
	return err;
}

/* An optional appended authentication field: f[i] if i < nfields (0 or n
 * bytes), else absent (length 0). */
static int get_opt_fixed(const msgpack_object *f, uint32_t nfields, uint32_t i, uint32_t n,
			 struct wire_bytes *b)
{
	if (i >= nfields) {
		b->ptr = NULL;
		b->len = 0;
		return 0;
	}
	return get_fixed(&f[i], n, true, b);
}

/* A record or client key: 1..WIRE_MAX_KEY_BYTES bytes. */
static int get_key(const msgpack_object *o, struct wire_bytes *b)
{
	int err = get_bytes(o, WIRE_MAX_KEY_BYTES, b);

	if (!err && b->len == 0)
		err = WIRE_EMALFORMED;
	return err;
}

/*
 * Reads an assignment from three fields [epoch, partition_count, partitions]
 * and copies the partition ids into m->parts_.
 */
static int get_assignment(struct wire_msg *m, const msgpack_object *f, struct wire_assignment *a)
{
	const msgpack_object *arr = &f[2];
	int err;

	err = get_u64(&f[0], &a->epoch);
	if (!err)
		err = get_u32(&f[1], &a->partition_count);
	if (!err && a->partition_count > WIRE_MAX_PARTITIONS)
		err = WIRE_ELIMIT;
	if (!err && arr->type != MSGPACK_OBJECT_ARRAY)
		err = WIRE_EMALFORMED;
	if (!err && arr->via.array.size > WIRE_MAX_PARTITIONS)
		err = WIRE_ELIMIT;
	if (err)
		return err;
	a->count = arr->via.array.size;
	m->parts_ = xmalloc(a->count * sizeof(*m->parts_));
	for (uint32_t i = 0; i < a->count && !err; i++)
		err = get_partition(&arr->via.array.ptr[i], &m->parts_[i]);
	a->partitions = m->parts_;
	return err;
}

/* Checks one DELIVER record and fills r from it. */
static int get_record(const msgpack_object *o, struct wire_record *r)
{
	const msgpack_object *f, *sids;
	int err;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < RECORD_FIELDS)
		return WIRE_EMALFORMED;
	f = o->via.array.ptr;
	err = get_partition(&f[0], &r->partition);
	if (!err)
		err = get_i64(&f[1], &r->offset);
	if (!err)
		err = get_i64(&f[2], &r->timestamp_ms);
	if (!err) {
		r->value_null = f[3].type == MSGPACK_OBJECT_NIL;
		if (r->value_null) {
			r->value.ptr = NULL;
			r->value.len = 0;
		} else {
			err = get_bytes(&f[3], UINT32_MAX, &r->value);
		}
	}
	if (err)
		return err;
	sids = &f[4];
	if (sids->type != MSGPACK_OBJECT_ARRAY)
		return WIRE_EMALFORMED;
	for (uint32_t j = 0; j < sids->via.array.size; j++)
		if (sids->via.array.ptr[j].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return WIRE_EMALFORMED;
	r->nsids = sids->via.array.size;
	r->sids_ = sids;
	return 0;
}

/* Checks every record of a DELIVER's records field. */
static int get_deliver(struct wire_msg *m, const msgpack_object *arr)
{
	struct wire_record r;
	int err = 0;

	if (arr->type != MSGPACK_OBJECT_ARRAY)
		return WIRE_EMALFORMED;
	for (uint32_t i = 0; i < arr->via.array.size && !err; i++)
		err = get_record(&arr->via.array.ptr[i], &r);
	if (!err) {
		m->u.deliver.count = arr->via.array.size;
		m->records_ = arr;
	}
	return err;
}

/* Fields each known type needs (more are ignored); 0 for unknown types. */
static uint32_t fields_needed(uint32_t type)
{
	static const uint8_t need[] = {
		[WIRE_HELLO] = 1,  [WIRE_EDGE_HELLO] = 6, [WIRE_ASSIGN] = 3,  [WIRE_SUB] = 4,
		[WIRE_UNSUB] = 1,  [WIRE_SUB_ACK] = 4,    [WIRE_DELIVER] = 1, [WIRE_UP] = 5,
		[WIRE_UP_ERR] = 3, [WIRE_FLOW] = 2,       [WIRE_RESYNC] = 1,  [WIRE_CHALLENGE] = 1,
	};

	return type < sizeof(need) / sizeof(need[0]) ? need[type] : 0;
}

/* Reads the fields f[0..nfields) of a message of known type m->type
 * (nfields >= fields_needed(m->type); optional appended fields are read when
 * present). */
static int decode_body(struct wire_msg *m, const msgpack_object *f, uint32_t nfields)
{
	int err = 0;

	switch (m->type) {
	case WIRE_HELLO:
		err = get_bytes(&f[0], WIRE_MAX_NAME_BYTES, &m->u.hello.router_id);
		if (!err)
			err = get_opt_fixed(f, nfields, 1, WIRE_NONCE_BYTES,
					    &m->u.hello.router_nonce);
		if (!err)
			err = get_opt_fixed(f, nfields, 2, WIRE_AUTH_BYTES, &m->u.hello.auth);
		break;
	case WIRE_EDGE_HELLO:
		err = get_bytes(&f[0], WIRE_MAX_NAME_BYTES, &m->u.edge_hello.edge_id);
		if (!err)
			err = get_bool(&f[1], &m->u.edge_hello.upstream);
		if (!err)
			err = get_assignment(m, &f[2], &m->u.edge_hello.assign);
		if (!err)
			err = get_u64(&f[5], &m->u.edge_hello.hello_seq);
		if (!err)
			err = get_opt_fixed(f, nfields, 6, WIRE_AUTH_BYTES, &m->u.edge_hello.auth);
		break;
	case WIRE_ASSIGN:
		err = get_assignment(m, &f[0], &m->u.assign);
		break;
	case WIRE_SUB:
		err = get_u64(&f[0], &m->u.sub.sid);
		if (!err)
			err = get_partition(&f[1], &m->u.sub.partition);
		if (!err)
			err = get_key(&f[2], &m->u.sub.key);
		if (!err)
			err = get_i64(&f[3], &m->u.sub.from_offset);
		break;
	case WIRE_UNSUB:
		err = get_u64(&f[0], &m->u.unsub.sid);
		break;
	case WIRE_SUB_ACK:
		err = get_u64(&f[0], &m->u.sub_ack.sid);
		if (!err)
			err = get_u32(&f[1], &m->u.sub_ack.status);
		if (!err)
			err = get_i64(&f[2], &m->u.sub_ack.start_offset);
		if (!err)
			err = get_bool(&f[3], &m->u.sub_ack.complete);
		break;
	case WIRE_DELIVER:
		err = get_deliver(m, &f[0]);
		break;
	case WIRE_UP:
		err = get_u64(&f[0], &m->u.up.sid);
		if (!err)
			err = get_partition(&f[1], &m->u.up.partition);
		if (!err)
			err = get_key(&f[2], &m->u.up.key);
		if (!err)
			err = get_bytes(&f[3], UINT32_MAX, &m->u.up.data);
		if (!err)
			err = get_bool(&f[4], &m->u.up.text);
		break;
	case WIRE_UP_ERR:
		err = get_u64(&f[0], &m->u.up_err.sid);
		if (!err)
			err = get_u32(&f[1], &m->u.up_err.code);
		if (!err)
			err = get_bytes(&f[2], WIRE_MAX_NAME_BYTES, &m->u.up_err.reason);
		break;
	case WIRE_FLOW:
		err = get_u64(&f[0], &m->u.flow.sid);
		if (!err)
			err = get_bool(&f[1], &m->u.flow.paused);
		break;
	case WIRE_RESYNC:
		err = get_bytes(&f[0], WIRE_MAX_NAME_BYTES, &m->u.resync.reason);
		break;
	case WIRE_CHALLENGE:
		err = get_fixed(&f[0], WIRE_NONCE_BYTES, false, &m->u.challenge.nonce);
		break;
	default:
		err = WIRE_EUNKNOWN;
		break;
	}
	return err;
}

int wire_decode(struct wire_msg *m, const void *buf, size_t len)
{
	const msgpack_object *top, *f;
	uint64_t version, type;
	uint32_t nfields, need;
	size_t off = 0;
	int err;

	memset(m, 0, sizeof(*m));
	if (len > WIRE_MAX_MSG_BYTES)
		return WIRE_ELIMIT;
	err = prescan(buf, len);
	if (err)
		return err;

	msgpack_unpacked_init(&m->up_);
	switch (msgpack_unpack_next(&m->up_, buf, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		/* Not something a peer can cause (STYLE 9): like xmalloc. */
		abort();
	default:
		/* The pre-pass accepted it, so this cannot happen. */
		err = WIRE_EMALFORMED;
		goto out;
	}

	/* The envelope. The version comes first so that a later version is
	 * recognised as such whatever else it changed. */
	top = &m->up_.data;
	if (top->type != MSGPACK_OBJECT_ARRAY || top->via.array.size == 0 ||
	    get_u64(&top->via.array.ptr[0], &version)) {
		err = WIRE_EMALFORMED;
		goto out;
	}
	if (version != WIRE_VERSION) {
		err = WIRE_EVERSION;
		goto out;
	}
	f = top->via.array.ptr;
	if (top->via.array.size < ENVELOPE_FIELDS || get_u64(&f[1], &type) || type > UINT32_MAX ||
	    get_u64(&f[2], &m->seq)) {
		err = WIRE_EMALFORMED;
		goto out;
	}
	m->type = (uint32_t)type;
	need = fields_needed(m->type);
	if (need == 0) {
		err = WIRE_EUNKNOWN;
		goto out;
	}
	nfields = top->via.array.size - ENVELOPE_FIELDS;
	if (nfields < need) {
		err = WIRE_EMALFORMED;
		goto out;
	}
	err = decode_body(m, f + ENVELOPE_FIELDS, nfields);

out:
	if (err) {
		uint32_t t = m->type;
		uint64_t s = m->seq;

		wire_msg_free(m);
		m->type = t;
		m->seq = s;
	}
	return err;
}

void wire_msg_free(struct wire_msg *m)
{
	msgpack_unpacked_destroy(&m->up_);
	free(m->parts_);
	m->parts_ = NULL;
	m->records_ = NULL;
	memset(&m->u, 0, sizeof(m->u));
}

void wire_deliver_get(const struct wire_msg *m, uint32_t i, struct wire_record *r)
{
	const msgpack_object *arr = m->records_;

	/* Validated by wire_decode, so the result is ignored. */
	(void)get_record(&arr->via.array.ptr[i], r);
}

uint64_t wire_record_sid(const struct wire_record *r, uint32_t j)
{
	const msgpack_object *sids = r->sids_;

	return sids->via.array.ptr[j].via.u64;
}

/* Encoding. */

/* msgpack_packer callback: appends len bytes to the wire_buf in data. */
static int buf_write(void *data, const char *p, size_t len)
{
	struct wire_buf *b = data;

	if (len == 0)
		return 0;
	if (b->cap - b->len < len) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap - b->len < len)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, len);
	b->len += len;
	return 0;
}

void wire_buf_init(struct wire_buf *b)
{
	memset(b, 0, sizeof(*b));
	msgpack_packer_init(&b->pk_, b, buf_write);
}

void wire_buf_reset(struct wire_buf *b)
{
	b->len = 0;
	b->seq_at_ = 0;
	b->count_at_ = 0;
	b->count_ = 0;
}

void wire_buf_free(struct wire_buf *b)
{
	free(b->data);
	wire_buf_init(b);
}

void *wire_buf_take(struct wire_buf *b)
{
	void *d = b->data;
	/* Room for a message like this one and half again (not the old
	 * capacity: one huge message must not make every later buffer huge). */
	b->cap = b->len + b->len / 2 > 256 ? b->len + b->len / 2 : 256;
	b->data = xmalloc(b->cap);
	wire_buf_reset(b);
	return d;
}

/*
 * Starts a message: the array header for the envelope plus nfields fields,
 * then version, type and seq. Returns the packer for the fields. (The packer
 * is re-pointed at b every time, so a wire_buf may be moved between calls.)
 */
static msgpack_packer *enc_start(struct wire_buf *b, uint32_t type, uint64_t seq, uint32_t nfields)
{
	msgpack_packer *pk = &b->pk_;

	msgpack_packer_init(pk, b, buf_write);
	msgpack_pack_array(pk, ENVELOPE_FIELDS + nfields);
	msgpack_pack_uint32(pk, WIRE_VERSION);
	msgpack_pack_uint32(pk, type);
	msgpack_pack_uint64(pk, seq);
	return pk;
}

/* Packs a byte string as msgpack bin. */
static void enc_bytes(msgpack_packer *pk, const struct wire_bytes *s)
{
	msgpack_pack_bin(pk, s->len);
	msgpack_pack_bin_body(pk, s->ptr, s->len);
}

static void enc_bool(msgpack_packer *pk, bool v)
{
	if (v)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

/* Packs the three assignment fields. */
static void enc_assignment(msgpack_packer *pk, const struct wire_assignment *a)
{
	msgpack_pack_uint64(pk, a->epoch);
	msgpack_pack_uint32(pk, a->partition_count);
	msgpack_pack_array(pk, a->count);
	for (uint32_t i = 0; i < a->count; i++)
		msgpack_pack_uint32(pk, a->partitions[i]);
}

void wire_enc_hello(struct wire_buf *b, uint64_t seq, const struct wire_hello *h)
{
	/* The authentication fields only when there are any, so that an
	 * unauthenticated HELLO stays the HELLO of before, byte for byte. */
	bool auth = h->router_nonce.len || h->auth.len;
	msgpack_packer *pk = enc_start(b, WIRE_HELLO, seq, auth ? 3 : 1);

	enc_bytes(pk, &h->router_id);
	if (auth) {
		enc_bytes(pk, &h->router_nonce);
		enc_bytes(pk, &h->auth);
	}
}

void wire_enc_edge_hello(struct wire_buf *b, uint64_t seq, const struct wire_edge_hello *h)
{
	bool auth = h->auth.len != 0;
	msgpack_packer *pk = enc_start(b, WIRE_EDGE_HELLO, seq, auth ? 7 : 6);

	enc_bytes(pk, &h->edge_id);
	enc_bool(pk, h->upstream);
	enc_assignment(pk, &h->assign);
	msgpack_pack_uint64(pk, h->hello_seq);
	if (auth)
		enc_bytes(pk, &h->auth);
}

void wire_enc_assign(struct wire_buf *b, uint64_t seq, const struct wire_assignment *a)
{
	msgpack_packer *pk = enc_start(b, WIRE_ASSIGN, seq, 3);

	enc_assignment(pk, a);
}

void wire_enc_sub(struct wire_buf *b, uint64_t seq, const struct wire_sub *s)
{
	msgpack_packer *pk = enc_start(b, WIRE_SUB, seq, 4);

	msgpack_pack_uint64(pk, s->sid);
	msgpack_pack_uint32(pk, s->partition);
	enc_bytes(pk, &s->key);
	msgpack_pack_int64(pk, s->from_offset);
}

void wire_enc_unsub(struct wire_buf *b, uint64_t seq, const struct wire_unsub *u)
{
	msgpack_packer *pk = enc_start(b, WIRE_UNSUB, seq, 1);

	msgpack_pack_uint64(pk, u->sid);
}

void wire_enc_sub_ack(struct wire_buf *b, uint64_t seq, const struct wire_sub_ack *a)
{
	msgpack_packer *pk = enc_start(b, WIRE_SUB_ACK, seq, 4);

	msgpack_pack_uint64(pk, a->sid);
	msgpack_pack_uint32(pk, a->status);
	msgpack_pack_int64(pk, a->start_offset);
	enc_bool(pk, a->complete);
}

void wire_enc_up(struct wire_buf *b, uint64_t seq, const struct wire_up *u)
{
	msgpack_packer *pk = enc_start(b, WIRE_UP, seq, 5);

	msgpack_pack_uint64(pk, u->sid);
	msgpack_pack_uint32(pk, u->partition);
	enc_bytes(pk, &u->key);
	enc_bytes(pk, &u->data);
	enc_bool(pk, u->text);
}

void wire_enc_up_err(struct wire_buf *b, uint64_t seq, const struct wire_up_err *e)
{
	msgpack_packer *pk = enc_start(b, WIRE_UP_ERR, seq, 3);

	msgpack_pack_uint64(pk, e->sid);
	msgpack_pack_uint32(pk, e->code);
	enc_bytes(pk, &e->reason);
}

void wire_enc_flow(struct wire_buf *b, uint64_t seq, const struct wire_flow *f)
{
	msgpack_packer *pk = enc_start(b, WIRE_FLOW, seq, 2);

	msgpack_pack_uint64(pk, f->sid);
	enc_bool(pk, f->paused);
}

void wire_enc_resync(struct wire_buf *b, uint64_t seq, const struct wire_resync *r)
{
	msgpack_packer *pk = enc_start(b, WIRE_RESYNC, seq, 1);

	enc_bytes(pk, &r->reason);
}

void wire_enc_challenge(struct wire_buf *b, uint64_t seq, const struct wire_challenge *c)
{
	msgpack_packer *pk = enc_start(b, WIRE_CHALLENGE, seq, 1);

	enc_bytes(pk, &c->nonce);
}

/*
 * DELIVER: [1, 7, seq, records] with seq written as uint64 (0xcf + 8 bytes)
 * and the records array header as array32 (0xdd + 4 bytes), so that both can
 * be patched in place by wire_enc_deliver_end.
 */
void wire_enc_deliver_begin(struct wire_buf *b)
{
	static const char head[] = {
		(char)(0x90 | (ENVELOPE_FIELDS + 1)),
		WIRE_VERSION,
		WIRE_DELIVER,
	};
	static const char placeholder[14] = { (char)0xcf, [9] = (char)0xdd };

	msgpack_packer_init(&b->pk_, b, buf_write);
	buf_write(b, head, sizeof(head));
	b->seq_at_ = b->len;
	b->count_at_ = b->len + 9;
	b->count_ = 0;
	buf_write(b, placeholder, sizeof(placeholder));
}

void wire_enc_deliver_record(struct wire_buf *b, const struct wire_record *r, const uint64_t *sids,
			     uint32_t nsids)
{
	msgpack_packer *pk = &b->pk_;

	msgpack_packer_init(pk, b, buf_write);
	msgpack_pack_array(pk, RECORD_FIELDS);
	msgpack_pack_uint32(pk, r->partition);
	msgpack_pack_int64(pk, r->offset);
	msgpack_pack_int64(pk, r->timestamp_ms);
	if (r->value_null)
		msgpack_pack_nil(pk);
	else
		enc_bytes(pk, &r->value);
	msgpack_pack_array(pk, nsids);
	for (uint32_t j = 0; j < nsids; j++)
		msgpack_pack_uint64(pk, sids[j]);
	b->count_++;
}

void wire_enc_deliver_end(struct wire_buf *b, uint64_t seq)
{
	be_write(b->data + b->seq_at_ + 1, seq, 8);
	be_write(b->data + b->count_at_ + 1, b->count_, 4);
}

uint32_t wire_deliver_records(const struct wire_buf *b)
{
	return b->count_;
}
