/*
 * wire: the router<->edge protocol, encoded with msgpack (spec: PROTOCOL.md
 * beside this file). The one place that knows the byte layout: everything
 * else builds structs and calls wire_enc_*, or calls wire_decode and reads
 * structs. Pure: no I/O, no nng, no Kafka.
 */
#ifndef KWS_WIRE_H
#define KWS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define WIRE_VERSION 1

/* Limits (PROTOCOL.md, "Limits"). A decoder rejects anything beyond them. */
#define WIRE_MAX_MSG_BYTES (16u * 1024 * 1024) /* one message (frame payload) */
#define WIRE_MAX_KEY_BYTES 1024u               /* client id / record key */
#define WIRE_MAX_NAME_BYTES 256u               /* router id, edge id, reason */
#define WIRE_MAX_PARTITIONS 100000u            /* partition count and ids */
#define WIRE_MAX_DEPTH 4                       /* msgpack nesting */

/* Link authentication fields (PROTOCOL.md, "Authentication"): exact sizes.
 * common/linkauth.h computes and checks them (LINKAUTH_NONCE, LINKAUTH_MAC). */
#define WIRE_NONCE_BYTES 16u /* CHALLENGE nonce, HELLO router_nonce */
#define WIRE_AUTH_BYTES 32u  /* HELLO and EDGE_HELLO auth (HMAC-SHA256) */

enum wire_type {
	WIRE_HELLO = 1,      /* router -> edge: start (or restart) the link */
	WIRE_EDGE_HELLO = 2, /* edge -> router: reply, with the assignment */
	WIRE_ASSIGN = 3,     /* edge -> router: the edge's partitions changed */
	WIRE_SUB = 4,        /* router -> edge: deliver a key to a session */
	WIRE_UNSUB = 5,      /* router -> edge: stop delivering to a session */
	WIRE_SUB_ACK = 6,    /* edge -> router: outcome of a SUB */
	WIRE_DELIVER = 7,    /* edge -> router: a batch of records */
	WIRE_UP = 8,         /* router -> edge: a frame a client sent */
	WIRE_UP_ERR = 9,     /* edge -> router: an upstream frame failed */
	WIRE_FLOW = 10,      /* router -> edge: pause/resume one session */
	WIRE_RESYNC = 11,    /* edge -> router: send HELLO again */
	WIRE_CHALLENGE = 12, /* edge -> router: first message, the edge's nonce
			      * (seq 0, outside the numbering) */
};

/* Errors returned by wire_decode (negative, as CONTRIBUTING.md's convention). */
enum wire_err {
	WIRE_OK = 0,
	WIRE_ETRUNC = -1,     /* input ends inside a value, or bytes follow it */
	WIRE_EVERSION = -2,   /* version field is not WIRE_VERSION */
	WIRE_EUNKNOWN = -3,   /* well-formed envelope of an unknown type */
	WIRE_EMALFORMED = -4, /* not msgpack, or a field missing / of wrong type */
	WIRE_ELIMIT = -5,     /* a size or count over the limits above */
};
const char *wire_strerror(int err);

/* Offsets: a real Kafka offset is >= 0. WIRE_OFFSET_LIVE in SUB means "from the
 * live end" (no position). */
#define WIRE_OFFSET_LIVE (-1)

/* SUB_ACK status. */
enum wire_sub_status {
	WIRE_SUB_OK = 0,
	WIRE_SUB_NOT_OWNER = 1, /* the edge does not own the partition (now) */
	WIRE_SUB_BAD = 2,       /* partition >= the topic's partition count, or
				 * from_offset < -1 (an empty key never gets
				 * here: wire_decode rejects it as malformed) */
};

/* UP_ERR codes. (The tag is not wire_up_err: C puts enum and struct tags in
 * one namespace, and struct wire_up_err is the message.) */
enum wire_up_code {
	WIRE_UP_DISABLED = 1, /* the edge has no inbound topic */
	WIRE_UP_FAILED = 2,   /* producing to the inbound topic failed */
	WIRE_UP_NOT_OWNER = 3,
	WIRE_UP_NO_TOPIC = 4, /* the inbound topic does not exist: a retry cannot help */
};

/* Byte strings point into the decoded input (or, for encoding, the caller's
 * memory); they are not NUL-terminated. */
struct wire_bytes {
	const char *ptr;
	uint32_t len;
};

/* HELLO. router_nonce and auth are optional appended fields (PROTOCOL.md,
 * "Authentication"): decoded as length 0 when absent; when present,
 * router_nonce is exactly WIRE_NONCE_BYTES and auth exactly WIRE_AUTH_BYTES
 * (any other length is malformed, except 0). The encoder appends them only if
 * either has a length (then both, an absent one as an empty bin), so a HELLO
 * without them is byte for byte the version-1 HELLO of before. */
struct wire_hello {
	struct wire_bytes router_id;
	struct wire_bytes router_nonce; /* 0 or WIRE_NONCE_BYTES */
	struct wire_bytes auth;         /* 0 or WIRE_AUTH_BYTES: the router's proof */
};

/* The assignment an edge holds. partitions[] has count entries. In a decoded
 * message it points into the message's storage (valid until wire_msg_free). */
struct wire_assignment {
	uint64_t epoch;           /* strictly increases with each change, per edge */
	uint32_t partition_count; /* partitions of the delivery topic, 0 unknown */
	uint32_t count;
	const uint32_t *partitions;
};

struct wire_edge_hello {
	struct wire_bytes edge_id; /* unique per edge process (restart = new id) */
	bool upstream;             /* the edge produces UP frames to a topic */
	struct wire_assignment assign;
	uint64_t hello_seq;     /* seq of the HELLO this answers (PROTOCOL.md,
			     * "Numbering"); required on the wire */
	struct wire_bytes auth; /* optional appended field: 0 (absent) or
				 * WIRE_AUTH_BYTES, the edge's proof; appended
				 * by the encoder only when its length is not 0 */
};

struct wire_sub {
	uint64_t sid;
	uint32_t partition;
	struct wire_bytes key;
	int64_t from_offset; /* >= 0, or WIRE_OFFSET_LIVE */
};

struct wire_unsub {
	uint64_t sid;
};

struct wire_sub_ack {
	uint64_t sid;
	uint32_t status;      /* enum wire_sub_status */
	int64_t start_offset; /* first offset the edge will deliver from, -1 unknown */
	bool complete;        /* every record from from_offset on is still there */
};

/* One record of a DELIVER batch. sids are read with wire_record_sid(). */
struct wire_record {
	uint32_t partition;
	int64_t offset;
	int64_t timestamp_ms; /* Kafka record timestamp, -1 if none */
	struct wire_bytes value;
	bool value_null; /* a Kafka tombstone (value.len is 0) */
	uint32_t nsids;
	const void *sids_; /* private: the decoded sid array */
};

struct wire_up {
	uint64_t sid;
	uint32_t partition;
	struct wire_bytes key;
	struct wire_bytes data;
	bool text;
};

struct wire_up_err {
	uint64_t sid;
	uint32_t code; /* enum wire_up_code */
	struct wire_bytes reason;
};

struct wire_flow {
	uint64_t sid;
	bool paused;
};

struct wire_resync {
	struct wire_bytes reason;
};

/* CHALLENGE: the edge's per-connection nonce, exactly WIRE_NONCE_BYTES (any
 * other length is malformed). */
struct wire_challenge {
	struct wire_bytes nonce;
};

/* A decoded message. Its byte strings point into the input buffer, which must
 * outlive it; its arrays live in storage freed by wire_msg_free(). */
struct wire_msg {
	uint32_t type; /* enum wire_type, or the unknown type number */
	uint64_t seq;  /* link sequence number (PROTOCOL.md, "Numbering") */
	union {
		struct wire_hello hello;
		struct wire_edge_hello edge_hello;
		struct wire_assignment assign;
		struct wire_sub sub;
		struct wire_unsub unsub;
		struct wire_sub_ack sub_ack;
		struct wire_up up;
		struct wire_up_err up_err;
		struct wire_flow flow;
		struct wire_resync resync;
		struct wire_challenge challenge;
		struct {
			uint32_t count; /* records; read with wire_deliver_get() */
		} deliver;
	} u;
	/* private */
	msgpack_unpacked up_;
	uint32_t *parts_;
	const void *records_;
};

/* Decodes one message from buf[0..len). Returns 0, or a negative enum wire_err.
 * m need not be initialised (it is overwritten; free a previous decode first).
 * On 0 the caller must call wire_msg_free(m). On WIRE_EUNKNOWN, m->type and
 * m->seq are set (so the receiver can count the message and keep numbering)
 * and nothing needs freeing; on any other error nothing needs freeing either,
 * and m->type/m->seq hold what the envelope said if it could be read, else 0
 * (for logging only). Every field, every DELIVER record and sid is checked
 * here. Before msgpack-c sees the input, a pre-pass checks every declared
 * length and count against the bytes present (PROTOCOL.md, "Decoder
 * safety"), so it never allocates more than a small multiple of len. */
int wire_decode(struct wire_msg *m, const void *buf, size_t len);
/* Frees what wire_decode allocated; accepts a zeroed or freed msg. */
void wire_msg_free(struct wire_msg *m);

/* For a decoded WIRE_DELIVER: fills *r with record i (i < m->u.deliver.count).
 * Every record was validated by wire_decode, so this cannot fail. */
void wire_deliver_get(const struct wire_msg *m, uint32_t i, struct wire_record *r);
/* Session id j (j < r->nsids) of a decoded record. */
uint64_t wire_record_sid(const struct wire_record *r, uint32_t j);

/* A growable output buffer, reused across messages to avoid reallocations. */
struct wire_buf {
	char *data;
	size_t len, cap;
	/* private: DELIVER batch state */
	size_t seq_at_, count_at_;
	uint32_t count_;
	msgpack_packer pk_;
};

void wire_buf_init(struct wire_buf *b);
void wire_buf_reset(struct wire_buf *b); /* len = 0, keeps the memory */
void wire_buf_free(struct wire_buf *b);
/* Hands b's bytes (b->len of them, malloc'ed) to the caller, who frees them,
 * and gives b a new buffer of 1.5 times that length, so a next message like
 * this one is written without reallocations. */
void *wire_buf_take(struct wire_buf *b);

/* Encoders: each one appends exactly one whole message to b (call
 * wire_buf_reset first to start a new one). They cannot fail, and they do not
 * check the limits: a caller that passes an empty or over-long key, an
 * over-long name or a partition >= WIRE_MAX_PARTITIONS gets a message the
 * receiver rejects. */
void wire_enc_hello(struct wire_buf *b, uint64_t seq, const struct wire_hello *h);
void wire_enc_edge_hello(struct wire_buf *b, uint64_t seq, const struct wire_edge_hello *h);
void wire_enc_assign(struct wire_buf *b, uint64_t seq, const struct wire_assignment *a);
void wire_enc_sub(struct wire_buf *b, uint64_t seq, const struct wire_sub *s);
void wire_enc_unsub(struct wire_buf *b, uint64_t seq, const struct wire_unsub *u);
void wire_enc_sub_ack(struct wire_buf *b, uint64_t seq, const struct wire_sub_ack *a);
void wire_enc_up(struct wire_buf *b, uint64_t seq, const struct wire_up *u);
void wire_enc_up_err(struct wire_buf *b, uint64_t seq, const struct wire_up_err *e);
void wire_enc_flow(struct wire_buf *b, uint64_t seq, const struct wire_flow *f);
void wire_enc_resync(struct wire_buf *b, uint64_t seq, const struct wire_resync *r);
/* CHALLENGE is sent with seq 0 (PROTOCOL.md, "Authentication"); the encoder
 * writes whatever seq it is given. */
void wire_enc_challenge(struct wire_buf *b, uint64_t seq, const struct wire_challenge *c);

/* A DELIVER batch is built record by record, because its count and its
 * sequence number are known only when it is sent: begin() writes the envelope
 * with fixed-width placeholders, record() appends one record (r->nsids and
 * r->sids_ are ignored; sids[0..nsids) are written), end() fills in seq and
 * the record count. wire_deliver_records(b) tells how many were added. */
void wire_enc_deliver_begin(struct wire_buf *b);
void wire_enc_deliver_record(struct wire_buf *b, const struct wire_record *r, const uint64_t *sids,
			     uint32_t nsids);
void wire_enc_deliver_end(struct wire_buf *b, uint64_t seq);
uint32_t wire_deliver_records(const struct wire_buf *b);

#endif
