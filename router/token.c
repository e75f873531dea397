/* token: see token.h. The segments are decoded with libcrypto's base64
 * (after mapping the URL-safe alphabet) and parsed with jansson, refusing
 * repeated members; libcrypto then checks the signature with the one key
 * type the token's algorithm allows, with the key parsed once (keys.c). */
#include "token.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <strings.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct {
	const char *name;
	enum keys_type type;
} algs[] = {
	{ "HS256", KEYS_HMAC },
	{ "RS256", KEYS_RSA },
	{ "ES256", KEYS_EC },
};
#define NALGS (sizeof algs / sizeof algs[0])

/* ---- form ------------------------------------------------------------ */

static bool b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

/* Decodes the base64url segment s[0..n) (its characters already checked)
 * into a malloc'ed buffer of *outlen bytes, or returns NULL when n is not a
 * possible length. EVP_DecodeBlock takes the standard alphabet in groups of
 * four; a last group of 2 or 3 characters is completed with 'A' (zero bits)
 * and the bytes that come only from those are dropped. */
static unsigned char *b64url_decode(const char *s, size_t n, size_t *outlen)
{
	size_t groups = (n + 3) / 4, tail = n % 4;
	unsigned char *in, *out;
	int got;

	if (tail == 1)
		return NULL;
	in = xmalloc(groups * 4 + 1);
	for (size_t i = 0; i < n; i++)
		in[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : (unsigned char)s[i];
	for (size_t i = n; i < groups * 4; i++)
		in[i] = 'A';
	out = xmalloc(groups * 3 + 1);
	got = EVP_DecodeBlock(out, in, (int)(groups * 4));
	free(in);
	if (got != (int)(groups * 3)) {
		free(out);
		return NULL;
	}
	*outlen = groups * 3 - (tail ? 4 - tail : 0);
	return out;
}

/* Decodes and parses one segment as a JSON object without repeated member
 * names. Returns it, or NULL with *dup telling whether a repeated name was
 * the reason. */
static json_t *segment_object(const char *s, size_t n, bool *dup)
{
	size_t len;
	unsigned char *raw = b64url_decode(s, n, &len);
	json_error_t e;
	json_t *v;

	*dup = false;
	if (!raw)
		return NULL;
	v = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, &e);
	free(raw);
	if (!v) {
		*dup = json_error_code(&e) == json_error_duplicate_key;
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* Checks the form header.payload.signature of tok[0..len); on success
 * dots[0] and dots[1] are the two dots' indexes. */
static bool split(const char *tok, size_t len, size_t dots[2])
{
	size_t ndots = 0;

	for (size_t i = 0; i < len; i++) {
		if (tok[i] == '.') {
			if (ndots == 2)
				return false;
			dots[ndots++] = i;
		} else if (!b64url_char(tok[i])) {
			return false;
		}
	}
	return ndots == 2 && dots[0] > 0 && dots[1] > dots[0] + 1 && dots[1] + 1 < len;
}

/* Parses the header segment: on success *alg indexes algs[] and *kid is the
 * header's kid (a copy, or NULL). */
static int parse_header(const char *s, size_t n, size_t *alg, char **kid, char *why, size_t whylen)
{
	bool dup;
	json_t *h = segment_object(s, n, &dup), *v;
	const char *name;
	int r = TOKEN_EINVALID;

	if (!h) {
		snprintf(why, whylen,
			 dup ? "malformed token: repeated header member" : "malformed token");
		return TOKEN_EINVALID;
	}
	name = json_string_value(json_object_get(h, "alg"));
	*alg = NALGS;
	for (size_t i = 0; name && i < NALGS; i++)
		if (strcmp(name, algs[i].name) == 0)
			*alg = i;
	if (*alg == NALGS) {
		snprintf(why, whylen, "token algorithm not accepted (HS256, RS256 or ES256)");
		goto out_put;
	}
	if (json_object_get(h, "crit")) {
		snprintf(why, whylen, "token has critical header extensions");
		goto out_put;
	}
	/* As libjwt 1.10, which checked the signatures before: a typ, when
	 * it is a string, is "JWT" in any case. */
	v = json_object_get(h, "typ");
	if (json_is_string(v) && strcasecmp(json_string_value(v), "JWT") != 0) {
		snprintf(why, whylen, "token typ is not JWT");
		goto out_put;
	}
	*kid = NULL;
	if ((v = json_object_get(h, "kid"))) {
		if (!json_is_string(v)) {
			snprintf(why, whylen, "token key id is not a string");
			goto out_put;
		}
		*kid = xstrdup(json_string_value(v));
	}
	r = 0;
out_put:
	json_decref(h);
	return r;
}

/* ---- signature ------------------------------------------------------- */

/* Whether sig[0..n) is k's signature (algorithm alg) of tbs[0..len). */
static bool signature_ok(const struct keys_key *k, size_t alg, const char *tbs, size_t len,
			 const unsigned char *sig, size_t n)
{
	if (algs[alg].type == KEYS_HMAC) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned int maclen = 0;
		return HMAC(EVP_sha256(), k->data, (int)k->len, (const unsigned char *)tbs, len,
			    mac, &maclen) &&
		       maclen == 32 && n == 32 && CRYPTO_memcmp(mac, sig, 32) == 0;
	}
	unsigned char *der = NULL;
	int derlen = (int)n;
	const unsigned char *check = sig;
	if (algs[alg].type == KEYS_EC) {
		/* JWS gives r and s as 32 bytes each (RFC 7518 3.4); libcrypto
		 * verifies their DER form. */
		if (n != 64)
			return false;
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r = BN_bin2bn(sig, 32, NULL), *sv = BN_bin2bn(sig + 32, 32, NULL);
		if (!es || !r || !sv || ECDSA_SIG_set0(es, r, sv) != 1) {
			BN_free(r);
			BN_free(sv);
			ECDSA_SIG_free(es);
			return false;
		}
		derlen = i2d_ECDSA_SIG(es, &der);
		ECDSA_SIG_free(es);
		if (derlen <= 0)
			return false;
		check = der;
	} else if (n != (size_t)EVP_PKEY_get_size(k->pk)) {
		return false; /* RS256: as long as the modulus */
	}
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	bool ok =
		ctx && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pk) == 1 &&
		EVP_DigestVerify(ctx, check, (size_t)derlen, (const unsigned char *)tbs, len) == 1;
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	return ok;
}

/* Checks the signature of tok (NUL-terminated; dots: its two dots) with the
 * keys its header allows. */
static int check_signature(const struct keys *ks, const char *tok, const size_t dots[2], size_t alg,
			   const char *kid, char *why, size_t whylen)
{
	bool candidate = false, ok = false;
	size_t n = 0;
	unsigned char *sig = b64url_decode(tok + dots[1] + 1, strlen(tok + dots[1] + 1), &n);

	for (size_t i = 0; i < ks->n && !ok; i++) {
		const struct keys_key *k = &ks->v[i];

		if (kid && strcmp(kid, k->kid) != 0)
			continue;
		if (k->type != algs[alg].type) {
			if (kid) {
				free(sig);
				snprintf(why, whylen, "token algorithm does not match its key");
				return TOKEN_EINVALID;
			}
			continue;
		}
		candidate = true;
		/* The key's type is the token's algorithm: an RSA public key
		 * never serves as an HMAC secret. */
		ok = sig && signature_ok(k, alg, tok, dots[1], sig, n);
	}
	free(sig);
	if (!candidate) {
		snprintf(why, whylen,
			 kid ? "unknown token key id" : "no key for the token's algorithm");
		return TOKEN_EINVALID;
	}
	if (!ok) {
		snprintf(why, whylen, "bad token signature");
		return TOKEN_EINVALID;
	}
	return 0;
}

/* ---- claims ---------------------------------------------------------- */

/* Reads a NumericDate, clamped to int64_t. */
static bool numeric_date(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = json_integer_value(v);
		return true;
	}
	if (json_is_real(v)) {
		double d =
			json_real_value(v); /* truncated: a fraction of a second does not matter */

		*out = d >= 9.2e18 ? INT64_MAX : d <= -9.2e18 ? INT64_MIN : (int64_t)d;
		return true;
	}
	return false;
}

static bool audience_ok(const json_t *aud, const char *want)
{
	size_t i;
	json_t *v;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, v) if (json_is_string(v) &&
					  strcmp(json_string_value(v), want) == 0) return true;
	return false;
}

static int check_claims(const struct token_rules *rules, const json_t *c, int64_t now, char *why,
			size_t whylen)
{
	int64_t exp, nbf, leeway = rules->leeway_s;
	const json_t *v;

	if (!numeric_date(json_object_get(c, "exp"), &exp)) {
		snprintf(why, whylen, "token has no numeric exp");
		return TOKEN_ECLAIMS;
	}
	if (exp <= INT64_MAX - leeway && now >= exp + leeway) {
		snprintf(why, whylen, "token expired");
		return TOKEN_EEXPIRED;
	}
	if ((v = json_object_get(c, "nbf"))) {
		if (!numeric_date(v, &nbf)) {
			snprintf(why, whylen, "token nbf is not a number");
			return TOKEN_ECLAIMS;
		}
		if (now + leeway < nbf) {
			snprintf(why, whylen, "token not yet valid");
			return TOKEN_EEXPIRED;
		}
	}
	if (rules->issuer) {
		v = json_object_get(c, "iss");
		if (!json_is_string(v) || strcmp(json_string_value(v), rules->issuer) != 0) {
			snprintf(why, whylen, "token issuer not accepted");
			return TOKEN_ECLAIMS;
		}
	}
	v = json_object_get(c, "aud");
	if (rules->audience ? !audience_ok(v, rules->audience) : v != NULL) {
		snprintf(why, whylen, "token audience not accepted");
		return TOKEN_ECLAIMS;
	}
	return 0;
}

int token_verify(const struct keys *ks, const struct token_rules *rules, const char *src,
		 size_t len, int64_t now_s, json_t **claims, char *why, size_t whylen)
{
	char tok[TOKEN_MAX_BYTES + 1], *kid = NULL;
	size_t dots[2], alg;
	json_t *c = NULL;
	bool dup;
	int r;

	*claims = NULL;
	if (len > TOKEN_MAX_BYTES) {
		snprintf(why, whylen, "token longer than %d bytes", TOKEN_MAX_BYTES);
		return TOKEN_EINVALID;
	}
	memcpy(tok, src, len);
	tok[len] = '\0';
	if (!split(tok, len, dots)) {
		snprintf(why, whylen, "malformed token");
		return TOKEN_EINVALID;
	}
	if ((r = parse_header(tok, dots[0], &alg, &kid, why, whylen)) < 0)
		return r;
	/* The claims are read strictly (libjwt 1.10, which checked the
	 * signatures before, parsed them without JSON_REJECT_DUPLICATES, so
	 * of two "sub" the last would win and nothing downstream could tell).
	 * These are the bytes the signature covers. */
	c = segment_object(tok + dots[0] + 1, dots[1] - dots[0] - 1, &dup);
	if (!c) {
		snprintf(why, whylen, dup ? "duplicate claim in token" : "malformed token claims");
		r = TOKEN_EINVALID;
		goto out;
	}
	if ((r = check_signature(ks, tok, dots, alg, kid, why, whylen)) < 0)
		goto out;
	if ((r = check_claims(rules, c, now_s, why, whylen)) < 0)
		goto out;
	*claims = c;
	c = NULL;
out:
	json_decref(c);
	free(kid);
	return r;
}
