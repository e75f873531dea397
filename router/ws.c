/* ws: see ws.h. */
#include "ws.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "deflate.h"
#include "door.h"
#include "edges.h"
#include "handshake.h"
#include "pins.h"
#include "pmdz.h"
#include "router_int.h"
#include "stages.h"
#include "tls.h"
#include "util.h"
#include "wsframe.h"

#define WRITES_PER_CALLBACK 16
/* One writev: at most this many pieces (a frame header with the small parts
 * of its message copied beside it, and the shared record value), and record
 * values up to WS_COPY_MAX bytes are copied beside their header rather than
 * given a piece of their own (a piece costs the kernel more than copying a
 * few hundred bytes). */
#define WS_IOV_MAX 128
#define WS_COPY_MAX 256

/* How long after a Close (sent or received) the TCP connection is closed at
 * the latest. lws 4.1.6 waits up to 5 s for the client's Close after
 * sending its own, and after a protocol error it never recognises that
 * Close: its frame parser stops inside the bad frame and reads the client's
 * Close as the rest of it. RFC 6455 7.1.1 wants the server to close the
 * TCP connection first, at once after the closing handshake. A client that
 * answers in time is closed by lws as soon as its Close arrives. */
#define WS_HANGUP_MS 100

/* The connection lists (router_int.h, struct conn_list): a connection is on
 * at most one. Takes it off its list, if any. */
static void list_unlink(struct conn *c)
{
	struct conn_list *l = c->list_on;
	if (!l)
		return;
	if (c->list_prev)
		c->list_prev->list_next = c->list_next;
	else
		l->head = c->list_next;
	if (c->list_next)
		c->list_next->list_prev = c->list_prev;
	else
		l->tail = c->list_prev;
	c->list_prev = c->list_next = NULL;
	c->list_on = NULL;
}

/* Puts c (on no list) at the end of l. */
static void list_append(struct conn_list *l, struct conn *c)
{
	c->list_prev = l->tail;
	c->list_next = NULL;
	if (l->tail)
		l->tail->list_next = c;
	else
		l->head = c;
	l->tail = c;
	c->list_on = l;
}

static void hang_service(lws_sorted_usec_list_t *sul);

/* The closing list's timer: at its first deadline. */
static void hang_arm(struct router *r)
{
	if (!r->closing.head) {
		lws_sul_cancel(&r->hang_timer);
		return;
	}
	int64_t wait_ms = r->closing.head->hang_due_ms - now_mono_ms();
	lws_sul_schedule(r->ctx, 0, &r->hang_timer, hang_service,
			 (wait_ms > 0 ? wait_ms : 0) * LWS_US_PER_MS);
}

/* Hangs up on the connections whose WS_HANGUP_MS have passed. The hang-up
 * is shutdown(2): the kernel sends what is queued and a FIN, and lws sees
 * the end on its next look at the socket and closes the connection (with
 * lws_set_timeout(LWS_TO_KILL_ASYNC) instead, each hang-up was one more
 * insertion into lws's sorted timer list, behind all the others due). */
static void hang_service(lws_sorted_usec_list_t *sul)
{
	struct router *r = lws_container_of(sul, struct router, hang_timer);
	int64_t now = now_mono_ms();
	struct conn *c;
	while ((c = r->closing.head) && c->hang_due_ms <= now) {
		list_unlink(c);
		/* Frames still on their way out (the Close among them, behind a
		 * batch the client is slow to take): wait for them; lws's own
		 * timeouts (5 s) still bound this. */
		if (lws_send_pipe_choked(c->wsi)) {
			c->hang_due_ms = now + WS_HANGUP_MS;
			list_append(&r->closing, c);
			continue;
		}
		int fd = lws_get_socket_fd(c->wsi);
		if (fd < 0 || shutdown(fd, SHUT_RDWR) < 0)
			lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_ASYNC);
	}
	hang_arm(r);
}

/* recvhook found an unmasked client frame (RFC 6455 5.1: fail the
 * connection); lws never sees it. */
static void client_unmasked(void *arg)
{
	struct conn *c = arg;
	/* lws is already failing the connection with a close reason of its own
	 * (1007 for text that is not UTF-8), or the client's Close came in:
	 * lws's parser stopped inside a frame, and what the client still sends
	 * (its Close, the rest of that frame) is no longer read in step with
	 * the guard, so its verdict is no news. Autobahn 6.4.3 got 1002 instead
	 * of 1007 about one run in three. */
	if (c->closing || lws_get_close_length(c->wsi) > 0)
		return;
	if (c->s)
		pins_close(router_of(c->wsi), c->s, LWS_CLOSE_STATUS_PROTOCOL_ERR,
			   "unmasked frame from the client");
}

/* A Close went out or came in: from now on no data frame is written (RFC
 * 6455 5.5.1; lws_write does not check, and the batch path frames its own),
 * nothing received goes upstream, and the TCP connection closes within
 * WS_HANGUP_MS. */
static void start_closing(struct router *r, struct conn *c)
{
	if (c->closing || !c->wsi)
		return;
	c->closing = true;
	bool armed = r->closing.head != NULL;
	list_unlink(c); /* off the keepalive's lists: it is hung up soon */
	c->hang_due_ms = now_mono_ms() + WS_HANGUP_MS;
	list_append(&r->closing, c);
	if (!armed)
		hang_arm(r);
}

/* The client showed it is alive: to the end of the idle list. */
static void ka_touch(struct router *r, struct conn *c)
{
	if (c->closing)
		return; /* on the closing list */
	list_unlink(c);
	c->ka_alive_ms = now_mono_ms();
	list_append(&r->ka_idle, c);
}

/* recvhook's on_frame: a whole frame came from the client. The keepalive
 * counts it here, where lws 4.1.6 would not report it: the answer to the
 * router's empty Ping is an empty Pong, which lws passes to no callback
 * (ops-ws.c: "PONG && !len: already_done"), so every idle client used to
 * be hung up after two intervals. */
static void client_frame_seen(void *arg)
{
	struct conn *c = arg;
	if (c->wsi)
		ka_touch(router_of(c->wsi), c);
}

/* Writes an empty Ping straight to a direct session's socket, as ws_flush
 * writes records, when no frame (ours or lws's) is cut on the wire; returns
 * whether it went (or the connection failed). Through lws (POLLOUT on, the
 * writeable callback, lws_write, POLLOUT off) a Ping and its Pong cost the
 * router 6.9 system calls and 12-30 µs; written here, 3.0 and 12-16 µs
 * (bench section a, 18,000 sessions pinged once each in its window). */
static bool ping_direct(struct conn *c)
{
	struct lws *wsi = c->wsi;
	if (!c->direct || !c->s || c->s->qsent || c->close_code || c->ka_hangup ||
	    c->write_failed || lws_partial_buffered(wsi) || lws_get_close_length(wsi) > 0)
		return false;
	static const unsigned char ping[2] = { 0x80 | WSFRAME_PING, 0 };
	struct iovec iov = { (void *)ping, sizeof ping };
	ssize_t n = ws_sock_writev(c, &iov, 1);
	if (n == 1) { /* the send buffer took one byte: the other now, or fail */
		iov.iov_base = (void *)(ping + 1);
		iov.iov_len = 1;
		if (ws_sock_writev(c, &iov, 1) != 1) {
			c->write_failed = true; /* half a Ping is on the wire */
			lws_callback_on_writable(wsi);
		}
		return true;
	}
	return n == 2;
}

void ws_keepalive_tick(struct router *r, int64_t now_ms)
{
	int64_t iv = r->cfg->ping_interval_s * 1000;
	if (iv <= 0)
		return;
	struct conn *c;
	while ((c = r->ka_idle.head) && now_ms - c->ka_alive_ms >= iv) {
		list_unlink(c);
		list_append(&r->ka_pinged, c);
		if (ping_direct(c))
			continue;
		c->ka_ping_due = true;
		lws_callback_on_writable(c->wsi);
	}
	while ((c = r->ka_pinged.head) && now_ms - c->ka_alive_ms >= 2 * iv) {
		list_unlink(c);
		log_debug("client %s answered no ping: hanging up", c->s ? c->s->id : "?");
		/* At its next writeable (no close frame: it is not listening);
		 * if that never comes, lws's timeout. lws arms its timers on
		 * libuv only after its own I/O, hence not LWS_TO_KILL_ASYNC. */
		c->ka_hangup = true;
		lws_callback_on_writable(c->wsi);
		lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, 5);
	}
}

static int client_established(struct router *r, struct lws *wsi, struct conn *c)
{
	char *id = handshake_take_id(wsi);
	if (!id || !r->routes.partition_count) {
		free(id);
		return -1; /* checked in the handshake; cannot happen */
	}
	int n = (int)strlen(id);
	int32_t p = partition_for_key(r->cfg->partitioner, id, (size_t)n,
				      (int32_t)r->routes.partition_count);
	c->s = sessions_create(&r->sessions, id, (size_t)n, (uint32_t)p, wsi);
	const struct lws_protocols *proto = lws_get_protocol(wsi);
	c->s->framed = proto && strcmp(proto->name, "kws.v1") == 0;
	uint32_t pp;
	int64_t po;
	if (handshake_position(wsi, &pp, &po) == 1) {
		r->resumes++;
		c->s->presented = true;
		c->s->presented_offset = po;
		if (pp == (uint32_t)p)
			c->s->next_offset = po;
		else
			c->s->foreign_position = true; /* the partition count changed */
	}
	log_debug("session %llu for %s in partition %d", (unsigned long long)c->s->sid, c->s->id,
		  p);
	free(id);
	pins_try(r, c->s);
	return 0;
}

static int client_receive(struct router *r, struct lws *wsi, struct conn *c, const void *in,
			  size_t len)
{
	ka_touch(r, c);
	if (!c->s || c->close_code || c->closing)
		return 0;
	if (lws_is_first_fragment(wsi)) {
		c->rxlen = 0;
		c->rx_text = !lws_frame_is_binary(wsi);
	}
	/* With permessage-deflate, remaining counts compressed bytes (of the
	 * frame, not of the message): only what has been inflated is held
	 * against the limit, and deflate.c inflates at most one byte past it. */
	size_t remaining = lws_remaining_packet_payload(wsi);
	size_t expect = c->deflate ? 0 : remaining;
	if (c->rxlen + len + expect > (size_t)r->cfg->max_frame_bytes) {
		lws_close_reason(wsi, CLOSE_TOO_BIG, (unsigned char *)"message too big", 15);
		return -1;
	}
	bool last = lws_is_final_fragment(wsi) && remaining == 0;
	if (last && c->rxlen == 0) {
		/* The whole message in one piece (the usual case): no copy. */
		edges_upstream(r, c->s, in ? in : "", len, c->rx_text);
		deflate_trim(c);
		return 0;
	}
	/* In pieces (a message longer than WS_RX_BUFFER_BYTES, or in several
	 * frames): held only while it arrives, grown to what the frame
	 * announces, so an idle session keeps no receive buffer. */
	size_t need = c->rxlen + len + expect;
	if (need > c->rxcap) {
		/* Doubling: with permessage-deflate, remaining counts compressed
		 * bytes and the inflated pieces keep outgrowing it. */
		size_t cap = c->rxcap * 2 > need ? c->rxcap * 2 : need;
		size_t max = (size_t)r->cfg->max_frame_bytes;
		c->rxcap = cap < max ? cap : need;
		c->rx = xrealloc(c->rx, c->rxcap);
	}
	if (len) { /* permessage-deflate hands over empty pieces too (in NULL) */
		memcpy(c->rx + c->rxlen, in, len);
		c->rxlen += len;
	}
	if (last) {
		edges_upstream(r, c->s, c->rx ? c->rx : (void *)"", c->rxlen, c->rx_text);
		deflate_trim(c);
		free(c->rx);
		c->rx = NULL;
		c->rxcap = c->rxlen = 0;
	}
	return 0;
}

ssize_t ws_sock_writev(struct conn *c, const struct iovec *iov, int iovcnt)
{
	int fd = lws_get_socket_fd(c->wsi);
	struct msghdr mh = { .msg_iov = (struct iovec *)iov, .msg_iovlen = (size_t)iovcnt };
	ssize_t n;
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n;
}

/* The frame type of a queued message, chosen once per message: the
 * router's --message-type, except that a text-mode router sends a message
 * that is not valid UTF-8 as a binary frame (RFC 6455 5.6: a text frame's
 * payload is UTF-8; a client would fail the connection), and counts it
 * (text_as_binary). The shared value is checked once for all sessions; a
 * valid head followed by a valid value is valid UTF-8. */
static unsigned message_opcode(struct router *r, struct outmsg *m)
{
	if (m->opcode)
		return m->opcode;
	m->opcode = WSFRAME_BINARY;
	if (r->cfg->text) {
		if (wsframe_utf8_valid(m->head, m->hlen) && (!m->body || recbuf_utf8(m->body)))
			m->opcode = WSFRAME_TEXT;
		else
			r->text_as_binary++;
	}
	return m->opcode;
}

/* The message has gone out: its delay, and off the queue. */
static void message_done(struct router *r, struct session *s, int64_t now_wall)
{
	struct outmsg *m = sessions_peek(s);
	if (m->timestamp_ms >= 0)
		metrics_observe(r->delay, (double)(now_wall - m->timestamp_ms) / 1000.0);
	if (stages_want(m->offset))
		stages_mark('W', s->partition, m->offset, stages_now_us(), (int64_t)s->sid);
	sessions_pop_free(s);
}

/* Copies m's payload (head, then value) to out. */
static void message_copy(const struct outmsg *m, unsigned char *out)
{
	memcpy(out, m->head, m->hlen);
	if (m->body)
		memcpy(out + m->hlen, m->body->data, m->body->len);
}

/* The oldest message through lws_write whole, from a copy with LWS_PRE in
 * front: with permessage-deflate (lws compresses in lws_write), and a single
 * message of a session that is not c->direct. Returns 0, or -1 if the
 * connection failed. */
static int write_lws(struct router *r, struct lws *wsi, struct session *s, int64_t now_wall)
{
	struct outmsg *m = sessions_peek(s);
	unsigned char *buf = m->len <= WS_WRITE_BATCH_BYTES ? r->wbuf : xmalloc(LWS_PRE + m->len);
	message_copy(m, buf + LWS_PRE);
	int n = lws_write(wsi, buf + LWS_PRE, m->len,
			  message_opcode(r, m) == WSFRAME_TEXT ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
	if (buf != r->wbuf)
		free(buf);
	if (n < (int)m->len)
		return -1;
	message_done(r, s, now_wall);
	return 0;
}

/* A TLS session without permessage-deflate: the oldest messages framed
 * here into one lws_write of up to WS_WRITE_BATCH_BYTES (lws sends it through
 * send(), which recvhook routes to SSL_write); a single message, or one
 * longer than half a batch, goes through write_lws. Returns 0, or -1 if the
 * connection failed. */
static int write_lws_batch(struct router *r, struct lws *wsi, struct session *s, int64_t now_wall)
{
	struct outmsg *m = sessions_peek(s);
	if (!m->next || m->len > WS_WRITE_BATCH_BYTES / 2)
		return write_lws(r, wsi, s, now_wall);
	size_t len = 0;
	unsigned char *out = r->wbuf + LWS_PRE;
	while ((m = sessions_peek(s)) &&
	       len + WSFRAME_MAX_HEADER + m->len <= WS_WRITE_BATCH_BYTES) {
		len += wsframe_header(out + len, message_opcode(r, m), m->len);
		message_copy(m, out + len);
		len += m->len;
		message_done(r, s, now_wall);
	}
	int n = lws_write(wsi, out, len, LWS_WRITE_RAW);
	return n < (int)len ? -1 : 0;
}

/* What one message of len bytes may take in a batch once compressed: zlib's
 * deflateBound for a window or memLevel other than its defaults, and the
 * flushes of its two pieces (head, value), and the frame's header. */
static size_t deflated_bound(size_t len)
{
	return len + ((len + 7) >> 3) + ((len + 63) >> 6) + 5 + 2 * 16 + WSFRAME_MAX_HEADER;
}

/* m as one compressed frame (RSV1, RFC 7692 6) at out, which has room for
 * deflated_bound(m->len): its head and value go through the session's
 * compressor (c->dz, the one lws's extension calls use: both keep one
 * context in message order). Returns the frame's bytes, 0 if zlib failed. */
static size_t deflate_frame(struct router *r, struct conn *c, struct outmsg *m, unsigned char *out)
{
	unsigned char *z = out + WSFRAME_MAX_HEADER;
	size_t zlen = 0;
	const unsigned char *piece[2] = { m->head, m->body ? m->body->data : NULL };
	size_t plen[2] = { m->hlen, m->body ? m->body->len : 0 };
	for (int i = 0; i < 2; i++) {
		bool fin = i == 1;
		if (!plen[i] && !fin)
			continue;
		unsigned char *o;
		size_t n;
		if (pmdz_deflate(c->dz, piece[i], plen[i], fin, &o, &n) < 0)
			return 0;
		memcpy(z + zlen, o, n);
		zlen += n;
	}
	size_t h = wsframe_header(out, message_opcode(r, m), zlen);
	out[0] |= 0x40; /* RSV1: compressed */
	memmove(out + h, z, zlen);
	return h + zlen;
}

/* A session with permessage-deflate: its oldest messages compressed here
 * and framed into one lws_write of up to WS_WRITE_BATCH_BYTES. LWS_WRITE_RAW
 * does not go through lws's extension, so lws sends the frames as they are.
 * One lws_write per message cost the router a send() and the client a
 * wake-up per message: with deflate the router was about 11 us a 100-byte
 * message (tests/bench/README.md, "Workers"). A message longer than a
 * quarter of a batch goes through write_lws, alone. Returns 0, or -1 if the
 * connection failed. */
static int write_deflate_batch(struct router *r, struct lws *wsi, struct conn *c, struct session *s,
			       int64_t now_wall)
{
	struct outmsg *m = sessions_peek(s);
	if (!c->dz || m->len > WS_WRITE_BATCH_BYTES / 4)
		return write_lws(r, wsi, s, now_wall);
	size_t len = 0;
	unsigned char *out = r->wbuf + LWS_PRE;
	while ((m = sessions_peek(s)) && m->len <= WS_WRITE_BATCH_BYTES / 4 &&
	       len + deflated_bound(m->len) <= WS_WRITE_BATCH_BYTES) {
		size_t n = deflate_frame(r, c, m, out + len);
		if (!n) {
			log_error("permessage-deflate: compressing a message failed");
			return -1;
		}
		len += n;
		message_done(r, s, now_wall);
	}
	int n = lws_write(wsi, out, len, LWS_WRITE_RAW);
	return n < (int)len ? -1 : 0;
}

/* The pieces of one writev (write_batch). */
struct batch {
	struct iovec iov[WS_IOV_MAX];
	int n;
	size_t bytes;           /* the frames' bytes in iov */
	unsigned char *scratch; /* headers and small parts: r->wbuf */
	size_t used;
	uint32_t msgs;
};

static void batch_add(struct batch *b, const void *p, size_t len)
{
	if (!len)
		return;
	struct iovec *last = b->n ? &b->iov[b->n - 1] : NULL;
	if (last && (const unsigned char *)last->iov_base + last->iov_len == p) {
		last->iov_len += len;
	} else {
		b->iov[b->n].iov_base = (void *)p;
		b->iov[b->n].iov_len = len;
		b->n++;
	}
	b->bytes += len;
}

/* Adds p[0..len) by reference, or copied into the scratch when small. */
static void batch_piece(struct batch *b, const unsigned char *p, size_t len)
{
	if (len > WS_COPY_MAX) {
		batch_add(b, p, len);
		return;
	}
	memcpy(b->scratch + b->used, p, len);
	batch_add(b, b->scratch + b->used, len);
	b->used += len;
}

/* Adds m's frame (header, head, value) from its byte `skip` on (what a
 * short write left) unless the batch is full; returns whether it did. The
 * first message always fits. */
static bool batch_message(struct router *r, struct batch *b, struct outmsg *m, size_t skip)
{
	if (b->msgs && (b->n + 3 > WS_IOV_MAX ||
			b->used + WSFRAME_MAX_HEADER + 2 * WS_COPY_MAX > WS_WRITE_BATCH_BYTES ||
			b->bytes + WSFRAME_MAX_HEADER + m->len > WS_WRITE_BATCH_BYTES))
		return false;
	unsigned char h[WSFRAME_MAX_HEADER];
	const struct iovec piece[3] = {
		{ h, wsframe_header(h, message_opcode(r, m), m->len) },
		{ m->head, m->hlen },
		{ m->body ? m->body->data : NULL, m->body ? m->body->len : 0 },
	};
	for (int k = 0; k < 3; k++) {
		size_t len = piece[k].iov_len;
		if (skip >= len) {
			skip -= len;
			continue;
		}
		batch_piece(b, (const unsigned char *)piece[k].iov_base + skip, len - skip);
		skip = 0;
	}
	b->msgs++;
	return true;
}

/* Writes the session's oldest queued messages in one writev (ws_sock_writev):
 * frame headers made here (wsframe_header) between the shared record values,
 * which are not copied. A short write leaves the cut message at the head of
 * the queue with s->qsent saying how much of its frame went; the next write
 * starts there, and lws's own bytes wait for it (ws_before_lws_send). Only
 * while lws has nothing of its own waiting (write_queue checks). Returns 1
 * if everything went (try again), 0 if the socket is full (lws calls back
 * when it is writeable), -1 if the connection failed. */
static int write_batch(struct router *r, struct conn *c, struct session *s, int64_t now_wall)
{
	struct batch b;
	b.n = 0;
	b.bytes = b.used = 0;
	b.msgs = 0;
	b.scratch = r->wbuf + LWS_PRE;
	size_t skip = s->qsent;
	for (struct outmsg *m = sessions_peek(s); m && batch_message(r, &b, m, skip); m = m->next)
		skip = 0;
	ssize_t n = ws_sock_writev(c, b.iov, b.n);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			lws_callback_on_writable(c->wsi);
			return 0;
		}
		return -1;
	}
	size_t left = (size_t)n;
	for (uint32_t k = 0; k < b.msgs; k++) {
		struct outmsg *m = sessions_peek(s);
		size_t rest = wsframe_header_len(m->len) + m->len - s->qsent;
		if (left < rest) {
			if (left) {
				s->qsent += (uint32_t)left;
				r->short_writes++;
			}
			lws_callback_on_writable(c->wsi);
			return 0;
		}
		left -= rest;
		message_done(r, s, now_wall);
	}
	return 1;
}

/* recvhook's before_send for a client socket: lws is about to write bytes
 * of its own; a frame a short write cut must be finished first. Uses
 * r->wbuf as scratch: only direct sessions have a cut frame, and lws never
 * writes from r->wbuf for them (their Ping and Close come from the stack). */
static int ws_before_lws_send(void *arg)
{
	struct conn *c = arg;
	struct session *s = c->s;
	if (!s || !s->qsent)
		return 0;
	struct router *r = router_of(c->wsi);
	struct batch b;
	b.n = 0;
	b.bytes = b.used = 0;
	b.msgs = 0;
	b.scratch = r->wbuf + LWS_PRE;
	struct outmsg *m = sessions_peek(s);
	batch_message(r, &b, m, s->qsent);
	ssize_t n = ws_sock_writev(c, b.iov, b.n);
	if (n < 0)
		return -1;
	if ((size_t)n < b.bytes) {
		s->qsent += (uint32_t)n;
		return -1;
	}
	message_done(r, s, now_wall_ms());
	return 0;
}

/* Writes the close frame (c->close_code, c->close_reason) and returns -1 so
 * that lws hangs up. Not lws_close_reason() and -1: Debian's lws 4.1.6 is
 * built with _DEBUG, and then on libuv every close that a callback asks for
 * is repeated at once ("close_and_handled uv repeat test" in lws's
 * service.c), which kills the connection before lws writes the close frame
 * it had queued: the client would see 1006 instead of the code. */
static int send_close(struct lws *wsi, const struct conn *c)
{
	unsigned char buf[LWS_PRE + WSFRAME_MAX_HEADER + 125];
	unsigned char *p = buf + LWS_PRE;
	size_t n = strlen(c->close_reason);
	if (n > 123)
		n = 123;
	size_t h = wsframe_header(p, WSFRAME_CLOSE, n + 2);
	p[h] = (unsigned char)(c->close_code >> 8);
	p[h + 1] = (unsigned char)c->close_code;
	memcpy(p + h + 2, c->close_reason, n);
	lws_write(wsi, p, h + n + 2, LWS_WRITE_RAW);
	return -1;
}

/* Writes the session's queue as far as the socket takes it (ping and close
 * already handled), and lets a throttled session resubscribe once its queue
 * has drained. Returns 0, or -1 if the connection failed. */
static int write_queue(struct router *r, struct lws *wsi, struct conn *c)
{
	struct session *s = c->s;
	int64_t now_wall = now_wall_ms();
	for (int i = 0; i < WRITES_PER_CALLBACK && sessions_peek(s); i++) {
		if (c->deflate) {
			/* Compressed messages batched per lws_write, or a long
			 * one alone (deflate.c compresses all of it at once:
			 * nothing is left for a later callback), while the
			 * socket takes them. */
			int rc = write_deflate_batch(r, wsi, c, s, now_wall);
			deflate_trim(c);
			if (rc < 0)
				return -1;
			if (lws_send_pipe_choked(wsi))
				break;
			continue;
		}
		if (!c->direct) {
			if (write_lws_batch(r, wsi, s, now_wall) < 0)
				return -1;
			if (lws_send_pipe_choked(wsi))
				break;
			continue;
		}
		/* Something of lws's own (a ping's tail) goes first. */
		if (lws_partial_buffered(wsi))
			break;
		int rc = write_batch(r, c, s, now_wall);
		if (rc < 0)
			return -1;
		if (rc == 0)
			break;
	}
	if (s->throttled) {
		s->last_write_ms = now_mono_ms();
		if (s->qbytes <= (size_t)r->cfg->queue_bytes / 8)
			pins_unthrottle(r, s);
	}
	if (sessions_peek(s))
		lws_callback_on_writable(wsi);
	return 0;
}

static int client_writeable(struct router *r, struct lws *wsi, struct conn *c)
{
	if (c->ka_hangup || c->write_failed)
		return -1;
	if (c->close_code)
		return send_close(wsi, c);
	if (c->ka_ping_due) {
		unsigned char ping[LWS_PRE + 1];
		c->ka_ping_due = false;
		if (lws_write(wsi, ping + LWS_PRE, 0, LWS_WRITE_PING) < 0)
			return -1;
	}
	/* lws prepared a Close of its own (a protocol error it found, before
	 * it dropped the protocol) or one came in: no more data frames. */
	if (lws_get_close_length(wsi) > 0)
		start_closing(r, c);
	if (!c->s || c->closing)
		return 0;
	return write_queue(r, wsi, c);
}

void ws_flush(struct router *r)
{
	/* write_queue may close sessions (pins_unthrottle) but frees no
	 * connection: entries stay valid until client_closed unlists them. */
	for (size_t i = 0; i < r->nflush; i++) {
		struct conn *c = r->flush[i];
		if (!c)
			continue;
		c->flush_listed = false;
		struct lws *wsi = c->wsi;
		/* Only what the writeable callback would write right away:
		 * the queue, when no ping, Close or hang-up is due and lws has
		 * nothing of its own waiting (its frames stay whole). */
		if (!c->s || c->closing || c->close_code || c->ka_hangup || c->ka_ping_due ||
		    c->write_failed || !c->direct || lws_partial_buffered(wsi) ||
		    lws_get_close_length(wsi) > 0) {
			lws_callback_on_writable(wsi);
			continue;
		}
		if (write_queue(r, wsi, c) < 0) {
			c->write_failed = true;
			lws_callback_on_writable(wsi);
		}
	}
	r->nflush = 0;
}

/* The client's Close (lws answers it unless we return -1). RFC 6455 5.5.1:
 * a Close body is empty or holds a 2-byte code; a 1-byte body is a protocol
 * error (lws 4.1.6 would echo it), answered with 1002. */
static int client_close_received(struct router *r, struct lws *wsi, struct conn *c, size_t len)
{
	start_closing(r, c);
	if (len == 1) {
		static const char why[] = "close frame with a 1-byte body";
		lws_close_reason(wsi, LWS_CLOSE_STATUS_PROTOCOL_ERR, (unsigned char *)why,
				 sizeof why - 1);
		return -1;
	}
	return 0;
}

static void client_closed(struct router *r, struct conn *c)
{
	list_unlink(c);
	for (size_t i = 0; c->flush_listed && i < r->nflush; i++)
		if (r->flush[i] == c)
			r->flush[i] = NULL;
	c->flush_listed = false;
	recvhook_unwatch(&c->rxh);
	if (c->s) {
		pins_forget(r, c->s);
		c->s = NULL;
	}
	free(c->rx);
	c->rx = NULL;
	c->rxcap = 0;
}

void ws_adopt_guests(struct router *r)
{
	for (struct door_guest *g = door_take(r->door), *next; g; g = next) {
		next = g->next;
		/* On failure lws has closed the socket. */
		lws_adopt_socket_vhost_readbuf(r->vh, g->fd, g->buf, g->len);
		free(g);
	}
}

static int cb_client(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		     size_t len)
{
	struct router *r = router_of(wsi);
	struct conn *c = user;
	switch (reason) {
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return handshake_check(r, wsi);
	case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
		return 0; /* decided at CONFIRM_UPGRADE */
	case LWS_CALLBACK_ESTABLISHED: {
		/* Records go out as soon as they are written (no Nagle delay). */
		int one = 1;
		setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
		{
			/* Negotiated before (deflate.c): kept. */
			struct pmd_answer pmd = c->pmd;
			struct pmdz *dz = c->dz;
			bool deflate = c->deflate;
			memset(c, 0, sizeof *c);
			c->pmd = pmd;
			c->dz = dz;
			c->deflate = deflate;
		}
		c->wsi = wsi;
		c->direct =
			recvhook_watch(&c->rxh, lws_get_socket_fd(wsi), client_unmasked, c) == 0;
		c->rxh.before_send = ws_before_lws_send;
		c->rxh.on_frame = client_frame_seen;
		/* Not direct: with permessage-deflate (lws compresses), and
		 * on TLS, where a write SSL_write could not finish must be
		 * retried with the same bytes (OpenSSL), which a queue that a
		 * close shrinks cannot promise; lws's buffer list does. */
		if (c->deflate || tls_conn_of(lws_get_socket_fd(wsi)))
			c->direct = false;
		if (client_established(r, wsi, c) < 0)
			return -1;
		ka_touch(r, c);
		return 0;
	case LWS_CALLBACK_CONFIRM_EXTENSION_OKAY:
		return deflate_confirm(r, wsi, c, in);
	case LWS_CALLBACK_ADD_HEADERS:
		return deflate_add_headers(c, in);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		return client_close_received(r, wsi, c, len);
	case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
		/* lws starts closing: after a protocol error it found, after we
		 * returned -1, or at the end of the closing handshake. */
		if (c && c->wsi == wsi)
			start_closing(r, c);
		return 0;
	case LWS_CALLBACK_RECEIVE:
		return client_receive(r, wsi, c, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return client_writeable(r, wsi, c);
	case LWS_CALLBACK_CLOSED:
		client_closed(r, c);
		return 0;
	case LWS_CALLBACK_RECEIVE_PONG:
		ka_touch(r, c);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		/* A handshake that passed the filter but never got established. */
		free(handshake_take_id(wsi));
		if (c)
			list_unlink(c);
		return 0;
	case LWS_CALLBACK_HTTP: {
		/* A plain HTTP request, not an upgrade. */
		const char *path = in ? in : "";
		int code = strcmp(path, "/ws") == 0 ? 426 : 404;
		const char *msg = code == 426 ? "this endpoint needs a WebSocket upgrade"
					      : "not found; WebSockets are served on /ws";
		/* Answered with Connection: close, so close (no keep-alive for
		 * a request that has nothing here). */
		handshake_send_plain(wsi, (unsigned int)code, msg);
		return -1;
	}
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

const struct lws_protocols ws_protocols[] = {
	/* No subprotocol: bare values. */
	{ "kws", cb_client, sizeof(struct conn), WS_RX_BUFFER_BYTES, 0, NULL,
	  WS_WRITE_BATCH_BYTES },
	/* kws.v1: positions and resume (README). */
	{ "kws.v1", cb_client, sizeof(struct conn), WS_RX_BUFFER_BYTES, 0, NULL,
	  WS_WRITE_BATCH_BYTES },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};
