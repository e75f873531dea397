/* routes: see routes.h. */
#include "routes.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

void routes_init(struct routes *r, int nedges, int64_t handover_ms, routes_moved_fn moved,
		 void *arg)
{
	memset(r, 0, sizeof *r);
	r->nedges = nedges;
	r->e = xcalloc((size_t)(nedges ? nedges : 1), sizeof *r->e);
	r->handover_ms = handover_ms;
	r->moved = moved;
	r->arg = arg;
}

void routes_free(struct routes *r)
{
	for (int i = 0; i < r->nedges; i++) {
		free(r->e[i].claims);
		free(r->e[i].claim_ms);
	}
	free(r->e);
	free(r->p);
	memset(r, 0, sizeof *r);
}

int routes_add_edge(struct routes *r)
{
	r->e = xrealloc(r->e, (size_t)(r->nedges + 1) * sizeof *r->e);
	struct routes_edge *e = &r->e[r->nedges];
	memset(e, 0, sizeof *e);
	if (r->partition_count) {
		e->claims = xcalloc(r->partition_count, 1);
		e->claim_ms = xcalloc(r->partition_count, sizeof *e->claim_ms);
	}
	return r->nedges++;
}

/* Grows every array to n partitions. */
static void grow(struct routes *r, uint32_t n)
{
	if (n <= r->partition_count)
		return;
	r->p = xrealloc(r->p, n * sizeof *r->p);
	for (uint32_t i = r->partition_count; i < n; i++)
		r->p[i] = (struct route){ .owner = ROUTES_NONE, .pending = ROUTES_NONE };
	for (int k = 0; k < r->nedges; k++) {
		r->e[k].claims = xrealloc(r->e[k].claims, n);
		memset(r->e[k].claims + r->partition_count, 0, n - r->partition_count);
		r->e[k].claim_ms = xrealloc(r->e[k].claim_ms, n * sizeof *r->e[k].claim_ms);
	}
	r->partition_count = n;
}

static void set_owner(struct routes *r, uint32_t p, int owner)
{
	int old = r->p[p].owner;
	if (old == owner)
		return;
	r->p[p].owner = owner;
	r->generation++;
	if (r->moved)
		r->moved(r->arg, p, old, owner);
}

/* The oldest claim on p by an edge other than its owner, or ROUTES_NONE. */
static int oldest_claim(const struct routes *r, uint32_t p)
{
	int best = ROUTES_NONE;
	for (int k = 0; k < r->nedges; k++) {
		if (k == r->p[p].owner || !r->e[k].claims[p])
			continue;
		if (best == ROUTES_NONE || r->e[k].claim_ms[p] < r->e[best].claim_ms[p])
			best = k;
	}
	return best;
}

/* Makes the oldest claim other than the owner's the waiting one. */
static void refresh_pending(struct routes *r, uint32_t p)
{
	int next = oldest_claim(r, p);
	r->p[p].pending = next;
	if (next != ROUTES_NONE)
		r->p[p].pending_since_ms = r->e[next].claim_ms[p];
}

/* The owner of p no longer claims it: the oldest other claim takes it (the
 * previous owner has revoked, so nothing needs to wait), else nobody. */
static void reassign(struct routes *r, uint32_t p)
{
	set_owner(r, p, oldest_claim(r, p));
	refresh_pending(r, p);
}

/* Edge stops claiming p (revoke, link loss or forced handover). */
static void drop_claim(struct routes *r, int edge, uint32_t p)
{
	r->e[edge].claims[p] = 0;
	r->e[edge].nclaims--;
	if (r->p[p].owner == edge)
		reassign(r, p);
	else if (r->p[p].pending == edge)
		refresh_pending(r, p);
}

int routes_assign(struct routes *r, int edge, uint64_t epoch, uint32_t partition_count,
		  const uint32_t *parts, uint32_t n, int64_t now_ms)
{
	struct routes_edge *e = &r->e[edge];
	if (e->known && epoch <= e->epoch)
		return -1;
	uint32_t maxp = partition_count;
	for (uint32_t i = 0; i < n; i++)
		if (parts[i] + 1 > maxp)
			maxp = parts[i] + 1;
	grow(r, maxp);
	e->known = true;
	e->epoch = epoch;
	e->partition_count = partition_count;

	uint8_t *now = xcalloc(r->partition_count, 1);
	for (uint32_t i = 0; i < n; i++)
		now[parts[i]] = 1;
	/* Revocations first, so a waiting claim is granted at once. */
	for (uint32_t p = 0; p < r->partition_count; p++)
		if (e->claims[p] && !now[p])
			drop_claim(r, edge, p);
	for (uint32_t p = 0; p < r->partition_count; p++) {
		if (!now[p] || e->claims[p])
			continue;
		e->claims[p] = 1;
		e->claim_ms[p] = now_ms;
		e->nclaims++;
		if (r->p[p].owner == ROUTES_NONE)
			set_owner(r, p, edge);
		else if (r->p[p].pending == ROUTES_NONE)
			refresh_pending(r, p);
	}
	free(now);
	return 0;
}

void routes_edge_down(struct routes *r, int edge)
{
	struct routes_edge *e = &r->e[edge];
	e->known = false;
	e->epoch = 0;
	for (uint32_t p = 0; e->nclaims && p < r->partition_count; p++)
		if (e->claims[p])
			drop_claim(r, edge, p);
}

void routes_tick(struct routes *r, int64_t now_ms)
{
	for (uint32_t p = 0; p < r->partition_count; p++) {
		struct route *rt = &r->p[p];
		if (rt->pending == ROUTES_NONE || now_ms - rt->pending_since_ms < r->handover_ms)
			continue;
		/* The owner never revoked: its claim is taken as stale. If it
		 * claims the partition again, that claim waits its turn. */
		int old = rt->owner, next = rt->pending;
		if (old != ROUTES_NONE && r->e[old].claims[p]) {
			r->e[old].claims[p] = 0;
			r->e[old].nclaims--;
		}
		set_owner(r, p, next);
		refresh_pending(r, p);
	}
}

int routes_owner(const struct routes *r, uint32_t partition)
{
	if (partition >= r->partition_count)
		return ROUTES_NONE;
	return r->p[partition].owner;
}

bool routes_complete(const struct routes *r)
{
	if (!r->partition_count)
		return false;
	for (uint32_t p = 0; p < r->partition_count; p++)
		if (r->p[p].owner == ROUTES_NONE)
			return false;
	return true;
}
