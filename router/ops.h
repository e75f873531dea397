/*
 * ops: the router's admin endpoint (README, "Operating it"): health and
 * readiness, metrics, the JSON API (partitions, edges, clients, disconnect,
 * drain) and the status page. Runs its handlers on the router's loop.
 */
#ifndef KWS_ROUTER_OPS_H
#define KWS_ROUTER_OPS_H

#include <stdbool.h>
#include <stdint.h>

struct router;

/* Starts the admin endpoint (if --admin-listen is not empty) and registers
 * the metrics. 0 or -1 (logged). */
int ops_start(struct router *r);
/* Stops the endpoint and frees the metrics; accepts a router never started. */
void ops_stop(struct router *r);
/* Every loop turn / tick: runs admin handlers, advances a drain. */
void ops_tick(struct router *r);
/* Starts draining: no new clients, sessions closed with 1012 over deadline_ms. */
void ops_drain(struct router *r, int64_t deadline_ms, bool then_exit);
/* True once a drain that should end the process has closed every session
 * (or passed its deadline). */
bool ops_drained(struct router *r);

#endif
