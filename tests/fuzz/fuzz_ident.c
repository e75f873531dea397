/*
 * fuzz_ident: libFuzzer target for ident_check in JWT mode, with a fixed
 * HS256 key (a test-only secret, written to a temporary file once and loaded
 * by ident_new). An input that starts with '{' is a claims object: it is
 * signed with that key (kid "fuzz_ident", so the claim checks run on
 * arbitrary claims); any other input is a token as the peer sent it, offered
 * through each source (Authorization, the subprotocol list, the id header,
 * the access_token query) and as those headers' whole values. Every verdict
 * must be 0 with a valid id, or a known error whose reason does not echo the
 * token.
 */
#include <jwt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ident.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000
#define MAXID 128

/* Test-only: not a credential. tests/fuzz/corpus/ident holds tokens signed
 * with it. */
static const char secret[] = "fuzz-ident-test-only-secret-0123456789";

static struct ident *id;

static __attribute__((noreturn)) void fail(const char *what, int r)
{
	fprintf(stderr, "fuzz_ident: %s (%d)\n", what, r);
	abort();
}

static void setup(void)
{
	char path[] = "/tmp/fuzz_ident.XXXXXX", err[256];
	const char *files[1] = { path };
	struct ident_config cfg = {
		.mode = IDENT_JWT,
		.max_id_bytes = MAXID,
		.leeway_s = 30,
		.key_files = { files, 1, NULL },
		.token_in_id_header = true,
		.token_in_query = true,
	};
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, secret, sizeof secret - 1) != (ssize_t)(sizeof secret - 1))
		fail("cannot write the key file", fd);
	close(fd);
	id = ident_new(&cfg, err, sizeof err);
	unlink(path);
	if (!id) {
		fprintf(stderr, "fuzz_ident: %s\n", err);
		abort();
	}
}

static void check(const struct ident_input *in, const char *tok)
{
	char out[MAXID + 1], why[256];
	size_t len = 0;
	int r = ident_check(id, in, NOW, out, sizeof out, &len, why, sizeof why);

	if (r == 0) {
		if (len == 0 || len > MAXID || strlen(out) != len)
			fail("bad id length", (int)len);
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
				fail("control character in the id", (int)i);
		return;
	}
	if (r < IDENT_EQUERY || ident_http_status(r) == 500)
		fail("unknown error", r);
	if (strlen(why) == 0 || strlen(why) >= sizeof why)
		fail("bad reason", r);
	if (tok) {
		const char *sig = strrchr(tok, '.');

		if (sig && strchr(tok, '.') != sig && strlen(sig + 1) >= 16 && strstr(why, sig + 1))
			fail("reason echoes the token", r);
	}
}

static void signed_claims(const char *json)
{
	jwt_t *jwt;
	char *tok, *auth;
	struct ident_input in = { 0 };

	if (jwt_new(&jwt) != 0)
		abort();
	if (jwt_add_grants_json(jwt, json) == 0 && jwt_add_header(jwt, "kid", "fuzz_ident") == 0 &&
	    jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, sizeof secret - 1) ==
		    0 &&
	    (tok = jwt_encode_str(jwt))) {
		if (asprintf(&auth, "Bearer %s", tok) < 0)
			abort();
		in.authorization = auth;
		check(&in, tok);
		free(auth);
		free(tok);
	}
	jwt_free(jwt);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = xstrndup((const char *)data, size); /* up to the first NUL */
	char *raw = xmalloc(size ? size : 1), *auth, *sub;
	struct ident_input in;

	if (!id)
		setup();
	if (size > 0 && data[0] == '{') {
		signed_claims(s);
		free(s);
		free(raw);
		return 0;
	}
	if (asprintf(&auth, "Bearer %s", s) < 0 || asprintf(&sub, "kws.v1, kws.token.%s", s) < 0)
		abort();
	memcpy(raw, data, size); /* exact size: not NUL-terminated */

	memset(&in, 0, sizeof in);
	in.authorization = auth;
	check(&in, s);
	in.authorization = s;
	check(&in, s);

	memset(&in, 0, sizeof in);
	in.subprotocols = sub;
	check(&in, s);
	in.subprotocols = s;
	check(&in, s);

	memset(&in, 0, sizeof in);
	in.id_header = raw;
	in.id_len = size;
	check(&in, s);

	memset(&in, 0, sizeof in);
	in.query_token = s;
	check(&in, s);

	free(auth);
	free(sub);
	free(raw);
	free(s);
	return 0;
}
