/*
 * ident: who is this client? From what the router extracted from a WebSocket
 * handshake (headers, query token, peer address) it decides the client id or
 * refuses the handshake, in one of three modes (enum ident_mode). Pure: no
 * lws, no sockets; keys are read from files once, in ident_new (keys.h), and
 * tokens are verified by token.h.
 */
#ifndef KWS_IDENT_H
#define KWS_IDENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cidr.h"
#include "conf.h"

enum ident_mode {
	/* The id header is the client id, whoever sends it. Only for local
	 * runs and tests: anyone can be anyone. The router logs a loud warning
	 * at start. */
	IDENT_NONE = 0,
	/* The id header is trusted only when the TCP peer is inside
	 * cfg.proxies (the reverse proxies or gateways that authenticate users
	 * and set the header, and strip it from what clients send). Any other
	 * peer is refused, with or without the header. */
	IDENT_HEADER_FROM_PROXIES,
	/* A signed JSON Web Token carries the id in a claim (below). */
	IDENT_JWT,
};

/*
 * JWT mode.
 *
 * Keys: cfg.key_files lists files and directories, loaded by keys_add (see
 * keys.h: HMAC secrets of at least 32 bytes, RSA >= 2048 and EC P-256 public
 * keys in PEM or DER, kid = file name without extension, rotation). Tokens
 * are verified by token_verify (see token.h: HS256 / RS256 / ES256 chosen by
 * the key's type, kid, exp / nbf with cfg.leeway_s, iss, aud, no repeated
 * JSON member). The client id is the claim cfg.claim (default "sub"): a
 * non-empty JSON string of at most max_id_bytes bytes without control
 * characters (bytes below 0x20, and 0x7f). A token is at most
 * IDENT_MAX_TOKEN bytes (token_verify copies it on the stack).
 *
 * Where the token comes from, the first present of:
 *  1. "Authorization: Bearer <token>" (scheme case-insensitive). A present
 *     Authorization header of another scheme is ignored.
 *  2. a Sec-WebSocket-Protocol list entry "kws.token.<token>", for browsers,
 *     which cannot set headers on a WebSocket. The router must NOT echo this
 *     entry back as the selected subprotocol (the token would be in the
 *     response); it selects "kws.v1" when that is also requested. Browsers
 *     fail a handshake whose response selects no subprotocol when they
 *     offered some, so a browser client offers a real one next to the token:
 *     new WebSocket(url, ["kws.v1", "kws.token." + jwt]).
 *  3. the id header itself, when cfg.token_in_id_header.
 *  4. the query parameter access_token (the value as it is in the URL: a JWT
 *     needs no percent-decoding), only when cfg.token_in_query. Off by
 *     default: URLs end up in access logs of proxies and load balancers,
 *     so the token leaks there; prefer the subprotocol entry. A handshake
 *     with access_token while it is off is refused (IDENT_EQUERY), so that a
 *     misconfigured client finds out at once.
 * The id header is otherwise ignored in JWT mode: the id is the claim.
 */
#define IDENT_MAX_TOKEN 8192

/* The subprotocol entry prefix that carries a token (see above). */
#define IDENT_SUBPROTOCOL_TOKEN "kws.token."

/* Errors of ident_check (negative). The HTTP status to refuse the handshake
 * with is ident_http_status(err). */
enum {
	IDENT_ENOID = -1,    /* 400: the id header is missing or empty */
	IDENT_EBADID = -2,   /* 400: the id header is too long or has control characters */
	IDENT_EPEER = -3,    /* 403: the peer is not a trusted proxy */
	IDENT_ENOTOKEN = -4, /* 401: no token in any enabled source */
	IDENT_ETOKEN =
		-5, /* 401: malformed token (or repeated JSON member), refused algorithm, unknown kid, bad signature */
	IDENT_EEXPIRED = -6, /* 401: expired, or not yet valid */
	IDENT_ECLAIMS = -7,  /* 401: exp missing or not a number, or wrong iss / aud */
	IDENT_ECLAIMID =
		-8, /* 401: the id claim is missing, not a string, empty, too long, or has control characters */
	IDENT_EQUERY = -9, /* 400: access_token in the query while token_in_query is off */
};

struct ident_config {
	enum ident_mode mode;
	const char *id_header; /* its name, for messages; default "X-Client-Id" */
	long max_id_bytes;     /* > 0: the longest id accepted */
	/* IDENT_HEADER_FROM_PROXIES: the trusted peers (copied by ident_new). */
	struct cidr_list proxies;
	/* IDENT_JWT: */
	struct conf_list key_files; /* files and directories (see above) */
	const char *claim;          /* NULL: "sub" */
	long leeway_s;              /* 0..86400; callers default it to 30 */
	const char *issuer;         /* NULL or "": iss not checked */
	const char *audience;       /* NULL or "": tokens with aud refused */
	bool token_in_id_header;    /* source 3 */
	bool token_in_query;        /* source 4 */
};

struct ident;

/* Checks cfg and, in JWT mode, loads every key. Returns the checker (free
 * with ident_free), or NULL with a message in err naming the setting or the
 * key file and what is wrong with it. Copies everything it keeps: cfg and its
 * strings and lists may be freed after the call. In JWT mode at least one key
 * is required. */
struct ident *ident_new(const struct ident_config *cfg, char *err, size_t errlen);

/* Frees the checker and wipes its secrets; accepts NULL. */
void ident_free(struct ident *id);

enum ident_mode ident_mode(const struct ident *id);
/* How many keys were loaded (JWT mode), for the start-up log. */
size_t ident_key_count(const struct ident *id);

/* What the router extracted from the handshake. Every field may be NULL
 * (absent). Strings other than id_header are NUL-terminated. */
struct ident_input {
	const char *id_header; /* the id header's value, id_len bytes (not NUL-terminated) */
	size_t id_len;
	const char *authorization;   /* the Authorization header */
	const char *subprotocols;    /* Sec-WebSocket-Protocol, comma-separated */
	const char *query_token;     /* the access_token query parameter */
	const struct sockaddr *peer; /* the TCP peer (AF_INET / AF_INET6) */
};

/* Decides the client id of a handshake at wall-clock time now_s (seconds
 * since the epoch). Returns 0 and writes the id, NUL-terminated, into
 * id_out[0..cap) with its length (without the NUL) in *id_len; cap should be
 * at least max_id_bytes + 1 (an id that does not fit is refused as too long). Or
 * returns a negative IDENT_E* and writes a short reason into why[0..whylen),
 * fit for the body of the refusal ("token expired", "peer not a trusted
 * proxy"); it never contains the token or its claims. why may be NULL.
 * Reads only *id: safe to call from several threads at once. */
int ident_check(const struct ident *id, const struct ident_input *in, int64_t now_s, char *id_out,
		size_t cap, size_t *id_len, char *why, size_t whylen);

/* The HTTP status for an IDENT_E* error (400, 401 or 403; 500 for anything
 * else). */
int ident_http_status(int err);

/* A fixed description of an IDENT_E* error. */
const char *ident_strerror(int err);

/* Parses "none", "header-from-proxies" or "jwt"; -1 for anything else.
 * ident_mode_name is the inverse. */
int ident_mode_parse(const char *s);
const char *ident_mode_name(enum ident_mode m);

#endif
