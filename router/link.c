/* link: see link.h. */
#include "link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "wire.h"

int link_open(struct link *l, int index, const char *url, const char *router_id,
	      const struct linkauth_secret *secret, chan_wake_fn wake, void *arg, char *err,
	      size_t errlen)
{
	memset(l, 0, sizeof *l);
	l->index = index;
	l->url = xstrdup(url);
	l->wake = wake;
	l->wake_arg = arg;
	char name[140];
	snprintf(name, sizeof name, "edge %s", url);
	peer_init(&l->peer, PEER_ROUTER, secret, router_id, name);
	l->dialer = chan_dialer_new(url, wake, arg, err, errlen);
	return l->dialer ? 0 : -1;
}

void link_close(struct link *l)
{
	peer_free(&l->peer);
	chan_free(l->ch);
	chan_dialer_free(l->dialer);
	free(l->url);
	memset(l, 0, sizeof *l);
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
		l->connected_ms = now_mono_ms();
		*connected = true;
		log_info("edge %s: connected (%s)", l->url, chan_peer(l->ch));
		peer_attach_chan(&l->peer, l->ch);
		return 0;
	}
	int rc = chan_recv(l->ch, buf, len);
	if (rc < 0) {
		log_warn("edge %s: connection ended: %s", l->url, chan_error(l->ch));
		peer_detach(&l->peer);
		chan_free(l->ch);
		l->ch = NULL;
		chan_dialer_redial(l->dialer);
		return -1;
	}
	if (rc > 0)
		l->received++;
	return rc;
}
