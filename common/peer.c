/* peer: see peer.h. The protocol is in PROTOCOL.md ("Numbering",
 * "Authentication", "Errors and what a receiver does"). */
#include "peer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *peer_state_name(enum peer_state s)
{
	switch (s) {
	case PEER_DOWN:
		return "down";
	case PEER_HELLO_SENT:
		return "hello-sent";
	case PEER_UP:
		return "up";
	case PEER_WAIT_HELLO:
		return "wait-hello";
	case PEER_DESYNCED:
		return "desynced";
	}
	return "?";
}

void peer_init(struct peer *p, enum peer_role role, const struct linkauth_secret *secret,
	       const char *self_id, const char *name)
{
	memset(p, 0, sizeof *p);
	p->role = role;
	p->secret = secret;
	p->self_id = self_id;
	snprintf(p->name, sizeof p->name, "%s", name);
	wire_buf_init(&p->out);
	wire_buf_init(&p->batch);
	if (role == PEER_ROUTER)
		p->hello_seq = (random_u64() >> 16) << 16;
}

void peer_free(struct peer *p)
{
	wire_buf_free(&p->out);
	wire_buf_free(&p->batch);
	free(p->peer_id);
	p->peer_id = NULL;
	p->io.send = NULL;
}

static int chan_io_send(void *arg, const void *buf, size_t len)
{
	return chan_send(arg, buf, len) < 0 ? -EPIPE : 0;
}

static int chan_io_send_take(void *arg, void *buf, size_t len)
{
	return chan_send_take(arg, buf, len) < 0 ? -EPIPE : 0;
}

static void chan_io_close(void *arg)
{
	chan_close(arg);
}

static void chan_io_set_recv_max(void *arg, size_t max)
{
	chan_set_recv_max(arg, max);
}

static const char *chan_io_address(void *arg)
{
	return chan_peer(arg);
}

int peer_attach_chan(struct peer *p, struct chan *ch)
{
	struct peer_io io = { .send = chan_io_send,
			      .send_take = chan_io_send_take,
			      .close = chan_io_close,
			      .set_recv_max = chan_io_set_recv_max,
			      .address = chan_io_address,
			      .arg = ch };
	return peer_attach(p, &io);
}

int peer_attach(struct peer *p, const struct peer_io *io)
{
	p->io = *io;
	p->tx_seq = 0;
	p->rx_expect = 0;
	p->hellos = 0;
	p->have_nonce = false;
	p->batch_open = false;
	if (p->role == PEER_EDGE) {
		/* The first message, outside the numbering: our nonce for this
		 * connection, which the router's proof must cover. */
		p->state = PEER_WAIT_HELLO;
		linkauth_nonce(p->edge_nonce);
		return peer_send(p, &(struct wire_msg){ .type = WIRE_CHALLENGE });
	}
	p->state = PEER_DOWN;
	/* With a secret, HELLO waits for the edge's CHALLENGE. */
	if (!linkauth_enabled(p->secret))
		return peer_send(p, &(struct wire_msg){ .type = WIRE_HELLO });
	return 0;
}

void peer_detach(struct peer *p)
{
	p->io.send = NULL;
	p->state = PEER_DOWN;
	p->batch_open = false;
}

void peer_close(struct peer *p)
{
	if (p->io.send)
		p->io.close(p->io.arg);
}

static const char *address(const struct peer *p)
{
	return p->io.send && p->io.address ? p->io.address(p->io.arg) : "?";
}

static int transmit(struct peer *p, const struct wire_buf *b)
{
	if (!p->io.send)
		return -ENOTCONN;
	int rc = p->io.send(p->io.arg, b->data, b->len);
	if (rc < 0)
		p->st.send_failed++;
	return rc;
}

int peer_flush(struct peer *p)
{
	if (!p->batch_open)
		return 0;
	p->batch_open = false;
	wire_enc_deliver_end(&p->batch, ++p->tx_seq);
	if (!p->io.send_take)
		return transmit(p, &p->batch);
	size_t len = p->batch.len;
	void *buf = wire_buf_take(&p->batch); /* the batch goes uncopied */
	int rc = p->io.send_take(p->io.arg, buf, len);
	if (rc < 0) {
		free(buf);
		p->st.send_failed++;
	}
	return rc;
}

int peer_deliver(struct peer *p, const struct wire_record *rec, const uint64_t *sids, uint32_t n,
		 size_t batch_bytes)
{
	if (!p->io.send || !p->hellos)
		return -ENOTCONN;
	if (!p->batch_open) {
		wire_buf_reset(&p->batch);
		wire_enc_deliver_begin(&p->batch);
		p->batch_open = true;
	}
	wire_enc_deliver_record(&p->batch, rec, sids, n);
	if (p->batch.len >= batch_bytes)
		return peer_flush(p);
	return 0;
}

static struct wire_bytes id_bytes(const char *id)
{
	return (struct wire_bytes){ id ? id : "", id ? (uint32_t)strlen(id) : 0 };
}

/* Router: a HELLO of a new number, with our proof over the edge's nonce. */
static void enc_hello(struct peer *p)
{
	struct wire_hello h = { .router_id = id_bytes(p->self_id) };
	uint8_t proof[LINKAUTH_MAC];
	if (linkauth_enabled(p->secret)) {
		linkauth_nonce(p->router_nonce);
		linkauth_router_proof(p->secret, p->edge_nonce, p->router_nonce, h.router_id.ptr,
				      h.router_id.len, proof);
		h.router_nonce =
			(struct wire_bytes){ (const char *)p->router_nonce, LINKAUTH_NONCE };
		h.auth = (struct wire_bytes){ (const char *)proof, LINKAUTH_MAC };
	}
	p->tx_seq = ++p->hello_seq;
	p->rx_expect = 0;
	p->state = PEER_HELLO_SENT;
	wire_enc_hello(&p->out, p->tx_seq, &h);
}

/* Edge: EDGE_HELLO answering the latest HELLO; our numbering restarts. */
static void enc_edge_hello(struct peer *p, const struct wire_edge_hello *in)
{
	struct wire_edge_hello h = *in;
	h.edge_id = id_bytes(p->self_id);
	h.hello_seq = p->hello_seq;
	h.auth = (struct wire_bytes){ NULL, 0 };
	uint8_t proof[LINKAUTH_MAC];
	if (linkauth_enabled(p->secret)) {
		linkauth_edge_proof(p->secret, p->router_nonce, p->edge_nonce, h.edge_id.ptr,
				    h.edge_id.len, p->hello_seq, proof);
		h.auth = (struct wire_bytes){ (const char *)proof, LINKAUTH_MAC };
	}
	p->tx_seq = 1;
	wire_enc_edge_hello(&p->out, p->tx_seq, &h);
}

int peer_send(struct peer *p, const struct wire_msg *m)
{
	if (!p->io.send)
		return -ENOTCONN;
	if (m->type == WIRE_DELIVER || m->type < WIRE_HELLO || m->type > WIRE_CHALLENGE)
		return -EINVAL;
	int rc = peer_flush(p);
	if (rc < 0)
		return rc;
	struct wire_buf *b = &p->out;
	wire_buf_reset(b);
	switch ((enum wire_type)m->type) {
	case WIRE_HELLO:
		enc_hello(p);
		break;
	case WIRE_EDGE_HELLO:
		enc_edge_hello(p, &m->u.edge_hello);
		break;
	case WIRE_CHALLENGE: {
		struct wire_challenge c = { .nonce = { (const char *)p->edge_nonce,
						       LINKAUTH_NONCE } };
		wire_enc_challenge(b, 0, &c);
		break;
	}
	case WIRE_ASSIGN:
		wire_enc_assign(b, ++p->tx_seq, &m->u.assign);
		break;
	case WIRE_SUB:
		wire_enc_sub(b, ++p->tx_seq, &m->u.sub);
		break;
	case WIRE_UNSUB:
		wire_enc_unsub(b, ++p->tx_seq, &m->u.unsub);
		break;
	case WIRE_SUB_ACK:
		wire_enc_sub_ack(b, ++p->tx_seq, &m->u.sub_ack);
		break;
	case WIRE_UP:
		wire_enc_up(b, ++p->tx_seq, &m->u.up);
		break;
	case WIRE_UP_ERR:
		wire_enc_up_err(b, ++p->tx_seq, &m->u.up_err);
		break;
	case WIRE_FLOW:
		wire_enc_flow(b, ++p->tx_seq, &m->u.flow);
		break;
	case WIRE_RESYNC:
		wire_enc_resync(b, ++p->tx_seq, &m->u.resync);
		break;
	case WIRE_DELIVER:
		return -EINVAL;
	}
	return transmit(p, b);
}

/* Numbering lost. Router: restart with a new HELLO. Edge: RESYNC, once until
 * the next HELLO; nothing before the first HELLO. */
static enum peer_event resync(struct peer *p)
{
	if (p->role == PEER_ROUTER) {
		p->st.resyncs++;
		p->state = PEER_DOWN;
		peer_send(p, &(struct wire_msg){ .type = WIRE_HELLO });
		return PEER_RESYNC;
	}
	if (p->state != PEER_UP)
		return PEER_NONE;
	p->st.resyncs++;
	p->state = PEER_DESYNCED;
	static const char reason[] = "gap or malformed message";
	peer_send(p, &(struct wire_msg){ .type = WIRE_RESYNC,
					 .u.resync.reason = { reason, sizeof reason - 1 } });
	return PEER_RESYNC;
}

/* Takes the numbered message m: true if it is the one expected (the
 * expectation advances), false on a gap (counted and logged). */
static bool in_sequence(struct peer *p, const struct wire_msg *m)
{
	if (m->seq == p->rx_expect) {
		p->rx_expect++;
		return true;
	}
	p->st.gaps++;
	log_warn("%s: gap in numbering (got %llu, expected %llu); %s", p->name,
		 (unsigned long long)m->seq, (unsigned long long)p->rx_expect,
		 p->role == PEER_ROUTER ? "restarting the link" : "asking for a resync");
	return false;
}

static void auth_failed(struct peer *p)
{
	p->st.auth_failures++;
	if (p->role == PEER_ROUTER)
		log_error("%s failed authentication (--link-secret): hanging up", p->name);
	else
		log_error("router at %s failed authentication (--link-secret): disconnecting it",
			  address(p));
	peer_close(p);
	p->state = PEER_DOWN;
}

/* Router: the EDGE_HELLO m answers our latest HELLO; with a secret, is its
 * proof right for this connection? */
static bool edge_authentic(const struct peer *p, const struct wire_edge_hello *h)
{
	if (!linkauth_enabled(p->secret))
		return true;
	if (!p->have_nonce)
		return false;
	uint8_t want[LINKAUTH_MAC];
	linkauth_edge_proof(p->secret, p->router_nonce, p->edge_nonce, h->edge_id.ptr,
			    h->edge_id.len, h->hello_seq, want);
	return linkauth_check((const uint8_t *)h->auth.ptr, h->auth.len, want);
}

/* Edge: with a secret, a HELLO must carry the router's proof over our nonce. */
static bool router_authentic(const struct peer *p, const struct wire_hello *h)
{
	if (!linkauth_enabled(p->secret))
		return true;
	if (h->router_nonce.len != LINKAUTH_NONCE)
		return false;
	uint8_t want[LINKAUTH_MAC];
	linkauth_router_proof(p->secret, p->edge_nonce, (const uint8_t *)h->router_nonce.ptr,
			      h->router_id.ptr, h->router_id.len, want);
	return linkauth_check((const uint8_t *)h->auth.ptr, h->auth.len, want);
}

static enum peer_event router_recv(struct peer *p, struct wire_msg *m)
{
	switch (m->type) {
	case WIRE_CHALLENGE:
		/* Outside the numbering; only the first one per connection counts. */
		if (!p->have_nonce) {
			memcpy(p->edge_nonce, m->u.challenge.nonce.ptr, LINKAUTH_NONCE);
			p->have_nonce = true;
			if (linkauth_enabled(p->secret))
				peer_send(p, &(struct wire_msg){ .type = WIRE_HELLO });
		}
		break;
	case WIRE_EDGE_HELLO: {
		const struct wire_edge_hello *h = &m->u.edge_hello;
		if (p->state != PEER_HELLO_SENT || h->hello_seq != p->hello_seq)
			break; /* a reply to an earlier HELLO */
		if (!edge_authentic(p, h)) {
			auth_failed(p);
			wire_msg_free(m);
			return PEER_CLOSED;
		}
		p->rx_expect = m->seq + 1;
		p->state = PEER_UP;
		free(p->peer_id);
		p->peer_id = xstrndup(h->edge_id.ptr, h->edge_id.len);
		return PEER_HELLO;
	}
	default:
		if (p->state != PEER_UP)
			break; /* waiting for our EDGE_HELLO: ignore everything */
		if (!in_sequence(p, m)) {
			wire_msg_free(m);
			return resync(p);
		}
		if (m->type == WIRE_RESYNC) {
			log_warn("%s asked to resync: %.*s", p->name, (int)m->u.resync.reason.len,
				 m->u.resync.reason.ptr);
			wire_msg_free(m);
			return resync(p);
		}
		return PEER_MSG;
	}
	wire_msg_free(m);
	return PEER_NONE;
}

static enum peer_event edge_recv(struct peer *p, struct wire_msg *m)
{
	if (m->type == WIRE_HELLO) {
		const struct wire_hello *h = &m->u.hello;
		if (!router_authentic(p, h)) {
			auth_failed(p);
			wire_msg_free(m);
			return PEER_CLOSED;
		}
		if (h->router_nonce.len == LINKAUTH_NONCE)
			memcpy(p->router_nonce, h->router_nonce.ptr, LINKAUTH_NONCE);
		free(p->peer_id);
		p->peer_id = xstrndup(h->router_id.ptr, h->router_id.len);
		if (!p->hellos && p->io.set_recv_max)
			/* Authenticated: the whole protocol's frames from now on. */
			p->io.set_recv_max(p->io.arg, WIRE_MAX_MSG_BYTES);
		p->hellos++;
		p->state = PEER_UP;
		p->batch_open = false;
		p->rx_expect = m->seq + 1;
		p->hello_seq = m->seq;
		return PEER_HELLO;
	}
	if (p->state != PEER_UP) {
		wire_msg_free(m);
		return PEER_NONE; /* waiting for HELLO */
	}
	if (!in_sequence(p, m)) {
		wire_msg_free(m);
		return resync(p);
	}
	return PEER_MSG;
}

enum peer_event peer_recv(struct peer *p, const void *buf, size_t len, struct wire_msg *m)
{
	int rc = wire_decode(m, buf, len);
	if (rc == WIRE_EUNKNOWN) {
		/* A newer peer's message: it still takes part in the numbering. */
		p->st.unknown++;
		log_debug("%s: unknown message type %u", p->name, m->type);
		if (p->state != PEER_UP || in_sequence(p, m))
			return PEER_NONE;
		return resync(p);
	}
	if (rc == WIRE_EVERSION) {
		p->st.malformed++;
		if (p->role == PEER_EDGE) {
			/* Ignore the link until a HELLO of our version. */
			if (!p->warned)
				log_error("%s speaks another protocol version; ignoring it",
					  p->name);
			p->warned = true;
			return PEER_NONE;
		}
		/* Not usable: hang up; the dialer retries with back-off, so a
		 * later deploy with matching versions is picked up. */
		log_error("%s speaks another protocol version; not using it", p->name);
		peer_close(p);
		p->state = PEER_DOWN;
		return PEER_CLOSED;
	}
	if (rc < 0) {
		/* Its content is lost: a gap (even while the router waits for
		 * its EDGE_HELLO: this may have been it). */
		p->st.malformed++;
		if (!p->warned)
			log_warn("%s: dropped message: %s; %s (logged once per link)", p->name,
				 wire_strerror(rc),
				 p->role == PEER_ROUTER ? "restarting the link"
							: "asking for a resync");
		p->warned = true;
		return resync(p);
	}
	return p->role == PEER_ROUTER ? router_recv(p, m) : edge_recv(p, m);
}
