/*
 * pins: which edge serves each session. Pins a waiting session to the owner
 * of its partition (SUB from its position), re-pins when ownership moves,
 * throttles a slow client (unsubscribes until its queue drains) and closes
 * clients in two phases (marked here, closed in their writeable callback).
 */
#ifndef KWS_ROUTER_PINS_H
#define KWS_ROUTER_PINS_H

#include <stdint.h>

struct router;
struct session;

/* Pins a WAITING, unthrottled session to its partition's owner, if that
 * owner's link is up: sends SUB from the session's position. */
void pins_try(struct router *r, struct session *s);
/* Pins every waiting session again (after a SUB_ACK "not the owner"). */
void pins_retry_waiting(struct router *r);

/* Asks lws to close the client of s with code and reason (in its next
 * writeable callback; STYLE 7): unsubscribes it and drops its queue. The
 * session stays until LWS_CALLBACK_CLOSED (pins_forget). Safe to call twice. */
void pins_close(struct router *r, struct session *s, int code, const char *reason);
/* The client of s has gone (LWS_CALLBACK_CLOSED): unsubscribes and deletes
 * the session. */
void pins_forget(struct router *r, struct session *s);

/* A slow client: its queue reached half of --queue-bytes. Unsubscribes it at
 * the edge until it has taken most of its queue (pins_unthrottle), then it
 * subscribes again from its position and the edge replays the rest. */
void pins_throttle(struct router *r, struct session *s);
void pins_unthrottle(struct router *r, struct session *s);
/* Closes throttled clients that took nothing for --stall-timeout-ms. */
void pins_close_stalled(struct router *r, int64_t now_ms);

/* The routes callback (routes_init): partition p moved from edge old to
 * new; its sessions are re-pinned. arg is the router. */
void pins_on_moved(void *arg, uint32_t p, int old, int new);

#endif
