/*
 * ops: the edge's admin endpoint (README, "Operating it"): health and
 * readiness probes, Prometheus metrics, the assignment as JSON, and drain.
 * It reads the other modules through their stats getters and acts only
 * through consumer_drain. Handlers run on the edge's loop (ADMIN_ON_LOOP).
 */
#ifndef KWS_EDGE_OPS_H
#define KWS_EDGE_OPS_H

#include "chan.h"
#include "consumer.h"
#include "config.h"
#include "replay.h"
#include "routers.h"
#include "subs.h"

/* What the endpoint reports on; all borrowed, alive until ops_stop. */
struct ops_source {
	const struct edge_config *cfg;
	const char *edge_id;
	struct consumer *consumer;
	const struct routers *routers;
	const struct replay *replay;
	const struct subs *subs;
	chan_wake_fn wake; /* wakes the loop when a request waits (any thread) */
	void *wake_arg;
};

struct ops;

/* Starts the endpoint on cfg->admin_listen (metrics only when it is empty).
 * Returns NULL (logged) when it cannot listen. */
struct ops *ops_start(const struct ops_source *src);
/* Marks the loop alive and answers the waiting requests. Every loop turn. */
void ops_tick(struct ops *o);
/* Stops the endpoint. Accepts NULL. */
void ops_stop(struct ops *o);

#endif
