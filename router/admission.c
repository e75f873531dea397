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
	"missing_id",
	"empty_id",
	"long_id",
	"bad_id",
	"bad_path",
	"not_ready",
	"bad_position",
	"draining",
	"auth",
	"origin",
	"limit",
	"other",
	"bad_request",
	"subprotocol",
	"too_large",
	"timeout",
	"duplicate_header",
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
	uint64_t h = hmap_hash_bytes(key, 16);
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

int admission_position(const char *header, size_t hlen, const char *query, size_t qlen, uint32_t *p,
		       int64_t *off)
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

/* ---- the request head ---------------------------------------------------- */

size_t admission_head_end(const char *buf, size_t len)
{
	for (size_t i = 3; i < len; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
		    buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

static bool name_is(const char *name, size_t nl, const char *want)
{
	return strlen(want) == nl && strncasecmp(name, want, nl) == 0;
}

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Appends s[0..n) to the growing output. */
static void put(char **out, size_t *len, size_t *cap, const char *s, size_t n)
{
	if (*len + n + 1 > *cap) {
		while (*len + n + 1 > *cap)
			*cap *= 2;
		*out = xrealloc(*out, *cap);
	}
	memcpy(*out + *len, s, n);
	*len += n;
	(*out)[*len] = '\0';
}

static void puts_(char **out, size_t *len, size_t *cap, const char *s)
{
	put(out, len, cap, s, strlen(s));
}

char *admission_rewrite_head(const char *head, size_t len, const char *id_header, size_t *outlen)
{
	size_t cap = len + 256, olen = 0, plen = 0, pcap = 64, klen = 0, kcap = 64;
	char *out = xmalloc(cap), *all = xmalloc(pcap), *kept = xmalloc(kcap);
	int nid = 0, nauth = 0;
	const char *p = head, *end = head + len;
	out[0] = all[0] = kept[0] = '\0';
	/* the request line */
	const char *eol = memchr(p, '\n', (size_t)(end - p));
	if (!eol || eol == p || eol[-1] != '\r' || !memchr(p, ' ', (size_t)(eol - p)))
		goto out_bad;
	put(&out, &olen, &cap, p, (size_t)(eol - p + 1));
	for (p = eol + 1; p < end; p = eol + 1) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol || eol[-1] != '\r')
			goto out_bad;
		if (eol - p == 1)
			break; /* the empty line */
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		if (!colon || colon == p || is_ows(*p))
			goto out_bad; /* no name, or an obsolete folded line */
		size_t nl = (size_t)(colon - p);
		const char *v = colon + 1, *ve = eol - 1;
		while (v < ve && is_ows(*v))
			v++;
		while (ve > v && is_ows(ve[-1]))
			ve--;
		if (name_is(p, nl, ADMISSION_HDR_PROTOCOLS) || name_is(p, nl, ADMISSION_HDR_DUP))
			continue;
		if (name_is(p, nl, id_header))
			nid++;
		if (name_is(p, nl, "authorization"))
			nauth++;
		if (!name_is(p, nl, "sec-websocket-protocol")) {
			put(&out, &olen, &cap, p, (size_t)(eol - p + 1));
			continue;
		}
		/* its entries, comma-separated */
		for (const char *e = v; e < ve;) {
			const char *c = memchr(e, ',', (size_t)(ve - e));
			const char *ee = c ? c : ve, *es = e;
			while (es < ee && is_ows(*es))
				es++;
			const char *et = ee;
			while (et > es && is_ows(et[-1]))
				et--;
			if (et > es) {
				if (plen)
					put(&all, &plen, &pcap, ", ", 2);
				put(&all, &plen, &pcap, es, (size_t)(et - es));
				if ((size_t)(et - es) < 10 || strncmp(es, "kws.token.", 10) != 0) {
					if (klen)
						put(&kept, &klen, &kcap, ", ", 2);
					put(&kept, &klen, &kcap, es, (size_t)(et - es));
				}
			}
			e = c ? c + 1 : ve;
		}
	}
	if (p >= end)
		goto out_bad;
	if (klen) {
		puts_(&out, &olen, &cap, "Sec-WebSocket-Protocol: ");
		put(&out, &olen, &cap, kept, klen);
		puts_(&out, &olen, &cap, "\r\n");
	}
	if (plen) {
		puts_(&out, &olen, &cap, ADMISSION_HDR_PROTOCOLS ": ");
		put(&out, &olen, &cap, all, plen);
		puts_(&out, &olen, &cap, "\r\n");
	}
	if (nid > 1 || nauth > 1) {
		puts_(&out, &olen, &cap, ADMISSION_HDR_DUP ": ");
		if (nid > 1) {
			for (const char *c = id_header; *c; c++) {
				char lc = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
				put(&out, &olen, &cap, &lc, 1);
			}
		}
		if (nauth > 1)
			puts_(&out, &olen, &cap, nid > 1 ? ", authorization" : "authorization");
		puts_(&out, &olen, &cap, "\r\n");
	}
	puts_(&out, &olen, &cap, "\r\n");
	free(all);
	free(kept);
	*outlen = olen;
	return out;
out_bad:
	free(all);
	free(kept);
	free(out);
	return NULL;
}

/* ---- cookies and client ids ------------------------------------------------- */

const char *admission_cookie(const char *cookies, size_t len, const char *name, size_t *vlen)
{
	size_t nl = strlen(name);
	const char *p = cookies, *end = cookies + len;
	while (p < end) {
		while (p < end && (is_ows(*p) || *p == ';'))
			p++;
		const char *semi = memchr(p, ';', (size_t)(end - p));
		const char *pe = semi ? semi : end;
		const char *eq = memchr(p, '=', (size_t)(pe - p));
		if (eq) {
			const char *ne = eq;
			while (ne > p && is_ows(ne[-1]))
				ne--;
			if ((size_t)(ne - p) == nl && memcmp(p, name, nl) == 0) {
				const char *v = eq + 1, *ve = pe;
				while (v < ve && is_ows(*v))
					v++;
				while (ve > v && is_ows(ve[-1]))
					ve--;
				if (ve - v >= 2 && *v == '"' && ve[-1] == '"') {
					v++;
					ve--;
				}
				*vlen = (size_t)(ve - v);
				return v;
			}
		}
		p = pe;
	}
	return NULL;
}

bool admission_id_ok(const char *id, size_t len, size_t max_bytes)
{
	const unsigned char *s = (const unsigned char *)id;
	if (len == 0 || len > max_bytes)
		return false;
	for (size_t i = 0; i < len;) {
		unsigned c = s[i];
		uint32_t cp;
		size_t n;
		if (c < 0x80) {
			cp = c;
			n = 1;
		} else if (c >= 0xc2 && c <= 0xdf) {
			cp = c & 0x1f;
			n = 2;
		} else if (c >= 0xe0 && c <= 0xef) {
			cp = c & 0x0f;
			n = 3;
		} else if (c >= 0xf0 && c <= 0xf4) {
			cp = c & 0x07;
			n = 4;
		} else {
			return false;
		}
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false; /* overlong, out of range, or a surrogate */
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
			return false; /* C0, DEL, C1 */
		i += n;
	}
	return true;
}
