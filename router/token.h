/*
 * token: verifies a signed JSON Web Token (JWS compact serialization) with the
 * router's keys and checks its registered claims. libcrypto checks the
 * signature, with each key parsed once when it was loaded (keys.c); which
 * algorithm and which key are decided here first, from the keys, and the
 * token's JSON is read here, strictly. Pure: no I/O.
 *
 * (Named token, not jwt: <jwt.h> is libjwt's header and jwt_ its prefix;
 * the tests sign with libjwt, an implementation independent of this one.)
 */
#ifndef KWS_TOKEN_H
#define KWS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "keys.h"

struct json_t; /* jansson's json_t */

/* The longest token accepted (token_verify copies it on the stack). */
#define TOKEN_MAX_BYTES 8192

/* Errors of token_verify (negative). */
enum {
	TOKEN_EINVALID = -1, /* malformed, refused algorithm, unknown kid, bad signature,
				duplicate JSON member */
	TOKEN_EEXPIRED = -2, /* expired, or not yet valid */
	TOKEN_ECLAIMS = -3,  /* exp missing or not a number, nbf not a number, wrong iss / aud */
};

/* What token_verify checks beyond the signature. The strings are borrowed. */
struct token_rules {
	int64_t leeway_s;     /* >= 0: clock skew allowed on exp and nbf */
	const char *issuer;   /* NULL: iss not checked */
	const char *audience; /* NULL: a token that has aud is refused */
};

/*
 * Verifies tok[0..len) (not necessarily NUL-terminated) at wall-clock time
 * now_s (seconds since the epoch), with the keys of ks.
 *
 * Form: three non-empty base64url segments (no padding) joined by '.', at
 * most TOKEN_MAX_BYTES. The header and the claims must each be one JSON
 * object without a repeated member name, at any depth (RFC 7515 4, RFC 7519
 * 4: a parser that lets the last "sub" win would let a token say two things).
 *
 * Algorithms: HS256 (HMAC secrets), RS256 (RSA public keys), ES256 (EC P-256
 * public keys); nothing else, never "none". The algorithm follows from the
 * KEY: a token whose header "alg" is not the algorithm of the key it is
 * checked with is refused before any signature check (an HS256 token "signed"
 * with an RSA public key's PEM bytes as HMAC secret, the classic
 * key-confusion attack, is never checked with that key). "alg" is compared
 * exactly ("hs256" is refused); a header with "crit" is refused, and one with
 * a string "typ" other than "JWT" in any case (as libjwt 1.10 did, which
 * checked the signatures until 2026-12-05). An ES256 signature is 64 bytes
 * (r and s, RFC 7518 3.4), an RS256 one as long as the key's modulus.
 *
 * Key choice: a token whose header has "kid" is checked with that key only (an
 * unknown kid is refused); without "kid", with each key of the token's
 * algorithm in turn until one verifies.
 *
 * Claims: "exp" is required (a number); the token is refused when
 * now >= exp + leeway. "nbf", when present, must be a number too, and the
 * token is refused while now + leeway < nbf. When rules->issuer is set, "iss"
 * must equal it. When rules->audience is set, "aud" must equal it or be an
 * array holding it; when it is not set, a token that has "aud" is refused (RFC
 * 7519 4.1.3: a recipient that does not identify itself with the audience
 * must reject the token).
 *
 * Returns 0 with *claims, the verified claims object (the caller owns it:
 * json_decref), or a negative TOKEN_E* with a short reason in
 * why[0..whylen) ("token expired", "duplicate claim in token") that never
 * holds the token or its claims; why may be NULL when whylen is 0.
 * Reads only ks: safe to call from several threads at once.
 */
int token_verify(const struct keys *ks, const struct token_rules *rules, const char *tok,
		 size_t len, int64_t now_s, struct json_t **claims, char *why, size_t whylen);

#endif
