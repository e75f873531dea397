/* hmap: see hmap.h. */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define HMAP_MIN_BUCKETS 16

void hmap_init(struct hmap *m)
{
	m->mask = HMAP_MIN_BUCKETS - 1;
	m->count = 0;
	m->buckets = xcalloc(HMAP_MIN_BUCKETS, sizeof *m->buckets);
}

void hmap_free(struct hmap *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->count = 0;
	m->mask = 0;
}

static void rehash(struct hmap *m, size_t nbuckets)
{
	struct hnode **nb = xcalloc(nbuckets, sizeof *nb);
	for (size_t i = 0; i <= m->mask; i++) {
		struct hnode *n = m->buckets[i];
		while (n) {
			struct hnode *next = n->next;
			size_t j = n->hash & (nbuckets - 1);
			n->next = nb[j];
			nb[j] = n;
			n = next;
		}
	}
	free(m->buckets);
	m->buckets = nb;
	m->mask = nbuckets - 1;
}

void hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash)
{
	if (!m->buckets)
		hmap_init(m);
	if (m->count >= m->mask + 1)
		rehash(m, (m->mask + 1) * 2);
	n->hash = hash;
	size_t i = hash & m->mask;
	n->next = m->buckets[i];
	m->buckets[i] = n;
	m->count++;
}

void hmap_remove(struct hmap *m, struct hnode *n)
{
	struct hnode **pp = &m->buckets[n->hash & m->mask];
	while (*pp && *pp != n)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = n->next;
	n->next = NULL;
	m->count--;
	if (m->mask + 1 > HMAP_MIN_BUCKETS && m->count < (m->mask + 1) / 8)
		rehash(m, (m->mask + 1) / 2);
}

struct hnode *hmap_first(const struct hmap *m, uint64_t hash)
{
	if (!m->buckets)
		return NULL;
	for (struct hnode *n = m->buckets[hash & m->mask]; n; n = n->next)
		if (n->hash == hash)
			return n;
	return NULL;
}

struct hnode *hmap_next(const struct hnode *n)
{
	for (struct hnode *x = n->next; x; x = x->next)
		if (x->hash == n->hash)
			return x;
	return NULL;
}

struct hnode *hmap_iter_first(const struct hmap *m, size_t *bucket)
{
	if (!m->buckets)
		return NULL;
	for (size_t i = 0; i <= m->mask; i++) {
		if (m->buckets[i]) {
			*bucket = i;
			return m->buckets[i];
		}
	}
	return NULL;
}

struct hnode *hmap_iter_next(const struct hmap *m, struct hnode *n, size_t *bucket)
{
	if (n->next)
		return n->next;
	for (size_t i = *bucket + 1; i <= m->mask; i++) {
		if (m->buckets[i]) {
			*bucket = i;
			return m->buckets[i];
		}
	}
	return NULL;
}

/* SipHash-2-4 (Aumasson and Bernstein), keyed once per process. */
static uint64_t sip_k0, sip_k1;
static int sip_keyed;

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                   \
	do {                       \
		v0 += v1;          \
		v1 = ROTL(v1, 13); \
		v1 ^= v0;          \
		v0 = ROTL(v0, 32); \
		v2 += v3;          \
		v3 = ROTL(v3, 16); \
		v3 ^= v2;          \
		v0 += v3;          \
		v3 = ROTL(v3, 21); \
		v3 ^= v0;          \
		v2 += v1;          \
		v1 = ROTL(v1, 17); \
		v1 ^= v2;          \
		v2 = ROTL(v2, 32); \
	} while (0)

uint64_t hmap_hash_bytes(const void *p, size_t len)
{
	if (!sip_keyed) {
		sip_k0 = random_u64();
		sip_k1 = random_u64();
		sip_keyed = 1;
	}
	const unsigned char *in = p;
	uint64_t v0 = 0x736f6d6570736575ULL ^ sip_k0, v1 = 0x646f72616e646f6dULL ^ sip_k1;
	uint64_t v2 = 0x6c7967656e657261ULL ^ sip_k0, v3 = 0x7465646279746573ULL ^ sip_k1;
	uint64_t b = (uint64_t)len << 56, m;
	size_t i, end = len - (len % 8);
	for (i = 0; i < end; i += 8) {
		memcpy(&m, in + i, 8);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t k = 0; k < len % 8; k++)
		b |= (uint64_t)in[end + k] << (8 * k);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t hmap_hash_u64(uint64_t v)
{
	/* splitmix64's finalizer: session ids are ours, not a peer's choice. */
	v ^= v >> 30;
	v *= 0xbf58476d1ce4e5b9ULL;
	v ^= v >> 27;
	v *= 0x94d049bb133111ebULL;
	v ^= v >> 31;
	return v;
}
