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
#include "watch.h"

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

/* Creates the group consumer (not subscribed yet). subs, routers and watch
 * (its partition count and watermarks) are borrowed. Returns NULL (logged)
 * on a bad configuration. */
struct consumer *consumer_new(const struct edge_config *cfg, const char *client_id,
			      struct subs *subs, struct routers *routers, struct watch *watch,
			      consumer_revoke_fn on_revoke, void *arg);
/* Frees everything; after consumer_close has finished, or when Kafka is to be
 * left behind (then it does not wait for Kafka). Accepts NULL. */
void consumer_free(struct consumer *c);

/* Starts leaving the group (the revoke, served by consumer_poll, tells the
 * routers; offsets are committed). Never blocks. */
void consumer_close(struct consumer *c);
/* True once consumer_close has finished. */
bool consumer_closed(struct consumer *c);

/* Takes the partition count the watch learnt (more partitions: a new epoch
 * told to the routers). Returns true once a count is known. */
bool consumer_sync_metadata(struct consumer *c);
/* Joins the group on the delivery topic. Returns 0 or -1 (logged). */
int consumer_subscribe(struct consumer *c);
/* The fd that becomes readable when the consumer queue has news. */
int consumer_fd(const struct consumer *c);
/* Whether Kafka's records are held back now for a slow router (brake.h):
 * replays from Kafka wait too, so that they do not fill the link the
 * consumer spares. */
bool consumer_holding(struct consumer *c);
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
	uint64_t epoch;        /* assignment changes so far */
	uint64_t records;      /* records consumed */
	uint64_t refills_full; /* fetches woken: the local queue was full (refill.h) */
	uint64_t refills_idle; /* fetches woken: nothing came though Kafka had more */
	uint32_t owned;
	bool draining;
	bool closing;        /* consumer_close was called */
	bool joined;         /* a group member (has a member id or an assignment) */
	int64_t kafka_ok_ms; /* last successful metadata request (monotonic) */
};
void consumer_get_stats(const struct consumer *c, struct consumer_stats *st);
/* The high watermark librdkafka last saw for p (cached, never blocks); -1
 * unknown. */
int64_t consumer_high_watermark(const struct consumer *c, uint32_t p);
/* Records of owned partition p not handed out yet (the high watermark
 * librdkafka last saw minus the next offset); -1 unknown. Never blocks. */
int64_t consumer_lag(const struct consumer *c, uint32_t p);

#endif
