/* ws: see ws.h. */
#include "ws.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "deflate.h"
#include "door.h"
#include "edges.h"
#include "handshake.h"
#include "pins.h"
#include "router_int.h"
#include "util.h"
#include "wsframe.h"

#define WRITES_PER_CALLBACK 16
/* How long after a Close (sent or received) the TCP connection is closed at
 * the latest. lws 4.1.6 waits up to 5 s for the client's Close after
 * sending its own, and after a protocol error it never recognises that
 * Close: its frame parser stops inside the bad frame and reads the client's
 * Close as the rest of it. RFC 6455 7.1.1 wants the server to close the
 * TCP connection first, at once after the closing handshake. A client that
 * answers in time is closed by lws as soon as its Close arrives. */
#define WS_HANGUP_MS 100

static void hangup_now(lws_sorted_usec_list_t *sul)
{
	struct conn *c = lws_container_of(sul, struct conn, hangup);
	/* Frames still on their way out (the Close among them, behind a
	 * batch the client is slow to take): wait for them; lws's own
	 * timeouts (5 s) still bound this. */
	if (lws_send_pipe_choked(c->wsi)) {
		lws_sul_schedule(lws_get_context(c->wsi), 0, &c->hangup, hangup_now,
				 WS_HANGUP_MS * LWS_US_PER_MS);
		return;
	}
	lws_set_timeout(c->wsi, PENDING_TIMEOUT_CLOSE_ACK, LWS_TO_KILL_ASYNC);
}

/* recvhook found an unmasked client frame (RFC 6455 5.1: fail the
 * connection); lws never sees it. */
static void client_unmasked(void *arg)
{
	struct conn *c = arg;
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
	lws_sul_schedule(r->ctx, 0, &c->hangup, hangup_now, WS_HANGUP_MS * LWS_US_PER_MS);
}

static void ka_unlink(struct conn *c)
{
	struct ka_list *l = c->ka_on;
	if (!l)
		return;
	if (c->ka_prev)
		c->ka_prev->ka_next = c->ka_next;
	else
		l->head = c->ka_next;
	if (c->ka_next)
		c->ka_next->ka_prev = c->ka_prev;
	else
		l->tail = c->ka_prev;
	c->ka_prev = c->ka_next = NULL;
	c->ka_on = NULL;
}

static void ka_append(struct ka_list *l, struct conn *c)
{
	c->ka_prev = l->tail;
	c->ka_next = NULL;
	if (l->tail)
		l->tail->ka_next = c;
	else
		l->head = c;
	l->tail = c;
	c->ka_on = l;
}

/* The client showed it is alive: to the end of the idle list. */
static void ka_touch(struct router *r, struct conn *c)
{
	ka_unlink(c);
	c->ka_alive_ms = now_mono_ms();
	ka_append(&r->ka_idle, c);
}

void ws_keepalive_tick(struct router *r, int64_t now_ms)
{
	int64_t iv = r->cfg->ping_interval_s * 1000;
	if (iv <= 0)
		return;
	struct conn *c;
	while ((c = r->ka_idle.head) && now_ms - c->ka_alive_ms >= iv) {
		ka_unlink(c);
		ka_append(&r->ka_pinged, c);
		c->ka_ping_due = true;
		lws_callback_on_writable(c->wsi);
	}
	while ((c = r->ka_pinged.head) && now_ms - c->ka_alive_ms >= 2 * iv) {
		ka_unlink(c);
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
	size_t remaining = lws_remaining_packet_payload(wsi);
	if (c->rxlen + len + remaining > (size_t)r->cfg->max_frame_bytes) {
		lws_close_reason(wsi, CLOSE_TOO_BIG, (unsigned char *)"message too big", 15);
		return -1;
	}
	bool last = lws_is_final_fragment(wsi) && remaining == 0;
	if (last && c->rxlen == 0) {
		/* The whole message in one piece (the usual case): no copy. */
		edges_upstream(r, c->s, in, len, c->rx_text);
		return 0;
	}
	/* In pieces (a message longer than WS_RX_BUFFER_BYTES, or in several
	 * frames): held only while it arrives, grown to what the frame
	 * announces, so an idle session keeps no receive buffer. */
	size_t need = c->rxlen + len + remaining;
	if (need > c->rxcap) {
		/* Doubling: with permessage-deflate, remaining counts compressed
		 * bytes and the inflated pieces keep outgrowing it. */
		size_t cap = c->rxcap * 2 > need ? c->rxcap * 2 : need;
		size_t max = (size_t)r->cfg->max_frame_bytes;
		c->rxcap = cap < max ? cap : need;
		c->rx = xrealloc(c->rx, c->rxcap);
	}
	memcpy(c->rx + c->rxlen, in, len);
	c->rxlen += len;
	if (last) {
		edges_upstream(r, c->s, c->rx, c->rxlen, c->rx_text);
		free(c->rx);
		c->rx = NULL;
		c->rxcap = c->rxlen = 0;
	}
	return 0;
}

/* The frame type of a queued message: the router's --message-type, except
 * that a text-mode router sends a message that is not valid UTF-8 as a
 * binary frame (RFC 6455 5.6: a text frame's payload is UTF-8; a client
 * would fail the connection), and counts it (text_as_binary). */
static unsigned message_opcode(struct router *r, const struct outmsg *m)
{
	if (!r->cfg->text)
		return WSFRAME_BINARY;
	if (wsframe_utf8_valid(m->data + LWS_PRE, m->len))
		return WSFRAME_TEXT;
	r->text_as_binary++;
	return WSFRAME_BINARY;
}

/* Writes the session's oldest queued messages: as many as fit in one
 * WS_WRITE_BATCH_BYTES write, framed here (wsframe_header), so one send()
 * carries many messages. A single message goes through lws_write as usual.
 * Only while no Close went out or came in (client_writeable checks).
 * Returns 0, or -1 if the connection failed. */
static int write_batch(struct router *r, struct lws *wsi, struct session *s, int64_t now_wall)
{
	struct outmsg *m = sessions_peek(s);
	struct conn *c = lws_wsi_user(wsi);
	/* With permessage-deflate lws compresses in lws_write: no raw batch. */
	if (!m->next || m->len > WS_WRITE_BATCH_BYTES / 2 || c->deflate) {
		int n = lws_write(wsi, m->data + LWS_PRE, m->len,
				  message_opcode(r, m) == WSFRAME_TEXT ? LWS_WRITE_TEXT
								       : LWS_WRITE_BINARY);
		if (n < (int)m->len)
			return -1;
		if (m->timestamp_ms >= 0)
			metrics_observe(r->delay, (double)(now_wall - m->timestamp_ms) / 1000.0);
		sessions_pop_free(s);
		return 0;
	}
	size_t len = 0;
	unsigned char *out = r->wbuf + LWS_PRE;
	while ((m = sessions_peek(s)) &&
	       len + WSFRAME_MAX_HEADER + m->len <= WS_WRITE_BATCH_BYTES) {
		len += wsframe_header(out + len, message_opcode(r, m), m->len);
		memcpy(out + len, m->data + LWS_PRE, m->len);
		len += m->len;
		if (m->timestamp_ms >= 0)
			metrics_observe(r->delay, (double)(now_wall - m->timestamp_ms) / 1000.0);
		sessions_pop_free(s);
	}
	int n = lws_write(wsi, out, len, LWS_WRITE_RAW);
	return n < (int)len ? -1 : 0;
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

static int client_writeable(struct router *r, struct lws *wsi, struct conn *c)
{
	if (c->ka_hangup)
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
	struct session *s = c->s;
	int64_t now_wall = now_wall_ms();
	for (int i = 0; i < WRITES_PER_CALLBACK && sessions_peek(s); i++) {
		if (write_batch(r, wsi, s, now_wall) < 0)
			return -1;
		/* lws may still be sending a compressed message in fragments
		 * (it calls back when done): one message per callback. */
		if (c->deflate || lws_send_pipe_choked(wsi))
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
	ka_unlink(c);
	lws_sul_cancel(&c->hangup);
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
			bool deflate = c->deflate;
			memset(c, 0, sizeof *c);
			c->pmd = pmd;
			c->deflate = deflate;
		}
		c->wsi = wsi;
		recvhook_watch(&c->rxh, lws_get_socket_fd(wsi), client_unmasked, c);
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
			ka_unlink(c);
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
