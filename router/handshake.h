/*
 * handshake: the lws side of admission. Reads a WebSocket upgrade request
 * (path, Origin, id header, Authorization, subprotocols, query, peer
 * address, position), applies the rules of admission.c and ident.c, and
 * refuses with an HTTP status and a plain reason, counted by reason.
 */
#ifndef KWS_ROUTER_HANDSHAKE_H
#define KWS_ROUTER_HANDSHAKE_H

#include <stdint.h>

#include <libwebsockets.h>

struct router;

/* Answers an HTTP request with status and text (plain text, one line;
 * control characters replaced) and Connection: close. 0, or -1 if it could
 * not be written. */
int handshake_send_plain(struct lws *wsi, unsigned int status, const char *text);

/* LWS_CALLBACK_HTTP_CONFIRM_UPGRADE (before lws's own upgrade code, which
 * hangs up without an answer on what it cannot take): 0 to accept the upgrade (the
 * verified client id is then kept as the wsi's opaque user data, a string
 * the caller frees: handshake_take_id), or -1 after refusing it. */
int handshake_check(struct router *r, struct lws *wsi);
/* Takes the client id handshake_check kept (caller frees), or NULL. */
char *handshake_take_id(struct lws *wsi);
/* The position the client presented (X-Kws-Position, or ?position=):
 * 1 with *p, *off set; 0 none; -1 malformed. */
int handshake_position(struct lws *wsi, uint32_t *p, int64_t *off);

#endif
