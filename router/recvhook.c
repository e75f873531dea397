/* recvhook: see recvhook.h. Deliberately does not include <sys/socket.h>:
 * with _FORTIFY_SOURCE it defines recv() as an inline wrapper. */
#include "recvhook.h"

#include "tls.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>

#define KWS_MSG_PEEK 0x02 /* MSG_PEEK, from <sys/socket.h> (Linux) */

ssize_t recv(int fd, void *buf, size_t n, int flags);
ssize_t send(int fd, const void *buf, size_t n, int flags);
int close(int fd);

typedef ssize_t (*recv_fn)(int, void *, size_t, int);
typedef ssize_t (*send_fn)(int, const void *, size_t, int);
typedef int (*close_fn)(int);

/* fd -> watched socket. Written only on the lws thread; other threads (the
 * door's) read it for their own sockets, which are never in it, so relaxed
 * atomics suffice. Allocated once, never freed (process lifetime). */
static struct recvhook **table;
static size_t table_len;

void (*recvhook_tls_pending)(int fd);

static recv_fn real_recv(void)
{
	static recv_fn fn;
	recv_fn f = __atomic_load_n(&fn, __ATOMIC_RELAXED);
	if (!f) {
		void *sym = dlsym(RTLD_NEXT, "recv");
		memcpy(&f, &sym, sizeof f);
		__atomic_store_n(&fn, f, __ATOMIC_RELAXED);
	}
	return f;
}

/* libc's definition of name (resolved once; a race resolves it twice, to
 * the same address). */
static void *next_sym(void **cache, const char *name)
{
	void *f = __atomic_load_n(cache, __ATOMIC_RELAXED);
	if (!f) {
		f = dlsym(RTLD_NEXT, name);
		__atomic_store_n(cache, f, __ATOMIC_RELAXED);
	}
	return f;
}

int recvhook_watch(struct recvhook *h, int fd, void (*on_unmasked)(void *arg), void *arg)
{
	if (!table) {
		struct rlimit rl;
		size_t len = 65536;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    rl.rlim_cur > len)
			len = rl.rlim_cur < (1u << 22) ? (size_t)rl.rlim_cur : (1u << 22);
		struct recvhook **t = calloc(len, sizeof *t); /* untouched pages stay unmapped */
		if (!t)
			abort();
		table_len = len;
		__atomic_store_n(&table, t, __ATOMIC_RELEASE);
	}
	memset(h, 0, sizeof *h);
	h->fd = -1;
	if (fd < 0 || (size_t)fd >= table_len)
		return -1;
	h->fd = fd;
	h->on_unmasked = on_unmasked;
	h->arg = arg;
	__atomic_store_n(&table[fd], h, __ATOMIC_RELEASE);
	return 0;
}

void recvhook_unwatch(struct recvhook *h)
{
	if (!h || h->fd < 0 || !table)
		return;
	if (__atomic_load_n(&table[h->fd], __ATOMIC_RELAXED) == h)
		__atomic_store_n(&table[h->fd], NULL, __ATOMIC_RELEASE);
	h->fd = -1;
}

/* recv() on a TLS socket: the same peek-scan-take through its TLS
 * connection (plaintext), h the guard or NULL. */
/* The guard's verdict on got bytes peeked from a watched connection: how
 * many lws may read now (0: none yet), or -1 when the connection is being
 * failed, so the caller reads and drops what the client still sends (poll()
 * then does not report it again). */
static ssize_t guard_take(struct recvhook *h, const void *buf, size_t got)
{
	if (h->guard.failed)
		return -1;
	enum wsguard_verdict v;
	uint64_t frames = h->guard.frames;
	size_t take = wsguard_scan(&h->guard, buf, got, &v);
	if (h->guard.frames != frames && h->on_frame)
		h->on_frame(h->arg);
	if (v == WSGUARD_UNMASKED && h->on_unmasked)
		h->on_unmasked(h->arg);
	return (ssize_t)take;
}

static ssize_t recv_tls(struct tls_conn *c, struct recvhook *h, void *buf, size_t n)
{
	ssize_t got = tls_conn_peek(c, buf, n);
	if (got <= 0)
		return got;
	if (!h)
		return tls_conn_read(c, buf, (size_t)got);
	ssize_t take = guard_take(h, buf, (size_t)got);
	if (take <= 0) {
		if (take < 0)
			(void)tls_conn_read(c, buf, (size_t)got);
		errno = EAGAIN;
		return -1;
	}
	return tls_conn_read(c, buf, (size_t)take);
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	recv_fn real = real_recv();
	struct recvhook **t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	struct recvhook *h = NULL;
	if (t && fd >= 0 && (size_t)fd < table_len && !flags && n)
		h = __atomic_load_n(&t[fd], __ATOMIC_ACQUIRE);
	struct tls_conn *c = !flags && n ? tls_conn_of(fd) : NULL;
	if (c) {
		ssize_t r = recv_tls(c, h, buf, n);
		if (recvhook_tls_pending && tls_conn_pending(c))
			recvhook_tls_pending(fd);
		return r;
	}
	if (!h)
		return real(fd, buf, n, flags);
	ssize_t got = real(fd, buf, n, KWS_MSG_PEEK);
	if (got <= 0)
		return got; /* EOF or an error: as it is */
	ssize_t take = guard_take(h, buf, (size_t)got);
	if (take <= 0) {
		if (take < 0)
			(void)real(fd, buf, (size_t)got, 0);
		errno = EAGAIN; /* nothing for lws now; the close is on its way */
		return -1;
	}
	return real(fd, buf, (size_t)take, 0); /* exactly bytes that were peeked */
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	static void *cache;
	send_fn real;
	void *sym = next_sym(&cache, "send");
	memcpy(&real, &sym, sizeof real);
	struct recvhook **t = __atomic_load_n(&table, __ATOMIC_ACQUIRE);
	struct recvhook *h = NULL;
	if (t && fd >= 0 && (size_t)fd < table_len)
		h = __atomic_load_n(&t[fd], __ATOMIC_ACQUIRE);
	if (h && h->before_send && h->before_send(h->arg) < 0) {
		errno = EAGAIN;
		return -1;
	}
	struct tls_conn *c = tls_conn_of(fd);
	if (c)
		return tls_conn_write(c, buf, n); /* flags: MSG_NOSIGNAL/DONTWAIT, as TLS does */
	return real(fd, buf, n, flags);
}

int close(int fd)
{
	static void *cache;
	close_fn real;
	void *sym = next_sym(&cache, "close");
	memcpy(&real, &sym, sizeof real);
	tls_detach(fd);
	return real(fd);
}
