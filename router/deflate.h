/*
 * deflate: permessage-deflate (RFC 7692) for lws 4.1.6, implemented by the
 * router: the negotiation (pmd.c) and the codec (pmdz.c, zlib), plugged
 * into lws as its own extension (deflate_extensions). lws 4.1.6's
 * pm_deflate is not used, for its defects on a server (the same in lws
 * main, no upstream fix):
 *  - it echoes only the client's value-less parameters, so it never
 *    answers server_max_window_bits=N nor client_max_window_bits=N;
 *  - it reads no_context_takeover from a client's point of view (with
 *    server_no_context_takeover it resets its inflater, not its
 *    compressor), and sizes its compressor from client_max_window_bits on
 *    a vhost that does not listen (ours: the door listens);
 *  - it inflates and compresses 1 KiB at a time and leaves the rest to
 *    lws's "draining" of the extension, which loses the end of a received
 *    message when the last input inflates to nothing new (the message never
 *    completes: tests/integration/test_deflate.py), and keeps a pointer into
 *    the caller's buffer to compress the rest of a long message at later
 *    writeable callbacks (the router's shared write buffer by then holds
 *    other bytes). Autobahn 12.2.9, 12.2.10, 13.7.10.
 * This extension inflates and compresses all of each piece lws hands it at
 * once (so lws never drains it), into buffers it owns.
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

/* Frees the larger buffers of c's codec (pmdz_trim) once lws is done with
 * them: after a whole message was received or written. Accepts a c without
 * deflate. */
void deflate_trim(struct conn *c);

#endif
