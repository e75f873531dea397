/* pins: see pins.h. */
#include "pins.h"

#include <stdio.h>

#include "router_int.h"
#include "util.h"
#include "wire.h"

static void send_unsub(struct link *l, uint64_t sid)
{
	if (l->peer.state == PEER_UP)
		peer_send(&l->peer, &(struct wire_msg){ .type = WIRE_UNSUB, .u.unsub.sid = sid });
}

void pins_try(struct router *r, struct session *s)
{
	if (s->state != SESSION_WAITING || s->throttled)
		return;
	int owner = routes_owner(&r->routes, s->partition);
	if (owner == ROUTES_NONE)
		return;
	struct link *l = &r->links[owner];
	if (l->peer.state != PEER_UP)
		return;
	sessions_pin(s, owner);
	struct wire_sub sub = {
		.sid = s->sid,
		.partition = s->partition,
		.key = { s->id, s->id_len },
		.from_offset = s->next_offset,
	};
	peer_send(&l->peer, &(struct wire_msg){ .type = WIRE_SUB, .u.sub = sub });
}

void pins_retry_waiting(struct router *r)
{
	size_t b;
	for (struct hnode *n = hmap_iter_first(&r->sessions.by_sid, &b); n;
	     n = hmap_iter_next(&r->sessions.by_sid, n, &b))
		pins_try(r, hmap_entry(n, struct session, by_sid));
}

void pins_close(struct router *r, struct session *s, int code, const char *reason)
{
	struct lws *wsi = s->conn;
	struct conn *c = lws_wsi_user(wsi);
	if (c->close_code)
		return;
	log_info("closing a session of %s with %d: %s", s->id, code, reason);
	c->close_code = code;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	if (s->edge >= 0)
		send_unsub(&r->links[s->edge], s->sid);
	sessions_close(s);
	lws_callback_on_writable(wsi);
}

void pins_forget(struct router *r, struct session *s)
{
	if (s->throttled)
		r->nthrottled--;
	if (s->edge >= 0 && s->state != SESSION_CLOSING)
		send_unsub(&r->links[s->edge], s->sid);
	sessions_delete(&r->sessions, s);
}

void pins_throttle(struct router *r, struct session *s)
{
	if (s->edge >= 0)
		send_unsub(&r->links[s->edge], s->sid);
	sessions_unpin(s);
	s->throttled = true;
	s->last_write_ms = now_mono_ms();
	log_debug("session %llu of %s throttled: %zu bytes queued", (unsigned long long)s->sid,
		  s->id, s->qbytes);
	r->throttles++;
	r->nthrottled++;
}

void pins_unthrottle(struct router *r, struct session *s)
{
	log_debug("session %llu of %s resumes at offset %lld", (unsigned long long)s->sid, s->id,
		  (long long)s->next_offset);
	s->throttled = false;
	r->nthrottled--;
	pins_try(r, s);
}

void pins_close_stalled(struct router *r, int64_t now_ms)
{
	size_t b;
	for (struct hnode *n = hmap_iter_first(&r->sessions.by_sid, &b); n;
	     n = hmap_iter_next(&r->sessions.by_sid, n, &b)) {
		struct session *s = hmap_entry(n, struct session, by_sid);
		if (s->throttled && s->state != SESSION_CLOSING &&
		    now_ms - s->last_write_ms >= r->cfg->stall_timeout_ms) {
			r->slow_closed++;
			pins_close(r, s, CLOSE_SLOW_CLIENT,
				   "slow client: not reading; reconnect to resume");
		}
	}
}

void pins_on_moved(void *arg, uint32_t p, int old, int new)
{
	struct router *r = arg;
	log_info("partition %u: owner %s -> %s", p, old == ROUTES_NONE ? "none" : r->links[old].url,
		 new == ROUTES_NONE ? "none" : r->links[new].url);
	r->moves++;
	for (struct session *s = sessions_in_partition(&r->sessions, p); s; s = s->pnext) {
		if (s->state == SESSION_SUBSCRIBING || s->state == SESSION_LIVE) {
			if (s->edge == new)
				continue;
			send_unsub(&r->links[s->edge], s->sid);
			sessions_unpin(s);
		}
		pins_try(r, s);
		if (s->state == SESSION_SUBSCRIBING)
			r->repins++;
	}
	bool complete = routes_complete(&r->routes);
	if (complete != r->complete) {
		r->complete = complete;
		if (complete)
			log_info("all %u partitions have owners", r->routes.partition_count);
		else
			log_warn("partition %u has no owner", p);
	}
}
