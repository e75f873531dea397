/*
 * loopchan: the router's end of a link to one edge, on the router's own
 * libuv loop. It speaks the wire of common/chan.h (each frame a 4-byte
 * big-endian length and that many bytes, in order, none dropped while the
 * connection lives), dials tcp://HOST:PORT (resolved at every attempt),
 * and dials again with back-off whenever the owner asks after a connection
 * ended.
 *
 * Why not chan (nng) on this side: nng 1.5.2 completes every stream read on
 * its own threads. Its poller thread reads the socket, its task thread runs
 * the read's callback, and that callback must wake the router's loop. So
 * each message from the edge crosses two threads before the router sees it,
 * and on a busy machine each crossing waits for the scheduler: the stage
 * "link send -> router loop" was where the router's latency tail came from
 * (tests/bench/README.md, "Latency at load"). Here the loop reads the socket
 * itself when epoll says it is readable. The edge keeps chan and nng: it is
 * the same wire (PROTOCOL.md, "Transport").
 *
 * Everything here runs on the loop's thread. The owner pulls: news(arg) is
 * called (on the loop) when a connection opened, frames arrived or the
 * connection ended, and the owner then calls loopchan_connected and
 * loopchan_recv.
 */
#ifndef KWS_LOOPCHAN_H
#define KWS_LOOPCHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef void (*loopchan_news_fn)(void *arg);

struct loopchan;

/* Starts dialing url (tcp://HOST:PORT; HOST a name, an IPv4 address or an
 * IPv6 one in brackets) on loop. max_msg bounds one frame each way (a larger
 * one received closes the connection); max_queue bounds the bytes queued to
 * send (a send past it closes the connection) and the bytes received and not
 * yet taken (reading pauses past it). NULL, with a message in err, if url is
 * not of that form. */
struct loopchan *loopchan_new(uv_loop_t *loop, const char *url, size_t max_msg, size_t max_queue,
			      loopchan_news_fn news, void *arg, char *err, size_t errlen);
/* Stops everything. The memory goes when the loop has run the handles' close
 * callbacks (the next uv_run). Kept messages stay valid. Accepts NULL. */
void loopchan_free(struct loopchan *c);

/* true once for each new connection, before any of its frames: the owner
 * starts its handshake then. */
bool loopchan_connected(struct loopchan *c);

/* Takes the next received frame: 1 with *buf and *len set (valid until the
 * next loopchan_recv or loopchan_free), 0 if none is waiting, -1 if the
 * connection has ended and all it brought was taken (then loopchan_redial).
 * news is called again when there is more. */
int loopchan_recv(struct loopchan *c, const void **buf, size_t *len);
/* Dials again after loopchan_recv returned -1: after 100 ms, or longer
 * (doubling up to 500 ms) while attempts keep failing. */
void loopchan_redial(struct loopchan *c);

/* Takes over the memory of the frame the last loopchan_recv returned (1):
 * its bytes stay valid, past the next loopchan_recv and loopchan_free, until
 * the handle goes to loopchan_kept_free. NULL if there is none. */
void *loopchan_keep(struct loopchan *c);
/* The bytes the kept frame holds allocated (its length and a header). */
size_t loopchan_kept_size(const void *kept);
/* Frees a kept frame; accepts NULL. */
void loopchan_kept_free(void *kept);

/* Queues len bytes (copied) to be sent. 0, or -1 if not connected, or if len
 * is 0, over max_msg or would take the queue past max_queue (the connection
 * is then closed, loopchan_error saying which). */
int loopchan_send(struct loopchan *c, const void *buf, size_t len);
/* As loopchan_send without the copy: on 0 the channel owns buf (malloc'ed);
 * on -1 the caller still does. */
int loopchan_send_take(struct loopchan *c, void *buf, size_t len);

/* Ends the connection here; loopchan_recv returns -1 once the frames that
 * came before are taken. */
void loopchan_close(struct loopchan *c);
/* Why the last connection ended or the last attempt failed ("" if neither). */
const char *loopchan_error(const struct loopchan *c);
/* The edge's address as text, e.g. "127.0.0.1:7100" ("?" before a
 * connection). */
const char *loopchan_peer(const struct loopchan *c);

struct loopchan_stats {
	uint64_t rx_msgs, rx_bytes, rx_reads, tx_msgs, tx_bytes, tx_writes, attempts;
};
void loopchan_get_stats(const struct loopchan *c, struct loopchan_stats *st);

#endif
