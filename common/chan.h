/*
 * chan: framed messages both ways over one nng byte stream (TCP), in order,
 * none dropped while the connection lives. A frame is a 4-byte big-endian
 * length and that many bytes. nng runs the I/O on its own threads; received
 * messages and the end of the connection are queued and announced through a
 * wake callback, and the owner's loop takes them with chan_recv(). Sends are
 * queued, bounded in bytes, and several queued messages go out in one write.
 * A received frame is read into its own allocation, which the owner may keep
 * (chan_keep) instead of copying from it; a large message is written from its
 * own memory (no copy into a write buffer).
 *
 * Why not an nng protocol socket: pair1's polyamorous mode (the only nng
 * pattern that addresses one peer among many) silently drops a message
 * whenever more than two are queued for one pipe; see PROTOCOL.md.
 *
 * chan_listener produces the streams: the edge accepts routers. The
 * router's end of a link is router/loopchan.c, the same framing on the
 * router's libuv loop (which saves each message two thread hand-overs).
 */
#ifndef KWS_CHAN_H
#define KWS_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

/* Called on an nng thread when something may be ready for the owner: it must
 * only signal the owner's loop (write an eventfd, lws_cancel_service). */
typedef void (*chan_wake_fn)(void *arg);

struct chan;

struct chan_stats {
	uint64_t rx_msgs, rx_bytes, tx_msgs, tx_bytes, tx_writes;
	size_t queued_bytes; /* waiting to be written */
};

/* Takes ownership of stream s and starts reading. max_msg bounds one frame
 * (a larger one closes the connection); max_queue bounds the bytes queued
 * each way (a send past it closes the connection; reading pauses while the
 * owner has that much unread). */
struct chan *chan_new(nng_stream *s, size_t max_msg, size_t max_queue, chan_wake_fn wake,
		      void *arg);
/* As chan_new, but frames received are limited to recv_max bytes until
 * chan_set_recv_max raises it (at most to max_msg): a peer that has not
 * authenticated yet cannot make the channel allocate max_msg. */
struct chan *chan_new_limited(nng_stream *s, size_t max_msg, size_t recv_max, size_t max_queue,
			      chan_wake_fn wake, void *arg);
/* Sets the largest frame received from now on (capped at max_msg). */
void chan_set_recv_max(struct chan *c, size_t recv_max);
/* Stops the I/O, waits for nng's callbacks to finish and frees everything.
 * Must not be called from a wake callback. Accepts NULL. */
void chan_free(struct chan *c);
/* Closes the connection; chan_recv() then returns -1 once the queue is empty. */
void chan_close(struct chan *c);

/* Queues len bytes (copied) to be sent. Returns 0, or -1 if the channel is
 * closed, or if len is 0, over max_msg or would take the queue past
 * max_queue (the channel is then closed, chan_error saying which). */
int chan_send(struct chan *c, const void *buf, size_t len);

/* As chan_send, without the copy: on 0 the channel owns buf (malloc'ed; it
 * is freed once written, or with the channel); on -1 the caller still does. */
int chan_send_take(struct chan *c, void *buf, size_t len);

/* Calls the wake callback once the bytes queued to send have fallen to mark
 * or below (at once if they already have). One mark at a time; a new call
 * replaces it. The edge holds Kafka's records back while a router's queue is
 * deep and goes on when this wakes it (edge/routers.h, routers_backlogged). */
void chan_wake_below(struct chan *c, size_t mark);

/* Takes the next received message: returns 1 with *buf and *len set (valid
 * until the next chan_recv or chan_free on this channel), 0 if none is
 * waiting, -1 if the connection has ended and everything was taken. After a
 * 0 the wake callback fires again when more arrives. */
int chan_recv(struct chan *c, const void **buf, size_t *len);

/* Takes over the memory of the message the last chan_recv returned (1):
 * its buf stays valid, past the next chan_recv and chan_free, until the
 * returned handle is given to chan_kept_free. Saves the owner a copy of what
 * it keeps (the router's records, recbuf.h). NULL if there is none (already
 * kept, or the last chan_recv returned 0 or -1). Owner's thread only. */
void *chan_keep(struct chan *c);
/* The kept message's bytes (the buf chan_recv returned). */
const void *chan_kept_data(const void *kept);
/* The bytes the kept message holds allocated (its length and a header). */
size_t chan_kept_size(const void *kept);
/* Frees a kept message; accepts NULL. */
void chan_kept_free(void *kept);

/* Why the channel closed ("" while open). */
const char *chan_error(struct chan *c);
/* The peer's address as text, e.g. "127.0.0.1:51234". */
const char *chan_peer(const struct chan *c);
void chan_get_stats(struct chan *c, struct chan_stats *st);

/* Listens on url and accepts connections in the background. */
struct chan_listener;
struct chan_listener *chan_listener_new(const char *url, chan_wake_fn wake, void *arg, char *err,
					size_t errlen);
void chan_listener_free(struct chan_listener *l);
/* An accepted stream, or NULL. */
nng_stream *chan_listener_take(struct chan_listener *l);

#endif
