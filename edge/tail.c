/* tail: see tail.h. */
#include "tail.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* What one record costs against the budget: its bytes (the room it has) and
 * its bookkeeping. */
static size_t rec_cost(const struct tail_rec *r)
{
	return sizeof *r + sizeof r + r->room;
}

void tail_init(struct tail *t)
{
	memset(t, 0, sizeof *t);
	t->cover_from = -1;
	t->next = -1;
}

void tail_free(struct tail *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->ring[(t->head + i) % t->cap]);
	free(t->ring);
	tail_init(t);
}

void tail_reset(struct tail *t, int64_t start)
{
	tail_free(t);
	t->cover_from = start;
	t->next = start;
}

/* Takes the oldest record out; returns it (the caller frees or reuses it). */
static struct tail_rec *take_oldest(struct tail *t)
{
	struct tail_rec *r = t->ring[t->head];
	t->bytes -= rec_cost(r);
	t->cover_from = r->offset + 1;
	t->head = (t->head + 1) % t->cap;
	t->count--;
	return r;
}

static void drop_oldest(struct tail *t)
{
	free(take_oldest(t));
}

void tail_append(struct tail *t, int64_t offset, int64_t timestamp_ms, const void *key,
		 size_t key_len, const void *value, size_t value_len, bool value_null,
		 size_t max_bytes)
{
	if (t->cover_from < 0)
		t->cover_from = offset; /* started without a known position */
	if (t->count == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 64;
		struct tail_rec **n = xmalloc(ncap * sizeof *n);
		for (size_t i = 0; i < t->count; i++)
			n[i] = t->ring[(t->head + i) % t->cap];
		free(t->ring);
		t->ring = n;
		t->cap = ncap;
		t->head = 0;
	}
	/* The records this one pushes out go first, and the memory of the
	 * first of them holds the new one when it is large enough: a full tail
	 * (the usual case) then costs no malloc and no free per record. */
	size_t need = key_len + value_len;
	size_t cost = sizeof(struct tail_rec) + sizeof(struct tail_rec *) + need;
	struct tail_rec *r = NULL;
	while (t->count > 0 && t->bytes + cost > max_bytes) {
		struct tail_rec *old = take_oldest(t);
		if (!r && old->room >= need && old->room - need <= need / 4 + 64)
			r = old;
		else
			free(old);
	}
	if (!r) {
		r = xmalloc(sizeof *r + need);
		r->room = (uint32_t)need;
	}
	r->offset = offset;
	r->timestamp_ms = timestamp_ms;
	r->key_len = (uint32_t)key_len;
	r->value_len = (uint32_t)value_len;
	r->value_null = value_null;
	if (key_len)
		memcpy(r->data, key, key_len);
	if (value_len)
		memcpy(r->data + key_len, value, value_len);
	t->ring[(t->head + t->count) % t->cap] = r;
	t->count++;
	t->bytes += rec_cost(r);
	t->next = offset + 1;
	while (t->count > 0 && t->bytes > max_bytes)
		drop_oldest(t);
	if (t->count == 0)
		t->cover_from = t->next;
}

bool tail_covers(const struct tail *t, int64_t from)
{
	return t->cover_from >= 0 && from >= t->cover_from;
}

size_t tail_find(const struct tail *t, int64_t from)
{
	size_t lo = 0, hi = t->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->ring[(t->head + mid) % t->cap]->offset < from)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct tail_rec *tail_at(const struct tail *t, size_t i)
{
	return t->ring[(t->head + i) % t->cap];
}
