/*
 * testjwt: what check_ident, check_token and check_keys share: the test-only
 * keys in tests/unit/keys (see its README) and tokens signed with them by
 * libjwt's encoder. Test support only; helpers fail the running Check test.
 */
#ifndef KWS_TESTJWT_H
#define KWS_TESTJWT_H

#include <stddef.h>

/* The fixed "now" of the tests, and the exp of tj_claims (NOW + 300). */
#define TJ_NOW 1700000000L

/* Finds tests/unit/keys (or $KWS_TEST_KEYS); exits 77 (skip) naming prog
 * when it is missing. Call once from main. */
void tj_find_keys(const char *prog);

/* The path of rel inside the key directory (one of 8 rotating buffers). */
const char *tj_path(const char *rel);

/* The bytes of key file rel (malloc'ed, *len bytes; at most 64 KiB). */
unsigned char *tj_slurp(const char *rel, size_t *len);

/*
 * Signs claims (a JSON object) with a named signer, adding header kid unless
 * NULL. Signers: hs-a, hs-b (verify/), hs-x, rsa-x, ec-x (other/: keys the
 * router does not know), rsa-a, rsa-b, ec-a (sign/), hs384-a and rs512-a
 * (real keys, refused algorithms), and "confused" (HS256 with verify/rsa-a.pem
 * as the secret: key confusion). Returns a malloc'ed token.
 */
char *tj_sign_kid(const char *signer, const char *kid, const char *claims);

/* tj_sign_kid with the signer's own name as kid. */
char *tj_sign(const char *signer, const char *claims);

/* Claims {"sub":"user-42","exp":TJ_NOW+300 <extra>} where extra is ""
 * or ",\"k\":v"; a static buffer, overwritten by the next call. */
const char *tj_claims(const char *extra);

/* base64url of s, or of bytes[0..n), no padding (malloc'ed). */
char *tj_b64url(const char *s);
char *tj_b64url_n(const void *bytes, size_t n);

/* Fails the test if a refusal's reason (why) holds the token tok or, for a
 * token of 8 bytes or more, its signature segment: reasons are logged. */
void tj_assert_reason_hides(const char *why, const char *tok);

/* tok with its header replaced by the base64url of header_json (malloc'ed). */
char *tj_reheader(const char *tok, const char *header_json);

/* A token of exactly header_json and claims_json, signed with HS256 and the
 * secret in key file rel (malloc'ed): JSON that libjwt's encoder cannot
 * make, such as a repeated member. */
char *tj_sign_raw_hs256(const char *rel, const char *header_json, const char *claims_json);

#endif
