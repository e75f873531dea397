/* Unit tests for router/ident.c: the three identification modes, the token
 * sources, the id claim, how token errors become refusals, and settings.
 * Token verification itself is tested in check_token.c, key files in
 * check_keys.c; tokens come from testjwt.c. */
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

#include "testjwt.h"
#include "util.h"

#define NOW TJ_NOW
#define MAXID 64

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
	files[0] = tj_path("verify");
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
	if (r != 0)
		tj_assert_reason_hides(why, tok);
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
	accepted(tj_sign("hs-a", tj_claims("")), "user-42");
	accepted(tj_sign("rsa-a", tj_claims("")), "user-42");
	accepted(tj_sign("ec-a", tj_claims("")), "user-42");
	ck_assert_uint_eq(idlen, 7);
	ck_assert_uint_eq(ident_key_count(ID), 5);
	ck_assert_int_eq(ident_mode(ID), IDENT_JWT);
}
END_TEST

/* ---- the id claim, iss, aud ------------------------------------------ */

static char *with_sub(const char *sub_json)
{
	char c[512];

	snprintf(c, sizeof c, "{\"sub\":%s,\"exp\":%ld}", sub_json, NOW + 300);
	return tj_sign("hs-a", c);
}

START_TEST(id_claim)
{
	char c[256], long_id[MAXID + 2];

	refused(tj_sign("hs-a", "{\"exp\":1800000000}"), IDENT_ECLAIMID,
		"no client id (claim \"sub\")");
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
		char *t = tj_sign("hs-a", tj_claims("")), small[4], *auth;
		struct ident_input in = { 0 };
		size_t n;

		if (asprintf(&auth, "Bearer %s", t) < 0)
			abort();
		in.authorization = auth;
		ck_assert_int_eq(
			ident_check(ID, &in, NOW, small, sizeof small, &n, why, sizeof why),
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
	refused(tj_sign("hs-a", tj_claims("")), IDENT_ECLAIMID, "claim \"uid\"");
	accepted(tj_sign("hs-a", tj_claims(",\"uid\":\"client-7\"")), "client-7");
}
END_TEST

/* ---- sources --------------------------------------------------------- */

START_TEST(source_authorization)
{
	char *t = tj_sign("hs-a", tj_claims("")), *h;
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
	char *t = tj_sign("ec-a", tj_claims("")), *h;
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
	char *t = tj_sign("rsa-a", tj_claims(""));
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
	char *t = tj_sign("hs-b", tj_claims(""));
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
	char *good = tj_sign("hs-a", tj_claims("")), *bad_tok = tj_sign("hs-x", tj_claims("")), *a,
	     *s;
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

/* ---- token errors as refusals ---------------------------------------- */

START_TEST(token_errors)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"hs-a\"}";
	char c[256], *big;

	snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld}", NOW - 600);
	refused(tj_sign("hs-a", c), IDENT_EEXPIRED, "token expired");
	ck_assert_int_eq(ident_http_status(IDENT_EEXPIRED), 401);
	refused(tj_sign("hs-a", "{\"sub\":\"u\"}"), IDENT_ECLAIMS, "no numeric exp");
	refused(tj_sign("hs-a", tj_claims(",\"aud\":\"kws\"")), IDENT_ECLAIMS, "audience");
	refused(tj_sign_kid("hs-x", "hs-a", tj_claims("")), IDENT_ETOKEN, "bad token signature");
	/* Issue 14 item 6: two "sub" (libjwt would keep the last). */
	snprintf(c, sizeof c, "{\"sub\":\"attacker\",\"exp\":%ld,\"sub\":\"victim\"}", NOW + 300);
	refused(tj_sign_raw_hs256("verify/hs-a.secret", hdr, c), IDENT_ETOKEN,
		"duplicate claim in token");
	ck_assert_int_eq(ident_http_status(IDENT_ETOKEN), 401);
	/* The size limit. */
	big = xmalloc(IDENT_MAX_TOKEN + 2);
	memset(big, 'A', IDENT_MAX_TOKEN + 1);
	big[IDENT_MAX_TOKEN + 1] = '\0';
	ck_assert_int_eq(check_tok(big), IDENT_ETOKEN);
	ck_assert_str_eq(why, "token longer than 8192 bytes");
	free(big);
	/* The issuer and audience settings reach the verifier. */
	ident_free(ID);
	base_jwt();
	cfg.issuer = "https://auth.example.com/";
	cfg.audience = "kws";
	make();
	accepted(tj_sign("hs-a",
			 tj_claims(",\"iss\":\"https://auth.example.com/\",\"aud\":\"kws\"")),
		 "user-42");
	refused(tj_sign("hs-a", tj_claims(",\"iss\":\"x\",\"aud\":\"kws\"")), IDENT_ECLAIMS,
		"issuer");
	/* And the leeway. */
	ident_free(ID);
	base_jwt();
	cfg.leeway_s = 0;
	make();
	snprintf(c, sizeof c, "{\"sub\":\"u\",\"exp\":%ld}", NOW);
	refused(tj_sign("hs-a", c), IDENT_EEXPIRED, "token expired");
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

START_TEST(bad_settings)
{
	base_jwt();
	files[0] = tj_path("bad/short.secret");
	new_fails("key file ", "HMAC secret of 16 bytes");
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
	static const int errs[] = { IDENT_ENOID,    IDENT_EBADID,   IDENT_EPEER,
				    IDENT_ENOTOKEN, IDENT_ETOKEN,   IDENT_EEXPIRED,
				    IDENT_ECLAIMS,  IDENT_ECLAIMID, IDENT_EQUERY };

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

	tj_find_keys("check_ident");
	tcase_set_timeout(jwt, 30);
	tcase_add_checked_fixture(jwt, setup_jwt, teardown);
	tcase_add_test(jwt, valid_each_alg);
	tcase_add_test(jwt, id_claim);
	tcase_add_test(jwt, source_authorization);
	tcase_add_test(jwt, source_subprotocol);
	tcase_add_test(jwt, source_id_header);
	tcase_add_test(jwt, source_query);
	tcase_add_test(jwt, source_precedence);
	tcase_add_test(jwt, token_errors);
	suite_add_tcase(s, jwt);
	tcase_add_checked_fixture(other, NULL, teardown);
	tcase_add_test(other, mode_from_proxies);
	tcase_add_test(other, mode_none);
	tcase_add_test(other, bad_settings);
	tcase_add_test(other, names_and_codes);
	suite_add_tcase(s, other);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
