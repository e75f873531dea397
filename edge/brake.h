/*
 * brake: whether the edge holds Kafka's records back for a slow router.
 *
 * A backlog drains from Kafka faster than a router can write it to its
 * clients; the router's link has a bounded send queue on the edge, and a
 * full queue closes the link (the router then resyncs and has the rest
 * replayed from Kafka). So while a link's queue is deep (routers_backlogged)
 * the edge takes no more records, and the backlog waits in Kafka, where it
 * costs nothing. It does so as long as the router keeps reading: a router
 * slower than Kafka (compressing for many sessions, more clients than
 * cores) then paces the edge, however long the backlog lasts.
 *
 * Two bounds end a hold, and the edge then consumes on (the link is closed
 * if its queue fills):
 *  - BRAKE_STALL_MS without a byte taken by the backlogged links: a router
 *    that stopped reading, or a peer gone without a reset, must not stall
 *    the other routers of the edge;
 *  - BRAKE_MAX_MS in one hold: the group's rebalance callbacks come through
 *    the same consumer queue, behind the held records, so a hold delays a
 *    rebalance by as long.
 * A hold ends at once when no link is deep any more. Pure: consumer.c
 * feeds it the links' state and the time.
 */
#ifndef KWS_BRAKE_H
#define KWS_BRAKE_H

#include <stdbool.h>
#include <stdint.h>

#define BRAKE_STALL_MS 1000
#define BRAKE_MAX_MS 5000

enum brake_verdict {
	BRAKE_OFF,      /* no link is backlogged: consume */
	BRAKE_HOLD,     /* take no records now */
	BRAKE_STALLED,  /* backlogged, but its links took nothing for BRAKE_STALL_MS: consume */
	BRAKE_TOO_LONG, /* backlogged for BRAKE_MAX_MS: consume */
};

struct brake {
	int64_t since;               /* the backlog began (ms), 0: none */
	int64_t moved;               /* when the backlogged links last took bytes (ms) */
	uint64_t tx;                 /* the bytes they had written then */
	enum brake_verdict released; /* why this backlog is not held, BRAKE_OFF: it is */
};

/* What to do now: backlogged says whether a link is deep, tx the bytes the
 * deep links have written in their lives (while it grows, their routers
 * read), now_ms a monotonic clock. A backlog released as stalled is held
 * again once its links take bytes again (the router was slow, not gone:
 * holding beats filling its queue); one released as too long stays released
 * until no link is deep. Zero-initialise b. */
enum brake_verdict brake_check(struct brake *b, bool backlogged, uint64_t tx, int64_t now_ms);

#endif
