/*
 * edge internals shared by edge.c (the loop, router links, the consumer
 * group) and replay.c (replays from the tail and from Kafka). Not an API.
 */
#ifndef KWS_EDGE_INT_H
#define KWS_EDGE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "admin.h"
#include "chan.h"
#include "linkauth.h"
#include "metrics.h"
#include "edge.h"
#include "subs.h"
#include "tail.h"
#include "wire.h"

/* One connected router: a chan over the TCP connection it dialed. */
struct router_link {
	uint32_t id;       /* link number; subscriptions are keyed by it */
	struct chan *ch;
	bool hello;        /* it said HELLO on this connection */
	bool desynced;     /* a gap was seen: ignore all but HELLO */
	bool warned;       /* a bad message was logged on this link */
	uint64_t tx_seq;   /* last number sent */
	uint64_t hello_seq; /* seq of its latest HELLO, echoed in EDGE_HELLO */
	uint8_t nonce[LINKAUTH_NONCE];        /* ours, sent in CHALLENGE */
	uint8_t router_nonce[LINKAUTH_NONCE]; /* from its latest HELLO */
	uint64_t rx_expect;
	char *router_id;
	struct wire_buf batch; /* DELIVER being built, when batch_open */
	bool batch_open;
};

struct replay_job;

/* Per-partition state of the delivery topic. */
struct part {
	bool owned;
	int64_t next_offset; /* offset after the last record handed out */
	int64_t stored;      /* offset last stored for commit */
	struct tail tail;    /* recent records, for replays from memory */
	struct replay_job *job; /* a replay from Kafka in progress, or NULL */
	int64_t tail_due;    /* lowest position owed from the tail, -1 none */
	int64_t low;         /* oldest offset in Kafka (cached), -1 unknown */
	int64_t low_at_ms;
};

/* What a produce call carries to its delivery report. */
struct up_ctx {
	uint32_t link;
	uint64_t sid;
};

struct edge {
	const struct edge_config *cfg;
	char edge_id[256];
	rd_kafka_t *consumer;
	rd_kafka_queue_t *cq;
	rd_kafka_t *producer; /* NULL when upstream is disabled */
	rd_kafka_topic_t *inbound;
	int kafka_fd[2];      /* consumer queue io-event pipe */
	struct chan_listener *listener;
	int wake_fd;          /* eventfd: nng's threads signal news here */
	uint32_t next_link_id;
	struct linkauth_secret secret; /* --link-secret; empty: links unauthenticated */

	struct subs subs;
	struct router_link **links;
	size_t nlinks;
	struct part *parts;
	uint32_t partition_count;
	uint64_t epoch;
	struct wire_buf out;
	int64_t next_metadata_ms;
	/* replays from Kafka: a consumer outside the group */
	rd_kafka_t *replayer;
	rd_kafka_queue_t *rq;
	rd_kafka_topic_t *rtopic;
	int replay_fd[2];
	size_t njobs;
	/* operations (ops.c) */
	struct admin *admin;
	struct metrics *metrics;
	bool draining;
	int64_t kafka_ok_ms; /* last successful metadata request */
	/* Counters (exported by the admin endpoint later; logged at exit). */
	uint64_t records, delivered, dropped_send, malformed, gaps, unknown;
	uint64_t replays_memory, replays_kafka, replayed_records, replay_timeouts;
	uint64_t auth_failures;
};

/* edge.c */
struct router_link *link_find(struct edge *e, uint32_t id);
/* Adds record r for sids[0..n) of link l to l's DELIVER batch (sent at the
 * batch limit or when the loop turns). */
void batch_record(struct edge *e, struct router_link *l, const struct wire_record *r,
		  const uint64_t *sids, uint32_t n);
void flush_batch(struct edge *e, struct router_link *l);

/* Hands every partition to the other edges (leaves the consumer group's
 * assignment) while staying up, so routers re-pin without closing sockets. */
void edge_drain(struct edge *e);

/* ops.c */
int ops_start(struct edge *e);
void ops_tick(struct edge *e);
void ops_stop(struct edge *e);

/* replay.c */
int replay_open(struct edge *e, rd_kafka_conf_t *conf);
void replay_close(struct edge *e);
/* Serves a subscription whose position `from` is behind the live point:
 * from the tail when it covers it, else from Kafka; live records wait until
 * it has caught up (x->replay). */
void replay_start(struct edge *e, struct sub *x, int64_t from);
/* Reads what the replay consumer fetched, finishes replays that caught up
 * and serves the replays owed from the tails. Called every loop turn. */
void replay_poll(struct edge *e);
/* The replay consumer's wake-up fd (readable when it has news). */
int replay_fd(const struct edge *e);
/* Abandons the partition's replay (revoked). */
void replay_drop(struct edge *e, uint32_t p);
/* The oldest offset Kafka still has for p (cached for a second), -1 unknown. */
int64_t replay_low(struct edge *e, uint32_t p);

#endif
