/*
 * ws: the router's WebSocket clients in lws. The protocol table and its one
 * callback: a handshake goes to handshake.c, an established client gets a
 * session (pins.c pins it), whole client messages go upstream (edges.c), and
 * the writeable callback writes the session's queue in batches.
 */
#ifndef KWS_ROUTER_WS_H
#define KWS_ROUTER_WS_H

#include <libwebsockets.h>

/* Bytes of one batched write (ws.c frames many queued messages into it);
 * struct router's wbuf holds LWS_PRE + WS_WRITE_BATCH_BYTES. */
#define WS_WRITE_BATCH_BYTES (64 * 1024)

/* The protocols to give lws (info.protocols): "kws" (bare values) and
 * "kws.v1" (positions and resume). Their callback finds the router as the
 * context's user data. */
extern const struct lws_protocols ws_protocols[];

/* The extensions to give lws with --deflate on (info.extensions):
 * permessage-deflate (RFC 7692). A client that offers it gets it; the
 * router's own compressor then uses a 1 KiB window (WS_DEFLATE_WINDOW_BITS)
 * and a small memLevel, which every client inflater accepts, to keep the
 * memory of a session that receives small. */
extern const struct lws_extension ws_extensions[];

#endif
