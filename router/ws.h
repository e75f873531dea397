/*
 * ws: the router's WebSocket clients in lws. The protocol table and its one
 * callback: a handshake goes to handshake.c, an established client gets a
 * session (pins.c pins it), whole client messages go upstream (edges.c), and
 * the writeable callback writes the session's queue in batches.
 */
#ifndef KWS_ROUTER_WS_H
#define KWS_ROUTER_WS_H

#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <libwebsockets.h>

/* Bytes of one batched write (ws.c frames many queued messages into it);
 * struct router's wbuf holds LWS_PRE + WS_WRITE_BATCH_BYTES. It is also the
 * protocols' tx_packet_size: without it lws 4.1.6 sends at most
 * rx_buffer_size (or pt_serv_buf_size) bytes per send() and copies the rest
 * of a batch into its own buffer list (lws_issue_raw). */
#define WS_WRITE_BATCH_BYTES (64 * 1024)

/* The receive buffer lws keeps per client (the protocols' rx_buffer_size):
 * a client message longer than this reaches the router in pieces, which
 * ws.c joins. lws 4.1.6 allocates it for every established connection and
 * defaults it to pt_serv_buf_size (4 KiB): it was 4,116 of the ~6,000 heap
 * bytes of an idle session (tests/bench/heap.py). 512 keeps control frames
 * (at most 125 bytes) and permessage-deflate (at least 128) whole. */
#define WS_RX_BUFFER_BYTES 512

/* The protocols to give lws (info.protocols): "kws" (bare values) and
 * "kws.v1" (positions and resume). Their callback finds the router as the
 * context's user data. */
extern const struct lws_protocols ws_protocols[];

struct router;
struct conn;

/* Every byte the router itself writes to a client socket goes through this
 * one function: the records of a session's queue, frame headers and shared
 * values in one sendmsg() (MSG_DONTWAIT). Nonblocking: returns the bytes
 * written (possibly fewer than asked), or -1 with errno (EAGAIN: nothing
 * fit). Only for sessions that are conn.direct: plain sockets without
 * permessage-deflate. lws writes everything else through send(), which
 * recvhook.c interposes (SSL_write for TLS): the handshake, Close, Ping,
 * Pong, compressed messages, and the records of a TLS session (framed by
 * ws.c, one lws_write per batch). To write TLS here, the retry rule of
 * SSL_write (after WANT_WRITE, the same bytes again) must hold across a
 * close that drops the queue: keep the unfinished chunk in the connection. */
ssize_t ws_sock_writev(struct conn *c, const struct iovec *iov, int iovcnt);

/* Writes the queues of the connections router_flush_later named since the last
 * call, as far as their sockets take them; asks lws for a writeable
 * callback for the rest. On the loop, after a batch of edge input. */
void ws_flush(struct router *r);

/* Hands the connections whose head the door has read to lws, head first
 * (lws parses it as if it had read it; it may call back into the protocol
 * callback for them right here). On the loop, when woken. */
void ws_adopt_guests(struct router *r);

/* Every tick: pings each client silent for --ping-interval-s and hangs up
 * on one silent for twice that (any frame from the client, a pong or a
 * message, counts). Looks only at the clients that are due. */
void ws_keepalive_tick(struct router *r, int64_t now_ms);

#endif
