/*
 * edge: one member of the delivery topic's consumer group. It owns the
 * partitions Kafka assigns it, tells every connected router which ones (on
 * HELLO and on every change), and hands each record to the router sessions
 * subscribed to the record's key, batched per router. Frames that clients send
 * upstream it produces to the inbound topic. Single-threaded: one poll() loop
 * over the Kafka consumer queue, the nng socket and a wake-up fd.
 */
#ifndef KWS_EDGE_H
#define KWS_EDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf.h"

struct edge_config {
	const char *bootstrap;
	const char *topic;
	const char *group;
	const char *listen;        /* nng URL, e.g. tcp://0.0.0.0:7100 */
	const char *inbound_topic; /* "" = upstream disabled */
	const char *instance_id;   /* group.instance.id; "" = dynamic membership */
	const char *edge_id;       /* "" = <host>:<pid>:<random> */
	struct conf_list kafka_props; /* k=v passed to librdkafka */
	long batch_bytes;          /* flush a router's DELIVER batch at this size */
	long tail_bytes;           /* records kept in memory for replays, all partitions */
	long replay_timeout_ms;    /* a replay from Kafka that takes longer is abandoned */
	long metadata_timeout_ms;
	const char *admin_listen;  /* admin endpoint host:port; "" disables it */
	const char *admin_token;   /* bearer token for drain */
	const char *link_secret;   /* "file:PATH" or "env:NAME"; "" none */
};

/* Runs the edge until SIGINT/SIGTERM. Returns the process exit code. */
int edge_run(const struct edge_config *cfg);

#endif
