/* routers: see routers.h. The protocol is in common/PROTOCOL.md. */
#include "routers.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "peer.h"
#include "util.h"

/* Bound of the send queue to one router (PROTOCOL.md, "Transport"). */
#define ROUTERS_MAX_QUEUE (64u * 1024 * 1024)
/* Until a link has said HELLO (with a link secret: proven it), it may send
 * frames of this size at most (a HELLO is under 300 bytes), must say HELLO
 * within the deadline, and only so many such links are kept (PROTOCOL.md,
 * "Limits"): a peer that connects and waits costs the edge little. */
#define ROUTERS_PREAUTH_MAX_MSG 4096
#define ROUTERS_HELLO_DEADLINE_MS 5000
#define ROUTERS_MAX_PREAUTH 64
/* Links in all; routers are a few tens at most. */
#define ROUTERS_MAX_LINKS 1024
/* A router link's send queue is deep from ROUTERS_DEEP_HIGH bytes until it is
 * back to ROUTERS_DEEP_LOW (routers_backlogged): a quarter of the bound, well
 * before the queue is full and the link closed; the low mark leaves the
 * router a few batches to read while the edge takes more from Kafka. */
#define ROUTERS_DEEP_HIGH (ROUTERS_MAX_QUEUE / 4)
#define ROUTERS_DEEP_LOW (ROUTERS_MAX_QUEUE / 16)

/* One connected router: a chan over the TCP connection it dialed, and the
 * protocol's state on it (common/peer.h). */
struct router_link {
	uint32_t id; /* link number; subscriptions are keyed by it */
	struct chan *ch;
	int64_t accepted_ms; /* when it connected: HELLO is due before the deadline */
	struct peer peer;    /* peer.hellos: it said HELLO on this connection */
	bool deep;           /* its send queue passed ROUTERS_DEEP_HIGH (routers_backlogged) */
};

struct routers {
	struct routers_config cfg;
	struct routers_handler h;
	struct subs *subs;
	struct chan_listener *listener;
	uint32_t next_link_id;
	struct router_link **links;
	size_t nlinks;
	size_t npreauth; /* links that have not said HELLO */
	/* the current assignment, told in every EDGE_HELLO */
	uint64_t epoch;
	uint32_t partition_count;
	uint32_t *owned;
	uint32_t nowned;
	struct routers_stats st;
	struct peer_stats gone; /* of the links that ended */
};

static struct router_link *find_link(const struct routers *r, uint32_t id)
{
	for (size_t i = 0; i < r->nlinks; i++)
		if (r->links[i]->id == id)
			return r->links[i];
	return NULL;
}

static void link_new(struct routers *r, nng_stream *s)
{
	if (r->nlinks >= ROUTERS_MAX_LINKS || r->npreauth >= ROUTERS_MAX_PREAUTH) {
		r->st.refused++;
		if (r->st.refused == 1 || r->st.refused % 1000 == 0)
			log_warn("refused a router connection: %zu links, %zu without HELLO "
				 "(limits %d, %d; %llu refused so far)",
				 r->nlinks, r->npreauth, ROUTERS_MAX_LINKS, ROUTERS_MAX_PREAUTH,
				 (unsigned long long)r->st.refused);
		nng_stream_close(s);
		nng_stream_free(s);
		return;
	}
	struct router_link *l = xcalloc(1, sizeof *l);
	l->id = ++r->next_link_id;
	l->accepted_ms = now_mono_ms();
	l->ch = chan_new_limited(s, WIRE_MAX_MSG_BYTES, ROUTERS_PREAUTH_MAX_MSG, ROUTERS_MAX_QUEUE,
				 r->cfg.wake, r->cfg.wake_arg);
	char name[32];
	snprintf(name, sizeof name, "router link %u", l->id);
	peer_init(&l->peer, PEER_EDGE, r->cfg.secret, r->cfg.edge_id, name);
	r->links = xrealloc(r->links, (r->nlinks + 1) * sizeof *r->links);
	r->links[r->nlinks++] = l;
	r->npreauth++;
	log_info("router connected from %s (link %u)", chan_peer(l->ch), l->id);
	peer_attach_chan(&l->peer, l->ch); /* CHALLENGE */
}

static void add_stats(struct peer_stats *to, const struct peer_stats *st)
{
	to->gaps += st->gaps;
	to->malformed += st->malformed;
	to->unknown += st->unknown;
	to->auth_failures += st->auth_failures;
	to->resyncs += st->resyncs;
	to->send_failed += st->send_failed;
}

static void link_destroy(struct routers *r, size_t i)
{
	struct router_link *l = r->links[i];
	size_t n = subs_remove_pipe(r->subs, l->id);
	if (!l->peer.hellos) {
		r->npreauth--;
		r->st.preauth_closed++;
	}
	log_info("router %s (link %u) left: %s; dropped %zu subscriptions",
		 l->peer.peer_id ? l->peer.peer_id : "?", l->id, chan_error(l->ch), n);
	add_stats(&r->gone, &l->peer.st);
	peer_detach(&l->peer);
	chan_free(l->ch);
	peer_free(&l->peer);
	free(l);
	r->links[i] = r->links[--r->nlinks];
}

void routers_flush(struct routers *r)
{
	for (size_t i = 0; i < r->nlinks; i++)
		peer_flush(&r->links[i]->peer);
}

int routers_deliver(struct routers *r, uint32_t link, const struct wire_record *rec,
		    const uint64_t *sids, uint32_t n)
{
	struct router_link *l = find_link(r, link);
	if (!l || peer_deliver(&l->peer, rec, sids, n, r->cfg.batch_bytes) == -ENOTCONN)
		return -1;
	r->st.delivered += n;
	return 0;
}

void routers_assign(struct routers *r, uint64_t epoch, uint32_t partition_count,
		    const uint32_t *owned, uint32_t count)
{
	r->epoch = epoch;
	r->partition_count = partition_count;
	r->owned = xrealloc(r->owned, (count ? count : 1) * sizeof *r->owned);
	if (count)
		memcpy(r->owned, owned, count * sizeof *owned);
	r->nowned = count;
	struct wire_msg m = { .type = WIRE_ASSIGN,
			      .u.assign = { .epoch = epoch,
					    .partition_count = partition_count,
					    .count = count,
					    .partitions = r->owned } };
	for (size_t i = 0; i < r->nlinks; i++)
		if (r->links[i]->peer.hellos)
			peer_send(&r->links[i]->peer, &m); /* after what was batched */
	log_info("assignment epoch %llu: %u of %u partitions", (unsigned long long)epoch, count,
		 partition_count);
}

void routers_sub_ack(struct routers *r, uint32_t link, uint64_t sid, uint32_t status, int64_t start,
		     bool complete)
{
	struct router_link *l = find_link(r, link);
	if (!l)
		return;
	/* peer_send keeps the order: records already batched come first. */
	peer_send(&l->peer, &(struct wire_msg){ .type = WIRE_SUB_ACK,
						.u.sub_ack = { .sid = sid,
							       .status = status,
							       .start_offset = start,
							       .complete = complete } });
}

void routers_up_error(struct routers *r, uint32_t link, uint64_t sid, uint32_t code,
		      const char *reason)
{
	struct router_link *l = find_link(r, link);
	if (!l || !l->peer.hellos)
		return;
	peer_send(&l->peer,
		  &(struct wire_msg){
			  .type = WIRE_UP_ERR,
			  .u.up_err = { .sid = sid,
					.code = code,
					.reason = { reason, (uint32_t)strlen(reason) } } });
}

/* A HELLO passed: the router starts afresh on this link. Its earlier
 * subscriptions go, and EDGE_HELLO tells it our assignment. */
static void on_hello(struct routers *r, struct router_link *l)
{
	size_t n = subs_remove_pipe(r->subs, l->id);
	if (l->peer.hellos == 1)
		r->npreauth--; /* authenticated */
	log_info("router %s said hello (link %u)%s", l->peer.peer_id, l->id,
		 n ? ", its earlier subscriptions dropped" : "");
	struct wire_msg m = { .type = WIRE_EDGE_HELLO,
			      .u.edge_hello = { .upstream = r->cfg.upstream,
						.assign = { .epoch = r->epoch,
							    .partition_count = r->partition_count,
							    .count = r->nowned,
							    .partitions = r->owned } } };
	peer_send(&l->peer, &m);
}

/* An application message from a router, in numbering. */
static void on_app_msg(struct routers *r, struct router_link *l, const struct wire_msg *m)
{
	switch (m->type) {
	case WIRE_SUB:
		r->h.on_sub(r->h.arg, l->id, &m->u.sub);
		break;
	case WIRE_UNSUB:
		subs_remove(r->subs, l->id, m->u.unsub.sid);
		break;
	case WIRE_UP:
		r->h.on_up(r->h.arg, l->id, &m->u.up);
		break;
	case WIRE_FLOW: {
		struct sub *x = subs_get(r->subs, l->id, m->u.flow.sid);
		if (x)
			x->paused = m->u.flow.paused;
		break;
	}
	default:
		log_warn("router %s: unexpected message type %u", l->peer.peer_id, m->type);
		break;
	}
}

static void on_router_msg(struct routers *r, struct router_link *l, const void *buf, size_t len)
{
	struct wire_msg m;
	switch (peer_recv(&l->peer, buf, len, &m)) {
	case PEER_NONE:
	case PEER_CLOSED: /* failed authentication: the end follows */
		return;
	case PEER_RESYNC: /* RESYNC went out: until HELLO, nothing is served */
		subs_remove_pipe(r->subs, l->id);
		return;
	case PEER_HELLO:
		on_hello(r, l);
		break;
	case PEER_MSG:
		on_app_msg(r, l, &m);
		break;
	}
	wire_msg_free(&m);
}

void routers_poll(struct routers *r)
{
	nng_stream *s;
	while ((s = chan_listener_take(r->listener)))
		link_new(r, s);
	for (size_t i = 0; i < r->nlinks;) {
		struct router_link *l = r->links[i];
		const void *buf;
		size_t len;
		int rc = 0;
		for (int k = 0; k < 4096 && (rc = chan_recv(l->ch, &buf, &len)) > 0; k++)
			on_router_msg(r, l, buf, len);
		if (rc < 0) {
			link_destroy(r, i);
			continue;
		}
		if (rc > 0)
			r->cfg.wake(r->cfg.wake_arg); /* more is waiting: come back after Kafka */
		i++;
	}
	routers_flush(r);
}

/* Whether l's send queue is deep now (ROUTERS_DEEP_HIGH, until it is back to
 * ROUTERS_DEEP_LOW; the loop is woken then); *tx_bytes what it has written
 * in its life. */
static bool link_deep(struct routers *r, struct router_link *l, uint64_t *tx_bytes)
{
	struct chan_stats st;
	chan_get_stats(l->ch, &st);
	if (!l->deep && st.queued_bytes > ROUTERS_DEEP_HIGH) {
		l->deep = true;
		r->st.deep++;
		chan_wake_below(l->ch, ROUTERS_DEEP_LOW);
	} else if (l->deep && st.queued_bytes <= ROUTERS_DEEP_LOW) {
		l->deep = false;
	}
	*tx_bytes = st.tx_bytes;
	return l->deep;
}

bool routers_backlogged(struct routers *r, uint64_t *deep_tx)
{
	bool any = false;
	*deep_tx = 0;
	for (size_t i = 0; i < r->nlinks; i++) {
		uint64_t tx;
		if (link_deep(r, r->links[i], &tx)) {
			*deep_tx += tx;
			any = true;
		}
	}
	return any;
}

bool routers_link_deep(struct routers *r, uint32_t link)
{
	struct router_link *l = find_link(r, link);
	uint64_t tx;
	return l && link_deep(r, l, &tx);
}

void routers_tick(struct routers *r)
{
	if (!r->npreauth)
		return;
	int64_t now = now_mono_ms();
	for (size_t i = 0; i < r->nlinks;) {
		struct router_link *l = r->links[i];
		if (!l->peer.hellos && now - l->accepted_ms >= ROUTERS_HELLO_DEADLINE_MS) {
			r->st.hello_timeouts++;
			log_warn("link %u from %s said no HELLO within %d ms: closing it", l->id,
				 chan_peer(l->ch), ROUTERS_HELLO_DEADLINE_MS);
			link_destroy(r, i);
			continue;
		}
		i++;
	}
}

struct routers *routers_new(const struct routers_config *cfg, struct subs *subs,
			    const struct routers_handler *h, char *err, size_t errlen)
{
	struct routers *r = xcalloc(1, sizeof *r);
	r->cfg = *cfg;
	r->h = *h;
	r->subs = subs;
	r->listener = chan_listener_new(cfg->listen, cfg->wake, cfg->wake_arg, err, errlen);
	if (!r->listener) {
		routers_free(r);
		return NULL;
	}
	return r;
}

void routers_free(struct routers *r)
{
	if (!r)
		return;
	chan_listener_free(r->listener);
	while (r->nlinks)
		link_destroy(r, r->nlinks - 1);
	free(r->links);
	free(r->owned);
	free(r);
}

void routers_get_stats(const struct routers *r, struct routers_stats *st)
{
	*st = r->st;
	struct peer_stats ps = r->gone;
	for (size_t i = 0; i < r->nlinks; i++)
		add_stats(&ps, &r->links[i]->peer.st);
	st->malformed = ps.malformed;
	st->gaps = ps.gaps;
	st->unknown = ps.unknown;
	st->auth_failures = ps.auth_failures;
	st->dropped_send = ps.send_failed;
	st->links = r->nlinks;
	st->preauth = r->npreauth;
}

void routers_link_info(const struct routers *r, size_t i, struct routers_link_info *out)
{
	const struct router_link *l = r->links[i];
	out->router_id = l->peer.peer_id;
	out->address = chan_peer(l->ch);
	out->hello = l->peer.hellos > 0;
}
