/* chan: see chan.h. Locking: c->mu guards the queues and the flags; nng's
 * send/recv calls are made without it held. */
#include "chan.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "util.h"

/* Receiving: a frame is read straight into its own allocation (a struct frame
 * of its exact length), which the owner may keep (chan_keep) instead of
 * copying out of it. What a read brings past the frame being filled lands in
 * a spill buffer, from which the next frames' headers and beginnings are
 * copied: CHAN_READ_CHUNK when no frame is being filled (the next header is
 * not known yet; small frames come many to a read), else only
 * CHAN_READ_TAIL. So at most 16 KiB of a large frame is copied, and in a
 * steady stream of large frames (each read ends a frame and catches the
 * start of the next) at most 4 KiB. */
#define CHAN_READ_CHUNK (16 * 1024)
#define CHAN_READ_TAIL (4 * 1024)
/* Sending: a queued message of at least CHAN_ZC_MIN bytes (its 4-byte header
 * included) is written from its own memory, one iov entry each; shorter ones
 * are copied side by side into tbuf (CHAN_WRITE_CHUNK) and written as one
 * entry. One write has at most CHAN_IOV entries (nng's limit is 8) and
 * starts no new entry past CHAN_WRITE_MAX bytes. */
#define CHAN_WRITE_CHUNK (64 * 1024)
#define CHAN_ZC_MIN (8 * 1024)
#define CHAN_IOV 8
#define CHAN_WRITE_MAX (256 * 1024)

struct chan {
	nng_stream *s;
	nng_aio *rx_aio, *tx_aio;
	pthread_mutex_t mu;
	size_t max_msg, max_queue;
	size_t recv_max; /* largest frame accepted now (<= max_msg) */
	chan_wake_fn wake;
	void *arg;
	char peer[64];

	/* receive side: rd is touched only by the rx callback (and by
	 * chan_recv when it restarts reading, when no read is pending) */
	struct frame_reader rd;
	struct frame *inq, **inq_tail;
	size_t inq_bytes;
	bool rx_paused;
	bool signalled; /* woke the owner; cleared when chan_recv finds none */
	struct frame *taken;

	/* send side: the write under way sends tiov[ti..tn); tmsg[i] is the
	 * message entry i is written from (freed once written), NULL for tbuf */
	struct frame *outq, **outq_tail;
	size_t out_bytes;
	char *tbuf;
	nng_iov tiov[CHAN_IOV];
	struct frame *tmsg[CHAN_IOV];
	unsigned tn, ti;
	bool tx_busy;
	bool below_set; /* chan_wake_below: wake once queued <= below */
	size_t below;

	bool closed;
	char error[96];
	struct chan_stats st;
};

static void set_closed(struct chan *c, const char *why)
{
	if (!c->closed) {
		c->closed = true;
		snprintf(c->error, sizeof c->error, "%s", why);
	}
}

/* Arms a read: into the rest of the frame being filled, then a little of
 * the spill; or into the spill alone. Called without the lock. */
static void start_read(struct chan *c)
{
	nng_iov iov[2];
	unsigned n = 0;
	if (c->rd.cur) {
		iov[n++] = (nng_iov){ .iov_buf = c->rd.cur->data + c->rd.cur_have,
				      .iov_len = c->rd.cur->len - c->rd.cur_have };
		iov[n++] = (nng_iov){ .iov_buf = c->rd.spill, .iov_len = CHAN_READ_TAIL };
	} else {
		iov[n++] = (nng_iov){ .iov_buf = c->rd.spill + c->rd.spill_len,
				      .iov_len = CHAN_READ_CHUNK - c->rd.spill_len };
	}
	nng_aio_set_iov(c->rx_aio, n, iov);
	nng_stream_recv(c->s, c->rx_aio);
}

/* Queues a whole received frame for the owner. Locked. */
static void queue_in(void *arg, struct frame *m)
{
	struct chan *c = arg;
	*c->inq_tail = m;
	c->inq_tail = &m->next;
	c->inq_bytes += m->len;
	c->st.rx_msgs++;
}

static void rx_done(void *arg)
{
	struct chan *c = arg;
	bool wake = false, more = true;
	int rv = nng_aio_result(c->rx_aio);

	pthread_mutex_lock(&c->mu);
	if (rv != 0) {
		set_closed(c, rv == NNG_ECLOSED ? "closed" : nng_strerror(rv));
		more = false;
		goto out_wake;
	}
	size_t got = nng_aio_count(c->rx_aio);
	uint64_t before = c->st.rx_msgs;
	c->st.rx_bytes += got;
	if (c->rd.cur) {
		size_t want = c->rd.cur->len - c->rd.cur_have;
		size_t k = got < want ? got : want;
		frame_read_cur(&c->rd, k, queue_in, c);
		got -= k;
	}
	/* the bytes past the frame went to the spill */
	const char *bad = frame_read_spill(&c->rd, got, c->recv_max, queue_in, c);
	wake = c->st.rx_msgs != before;
	if (bad) {
		set_closed(c, bad);
		more = false;
		goto out_wake;
	}
	if (c->inq_bytes > c->max_queue) {
		c->rx_paused = true; /* the owner restarts reading in chan_recv */
		more = false;
	}
out_wake:
	if (c->closed)
		wake = true;
	if (wake && c->signalled)
		wake = false;
	if (wake)
		c->signalled = true;
	pthread_mutex_unlock(&c->mu);
	if (wake)
		c->wake(c->arg);
	if (more)
		start_read(c);
}

/* Adds p[0..len) to the write being made, as its own entry, or extending
 * the last one when p follows it in memory (a run in tbuf). Locked. */
static void tx_add(struct chan *c, char *p, size_t len, struct frame *owner)
{
	nng_iov *last = c->tn ? &c->tiov[c->tn - 1] : NULL;
	if (last && !owner && !c->tmsg[c->tn - 1] && (char *)last->iov_buf + last->iov_len == p) {
		last->iov_len += len;
		return;
	}
	c->tiov[c->tn] = (nng_iov){ .iov_buf = p, .iov_len = len };
	c->tmsg[c->tn++] = owner;
}

/* Takes queued messages for the next write (at least one): see
 * CHAN_ZC_MIN. A message written from its own memory is one entry (its
 * header and bytes), or two when its bytes were taken (the header, then the
 * bytes); the entry that ends a message owns it (freed once written). Locked.
 * Returns false when there was nothing to send. */
static bool fill_tx(struct chan *c)
{
	size_t tlen = 0, total = 0;
	c->tn = c->ti = 0;
	while (c->outq && total < CHAN_WRITE_MAX) {
		struct frame *m = c->outq;
		size_t need = 4 + (size_t)m->len;
		bool own = need >= CHAN_ZC_MIN, taken = m->body != m->data + 4;
		if (own ? c->tn + (taken ? 2 : 1) > CHAN_IOV
			: c->tn == CHAN_IOV || tlen + need > CHAN_WRITE_CHUNK)
			break; /* no entry left, or tbuf is full */
		c->outq = m->next;
		if (!c->outq)
			c->outq_tail = &c->outq;
		c->out_bytes -= need;
		total += need;
		if (own && taken) {
			tx_add(c, m->data, 4, NULL);
			tx_add(c, m->body, m->len, m);
			continue;
		}
		if (own) {
			tx_add(c, m->data, need, m);
			continue;
		}
		if (!c->tbuf)
			c->tbuf = xmalloc(CHAN_WRITE_CHUNK);
		memcpy(c->tbuf + tlen, m->data, 4);
		memcpy(c->tbuf + tlen + 4, m->body, m->len);
		frame_free(m);
		tx_add(c, c->tbuf + tlen, need, NULL);
		tlen += need;
	}
	return c->tn > 0;
}

static void start_write(struct chan *c)
{
	nng_aio_set_iov(c->tx_aio, c->tn - c->ti, &c->tiov[c->ti]);
	nng_stream_send(c->s, c->tx_aio);
}

/* Bytes of the write under way not yet sent. Locked. */
static size_t tx_pending(const struct chan *c)
{
	size_t n = 0;
	for (unsigned i = c->ti; i < c->tn; i++)
		n += c->tiov[i].iov_len;
	return n;
}

static void tx_done(void *arg)
{
	struct chan *c = arg;
	int rv = nng_aio_result(c->tx_aio);
	bool send = false, wake = false;

	pthread_mutex_lock(&c->mu);
	if (rv != 0) {
		set_closed(c, rv == NNG_ECLOSED ? "closed" : nng_strerror(rv));
		c->tx_busy = false;
		wake = !c->signalled;
		c->signalled = true;
		goto out_unlock;
	}
	size_t n = nng_aio_count(c->tx_aio);
	c->st.tx_bytes += n;
	c->st.tx_writes++;
	while (n > 0 && c->ti < c->tn) {
		nng_iov *v = &c->tiov[c->ti];
		if (n < v->iov_len) { /* a partial write: send the rest */
			v->iov_buf = (char *)v->iov_buf + n;
			v->iov_len -= n;
			break;
		}
		n -= v->iov_len;
		frame_free(c->tmsg[c->ti]);
		c->tmsg[c->ti++] = NULL;
	}
	if (c->ti < c->tn)
		send = true;
	else if (!c->closed && fill_tx(c))
		send = true;
	else
		c->tx_busy = false;
	if (c->below_set && c->out_bytes + tx_pending(c) <= c->below) {
		c->below_set = false;
		wake = true;
	}
out_unlock:
	pthread_mutex_unlock(&c->mu);
	if (wake)
		c->wake(c->arg);
	if (send)
		start_write(c);
}

struct chan *chan_new(nng_stream *s, size_t max_msg, size_t max_queue, chan_wake_fn wake, void *arg)
{
	return chan_new_limited(s, max_msg, max_msg, max_queue, wake, arg);
}

void chan_set_recv_max(struct chan *c, size_t recv_max)
{
	pthread_mutex_lock(&c->mu);
	c->recv_max = recv_max < c->max_msg ? recv_max : c->max_msg;
	pthread_mutex_unlock(&c->mu);
}

struct chan *chan_new_limited(nng_stream *s, size_t max_msg, size_t recv_max, size_t max_queue,
			      chan_wake_fn wake, void *arg)
{
	struct chan *c = xcalloc(1, sizeof *c);
	c->s = s;
	c->max_msg = max_msg;
	c->recv_max = recv_max < max_msg ? recv_max : max_msg;
	c->max_queue = max_queue;
	c->wake = wake;
	c->arg = arg;
	c->inq_tail = &c->inq;
	c->outq_tail = &c->outq;
	c->rd.spill = xmalloc(CHAN_READ_CHUNK);
	pthread_mutex_init(&c->mu, NULL);
	/* nng's TCP streams leave Nagle's algorithm on; with delayed ACKs that
	 * holds small messages back ~40 ms. Writes are already batched here. */
	nng_stream_set_bool(s, NNG_OPT_TCP_NODELAY, true);
	nng_sockaddr sa;
	snprintf(c->peer, sizeof c->peer, "?");
	if (nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) == 0 && sa.s_family == NNG_AF_INET) {
		char ip[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof ip);
		snprintf(c->peer, sizeof c->peer, "%s:%u", ip, ntohs(sa.s_in.sa_port));
	}
	if (nng_aio_alloc(&c->rx_aio, rx_done, c) != 0 ||
	    nng_aio_alloc(&c->tx_aio, tx_done, c) != 0) {
		fprintf(stderr, "fatal: nng_aio_alloc failed\n");
		abort();
	}
	start_read(c);
	return c;
}

void chan_close(struct chan *c)
{
	pthread_mutex_lock(&c->mu);
	set_closed(c, "closed here");
	pthread_mutex_unlock(&c->mu);
	nng_stream_close(c->s);
}

void chan_free(struct chan *c)
{
	if (!c)
		return;
	nng_stream_close(c->s);
	nng_aio_stop(c->rx_aio);
	nng_aio_stop(c->tx_aio);
	nng_aio_free(c->rx_aio);
	nng_aio_free(c->tx_aio);
	nng_stream_free(c->s);
	frame_list_free(c->inq);
	frame_list_free(c->outq);
	for (unsigned i = c->ti; i < c->tn; i++)
		frame_free(c->tmsg[i]);
	free(c->rd.cur);
	free(c->taken);
	free(c->rd.spill);
	free(c->tbuf);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* chan_send and chan_send_take: queues len bytes, copied from buf, or taken
 * (no copy) when take is set (then buf is take). */
static int send_msg(struct chan *c, const void *buf, size_t len, void *take)
{
	bool send = false;
	pthread_mutex_lock(&c->mu);
	if (c->closed)
		goto out_fail;
	const char *refused = frame_refusal(len, c->max_msg, c->out_bytes, c->max_queue,
					    "send queue full: the peer is too slow");
	if (refused) {
		set_closed(c, refused);
		pthread_mutex_unlock(&c->mu);
		nng_stream_close(c->s);
		return -1;
	}
	struct frame *m = frame_out(buf, len, take);
	*c->outq_tail = m;
	c->outq_tail = &m->next;
	c->out_bytes += 4 + len;
	c->st.tx_msgs++;
	if (!c->tx_busy && fill_tx(c)) {
		c->tx_busy = true;
		send = true;
	}
	pthread_mutex_unlock(&c->mu);
	if (send)
		start_write(c);
	return 0;
out_fail:
	pthread_mutex_unlock(&c->mu);
	return -1;
}

int chan_send(struct chan *c, const void *buf, size_t len)
{
	return send_msg(c, buf, len, NULL);
}

int chan_send_take(struct chan *c, void *buf, size_t len)
{
	return send_msg(c, buf, len, buf);
}

int chan_recv(struct chan *c, const void **buf, size_t *len)
{
	int rc;
	bool restart = false;
	free(c->taken);
	c->taken = NULL;
	pthread_mutex_lock(&c->mu);
	struct frame *m = c->inq;
	if (m) {
		c->inq = m->next;
		if (!c->inq)
			c->inq_tail = &c->inq;
		c->inq_bytes -= m->len;
		c->taken = m;
		*buf = m->data;
		*len = m->len;
		rc = 1;
		if (c->rx_paused && !c->closed && c->inq_bytes <= c->max_queue / 2) {
			c->rx_paused = false;
			restart = true;
		}
	} else {
		c->signalled = false;
		rc = c->closed ? -1 : 0;
	}
	pthread_mutex_unlock(&c->mu);
	if (restart)
		start_read(c);
	return rc;
}

void *chan_keep(struct chan *c)
{
	void *m = c->taken;
	c->taken = NULL;
	return m;
}

const void *chan_kept_data(const void *kept)
{
	return ((const struct frame *)kept)->data;
}

size_t chan_kept_size(const void *kept)
{
	return sizeof(struct frame) + ((const struct frame *)kept)->len;
}

void chan_kept_free(void *kept)
{
	free(kept); /* a received message: its bytes are inline */
}

void chan_wake_below(struct chan *c, size_t mark)
{
	pthread_mutex_lock(&c->mu);
	bool now = c->closed || c->out_bytes + tx_pending(c) <= mark;
	c->below_set = !now;
	c->below = mark;
	pthread_mutex_unlock(&c->mu);
	if (now)
		c->wake(c->arg);
}

const char *chan_error(struct chan *c)
{
	pthread_mutex_lock(&c->mu);
	const char *e = c->closed ? c->error : "";
	pthread_mutex_unlock(&c->mu);
	return e;
}

const char *chan_peer(const struct chan *c)
{
	return c->peer;
}

void chan_get_stats(struct chan *c, struct chan_stats *st)
{
	pthread_mutex_lock(&c->mu);
	*st = c->st;
	st->queued_bytes = c->out_bytes + tx_pending(c);
	pthread_mutex_unlock(&c->mu);
}

/* ---- listener -------------------------------------------------------------- */

struct chan_listener {
	nng_stream_listener *l;
	nng_aio *aio;
	pthread_mutex_t mu;
	nng_stream **ready;
	size_t nready, cap;
	chan_wake_fn wake;
	void *arg;
};

static void accept_done(void *arg)
{
	struct chan_listener *l = arg;
	int rv = nng_aio_result(l->aio);
	if (rv == NNG_ECLOSED || rv == NNG_ECANCELED)
		return;
	if (rv == 0) {
		pthread_mutex_lock(&l->mu);
		if (l->nready == l->cap) {
			l->cap = l->cap ? l->cap * 2 : 8;
			l->ready = xrealloc(l->ready, l->cap * sizeof *l->ready);
		}
		l->ready[l->nready++] = nng_aio_get_output(l->aio, 0);
		pthread_mutex_unlock(&l->mu);
		l->wake(l->arg);
	}
	nng_stream_listener_accept(l->l, l->aio);
}

struct chan_listener *chan_listener_new(const char *url, chan_wake_fn wake, void *arg, char *err,
					size_t errlen)
{
	struct chan_listener *l = xcalloc(1, sizeof *l);
	int rv;
	l->wake = wake;
	l->arg = arg;
	pthread_mutex_init(&l->mu, NULL);
	if ((rv = nng_stream_listener_alloc(&l->l, url)) != 0 ||
	    (rv = nng_stream_listener_listen(l->l)) != 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", url, nng_strerror(rv));
		if (l->l)
			nng_stream_listener_free(l->l);
		pthread_mutex_destroy(&l->mu);
		free(l);
		return NULL;
	}
	if (nng_aio_alloc(&l->aio, accept_done, l) != 0) {
		fprintf(stderr, "fatal: nng_aio_alloc failed\n");
		abort();
	}
	nng_stream_listener_accept(l->l, l->aio);
	return l;
}

void chan_listener_free(struct chan_listener *l)
{
	if (!l)
		return;
	nng_stream_listener_close(l->l);
	nng_aio_stop(l->aio);
	nng_aio_free(l->aio);
	for (size_t i = 0; i < l->nready; i++)
		nng_stream_free(l->ready[i]);
	free(l->ready);
	nng_stream_listener_free(l->l);
	pthread_mutex_destroy(&l->mu);
	free(l);
}

nng_stream *chan_listener_take(struct chan_listener *l)
{
	pthread_mutex_lock(&l->mu);
	nng_stream *s = l->nready ? l->ready[--l->nready] : NULL;
	pthread_mutex_unlock(&l->mu);
	return s;
}
