/*
 * linkauth: mutual authentication of a router<->edge link with a shared secret
 * (PROTOCOL.md, "Authentication"). Loads the secret, makes nonces, computes
 * and checks the two HMAC-SHA256 proofs. Pure apart from libcrypto and the
 * secret's loading: no sockets, no wire encoding; the router and the edge put
 * the nonces and proofs into CHALLENGE, HELLO and EDGE_HELLO (common/wire.h).
 */
#ifndef KWS_LINKAUTH_H
#define KWS_LINKAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LINKAUTH_NONCE 16 /* bytes of a nonce (= WIRE_NONCE_BYTES) */
#define LINKAUTH_MAC 32   /* bytes of a proof, HMAC-SHA256 (= WIRE_AUTH_BYTES) */

#define LINKAUTH_MIN_SECRET 16 /* bytes: a shorter secret is refused */
#define LINKAUTH_MAX_SECRET \
	4096 /* bytes: a longer one is refused (a secret
				   * file is small; this bounds the read of a
				   * wrong path such as /dev/zero) */

/* The shared secret: the HMAC key. len 0 means none (authentication off).
 * A zeroed struct is a valid "none". key is owned by the struct. */
struct linkauth_secret {
	uint8_t *key;
	size_t len;
};

/*
 * Loads the secret named by spec into *out (which need not be initialised;
 * it is overwritten):
 *   ""  or NULL   no secret: *out is "none", returns 0;
 *   "file:PATH"   the bytes of the file PATH, less one trailing "\n" if any;
 *   "env:NAME"    the value of the environment variable NAME, less one
 *                 trailing "\n" if any.
 * The secret is the bytes as they are (a base64 text is used as text, not
 * decoded). It must be LINKAUTH_MIN_SECRET..LINKAUTH_MAX_SECRET bytes.
 * There is deliberately no form that takes the secret itself: a value on the
 * command line is readable by every user of the host in /proc/PID/cmdline
 * (and shows in ps, and in the logs of whatever starts the process), whereas
 * a file has permissions and /proc/PID/environ is readable only by the
 * process's owner.
 * Returns 0, or a negative errno value (-EINVAL: a spec of another form, an
 * empty PATH or NAME, a secret too short or too long; -ENOENT: the variable
 * is not set; or the error of open/read) with a message naming the file or
 * variable in err. The message never quotes a spec of another form, in case
 * it is a secret passed by mistake, nor the secret's bytes. On error *out is
 * "none". On success with a secret, free it with
 * linkauth_secret_free.
 */
int linkauth_load_secret(const char *spec, struct linkauth_secret *out, char *err, size_t errlen);
/* Wipes and frees the key; s becomes "none". Accepts NULL, a zeroed or an
 * already freed secret. */
void linkauth_secret_free(struct linkauth_secret *s);
/* True if s holds a secret (so the link must be authenticated). NULL: false. */
bool linkauth_enabled(const struct linkauth_secret *s);

/* Fills out with LINKAUTH_NONCE random bytes from getrandom(); aborts if the
 * kernel has none to give (not something a peer can cause). The edge makes
 * one per connection (CHALLENGE), the router one per HELLO. */
void linkauth_nonce(uint8_t out[LINKAUTH_NONCE]);

/*
 * The router's proof, sent in HELLO's auth:
 *   HMAC-SHA256(key, "kws-router-v1" || edge_nonce || router_nonce || router_id)
 * edge_nonce: from the link's CHALLENGE; router_nonce: the one sent in the
 * same HELLO; router_id[0..len): the HELLO's router_id as sent. s must be
 * enabled (linkauth_enabled): calling it without a secret is a programming
 * error and aborts, so that no proof is ever made with an empty key.
 */
void linkauth_router_proof(const struct linkauth_secret *s,
			   const uint8_t edge_nonce[LINKAUTH_NONCE],
			   const uint8_t router_nonce[LINKAUTH_NONCE], const char *router_id,
			   size_t len, uint8_t out[LINKAUTH_MAC]);

/*
 * The edge's proof, sent in EDGE_HELLO's auth:
 *   HMAC-SHA256(key, "kws-edge-v1" || router_nonce || edge_nonce || edge_id ||
 *               hello_seq as 8 bytes big-endian)
 * router_nonce: from the HELLO being answered; edge_nonce: the link's
 * CHALLENGE nonce; edge_id[0..len): the EDGE_HELLO's edge_id as sent;
 * hello_seq: the seq of the HELLO being answered (EDGE_HELLO's hello_seq).
 * s must be enabled, as above.
 */
void linkauth_edge_proof(const struct linkauth_secret *s,
			 const uint8_t router_nonce[LINKAUTH_NONCE],
			 const uint8_t edge_nonce[LINKAUTH_NONCE], const char *edge_id, size_t len,
			 uint64_t hello_seq, uint8_t out[LINKAUTH_MAC]);

/* True if got[0..got_len) is the proof want: false if got_len is not
 * LINKAUTH_MAC (an absent auth field has length 0), else a constant-time
 * comparison (CRYPTO_memcmp), so the time taken does not tell an attacker how
 * many leading bytes of a guess were right. got may be NULL when got_len is 0. */
bool linkauth_check(const uint8_t *got, size_t got_len, const uint8_t want[LINKAUTH_MAC]);

#endif
