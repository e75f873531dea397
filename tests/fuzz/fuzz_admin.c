/*
 * fuzz_admin: libFuzzer target for what the admin endpoint still parses
 * itself (libmicrohttpd parses HTTP): the request-target and the bearer
 * credential. An input is "<target>\n<Authorization value>" (the target up
 * to the first NUL or newline, as MHD hands over C strings). The target is
 * split (admin_request_init): path and query must lie inside it, the path
 * starts with '/' and holds no '?'; its query parameters and path parameter
 * are decoded into small buffers (never past them, never an embedded NUL);
 * the credential is checked against a second, plain implementation.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "admin.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char token[] = "s3cret";

static __attribute__((noreturn)) void fail(const char *what, int r)
{
	fprintf(stderr, "fuzz_admin: %s (%d)\n", what, r);
	abort();
}

static void inside(const char *base, size_t n, const char *p, const char *what)
{
	if (p < base || p + strlen(p) > base + n)
		fail(what, (int)(p - base));
}

/* The plain reading of "Bearer <token>", trailing blanks ignored. */
static bool bearer_oracle(const char *auth, size_t len)
{
	while (len && (auth[len - 1] == ' ' || auth[len - 1] == '\t'))
		len--;
	return len == 7 + strlen(token) && strncasecmp(auth, "bearer ", 7) == 0 &&
	       memcmp(auth + 7, token, strlen(token)) == 0;
}

static void lookups(struct admin_request *r)
{
	static const char *const names[] = { "a", "code", "deadline_ms", "", "q", "b+" };
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
	if ((p = admin_path_param(r, "/")) && (strlen(p) == 0 || strlen(p) > r->path_len))
		fail("path_param length", 0);
	if ((p = admin_path_param(r, "/api/v1/clients/")) && strlen(p) == 0)
		fail("empty path_param", 0);
	free(r->scratch);
	r->scratch = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data, *nl = memchr(in, '\n', size);
	size_t tlen = nl ? (size_t)(nl - in) : size;
	char *target;
	struct admin_request r;
	int err;

	tlen = strnlen(in, tlen);
	target = xmalloc(tlen + 1);
	memcpy(target, in, tlen);
	target[tlen] = '\0';
	err = admin_request_init(&r, "GET", target);
	if (err != 0 && err != -EINVAL)
		fail("request_init", err);
	if (err == 0) {
		inside(target, tlen, r.path, "path");
		inside(target, tlen, r.query, "query");
		if (r.path[0] != '/' || strchr(r.path, '?') || r.path_len != strlen(r.path))
			fail("path", (int)r.path_len);
		lookups(&r);
	} else if (tlen && target[0] == '/') {
		fail("a path was refused", err);
	}
	free(target);

	if (nl) {
		const char *a = nl + 1;
		size_t alen = strnlen(a, size - (size_t)(a - in));
		char *auth = xmalloc(alen + 1);

		memcpy(auth, a, alen);
		auth[alen] = '\0';
		if (admin_bearer_ok(token, auth) != bearer_oracle(auth, alen))
			fail("bearer", (int)alen);
		free(auth);
	}
	return 0;
}
