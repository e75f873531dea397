/*
 * routes: the router's map from partition to owning edge, built from what the
 * edges claim (EDGE_HELLO / ASSIGN), with fencing: a claim on a partition that
 * another edge still holds waits until that edge revokes it, its link drops,
 * or the claim has waited handover_ms (Kafka revokes a partition from its old
 * owner before the new owner gets it, so a wait means a message in flight).
 * Edges are numbered 0..nedges-1 by the caller. Pure: no I/O.
 */
#ifndef KWS_ROUTES_H
#define KWS_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#define ROUTES_NONE (-1)

struct route {
	int owner;   /* edge index or ROUTES_NONE */
	int pending; /* the oldest claim waiting for the owner's revoke */
	int64_t pending_since_ms;
};

struct routes_edge {
	bool known;     /* it has sent an assignment on its current link */
	uint64_t epoch; /* of its last assignment */
	uint32_t partition_count;
	uint8_t *claims;   /* [routes.partition_count]: 1 if it claims it */
	int64_t *claim_ms; /* [routes.partition_count]: when it claimed it */
	uint32_t nclaims;
};

/* Called for every partition whose owner changes (old or new may be
 * ROUTES_NONE). */
typedef void (*routes_moved_fn)(void *arg, uint32_t partition, int old_owner, int new_owner);

struct routes {
	uint32_t partition_count; /* the largest count any edge reported */
	struct route *p;          /* [partition_count] */
	int nedges;
	struct routes_edge *e; /* [nedges] */
	int64_t handover_ms;
	routes_moved_fn moved;
	void *arg;
	uint64_t generation; /* +1 on every owner change (reported to admin) */
};

void routes_init(struct routes *r, int nedges, int64_t handover_ms, routes_moved_fn moved,
		 void *arg);
void routes_free(struct routes *r);
/* Adds an edge (discovered later, e.g. by DNS); returns its index. */
int routes_add_edge(struct routes *r);

/* Replaces edge's claims with parts[0..n) at epoch. An epoch not above the
 * last one seen on this link is stale and ignored (returns -1); a new link
 * (after routes_edge_down) accepts any epoch. Returns 0. */
int routes_assign(struct routes *r, int edge, uint64_t epoch, uint32_t partition_count,
		  const uint32_t *parts, uint32_t n, int64_t now_ms);
/* The link to edge is gone: its claims are dropped, its partitions pass to
 * waiting claims or to nobody. */
void routes_edge_down(struct routes *r, int edge);
/* Grants claims that have waited handover_ms or more. */
void routes_tick(struct routes *r, int64_t now_ms);

/* The owner of partition, or ROUTES_NONE (also for a partition out of range). */
int routes_owner(const struct routes *r, uint32_t partition);
/* True when every partition has an owner (partition_count > 0). */
bool routes_complete(const struct routes *r);

#endif
