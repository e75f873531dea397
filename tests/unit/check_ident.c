/* Unit tests for router/ident.c: the three identification modes, JWT
 * validation (algorithms, keys and rotation, key confusion, time claims,
 * iss/aud, the id claim), the token sources, garbage tokens, and key loading
 * errors. Tokens are made here with libjwt's encoder and the test-only keys
 * in tests/unit/keys (see its README). */
#include "ident.h"

#include <arpa/inet.h>
#include <check.h>
#include <jwt.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define NOW 1700000000L
#define MAXID 64

static char keydir[2048];

/* ---- fixtures -------------------------------------------------------- */

static const char *kpath(const char *rel)
{
	static char bufs[8][4096];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof bufs[0], "%s/%s", keydir, rel);
	return b;
}

static unsigned char *slurp(const char *rel, size_t *len)
{
	FILE *f = fopen(kpath(rel), "rb");
	unsigned char *buf = xmalloc(65536);

	ck_assert_msg(f != NULL, "cannot open %s", kpath(rel));
	*len = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static void find_keydir(void)
{
	const char *env = getenv("KWS_TEST_KEYS");
	struct stat st;
	char *slash;

	if (env) {
		snprintf(keydir, sizeof keydir, "%s", env);
	} else {
		snprintf(keydir, sizeof keydir, "%s", __FILE__);
		slash = strrchr(keydir, '/');
		snprintf(slash ? slash + 1 : keydir, sizeof keydir - (size_t)(slash ? slash + 1 - keydir : 0),
			 "keys");
	}
	if (stat(kpath("verify"), &st) != 0) {
		fprintf(stderr, "check_ident: no test keys at %s (set KWS_TEST_KEYS)\n", keydir);
		exit(77);
	}
}

/* A configuration; tests change fields, then make() builds it. */
static struct ident_config cfg;
static const char *files[8];
static struct ident *ID;
static char why[256];

static void base_jwt(void)
{
	memset(&cfg, 0, sizeof cfg);
	cfg.mode = IDENT_JWT;
	cfg.max_id_bytes = MAXID;
	cfg.leeway_s = 30;
	files[0] = kpath("verify");
	cfg.key_files.items = files;
	cfg.key_files.count = 1;
	ID = NULL;
}

static void make(void)
{
	char err[512] = "";

	ident_free(ID);
	ID = ident_new(&cfg, err, sizeof err);
	ck_assert_msg(ID != NULL, "ident_new: %s", err);
}

static void setup_jwt(void)
{
	base_jwt();
	make();
}

static void teardown(void)
{
	ident_free(ID);
	ID = NULL;
}

/* ---- tokens ---------------------------------------------------------- */

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

/* Signs claims (a JSON object) with signer, adding header kid unless NULL.
 * Returns a malloc'ed token. */
static char *sign_kid(const char *signer, const char *kid, const char *claims)
{
	jwt_t *jwt;
	unsigned char *key = NULL;
	size_t klen = 0;
	jwt_alg_t alg = JWT_ALG_NONE;
	char *tok;

	for (size_t i = 0; i < sizeof signers / sizeof signers[0]; i++) {
		if (strcmp(signers[i].name, signer) == 0) {
			key = slurp(signers[i].file, &klen);
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

/* Signs with the signer's own name as kid. */
static char *sign(const char *signer, const char *claims)
{
	return sign_kid(signer, signer, claims);
}

static char claims_buf[1024];

/* Claims with sub and exp = NOW + 300, plus extra (",\"k\":v" or ""). */
static const char *claims(const char *extra)
{
	snprintf(claims_buf, sizeof claims_buf, "{\"sub\":\"user-42\",\"exp\":%ld%s}",
		 NOW + 300, extra);
	return claims_buf;
}

/* base64url of s, no padding. */
static char *b64url(const char *s)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = strlen(s), o = 0;
	char *out = xmalloc(n * 4 / 3 + 4);
	const unsigned char *p = (const unsigned char *)s;

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

/* tok with its header replaced by the base64url of header_json. */
static char *reheader(const char *tok, const char *header_json)
{
	char *h = b64url(header_json), *out;

	if (asprintf(&out, "%s%s", h, strchr(tok, '.')) < 0)
		abort();
	free(h);
	return out;
}

/* ---- checking -------------------------------------------------------- */

static char idbuf[MAXID + 1];
static size_t idlen;

static int check_in(const struct ident_input *in)
{
	int r;

	memset(idbuf, 0, sizeof idbuf);
	idlen = 12345;
	r = ident_check(ID, in, NOW, idbuf, sizeof idbuf, &idlen, why, sizeof why);
	if (r == 0) {
		ck_assert_uint_eq(strlen(idbuf), idlen);
	} else {
		ck_assert(r < 0);
		ck_assert_int_ne(ident_http_status(r), 500);
		ck_assert_uint_gt(strlen(why), 0);
	}
	return r;
}

/* Checks tok sent as a bearer token; a refusal's reason must not hold any
 * part of the token. */
static int check_tok(const char *tok)
{
	char *auth;
	struct ident_input in = { 0 };
	int r;

	if (asprintf(&auth, "Bearer %s", tok) < 0)
		abort();
	in.authorization = auth;
	r = check_in(&in);
	if (r != 0 && strlen(tok) >= 8) {
		const char *seg = strrchr(tok, '.');

		ck_assert_msg(strstr(why, tok) == NULL, "reason echoes the token");
		if (seg && strlen(seg) > 8)
			ck_assert_msg(strstr(why, seg + 1) == NULL, "reason echoes the signature");
	}
	free(auth);
	return r;
}

/* Expects tok to be refused with err and a reason containing want. */
static void refused(char *tok, int err, const char *want)
{
	int r = check_tok(tok);

	ck_assert_msg(r == err, "got %d (%s), want %d", r, why, err);
	ck_assert_msg(strstr(why, want) != NULL, "reason \"%s\" lacks \"%s\"", why, want);
	free(tok);
}

static void accepted(char *tok, const char *want_id)
{
	int r = check_tok(tok);

	ck_assert_msg(r == 0, "refused: %d %s", r, why);
	ck_assert_str_eq(idbuf, want_id);
	free(tok);
}

/* ---- valid tokens ---------------------------------------------------- */

START_TEST(valid_each_alg)
{
	accepted(sign("hs-a", claims("")), "user-42");
	accepted(sign("rsa-a", claims("")), "user-42");
	accepted(sign("ec-a", claims("")), "user-42");
	ck_assert_uint_eq(idlen, 7);
	ck_assert_uint_eq(ident_key_count(ID), 5);
	ck_assert_int_eq(ident_mode(ID), IDENT_JWT);
}
END_TEST

START_TEST(valid_without_kid_tries_keys)
{
	/* Without kid each key of the token's algorithm is tried. */
	accepted(sign_kid("hs-a", NULL, claims("")), "user-42");
	accepted(sign_kid("hs-b", NULL, claims("")), "user-42");
	accepted(sign_kid("rsa-b", NULL, claims("")), "user-42");
	accepted(sign_kid("ec-a", NULL, claims("")), "user-42");
}
END_TEST

START_TEST(kid_selects_key)
{
	/* Rotation: both generations are accepted, each by its own kid. */
	accepted(sign("hs-b", claims("")), "user-42");
	accepted(sign("rsa-b", claims("")), "user-42");
	/* The kid names one key: another key's signature does not pass. */
	refused(sign_kid("rsa-b", "rsa-a", claims("")), IDENT_ETOKEN, "bad token signature");
	refused(sign_kid("hs-a", "hs-b", claims("")), IDENT_ETOKEN, "bad token signature");
	refused(sign_kid("hs-a", "nope", claims("")), IDENT_ETOKEN, "unknown token key id");
	refused(sign_kid("hs-a", "", claims("")), IDENT_ETOKEN, "unknown token key id");
	/* A kid that is not a string. */
	{
		char *t = sign_kid("hs-a", NULL, claims(""));

		refused(reheader(t, "{\"alg\":\"HS256\",\"kid\":5}"), IDENT_ETOKEN,
			"key id is not a string");
		free(t);
	}
}
END_TEST

START_TEST(rotation_by_file_list)
{
	/* Keys listed as files instead of a directory. */
	ident_free(ID);
	base_jwt();
	files[0] = kpath("verify/hs-b.secret");
	files[1] = kpath("verify/rsa-a.pem");
	cfg.key_files.count = 2;
	make();
	ck_assert_uint_eq(ident_key_count(ID), 2);
	accepted(sign("hs-b", claims("")), "user-42");
	accepted(sign("rsa-a", claims("")), "user-42");
	refused(sign("hs-a", claims("")), IDENT_ETOKEN, "unknown token key id");
	refused(sign_kid("hs-a", NULL, claims("")), IDENT_ETOKEN, "bad token signature");
	refused(sign("ec-a", claims("")), IDENT_ETOKEN, "unknown token key id");
	refused(sign_kid("ec-a", NULL, claims("")), IDENT_ETOKEN, "no key for the token's algorithm");
}
END_TEST

/* ---- time ------------------------------------------------------------ */

static char *with_times(const char *times)
{
	char c[256];

	snprintf(c, sizeof c, "{\"sub\":\"u\",%s}", times);
	return sign("hs-a", c);
}

START_TEST(expired)
{
	char t[128];

	snprintf(t, sizeof t, "\"exp\":%ld", NOW - 31);
	refused(with_times(t), IDENT_EEXPIRED, "token expired");
	snprintf(t, sizeof t, "\"exp\":%ld", NOW - 30);
	refused(with_times(t), IDENT_EEXPIRED, "token expired");
	snprintf(t, sizeof t, "\"exp\":%ld", NOW - 29); /* within the leeway */
	accepted(with_times(t), "u");
	snprintf(t, sizeof t, "\"exp\":%ld.9", NOW - 29);
	accepted(with_times(t), "u");
	refused(with_times("\"exp\":0"), IDENT_EEXPIRED, "token expired");
	refused(with_times("\"exp\":-9223372036854775808"), IDENT_EEXPIRED, "token expired");
	refused(with_times("\"exp\":-1e300"), IDENT_EEXPIRED, "token expired");
	accepted(with_times("\"exp\":9223372036854775807"), "u");
	accepted(with_times("\"exp\":1e300"), "u");
	/* Without leeway. */
	ident_free(ID);
	base_jwt();
	cfg.leeway_s = 0;
	make();
	snprintf(t, sizeof t, "\"exp\":%ld", NOW);
	refused(with_times(t), IDENT_EEXPIRED, "token expired");
	snprintf(t, sizeof t, "\"exp\":%ld", NOW + 1);
	accepted(with_times(t), "u");
}
END_TEST

START_TEST(not_yet_valid)
{
	char t[128];

	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":%ld", NOW + 600, NOW + 31);
	refused(with_times(t), IDENT_EEXPIRED, "token not yet valid");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":%ld", NOW + 600, NOW + 30);
	accepted(with_times(t), "u");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":%ld", NOW + 600, NOW - 100);
	accepted(with_times(t), "u");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":9223372036854775807", NOW + 600);
	refused(with_times(t), IDENT_EEXPIRED, "token not yet valid");
}
END_TEST

START_TEST(time_claims_malformed)
{
	char t[128];

	refused(sign("hs-a", "{\"sub\":\"u\"}"), IDENT_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":\"99999999999\""), IDENT_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":null"), IDENT_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":true"), IDENT_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":[1]"), IDENT_ECLAIMS, "no numeric exp");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":\"%ld\"", NOW + 600, NOW + 600);
	refused(with_times(t), IDENT_ECLAIMS, "nbf is not a number");
}
END_TEST

/* ---- signatures, algorithms, key confusion --------------------------- */

START_TEST(wrong_signature)
{
	char *t = sign("rsa-a", claims("")), *dot = strrchr(t, '.');

	dot[10] = dot[10] == 'A' ? 'B' : 'A';
	refused(t, IDENT_ETOKEN, "bad token signature");
	t = sign("hs-a", claims(""));
	dot = strrchr(t, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	refused(t, IDENT_ETOKEN, "bad token signature");
	t = sign("ec-a", claims(""));
	dot = strrchr(t, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	refused(t, IDENT_ETOKEN, "bad token signature");
	/* Claims swapped under a valid signature. */
	{
		char *a = sign("hs-a", claims("")), *b = sign("hs-a", "{\"sub\":\"admin\",\"exp\":1}");
		char *forged;
		char *a1 = strchr(a, '.'), *a2 = strrchr(a, '.'), *b1 = strchr(b, '.');
		char *b2 = strrchr(b, '.');

		if (asprintf(&forged, "%.*s%.*s%s", (int)(a1 - a), a, (int)(b2 - b1), b1, a2) < 0)
			abort();
		refused(forged, IDENT_ETOKEN, "bad token signature");
		free(a);
		free(b);
	}
	/* No signature at all. */
	t = sign("hs-a", claims(""));
	strrchr(t, '.')[1] = '\0';
	refused(t, IDENT_ETOKEN, "malformed token");
}
END_TEST

START_TEST(wrong_key)
{
	refused(sign_kid("hs-x", NULL, claims("")), IDENT_ETOKEN, "bad token signature");
	refused(sign_kid("rsa-x", NULL, claims("")), IDENT_ETOKEN, "bad token signature");
	refused(sign_kid("ec-x", NULL, claims("")), IDENT_ETOKEN, "bad token signature");
	refused(sign("rsa-x", claims("")), IDENT_ETOKEN, "unknown token key id");
	refused(sign_kid("ec-x", "ec-a", claims("")), IDENT_ETOKEN, "bad token signature");
}
END_TEST

START_TEST(alg_none)
{
	char *t = sign("hs-a", claims("")), *u;
	jwt_t *jwt;

	/* libjwt's own unsigned token ("header.payload."). */
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_int_eq(jwt_add_grants_json(jwt, claims("")), 0);
	u = jwt_encode_str(jwt);
	jwt_free(jwt);
	refused(u, IDENT_ETOKEN, "malformed token");
	/* With a made-up signature, and every spelling of none. */
	refused(reheader(t, "{\"alg\":\"none\"}"), IDENT_ETOKEN, "algorithm not accepted");
	refused(reheader(t, "{\"alg\":\"none\",\"kid\":\"hs-a\"}"), IDENT_ETOKEN,
		"algorithm not accepted");
	refused(reheader(t, "{\"alg\":\"None\",\"typ\":\"JWT\"}"), IDENT_ETOKEN,
		"algorithm not accepted");
	refused(reheader(t, "{\"alg\":\"NONE\"}"), IDENT_ETOKEN, "algorithm not accepted");
	refused(reheader(t, "{\"alg\":\"\"}"), IDENT_ETOKEN, "algorithm not accepted");
	refused(reheader(t, "{\"alg\":null}"), IDENT_ETOKEN, "algorithm not accepted");
	refused(reheader(t, "{\"typ\":\"JWT\"}"), IDENT_ETOKEN, "algorithm not accepted");
	free(t);
}
END_TEST

START_TEST(other_algs)
{
	char *t = sign("hs-a", claims(""));

	refused(sign("hs384-a", claims("")), IDENT_ETOKEN, "algorithm not accepted");
	refused(sign("rs512-a", claims("")), IDENT_ETOKEN, "algorithm not accepted");
	/* Exact names only: libjwt would take "hs256". */
	refused(reheader(t, "{\"alg\":\"hs256\",\"kid\":\"hs-a\"}"), IDENT_ETOKEN,
		"algorithm not accepted");
	refused(reheader(t, "{\"alg\":\"PS256\"}"), IDENT_ETOKEN, "algorithm not accepted");
	refused(reheader(t, "{\"alg\":\"EdDSA\"}"), IDENT_ETOKEN, "algorithm not accepted");
	/* Duplicate header members (which alg would win?) and crit. */
	refused(reheader(t, "{\"alg\":\"none\",\"alg\":\"HS256\"}"), IDENT_ETOKEN, "malformed token");
	refused(reheader(t, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}"), IDENT_ETOKEN,
		"critical");
	free(t);
}
END_TEST

START_TEST(key_confusion)
{
	char *t = sign_kid("confused", NULL, claims(""));
	size_t klen;
	unsigned char *pem = slurp("verify/rsa-a.pem", &klen);
	jwt_t *jwt = NULL;
	int raw;

	/* What libjwt alone does with it: it takes the algorithm from the
	 * token, so with the RSA key's PEM it checks an HMAC. */
	raw = jwt_decode(&jwt, t, pem, (int)klen);
	fprintf(stderr, "check_ident: libjwt alone %s an HS256 token made with an RSA "
		"public key as secret\n", raw == 0 ? "ACCEPTS" : "refuses");
	jwt_free(jwt);
	free(pem);
	/* ident: the RSA key is RS256 only. */
	refused(xstrdup(t), IDENT_ETOKEN, "bad token signature"); /* HMAC keys tried, none fits */
	free(t);
	refused(sign_kid("confused", "rsa-a", claims("")), IDENT_ETOKEN,
		"algorithm does not match its key");
	/* With only the RSA key loaded. */
	ident_free(ID);
	base_jwt();
	files[0] = kpath("verify/rsa-a.pem");
	make();
	refused(sign_kid("confused", NULL, claims("")), IDENT_ETOKEN,
		"no key for the token's algorithm");
	refused(sign_kid("confused", "rsa-a", claims("")), IDENT_ETOKEN,
		"algorithm does not match its key");
	accepted(sign("rsa-a", claims("")), "user-42");
}
END_TEST

START_TEST(alg_key_mismatch)
{
	/* A kid that names a key of another type than the token's alg. */
	refused(sign_kid("rsa-a", "hs-a", claims("")), IDENT_ETOKEN, "does not match its key");
	refused(sign_kid("ec-a", "rsa-a", claims("")), IDENT_ETOKEN, "does not match its key");
	refused(sign_kid("hs-a", "ec-a", claims("")), IDENT_ETOKEN, "does not match its key");
	{
		char *t = sign("rsa-a", claims(""));

		refused(reheader(t, "{\"alg\":\"ES256\",\"kid\":\"rsa-a\"}"), IDENT_ETOKEN,
			"does not match its key");
		refused(reheader(t, "{\"alg\":\"ES256\"}"), IDENT_ETOKEN, "bad token signature");
		free(t);
	}
}
END_TEST

/* ---- the id claim, iss, aud ------------------------------------------ */

static char *with_sub(const char *sub_json)
{
	char c[512];

	snprintf(c, sizeof c, "{\"sub\":%s,\"exp\":%ld}", sub_json, NOW + 300);
	return sign("hs-a", c);
}

START_TEST(id_claim)
{
	char c[256], long_id[MAXID + 2];

	refused(sign("hs-a", "{\"exp\":1800000000}"), IDENT_ECLAIMID, "no client id (claim \"sub\")");
	refused(with_sub("\"\""), IDENT_ECLAIMID, "no client id");
	refused(with_sub("42"), IDENT_ECLAIMID, "no client id");
	refused(with_sub("null"), IDENT_ECLAIMID, "no client id");
	refused(with_sub("[\"a\"]"), IDENT_ECLAIMID, "no client id");
	refused(with_sub("\"a\\tb\""), IDENT_ECLAIMID, "control characters");
	refused(with_sub("\"a\\nb\""), IDENT_ECLAIMID, "control characters");
	refused(with_sub("\"a\\u007fb\""), IDENT_ECLAIMID, "control characters");
	accepted(with_sub("\"us\\u00e9r\""), "us\xc3\xa9r");
	memset(long_id, 'x', sizeof long_id);
	long_id[MAXID] = '\0';
	snprintf(c, sizeof c, "\"%s\"", long_id);
	accepted(with_sub(c), long_id);
	long_id[MAXID] = 'x';
	long_id[MAXID + 1] = '\0';
	snprintf(c, sizeof c, "\"%s\"", long_id);
	refused(with_sub(c), IDENT_ECLAIMID, "longer than 64 bytes");
	/* An id that does not fit the caller's buffer. */
	{
		char *t = sign("hs-a", claims("")), small[4], *auth;
		struct ident_input in = { 0 };
		size_t n;

		if (asprintf(&auth, "Bearer %s", t) < 0)
			abort();
		in.authorization = auth;
		ck_assert_int_eq(ident_check(ID, &in, NOW, small, sizeof small, &n, why, sizeof why),
				 IDENT_ECLAIMID);
		ck_assert_int_eq(ident_check(ID, &in, NOW, small, sizeof small, &n, NULL, 0),
				 IDENT_ECLAIMID);
		free(auth);
		free(t);
	}
	/* Another claim. */
	ident_free(ID);
	base_jwt();
	cfg.claim = "uid";
	make();
	refused(sign("hs-a", claims("")), IDENT_ECLAIMID, "claim \"uid\"");
	accepted(sign("hs-a", claims(",\"uid\":\"client-7\"")), "client-7");
}
END_TEST

START_TEST(issuer_audience)
{
	/* Neither configured: iss ignored, aud refused. */
	accepted(sign("hs-a", claims(",\"iss\":\"anyone\"")), "user-42");
	refused(sign("hs-a", claims(",\"aud\":\"kws\"")), IDENT_ECLAIMS, "audience");
	ident_free(ID);
	base_jwt();
	cfg.issuer = "https://auth.example.com/";
	cfg.audience = "kws";
	make();
	accepted(sign("hs-a", claims(",\"iss\":\"https://auth.example.com/\",\"aud\":\"kws\"")),
		 "user-42");
	accepted(sign("hs-a", claims(",\"iss\":\"https://auth.example.com/\","
				     "\"aud\":[\"other\",\"kws\"]")), "user-42");
	refused(sign("hs-a", claims(",\"iss\":\"https://evil.example.com/\",\"aud\":\"kws\"")),
		IDENT_ECLAIMS, "issuer");
	refused(sign("hs-a", claims(",\"aud\":\"kws\"")), IDENT_ECLAIMS, "issuer");
	refused(sign("hs-a", claims(",\"iss\":7,\"aud\":\"kws\"")), IDENT_ECLAIMS, "issuer");
	refused(sign("hs-a", claims(",\"iss\":\"https://auth.example.com/\",\"aud\":\"kwsx\"")),
		IDENT_ECLAIMS, "audience");
	refused(sign("hs-a", claims(",\"iss\":\"https://auth.example.com/\","
				    "\"aud\":[\"other\",1]")), IDENT_ECLAIMS, "audience");
	refused(sign("hs-a", claims(",\"iss\":\"https://auth.example.com/\"")), IDENT_ECLAIMS,
		"audience");
	refused(sign("hs-a", claims(",\"iss\":\"https://auth.example.com/\",\"aud\":{}")),
		IDENT_ECLAIMS, "audience");
}
END_TEST

/* ---- sources --------------------------------------------------------- */

START_TEST(source_authorization)
{
	char *t = sign("hs-a", claims("")), *h;
	struct ident_input in = { 0 };

	if (asprintf(&h, "  bearer \t%s  ", t) < 0)
		abort();
	in.authorization = h;
	ck_assert_int_eq(check_in(&in), 0);
	free(h);
	in.authorization = "Basic dXNlcjpwYXNz";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	ck_assert_str_eq(why, "missing token: send Authorization: Bearer <token>");
	in.authorization = "Bearer";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	in.authorization = "Bearer  ";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	ck_assert_str_eq(why, "empty token");
	in.authorization = "BearerX y";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	in.authorization = NULL;
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	ck_assert_int_eq(ident_http_status(IDENT_ENOTOKEN), 401);
	free(t);
}
END_TEST

START_TEST(source_subprotocol)
{
	char *t = sign("ec-a", claims("")), *h;
	struct ident_input in = { 0 };

	if (asprintf(&h, "kws.v1, " IDENT_SUBPROTOCOL_TOKEN "%s", t) < 0)
		abort();
	in.subprotocols = h;
	ck_assert_int_eq(check_in(&in), 0);
	ck_assert_str_eq(idbuf, "user-42");
	free(h);
	if (asprintf(&h, IDENT_SUBPROTOCOL_TOKEN "%s ,kws.v1", t) < 0)
		abort();
	in.subprotocols = h;
	ck_assert_int_eq(check_in(&in), 0);
	free(h);
	in.subprotocols = "kws.v1";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	in.subprotocols = "kws.v1, kws.token.";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	in.subprotocols = "kws.tokenX, xkws.token.abc";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	in.subprotocols = "kws.token.not-a-jwt";
	ck_assert_int_eq(check_in(&in), IDENT_ETOKEN);
	ck_assert_str_eq(why, "malformed token");
	in.subprotocols = "";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	free(t);
}
END_TEST

START_TEST(source_id_header)
{
	char *t = sign("rsa-a", claims(""));
	struct ident_input in = { .id_header = t, .id_len = strlen(t) };

	/* Off by default: the header is ignored in JWT mode. */
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	ident_free(ID);
	base_jwt();
	cfg.token_in_id_header = true;
	make();
	ck_assert_int_eq(check_in(&in), 0);
	ck_assert_str_eq(idbuf, "user-42");
	in.id_header = "user-1";
	in.id_len = 6;
	ck_assert_int_eq(check_in(&in), IDENT_ETOKEN);
	free(t);
}
END_TEST

START_TEST(source_query)
{
	char *t = sign("hs-b", claims(""));
	struct ident_input in = { .query_token = t };

	ck_assert_int_eq(check_in(&in), IDENT_EQUERY);
	ck_assert_int_eq(ident_http_status(IDENT_EQUERY), 400);
	ck_assert_ptr_null(strstr(why, t));
	ident_free(ID);
	base_jwt();
	cfg.token_in_query = true;
	make();
	ck_assert_int_eq(check_in(&in), 0);
	ck_assert_str_eq(idbuf, "user-42");
	in.query_token = "";
	ck_assert_int_eq(check_in(&in), IDENT_ENOTOKEN);
	free(t);
}
END_TEST

START_TEST(source_precedence)
{
	char *good = sign("hs-a", claims("")), *bad_tok = sign("hs-x", claims("")), *a, *s;
	struct ident_input in = { 0 };

	if (asprintf(&a, "Bearer %s", bad_tok) < 0 || asprintf(&s, "kws.token.%s", good) < 0)
		abort();
	/* Authorization first, then the subprotocol. */
	in.authorization = a;
	in.subprotocols = s;
	ck_assert_int_eq(check_in(&in), IDENT_ETOKEN);
	in.authorization = "Basic x";
	ck_assert_int_eq(check_in(&in), 0);
	free(a);
	free(s);
	free(good);
	free(bad_tok);
}
END_TEST

/* ---- garbage --------------------------------------------------------- */

START_TEST(garbage_truncated)
{
	char *t = sign("rsa-a", claims(""));
	size_t n = strlen(t);

	for (size_t i = 0; i < n; i++) {
		char *p = xstrndup(t, i);
		int r = check_tok(p);

		ck_assert_msg(r == IDENT_ETOKEN || (i == 0 && r == IDENT_ENOTOKEN),
			      "prefix %zu: %d %s", i, r, why);
		free(p);
	}
	accepted(t, "user-42");
}
END_TEST

START_TEST(garbage_tokens)
{
	static const char *const bad[] = {
		"x", ".", "..", "...", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.",
		"eyJhbGciOiJIUzI1NiJ9.e30.=", "eyJhbGciOiJIUzI1NiJ9=.e30.AAAA",
		"eyJhbGciOiJIUzI1NiJ9.e30.AA+A", "eyJhbGciOiJIUzI1NiJ9.e30.AA/A",
		"eyJhbGciOiJIUzI1NiJ9.e30.AA A", "eyJhbGciOiJIUzI1NiJ9.e30.AA%41",
		"e.e30.AAAA",          /* header of one base64 character */
		"bm90IGpzb24.e30.AAAA", /* "not json" */
		"WzFd.e30.AAAA",       /* [1] */
		"e30.e30.AAAA",        /* {} */
		"IkhTMjU2Ig.e30.AAAA", /* "HS256" */
		"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.AAAA",
		"eyJhbGciOiJIUzI1NiJ9.WzFd.AAAA",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = check_tok(bad[i]);

		ck_assert_msg(r == IDENT_ETOKEN, "%s: %d %s", bad[i], r, why);
	}
}
END_TEST

START_TEST(garbage_huge)
{
	char *big = xmalloc(IDENT_MAX_TOKEN + 100);
	char *t = sign("hs-a", claims(""));
	size_t n = strlen(t);

	memset(big, 'A', IDENT_MAX_TOKEN + 99);
	big[IDENT_MAX_TOKEN + 99] = '\0';
	ck_assert_int_eq(check_tok(big), IDENT_ETOKEN);
	ck_assert_str_eq(why, "token longer than 8192 bytes");
	/* A valid token padded with a huge claim, just over and just under. */
	{
		char *c = xmalloc(IDENT_MAX_TOKEN);

		snprintf(c, IDENT_MAX_TOKEN, "{\"sub\":\"u\",\"exp\":%ld,\"pad\":\"%0*d\"}", NOW + 300,
			 (int)((IDENT_MAX_TOKEN - n) * 3 / 4 + 100), 0);
		free(t);
		t = sign("hs-a", c);
		ck_assert_uint_gt(strlen(t), IDENT_MAX_TOKEN);
		refused(t, IDENT_ETOKEN, "longer");
		snprintf(c, IDENT_MAX_TOKEN, "{\"sub\":\"u\",\"exp\":%ld,\"pad\":\"%0*d\"}", NOW + 300,
			 (int)((IDENT_MAX_TOKEN - n) * 3 / 4 - 100), 0);
		t = sign("hs-a", c);
		ck_assert_uint_le(strlen(t), IDENT_MAX_TOKEN);
		accepted(t, "u");
		free(c);
	}
	/* Deeply nested JSON in the header. */
	memset(big, '[', IDENT_MAX_TOKEN / 2);
	big[IDENT_MAX_TOKEN / 2] = '\0';
	{
		char *h = b64url(big), *tok;

		if (asprintf(&tok, "%.6000s.e30.AAAA", h) < 0)
			abort();
		ck_assert_int_eq(check_tok(tok), IDENT_ETOKEN);
		free(tok);
		free(h);
	}
	free(big);
}
END_TEST

/* ---- header modes ---------------------------------------------------- */

static struct sockaddr_storage peer_ss;

static const struct sockaddr *peer(const char *s)
{
	memset(&peer_ss, 0, sizeof peer_ss);
	if (strchr(s, ':')) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&peer_ss;

		a->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, s, &a->sin6_addr), 1);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&peer_ss;

		a->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, s, &a->sin_addr), 1);
	}
	return (const struct sockaddr *)&peer_ss;
}

START_TEST(mode_from_proxies)
{
	char err[256];
	struct cidr_list l;
	struct ident_input in = { .id_header = "user-9xx", .id_len = 6 };

	memset(&cfg, 0, sizeof cfg);
	cfg.mode = IDENT_HEADER_FROM_PROXIES;
	cfg.max_id_bytes = MAXID;
	ck_assert_ptr_null(ident_new(&cfg, err, sizeof err));
	ck_assert_str_eq(err, "header-from-proxies needs at least one trusted proxy address");
	ck_assert_int_eq(cidr_parse("10.0.0.0/8, ::1", &l, err, sizeof err), 0);
	cfg.proxies = l;
	make();
	cidr_free(&l); /* ident_new copied it */
	in.peer = peer("10.1.2.3");
	ck_assert_int_eq(check_in(&in), 0);
	ck_assert_str_eq(idbuf, "user-9");
	in.peer = peer("::ffff:10.0.0.1");
	ck_assert_int_eq(check_in(&in), 0);
	in.peer = peer("::1");
	ck_assert_int_eq(check_in(&in), 0);
	in.peer = peer("192.168.0.1");
	ck_assert_int_eq(check_in(&in), IDENT_EPEER);
	ck_assert_str_eq(why, "peer is not a trusted proxy");
	ck_assert_int_eq(ident_http_status(IDENT_EPEER), 403);
	in.peer = peer("::2");
	ck_assert_int_eq(check_in(&in), IDENT_EPEER);
	in.peer = NULL;
	ck_assert_int_eq(check_in(&in), IDENT_EPEER);
	/* A trusted peer still needs a good header. */
	in.peer = peer("10.0.0.7");
	in.id_header = NULL;
	ck_assert_int_eq(check_in(&in), IDENT_ENOID);
	in.id_header = "a\rb";
	in.id_len = 3;
	ck_assert_int_eq(check_in(&in), IDENT_EBADID);
	/* Untrusted peers are refused before the header is looked at. */
	in.peer = peer("8.8.8.8");
	ck_assert_int_eq(check_in(&in), IDENT_EPEER);
}
END_TEST

START_TEST(mode_none)
{
	char long_id[MAXID + 1];
	struct ident_input in = { .id_header = "user-42", .id_len = 7 };

	memset(&cfg, 0, sizeof cfg);
	cfg.mode = IDENT_NONE;
	cfg.max_id_bytes = MAXID;
	make();
	ck_assert_int_eq(check_in(&in), 0);
	ck_assert_str_eq(idbuf, "user-42");
	ck_assert_uint_eq(idlen, 7);
	in.id_len = 4; /* not NUL-terminated: only id_len bytes count */
	ck_assert_int_eq(check_in(&in), 0);
	ck_assert_str_eq(idbuf, "user");
	in.id_len = 0;
	ck_assert_int_eq(check_in(&in), IDENT_ENOID);
	ck_assert_str_eq(why, "missing X-Client-Id header");
	ck_assert_int_eq(ident_http_status(IDENT_ENOID), 400);
	in.id_header = NULL;
	ck_assert_int_eq(check_in(&in), IDENT_ENOID);
	memset(long_id, 'x', sizeof long_id);
	in.id_header = long_id;
	in.id_len = MAXID;
	ck_assert_int_eq(check_in(&in), 0);
	in.id_len = MAXID + 1;
	ck_assert_int_eq(check_in(&in), IDENT_EBADID);
	ck_assert_str_eq(why, "X-Client-Id header longer than 64 bytes");
	in.id_header = "a\x01";
	in.id_len = 2;
	ck_assert_int_eq(check_in(&in), IDENT_EBADID);
	ck_assert_str_eq(why, "X-Client-Id header has control characters");
	in.id_header = "a\x7f";
	ck_assert_int_eq(check_in(&in), IDENT_EBADID);
	/* A bearer token changes nothing in this mode. */
	in.id_header = "me";
	in.authorization = "Bearer x.y.z";
	ck_assert_int_eq(check_in(&in), 0);
	ck_assert_str_eq(idbuf, "me");
	/* Another header name shows in the reasons. */
	cfg.id_header = "X-User";
	make();
	in.id_header = NULL;
	ck_assert_int_eq(check_in(&in), IDENT_ENOID);
	ck_assert_str_eq(why, "missing X-User header");
}
END_TEST

/* ---- configuration errors -------------------------------------------- */

static void new_fails(const char *want1, const char *want2)
{
	char err[512] = "";
	struct ident *id = ident_new(&cfg, err, sizeof err);

	ck_assert_msg(id == NULL, "accepted (want \"%s\")", want1);
	ck_assert_msg(strstr(err, want1) && (!want2 || strstr(err, want2)),
		      "error \"%s\" lacks \"%s\" / \"%s\"", err, want1, want2 ? want2 : "");
}

START_TEST(bad_key_files)
{
	static const struct {
		const char *file, *why;
	} bad[] = {
		{ "bad/rsa-1024.pem", "RSA key of 1024 bits; RS256 needs at least 2048" },
		{ "bad/ec-p384.pem", "not on curve P-256" },
		{ "bad/private.pem", "PEM but not a public key" },
		{ "bad/cert.pem", "PEM but not a public key" },
		{ "bad/truncated.pem", "PEM without -----END PUBLIC KEY-----" },
		{ "bad/short.secret", "HMAC secret of 16 bytes; HS256 needs at least 32" },
		{ "bad/missing.pem", "No such file or directory" },
		{ "other", "PEM but not a public key" }, /* other/ec-x.key, a private key */
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		base_jwt();
		files[0] = kpath(bad[i].file);
		new_fails(bad[i].file, bad[i].why);
	}
	/* Duplicate kids across the list. */
	base_jwt();
	files[1] = kpath("verify/hs-a.secret");
	cfg.key_files.count = 2;
	new_fails("same key id \"hs-a\"", NULL);
	/* A directory without key files (only a dot file). */
	{
		char dir[] = "/tmp/check_ident.XXXXXX", *dot;

		ck_assert_ptr_nonnull(mkdtemp(dir));
		if (asprintf(&dot, "%s/.x", dir) < 0)
			abort();
		fclose(fopen(dot, "w"));
		base_jwt();
		files[0] = dir;
		new_fails("has no key files", dir);
		unlink(dot);
		free(dot);
		rmdir(dir);
	}
	/* An empty file and an oversized one. */
	{
		char f[] = "/tmp/check_ident.XXXXXX";
		int fd = mkstemp(f);
		char *junk = xcalloc(1, 70000);

		ck_assert_int_ge(fd, 0);
		base_jwt();
		files[0] = f;
		new_fails(f, "empty");
		ck_assert_int_eq(write(fd, junk, 70000), 70000);
		new_fails(f, "over 65536 bytes");
		close(fd);
		unlink(f);
		free(junk);
	}
}
END_TEST

START_TEST(bad_settings)
{
	base_jwt();
	cfg.key_files.count = 0;
	new_fails("needs at least one key file", NULL);
	base_jwt();
	cfg.leeway_s = -1;
	new_fails("leeway", NULL);
	base_jwt();
	cfg.leeway_s = 86401;
	new_fails("leeway", NULL);
	base_jwt();
	cfg.max_id_bytes = 0;
	new_fails("max id bytes", NULL);
	base_jwt();
	cfg.mode = (enum ident_mode)7;
	new_fails("unknown identification mode", NULL);
	ident_free(NULL);
}
END_TEST

START_TEST(names_and_codes)
{
	static const int errs[] = { IDENT_ENOID, IDENT_EBADID, IDENT_EPEER, IDENT_ENOTOKEN,
				    IDENT_ETOKEN, IDENT_EEXPIRED, IDENT_ECLAIMS, IDENT_ECLAIMID,
				    IDENT_EQUERY };

	for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
		ck_assert_int_ne(ident_http_status(errs[i]), 500);
		ck_assert_str_ne(ident_strerror(errs[i]), "unknown identification error");
	}
	ck_assert_int_eq(ident_http_status(-100), 500);
	ck_assert_str_eq(ident_strerror(-100), "unknown identification error");
	ck_assert_int_eq(ident_mode_parse("none"), IDENT_NONE);
	ck_assert_int_eq(ident_mode_parse("header-from-proxies"), IDENT_HEADER_FROM_PROXIES);
	ck_assert_int_eq(ident_mode_parse("jwt"), IDENT_JWT);
	ck_assert_int_eq(ident_mode_parse("JWT"), -1);
	ck_assert_int_eq(ident_mode_parse(NULL), -1);
	for (int m = IDENT_NONE; m <= IDENT_JWT; m++)
		ck_assert_int_eq(ident_mode_parse(ident_mode_name((enum ident_mode)m)), m);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("ident");
	TCase *jwt = tcase_create("jwt"), *other = tcase_create("other");
	SRunner *sr;
	int failed;

	find_keydir();
	tcase_set_timeout(jwt, 30);
	tcase_add_checked_fixture(jwt, setup_jwt, teardown);
	tcase_add_test(jwt, valid_each_alg);
	tcase_add_test(jwt, valid_without_kid_tries_keys);
	tcase_add_test(jwt, kid_selects_key);
	tcase_add_test(jwt, rotation_by_file_list);
	tcase_add_test(jwt, expired);
	tcase_add_test(jwt, not_yet_valid);
	tcase_add_test(jwt, time_claims_malformed);
	tcase_add_test(jwt, wrong_signature);
	tcase_add_test(jwt, wrong_key);
	tcase_add_test(jwt, alg_none);
	tcase_add_test(jwt, other_algs);
	tcase_add_test(jwt, key_confusion);
	tcase_add_test(jwt, alg_key_mismatch);
	tcase_add_test(jwt, id_claim);
	tcase_add_test(jwt, issuer_audience);
	tcase_add_test(jwt, source_authorization);
	tcase_add_test(jwt, source_subprotocol);
	tcase_add_test(jwt, source_id_header);
	tcase_add_test(jwt, source_query);
	tcase_add_test(jwt, source_precedence);
	tcase_add_test(jwt, garbage_truncated);
	tcase_add_test(jwt, garbage_tokens);
	tcase_add_test(jwt, garbage_huge);
	suite_add_tcase(s, jwt);
	tcase_add_checked_fixture(other, NULL, teardown);
	tcase_add_test(other, mode_from_proxies);
	tcase_add_test(other, mode_none);
	tcase_add_test(other, bad_key_files);
	tcase_add_test(other, bad_settings);
	tcase_add_test(other, names_and_codes);
	suite_add_tcase(s, other);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
