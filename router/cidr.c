/* cidr: see cidr.h. */
#include "cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const uint8_t v4mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* Whether the first bits of a and b are equal. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8, rest = bits % 8;

	if (memcmp(a, b, whole) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (uint8_t)(0xff00u >> rest)) == 0;
}

/* Whether any bit after the first bits of a (of len bytes) is set. */
static bool host_bits(const uint8_t *a, size_t len, unsigned bits)
{
	for (size_t i = bits / 8; i < len; i++) {
		uint8_t mask = i == bits / 8 ? (uint8_t)(0xffu >> (bits % 8)) : 0xff;

		if (a[i] & mask)
			return true;
	}
	return false;
}

/* Parses one entry of len bytes (already trimmed, non-empty) into *c. */
static int parse_one(const char *s, size_t len, struct cidr *c, char *err, size_t errlen)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash;
	size_t alen;
	unsigned max, prefix;

	if (len >= sizeof buf) {
		snprintf(err, errlen, "address \"%.*s...\" is too long", 24, s);
		return -1;
	}
	memcpy(buf, s, len);
	buf[len] = '\0';
	slash = strchr(buf, '/');
	alen = slash ? (size_t)(slash - buf) : len;
	buf[alen] = '\0';
	memset(c, 0, sizeof *c);
	if (inet_pton(AF_INET, buf, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		snprintf(err, errlen, "\"%.*s\" is not an IPv4 or IPv6 address", (int)len, s);
		return -1;
	}
	prefix = max;
	if (slash) {
		const char *p = slash + 1;
		size_t plen = len - alen - 1;

		if (plen == 0 || plen > 3 || (plen > 1 && p[0] == '0')) {
			snprintf(err, errlen, "\"%.*s\": bad prefix length", (int)len, s);
			return -1;
		}
		prefix = 0;
		for (size_t i = 0; i < plen; i++) {
			if (p[i] < '0' || p[i] > '9') {
				snprintf(err, errlen, "\"%.*s\": bad prefix length", (int)len, s);
				return -1;
			}
			prefix = prefix * 10 + (unsigned)(p[i] - '0');
		}
		if (prefix > max) {
			snprintf(err, errlen, "\"%.*s\": prefix length over %u", (int)len, s, max);
			return -1;
		}
	}
	if (host_bits(c->addr, max / 8, prefix)) {
		snprintf(err, errlen, "\"%.*s\" has host bits set after /%u", (int)len, s, prefix);
		return -1;
	}
	c->prefix = prefix;
	if (c->family == AF_INET6 && prefix >= 96 && memcmp(c->addr, v4mapped, 12) == 0) {
		memmove(c->addr, c->addr + 12, 4);
		memset(c->addr + 4, 0, 12);
		c->family = AF_INET;
		c->prefix = prefix - 96;
	}
	return 0;
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

int cidr_parse(const char *s, struct cidr_list *out, char *err, size_t errlen)
{
	const char *p = s;
	size_t cap = 0;

	out->v = NULL;
	out->n = 0;
	while (*p && blank(*p))
		p++;
	if (*p == '\0')
		return 0;
	for (;;) {
		const char *end = strchr(p, ',');
		const char *b = p, *e = end ? end : p + strlen(p);

		while (b < e && blank(*b))
			b++;
		while (e > b && blank(e[-1]))
			e--;
		if (b == e) {
			snprintf(err, errlen, "empty entry in address list");
			goto out_free;
		}
		if (out->n == cap) {
			cap = cap ? cap * 2 : 4;
			out->v = xrealloc(out->v, cap * sizeof *out->v);
		}
		if (parse_one(b, (size_t)(e - b), &out->v[out->n], err, errlen) < 0)
			goto out_free;
		out->n++;
		if (!end)
			return 0;
		p = end + 1;
	}
out_free:
	cidr_free(out);
	return -1;
}

bool cidr_match(const struct cidr_list *l, const struct sockaddr *addr)
{
	uint8_t a[16];
	int family;

	if (!l || !addr)
		return false;
	if (addr->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)addr;

		memcpy(a, &in->sin_addr, 4);
		family = AF_INET;
	} else if (addr->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;

		memcpy(a, &in6->sin6_addr, 16);
		family = AF_INET6;
		if (memcmp(a, v4mapped, 12) == 0) {
			memmove(a, a + 12, 4);
			family = AF_INET;
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].family == family && prefix_eq(l->v[i].addr, a, l->v[i].prefix))
			return true;
	return false;
}

void cidr_copy(struct cidr_list *dst, const struct cidr_list *src)
{
	dst->v = NULL;
	dst->n = 0;
	if (!src || src->n == 0)
		return;
	dst->v = xmalloc(src->n * sizeof *dst->v);
	memcpy(dst->v, src->v, src->n * sizeof *dst->v);
	dst->n = src->n;
}

void cidr_free(struct cidr_list *l)
{
	if (!l)
		return;
	free(l->v);
	l->v = NULL;
	l->n = 0;
}
