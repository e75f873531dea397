/*
 * hmap: an intrusive, chained hash map. Items embed a struct hnode and are
 * found by walking the chain of a hash with hmap_first/hmap_next and comparing
 * their own keys. The map never allocates items, only its bucket array.
 * hmap_hash_bytes is SipHash-2-4 with a per-process random key, because client
 * ids come from untrusted peers (hash flooding).
 */
#ifndef KWS_HMAP_H
#define KWS_HMAP_H

#include <stddef.h>
#include <stdint.h>

struct hnode {
	struct hnode *next;
	uint64_t hash;
};

struct hmap {
	struct hnode **buckets;
	size_t mask; /* bucket count - 1; the count is a power of two */
	size_t count;
};

void hmap_init(struct hmap *m);
/* Frees the bucket array (not the items). Accepts a zeroed map. */
void hmap_free(struct hmap *m);
/* Inserts n under hash; duplicates are allowed (the caller decides). */
void hmap_insert(struct hmap *m, struct hnode *n, uint64_t hash);
/* Removes n, which must be in m. */
void hmap_remove(struct hmap *m, struct hnode *n);
/* The first node with this hash, or NULL; then hmap_next for the others. */
struct hnode *hmap_first(const struct hmap *m, uint64_t hash);
struct hnode *hmap_next(const struct hnode *n);

/* Iterates every node: for (it = hmap_iter_first(m, &b); it; it = hmap_iter_next(m, it, &b)).
 * The current node may not be removed during iteration; collect first. */
struct hnode *hmap_iter_first(const struct hmap *m, size_t *bucket);
struct hnode *hmap_iter_next(const struct hmap *m, struct hnode *n, size_t *bucket);

uint64_t hmap_hash_bytes(const void *p, size_t len);
uint64_t hmap_hash_u64(uint64_t v);

#define hmap_entry(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#endif
