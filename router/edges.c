/* edges: see edges.h. The protocol is in common/PROTOCOL.md. */
#include "edges.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pins.h"
#include "resolve.h"
#include "router_int.h"
#include "stages.h"
#include "util.h"
#include "wire.h"

/* Each record's value gets one reference-counted buffer that every session
 * of the key queues and ws.c writes from (recbuf.h): a value of
 * RECBUF_REF_MIN bytes or more points into the link message itself, which
 * the router then keeps (loopchan_keep) for as long as recbuf.h's rule says;
 * a shorter one is copied. */
static void on_deliver(struct router *r, struct link *l, const struct wire_msg *m, const void *buf,
		       size_t len)
{
	const char *lo = buf, *hi = lo + len;
	struct wire_record rec;
	struct recbuf_frame *frame = NULL; /* made for the first value pointed to */
	for (uint32_t i = 0; i < m->u.deliver.count; i++) {
		wire_deliver_get(m, i, &rec);
		if (stages_want(rec.offset))
			stages_mark('R', rec.partition, rec.offset, stages_now_us(), rec.nsids);
		if (routes_owner(&r->routes, rec.partition) != l->index) {
			r->fenced += rec.nsids;
			continue;
		}
		struct recbuf *body = NULL; /* made for the first session that queues it */
		for (uint32_t j = 0; j < rec.nsids; j++) {
			struct session *s = sessions_get(&r->sessions, wire_record_sid(&rec, j));
			if (!s || s->edge != l->index) {
				r->fenced++;
				continue;
			}
			bool was_empty = s->qhead == NULL;
			char hdr[48];
			size_t hlen = 0;
			if (s->framed)
				hlen = (size_t)snprintf(hdr, sizeof hdr, "d %u %lld\n",
							rec.partition, (long long)rec.offset);
			if (!body && rec.value.len >= RECBUF_REF_MIN && rec.value.ptr >= lo &&
			    rec.value.ptr + rec.value.len <= hi) { /* it is in buf */
				if (!frame)
					frame = recbuf_frame_new();
				body = recbuf_in_frame(frame, rec.value.ptr, rec.value.len);
			} else if (!body && rec.value.len) {
				body = recbuf_new(rec.value.ptr, rec.value.len);
			}
			switch (sessions_offer_prefixed(&r->sessions, s, rec.offset,
							rec.timestamp_ms, hdr, hlen, body,
							(size_t)r->cfg->queue_bytes)) {
			case SESSION_QUEUED:
				r->delivered++;
				r->delivered_bytes += rec.value.len;
				if (was_empty)
					router_flush_later(r, s->conn);
				if (s->qbytes >= (size_t)r->cfg->queue_bytes / 2)
					pins_throttle(r, s);
				break;
			case SESSION_DUPLICATE:
				r->duplicates++;
				break;
			case SESSION_NOT_LIVE:
				r->not_live++;
				break;
			case SESSION_OVERFLOW:
				r->slow_closed++;
				pins_close(r, s, CLOSE_SLOW_CLIENT,
					   "slow client: queue limit reached; reconnect to resume");
				break;
			}
		}
		recbuf_unref(body);
	}
	if (frame) {
		void *kept = loopchan_keep(l->conn);
		recbuf_frame_close(frame, kept, kept ? loopchan_kept_size(kept) : 0,
				   loopchan_kept_free);
	}
}

/* kws.v1: tells the client where its session stands (README, "Positions and
 * resume"): first after its first SUB_ACK, and again whenever a re-pin could
 * not replay everything. */
static void send_status(struct router *r, struct session *s, const struct wire_sub_ack *a)
{
	if (!s->framed || (s->status_sent && a->complete))
		return;
	const char *state;
	int64_t offset;
	if (s->status_sent || s->foreign_position || (s->presented && !a->complete)) {
		state = "incomplete";
		offset = s->presented && !s->status_sent && !s->foreign_position
				 ? s->presented_offset
				 : s->next_offset;
	} else if (s->presented) {
		state = "complete";
		offset = s->presented_offset;
	} else {
		state = "live";
		offset = a->start_offset;
	}
	char line[80];
	int n = snprintf(line, sizeof line, "s %s %u %lld\n", state, s->partition,
			 (long long)offset);
	bool was_empty = s->qhead == NULL;
	sessions_push(&r->sessions, s, line, (size_t)n);
	s->status_sent = true;
	if (!a->complete || s->foreign_position)
		r->resumes_incomplete++;
	if (was_empty)
		router_flush_later(r, s->conn);
}

static void on_sub_ack(struct router *r, struct link *l, const struct wire_sub_ack *a)
{
	struct session *s = sessions_get(&r->sessions, a->sid);
	if (!s || s->edge != l->index || s->state != SESSION_SUBSCRIBING)
		return;
	if (a->status == WIRE_SUB_OK) {
		sessions_acked(s, a->start_offset);
		send_status(r, s, a);
	} else {
		/* Not the owner (any more): wait for the routes to settle. */
		sessions_unpin(s);
		r->retry_waiting = true;
	}
}

static void on_up_err(struct router *r, const struct wire_up_err *e)
{
	struct session *s = sessions_get(&r->sessions, e->sid);
	if (!s)
		return;
	char reason[110];
	if (e->code == WIRE_UP_NO_TOPIC) {
		/* Said plainly: a client that retries would only fail again. */
		pins_close(r, s, CLOSE_UPSTREAM_NO_TOPIC,
			   "upstream: inbound topic does not exist; do not retry");
		return;
	}
	snprintf(reason, sizeof reason, "upstream: %.*s", (int)e->reason.len, e->reason.ptr);
	pins_close(r, s,
		   e->code == WIRE_UP_DISABLED ? CLOSE_UPSTREAM_DISABLED : CLOSE_UPSTREAM_FAILED,
		   reason);
}

/* The matching, authentic EDGE_HELLO: the link is up with the edge's
 * assignment (its partitions from an earlier connection pass on first). */
static void on_edge_hello(struct router *r, struct link *l, const struct wire_edge_hello *h)
{
	l->upstream = h->upstream;
	routes_edge_down(&r->routes, l->index);
	log_info("edge %s is %s: %u of %u partitions, epoch %llu", l->url, l->peer.peer_id,
		 h->assign.count, h->assign.partition_count, (unsigned long long)h->assign.epoch);
	routes_assign(&r->routes, l->index, h->assign.epoch, h->assign.partition_count,
		      h->assign.partitions, h->assign.count, now_mono_ms());
}

/* An application message from the edge, in numbering, decoded from
 * buf[0..len) (the link's last loopchan_recv). */
static void on_app_msg(struct router *r, struct link *l, const struct wire_msg *m, const void *buf,
		       size_t len)
{
	switch (m->type) {
	case WIRE_ASSIGN:
		if (routes_assign(&r->routes, l->index, m->u.assign.epoch,
				  m->u.assign.partition_count, m->u.assign.partitions,
				  m->u.assign.count, now_mono_ms()) < 0)
			log_warn("edge %s: stale assignment epoch %llu ignored", l->url,
				 (unsigned long long)m->u.assign.epoch);
		break;
	case WIRE_DELIVER:
		on_deliver(r, l, m, buf, len);
		break;
	case WIRE_SUB_ACK:
		on_sub_ack(r, l, &m->u.sub_ack);
		break;
	case WIRE_UP_ERR:
		on_up_err(r, &m->u.up_err);
		break;
	default:
		log_warn("edge %s: unexpected message type %u", l->url, m->type);
		break;
	}
}

static void on_edge_msg(struct router *r, struct link *l, const void *buf, size_t len)
{
	struct wire_msg m;
	switch (peer_recv(&l->peer, buf, len, &m)) {
	case PEER_NONE:
		return;
	case PEER_RESYNC: /* a new HELLO went out */
	case PEER_CLOSED: /* failed authentication, other version */
		routes_edge_down(&r->routes, l->index);
		return;
	case PEER_HELLO:
		on_edge_hello(r, l, &m.u.edge_hello);
		break;
	case PEER_MSG:
		on_app_msg(r, l, &m, buf, len);
		break;
	}
	wire_msg_free(&m);
}

/* Takes what the edge sent, up to a batch; asks for another turn if more is
 * waiting, so clients get their turn in between. */
static void drain_link(struct router *r, struct link *l)
{
	for (int i = 0; i < 1024; i++) {
		const void *buf;
		size_t len;
		bool connected;
		int rc = link_recv(l, &buf, &len, &connected);
		if (connected)
			continue;
		if (rc < 0) {
			routes_edge_down(&r->routes, l->index);
			return;
		}
		if (rc == 0)
			return;
		on_edge_msg(r, l, buf, len);
	}
	router_wake(r);
}

void edges_wake(void *arg)
{
	router_wake(arg);
}

/* Adds a link to the edge at url, in a free slot if there is one. Returns
 * its index, or -1 (logged). */
static int add_link(struct router *r, const char *url, bool from_dns)
{
	int i = 0;
	while (i < r->nlinks && !r->links[i].retired)
		i++;
	if (i == r->nlinks) {
		r->links = xrealloc(r->links, (size_t)(r->nlinks + 1) * sizeof *r->links);
		memset(&r->links[i], 0, sizeof *r->links);
		r->nlinks++;
		if (routes_add_edge(&r->routes) != i)
			abort(); /* links and routes are indexed alike */
	}
	char err[256];
	if (link_open(&r->links[i], &r->loop, i, url, r->cfg->router_id, &r->secret, edges_wake, r,
		      err, sizeof err) < 0) {
		log_error("edge %s", err);
		link_close(&r->links[i]);
		r->links[i].retired = true;
		return -1;
	}
	r->links[i].from_dns = from_dns;
	log_info("edge %s added%s", url, from_dns ? " (found in DNS)" : "");
	return i;
}

/* Drops the link of an edge that vanished: its partitions pass on. */
static void retire_link(struct router *r, int i)
{
	struct link *l = &r->links[i];
	log_info("edge %s removed (gone from DNS)", l->url);
	routes_edge_down(&r->routes, l->index);
	link_close(l);
	l->index = i;
	l->retired = true;
}

/* Applies a new DNS answer: links to new edges, drops vanished ones. */
static void apply_dns(struct router *r)
{
	char **urls;
	size_t n;
	if (!r->resolver || !resolver_take(r->resolver, &urls, &n))
		return;
	for (int i = 0; i < r->nlinks; i++) {
		struct link *l = &r->links[i];
		if (l->retired || !l->from_dns)
			continue;
		bool found = false;
		for (size_t k = 0; k < n && !found; k++)
			found = strcmp(urls[k], l->url) == 0;
		if (!found)
			retire_link(r, i);
	}
	for (size_t k = 0; k < n; k++) {
		bool known = false;
		for (int i = 0; i < r->nlinks && !known; i++)
			known = !r->links[i].retired && strcmp(r->links[i].url, urls[k]) == 0;
		if (!known)
			add_link(r, urls[k], true);
		free(urls[k]);
	}
	free(urls);
	router_wake(r); /* new links may have news */
}

void edges_drain(struct router *r)
{
	apply_dns(r);
	for (int i = 0; i < r->nlinks; i++)
		if (!r->links[i].retired)
			drain_link(r, &r->links[i]);
}

void edges_tick(struct router *r, int64_t now_ms)
{
	for (int i = 0; linkauth_enabled(&r->secret) && i < r->nlinks; i++) {
		struct link *l = &r->links[i];
		if (!l->retired && l->connected && !l->peer.have_nonce &&
		    now_ms - l->connected_ms > 10000) {
			log_error("edge %s sent no CHALLENGE within 10 s: hanging up", l->url);
			loopchan_close(l->conn);
			l->connected_ms = now_ms;
		}
	}
}

int edges_start(struct router *r)
{
	const struct router_config *cfg = r->cfg;
	for (size_t i = 0; i < cfg->edges.count; i++)
		if (add_link(r, cfg->edges.items[i], false) < 0)
			return -1;
	if (*cfg->edges_dns) {
		char host[256], port[16];
		if (resolver_split(cfg->edges_dns, host, sizeof host, port, sizeof port) < 0) {
			log_error("--edges-dns: '%s' is not host:port", cfg->edges_dns);
			return -1;
		}
		r->resolver = resolver_start(host, port, (int)cfg->dns_interval_ms, edges_wake, r);
	}
	return 0;
}

void edges_stop(struct router *r)
{
	resolver_stop(r->resolver);
	r->resolver = NULL;
	for (int i = 0; i < r->nlinks; i++)
		if (!r->links[i].retired)
			link_close(&r->links[i]);
}

void edges_upstream(struct router *r, struct session *s, const void *data, size_t len, bool text)
{
	if (s->state != SESSION_SUBSCRIBING && s->state != SESSION_LIVE) {
		pins_close(r, s, 1013, "no edge owns this client's partition right now; reconnect");
		return;
	}
	struct link *l = &r->links[s->edge];
	if (!l->upstream) {
		pins_close(r, s, CLOSE_UPSTREAM_DISABLED,
			   "upstream messages are disabled (no inbound topic)");
		return;
	}
	struct wire_up u = {
		.sid = s->sid,
		.partition = s->partition,
		.key = { s->id, s->id_len },
		.data = { (const char *)data, (uint32_t)len },
		.text = text,
	};
	peer_send(&l->peer, &(struct wire_msg){ .type = WIRE_UP, .u.up = u });
	r->upstream++;
	r->upstream_bytes += len;
}
