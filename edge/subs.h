/*
 * subs: the edge's table of router sessions subscribed to keys. A record is
 * handed to every subscription of its key whose partition matches; the
 * subscriptions of one key are kept sorted by router pipe so a delivery can
 * carry one record once per router with all that router's session ids.
 * Pure: no Kafka, no nng (a "pipe" is just the id of a router link).
 */
#ifndef KWS_SUBS_H
#define KWS_SUBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"

struct subs_key;

/* Where a subscription stands in catching up (replay.c). */
enum sub_replay {
	SUB_LIVE = 0, /* gets records as they are consumed */
	SUB_TAIL,     /* to be replayed from the in-memory tail, then live */
	SUB_JOB,      /* being replayed from Kafka by the partition's job */
	SUB_JOB_WAIT, /* behind the running job: replayed by its next round */
	SUB_PENDING,  /* its SUB waits for Kafka's watermarks to be answered */
};

/* One session of one router, subscribed to one key. Owned by the table. */
struct sub {
	struct hnode node; /* by (pipe, sid) */
	uint32_t pipe;
	uint64_t sid;
	uint32_t partition;
	struct subs_key *key;
	bool paused;         /* FLOW from the router: hold deliveries (position is kept) */
	uint8_t replay;      /* enum sub_replay: live records wait while not SUB_LIVE */
	int64_t replay_next; /* next offset the replay owes this session */
};

/* The subscriptions of one key; v[0..n) sorted by pipe. */
struct subs_key {
	struct hnode node; /* by key bytes */
	struct sub **v;
	uint32_t n, cap;
	uint32_t len;
	char bytes[];
};

struct subs {
	struct hmap by_key;
	struct hmap by_id;
	size_t count;
};

void subs_init(struct subs *s);
/* Frees every subscription and the table's memory; accepts a zeroed table. */
void subs_free(struct subs *s);

/* Subscribes session (pipe, sid) to key in partition; a subscription with the
 * same (pipe, sid) is replaced. keylen must be > 0. Returns the new entry. */
struct sub *subs_add(struct subs *s, uint32_t pipe, uint64_t sid, uint32_t partition,
		     const void *key, size_t keylen);
/* The subscription (pipe, sid), or NULL. */
struct sub *subs_get(const struct subs *s, uint32_t pipe, uint64_t sid);
/* Removes (pipe, sid); returns false if there was none. */
bool subs_remove(struct subs *s, uint32_t pipe, uint64_t sid);
/* Removes every subscription of a router link (it went away or said HELLO
 * again); returns how many. */
size_t subs_remove_pipe(struct subs *s, uint32_t pipe);
/* Removes every subscription in a partition (revoked from this edge); returns
 * how many. The routers re-subscribe at the new owner. */
size_t subs_remove_partition(struct subs *s, uint32_t partition);
/* The subscriptions of a key, or NULL when nobody wants it. */
const struct subs_key *subs_lookup(const struct subs *s, const void *key, size_t keylen);

#endif
