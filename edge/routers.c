/* routers: see routers.h. The protocol is in common/PROTOCOL.md. */
#include "routers.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* One connected router: a chan over the TCP connection it dialed. */
struct router_link {
	uint32_t id;       /* link number; subscriptions are keyed by it */
	struct chan *ch;
	int64_t accepted_ms; /* when it connected: HELLO is due before the deadline */
	bool hello;        /* it said HELLO on this connection */
	bool desynced;     /* a gap was seen: ignore all but HELLO */
	bool warned;       /* a bad message was logged on this link */
	uint64_t tx_seq;   /* last number sent */
	uint64_t hello_seq; /* seq of its latest HELLO, echoed in EDGE_HELLO */
	uint8_t nonce[LINKAUTH_NONCE];        /* ours, sent in CHALLENGE */
	uint8_t router_nonce[LINKAUTH_NONCE]; /* from its latest HELLO */
	uint64_t rx_expect;
	char *router_id;
	struct wire_buf batch; /* DELIVER being built, when batch_open */
	bool batch_open;
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
	struct wire_buf out;
	/* the current assignment, told in every EDGE_HELLO */
	uint64_t epoch;
	uint32_t partition_count;
	uint32_t *owned;
	uint32_t nowned;
	struct routers_stats st;
};

static struct router_link *find_link(const struct routers *r, uint32_t id)
{
	for (size_t i = 0; i < r->nlinks; i++)
		if (r->links[i]->id == id)
			return r->links[i];
	return NULL;
}

/* Queues buf[0..len) for a router. A router too slow to take it is
 * disconnected (the queue is bounded); it reconnects and resubscribes. */
static void send_raw(struct routers *r, struct router_link *l, const void *buf, size_t len)
{
	if (chan_send(l->ch, buf, len) < 0)
		r->st.dropped_send++;
}

static void link_new(struct routers *r, nng_stream *s)
{
	if (r->nlinks >= ROUTERS_MAX_LINKS || r->npreauth >= ROUTERS_MAX_PREAUTH) {
		r->st.refused++;
		if (r->st.refused == 1 || r->st.refused % 1000 == 0)
			log_warn("refused a router connection: %zu links, %zu without HELLO "
				 "(limits %d, %d; %llu refused so far)", r->nlinks, r->npreauth,
				 ROUTERS_MAX_LINKS, ROUTERS_MAX_PREAUTH,
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
	wire_buf_init(&l->batch);
	r->links = xrealloc(r->links, (r->nlinks + 1) * sizeof *r->links);
	r->links[r->nlinks++] = l;
	r->npreauth++;
	log_info("router connected from %s (link %u)", chan_peer(l->ch), l->id);
	/* The first message, outside the numbering: our nonce for this
	 * connection, which the router's proof must cover (PROTOCOL.md). */
	linkauth_nonce(l->nonce);
	struct wire_challenge c = { .nonce = { (const char *)l->nonce, LINKAUTH_NONCE } };
	wire_buf_reset(&r->out);
	wire_enc_challenge(&r->out, 0, &c);
	send_raw(r, l, r->out.data, r->out.len);
}

static void link_destroy(struct routers *r, size_t i)
{
	struct router_link *l = r->links[i];
	size_t n = subs_remove_pipe(r->subs, l->id);
	if (!l->hello) {
		r->npreauth--;
		r->st.preauth_closed++;
	}
	log_info("router %s (link %u) left: %s; dropped %zu subscriptions",
		 l->router_id ? l->router_id : "?", l->id, chan_error(l->ch), n);
	chan_free(l->ch);
	wire_buf_free(&l->batch);
	free(l->router_id);
	free(l);
	r->links[i] = r->links[--r->nlinks];
}

static void flush_link(struct routers *r, struct router_link *l)
{
	if (!l->batch_open)
		return;
	wire_enc_deliver_end(&l->batch, ++l->tx_seq);
	send_raw(r, l, l->batch.data, l->batch.len);
	l->batch_open = false;
}

void routers_flush(struct routers *r)
{
	for (size_t i = 0; i < r->nlinks; i++)
		flush_link(r, r->links[i]);
}

int routers_deliver(struct routers *r, uint32_t link, const struct wire_record *rec,
		    const uint64_t *sids, uint32_t n)
{
	struct router_link *l = find_link(r, link);
	if (!l || !l->hello)
		return -1;
	if (!l->batch_open) {
		wire_buf_reset(&l->batch);
		wire_enc_deliver_begin(&l->batch);
		l->batch_open = true;
	}
	wire_enc_deliver_record(&l->batch, rec, sids, n);
	r->st.delivered += n;
	if (l->batch.len >= r->cfg.batch_bytes)
		flush_link(r, l);
	return 0;
}

static void send_edge_hello(struct routers *r, struct router_link *l)
{
	struct wire_edge_hello h = {
		.edge_id = { r->cfg.edge_id, (uint32_t)strlen(r->cfg.edge_id) },
		.upstream = r->cfg.upstream,
		.hello_seq = l->hello_seq,
		.assign = { .epoch = r->epoch, .partition_count = r->partition_count,
			    .count = r->nowned, .partitions = r->owned },
	};
	uint8_t proof[LINKAUTH_MAC];
	if (linkauth_enabled(r->cfg.secret)) {
		linkauth_edge_proof(r->cfg.secret, l->router_nonce, l->nonce, r->cfg.edge_id,
				    strlen(r->cfg.edge_id), l->hello_seq, proof);
		h.auth = (struct wire_bytes){ (const char *)proof, LINKAUTH_MAC };
	}
	l->tx_seq = 1;
	wire_buf_reset(&r->out);
	wire_enc_edge_hello(&r->out, l->tx_seq, &h);
	send_raw(r, l, r->out.data, r->out.len);
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
	struct wire_assignment a = { .epoch = epoch, .partition_count = partition_count,
				     .count = count, .partitions = r->owned };
	routers_flush(r);
	for (size_t i = 0; i < r->nlinks; i++) {
		struct router_link *l = r->links[i];
		if (!l->hello)
			continue;
		wire_buf_reset(&r->out);
		wire_enc_assign(&r->out, ++l->tx_seq, &a);
		send_raw(r, l, r->out.data, r->out.len);
	}
	log_info("assignment epoch %llu: %u of %u partitions", (unsigned long long)epoch, count,
		 partition_count);
}

void routers_sub_ack(struct routers *r, uint32_t link, uint64_t sid, uint32_t status,
		     int64_t start, bool complete)
{
	struct router_link *l = find_link(r, link);
	if (!l)
		return;
	struct wire_sub_ack a = { .sid = sid, .status = status, .start_offset = start,
				  .complete = complete };
	flush_link(r, l); /* keep order: records already batched come first */
	wire_buf_reset(&r->out);
	wire_enc_sub_ack(&r->out, ++l->tx_seq, &a);
	send_raw(r, l, r->out.data, r->out.len);
}

void routers_up_error(struct routers *r, uint32_t link, uint64_t sid, uint32_t code,
		      const char *reason)
{
	struct router_link *l = find_link(r, link);
	if (!l || !l->hello)
		return;
	struct wire_up_err ue = { .sid = sid, .code = code,
				  .reason = { reason, (uint32_t)strlen(reason) } };
	wire_buf_reset(&r->out);
	wire_enc_up_err(&r->out, ++l->tx_seq, &ue);
	send_raw(r, l, r->out.data, r->out.len);
}

/* With a secret, a HELLO must carry the router's proof over our nonce. */
static bool router_authentic(struct routers *r, struct router_link *l,
			     const struct wire_hello *h)
{
	if (!linkauth_enabled(r->cfg.secret))
		return true;
	if (h->router_nonce.len != LINKAUTH_NONCE)
		return false;
	uint8_t want[LINKAUTH_MAC];
	linkauth_router_proof(r->cfg.secret, l->nonce, (const uint8_t *)h->router_nonce.ptr,
			      h->router_id.ptr, h->router_id.len, want);
	return linkauth_check((const uint8_t *)h->auth.ptr, h->auth.len, want);
}

static void on_router_msg(struct routers *r, struct router_link *l, const void *buf, size_t len)
{
	struct wire_msg m;
	int rc = wire_decode(&m, buf, len);
	uint32_t pipe = l->id;
	if (rc == -WIRE_EUNKNOWN) {
		/* A newer router's message: it still takes part in the numbering. */
		r->st.unknown++;
		log_debug("router link %u: unknown message type %u", pipe, m.type);
		if (!l->hello || l->desynced)
			return;
		if (m.seq == l->rx_expect) {
			l->rx_expect++;
			return;
		}
		r->st.gaps++;
		goto out_resync;
	}
	if (rc == -WIRE_EVERSION) {
		/* Another protocol version: ignore the pipe until a HELLO of ours. */
		r->st.malformed++;
		if (!l->warned)
			log_error("router link %u speaks another protocol version; ignoring it", pipe);
		l->warned = true;
		return;
	}
	if (rc < 0) {
		r->st.malformed++;
		if (!l->warned)
			log_warn("router link %u: dropped message: %s (logged once per link)", pipe,
				 wire_strerror(rc));
		l->warned = true;
		goto out_resync;
	}
	if (m.type == WIRE_HELLO && !router_authentic(r, l, &m.u.hello)) {
		r->st.auth_failures++;
		log_error("router at %s failed authentication (--link-secret): disconnecting it",
			  chan_peer(l->ch));
		chan_close(l->ch);
		goto out_free;
	}
	if (m.type == WIRE_HELLO) {
		size_t n = subs_remove_pipe(r->subs, pipe);
		if (m.u.hello.router_nonce.len == LINKAUTH_NONCE)
			memcpy(l->router_nonce, m.u.hello.router_nonce.ptr, LINKAUTH_NONCE);
		free(l->router_id);
		l->router_id = xstrndup(m.u.hello.router_id.ptr, m.u.hello.router_id.len);
		if (!l->hello) {
			/* Authenticated: the whole protocol's frames from now on. */
			r->npreauth--;
			chan_set_recv_max(l->ch, WIRE_MAX_MSG_BYTES);
		}
		l->hello = true;
		l->desynced = false;
		l->batch_open = false;
		l->rx_expect = m.seq + 1;
		l->hello_seq = m.seq;
		log_info("router %s said hello (link %u)%s", l->router_id, pipe,
			 n ? ", its earlier subscriptions dropped" : "");
		send_edge_hello(r, l);
		goto out_free;
	}
	if (!l->hello || l->desynced)
		goto out_free; /* waiting for HELLO */
	if (m.seq != l->rx_expect) {
		r->st.gaps++;
		log_warn("router %s: gap in numbering (got %llu, expected %llu)", l->router_id,
			 (unsigned long long)m.seq, (unsigned long long)l->rx_expect);
		wire_msg_free(&m);
		goto out_resync;
	}
	l->rx_expect++;
	switch (m.type) {
	case WIRE_SUB:
		r->h.on_sub(r->h.arg, pipe, &m.u.sub);
		break;
	case WIRE_UNSUB:
		subs_remove(r->subs, pipe, m.u.unsub.sid);
		break;
	case WIRE_UP:
		r->h.on_up(r->h.arg, pipe, &m.u.up);
		break;
	case WIRE_FLOW: {
		struct sub *x = subs_get(r->subs, pipe, m.u.flow.sid);
		if (x)
			x->paused = m.u.flow.paused;
		break;
	}
	default:
		log_warn("router %s: unexpected message type %u", l->router_id, m.type);
		break;
	}
out_free:
	wire_msg_free(&m);
	return;
out_resync:
	if (l->hello && !l->desynced) {
		struct wire_resync rs = { .reason = { "gap or malformed message", 24 } };
		l->desynced = true;
		subs_remove_pipe(r->subs, pipe);
		flush_link(r, l);
		wire_buf_reset(&r->out);
		wire_enc_resync(&r->out, ++l->tx_seq, &rs);
		send_raw(r, l, r->out.data, r->out.len);
	}
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

void routers_tick(struct routers *r)
{
	if (!r->npreauth)
		return;
	int64_t now = now_mono_ms();
	for (size_t i = 0; i < r->nlinks;) {
		struct router_link *l = r->links[i];
		if (!l->hello && now - l->accepted_ms >= ROUTERS_HELLO_DEADLINE_MS) {
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
	wire_buf_init(&r->out);
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
	wire_buf_free(&r->out);
	free(r);
}

void routers_get_stats(const struct routers *r, struct routers_stats *st)
{
	*st = r->st;
	st->links = r->nlinks;
	st->preauth = r->npreauth;
}

void routers_link_info(const struct routers *r, size_t i, struct routers_link_info *out)
{
	const struct router_link *l = r->links[i];
	out->router_id = l->router_id;
	out->address = chan_peer(l->ch);
	out->hello = l->hello;
}
