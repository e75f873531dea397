/*
 * refill: wakes librdkafka 2.0.2's fetcher after the consumer's local queue
 * was full and has been emptied.
 *
 * librdkafka 2.0.2 stops fetching a partition while the consumer's local
 * queue holds queued.min.messages records (the partitions' queues are
 * forwarded to one, so the count is over all of them) or
 * queued.max.messages.kbytes, and nothing wakes its broker thread when the
 * application has emptied the queue: it looks again at its next I/O or
 * after its fixed 1 s wait (rd_kafka_max_block_ms; 2.2 added
 * fetch.queue.backoff.ms for this, librdkafka issue 2879). A consumer
 * catching up on a backlog then delivers 100,000 records, nothing for up to
 * a second, and again. The cure: once the queue was found at its bound
 * (the count, or the bytes estimated from the average record) and is empty,
 * the owner seeks its partitions to the offset after their last record
 * handed out; the seek wakes the broker thread, and with the queue empty
 * nothing fetched is dropped (at worst a fetch in flight is made again).
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

struct refill {
	int64_t min_msgs;  /* queued.min.messages */
	int64_t max_bytes; /* queued.max.messages.kbytes, in bytes */
	double avg_bytes;  /* moving average of the records' values */
	bool was_full;     /* the queue reached a bound since the last refill */
	uint64_t refills;  /* refill_due answers true */
};

/* Reads the bounds from conf (before rd_kafka_new takes it). */
void refill_init(struct refill *f, rd_kafka_conf_t *conf);
/* Before taking from q: notes whether it is at a bound. */
void refill_note(struct refill *f, rd_kafka_queue_t *q);
/* A record of len value bytes was taken. */
void refill_record(struct refill *f, size_t len);
/* After taking: true once q is empty after having been full (then the owner
 * seeks its partitions to their next offsets, rd_kafka_seek_partitions). */
bool refill_due(struct refill *f, rd_kafka_queue_t *q);

#endif
