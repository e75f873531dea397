/* admission: see admission.h. */
#include "admission.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"
#include "wire.h"

static const char *const reason_names[ADMISSION_NREASONS] = {
	"missing_id", "empty_id", "long_id", "bad_id", "bad_path", "not_ready",
	"bad_position", "draining", "auth", "origin", "limit", "other",
};

const char *admission_reason_name(enum admission_reason why)
{
	if ((unsigned)why >= ADMISSION_NREASONS)
		return "other";
	return reason_names[why];
}

/* ---- handshakes per source address ---------------------------------------- */

struct bucket {
	struct hnode node;
	uint8_t addr[16];
	double tokens;
	int64_t at_ms;
};

void admission_rate_init(struct admission_rate *t, long per_second)
{
	hmap_init(&t->buckets);
	t->rate = (double)per_second;
}

void admission_rate_free(struct admission_rate *t)
{
	size_t bk;
	struct hnode *it;
	while (t->buckets.buckets && (it = hmap_iter_first(&t->buckets, &bk))) {
		hmap_remove(&t->buckets, it);
		free(hmap_entry(it, struct bucket, node));
	}
	hmap_free(&t->buckets);
}

bool admission_rate_take(struct admission_rate *t, const uint8_t key[16], int64_t now_ms)
{
	uint64_t h = hash_bytes(key, 16);
	struct bucket *b = NULL;
	for (struct hnode *n = hmap_first(&t->buckets, h); n && !b; n = hmap_next(n)) {
		struct bucket *x = hmap_entry(n, struct bucket, node);
		if (memcmp(x->addr, key, 16) == 0)
			b = x;
	}
	double burst = 2 * t->rate;
	if (!b) {
		b = xcalloc(1, sizeof *b);
		memcpy(b->addr, key, 16);
		b->tokens = burst;
		b->at_ms = now_ms;
		hmap_insert(&t->buckets, &b->node, h);
	}
	b->tokens += (double)(now_ms - b->at_ms) * t->rate / 1000.0;
	if (b->tokens > burst)
		b->tokens = burst;
	b->at_ms = now_ms;
	if (b->tokens < 1)
		return false;
	b->tokens -= 1;
	return true;
}

void admission_rate_prune(struct admission_rate *t, int64_t now_ms)
{
	size_t bk, n = 0, cap = 0;
	struct bucket **old = NULL;
	for (struct hnode *it = hmap_iter_first(&t->buckets, &bk); it;
	     it = hmap_iter_next(&t->buckets, it, &bk)) {
		struct bucket *b = hmap_entry(it, struct bucket, node);
		if (now_ms - b->at_ms > 10000) {
			if (n == cap)
				old = xrealloc(old, (cap = cap ? cap * 2 : 64) * sizeof *old);
			old[n++] = b;
		}
	}
	for (size_t i = 0; i < n; i++) {
		hmap_remove(&t->buckets, &old[i]->node);
		free(old[i]);
	}
	free(old);
}

size_t admission_rate_count(const struct admission_rate *t)
{
	return t->buckets.count;
}

bool admission_addr_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa && sa->sa_family == AF_INET) {
		memcpy(key, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
		return true;
	}
	if (sa && sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
		return true;
	}
	return false;
}

/* ---- Origin ---------------------------------------------------------------- */

bool admission_origin_allowed(const struct conf_list *allowed, const char *origin)
{
	if (!allowed->count || !origin)
		return true;
	for (size_t i = 0; i < allowed->count; i++)
		if (strcasecmp(origin, allowed->items[i]) == 0)
			return true;
	return false;
}

/* ---- position -------------------------------------------------------------- */

int admission_parse_position(const char *s, uint32_t *p, int64_t *off)
{
	char *end;
	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	unsigned long pp = strtoul(s, &end, 10);
	if (errno || *end != ':' || pp >= WIRE_MAX_PARTITIONS || end[1] < '0' || end[1] > '9')
		return -1;
	long long oo = strtoll(end + 1, &end, 10);
	if (errno || *end || oo < 0)
		return -1;
	*p = (uint32_t)pp;
	*off = oo;
	return 0;
}

int admission_position(const char *header, size_t hlen, const char *query, size_t qlen,
		       uint32_t *p, int64_t *off)
{
	char buf[ADMISSION_MAX_POSITION + 1];
	const char *v = header ? header : query;
	size_t n = header ? hlen : qlen;
	if (!v)
		return 0;
	if (n == 0 || n > ADMISSION_MAX_POSITION || memchr(v, '\0', n))
		return -1;
	memcpy(buf, v, n);
	buf[n] = '\0';
	return admission_parse_position(buf, p, off) < 0 ? -1 : 1;
}

/* ---- query ------------------------------------------------------------------ */

const char *admission_query_arg(const char *arg, size_t len, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	if (len <= nl || memcmp(arg, name, nl) != 0 || arg[nl] != '=')
		return NULL;
	*vlen = len - nl - 1;
	return arg + nl + 1;
}
