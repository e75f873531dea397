/*
 * sessions: the router's client sessions, by session id, by client id and by
 * partition, each with its position and its bounded queue of messages to
 * write. Holds the session state machine (see enum session_state). Pure: the
 * lws connection is an opaque pointer the glue stores in conn.
 */
#ifndef KWS_SESSIONS_H
#define KWS_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"
#include "recbuf.h"

/*
 *   WAITING --pin--> SUBSCRIBING --ack ok--> LIVE
 *      ^                  |                   |
 *      +----- unpin (owner moved, link lost, ack not-owner) ----+
 *   any state --close--> CLOSING (nothing more is queued)
 */
enum session_state {
	SESSION_WAITING = 0, /* no owner known, or its link is down */
	SESSION_SUBSCRIBING, /* SUB sent to edge, waiting for SUB_ACK */
	SESSION_LIVE,        /* the edge delivers; records are queued */
	SESSION_CLOSING,     /* closing; the queue is dropped */
};
const char *sessions_state_name(enum session_state s);

/* One message waiting to be written to the client: its payload is
 * head[0..hlen) (the kws.v1 position line, or a whole status line) followed
 * by the record value body, shared with every other session that queued the
 * same record (or none). */
struct outmsg {
	struct outmsg *next;
	struct recbuf *body; /* one reference, or NULL */
	uint32_t len;        /* payload bytes: hlen + body->len */
	uint32_t hlen;
	uint32_t cost;  /* what it counts in the session's qbytes (sessions_msg_cost) */
	uint8_t opcode; /* the frame's opcode once the writer chose it, else 0 */
	int64_t offset;
	int64_t timestamp_ms; /* the record's Kafka timestamp, -1 if none */
	unsigned char head[];
};

struct session {
	struct hnode by_sid;
	struct hnode by_client;
	struct session *pprev, *pnext; /* partition list */
	uint64_t sid;
	enum session_state state;
	uint32_t partition;
	int edge;            /* edge index it is pinned to, or -1 */
	int64_t next_offset; /* position: next offset wanted, -1 = live (none yet) */
	struct outmsg *qhead, **qtail;
	size_t qbytes; /* the sum of the queued messages' cost */
	uint32_t qcount;
	/* Bytes of the oldest message's frame already on the socket (the writer
	 * sets it after a short write, sessions_pop_free clears it): a message
	 * cut this way stays queued until its frame is whole, even when the
	 * session closes, so nothing else lands inside the frame. */
	uint32_t qsent;
	void *conn;            /* the glue's connection handle */
	bool framed;           /* kws.v1: messages carry their position */
	bool throttled;        /* unsubscribed while its queue drains (slow client) */
	int64_t last_write_ms; /* when the client last took a message */
	bool presented;        /* the client presented a position */
	bool status_sent;      /* kws.v1: the first status line went out */
	bool foreign_position; /* the presented position was for another partition */
	int64_t presented_offset;
	uint32_t id_len;
	char id[]; /* client id, NUL-terminated */
};

struct sessions {
	struct hmap by_sid;
	struct hmap by_client;
	struct session **part; /* [nparts] heads of the partition lists */
	uint32_t nparts;
	uint64_t next_sid;
	size_t count;
};

void sessions_init(struct sessions *t);
/* Frees every session and its queue; accepts a zeroed table. */
void sessions_free(struct sessions *t);

/* Creates a WAITING session for client id (idlen > 0) in partition.
 * The table owns it until sessions_delete. */
struct session *sessions_create(struct sessions *t, const char *id, size_t idlen,
				uint32_t partition, void *conn);
void sessions_delete(struct sessions *t, struct session *s);
struct session *sessions_get(const struct sessions *t, uint64_t sid);
/* The first session of partition p (then follow ->pnext), or NULL. */
struct session *sessions_in_partition(const struct sessions *t, uint32_t p);
/* Calls fn for each session of client id (fn may delete the session it is
 * given); returns how many there were. */
size_t sessions_for_client(const struct sessions *t, const char *id, size_t idlen,
			   void (*fn)(struct session *s, void *arg), void *arg);

/* State transitions; each returns 0, or -1 if not allowed from the current
 * state (the session is left unchanged). */
int sessions_pin(struct session *s, int edge); /* WAITING -> SUBSCRIBING */
/* SUBSCRIBING -> LIVE. start_offset (SUB_ACK) becomes the position when the
 * session has none, or when it is lower (the position was past the end). */
int sessions_acked(struct session *s, int64_t start_offset);
int sessions_unpin(struct session *s); /* SUBSCRIBING|LIVE -> WAITING */
/* any -> CLOSING: drops the queue, except a message whose frame is partly
 * written (qsent > 0), which stays for the writer to finish. */
void sessions_close(struct session *s);

/* Outcome of offering a record to a session. */
enum session_offer {
	SESSION_QUEUED = 0, /* queued; the glue asks for a write callback */
	SESSION_DUPLICATE,  /* offset below the position: dropped */
	SESSION_NOT_LIVE,   /* not LIVE (or CLOSING): dropped */
	SESSION_OVERFLOW,   /* the queue would pass max_bytes: not queued */
};
/* What one queued message counts against a session's bound: the message
 * itself (its struct and head) and the whole shared buffer it points into,
 * as if no other session shared it, so that a queue's bound also bounds
 * the memory its queue alone would keep alive. */
size_t sessions_msg_cost(size_t hlen, const struct recbuf *body);
/* Offers the record at offset to s: checks state and position, queues
 * prefix[0..plen) (copied; the kws.v1 position line) followed by body (a
 * reference is taken; body may be NULL for an empty value) unless the
 * queue's cost would pass max_bytes, and advances the position. The prefix
 * and the shared buffer count against max_bytes (sessions_msg_cost). */
enum session_offer sessions_offer_prefixed(struct sessions *t, struct session *s, int64_t offset,
					   int64_t timestamp_ms, const void *prefix, size_t plen,
					   struct recbuf *body, size_t max_bytes);
/* The same without a prefix or timestamp, for data[0..len) (copied into a
 * buffer of its own). */
enum session_offer sessions_offer(struct sessions *t, struct session *s, int64_t offset,
				  const void *data, size_t len, size_t max_bytes);
/* Queues a message that is not a record (a kws.v1 status line): no state or
 * position check, no limit. */
void sessions_push(struct sessions *t, struct session *s, const void *data, size_t len);
/* The oldest queued message, or NULL; then sessions_pop_free to consume it
 * (which drops its reference to the shared buffer). */
struct outmsg *sessions_peek(struct session *s);
void sessions_pop_free(struct session *s);

#endif
