/* edges: see edges.h. The protocol is in common/PROTOCOL.md. */
#include "edges.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pins.h"
#include "resolve.h"
#include "router_int.h"
#include "util.h"
#include "wire.h"

/* The link lost its connection or its numbering: its partitions pass on. */
static void link_reset(struct router *r, struct link *l)
{
	l->state = LINK_DOWN;
	routes_edge_down(&r->routes, l->index);
}

static void link_restart(struct router *r, struct link *l)
{
	link_reset(r, l);
	l->resyncs++;
	link_hello(l, r->cfg->router_id, &r->secret);
}

static void on_deliver(struct router *r, struct link *l, const struct wire_msg *m)
{
	struct wire_record rec;
	for (uint32_t i = 0; i < m->u.deliver.count; i++) {
		wire_deliver_get(m, i, &rec);
		if (routes_owner(&r->routes, rec.partition) != l->index) {
			r->fenced += rec.nsids;
			continue;
		}
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
				hlen = (size_t)snprintf(hdr, sizeof hdr, "d %u %lld\n", rec.partition,
							(long long)rec.offset);
			switch (session_offer_prefixed(&r->sessions, s, rec.offset, rec.timestamp_ms,
						       hdr, hlen,
						       rec.value.ptr, rec.value.len,
						       (size_t)r->cfg->queue_bytes)) {
			case SESSION_QUEUED:
				r->delivered++;
				r->delivered_bytes += rec.value.len;
				if (was_empty)
					lws_callback_on_writable(s->conn);
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
				 ? s->presented_offset : s->next_offset;
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
	session_push(&r->sessions, s, line, (size_t)n);
	s->status_sent = true;
	if (!a->complete || s->foreign_position)
		r->resumes_incomplete++;
	if (was_empty)
		lws_callback_on_writable(s->conn);
}

static void on_sub_ack(struct router *r, struct link *l, const struct wire_sub_ack *a)
{
	struct session *s = sessions_get(&r->sessions, a->sid);
	if (!s || s->edge != l->index || s->state != SESSION_SUBSCRIBING)
		return;
	if (a->status == WIRE_SUB_OK) {
		session_acked(s, a->start_offset);
		send_status(r, s, a);
	} else {
		/* Not the owner (any more): wait for the routes to settle. */
		session_unpin(s);
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

static void on_edge_msg(struct router *r, struct link *l, const void *buf, size_t len)
{
	struct wire_msg m;
	int rc = wire_decode(&m, buf, len);
	if (rc == -WIRE_EUNKNOWN) {
		l->unknown++;
		if (l->state == LINK_UP && !link_check_seq(l, &m))
			link_restart(r, l);
		return;
	}
	if (rc == -WIRE_EVERSION) {
		/* Not usable: hang up; the dialer retries with back-off, so a
		 * later deploy with matching versions is picked up. */
		l->malformed++;
		log_error("edge %s speaks another protocol version; not using it", l->url);
		link_reset(r, l);
		chan_close(l->ch);
		return;
	}
	if (rc < 0) {
		l->malformed++;
		if (!l->warned)
			log_warn("edge %s: dropped message: %s; restarting the link (logged once per link)",
				 l->url, wire_strerror(rc));
		l->warned = true;
		link_restart(r, l);
		return;
	}
	if (m.type == WIRE_CHALLENGE) {
		/* Outside the numbering; only the first one per connection counts. */
		if (!l->have_nonce) {
			memcpy(l->edge_nonce, m.u.challenge.nonce.ptr, LINKAUTH_NONCE);
			l->have_nonce = true;
			if (linkauth_enabled(&r->secret))
				link_hello(l, r->cfg->router_id, &r->secret);
		}
		goto out_free;
	}
	if (m.type == WIRE_EDGE_HELLO) {
		if (l->state != LINK_HELLO_SENT || m.u.edge_hello.hello_seq != l->hello_seq)
			goto out_free; /* a reply to an earlier HELLO */
		if (!link_edge_authentic(l, &r->secret, &m.u.edge_hello)) {
			l->auth_failures++;
			log_error("edge %s failed authentication (--link-secret): hanging up", l->url);
			link_reset(r, l);
			chan_close(l->ch);
			goto out_free;
		}
		link_check_seq(l, &m);
		const struct wire_edge_hello *h = &m.u.edge_hello;
		free(l->edge_id);
		l->edge_id = xstrndup(h->edge_id.ptr, h->edge_id.len);
		l->upstream = h->upstream;
		link_reset(r, l);
		l->state = LINK_UP;
		log_info("edge %s is %s: %u of %u partitions, epoch %llu", l->url, l->edge_id,
			 h->assign.count, h->assign.partition_count,
			 (unsigned long long)h->assign.epoch);
		routes_assign(&r->routes, l->index, h->assign.epoch, h->assign.partition_count,
			      h->assign.partitions, h->assign.count, now_mono_ms());
		goto out_free;
	}
	if (l->state != LINK_UP)
		goto out_free;
	if (!link_check_seq(l, &m)) {
		log_warn("edge %s: gap in numbering; restarting the link", l->url);
		link_restart(r, l);
		goto out_free;
	}
	switch (m.type) {
	case WIRE_ASSIGN:
		if (routes_assign(&r->routes, l->index, m.u.assign.epoch, m.u.assign.partition_count,
				  m.u.assign.partitions, m.u.assign.count, now_mono_ms()) < 0)
			log_warn("edge %s: stale assignment epoch %llu ignored", l->url,
				 (unsigned long long)m.u.assign.epoch);
		break;
	case WIRE_DELIVER:
		on_deliver(r, l, &m);
		break;
	case WIRE_SUB_ACK:
		on_sub_ack(r, l, &m.u.sub_ack);
		break;
	case WIRE_UP_ERR:
		on_up_err(r, &m.u.up_err);
		break;
	case WIRE_RESYNC:
		log_warn("edge %s asked to resync: %.*s", l->url, (int)m.u.resync.reason.len,
			 m.u.resync.reason.ptr);
		link_restart(r, l);
		break;
	default:
		log_warn("edge %s: unexpected message type %u", l->url, m.type);
		break;
	}
out_free:
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
		if (connected) {
			log_info("edge %s: connected (%s)", l->url, chan_peer(l->ch));
			/* With a secret, HELLO waits for the edge's CHALLENGE. */
			if (!linkauth_enabled(&r->secret))
				link_hello(l, r->cfg->router_id, &r->secret);
			continue;
		}
		if (rc < 0) {
			link_reset(r, l);
			return;
		}
		if (rc == 0)
			return;
		on_edge_msg(r, l, buf, len);
	}
	lws_cancel_service(r->ctx);
}

void edges_wake(void *arg)
{
	struct router *r = arg;
	lws_cancel_service(r->ctx);
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
	if (link_open(&r->links[i], i, url, edges_wake, r, err, sizeof err) < 0) {
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
	link_reset(r, l);
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
	lws_cancel_service(r->ctx); /* new links may have news */
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
		if (!l->retired && l->ch && !l->have_nonce && now_ms - l->connected_ms > 10000) {
			log_error("edge %s sent no CHALLENGE within 10 s: hanging up", l->url);
			chan_close(l->ch);
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

void edges_upstream(struct router *r, struct session *s, const void *data, size_t len,
		    bool text)
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
	wire_buf_reset(&l->out);
	wire_enc_up(&l->out, link_next_seq(l), &u);
	link_send(l);
	r->upstream++;
	r->upstream_bytes += len;
}
