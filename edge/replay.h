/*
 * replay: answers the routers' subscriptions (SUB) and serves those whose
 * position is behind the live point, so a session re-pinned after a
 * partition moved, or a client that resumes, gets every record it missed,
 * once and in order, before its live records. From the partition's tail in
 * memory, or from Kafka by a second consumer outside the group. Runs on the
 * edge's loop thread.
 */
#ifndef KWS_EDGE_REPLAY_H
#define KWS_EDGE_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#include "consumer.h"
#include "config.h"
#include "routers.h"
#include "subs.h"
#include "watch.h"
#include "wire.h"

struct replay;

/* Creates the replay consumer. consumer, routers, subs and watch (Kafka's
 * watermarks) are borrowed. Returns NULL (logged) on a bad configuration. */
struct replay *replay_new(const struct edge_config *cfg, const char *client_id,
			  struct consumer *consumer, struct routers *routers, struct subs *subs,
			  struct watch *watch);
/* Stops every replay and frees everything. Accepts NULL. */
void replay_free(struct replay *rp);

/* A router session subscribes to its key (PROTOCOL.md, SUB): acked, then live
 * from here after replaying what it missed since its position. When the
 * answer needs Kafka's watermarks (position.h) the session waits, receiving
 * nothing, until the watch answers or --metadata-timeout-ms passes; the loop
 * goes on meanwhile. */
void replay_sub(struct replay *rp, uint32_t link, const struct wire_sub *s);
/* Reads what the replay consumer fetched, finishes replays that caught up
 * and serves the replays owed from the tails. Call every loop turn. */
void replay_poll(struct replay *rp);
/* The replay consumer's wake-up fd (readable when it has news). */
int replay_fd(const struct replay *rp);
/* Abandons partition p's replay (revoked). */
void replay_drop(struct replay *rp, uint32_t p);

struct replay_stats {
	uint64_t from_memory, from_kafka; /* subscriptions replayed, by source */
	uint64_t records;                 /* records sent by replays */
	uint64_t timeouts;                /* replays from Kafka abandoned */
	uint64_t beyond_end;              /* positions past the partition's end */
	uint64_t unanswered;              /* SUBs answered without watermarks */
	uint64_t tail_holds; /* links a replay from the tail held back (deep send queue) */
};
void replay_get_stats(const struct replay *rp, struct replay_stats *st);
/* True while a replay from Kafka of partition p runs. */
bool replay_running(const struct replay *rp, uint32_t p);

#endif
