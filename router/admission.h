/*
 * admission: the pure rules of the WebSocket handshake decision (README,
 * "Trust" and "Positions and resume"): the reasons a handshake is refused,
 * the per-address token bucket, the Origin allow-list and the position a
 * client presents. No lws here: handshake.c reads the request and asks.
 */
#ifndef KWS_ADMISSION_H
#define KWS_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sys/socket.h>

#include "conf.h"
#include "hmap.h"

/* Why a handshake was refused: the label of
 * kws_router_handshakes_rejected_total{reason}. */
enum admission_reason {
	ADMISSION_NO_ID,
	ADMISSION_EMPTY_ID,
	ADMISSION_LONG_ID,
	ADMISSION_BAD_ID,
	ADMISSION_BAD_PATH,
	ADMISSION_NOT_READY,
	ADMISSION_BAD_POSITION,
	ADMISSION_DRAINING,
	ADMISSION_AUTH,
	ADMISSION_ORIGIN,
	ADMISSION_LIMIT,
	ADMISSION_OTHER,
	ADMISSION_BAD_REQUEST, /* not a well-formed WebSocket upgrade */
	ADMISSION_SUBPROTOCOL, /* no subprotocol the router speaks, or a list lws cannot take */
	ADMISSION_TOO_LARGE,   /* the request head passed --max-header-bytes */
	ADMISSION_TIMEOUT,     /* the request head did not arrive within --handshake-timeout-s */
	ADMISSION_DUPLICATE,   /* more than one id or Authorization header */
	ADMISSION_NREASONS
};
/* The metrics label of a reason ("missing_id", "bad_position", ...); "other"
 * for a value out of range. */
const char *admission_reason_name(enum admission_reason why);

/* ---- handshakes per source address ---------------------------------------- */

/* A token bucket per source address: at most `rate` handshakes a second,
 * bursts of twice that. Owns its buckets; one thread. */
struct admission_rate {
	struct hmap buckets;
	double rate;
};

void admission_rate_init(struct admission_rate *t, long per_second);
/* Frees every bucket; accepts a zeroed table. */
void admission_rate_free(struct admission_rate *t);
/* Takes one token for the address key at monotonic time now_ms: true if
 * there was one (the handshake may go on), false if the address is over its
 * rate. */
bool admission_rate_take(struct admission_rate *t, const uint8_t key[16], int64_t now_ms);
/* Forgets addresses not seen for 10 s (their buckets are full again). */
void admission_rate_prune(struct admission_rate *t, int64_t now_ms);
/* How many addresses are tracked. */
size_t admission_rate_count(const struct admission_rate *t);

/* The bucket key of a peer address: the IPv4 address in the first 4 bytes
 * (the rest zero) or the IPv6 address. False (key zeroed) for other
 * families. */
bool admission_addr_key(const struct sockaddr *sa, uint8_t key[16]);

/* ---- Origin ---------------------------------------------------------------- */

/* The Origin allow-list (--allowed-origins; browsers send Origin, other
 * clients usually do not). origin is the header's value, NULL when absent.
 * An empty list allows any; otherwise an absent Origin is allowed and a
 * present one must equal an entry, ignoring case. */
bool admission_origin_allowed(const struct conf_list *allowed, const char *origin);

/* ---- position -------------------------------------------------------------- */

/* The longest position value accepted ("<partition>:<offset>"). */
#define ADMISSION_MAX_POSITION 63

/* Parses "<partition>:<offset>" (decimal, partition below
 * WIRE_MAX_PARTITIONS, offset >= 0, nothing else): 0, or -1 if malformed. */
int admission_parse_position(const char *s, uint32_t *p, int64_t *off);

/* The position a client presented: the X-Kws-Position header (header, hlen
 * bytes, not NUL-terminated; NULL when absent) or else the query value of
 * position= (query, qlen bytes; NULL when absent). A present header wins,
 * even an empty one. Returns 1 with *p and *off set, 0 when none was
 * presented, -1 when the one presented is malformed: empty, longer than
 * ADMISSION_MAX_POSITION, or not "<partition>:<offset>". */
int admission_position(const char *header, size_t hlen, const char *query, size_t qlen, uint32_t *p,
		       int64_t *off);

/* ---- query ------------------------------------------------------------------ */

/* One query argument as lws stores it ("name=value", len bytes, already
 * percent-decoded): the value (not NUL-terminated) with its length in *vlen
 * if the argument's name is exactly name (given without '='), else NULL. */
const char *admission_query_arg(const char *arg, size_t len, const char *name, size_t *vlen);

/* ---- the request head (door.c) --------------------------------------------- */

/* The private headers the front door adds (clients' own are dropped). */
#define ADMISSION_HDR_PROTOCOLS "x-kws-protocols" /* the whole Sec-WebSocket-Protocol list */
#define ADMISSION_HDR_DUP "x-kws-dup"             /* names of headers sent more than once */

/* Offset just past the "\r\n\r\n" that ends a request head in buf[0..len),
 * or 0 if it is not complete yet. */
size_t admission_head_end(const char *buf, size_t len);

/* Rewrites a complete request head (head[0..len), ending in "\r\n\r\n") so
 * that lws 4.1.6 can take it (it refuses a Sec-WebSocket-Protocol list of 128
 * bytes or more, and keeps only the first of repeated unknown headers):
 *  - every Sec-WebSocket-Protocol header is replaced by one listing the
 *    entries that are not tokens (not "kws.token.*"), if any;
 *  - the whole list, tokens included, is carried in ADMISSION_HDR_PROTOCOLS
 *    (ident reads the token there);
 *  - when id_header (case-insensitive) or Authorization occur more than
 *    once, ADMISSION_HDR_DUP names them (lowercase, comma-separated);
 *  - headers named like the private ones are dropped; everything else is
 *    copied as it came.
 * Returns the new head (malloc'd, NUL-terminated, *outlen bytes without the
 * NUL; the caller frees it), or NULL when the head is not a request line
 * followed by "name: value" lines. */
char *admission_rewrite_head(const char *head, size_t len, const char *id_header, size_t *outlen);

/* ---- cookies and client ids ------------------------------------------------- */

/* The value of cookie name in a Cookie header ("a=1; b=2", len bytes): the
 * first match, not NUL-terminated, with its length in *vlen; NULL when
 * absent. Surrounding double quotes are removed. */
const char *admission_cookie(const char *cookies, size_t len, const char *name, size_t *vlen);

/* The one rule for client ids, whatever carried them: 1..max_bytes bytes of
 * valid UTF-8 (no overlong forms, no surrogates) without control characters
 * (C0, DEL, C1). */
bool admission_id_ok(const char *id, size_t len, size_t max_bytes);

#endif
