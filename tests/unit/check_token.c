/* Unit tests for router/token.c: JWT verification with the keys of
 * router/keys.c — algorithms, keys and rotation, key confusion, time claims,
 * iss/aud, garbage, repeated JSON members. Tokens are made with libjwt's
 * encoder and the test-only keys in tests/unit/keys (see its README). */
#include "token.h"

#include <check.h>
#include <jansson.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "testjwt.h"
#include "util.h"

/* The keys and rules under test; each test starts with verify/ and a
 * leeway of 30 s. */
static struct keys KS;
static struct token_rules RULES;
static char why[256];
static char idbuf[256]; /* the sub claim of an accepted token */

static void setup(void)
{
	char err[512] = "";

	memset(&RULES, 0, sizeof RULES);
	RULES.leeway_s = 30;
	ck_assert_msg(keys_add(&KS, tj_path("verify"), err, sizeof err) == 0, "%s", err);
}

static void teardown(void)
{
	keys_free(&KS);
}

/* Replaces the keys by one or two files. */
static void use_keys(const char *a, const char *b)
{
	char err[512] = "";

	keys_free(&KS);
	ck_assert_msg(keys_add(&KS, tj_path(a), err, sizeof err) == 0, "%s", err);
	if (b)
		ck_assert_msg(keys_add(&KS, tj_path(b), err, sizeof err) == 0, "%s", err);
}

/* Verifies tok; an accepted token's sub goes to idbuf, a refusal's reason
 * must not hold any part of the token. */
static int check_tok(const char *tok)
{
	json_t *claims = (json_t *)1;
	int r;

	memset(idbuf, 0, sizeof idbuf);
	memset(why, 0, sizeof why);
	r = token_verify(&KS, &RULES, tok, strlen(tok), TJ_NOW, &claims, why, sizeof why);
	if (r == 0) {
		ck_assert(json_is_object(claims));
		snprintf(idbuf, sizeof idbuf, "%s",
			 json_string_value(json_object_get(claims, "sub")) ?: "");
		json_decref(claims);
		return 0;
	}
	ck_assert_ptr_null(claims);
	ck_assert(r == TOKEN_EINVALID || r == TOKEN_EEXPIRED || r == TOKEN_ECLAIMS);
	ck_assert_uint_gt(strlen(why), 0);
	tj_assert_reason_hides(why, tok);
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

static void accepted(char *tok, const char *want_sub)
{
	int r = check_tok(tok);

	ck_assert_msg(r == 0, "refused: %d %s", r, why);
	ck_assert_str_eq(idbuf, want_sub);
	free(tok);
}

START_TEST(valid_each_alg)
{
	accepted(tj_sign("hs-a", tj_claims("")), "user-42");
	accepted(tj_sign("rsa-a", tj_claims("")), "user-42");
	accepted(tj_sign("ec-a", tj_claims("")), "user-42");
	ck_assert_uint_eq(strlen(idbuf), 7);
	ck_assert_uint_eq(KS.n, 5);
}
END_TEST

START_TEST(valid_without_kid_tries_keys)
{
	/* Without kid each key of the token's algorithm is tried. */
	accepted(tj_sign_kid("hs-a", NULL, tj_claims("")), "user-42");
	accepted(tj_sign_kid("hs-b", NULL, tj_claims("")), "user-42");
	accepted(tj_sign_kid("rsa-b", NULL, tj_claims("")), "user-42");
	accepted(tj_sign_kid("ec-a", NULL, tj_claims("")), "user-42");
}
END_TEST

START_TEST(kid_selects_key)
{
	/* Rotation: both generations are accepted, each by its own kid. */
	accepted(tj_sign("hs-b", tj_claims("")), "user-42");
	accepted(tj_sign("rsa-b", tj_claims("")), "user-42");
	/* The kid names one key: another key's signature does not pass. */
	refused(tj_sign_kid("rsa-b", "rsa-a", tj_claims("")), TOKEN_EINVALID,
		"bad token signature");
	refused(tj_sign_kid("hs-a", "hs-b", tj_claims("")), TOKEN_EINVALID, "bad token signature");
	refused(tj_sign_kid("hs-a", "nope", tj_claims("")), TOKEN_EINVALID, "unknown token key id");
	refused(tj_sign_kid("hs-a", "", tj_claims("")), TOKEN_EINVALID, "unknown token key id");
	/* A kid that is not a string. */
	{
		char *t = tj_sign_kid("hs-a", NULL, tj_claims(""));

		refused(tj_reheader(t, "{\"alg\":\"HS256\",\"kid\":5}"), TOKEN_EINVALID,
			"key id is not a string");
		free(t);
	}
}
END_TEST

START_TEST(rotation_by_file_list)
{
	/* Keys listed as files instead of a directory. */
	use_keys("verify/hs-b.secret", "verify/rsa-a.pem");
	ck_assert_uint_eq(KS.n, 2);
	accepted(tj_sign("hs-b", tj_claims("")), "user-42");
	accepted(tj_sign("rsa-a", tj_claims("")), "user-42");
	refused(tj_sign("hs-a", tj_claims("")), TOKEN_EINVALID, "unknown token key id");
	refused(tj_sign_kid("hs-a", NULL, tj_claims("")), TOKEN_EINVALID, "bad token signature");
	refused(tj_sign("ec-a", tj_claims("")), TOKEN_EINVALID, "unknown token key id");
	refused(tj_sign_kid("ec-a", NULL, tj_claims("")), TOKEN_EINVALID,
		"no key for the token's algorithm");
}
END_TEST

static char *with_times(const char *times)
{
	char c[256];

	snprintf(c, sizeof c, "{\"sub\":\"u\",%s}", times);
	return tj_sign("hs-a", c);
}

START_TEST(expired)
{
	char t[128];

	snprintf(t, sizeof t, "\"exp\":%ld", TJ_NOW - 31);
	refused(with_times(t), TOKEN_EEXPIRED, "token expired");
	snprintf(t, sizeof t, "\"exp\":%ld", TJ_NOW - 30);
	refused(with_times(t), TOKEN_EEXPIRED, "token expired");
	snprintf(t, sizeof t, "\"exp\":%ld", TJ_NOW - 29); /* within the leeway */
	accepted(with_times(t), "u");
	snprintf(t, sizeof t, "\"exp\":%ld.9", TJ_NOW - 29);
	accepted(with_times(t), "u");
	refused(with_times("\"exp\":0"), TOKEN_EEXPIRED, "token expired");
	refused(with_times("\"exp\":-9223372036854775808"), TOKEN_EEXPIRED, "token expired");
	refused(with_times("\"exp\":-1e300"), TOKEN_EEXPIRED, "token expired");
	accepted(with_times("\"exp\":9223372036854775807"), "u");
	accepted(with_times("\"exp\":1e300"), "u");
	/* Without leeway. */
	RULES.leeway_s = 0;
	snprintf(t, sizeof t, "\"exp\":%ld", TJ_NOW);
	refused(with_times(t), TOKEN_EEXPIRED, "token expired");
	snprintf(t, sizeof t, "\"exp\":%ld", TJ_NOW + 1);
	accepted(with_times(t), "u");
}
END_TEST

START_TEST(not_yet_valid)
{
	char t[128];

	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":%ld", TJ_NOW + 600, TJ_NOW + 31);
	refused(with_times(t), TOKEN_EEXPIRED, "token not yet valid");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":%ld", TJ_NOW + 600, TJ_NOW + 30);
	accepted(with_times(t), "u");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":%ld", TJ_NOW + 600, TJ_NOW - 100);
	accepted(with_times(t), "u");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":9223372036854775807", TJ_NOW + 600);
	refused(with_times(t), TOKEN_EEXPIRED, "token not yet valid");
}
END_TEST

START_TEST(time_claims_malformed)
{
	char t[128];

	refused(tj_sign("hs-a", "{\"sub\":\"u\"}"), TOKEN_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":\"99999999999\""), TOKEN_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":null"), TOKEN_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":true"), TOKEN_ECLAIMS, "no numeric exp");
	refused(with_times("\"exp\":[1]"), TOKEN_ECLAIMS, "no numeric exp");
	snprintf(t, sizeof t, "\"exp\":%ld,\"nbf\":\"%ld\"", TJ_NOW + 600, TJ_NOW + 600);
	refused(with_times(t), TOKEN_ECLAIMS, "nbf is not a number");
}
END_TEST

START_TEST(wrong_signature)
{
	char *t = tj_sign("rsa-a", tj_claims("")), *dot = strrchr(t, '.');

	dot[10] = dot[10] == 'A' ? 'B' : 'A';
	refused(t, TOKEN_EINVALID, "bad token signature");
	t = tj_sign("hs-a", tj_claims(""));
	dot = strrchr(t, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	refused(t, TOKEN_EINVALID, "bad token signature");
	t = tj_sign("ec-a", tj_claims(""));
	dot = strrchr(t, '.');
	dot[5] = dot[5] == 'A' ? 'B' : 'A';
	refused(t, TOKEN_EINVALID, "bad token signature");
	/* Claims swapped under a valid signature. */
	{
		char *a = tj_sign("hs-a", tj_claims("")),
		     *b = tj_sign("hs-a", "{\"sub\":\"admin\",\"exp\":1}");
		char *forged;
		char *a1 = strchr(a, '.'), *a2 = strrchr(a, '.'), *b1 = strchr(b, '.');
		char *b2 = strrchr(b, '.');

		if (asprintf(&forged, "%.*s%.*s%s", (int)(a1 - a), a, (int)(b2 - b1), b1, a2) < 0)
			abort();
		refused(forged, TOKEN_EINVALID, "bad token signature");
		free(a);
		free(b);
	}
	/* No signature at all. */
	t = tj_sign("hs-a", tj_claims(""));
	strrchr(t, '.')[1] = '\0';
	refused(t, TOKEN_EINVALID, "malformed token");
}
END_TEST

START_TEST(wrong_key)
{
	refused(tj_sign_kid("hs-x", NULL, tj_claims("")), TOKEN_EINVALID, "bad token signature");
	refused(tj_sign_kid("rsa-x", NULL, tj_claims("")), TOKEN_EINVALID, "bad token signature");
	refused(tj_sign_kid("ec-x", NULL, tj_claims("")), TOKEN_EINVALID, "bad token signature");
	refused(tj_sign("rsa-x", tj_claims("")), TOKEN_EINVALID, "unknown token key id");
	refused(tj_sign_kid("ec-x", "ec-a", tj_claims("")), TOKEN_EINVALID, "bad token signature");
}
END_TEST

START_TEST(alg_none)
{
	char *t = tj_sign("hs-a", tj_claims("")), *u;
	jwt_t *jwt;

	/* libjwt's own unsigned token ("header.payload."). */
	ck_assert_int_eq(jwt_new(&jwt), 0);
	ck_assert_int_eq(jwt_add_grants_json(jwt, tj_claims("")), 0);
	u = jwt_encode_str(jwt);
	jwt_free(jwt);
	refused(u, TOKEN_EINVALID, "malformed token");
	/* With a made-up signature, and every spelling of none. */
	refused(tj_reheader(t, "{\"alg\":\"none\"}"), TOKEN_EINVALID, "algorithm not accepted");
	refused(tj_reheader(t, "{\"alg\":\"none\",\"kid\":\"hs-a\"}"), TOKEN_EINVALID,
		"algorithm not accepted");
	refused(tj_reheader(t, "{\"alg\":\"None\",\"typ\":\"JWT\"}"), TOKEN_EINVALID,
		"algorithm not accepted");
	refused(tj_reheader(t, "{\"alg\":\"NONE\"}"), TOKEN_EINVALID, "algorithm not accepted");
	refused(tj_reheader(t, "{\"alg\":\"\"}"), TOKEN_EINVALID, "algorithm not accepted");
	refused(tj_reheader(t, "{\"alg\":null}"), TOKEN_EINVALID, "algorithm not accepted");
	refused(tj_reheader(t, "{\"typ\":\"JWT\"}"), TOKEN_EINVALID, "algorithm not accepted");
	free(t);
}
END_TEST

START_TEST(other_algs)
{
	char *t = tj_sign("hs-a", tj_claims(""));

	refused(tj_sign("hs384-a", tj_claims("")), TOKEN_EINVALID, "algorithm not accepted");
	refused(tj_sign("rs512-a", tj_claims("")), TOKEN_EINVALID, "algorithm not accepted");
	/* Exact names only: libjwt would take "hs256". */
	refused(tj_reheader(t, "{\"alg\":\"hs256\",\"kid\":\"hs-a\"}"), TOKEN_EINVALID,
		"algorithm not accepted");
	refused(tj_reheader(t, "{\"alg\":\"PS256\"}"), TOKEN_EINVALID, "algorithm not accepted");
	refused(tj_reheader(t, "{\"alg\":\"EdDSA\"}"), TOKEN_EINVALID, "algorithm not accepted");
	/* Duplicate header members (which alg would win?) and crit. */
	refused(tj_reheader(t, "{\"alg\":\"none\",\"alg\":\"HS256\"}"), TOKEN_EINVALID,
		"malformed token");
	refused(tj_reheader(t, "{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}"), TOKEN_EINVALID,
		"critical");
	free(t);
}
END_TEST

START_TEST(key_confusion)
{
	char *t = tj_sign_kid("confused", NULL, tj_claims(""));
	size_t klen;
	unsigned char *pem = tj_slurp("verify/rsa-a.pem", &klen);
	jwt_t *jwt = NULL;
	int raw;

	/* What libjwt alone does with it: it takes the algorithm from the
	 * token, so with the RSA key's PEM it checks an HMAC. */
	raw = jwt_decode(&jwt, t, pem, (int)klen);
	fprintf(stderr,
		"check_token: libjwt alone %s an HS256 token made with an RSA "
		"public key as secret\n",
		raw == 0 ? "ACCEPTS" : "refuses");
	jwt_free(jwt);
	free(pem);
	/* token: the RSA key is RS256 only. */
	refused(xstrdup(t), TOKEN_EINVALID, "bad token signature"); /* HMAC keys tried, none fits */
	free(t);
	refused(tj_sign_kid("confused", "rsa-a", tj_claims("")), TOKEN_EINVALID,
		"algorithm does not match its key");
	/* With only the RSA key loaded. */
	use_keys("verify/rsa-a.pem", NULL);
	refused(tj_sign_kid("confused", NULL, tj_claims("")), TOKEN_EINVALID,
		"no key for the token's algorithm");
	refused(tj_sign_kid("confused", "rsa-a", tj_claims("")), TOKEN_EINVALID,
		"algorithm does not match its key");
	accepted(tj_sign("rsa-a", tj_claims("")), "user-42");
}
END_TEST

START_TEST(alg_key_mismatch)
{
	/* A kid that names a key of another type than the token's alg. */
	refused(tj_sign_kid("rsa-a", "hs-a", tj_claims("")), TOKEN_EINVALID,
		"does not match its key");
	refused(tj_sign_kid("ec-a", "rsa-a", tj_claims("")), TOKEN_EINVALID,
		"does not match its key");
	refused(tj_sign_kid("hs-a", "ec-a", tj_claims("")), TOKEN_EINVALID,
		"does not match its key");
	{
		char *t = tj_sign("rsa-a", tj_claims(""));

		refused(tj_reheader(t, "{\"alg\":\"ES256\",\"kid\":\"rsa-a\"}"), TOKEN_EINVALID,
			"does not match its key");
		refused(tj_reheader(t, "{\"alg\":\"ES256\"}"), TOKEN_EINVALID,
			"bad token signature");
		free(t);
	}
}
END_TEST

START_TEST(issuer_audience)
{
	/* Neither configured: iss ignored, aud refused. */
	accepted(tj_sign("hs-a", tj_claims(",\"iss\":\"anyone\"")), "user-42");
	refused(tj_sign("hs-a", tj_claims(",\"aud\":\"kws\"")), TOKEN_ECLAIMS, "audience");
	RULES.issuer = "https://auth.example.com/";
	RULES.audience = "kws";
	accepted(tj_sign("hs-a",
			 tj_claims(",\"iss\":\"https://auth.example.com/\",\"aud\":\"kws\"")),
		 "user-42");
	accepted(tj_sign("hs-a", tj_claims(",\"iss\":\"https://auth.example.com/\","
					   "\"aud\":[\"other\",\"kws\"]")),
		 "user-42");
	refused(tj_sign("hs-a",
			tj_claims(",\"iss\":\"https://evil.example.com/\",\"aud\":\"kws\"")),
		TOKEN_ECLAIMS, "issuer");
	refused(tj_sign("hs-a", tj_claims(",\"aud\":\"kws\"")), TOKEN_ECLAIMS, "issuer");
	refused(tj_sign("hs-a", tj_claims(",\"iss\":7,\"aud\":\"kws\"")), TOKEN_ECLAIMS, "issuer");
	refused(tj_sign("hs-a",
			tj_claims(",\"iss\":\"https://auth.example.com/\",\"aud\":\"kwsx\"")),
		TOKEN_ECLAIMS, "audience");
	refused(tj_sign("hs-a", tj_claims(",\"iss\":\"https://auth.example.com/\","
					  "\"aud\":[\"other\",1]")),
		TOKEN_ECLAIMS, "audience");
	refused(tj_sign("hs-a", tj_claims(",\"iss\":\"https://auth.example.com/\"")), TOKEN_ECLAIMS,
		"audience");
	refused(tj_sign("hs-a", tj_claims(",\"iss\":\"https://auth.example.com/\",\"aud\":{}")),
		TOKEN_ECLAIMS, "audience");
}
END_TEST

START_TEST(garbage_truncated)
{
	char *t = tj_sign("rsa-a", tj_claims(""));
	size_t n = strlen(t);

	for (size_t i = 0; i < n; i++) {
		char *p = xstrndup(t, i);
		int r = check_tok(p);

		ck_assert_msg(r == TOKEN_EINVALID, "prefix %zu: %d %s", i, r, why);
		free(p);
	}
	accepted(t, "user-42");
}
END_TEST

START_TEST(garbage_tokens)
{
	static const char *const bad[] = {
		"x",
		".",
		"..",
		"...",
		"a.b",
		"a.b.c.d",
		".b.c",
		"a..c",
		"a.b.",
		"eyJhbGciOiJIUzI1NiJ9.e30.=",
		"eyJhbGciOiJIUzI1NiJ9=.e30.AAAA",
		"eyJhbGciOiJIUzI1NiJ9.e30.AA+A",
		"eyJhbGciOiJIUzI1NiJ9.e30.AA/A",
		"eyJhbGciOiJIUzI1NiJ9.e30.AA A",
		"eyJhbGciOiJIUzI1NiJ9.e30.AA%41",
		"e.e30.AAAA",           /* header of one base64 character */
		"bm90IGpzb24.e30.AAAA", /* "not json" */
		"WzFd.e30.AAAA",        /* [1] */
		"e30.e30.AAAA",         /* {} */
		"IkhTMjU2Ig.e30.AAAA",  /* "HS256" */
		"eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.AAAA",
		"eyJhbGciOiJIUzI1NiJ9.WzFd.AAAA",
	};

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int r = check_tok(bad[i]);

		ck_assert_msg(r == TOKEN_EINVALID, "%s: %d %s", bad[i], r, why);
	}
}
END_TEST

START_TEST(garbage_huge)
{
	char *big = xmalloc(TOKEN_MAX_BYTES + 100);
	char *t = tj_sign("hs-a", tj_claims(""));
	size_t n = strlen(t);

	memset(big, 'A', TOKEN_MAX_BYTES + 99);
	big[TOKEN_MAX_BYTES + 99] = '\0';
	ck_assert_int_eq(check_tok(big), TOKEN_EINVALID);
	ck_assert_str_eq(why, "token longer than 8192 bytes");
	/* A valid token padded with a huge claim, just over and just under. */
	{
		char *c = xmalloc(TOKEN_MAX_BYTES);

		snprintf(c, TOKEN_MAX_BYTES, "{\"sub\":\"u\",\"exp\":%ld,\"pad\":\"%0*d\"}",
			 TJ_NOW + 300, (int)((TOKEN_MAX_BYTES - n) * 3 / 4 + 100), 0);
		free(t);
		t = tj_sign("hs-a", c);
		ck_assert_uint_gt(strlen(t), TOKEN_MAX_BYTES);
		refused(t, TOKEN_EINVALID, "longer");
		snprintf(c, TOKEN_MAX_BYTES, "{\"sub\":\"u\",\"exp\":%ld,\"pad\":\"%0*d\"}",
			 TJ_NOW + 300, (int)((TOKEN_MAX_BYTES - n) * 3 / 4 - 100), 0);
		t = tj_sign("hs-a", c);
		ck_assert_uint_le(strlen(t), TOKEN_MAX_BYTES);
		accepted(t, "u");
		free(c);
	}
	/* Deeply nested JSON in the header. */
	memset(big, '[', TOKEN_MAX_BYTES / 2);
	big[TOKEN_MAX_BYTES / 2] = '\0';
	{
		char *h = tj_b64url(big), *tok;

		if (asprintf(&tok, "%.6000s.e30.AAAA", h) < 0)
			abort();
		ck_assert_int_eq(check_tok(tok), TOKEN_EINVALID);
		free(tok);
		free(h);
	}
	free(big);
}
END_TEST

/* ---- typ and signature lengths --------------------------------------- */

/* libcrypto checks the signatures (token.c): what libjwt 1.10 refused
 * before is still refused, and a signature of the wrong length for its
 * algorithm never verifies. */
START_TEST(typ_and_signature_lengths)
{
	char c[128];
	snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld}", TJ_NOW + 300);
	accepted(tj_sign_raw_hs256("verify/hs-a.secret", "{\"alg\":\"HS256\",\"kid\":\"hs-a\"}", c),
		 "u");
	accepted(tj_sign_raw_hs256("verify/hs-a.secret",
				   "{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"hs-a\"}", c),
		 "u");
	refused(tj_sign_raw_hs256("verify/hs-a.secret",
				  "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"hs-a\"}", c),
		TOKEN_EINVALID, "token typ is not JWT");
	/* Signatures cut short or grown, each algorithm. */
	static const char *const signers[] = { "hs-a", "rsa-a", "ec-a" };
	for (size_t i = 0; i < 3; i++) {
		char *t = tj_sign(signers[i], tj_claims("")), *grown;
		if (asprintf(&grown, "%sAAAA", t) < 0)
			abort();
		refused(grown, TOKEN_EINVALID, "bad token signature");
		t[strlen(t) - 4] = '\0';
		refused(t, TOKEN_EINVALID, "bad token signature");
	}
	/* ES256 with r and s zero: 64 bytes of zeros. */
	{
		char *t = tj_sign("ec-a", tj_claims("")), *zero;
		if (asprintf(
			    &zero, "%.*s.%s", (int)(strrchr(t, '.') - t), t,
			    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA") <
		    0)
			abort();
		refused(zero, TOKEN_EINVALID, "bad token signature");
		free(t);
	}
}
END_TEST

/* ---- repeated members (issue 14 item 6) ----------------------------- */

START_TEST(duplicate_claims)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs-a\"}";
	char c[256];

	/* The same bytes without the repetition pass: the refusal below is
	 * about the repetition, not the signing. */
	snprintf(c, sizeof c, "{\"sub\":\"victim\",\"exp\":%ld}", TJ_NOW + 300);
	accepted(tj_sign_raw_hs256("verify/hs-a.secret", hdr, c), "victim");
	/* libjwt alone lets the last "sub" win. */
	snprintf(c, sizeof c, "{\"sub\":\"attacker\",\"exp\":%ld,\"sub\":\"victim\"}",
		 TJ_NOW + 300);
	{
		char *t = tj_sign_raw_hs256("verify/hs-a.secret", hdr, c);
		size_t klen;
		unsigned char *key = tj_slurp("verify/hs-a.secret", &klen);
		jwt_t *jwt = NULL;

		ck_assert_int_eq(jwt_decode(&jwt, t, key, (int)klen), 0);
		fprintf(stderr,
			"check_token: libjwt alone takes sub \"%s\" from a token with two\n",
			jwt_get_grant(jwt, "sub"));
		jwt_free(jwt);
		free(key);
		refused(t, TOKEN_EINVALID, "duplicate claim in token");
	}
	/* Any claim, and at any depth. */
	snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld,\"exp\":%ld}", TJ_NOW - 3600,
		 TJ_NOW + 300);
	refused(tj_sign_raw_hs256("verify/hs-a.secret", hdr, c), TOKEN_EINVALID,
		"duplicate claim in token");
	snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld,\"x\":{\"a\":1,\"a\":2}}", TJ_NOW + 300);
	refused(tj_sign_raw_hs256("verify/hs-a.secret", hdr, c), TOKEN_EINVALID,
		"duplicate claim in token");
	/* Escapes spell the same name. */
	snprintf(c, sizeof c, "{\"sub\":\"a\",\"s\\u0075b\":\"b\",\"exp\":%ld}", TJ_NOW + 300);
	refused(tj_sign_raw_hs256("verify/hs-a.secret", hdr, c), TOKEN_EINVALID,
		"duplicate claim in token");
	/* Refused before any key is tried: a bad signature says the same. */
	{
		char *t = tj_sign_raw_hs256("other/hs-x.secret", hdr, c);

		refused(t, TOKEN_EINVALID, "duplicate claim in token");
	}
	/* In the header too. */
	snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld}", TJ_NOW + 300);
	refused(tj_sign_raw_hs256("verify/hs-a.secret",
				  "{\"alg\":\"HS256\",\"kid\":\"hs-b\",\"kid\":\"hs-a\"}", c),
		TOKEN_EINVALID, "repeated header member");
	/* Trailing bytes after the object are not JSON either. */
	snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld} {}", TJ_NOW + 300);
	refused(tj_sign_raw_hs256("verify/hs-a.secret", hdr, c), TOKEN_EINVALID,
		"malformed token claims");
}
END_TEST

START_TEST(base64url_lengths)
{
	/* Claims of every length modulo 3 decode (tails of 0, 2 and 3
	 * characters); a segment of 4n+1 characters cannot be base64url. */
	static const char hdr[] = "{\"alg\":\"HS256\",\"kid\":\"hs-a\"}";
	char c[256];
	char *t;

	for (int pad = 0; pad < 3; pad++) {
		snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld,\"p\":\"%.*s\"}", TJ_NOW + 300,
			 pad, "xx");
		accepted(tj_sign_raw_hs256("verify/hs-a.secret", hdr, c), "u");
	}
	t = tj_sign("hs-a", tj_claims(""));
	{
		char *dot = strchr(t, '.'), *bad;

		if (asprintf(&bad, "%.*sA%s", (int)(dot - t + 5), t, dot + 5) < 0)
			abort();
		ck_assert_int_eq(check_tok(bad), TOKEN_EINVALID);
		free(bad);
	}
	free(t);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("token");
	TCase *tc = tcase_create("token");
	SRunner *sr;
	int failed;

	tj_find_keys("check_token");
	tcase_set_timeout(tc, 30);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, valid_each_alg);
	tcase_add_test(tc, valid_without_kid_tries_keys);
	tcase_add_test(tc, kid_selects_key);
	tcase_add_test(tc, rotation_by_file_list);
	tcase_add_test(tc, expired);
	tcase_add_test(tc, not_yet_valid);
	tcase_add_test(tc, time_claims_malformed);
	tcase_add_test(tc, wrong_signature);
	tcase_add_test(tc, wrong_key);
	tcase_add_test(tc, alg_none);
	tcase_add_test(tc, other_algs);
	tcase_add_test(tc, key_confusion);
	tcase_add_test(tc, alg_key_mismatch);
	tcase_add_test(tc, issuer_audience);
	tcase_add_test(tc, garbage_truncated);
	tcase_add_test(tc, garbage_tokens);
	tcase_add_test(tc, garbage_huge);
	tcase_add_test(tc, typ_and_signature_lengths);
	tcase_add_test(tc, duplicate_claims);
	tcase_add_test(tc, base64url_lengths);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
