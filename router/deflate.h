/*
 * deflate: permessage-deflate (RFC 7692) on lws 4.1.6, with the router's
 * own negotiation (pmd.c). lws's pm_deflate extension compresses and
 * inflates; this module decides what to answer and sets lws up to match,
 * working around three defects of lws's server side (deflate.c; the same
 * in lws main today, no upstream fix):
 *  - it echoes only the client's value-less parameters, so it never
 *    answers server_max_window_bits=N nor client_max_window_bits=N;
 *  - it reads no_context_takeover from a client's point of view: with
 *    server_no_context_takeover it resets its inflater, not its compressor,
 *    and with client_no_context_takeover its compressor;
 *  - on a vhost that does not listen (ours: the door listens) its
 *    compressor uses the client_max_window_bits setting.
 */
#ifndef KWS_ROUTER_DEFLATE_H
#define KWS_ROUTER_DEFLATE_H

#include <libwebsockets.h>

struct router;
struct conn;

/* The extensions to give lws with --deflate on (info.extensions). */
extern const struct lws_extension deflate_extensions[];

/* LWS_CALLBACK_CONFIRM_EXTENSION_OKAY for ext_name (in): negotiates over
 * the whole request header and keeps the answer in c->pmd. Returns 0 to
 * accept the extension, 1 to decline it (no acceptable offer: the
 * connection goes on uncompressed). */
int deflate_confirm(struct router *r, struct lws *wsi, struct conn *c, const char *ext_name);

/* LWS_CALLBACK_ADD_HEADERS of the 101 response: if the extension is on, adds
 * the negotiated parameters to the Sec-WebSocket-Extensions line lws wrote
 * just before. Returns 0, or -1 (the handshake fails) if that line is not
 * where lws 4.1.6 puts it or there is no room. */
int deflate_add_headers(struct conn *c, struct lws_process_html_args *args);

#endif
