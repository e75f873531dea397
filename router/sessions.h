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

/* One message waiting to be written to the client. data[] starts with
 * `headroom` spare bytes (lws needs LWS_PRE before the payload). */
struct outmsg {
	struct outmsg *next;
	uint32_t len;
	int64_t offset;
	int64_t timestamp_ms; /* the record's Kafka timestamp, -1 if none */
	unsigned char data[];
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
	size_t qbytes;
	uint32_t qcount;
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
	size_t headroom;
	size_t count;
};

void sessions_init(struct sessions *t, size_t headroom);
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
int sessions_unpin(struct session *s);  /* SUBSCRIBING|LIVE -> WAITING */
void sessions_close(struct session *s); /* any -> CLOSING, drops the queue */

/* Outcome of offering a record to a session. */
enum session_offer {
	SESSION_QUEUED = 0, /* queued; the glue asks for a write callback */
	SESSION_DUPLICATE,  /* offset below the position: dropped */
	SESSION_NOT_LIVE,   /* not LIVE (or CLOSING): dropped */
	SESSION_OVERFLOW,   /* the queue would pass max_bytes: not queued */
};
/* Offers record (offset, data[0..len)) to s: checks state and position,
 * copies it into the queue unless it would exceed max_bytes, and advances the
 * position. */
enum session_offer sessions_offer(struct sessions *t, struct session *s, int64_t offset,
				  const void *data, size_t len, size_t max_bytes);
/* The same, with prefix[0..plen) written before the data in one message (the
 * kws.v1 header line). The prefix counts against max_bytes. */
enum session_offer sessions_offer_prefixed(struct sessions *t, struct session *s, int64_t offset,
					   int64_t timestamp_ms, const void *prefix, size_t plen,
					   const void *data, size_t len, size_t max_bytes);
/* Queues a message that is not a record (a kws.v1 status line): no state or
 * position check, no limit. */
void sessions_push(struct sessions *t, struct session *s, const void *data, size_t len);
/* The oldest queued message, or NULL; then sessions_pop_free to consume it. */
struct outmsg *sessions_peek(struct session *s);
void sessions_pop_free(struct session *s);

#endif
