/* loopchan: see loopchan.h. One connection at a time; its socket handle is
 * its own allocation (struct conn), freed by libuv's close callback, so that
 * a connection ending never frees what a callback still uses. */
#include "loopchan.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "frame.h"
#include "resolve.h"
#include "util.h"

/* Receiving, as chan.c does it: a frame is read into its own allocation of
 * its exact length (the owner may keep it); what a read brings past it, or
 * while no frame is being filled, lands in a spill buffer of READ_CHUNK
 * bytes from which the next headers and small frames are copied. */
#define READ_CHUNK (16 * 1024)
/* Sending: one write takes at most WRITE_IOV buffers and starts no new
 * message past WRITE_MAX bytes; the next goes when it is done. */
#define WRITE_IOV 64
#define WRITE_MAX (256 * 1024)
/* Dialing: the back-off doubles from REDIAL_MIN_MS up to REDIAL_MAX_MS. A
 * router lists an edge before it is up (a scale-up, a restart): the
 * partitions the group gives that edge wait for the router's next attempt,
 * so a long back-off is paid by their clients (2 s made moved partitions
 * pause up to 0.7 s longer than a bare consumer's handover, tests/bench
 * README "Latency at load"). An attempt at an address with nothing listening
 * costs one refused SYN. One attempt is bounded: an address that drops SYNs
 * would otherwise hold the link for the kernel's two minutes of retries. */
#define REDIAL_MIN_MS 100
#define REDIAL_MAX_MS 500
#define CONNECT_TIMEOUT_MS 5000
/* The longest host name (DNS allows 253). */
#define HOST_MAX 256

/* One TCP connection. Lives until libuv's close callback, which comes after
 * the callbacks of its pending connect and write (with UV_ECANCELED). */
struct conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	struct loopchan *owner; /* NULL once the connection ended or the
				 * channel was freed */
	struct frame *writing;  /* the messages of the write under way */
};

/* A name lookup under way in libuv's thread pool; it may finish after the
 * channel was freed (owner NULL then). */
struct lookup {
	uv_getaddrinfo_t req;
	struct loopchan *owner;
};

enum lc_state {
	LC_SLEEPING,   /* waiting for the next attempt (timer) */
	LC_RESOLVING,  /* lookup under way */
	LC_CONNECTING, /* conn connecting (timer: the attempt's bound) */
	LC_OPEN,       /* conn reading and writing */
	LC_ENDED,      /* connection over; the owner takes what is left and redials */
};

struct loopchan {
	uv_loop_t *loop;
	uv_timer_t timer; /* back-off and connect bound; its close frees c */
	char host[HOST_MAX], port[16];
	size_t max_msg, max_queue;
	loopchan_news_fn news;
	void *arg;
	enum lc_state state;
	unsigned backoff_ms;
	struct conn *conn;
	struct lookup *lookup;
	bool connected_news; /* a connection opened the owner has not taken */
	bool signalled;      /* news called; cleared when recv finds nothing */
	char peer[64];
	char error[HOST_MAX + 96]; /* the host and why */

	/* receive side */
	struct frame_reader rd;
	struct frame *inq, **inq_tail, *taken;
	size_t inq_bytes;
	bool rx_paused;

	/* send side */
	struct frame *outq, **outq_tail;
	size_t out_bytes;
	bool tx_busy;

	struct loopchan_stats st;
};

static void dial(struct loopchan *c);
static void on_timer(uv_timer_t *t);

static void tell(struct loopchan *c)
{
	if (c->signalled)
		return;
	c->signalled = true;
	c->news(c->arg);
}

static void conn_closed(uv_handle_t *h)
{
	struct conn *k = h->data;
	frame_list_free(k->writing);
	free(k);
}

/* Lets go of the connection (any state); its memory follows in libuv's
 * close callback. */
static void drop_conn(struct loopchan *c)
{
	if (!c->conn)
		return;
	c->conn->owner = NULL;
	uv_close((uv_handle_t *)&c->conn->tcp, conn_closed);
	c->conn = NULL;
	c->tx_busy = false;
}

static void set_error(struct loopchan *c, const char *why)
{
	if (!*c->error)
		snprintf(c->error, sizeof c->error, "%s", why);
}

/* The open connection ends: what it brought stays for the owner, what was
 * to be sent goes. */
static void end_conn(struct loopchan *c, const char *why)
{
	if (c->state != LC_OPEN)
		return;
	set_error(c, why);
	drop_conn(c);
	c->state = LC_ENDED;
	free(c->rd.cur);
	c->rd.cur = NULL;
	c->rd.spill_len = 0;
	frame_list_free(c->outq);
	c->outq = NULL;
	c->outq_tail = &c->outq;
	c->out_bytes = 0;
	tell(c);
}

/* An attempt failed: try again after the back-off, which doubles. */
static void retry_later(struct loopchan *c, const char *why)
{
	snprintf(c->error, sizeof c->error, "%s", why);
	drop_conn(c);
	c->state = LC_SLEEPING;
	unsigned wait = c->backoff_ms;
	c->backoff_ms = c->backoff_ms * 2 > REDIAL_MAX_MS ? REDIAL_MAX_MS : c->backoff_ms * 2;
	uv_timer_start(&c->timer, on_timer, wait, 0);
}

/* ---- receiving ---- */

static void queue_in(void *arg, struct frame *m)
{
	struct loopchan *c = arg;
	m->next = NULL;
	*c->inq_tail = m;
	c->inq_tail = &m->next;
	c->inq_bytes += m->len;
	c->st.rx_msgs++;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	(void)suggested;
	struct conn *k = h->data;
	struct loopchan *c = k->owner;
	if (!c) {
		*buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
		return;
	}
	struct frame_reader *r = &c->rd;
	if (r->cur)
		*buf = uv_buf_init(r->cur->data + r->cur_have,
				   (unsigned)(r->cur->len - r->cur_have));
	else
		*buf = uv_buf_init(r->spill + r->spill_len, (unsigned)(READ_CHUNK - r->spill_len));
}

/* Takes n bytes a read put where on_alloc said. false if the connection
 * ended (a bad header). */
static bool took(struct loopchan *c, const char *base, size_t n)
{
	c->st.rx_bytes += n;
	c->st.rx_reads++;
	if (c->rd.cur && base == c->rd.cur->data + c->rd.cur_have) {
		frame_read_cur(&c->rd, n, queue_in, c);
		return true;
	}
	const char *bad = frame_read_spill(&c->rd, n, c->max_msg, queue_in, c);
	if (bad)
		end_conn(c, bad);
	return !bad;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *k = s->data;
	struct loopchan *c = k->owner;
	if (!c || nread == 0)
		return;
	if (nread < 0) {
		end_conn(c, nread == UV_EOF ? "closed by the edge" : uv_strerror((int)nread));
		return;
	}
	uint64_t before = c->st.rx_msgs;
	if (!took(c, buf->base, (size_t)nread))
		return;
	/* Empties the socket while the owner's queue has room: libuv stops after
	 * 32 reads (4-8 MiB of DELIVER batches), and what stays in the kernel
	 * counts against the edge's send queue, which closes the link when full
	 * (a backlog drains faster than the router delivers; PROTOCOL.md,
	 * "Transport"). The owner's queue is the link's buffer, as on the edge. */
	uv_os_fd_t fd;
	while ((size_t)nread == buf->len && c->inq_bytes <= c->max_queue &&
	       uv_fileno((uv_handle_t *)s, &fd) == 0) {
		uv_buf_t b;
		on_alloc((uv_handle_t *)s, 0, &b);
		ssize_t n = read(fd, b.base, b.len);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			end_conn(c, n == 0 ? "closed by the edge" : strerror(errno));
			return;
		}
		if (!took(c, b.base, (size_t)n))
			return;
		if ((size_t)n < b.len)
			break; /* the socket is empty */
	}
	if (c->inq_bytes > c->max_queue) {
		uv_read_stop(s); /* loopchan_recv starts it again */
		c->rx_paused = true;
	}
	if (c->st.rx_msgs != before)
		tell(c);
}

int loopchan_recv(struct loopchan *c, const void **buf, size_t *len)
{
	free(c->taken);
	c->taken = NULL;
	struct frame *m = c->inq;
	if (!m) {
		c->signalled = false;
		return c->state == LC_ENDED ? -1 : 0;
	}
	c->inq = m->next;
	if (!c->inq)
		c->inq_tail = &c->inq;
	c->inq_bytes -= m->len;
	c->taken = m;
	*buf = m->data;
	*len = m->len;
	if (c->rx_paused && c->inq_bytes <= c->max_queue / 2) {
		c->rx_paused = false;
		if (c->state == LC_OPEN)
			uv_read_start((uv_stream_t *)&c->conn->tcp, on_alloc, on_read);
	}
	return 1;
}

void *loopchan_keep(struct loopchan *c)
{
	void *m = c->taken;
	c->taken = NULL;
	return m;
}

size_t loopchan_kept_size(const void *kept)
{
	return sizeof(struct frame) + ((const struct frame *)kept)->len;
}

void loopchan_kept_free(void *kept)
{
	free(kept); /* a received frame: its bytes are inline */
}

/* ---- sending ---- */

static void on_written(uv_write_t *req, int status);

/* Writes the queued messages, up to a batch, as one write. */
static void start_write(struct loopchan *c)
{
	uv_buf_t bufs[WRITE_IOV];
	unsigned n = 0;
	size_t total = 0;
	struct frame **tail = &c->conn->writing;
	while (c->outq && n + 2 <= WRITE_IOV && total < WRITE_MAX) {
		struct frame *m = c->outq;
		c->outq = m->next;
		size_t need = 4 + (size_t)m->len;
		c->out_bytes -= need;
		total += need;
		if (m->body == m->data + 4) {
			bufs[n++] = uv_buf_init(m->data, (unsigned)need);
		} else {
			bufs[n++] = uv_buf_init(m->data, 4);
			bufs[n++] = uv_buf_init(m->body, m->len);
		}
		m->next = NULL;
		*tail = m;
		tail = &m->next;
	}
	if (!c->outq)
		c->outq_tail = &c->outq;
	c->conn->wreq.data = c->conn;
	int rc = uv_write(&c->conn->wreq, (uv_stream_t *)&c->conn->tcp, bufs, n, on_written);
	if (rc < 0) { /* the messages are freed with the connection */
		end_conn(c, uv_strerror(rc));
		return;
	}
	c->tx_busy = true;
	c->st.tx_bytes += total;
	c->st.tx_writes++;
}

static void on_written(uv_write_t *req, int status)
{
	struct conn *k = req->data;
	frame_list_free(k->writing);
	k->writing = NULL;
	struct loopchan *c = k->owner;
	if (!c)
		return;
	c->tx_busy = false;
	if (status < 0)
		end_conn(c, uv_strerror(status));
	else if (c->outq)
		start_write(c);
}

static int send_msg(struct loopchan *c, const void *buf, size_t len, void *take)
{
	if (c->state != LC_OPEN)
		return -1;
	const char *refused = frame_refusal(len, c->max_msg, c->out_bytes, c->max_queue,
					    "send queue full: the edge is too slow");
	if (refused) {
		end_conn(c, refused);
		return -1;
	}
	struct frame *m = frame_out(buf, len, take);
	*c->outq_tail = m;
	c->outq_tail = &m->next;
	c->out_bytes += 4 + len;
	c->st.tx_msgs++;
	/* The first message goes at once (libuv writes what it can now); those
	 * queued while it is under way go together when it is done. */
	if (!c->tx_busy)
		start_write(c);
	return 0;
}

int loopchan_send(struct loopchan *c, const void *buf, size_t len)
{
	return send_msg(c, buf, len, NULL);
}

int loopchan_send_take(struct loopchan *c, void *buf, size_t len)
{
	return send_msg(c, buf, len, buf);
}

/* ---- dialing ---- */

static void on_timer(uv_timer_t *t)
{
	struct loopchan *c = t->data;
	if (c->state == LC_SLEEPING)
		dial(c);
	else if (c->state == LC_CONNECTING)
		retry_later(c, "connect timed out");
}

static void on_connected(uv_connect_t *req, int status)
{
	struct conn *k = req->handle->data;
	struct loopchan *c = k->owner;
	if (!c || status == UV_ECANCELED)
		return;
	if (status < 0) {
		retry_later(c, uv_strerror(status));
		return;
	}
	uv_timer_stop(&c->timer);
	/* Writes are batched here; Nagle with delayed ACKs would hold small
	 * messages ~40 ms. */
	uv_tcp_nodelay(&k->tcp, 1);
	struct sockaddr_storage sa;
	int salen = sizeof sa;
	char ip[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;
	if (uv_tcp_getpeername(&k->tcp, (struct sockaddr *)&sa, &salen) == 0) {
		if (sa.ss_family == AF_INET) {
			struct sockaddr_in *a = (struct sockaddr_in *)&sa;
			inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
			port = ntohs(a->sin_port);
		} else if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *a = (struct sockaddr_in6 *)&sa;
			inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
			port = ntohs(a->sin6_port);
		}
	}
	snprintf(c->peer, sizeof c->peer, sa.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, port);
	c->state = LC_OPEN;
	c->backoff_ms = REDIAL_MIN_MS;
	c->error[0] = '\0';
	c->connected_news = true;
	c->rx_paused = false;
	int rc = uv_read_start((uv_stream_t *)&k->tcp, on_alloc, on_read);
	if (rc < 0)
		end_conn(c, uv_strerror(rc));
	tell(c);
}

/* Starts one attempt at addr. */
static void connect_to(struct loopchan *c, const struct sockaddr *addr)
{
	struct conn *k = xcalloc(1, sizeof *k);
	uv_tcp_init(c->loop, &k->tcp);
	k->tcp.data = k;
	k->owner = c;
	c->conn = k;
	c->state = LC_CONNECTING;
	c->st.attempts++;
	int rc = uv_tcp_connect(&k->creq, &k->tcp, addr, on_connected);
	if (rc < 0) {
		retry_later(c, uv_strerror(rc));
		return;
	}
	uv_timer_start(&c->timer, on_timer, CONNECT_TIMEOUT_MS, 0);
}

/* IPv4 first: an edge listens on tcp://0.0.0.0 by default, and "localhost"
 * resolves to ::1 as well. */
static const struct addrinfo *pick(const struct addrinfo *res)
{
	for (const struct addrinfo *a = res; a; a = a->ai_next)
		if (a->ai_family == AF_INET)
			return a;
	for (const struct addrinfo *a = res; a; a = a->ai_next)
		if (a->ai_family == AF_INET6)
			return a;
	return NULL;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct lookup *q = req->data;
	struct loopchan *c = q->owner;
	free(q);
	if (!c) {
		uv_freeaddrinfo(res);
		return;
	}
	c->lookup = NULL;
	const struct addrinfo *a = status == 0 ? pick(res) : NULL;
	if (!a) {
		char why[HOST_MAX + 80];
		snprintf(why, sizeof why, "%s: %s", c->host,
			 status ? uv_strerror(status) : "no IPv4 or IPv6 address");
		uv_freeaddrinfo(res);
		retry_later(c, why);
		return;
	}
	connect_to(c, a->ai_addr);
	uv_freeaddrinfo(res);
}

/* An address needs no lookup (--edges-dns hands the router addresses): a
 * lookup runs on libuv's thread pool, and one stuck on a DNS server that
 * does not answer would hold the router's stop until the resolver's
 * timeouts. */
static void dial(struct loopchan *c)
{
	struct sockaddr_in6 sa6;
	struct sockaddr_in sa4;
	int port = atoi(c->port);
	if (uv_ip4_addr(c->host, port, &sa4) == 0) {
		connect_to(c, (const struct sockaddr *)&sa4);
		return;
	}
	if (uv_ip6_addr(c->host, port, &sa6) == 0) {
		connect_to(c, (const struct sockaddr *)&sa6);
		return;
	}
	struct lookup *q = xcalloc(1, sizeof *q);
	q->owner = c;
	q->req.data = q;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	c->state = LC_RESOLVING;
	c->lookup = q;
	int rc = uv_getaddrinfo(c->loop, &q->req, on_resolved, c->host, c->port, &hints);
	if (rc < 0) {
		c->lookup = NULL;
		free(q);
		retry_later(c, uv_strerror(rc));
	}
}

void loopchan_redial(struct loopchan *c)
{
	if (c->state != LC_ENDED)
		return;
	c->state = LC_SLEEPING;
	uv_timer_start(&c->timer, on_timer, c->backoff_ms, 0);
}

/* Splits tcp://HOST:PORT (HOST may be [v6]); --edges was checked to be of
 * that form (common/conf.c), DNS discovery makes it so. */
static int parse_url(struct loopchan *c, const char *url)
{
	char host[HOST_MAX + 2];
	if (strncmp(url, "tcp://", 6) != 0 ||
	    resolver_split(url + 6, host, sizeof host, c->port, sizeof c->port) < 0)
		return -1;
	long port = strtol(c->port, NULL, 10);
	if (port < 1 || port > 65535)
		return -1;
	size_t n = strlen(host);
	if (host[0] == '[') { /* [v6] */
		if (n < 3 || host[n - 1] != ']')
			return -1;
		host[n - 1] = '\0';
		memmove(host, host + 1, n - 1);
		n -= 2;
	}
	if (n >= sizeof c->host)
		return -1;
	memcpy(c->host, host, n + 1);
	return 0;
}

struct loopchan *loopchan_new(uv_loop_t *loop, const char *url, size_t max_msg, size_t max_queue,
			      loopchan_news_fn news, void *arg, char *err, size_t errlen)
{
	struct loopchan *c = xcalloc(1, sizeof *c);
	if (parse_url(c, url) < 0) {
		snprintf(err, errlen, "%s: expected tcp://HOST:PORT", url);
		free(c);
		return NULL;
	}
	c->loop = loop;
	c->max_msg = max_msg;
	c->max_queue = max_queue;
	c->news = news;
	c->arg = arg;
	c->backoff_ms = REDIAL_MIN_MS;
	c->inq_tail = &c->inq;
	c->outq_tail = &c->outq;
	c->rd.spill = xmalloc(READ_CHUNK);
	snprintf(c->peer, sizeof c->peer, "?");
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	dial(c);
	return c;
}

static void chan_closed(uv_handle_t *h)
{
	free(h->data);
}

void loopchan_free(struct loopchan *c)
{
	if (!c)
		return;
	if (c->lookup) { /* its callback comes, cancelled or not, and frees it */
		c->lookup->owner = NULL;
		uv_cancel((uv_req_t *)&c->lookup->req);
	}
	drop_conn(c);
	frame_list_free(c->inq);
	frame_list_free(c->outq);
	free(c->rd.cur);
	free(c->taken);
	free(c->rd.spill);
	uv_close((uv_handle_t *)&c->timer, chan_closed);
}

bool loopchan_connected(struct loopchan *c)
{
	bool v = c->connected_news;
	c->connected_news = false;
	return v;
}

void loopchan_close(struct loopchan *c)
{
	end_conn(c, "closed here");
}

const char *loopchan_error(const struct loopchan *c)
{
	return c->error;
}

const char *loopchan_peer(const struct loopchan *c)
{
	return c->peer;
}

void loopchan_get_stats(const struct loopchan *c, struct loopchan_stats *st)
{
	*st = c->st;
}
