/* testjwt: see testjwt.h. */
#include "testjwt.h"

#include <check.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util.h"

static char keydir[2048];

const char *tj_path(const char *rel)
{
	static char bufs[8][4096];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof bufs[0], "%s/%s", keydir, rel);
	return b;
}

unsigned char *tj_slurp(const char *rel, size_t *len)
{
	FILE *f = fopen(tj_path(rel), "rb");
	unsigned char *buf = xmalloc(65536);

	ck_assert_msg(f != NULL, "cannot open %s", tj_path(rel));
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

void tj_find_keys(const char *prog)
{
	const char *env = getenv("KWS_TEST_KEYS");
	struct stat st;
	char *slash;

	if (env) {
		snprintf(keydir, sizeof keydir, "%s", env);
	} else {
		snprintf(keydir, sizeof keydir, "%s", __FILE__);
		slash = strrchr(keydir, '/');
		snprintf(slash ? slash + 1 : keydir,
			 sizeof keydir - (size_t)(slash ? slash + 1 - keydir : 0), "keys");
	}
	if (stat(tj_path("verify"), &st) != 0) {
		fprintf(stderr, "%s: no test keys at %s (set KWS_TEST_KEYS)\n", prog, keydir);
		exit(77);
	}
}

/* Signing keys: name -> algorithm and file. */
static const struct {
	const char *name;
	jwt_alg_t alg;
	const char *file;
} signers[] = {
	{ "hs-a", JWT_ALG_HS256, "verify/hs-a.secret" },
	{ "hs-b", JWT_ALG_HS256, "verify/hs-b.secret" },
	{ "hs-x", JWT_ALG_HS256, "other/hs-x.secret" },
	{ "rsa-a", JWT_ALG_RS256, "sign/rsa-a.pem" },
	{ "rsa-b", JWT_ALG_RS256, "sign/rsa-b.pem" },
	{ "rsa-x", JWT_ALG_RS256, "other/rsa-x.key" },
	{ "ec-a", JWT_ALG_ES256, "sign/ec-a.pem" },
	{ "ec-x", JWT_ALG_ES256, "other/ec-x.key" },
	/* Wrong algorithms with real keys. */
	{ "hs384-a", JWT_ALG_HS384, "verify/hs-a.secret" },
	{ "rs512-a", JWT_ALG_RS512, "sign/rsa-a.pem" },
	/* Key confusion: HS256 with the RSA public key's PEM as the secret. */
	{ "confused", JWT_ALG_HS256, "verify/rsa-a.pem" },
};

char *tj_sign_kid(const char *signer, const char *kid, const char *claims)
{
	jwt_t *jwt;
	unsigned char *key = NULL;
	size_t klen = 0;
	jwt_alg_t alg = JWT_ALG_NONE;
	char *tok;

	for (size_t i = 0; i < sizeof signers / sizeof signers[0]; i++) {
		if (strcmp(signers[i].name, signer) == 0) {
			key = tj_slurp(signers[i].file, &klen);
			alg = signers[i].alg;
		}
	}
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_msg(jwt_add_grants_json(jwt, claims) == 0, "claims %s", claims);
	if (kid)
		ck_assert_int_eq(jwt_add_header(jwt, "kid", kid), 0);
	ck_assert_int_eq(jwt_set_alg(jwt, alg, key, (int)klen), 0);
	tok = jwt_encode_str(jwt);
	ck_assert_ptr_nonnull(tok);
	jwt_free(jwt);
	free(key);
	return tok;
}

char *tj_sign(const char *signer, const char *claims)
{
	return tj_sign_kid(signer, signer, claims);
}

static char claims_buf[1024];

const char *tj_claims(const char *extra)
{
	snprintf(claims_buf, sizeof claims_buf, "{\"sub\":\"user-42\",\"exp\":%ld%s}", TJ_NOW + 300,
		 extra);
	return claims_buf;
}

char *tj_b64url(const char *s)
{
	return tj_b64url_n(s, strlen(s));
}

char *tj_b64url_n(const void *bytes, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;
	char *out = xmalloc(n * 4 / 3 + 4);
	const unsigned char *p = bytes;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		if (i + 1 < n)
			out[o++] = tab[v >> 6 & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
	return out;
}

char *tj_reheader(const char *tok, const char *header_json)
{
	char *h = tj_b64url(header_json), *out;

	if (asprintf(&out, "%s%s", h, strchr(tok, '.')) < 0)
		abort();
	free(h);
	return out;
}

char *tj_sign_raw_hs256(const char *rel, const char *header_json, const char *claims_json)
{
	size_t klen;
	unsigned char *key = tj_slurp(rel, &klen), mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *h = tj_b64url(header_json), *c = tj_b64url(claims_json), *signing, *sig, *tok;

	if (asprintf(&signing, "%s.%s", h, c) < 0)
		abort();
	ck_assert_ptr_nonnull(HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)signing,
				   strlen(signing), mac, &maclen));
	sig = tj_b64url_n(mac, maclen);
	if (asprintf(&tok, "%s.%s", signing, sig) < 0)
		abort();
	free(key);
	free(h);
	free(c);
	free(signing);
	free(sig);
	return tok;
}

void tj_assert_reason_hides(const char *why, const char *tok)
{
	const char *seg = strrchr(tok, '.');

	if (strlen(tok) < 8)
		return;
	ck_assert_msg(strstr(why, tok) == NULL, "reason echoes the token");
	if (seg && strlen(seg) > 8)
		ck_assert_msg(strstr(why, seg + 1) == NULL, "reason echoes the signature");
}
