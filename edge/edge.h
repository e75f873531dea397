/*
 * edge: one member of the delivery topic's consumer group. It owns the
 * partitions Kafka assigns it, tells every connected router which ones (on
 * HELLO and on every change), and hands each record to the router sessions
 * subscribed to the record's key, batched per router. Frames that clients send
 * upstream it produces to the inbound topic. Single-threaded: one poll() loop
 * over the Kafka consumer queue, the nng socket and a wake-up fd. Its modules,
 * in a record's order: consumer (the group) or replay (catching up), routers
 * (links and batches); upstream produces the clients' frames; ops serves the
 * admin endpoint.
 */
#ifndef KWS_EDGE_H
#define KWS_EDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Runs the edge until SIGINT/SIGTERM, then leaves the consumer group within
 * cfg->shutdown_timeout_ms (past it, or at a second signal, the process
 * _exits with status 0). Returns the process exit code. */
int edge_run(const struct edge_config *cfg);

#endif
