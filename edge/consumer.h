/*
 * consumer: the edge's membership of the delivery topic's consumer group.
 * It follows the assignment (rebalance callbacks), tells the routers every
 * change, consumes the owned partitions into their tails and to the live
 * sessions of each record's key, and stores the offsets handed out for the
 * group's commits. Runs on the edge's loop thread.
 */
#ifndef KWS_EDGE_CONSUMER_H
#define KWS_EDGE_CONSUMER_H

#include <stdbool.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

#include "config.h"
#include "routers.h"
#include "subs.h"
#include "tail.h"

struct consumer;

/* One partition of the delivery topic, as this edge sees it. */
struct consumer_part {
	bool owned;
	int64_t next_offset; /* offset after the last record handed out; -1 unknown */
	int64_t stored;      /* offset last stored for commit */
	struct tail tail;    /* recent records, for replays from memory */
};

/* Called on the loop thread while partition p is revoked, before the routers
 * are told: whoever serves p's sessions lets go of it. */
typedef void (*consumer_revoke_fn)(void *arg, uint32_t p);

/* Creates the group consumer (not subscribed yet). subs and routers are
 * borrowed. Returns NULL (logged) on a bad configuration. */
struct consumer *consumer_new(const struct edge_config *cfg, const char *client_id,
			      struct subs *subs, struct routers *routers,
			      consumer_revoke_fn on_revoke, void *arg);
/* Leaves the group (the revoke tells the routers) and frees everything.
 * May block on Kafka. Accepts NULL. */
void consumer_free(struct consumer *c);

/* Learns the topic's partition count (more partitions: a new epoch told to
 * the routers). Returns 0, or -1 (logged) when Kafka did not answer. */
int consumer_refresh_metadata(struct consumer *c);
/* Joins the group on the delivery topic. Returns 0 or -1 (logged). */
int consumer_subscribe(struct consumer *c);
/* The fd that becomes readable when the consumer queue has news. */
int consumer_fd(const struct consumer *c);
/* Serves the consumer queue: rebalances and records, then stores offsets.
 * Never waits for more. Call every loop turn. */
void consumer_poll(struct consumer *c);
/* Hands every partition to the other edges (leaves the assignment) while
 * staying a member. Idempotent. */
void consumer_drain(struct consumer *c);

uint32_t consumer_partition_count(const struct consumer *c);
/* Partition p < consumer_partition_count(c). */
const struct consumer_part *consumer_part(const struct consumer *c, uint32_t p);

struct consumer_stats {
	uint64_t epoch;       /* assignment changes so far */
	uint64_t records;     /* records consumed */
	uint32_t owned;
	bool draining;
	bool joined;          /* a group member (has a member id or an assignment) */
	int64_t kafka_ok_ms;  /* last successful metadata request (monotonic) */
};
void consumer_get_stats(const struct consumer *c, struct consumer_stats *st);
/* Records of owned partition p not handed out yet (the high watermark
 * librdkafka last saw minus the next offset); -1 unknown. Never blocks. */
int64_t consumer_lag(const struct consumer *c, uint32_t p);

#endif
