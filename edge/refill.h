/*
 * refill: wakes librdkafka 2.0.2's fetcher after the consumer's local queue
 * was full and has been emptied.
 *
 * librdkafka 2.0.2 stops fetching a partition when, after a fetch response,
 * the consumer's local queue holds queued.min.messages records (the
 * partitions' queues are forwarded to one, so the count is over all of them)
 * or queued.max.messages.kbytes, and nothing wakes its broker thread when the
 * application has emptied the queue: it looks again at its next I/O or after
 * its fixed 1 s wait (rd_kafka_max_block_ms; 2.2 added
 * fetch.queue.backoff.ms for this, librdkafka issue 2879). A consumer
 * catching up on a backlog then delivers a queue's worth of records, nothing
 * for up to a second, and again. The cure: once the queue is empty, the owner
 * seeks its partitions to the offset after their last record handed out; the
 * seek wakes the broker thread, and with the queue empty nothing fetched is
 * dropped (at worst a fetch in flight is made again).
 *
 * When is the seek due? Not when the owner saw the queue at its bound: the
 * owner looks between batches, the fetcher decides after each response, and
 * a queue that crossed the bound by less than a batch while the owner was
 * taking one is never seen at it. Two rules instead:
 *
 * - Full: everything in the queue when the fetcher stopped is taken before
 *   the queue is next empty, so if it stopped, at least queued.min.messages
 *   records (or the byte bound) were taken since the queue was last seen
 *   empty. The queue's length seen before a batch also counts: within a
 *   batch of the bound is taken as reached. When the queue only came near
 *   the bound the seek is spare, and costs one fetch.
 * - Idle: the queue also counts records the owner never gets. A seek makes
 *   the records of a fetch still in flight stale; librdkafka purges stale
 *   records only from the queue's head, and the consumer drops the rest as
 *   it meets them, so the owner may neither take nor see enough to know the
 *   fetcher stopped (seen on the mock cluster: a 1 s pause in about one
 *   backlog of 144,000 records in five). So when the queue is empty, nothing
 *   was taken for REFILL_IDLE_MS and the last fetch response said a
 *   partition has more (its high watermark is past the next offset), the
 *   owner seeks as well. The wait doubles after each such seek (100, 200,
 *   400, 800 ms); past REFILL_IDLE_MAX_MS the rule rests until the next
 *   record, since librdkafka's own 1 s wait does as well by then. So a
 *   partition that lags but yields nothing (a broker down; a transaction's
 *   marker past the last record, which no consumer gets) costs four seeks
 *   per quiet spell.
 *
 * Used by the edge (consumer.c) and by the bench's Kafka floor (kfloor.c),
 * so that the floor is what a bare consumer with the same cure does.
 */
#ifndef KWS_EDGE_REFILL_H
#define KWS_EDGE_REFILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <librdkafka/rdkafka.h>

/* The first wait of the idle rule, in ms: longer than a fetch takes with a
 * backlog at hand, far below the fetcher's 1 s sleep. */
#define REFILL_IDLE_MS 100
/* The idle rule's waits double from REFILL_IDLE_MS up to this. */
#define REFILL_IDLE_MAX_MS 800

struct refill {
	int64_t min_msgs;     /* queued.min.messages */
	int64_t max_bytes;    /* queued.max.messages.kbytes, in bytes */
	int64_t taken;        /* records taken since the queue was last seen empty */
	int64_t taken_bytes;  /* and their bytes */
	int64_t seen;         /* the longest queue seen since then */
	int64_t idle_from_ms; /* the last record taken, or the last idle seek */
	int64_t idle_wait_ms; /* the idle rule's wait now */
	uint64_t full;        /* refill_due answered true */
	uint64_t idle;        /* refill_idle_due answered true */
};

/* Reads the bounds from conf (before rd_kafka_new takes it). */
void refill_init(struct refill *f, rd_kafka_conf_t *conf);
/* Before taking a batch of at most batch records: the queue's length. */
void refill_seen(struct refill *f, int64_t queue_len, int64_t batch);
/* A record of len bytes (key and value) was taken from the queue at now_ms. */
void refill_record(struct refill *f, size_t len, int64_t now_ms);
/* After taking, with the queue's length now: true when the queue is empty
 * and the fetcher may have stopped at the bound since it was last seen
 * empty (then the owner seeks its partitions to their next offsets,
 * rd_kafka_seek_partitions). */
bool refill_due(struct refill *f, int64_t queue_len);
/* When refill_due said no: true when the queue is empty, nothing was taken
 * for the idle wait, and lagging(arg) says a partition has records the
 * fetcher has not brought (asked only then). The caller then seeks as for
 * refill_due. */
bool refill_idle_due(struct refill *f, int64_t queue_len, int64_t now_ms,
		     bool (*lagging)(void *arg), void *arg);
/* Where to seek partition p whose next record is next: next, or the log's
 * start when the records from next on are gone (retention). librdkafka
 * resets such a position to the start (auto.offset.reset earliest) after a
 * failed fetch and a 500 ms backoff; seeking back to next would fail and
 * wait again at every refill. */
int64_t refill_seek_offset(rd_kafka_t *rk, const char *topic, int32_t p, int64_t next);

#endif
