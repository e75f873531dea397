/* link: see link.h. */
#include "link.h"

#include <stdlib.h>
#include <string.h>

#include <nng/protocol/pair1/pair.h>

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

static void on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct link *l = arg;
	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_store(&l->pipe_now, p.id);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_compare_exchange_strong(&l->pipe_now, &(uint32_t){ p.id }, 0);
	l->wake(l->wake_arg);
}

int link_open(struct link *l, int index, const char *url, void (*wake)(void *), void *arg)
{
	int rv;
	memset(l, 0, sizeof *l);
	l->index = index;
	l->url = xstrdup(url);
	l->wake = wake;
	l->wake_arg = arg;
	l->recv_fd = -1;
	wire_buf_init(&l->out);
	if ((rv = nng_pair1_open(&l->sock)) != 0 ||
	    (rv = nng_socket_set_size(l->sock, NNG_OPT_RECVMAXSZ, WIRE_MAX_MSG_BYTES)) != 0 ||
	    (rv = nng_socket_set_int(l->sock, NNG_OPT_SENDBUF, 1024)) != 0 ||
	    (rv = nng_socket_set_int(l->sock, NNG_OPT_RECVBUF, 1024)) != 0 ||
	    (rv = nng_socket_set_ms(l->sock, NNG_OPT_RECONNMINT, 100)) != 0 ||
	    (rv = nng_socket_set_ms(l->sock, NNG_OPT_RECONNMAXT, 2000)) != 0 ||
	    (rv = nng_pipe_notify(l->sock, NNG_PIPE_EV_ADD_POST, on_pipe, l)) != 0 ||
	    (rv = nng_pipe_notify(l->sock, NNG_PIPE_EV_REM_POST, on_pipe, l)) != 0 ||
	    (rv = nng_socket_get_int(l->sock, NNG_OPT_RECVFD, &l->recv_fd)) != 0) {
		log_error("edge %s: nng socket: %s", url, nng_strerror(rv));
		return -1;
	}
	if ((rv = nng_dial(l->sock, url, &l->dialer, NNG_FLAG_NONBLOCK)) != 0) {
		log_error("edge %s: cannot dial: %s", url, nng_strerror(rv));
		return -1;
	}
	return 0;
}

void link_close(struct link *l)
{
	if (l->url)
		nng_close(l->sock);
	wire_buf_free(&l->out);
	free(l->url);
	free(l->edge_id);
	l->url = NULL;
	l->edge_id = NULL;
}

uint64_t link_next_seq(struct link *l)
{
	return ++l->tx_seq;
}

int link_send(struct link *l)
{
	nng_msg *m;
	int rv = nng_msg_alloc(&m, l->out.len);
	if (rv == 0) {
		memcpy(nng_msg_body(m), l->out.data, l->out.len);
		rv = nng_sendmsg(l->sock, m, NNG_FLAG_NONBLOCK);
		if (rv != 0)
			nng_msg_free(m);
	}
	if (rv != 0) {
		l->send_failed++;
		log_warn("edge %s: send failed (%s); restarting the link", l->url, nng_strerror(rv));
		l->state = LINK_DOWN;
		l->pipe = 0; /* the loop sees pipe_now != pipe and says HELLO again */
		return -1;
	}
	l->sent++;
	return 0;
}

int link_hello(struct link *l, const char *router_id)
{
	struct wire_hello h = { .router_id = { router_id, (uint32_t)strlen(router_id) } };
	l->tx_seq = 1;
	l->rx_expect = 0;
	wire_buf_reset(&l->out);
	wire_enc_hello(&l->out, l->tx_seq, &h);
	l->state = LINK_HELLO_SENT;
	return link_send(l);
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
