/* subs: see subs.h. */
#include "subs.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static uint64_t id_hash(uint32_t pipe, uint64_t sid)
{
	return hmap_hash_u64(sid ^ ((uint64_t)pipe << 32) ^ pipe);
}

void subs_init(struct subs *s)
{
	hmap_init(&s->by_key);
	hmap_init(&s->by_id);
	s->count = 0;
}

static struct subs_key *key_find(const struct subs *s, const void *key, size_t len, uint64_t h)
{
	for (struct hnode *n = hmap_first(&s->by_key, h); n; n = hmap_next(n)) {
		struct subs_key *k = hmap_entry(n, struct subs_key, node);
		if (k->len == len && memcmp(k->bytes, key, len) == 0)
			return k;
	}
	return NULL;
}

const struct subs_key *subs_lookup(const struct subs *s, const void *key, size_t keylen)
{
	if (!s->by_key.count)
		return NULL;
	return key_find(s, key, keylen, hmap_hash_bytes(key, keylen));
}

struct sub *subs_get(const struct subs *s, uint32_t pipe, uint64_t sid)
{
	for (struct hnode *n = hmap_first(&s->by_id, id_hash(pipe, sid)); n; n = hmap_next(n)) {
		struct sub *x = hmap_entry(n, struct sub, node);
		if (x->pipe == pipe && x->sid == sid)
			return x;
	}
	return NULL;
}

/* Unlinks x from its key (freeing the key when it was the last) and frees x. */
static void sub_destroy(struct subs *s, struct sub *x)
{
	struct subs_key *k = x->key;
	uint32_t i = 0;
	while (i < k->n && k->v[i] != x)
		i++;
	memmove(&k->v[i], &k->v[i + 1], (k->n - i - 1) * sizeof *k->v);
	k->n--;
	if (k->n == 0) {
		hmap_remove(&s->by_key, &k->node);
		free(k->v);
		free(k);
	}
	hmap_remove(&s->by_id, &x->node);
	free(x);
	s->count--;
}

struct sub *subs_add(struct subs *s, uint32_t pipe, uint64_t sid, uint32_t partition,
		     const void *key, size_t keylen)
{
	struct sub *old = subs_get(s, pipe, sid);
	if (old)
		sub_destroy(s, old);

	uint64_t h = hmap_hash_bytes(key, keylen);
	struct subs_key *k = key_find(s, key, keylen, h);
	if (!k) {
		k = xcalloc(1, sizeof *k + keylen);
		k->len = (uint32_t)keylen;
		memcpy(k->bytes, key, keylen);
		hmap_insert(&s->by_key, &k->node, h);
	}
	struct sub *x = xcalloc(1, sizeof *x);
	x->pipe = pipe;
	x->sid = sid;
	x->partition = partition;
	x->key = k;
	hmap_insert(&s->by_id, &x->node, id_hash(pipe, sid));

	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 2;
		k->v = xrealloc(k->v, k->cap * sizeof *k->v);
	}
	/* Keep v sorted by pipe: insert after the last entry of a pipe <= ours. */
	uint32_t i = k->n;
	while (i > 0 && k->v[i - 1]->pipe > pipe)
		i--;
	memmove(&k->v[i + 1], &k->v[i], (k->n - i) * sizeof *k->v);
	k->v[i] = x;
	k->n++;
	s->count++;
	return x;
}

bool subs_remove(struct subs *s, uint32_t pipe, uint64_t sid)
{
	struct sub *x = subs_get(s, pipe, sid);
	if (!x)
		return false;
	sub_destroy(s, x);
	return true;
}

/* Removes every subscription for which match(x, arg) is true. */
static size_t remove_where(struct subs *s, bool (*match)(const struct sub *, uint32_t),
			   uint32_t arg)
{
	size_t n = 0, cap = 0, removed;
	struct sub **victims = NULL;
	size_t b;
	for (struct hnode *it = hmap_iter_first(&s->by_id, &b); it;
	     it = hmap_iter_next(&s->by_id, it, &b)) {
		struct sub *x = hmap_entry(it, struct sub, node);
		if (!match(x, arg))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			victims = xrealloc(victims, cap * sizeof *victims);
		}
		victims[n++] = x;
	}
	for (removed = 0; removed < n; removed++)
		sub_destroy(s, victims[removed]);
	free(victims);
	return n;
}

static bool pipe_is(const struct sub *x, uint32_t pipe)
{
	return x->pipe == pipe;
}

static bool partition_is(const struct sub *x, uint32_t partition)
{
	return x->partition == partition;
}

size_t subs_remove_pipe(struct subs *s, uint32_t pipe)
{
	return remove_where(s, pipe_is, pipe);
}

size_t subs_remove_partition(struct subs *s, uint32_t partition)
{
	return remove_where(s, partition_is, partition);
}

static bool any(const struct sub *x, uint32_t unused)
{
	return true;
}

void subs_free(struct subs *s)
{
	if (s->by_id.buckets)
		remove_where(s, any, 0);
	hmap_free(&s->by_key);
	hmap_free(&s->by_id);
}
