/* ws: see ws.h. */
#include "ws.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "door.h"
#include "edges.h"
#include "handshake.h"
#include "pins.h"
#include "router_int.h"
#include "util.h"
#include "wsframe.h"

#define WRITES_PER_CALLBACK 16

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
	log_debug("session %llu for %s in partition %d",
		  (unsigned long long)c->s->sid, c->s->id, p);
	free(id);
	pins_try(r, c->s);
	return 0;
}

static int client_receive(struct router *r, struct lws *wsi, struct conn *c, const void *in,
			  size_t len)
{
	ka_touch(r, c);
	if (!c->s || c->close_code)
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
	if (!c->rx)
		c->rx = xmalloc((size_t)r->cfg->max_frame_bytes);
	memcpy(c->rx + c->rxlen, in, len);
	c->rxlen += len;
	if (lws_is_final_fragment(wsi) && remaining == 0)
		edges_upstream(r, c->s, c->rx, c->rxlen, c->rx_text);
	return 0;
}

/* Writes the session's oldest queued messages: as many as fit in one
 * WS_WRITE_BATCH_BYTES write, framed here (wsframe_header), so one send()
 * carries many messages. A single message goes through lws_write as usual.
 * Returns 0, or -1 if the connection failed. */
static int write_batch(struct router *r, struct lws *wsi, struct session *s, int64_t now_wall)
{
	unsigned op = r->cfg->text ? WSFRAME_TEXT : WSFRAME_BINARY;
	struct outmsg *m = session_peek(s);
	if (!m->next || m->len > WS_WRITE_BATCH_BYTES / 2) {
		int n = lws_write(wsi, m->data + LWS_PRE, m->len,
				  r->cfg->text ? LWS_WRITE_TEXT : LWS_WRITE_BINARY);
		if (n < (int)m->len)
			return -1;
		if (m->timestamp_ms >= 0)
			metrics_observe(r->delay, (double)(now_wall - m->timestamp_ms) / 1000.0);
		session_pop_free(s);
		return 0;
	}
	size_t len = 0;
	unsigned char *out = r->wbuf + LWS_PRE;
	while ((m = session_peek(s)) && len + WSFRAME_MAX_HEADER + m->len <= WS_WRITE_BATCH_BYTES) {
		len += wsframe_header(out + len, op, m->len);
		memcpy(out + len, m->data + LWS_PRE, m->len);
		len += m->len;
		if (m->timestamp_ms >= 0)
			metrics_observe(r->delay, (double)(now_wall - m->timestamp_ms) / 1000.0);
		session_pop_free(s);
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
	if (!c->s)
		return 0;
	struct session *s = c->s;
	int64_t now_wall = now_wall_ms();
	for (int i = 0; i < WRITES_PER_CALLBACK && session_peek(s); i++) {
		if (write_batch(r, wsi, s, now_wall) < 0)
			return -1;
		if (lws_send_pipe_choked(wsi))
			break;
	}
	if (s->throttled) {
		s->last_write_ms = now_mono_ms();
		if (s->qbytes <= (size_t)r->cfg->queue_bytes / 8)
			pins_unthrottle(r, s);
	}
	if (session_peek(s))
		lws_callback_on_writable(wsi);
	return 0;
}

static void client_closed(struct router *r, struct conn *c)
{
	ka_unlink(c);
	if (c->s) {
		pins_forget(r, c->s);
		c->s = NULL;
	}
	free(c->rx);
	c->rx = NULL;
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
		memset(c, 0, sizeof *c);
		c->wsi = wsi;
		if (client_established(r, wsi, c) < 0)
			return -1;
		ka_touch(r, c);
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
	{ "kws", cb_client, sizeof(struct conn), 0, 0, NULL, 0 },
	/* kws.v1: positions and resume (README). */
	{ "kws.v1", cb_client, sizeof(struct conn), 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};
