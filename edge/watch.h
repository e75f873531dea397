/*
 * watch: asks Kafka, on a thread of its own, what the edge's loop must not
 * wait for: the delivery topic's partition count (every few seconds) and a
 * partition's watermarks (on request). librdkafka 2.0.2's
 * rd_kafka_query_watermark_offsets ignores its timeout while the broker is
 * unreachable (fixed upstream in 2.3.0), and a metadata request waits its
 * whole timeout: on the loop either would freeze deliveries, health probes and
 * signals. The loop asks, goes on, and reads the answers when the wake
 * function says one came.
 */
#ifndef KWS_EDGE_WATCH_H
#define KWS_EDGE_WATCH_H

#include <stdbool.h>
#include <stdint.h>

#include "chan.h"
#include "config.h"

struct watch;

/* Starts the thread with a Kafka client of its own. wake (any thread) is
 * called after every answer. Returns NULL (logged) on a bad configuration. */
struct watch *watch_new(const struct edge_config *cfg, const char *client_id, chan_wake_fn wake,
			void *arg);
/* Stops the thread. A thread still waiting for Kafka is left behind with its
 * client (the process is exiting). Accepts NULL. */
void watch_free(struct watch *w);

/* The partition count of the latest successful metadata answer: true with
 * *count and *ok_ms (monotonic time of that answer), false before any. */
bool watch_partitions(struct watch *w, uint32_t *count, int64_t *ok_ms);

/* Asks for partition p's watermarks; several requests before the thread gets
 * to p make one query. */
void watch_request(struct watch *w, uint32_t p);
/* The latest answer for p: true with lo and hi (-1 where Kafka had none)
 * and *asked_ms, the monotonic time its query was sent; false if none came
 * yet. A failed query answers -1 for both. */
bool watch_watermarks(struct watch *w, uint32_t p, int64_t *lo, int64_t *hi, int64_t *asked_ms);
/* Waits up to timeout_ms for an answer for p asked at or after since_ms.
 * For the rebalance callback only, which must decide before it returns. */
bool watch_wait(struct watch *w, uint32_t p, int64_t since_ms, int timeout_ms, int64_t *lo,
		int64_t *hi);

#endif
