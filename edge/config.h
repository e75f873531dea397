/*
 * config: the edge's settings (edge/main.c fills them from the command line
 * and the environment). Read by every module of the edge; never written.
 */
#ifndef KWS_EDGE_CONFIG_H
#define KWS_EDGE_CONFIG_H

#include "conf.h"

struct edge_config {
	const char *bootstrap;
	const char *topic;
	const char *group;
	const char *listen;           /* nng URL, e.g. tcp://0.0.0.0:7100 */
	const char *inbound_topic;    /* "" = upstream disabled */
	const char *instance_id;      /* group.instance.id; "" = dynamic membership */
	const char *edge_id;          /* "" = <host>:<pid>:<random> */
	struct conf_list kafka_props; /* k=v passed to librdkafka */
	long batch_bytes;             /* flush a router's DELIVER batch at this size */
	long tail_bytes;              /* records kept in memory for replays, all partitions */
	long replay_timeout_ms;       /* a replay from Kafka that takes longer is abandoned */
	long metadata_timeout_ms;
	long shutdown_timeout_ms; /* longest stop after SIGTERM/SIGINT, whatever Kafka does */
	const char *admin_listen; /* admin endpoint host:port; "" disables it */
	const char *admin_token;  /* bearer token for drain */
	const char *link_secret;  /* "file:PATH" or "env:NAME"; "" none */
};

#endif
