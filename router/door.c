/* door: see door.h. */
#include "door.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tls.h"
#include "util.h"

/* How long accepts pause after accept() ran out of descriptors or memory. */
#define DOOR_ACCEPT_BACKOFF_MS 100
#define DOOR_ACCEPT_BACKLOG 4096

/* A connection whose head is still arriving. */
struct visitor {
	int fd;
	uint8_t addr[16]; /* its source address (admission_addr_key) */
	int64_t deadline_ms;
	bool closing; /* answered: what it still sends is read and dropped until it closes */
	size_t len;
	char *buf; /* [max_head + 1] */
};

struct door {
	struct door_config cfg;
	int lfd;
	int stop_pipe[2];
	pthread_t thread;
	pthread_mutex_t lock;
	struct door_guest *head, **tail; /* under lock */
	struct visitor *v;               /* [cfg.max_waiting]; the door's thread only */
	size_t nv;
	_Atomic uint64_t refused[ADMISSION_NREASONS];
	_Atomic uint64_t accept_errors; /* accept() out of descriptors or memory */
	int64_t accept_paused_until;    /* the listener is not polled until then */
	int64_t last_log_ms;            /* door_thread's rate-limited warnings */
	uint64_t unlogged;              /* events since the last warning */
};

/* The door's warnings (refusals by address, accept errors): at most one a
 * second, each saying how many events it stands for, so that a flood
 * cannot flood the log too. */
static void warn_limited(struct door *d, const char *what, const char *detail)
{
	int64_t now = now_mono_ms();
	d->unlogged++;
	if (now - d->last_log_ms < 1000)
		return;
	log_warn("front door: %s (%s); %" PRIu64 " such event(s) since the last such warning", what,
		 detail, d->unlogged);
	d->last_log_ms = now;
	d->unlogged = 0;
}

/* How many visitors from addr are waiting (the door's thread only). */
static size_t waiting_from(const struct door *d, const uint8_t addr[16])
{
	size_t n = 0;
	for (size_t i = 0; i < d->nv; i++)
		n += !d->v[i].closing && memcmp(d->v[i].addr, addr, 16) == 0;
	return n;
}

/* Answers a refusal in plain text (best effort: the socket is not waited
 * for) and closes. */
static void refuse(struct door *d, int fd, enum admission_reason why, int status,
		   const char *phrase, const char *text)
{
	char buf[512];
	int n = snprintf(buf, sizeof buf,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			 status, phrase, strlen(text) + 1, text);
	/* Refused at accept on a TLS port: no handshake yet, nothing to say. */
	if (status && n > 0 && !d->cfg.tls)
		(void)!send(fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	close(fd);
	atomic_fetch_add(&d->refused[why], 1);
}

static void drop_visitor(struct door *d, size_t i)
{
	free(d->v[i].buf);
	d->v[i] = d->v[--d->nv];
}

/* Refuses visitor i with an answer, then reads and drops what it still
 * sends for up to a second before closing: closing with unread bytes would
 * reset the connection, and the client might never read the answer. */
static void refuse_visitor(struct door *d, size_t i, enum admission_reason why, int status,
			   const char *phrase, const char *text)
{
	struct visitor *v = &d->v[i];
	char buf[512];
	int n = snprintf(buf, sizeof buf,
			 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
			 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
			 status, phrase, strlen(text) + 1, text);
	(void)!send(v->fd, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	shutdown(v->fd, SHUT_WR);
	atomic_fetch_add(&d->refused[why], 1);
	v->closing = true;
	v->deadline_ms = now_mono_ms() + 1000;
}

/* The head of visitor i is complete: rewrite and hand it to the loop. */
static void admit(struct door *d, size_t i, size_t head_len)
{
	struct visitor *v = &d->v[i];
	size_t nl;
	char *nh = admission_rewrite_head(v->buf, head_len, d->cfg.id_header, &nl);
	if (!nh) {
		refuse_visitor(d, i, ADMISSION_BAD_REQUEST, 400, "Bad Request",
			       "malformed request head: want a request line and name: value lines");
		return;
	}
	size_t rest = v->len - head_len;
	struct door_guest *g = xmalloc(sizeof *g + nl + rest);
	g->next = NULL;
	g->fd = v->fd;
	g->len = nl + rest;
	memcpy(g->buf, nh, nl);
	memcpy(g->buf + nl, v->buf + head_len, rest);
	free(nh);
	drop_visitor(d, i);
	pthread_mutex_lock(&d->lock);
	*d->tail = g;
	d->tail = &g->next;
	pthread_mutex_unlock(&d->lock);
	d->cfg.wake(d->cfg.wake_arg);
}

/* Reads what visitor i sent; admits, refuses or keeps waiting. */
static void read_visitor(struct door *d, size_t i)
{
	struct visitor *v = &d->v[i];
	if (v->closing)
		v->len = 0;
	size_t room = d->cfg.max_head + 1 - v->len;
	ssize_t n = recv(v->fd, v->buf + v->len, room, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close(v->fd);
		drop_visitor(d, i);
		return;
	}
	if (v->closing)
		return;
	size_t from = v->len > 3 ? v->len - 3 : 0;
	v->len += (size_t)n;
	size_t end = admission_head_end(v->buf + from, v->len - from);
	if (end) {
		admit(d, i, from + end);
		return;
	}
	if (v->len > d->cfg.max_head)
		refuse_visitor(d, i, ADMISSION_TOO_LARGE, 431, "Request Header Fields Too Large",
			       "the request head is larger than this router takes "
			       "(--max-header-bytes)");
}

static void accept_visitors(struct door *d)
{
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = accept4(d->lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* The connection stays in the backlog: polling the
				 * listener again now would spin. Back off. */
				atomic_fetch_add(&d->accept_errors, 1);
				d->accept_paused_until = now_mono_ms() + DOOR_ACCEPT_BACKOFF_MS;
				warn_limited(d, "cannot accept, pausing accepts for 100 ms",
					     strerror(errno));
			}
			return;
		}
		if (d->nv == d->cfg.max_waiting) {
			refuse(d, fd, ADMISSION_LIMIT, 503, "Service Unavailable",
			       "too many handshakes in progress; retry shortly");
			continue;
		}
		uint8_t addr[16] = { 0 };
		admission_addr_key((struct sockaddr *)&ss, addr);
		if (d->cfg.max_waiting_per_addr &&
		    waiting_from(d, addr) >= d->cfg.max_waiting_per_addr) {
			refuse(d, fd, ADMISSION_LIMIT, 429, "Too Many Requests",
			       "too many handshakes in progress from this address");
			char host[64] = "?";
			getnameinfo((struct sockaddr *)&ss, sl, host, sizeof host, NULL, 0,
				    NI_NUMERICHOST);
			warn_limited(
				d,
				"refused a connection: too many incomplete handshakes from one address",
				host);
			continue;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		/* wss: the handshake runs inside read_visitor's recv() (tls.h). */
		if (d->cfg.tls && tls_attach(d->cfg.tls, fd) < 0) {
			refuse(d, fd, ADMISSION_LIMIT, 0, "", "");
			continue;
		}
		d->v[d->nv] = (struct visitor){
			.fd = fd,
			.deadline_ms = now_mono_ms() + d->cfg.timeout_ms,
			.buf = xmalloc(d->cfg.max_head + 1),
		};
		memcpy(d->v[d->nv++].addr, addr, sizeof addr);
	}
}

static void *door_thread(void *arg)
{
	struct door *d = arg;
	struct pollfd *pf = xmalloc((d->cfg.max_waiting + 2) * sizeof *pf);
	for (;;) {
		tls_server_tick(d->cfg.tls); /* new certificate files? */
		int64_t now = now_mono_ms(), next = now + 1000;
		for (size_t i = 0; i < d->nv;) {
			if (d->v[i].deadline_ms <= now) {
				/* Too slow (it may not even be HTTP): hang up without a
				 * word; or the end of a refused one's lingering. */
				if (d->v[i].closing)
					close(d->v[i].fd);
				else
					refuse(d, d->v[i].fd, ADMISSION_TIMEOUT, 0, "", "");
				drop_visitor(d, i);
				continue;
			}
			if (d->v[i].deadline_ms < next)
				next = d->v[i].deadline_ms;
			i++;
		}
		pf[0] = (struct pollfd){ .fd = d->stop_pipe[0], .events = POLLIN };
		/* While accepts are paused (out of descriptors), a negative fd
		 * makes poll skip the listener. */
		bool paused = d->accept_paused_until > now;
		if (paused && d->accept_paused_until < next)
			next = d->accept_paused_until;
		pf[1] = (struct pollfd){ .fd = paused ? -1 : d->lfd, .events = POLLIN };
		for (size_t i = 0; i < d->nv; i++)
			pf[2 + i] = (struct pollfd){ .fd = d->v[i].fd, .events = POLLIN };
		size_t polled = d->nv;
		int n = poll(pf, 2 + polled, (int)(next - now));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (pf[0].revents)
			break;
		/* Visitors from the back, so that dropping one (moving the last
		 * into its slot) leaves the ones still to visit in place. */
		for (size_t i = polled; i-- > 0;)
			if (pf[2 + i].revents)
				read_visitor(d, i);
		if (pf[1].revents)
			accept_visitors(d);
	}
	free(pf);
	return NULL;
}

struct door *door_start(const struct door_config *cfg, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_INET,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE },
			*ai;
	char port[16];
	snprintf(port, sizeof port, "%ld", cfg->port);
	const char *host = cfg->host && *cfg->host ? cfg->host : NULL;
	int rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		snprintf(err, errlen, "%s: %s", host ? host : "*", gai_strerror(rc));
		return NULL;
	}
	int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (fd >= 0 && cfg->reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	/* The accept queue: a reconnect storm (a router restarted, thousands
	 * of clients at once) arrives faster than the loop accepts between
	 * handshakes, and a SYN the full queue drops costs its client a 1 s
	 * retransmit (3 s, 7 s after that). Large as the door's waiting room;
	 * the kernel caps it at net.core.somaxconn (4096 by default). */
	if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(fd, DOOR_ACCEPT_BACKLOG) < 0) {
		snprintf(err, errlen, "cannot listen on %s:%ld: %s", host ? host : "*", cfg->port,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return NULL;
	}
	freeaddrinfo(ai);
	struct door *d = xcalloc(1, sizeof *d);
	d->cfg = *cfg;
	d->lfd = fd;
	d->tail = &d->head;
	d->v = xcalloc(cfg->max_waiting, sizeof *d->v);
	pthread_mutex_init(&d->lock, NULL);
	if (pipe2(d->stop_pipe, O_CLOEXEC) < 0 ||
	    pthread_create(&d->thread, NULL, door_thread, d) != 0) {
		snprintf(err, errlen, "cannot start the door's thread: %s", strerror(errno));
		close(fd);
		free(d->v);
		free(d);
		return NULL;
	}
	return d;
}

void door_stop(struct door *d)
{
	if (!d)
		return;
	(void)!write(d->stop_pipe[1], "x", 1);
	pthread_join(d->thread, NULL);
	close(d->stop_pipe[0]);
	close(d->stop_pipe[1]);
	close(d->lfd);
	for (size_t i = 0; i < d->nv; i++) {
		close(d->v[i].fd);
		free(d->v[i].buf);
	}
	free(d->v);
	for (struct door_guest *g = d->head, *n; g; g = n) {
		n = g->next;
		close(g->fd);
		free(g);
	}
	pthread_mutex_destroy(&d->lock);
	free(d);
}

struct door_guest *door_take(struct door *d)
{
	pthread_mutex_lock(&d->lock);
	struct door_guest *g = d->head;
	d->head = NULL;
	d->tail = &d->head;
	pthread_mutex_unlock(&d->lock);
	return g;
}

uint64_t door_accept_errors(const struct door *d)
{
	return d ? atomic_load(&((struct door *)d)->accept_errors) : 0;
}

uint64_t door_refused(const struct door *d, enum admission_reason why)
{
	if (!d || (unsigned)why >= ADMISSION_NREASONS)
		return 0;
	return atomic_load(&((struct door *)d)->refused[why]);
}
