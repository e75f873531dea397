/*
 * fuzz_admin: libFuzzer target for admin_parse_request. Every input is
 * parsed; the verdict must be -2, -1 with a known status, or a length within
 * the input. An accepted request is walked field by field (every pointer
 * inside what it took, every byte read), its query, path parameter and
 * headers are looked up, and its proper prefixes, parsed from exact-size
 * copies, must need more (-2): a request is never judged before its end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static volatile uint64_t sink;

static __attribute__((noreturn)) void fail(const char *what, int r)
{
	fprintf(stderr, "fuzz_admin: %s (%d)\n", what, r);
	abort();
}

static void inside(const char *base, size_t used, const char *p, size_t len, const char *what)
{
	if (p < base || p + len > base + used)
		fail(what, (int)len);
	for (size_t i = 0; i < len; i++)
		sink = sink * 31 + (uint8_t)p[i];
}

/* Parses the first n bytes from a copy of exactly n bytes. */
static int parse_prefix(const char *data, size_t n)
{
	struct admin_request r;
	char *copy = xmalloc(n ? n : 1);
	int got;

	memcpy(copy, data, n);
	got = admin_parse_request(copy, n, &r);
	free(copy);
	return got;
}

static void lookups(struct admin_request *r)
{
	static const char *const names[] = { "a", "id", "", "q" };
	char v[16];
	const char *p;

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		int e = admin_query_get(r, names[i], v, sizeof v);

		if (e != 0 && e != -ENOENT && e != -EINVAL && e != -ENOSPC)
			fail("query_get", e);
		if (e == 0 && strlen(v) >= sizeof v)
			fail("query_get length", e);
	}
	r->scratch = xmalloc(r->path_len + 1);
	if ((p = admin_path_param(r, "/")) && strlen(p) > r->path_len)
		fail("path_param length", 0);
	admin_path_param(r, "/clients/");
	free(r->scratch);
	r->scratch = NULL;
	if (admin_header_find(r, "content-length") && r->body_len > ADMIN_MAX_BODY)
		fail("body over the limit", (int)r->body_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct admin_request r;
	size_t used, head;
	int got = admin_parse_request(buf, size, &r);

	if (got == -2)
		return 0;
	if (got == -1) {
		if (r.error != 400 && r.error != 411 && r.error != 413 && r.error != 414 &&
		    r.error != 431 && r.error != 505)
			fail("unknown status", r.error);
		return 0;
	}
	if (got <= 0 || (size_t)got > size)
		fail("length out of range", got);
	used = (size_t)got;

	inside(buf, used, r.method, r.method_len, "method");
	inside(buf, used, r.path, r.path_len, "path");
	if (r.method_len == 0 || r.path_len == 0 || r.path[0] != '/')
		fail("empty method or path", 0);
	if (r.query)
		inside(buf, used, r.query, r.query_len, "query");
	if (r.nheaders > ADMIN_MAX_HEADERS)
		fail("header count", (int)r.nheaders);
	for (size_t i = 0; i < r.nheaders; i++) {
		inside(buf, used, r.headers[i].name, r.headers[i].name_len, "header name");
		inside(buf, used, r.headers[i].value, r.headers[i].value_len, "header value");
		if (r.headers[i].name_len == 0)
			fail("empty header name", (int)i);
	}
	inside(buf, used, r.body, r.body_len, "body");
	if (r.body + r.body_len != buf + used)
		fail("body does not end the request", got);
	head = (size_t)(r.body - buf);
	if (head > ADMIN_MAX_HEAD || r.body_len > ADMIN_MAX_BODY)
		fail("over the limits", got);
	lookups(&r);

	/* Proper prefixes need more: none, a byte short, half, the head alone. */
	if (parse_prefix(buf, 0) != -2 || parse_prefix(buf, used - 1) != -2 ||
	    parse_prefix(buf, used / 2) != -2 || (r.body_len && parse_prefix(buf, head) != -2))
		fail("a prefix was judged", got);
	return 0;
}
