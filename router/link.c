/* link: see link.h. */
#include "link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wire.h"

/* The peer's transport: the link's loopchan. */
static int io_send(void *arg, const void *buf, size_t len)
{
	return loopchan_send(arg, buf, len) < 0 ? -EPIPE : 0;
}

static int io_send_take(void *arg, void *buf, size_t len)
{
	return loopchan_send_take(arg, buf, len) < 0 ? -EPIPE : 0;
}

static void io_close(void *arg)
{
	loopchan_close(arg);
}

static void io_set_recv_max(void *arg, size_t max)
{
	(void)arg; /* the edge sends the router no more than the wire allows */
	(void)max;
}

static const char *io_address(void *arg)
{
	return loopchan_peer(arg);
}

int link_open(struct link *l, uv_loop_t *loop, int index, const char *url, const char *router_id,
	      const struct linkauth_secret *secret, loopchan_news_fn news, void *arg, char *err,
	      size_t errlen)
{
	memset(l, 0, sizeof *l);
	l->index = index;
	l->url = xstrdup(url);
	char name[140];
	snprintf(name, sizeof name, "edge %s", url);
	peer_init(&l->peer, PEER_ROUTER, secret, router_id, name);
	l->conn =
		loopchan_new(loop, url, WIRE_MAX_MSG_BYTES, LINK_MAX_QUEUE, news, arg, err, errlen);
	return l->conn ? 0 : -1;
}

void link_close(struct link *l)
{
	peer_free(&l->peer);
	loopchan_free(l->conn);
	free(l->url);
	memset(l, 0, sizeof *l);
}

int link_recv(struct link *l, const void **buf, size_t *len, bool *connected)
{
	*connected = false;
	if (loopchan_connected(l->conn)) {
		l->connected = true;
		l->connects++;
		l->connected_ms = now_mono_ms();
		*connected = true;
		log_info("edge %s: connected (%s)", l->url, loopchan_peer(l->conn));
		struct peer_io io = {
			.send = io_send,
			.send_take = io_send_take,
			.close = io_close,
			.set_recv_max = io_set_recv_max,
			.address = io_address,
			.arg = l->conn,
		};
		peer_attach(&l->peer, &io);
		return 0;
	}
	int rc = loopchan_recv(l->conn, buf, len);
	if (rc < 0) {
		log_warn("edge %s: connection ended: %s", l->url, loopchan_error(l->conn));
		peer_detach(&l->peer);
		l->connected = false;
		loopchan_redial(l->conn);
		return -1;
	}
	if (rc > 0)
		l->received++;
	return rc;
}
