/* link: see link.h. */
#include "link.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

const char *link_state_name(enum link_state s)
{
	switch (s) {
	case LINK_DOWN: return "down";
	case LINK_HELLO_SENT: return "hello-sent";
	case LINK_UP: return "up";
	}
	return "?";
}

int link_open(struct link *l, int index, const char *url, chan_wake_fn wake, void *arg,
	      char *err, size_t errlen)
{
	memset(l, 0, sizeof *l);
	l->index = index;
	l->url = xstrdup(url);
	l->wake = wake;
	l->wake_arg = arg;
	wire_buf_init(&l->out);
	/* Start the HELLO numbers somewhere no earlier run of this router
	 * used, so an edge never mistakes a new HELLO for an old one. */
	l->hello_seq = (random_u64() >> 16) << 16;
	l->dialer = chan_dialer_new(url, wake, arg, err, errlen);
	return l->dialer ? 0 : -1;
}

void link_close(struct link *l)
{
	chan_free(l->ch);
	chan_dialer_free(l->dialer);
	wire_buf_free(&l->out);
	free(l->url);
	free(l->edge_id);
	memset(l, 0, sizeof *l);
}

uint64_t link_next_seq(struct link *l)
{
	return ++l->tx_seq;
}

int link_send(struct link *l)
{
	if (!l->ch)
		return -1;
	if (chan_send(l->ch, l->out.data, l->out.len) < 0) {
		log_warn("edge %s: send failed: %s", l->url, chan_error(l->ch));
		return -1;
	}
	return 0;
}

int link_hello(struct link *l, const char *router_id, const struct linkauth_secret *secret)
{
	struct wire_hello h = { .router_id = { router_id, (uint32_t)strlen(router_id) } };
	uint8_t proof[LINKAUTH_MAC];
	if (linkauth_enabled(secret)) {
		linkauth_nonce(l->router_nonce);
		linkauth_router_proof(secret, l->edge_nonce, l->router_nonce, router_id,
				      strlen(router_id), proof);
		h.router_nonce = (struct wire_bytes){ (const char *)l->router_nonce, LINKAUTH_NONCE };
		h.auth = (struct wire_bytes){ (const char *)proof, LINKAUTH_MAC };
	}
	l->tx_seq = ++l->hello_seq;
	l->rx_expect = 0;
	wire_buf_reset(&l->out);
	wire_enc_hello(&l->out, l->tx_seq, &h);
	l->state = LINK_HELLO_SENT;
	return link_send(l);
}

int link_recv(struct link *l, const void **buf, size_t *len, bool *connected)
{
	*connected = false;
	if (!l->ch) {
		nng_stream *s = chan_dialer_take(l->dialer);
		if (!s)
			return 0;
		l->ch = chan_new(s, WIRE_MAX_MSG_BYTES, LINK_MAX_QUEUE, l->wake, l->wake_arg);
		l->connects++;
		l->have_nonce = false;
		l->connected_ms = now_mono_ms();
		*connected = true;
		return 0;
	}
	int rc = chan_recv(l->ch, buf, len);
	if (rc < 0) {
		log_warn("edge %s: connection ended: %s", l->url, chan_error(l->ch));
		chan_free(l->ch);
		l->ch = NULL;
		l->state = LINK_DOWN;
		chan_dialer_redial(l->dialer);
		return -1;
	}
	if (rc > 0)
		l->received++;
	return rc;
}

bool link_edge_authentic(const struct link *l, const struct linkauth_secret *secret,
			 const struct wire_edge_hello *h)
{
	if (!linkauth_enabled(secret))
		return true;
	if (!l->have_nonce)
		return false;
	uint8_t want[LINKAUTH_MAC];
	linkauth_edge_proof(secret, l->router_nonce, l->edge_nonce, h->edge_id.ptr,
			    h->edge_id.len, h->hello_seq, want);
	return linkauth_check((const uint8_t *)h->auth.ptr, h->auth.len, want);
}

bool link_check_seq(struct link *l, const struct wire_msg *m)
{
	if (m->type == WIRE_EDGE_HELLO) {
		l->rx_expect = m->seq + 1;
		return true;
	}
	if (m->seq != l->rx_expect) {
		l->gaps++;
		return false;
	}
	l->rx_expect++;
	return true;
}
