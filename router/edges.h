/*
 * edges: the router's side of its links to the edges (common/PROTOCOL.md).
 * Opens a link per edge (--edges, --edges-dns), takes what each edge sends
 * and turns it into routes (HELLO, ASSIGN) and session queues (DELIVER,
 * SUB_ACK, UP_ERR), and sends a client's upstream frames to its edge. Runs
 * on the router's loop; nng and the resolver only wake it (edges_wake).
 */
#ifndef KWS_ROUTER_EDGES_H
#define KWS_ROUTER_EDGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct router;
struct session;

/* Opens a link to every --edges URL and starts resolving --edges-dns.
 * 0, or -1 (logged). */
int edges_start(struct router *r);
/* Stops the resolver and closes every link (their threads stop waking the
 * loop). The link array stays (closed) for the clients still closing; the
 * caller frees r->links after destroying the lws context. Accepts a router
 * whose start failed. */
void edges_stop(struct router *r);

/* Called on nng's and the resolver's threads: only wakes the loop (arg is
 * the router). */
void edges_wake(void *arg);
/* On the loop, when woken and every tick: applies a new DNS answer, then
 * takes what each edge sent (a bounded batch per link; asks for another
 * turn when more is waiting). The records it queued on sessions are
 * written by the caller's ws_flush (router.c), after it. */
void edges_drain(struct router *r);
/* Every tick: hangs up on an edge that sent no CHALLENGE within 10 s (with
 * --link-secret). */
void edges_tick(struct router *r, int64_t now_ms);

/* Sends a whole client message of s (data[0..len), text or binary) to the
 * edge s is pinned to. When it cannot (no owner right now, upstream
 * disabled at the edge) the client is closed with the matching code. */
void edges_upstream(struct router *r, struct session *s, const void *data, size_t len, bool text);

#endif
