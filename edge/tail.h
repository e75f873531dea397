/*
 * tail: the most recent records of one partition, in offset order, bounded in
 * bytes. A subscription that asks for a position the tail covers is replayed
 * from memory; older positions are read back from Kafka. Pure: no Kafka.
 */
#ifndef KWS_TAIL_H
#define KWS_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tail_rec {
	int64_t offset;
	int64_t timestamp_ms;
	uint32_t key_len, value_len;
	uint32_t room; /* bytes allocated for data[] (>= key_len + value_len) */
	bool value_null;
	char data[]; /* key, then value */
};

struct tail {
	struct tail_rec **ring; /* ring[(head + i) % cap], i < count */
	size_t head, count, cap;
	size_t bytes;       /* payload bytes held (keys, values, overhead) */
	int64_t cover_from; /* every record from here to next is held */
	int64_t next;       /* offset after the last record appended */
};

void tail_init(struct tail *t);
/* Frees every record; accepts a zeroed tail. */
void tail_free(struct tail *t);
/* Empties the tail and starts it at offset start (a new assignment). */
void tail_reset(struct tail *t, int64_t start);
/* Appends a record (offset >= next; gaps are compacted or control records),
 * then drops the oldest records while more than max_bytes are held. */
void tail_append(struct tail *t, int64_t offset, int64_t timestamp_ms, const void *key,
		 size_t key_len, const void *value, size_t value_len, bool value_null,
		 size_t max_bytes);
/* True if every record from offset `from` on is held. */
bool tail_covers(const struct tail *t, int64_t from);
/* Index of the first held record with offset >= from (count if none). */
size_t tail_find(const struct tail *t, int64_t from);
const struct tail_rec *tail_at(const struct tail *t, size_t i);

#endif
