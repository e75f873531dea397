/*
 * routers: the edge's links to the routers that connected to it. It accepts
 * them, leaves the link protocol (CHALLENGE, HELLO, numbering, resync;
 * common/PROTOCOL.md) to common/peer, answers HELLO with the assignment,
 * batches DELIVERs per router and hands the application messages (SUB, UP)
 * to the edge through a handler.
 * Runs on the edge's loop thread; nng's threads only call the wake function.
 */
#ifndef KWS_EDGE_ROUTERS_H
#define KWS_EDGE_ROUTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "linkauth.h"
#include "subs.h"
#include "wire.h"

struct routers;

/* What a router asks of the edge. Called on the loop thread, from
 * routers_poll. `link` names the router link for the answer. */
struct routers_handler {
	/* A session subscribes (SUB): the handler answers with routers_sub_ack. */
	void (*on_sub)(void *arg, uint32_t link, const struct wire_sub *s);
	/* A client's frame for the inbound topic (UP). */
	void (*on_up)(void *arg, uint32_t link, const struct wire_up *u);
	void *arg;
};

struct routers_config {
	const char *listen;                   /* nng URL */
	const char *edge_id;                  /* shown to routers in EDGE_HELLO */
	bool upstream;                        /* an inbound topic is configured */
	size_t batch_bytes;                   /* send a DELIVER batch at this size */
	const struct linkauth_secret *secret; /* borrowed; empty: no authentication */
	chan_wake_fn wake;                    /* wakes the owner's loop (from any thread) */
	void *wake_arg;
};

/* Starts listening. subs (borrowed) is the subscription table the links'
 * UNSUB, FLOW, HELLO and departures edit. Returns NULL with err set. */
struct routers *routers_new(const struct routers_config *cfg, struct subs *subs,
			    const struct routers_handler *h, char *err, size_t errlen);
/* Closes every link and the listener. Accepts NULL. */
void routers_free(struct routers *r);

/* Takes new connections and what routers sent (calling the handler), drops
 * ended links and sends the open batches. Call when the wake fd fired. */
void routers_poll(struct routers *r);

/* Closes the links that did not say HELLO in time. Every loop turn. */
void routers_tick(struct routers *r);

/* Sets the assignment told in every EDGE_HELLO and sends it as ASSIGN to
 * every router, after what was already batched. owned[0..count) is copied. */
void routers_assign(struct routers *r, uint64_t epoch, uint32_t partition_count,
		    const uint32_t *owned, uint32_t count);

/* Adds record rec for sessions sids[0..n) of link `link` to its DELIVER batch
 * (sent at the batch size or by routers_flush). Returns 0, or -1 when the link
 * is gone or has not said HELLO (nothing is sent). */
int routers_deliver(struct routers *r, uint32_t link, const struct wire_record *rec,
		    const uint64_t *sids, uint32_t n);
/* Sends every open batch. */
void routers_flush(struct routers *r);

/* True while a router's link has a deep send queue (a quarter of its
 * bound, until it is back to a sixteenth): the router reads slower than
 * Kafka is read (a backlog drains), and the edge takes no more records until
 * it catches up (consumer.c). Without that the queue would fill and the link
 * close, and the router resync and replay from Kafka. The link's wake
 * callback fires when it is back to the low mark. *deep_tx is the sum of the
 * bytes the deep links have written in their lives: while it grows, their
 * routers are reading. */
bool routers_backlogged(struct routers *r, uint64_t *deep_tx);
/* The same for one link: true while its send queue is deep (false if the
 * link is gone). A replay from the tail gives such a link nothing more
 * until it is back to the low mark (replay.c). */
bool routers_link_deep(struct routers *r, uint32_t link);

/* Answers a SUB (after the records already batched for that link). */
void routers_sub_ack(struct routers *r, uint32_t link, uint64_t sid, uint32_t status, int64_t start,
		     bool complete);
/* Tells a session its upstream frame was refused (UP_ERR). Ignored when the
 * link is gone. */
void routers_up_error(struct routers *r, uint32_t link, uint64_t sid, uint32_t code,
		      const char *reason);

struct routers_stats {
	size_t links;
	size_t preauth;        /* links that have not said HELLO yet */
	uint64_t delivered;    /* record copies batched for sessions */
	uint64_t dropped_send; /* sends refused (queue full, link closed) */
	uint64_t malformed, gaps, unknown, auth_failures;
	uint64_t hello_timeouts; /* links closed for saying no HELLO in time */
	uint64_t refused;        /* connections refused: too many links */
	uint64_t preauth_closed; /* links that ended before HELLO, for any reason */
	uint64_t deep;           /* times a link's send queue became deep */
};
void routers_get_stats(const struct routers *r, struct routers_stats *st);

struct routers_link_info {
	const char *router_id; /* NULL before HELLO */
	const char *address;
	bool hello;
};
/* Link i (0 <= i < links) of the stats; valid until routers_poll. */
void routers_link_info(const struct routers *r, size_t i, struct routers_link_info *out);

#endif
