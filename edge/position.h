/*
 * position: what the edge answers a subscription that presents a position
 * (PROTOCOL.md, SUB and SUB_ACK): where the session starts, whether nothing
 * it asked for is missing, and whether the records from its position must be
 * replayed first. Pure: the caller brings the live point and Kafka's
 * watermarks.
 */
#ifndef KWS_EDGE_POSITION_H
#define KWS_EDGE_POSITION_H

#include <stdbool.h>
#include <stdint.h>

/* The answer to a SUB. */
struct position_plan {
	int64_t start;       /* SUB_ACK start_offset: the session's position after the ack */
	bool complete;       /* SUB_ACK complete */
	bool beyond_end;     /* the position is past the partition's end */
	int64_t replay_from; /* replay from this offset before going live; -1: live at once */
};

/* True when deciding about position `from` needs Kafka's watermarks: `from`
 * is behind the live point (is it still in Kafka: the low watermark), or
 * ahead of it and of the last high watermark seen, known_hi (-1 unknown)
 * (is it past the partition's end: a fresh high watermark). */
bool position_needs_watermarks(int64_t from, int64_t live, int64_t known_hi);

/* Plans a subscription from position `from` (-1: the live end) in a partition
 * whose next record to hand out is `live` (-1 unknown), given Kafka's low and
 * high watermarks (-1 unknown). An unknown watermark counts in the client's
 * favour: complete, and not beyond the end.
 *  - live end, or live unknown: start at live, complete;
 *  - from < live: replay from `from`, start at live; complete unless the low
 *    watermark is past `from` (retention deleted some);
 *  - from >= live, at most the high watermark: live at once from `from`
 *    (records below it are the session's duplicates), complete;
 *  - from past the high watermark (the topic was recreated, or the position
 *    is made up): not complete, beyond_end, start at the high watermark (or
 *    live, if later): records from there on are delivered. */
struct position_plan position_plan(int64_t from, int64_t live, int64_t lo, int64_t hi);

#endif
