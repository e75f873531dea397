/* Unit tests for common/chan.c: framed messages over nng byte streams, with
 * a listener and a dialer on loopback in this process. What the edge relies
 * on: every message arrives whole and in order, both ways; the size and
 * queue limits close the connection with a reason; a peer that sends a bad
 * or oversized frame header is cut off; what arrived before the end is still
 * delivered; one listener accepts many routers. (The router's end of a link
 * is router/loopchan.c: tests/unit/check_loopchan.c.) */
#include "chan.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS 20000 /* generous: valgrind and a loaded machine */

/* ---- waiting for wake callbacks ---- */

struct waker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned n;
};

static void waker_init(struct waker *w)
{
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->n = 0;
}

static void waker_destroy(struct waker *w)
{
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
}

static void on_wake(void *arg)
{
	struct waker *w = arg;
	pthread_mutex_lock(&w->mu);
	w->n++;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static unsigned wakes(struct waker *w)
{
	pthread_mutex_lock(&w->mu);
	unsigned n = w->n;
	pthread_mutex_unlock(&w->mu);
	return n;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until a wake after `seen` or until deadline (monotonic ms). */
static void wait_wake(struct waker *w, unsigned seen, long long deadline)
{
	pthread_mutex_lock(&w->mu);
	while (w->n == seen && now_ms() < deadline) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 20 * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&w->cv, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
}

/* chan_recv as an owner's loop does it: waits for the wake callback until
 * a message (1) or the end (-1) comes, or WAIT_MS pass (0). */
static int recv_wait(struct chan *c, struct waker *w, const void **buf, size_t *len)
{
	long long deadline = now_ms() + WAIT_MS;
	for (;;) {
		unsigned seen = wakes(w);
		int rc = chan_recv(c, buf, len);
		if (rc != 0 || now_ms() >= deadline)
			return rc;
		wait_wake(w, seen, deadline);
	}
}

/* Dials url once, as the router's end would (router/loopchan.c; here with
 * nng's own dialer): the connected stream. */
static nng_stream *dial_stream(const char *url)
{
	nng_stream_dialer *d;
	nng_aio *aio;
	ck_assert_int_eq(nng_stream_dialer_alloc(&d, url), 0);
	ck_assert_int_eq(nng_aio_alloc(&aio, NULL, NULL), 0);
	nng_aio_set_timeout(aio, WAIT_MS);
	nng_stream_dialer_dial(d, aio);
	nng_aio_wait(aio);
	ck_assert_int_eq(nng_aio_result(aio), 0);
	nng_stream *s = nng_aio_get_output(aio, 0);
	nng_aio_free(aio);
	nng_stream_dialer_free(d);
	return s;
}

static nng_stream *take_accepted(struct chan_listener *l, struct waker *w)
{
	long long deadline = now_ms() + WAIT_MS;
	for (;;) {
		unsigned seen = wakes(w);
		nng_stream *s = chan_listener_take(l);
		if (s || now_ms() >= deadline)
			return s;
		wait_wake(w, seen, deadline);
	}
}

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

/* ---- a connected pair: a (dialed) <-> b (accepted) ---- */

struct pair {
	char url[64];
	int port;
	struct waker wl, wa, wb;
	struct chan_listener *l;
	struct chan *a, *b;
};

static struct pair P;

static void pair_listen(struct pair *p)
{
	char err[256] = "";
	p->l = chan_listener_new(p->url, on_wake, &p->wl, err, sizeof err);
	ck_assert_msg(p->l != NULL, "listen: %s", err);
}

static void pair_open(struct pair *p, size_t a_max_msg, size_t a_queue, size_t b_max_msg,
		      size_t b_queue)
{
	pair_listen(p);
	nng_stream *sa = dial_stream(p->url);
	nng_stream *sb = take_accepted(p->l, &p->wl);
	ck_assert_ptr_nonnull(sa);
	ck_assert_ptr_nonnull(sb);
	p->a = chan_new(sa, a_max_msg, a_queue, on_wake, &p->wa);
	p->b = chan_new(sb, b_max_msg, b_queue, on_wake, &p->wb);
}

static void setup(void)
{
	memset(&P, 0, sizeof P);
	P.port = free_port();
	snprintf(P.url, sizeof P.url, "tcp://127.0.0.1:%d", P.port);
	waker_init(&P.wl);
	waker_init(&P.wa);
	waker_init(&P.wb);
}

static void teardown(void)
{
	chan_free(P.a);
	chan_free(P.b);
	chan_listener_free(P.l);
	waker_destroy(&P.wl);
	waker_destroy(&P.wa);
	waker_destroy(&P.wb);
}

/* A raw TCP peer connected to P's listener, and the channel on its stream. */
static int raw_connect(size_t max_msg, size_t max_queue)
{
	pair_listen(&P);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)P.port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	nng_stream *s = take_accepted(P.l, &P.wl);
	ck_assert_ptr_nonnull(s);
	P.b = chan_new(s, max_msg, max_queue, on_wake, &P.wb);
	return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
	ck_assert_int_eq(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

static void raw_frame(int fd, uint32_t declared, const void *body, size_t len)
{
	uint32_t n = htonl(declared);
	raw_send(fd, &n, 4);
	if (len)
		raw_send(fd, body, len);
}

/* True once the raw peer's connection has been closed by the other end. */
static int raw_sees_close(int fd)
{
	struct timeval tv = { .tv_sec = WAIT_MS / 1000 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	char buf[256];
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof buf, 0);
		if (n == 0)
			return 1;
		if (n < 0)
			return errno == ECONNRESET;
	}
}

/* Waits until c has written everything it queued (the completion of the
 * last write may come after the peer has read it), then takes its stats. */
static void wait_sent(struct chan *c, struct chan_stats *st)
{
	long long deadline = now_ms() + WAIT_MS;
	chan_get_stats(c, st);
	while (st->queued_bytes > 0 && now_ms() < deadline) {
		usleep(1000);
		chan_get_stats(c, st);
	}
	ck_assert_uint_eq(st->queued_bytes, 0);
}

/* Message i of a test stream: its length and its bytes. */
static size_t msg_len(int i)
{
	switch (i % 3) {
	case 0:
		return 1 + (size_t)(i % 100);
	case 1:
		return 1000 + (size_t)i;
	default:
		return 60000 + (size_t)(i * 37 % 10000); /* around the 64 KiB read chunk */
	}
}

static void msg_fill(char *buf, int i, size_t len)
{
	for (size_t k = 0; k < len; k++)
		buf[k] = (char)(i * 31 + (int)k);
}

static void assert_msg(const void *buf, size_t len, int i)
{
	static char want[80000];
	ck_assert_uint_eq(len, msg_len(i));
	msg_fill(want, i, len);
	ck_assert_msg(memcmp(buf, want, len) == 0, "message %d: wrong bytes", i);
}

/* ---- tests ---- */

START_TEST(test_roundtrip_in_order)
{
	enum { N = 300 };
	pair_open(&P, 1 << 20, 64 << 20, 1 << 20, 64 << 20);
	static char buf[80000];
	uint64_t bytes = 0;
	for (int i = 0; i < N; i++) {
		msg_fill(buf, i, msg_len(i));
		ck_assert_int_eq(chan_send(P.a, buf, msg_len(i)), 0);
		bytes += 4 + msg_len(i);
	}
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
		assert_msg(m, len, i);
	}
	/* And the other way. */
	for (int i = 0; i < 50; i++) {
		msg_fill(buf, i, msg_len(i));
		ck_assert_int_eq(chan_send(P.b, buf, msg_len(i)), 0);
	}
	for (int i = 0; i < 50; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(recv_wait(P.a, &P.wa, &m, &len), 1);
		assert_msg(m, len, i);
	}
	const void *m;
	size_t len;
	ck_assert_int_eq(chan_recv(P.b, &m, &len), 0); /* nothing more, still open */
	ck_assert_str_eq(chan_error(P.b), "");

	struct chan_stats sa, sb;
	wait_sent(P.a, &sa);
	chan_get_stats(P.b, &sb);
	ck_assert_uint_eq(sa.tx_msgs, N);
	ck_assert_uint_eq(sb.rx_msgs, N);
	ck_assert_uint_eq(sb.rx_bytes, bytes);
	ck_assert_uint_eq(sa.tx_bytes, bytes);
	ck_assert_uint_eq(sa.rx_msgs, 50);
}
END_TEST

START_TEST(test_send_take_in_order)
{
	/* Taken and copied messages, small and large, mixed: every one arrives
	 * whole and in order; what was taken is freed by the channel (ASan
	 * and valgrind would see a leak or a double free). */
	enum { N = 300 };
	pair_open(&P, 1 << 20, 64 << 20, 1 << 20, 64 << 20);
	static char buf[80000];
	for (int i = 0; i < N; i++) {
		size_t len = msg_len(i);
		if (i % 2) {
			char *t = malloc(len);
			msg_fill(t, i, len);
			ck_assert_int_eq(chan_send_take(P.a, t, len), 0);
		} else {
			msg_fill(buf, i, len);
			ck_assert_int_eq(chan_send(P.a, buf, len), 0);
		}
	}
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
		assert_msg(m, len, i);
	}
	/* Refused (over the size limit): the caller still owns it. */
	char *big = malloc(2 << 20);
	ck_assert_int_eq(chan_send_take(P.a, big, 2 << 20), -1);
	free(big);
	struct chan_stats sa;
	chan_get_stats(P.a, &sa);
	ck_assert_uint_eq(sa.tx_msgs, N);
}
END_TEST

START_TEST(test_keep_outlives_recv_and_free)
{
	/* A kept message's bytes stay where chan_recv said, after the next
	 * chan_recv and after the channel is gone, until chan_kept_free. */
	pair_open(&P, 1 << 20, 8 << 20, 1 << 20, 8 << 20);
	static char buf[80000];
	for (int i = 0; i < 3; i++) {
		msg_fill(buf, i + 2, msg_len(i + 2)); /* 60,000 B, 1 B, 1,003 B */
		ck_assert_int_eq(chan_send(P.a, buf, msg_len(i + 2)), 0);
	}
	const void *m[3];
	size_t len[3];
	void *kept[3];
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m[i], &len[i]), 1);
		kept[i] = chan_keep(P.b);
		ck_assert_ptr_nonnull(kept[i]);
		ck_assert_ptr_eq(chan_kept_data(kept[i]), m[i]);
		ck_assert_uint_ge(chan_kept_size(kept[i]), len[i]);
		ck_assert_ptr_null(chan_keep(P.b)); /* once */
	}
	const void *none;
	size_t nlen;
	ck_assert_int_eq(chan_recv(P.b, &none, &nlen), 0);
	ck_assert_ptr_null(chan_keep(P.b));
	chan_free(P.b);
	P.b = NULL;
	for (int i = 0; i < 3; i++) {
		assert_msg(m[i], len[i], i + 2);
		chan_kept_free(kept[i]);
	}
	chan_kept_free(NULL);
}
END_TEST

START_TEST(test_small_messages_batched)
{
	/* Messages queued while a write is under way go out together. */
	enum { N = 2000 };
	pair_open(&P, 1024, 1 << 20, 1024, 1 << 20);
	for (int i = 0; i < N; i++) {
		char m[16];
		int len = snprintf(m, sizeof m, "m%d", i);
		ck_assert_int_eq(chan_send(P.a, m, (size_t)len), 0);
	}
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		char want[16];
		int wl = snprintf(want, sizeof want, "m%d", i);
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
		ck_assert_uint_eq(len, (size_t)wl);
		ck_assert_mem_eq(m, want, len);
	}
	struct chan_stats sa;
	wait_sent(P.a, &sa);
	ck_assert_uint_eq(sa.tx_msgs, N);
	ck_assert_uint_lt(sa.tx_writes, N / 2);
}
END_TEST

START_TEST(test_peer_address)
{
	pair_open(&P, 1024, 1 << 20, 1024, 1 << 20);
	char want[64];
	snprintf(want, sizeof want, "127.0.0.1:%d", P.port);
	ck_assert_str_eq(chan_peer(P.a), want);
	/* The accepted side sees the dialer's own (ephemeral) port. */
	const char *pb = chan_peer(P.b);
	ck_assert_msg(strncmp(pb, "127.0.0.1:", 10) == 0, "peer %s", pb);
	int port = atoi(pb + 10);
	ck_assert_int_gt(port, 0);
	ck_assert_int_ne(port, P.port);
}
END_TEST

START_TEST(test_send_over_size_limit)
{
	pair_open(&P, 1000, 1 << 20, 1000, 1 << 20);
	static char buf[2000];
	ck_assert_int_eq(chan_send(P.a, buf, 1000), 0); /* exactly the limit */
	const void *m;
	size_t len;
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
	ck_assert_uint_eq(len, 1000);

	ck_assert_int_eq(chan_send(P.a, buf, 1001), -1);
	ck_assert_msg(strstr(chan_error(P.a), "size limit"), "error: %s", chan_error(P.a));
	/* The channel is closed: nothing more is sent, the owner sees the end,
	 * and so does the peer. */
	ck_assert_int_eq(chan_send(P.a, buf, 10), -1);
	ck_assert_int_eq(recv_wait(P.a, &P.wa, &m, &len), -1);
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), -1);
	ck_assert_str_ne(chan_error(P.b), "");
}
END_TEST

START_TEST(test_send_empty)
{
	pair_open(&P, 1000, 1 << 20, 1000, 1 << 20);
	/* The wire has no empty frames: an empty message is refused. */
	ck_assert_int_eq(chan_send(P.a, "", 0), -1);
	ck_assert_msg(strstr(chan_error(P.a), "empty"), "error: %s", chan_error(P.a));
}
END_TEST

START_TEST(test_send_queue_bound)
{
	pair_open(&P, 4096, 1024, 4096, 1 << 20);
	static char buf[4096];
	/* Within the frame limit, but more than the queue may hold. */
	ck_assert_int_eq(chan_send(P.a, buf, 2000), -1);
	ck_assert_msg(strstr(chan_error(P.a), "queue"), "error: %s", chan_error(P.a));
	const void *m;
	size_t len;
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), -1);
}
END_TEST

START_TEST(test_wake_below)
{
	/* b's owner reads nothing: a's queue stays deep. chan_wake_below wakes
	 * a's owner only once the queue is back to the mark, after b took. */
	enum { N = 200, LEN = 64 * 1024, MARK = 1 << 20 };
	pair_open(&P, 1 << 20, 64 << 20, 1 << 20, 256 * 1024);
	static char buf[LEN];
	for (int i = 0; i < N; i++)
		ck_assert_int_eq(chan_send(P.a, buf, LEN), 0);
	usleep(200000);
	struct chan_stats st;
	chan_get_stats(P.a, &st);
	ck_assert_uint_gt(st.queued_bytes, 2 * MARK); /* the kernel took some, not all */
	unsigned seen = wakes(&P.wa);
	chan_wake_below(P.a, MARK);
	usleep(200000);
	ck_assert_uint_eq(wakes(&P.wa), seen); /* still deep: no wake */
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
		if (wakes(&P.wa) != seen) {
			/* Woken: the queue has fallen to the mark by now. */
			chan_get_stats(P.a, &st);
			ck_assert_uint_le(st.queued_bytes, MARK);
		}
	}
	wait_wake(&P.wa, seen, now_ms() + WAIT_MS);
	ck_assert_uint_eq(wakes(&P.wa), seen + 1); /* once */
	/* Already below: at once. */
	chan_wake_below(P.a, MARK);
	ck_assert_uint_eq(wakes(&P.wa), seen + 2);
}
END_TEST

START_TEST(test_close_here)
{
	pair_open(&P, 1000, 1 << 20, 1000, 1 << 20);
	chan_close(P.a);
	ck_assert_int_eq(chan_send(P.a, "x", 1), -1);
	const void *m;
	size_t len;
	ck_assert_int_eq(recv_wait(P.a, &P.wa, &m, &len), -1);
	ck_assert_str_eq(chan_error(P.a), "closed here");
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), -1);
}
END_TEST

START_TEST(test_oversized_header)
{
	int fd = raw_connect(1000, 1 << 20);
	/* Declares one byte more than the limit: cut off before the body. */
	raw_frame(fd, 1001, "abc", 3);
	const void *m;
	size_t len;
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), -1);
	ck_assert_str_eq(chan_error(P.b), "frame over the size limit");
	/* The owner frees the channel on the end: the peer is disconnected. */
	chan_free(P.b);
	P.b = NULL;
	ck_assert(raw_sees_close(fd));
	close(fd);
}
END_TEST

START_TEST(test_huge_header)
{
	/* 4 GiB declared: refused at once, nothing that size is allocated
	 * (valgrind and ASan would notice). */
	int fd = raw_connect(16 << 20, 1 << 20);
	raw_send(fd, "\xff\xff\xff\xff", 4);
	const void *m;
	size_t len;
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), -1);
	ck_assert_str_eq(chan_error(P.b), "frame over the size limit");
	close(fd);
}
END_TEST

START_TEST(test_empty_frame_header)
{
	int fd = raw_connect(1000, 1 << 20);
	raw_frame(fd, 5, "hello", 5);
	raw_frame(fd, 0, NULL, 0);
	const void *m;
	size_t len;
	/* What came before the bad frame is delivered, then the end. */
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(m, "hello", 5);
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), -1);
	ck_assert_str_eq(chan_error(P.b), "empty frame");
	close(fd);
}
END_TEST

START_TEST(test_frames_split_and_joined)
{
	int fd = raw_connect(1 << 20, 4 << 20);
	/* Three frames in one write. */
	char three[4 + 1 + 4 + 2 + 4 + 3];
	memcpy(three, "\0\0\0\1a\0\0\0\2bb\0\0\0\3ccc", sizeof three);
	raw_send(fd, three, sizeof three);
	/* One frame a byte at a time, header included. */
	char one[4 + 10];
	memcpy(one, "\0\0\0\n0123456789", sizeof one); /* \n: length 10 */
	for (size_t i = 0; i < sizeof one; i++)
		raw_send(fd, one + i, 1);
	/* One frame larger than the 64 KiB read buffer. */
	static char big[200000];
	for (size_t i = 0; i < sizeof big; i++)
		big[i] = (char)(i * 7);
	raw_frame(fd, sizeof big, big, sizeof big);

	const char *want[] = { "a", "bb", "ccc", "0123456789" };
	const void *m;
	size_t len;
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
		ck_assert_uint_eq(len, strlen(want[i]));
		ck_assert_mem_eq(m, want[i], len);
	}
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
	ck_assert_uint_eq(len, sizeof big);
	ck_assert(memcmp(m, big, sizeof big) == 0);
	ck_assert_int_eq(chan_recv(P.b, &m, &len), 0);
	close(fd);
}
END_TEST

START_TEST(test_delivered_before_end)
{
	int fd = raw_connect(1000, 1 << 20);
	raw_frame(fd, 3, "one", 3);
	raw_frame(fd, 3, "two", 3);
	raw_frame(fd, 5, "three", 5);
	raw_frame(fd, 100, "half a frame", 12); /* the peer dies mid-frame */
	close(fd);
	const char *want[] = { "one", "two", "three" };
	const void *m;
	size_t len;
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
		ck_assert_mem_eq(m, want[i], strlen(want[i]));
	}
	ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), -1);
	ck_assert_str_ne(chan_error(P.b), "");
	/* The end stays the end. */
	ck_assert_int_eq(chan_recv(P.b, &m, &len), -1);
}
END_TEST

START_TEST(test_receive_pauses_for_slow_owner)
{
	/* b takes nothing for a while: it stops reading after max_queue bytes
	 * instead of buffering everything the peer sends; once it takes, all
	 * of it arrives in order. */
	enum { N = 200, LEN = 8192, QUEUE = 64 * 1024 };
	pair_open(&P, 1 << 20, 8 << 20, 1 << 20, QUEUE);
	static char buf[LEN];
	for (int i = 0; i < N; i++) {
		memset(buf, i, LEN);
		ck_assert_int_eq(chan_send(P.a, buf, LEN), 0);
	}
	/* Wait until a has handed everything to the kernel and b has read
	 * past its bound. */
	long long deadline = now_ms() + WAIT_MS;
	struct chan_stats sa, sb;
	do {
		usleep(10000);
		chan_get_stats(P.a, &sa);
		chan_get_stats(P.b, &sb);
	} while ((sa.queued_bytes > 0 || sb.rx_bytes <= QUEUE) && now_ms() < deadline);
	ck_assert_uint_eq(sa.queued_bytes, 0);
	ck_assert_uint_gt(sb.rx_bytes, QUEUE);
	usleep(200000);
	chan_get_stats(P.b, &sb);
	/* At most the bound, one 64 KiB read and a partial frame with the
	 * headers (well under 2 x 64 KiB) more: not the 1.6 MB sent. */
	ck_assert_uint_le(sb.rx_bytes, QUEUE + 2 * 64 * 1024);
	ck_assert_uint_lt(sb.rx_msgs, N);
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(recv_wait(P.b, &P.wb, &m, &len), 1);
		ck_assert_uint_eq(len, LEN);
		ck_assert_int_eq(((const unsigned char *)m)[0], (unsigned char)i);
		ck_assert_int_eq(((const unsigned char *)m)[LEN - 1], (unsigned char)i);
	}
	ck_assert_str_eq(chan_error(P.b), "");
}
END_TEST

START_TEST(test_listener_accepts_many)
{
	enum { N = 3 };
	pair_listen(&P);
	struct waker wd[N];
	struct chan *c[N], *s[N];
	for (int i = 0; i < N; i++) {
		waker_init(&wd[i]);
		c[i] = chan_new(dial_stream(P.url), 100, 1 << 20, on_wake, &wd[i]);
	}
	for (int i = 0; i < N; i++) {
		nng_stream *st = take_accepted(P.l, &P.wl);
		ck_assert_ptr_nonnull(st);
		s[i] = chan_new(st, 100, 1 << 20, on_wake, &P.wb);
	}
	ck_assert_ptr_null(chan_listener_take(P.l));
	/* Each dialer's message arrives on exactly one accepted channel. */
	for (int i = 0; i < N; i++) {
		char t[2] = { (char)('0' + i), 0 };
		ck_assert_int_eq(chan_send(c[i], t, 1), 0);
	}
	int got = 0;
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(recv_wait(s[i], &P.wb, &m, &len), 1);
		ck_assert_uint_eq(len, 1);
		got |= 1 << (((const char *)m)[0] - '0');
		ck_assert_int_eq(chan_recv(s[i], &m, &len), 0);
	}
	ck_assert_int_eq(got, (1 << N) - 1);
	for (int i = 0; i < N; i++) {
		chan_free(c[i]);
		chan_free(s[i]);
		waker_destroy(&wd[i]);
	}
}
END_TEST

START_TEST(test_bad_urls)
{
	char err[256] = "";
	/* What --listen 7100 hits. */
	ck_assert_ptr_null(chan_listener_new("7100", on_wake, &P.wl, err, sizeof err));
	ck_assert_msg(strstr(err, "cannot listen on 7100"), "error: %s", err);
	/* A port already taken. */
	pair_listen(&P);
	err[0] = '\0';
	ck_assert_ptr_null(chan_listener_new(P.url, on_wake, &P.wl, err, sizeof err));
	ck_assert_msg(strstr(err, "cannot listen on") && strstr(err, P.url), "error: %s", err);
	/* Freeing nothing is allowed. */
	chan_free(NULL);
	chan_listener_free(NULL);
}
END_TEST

static Suite *chan_suite(void)
{
	Suite *s = suite_create("chan");
	TCase *tc = tcase_create("chan");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip_in_order);
	tcase_add_test(tc, test_small_messages_batched);
	tcase_add_test(tc, test_keep_outlives_recv_and_free);
	tcase_add_test(tc, test_send_take_in_order);
	tcase_add_test(tc, test_peer_address);
	tcase_add_test(tc, test_send_over_size_limit);
	tcase_add_test(tc, test_send_empty);
	tcase_add_test(tc, test_send_queue_bound);
	tcase_add_test(tc, test_wake_below);
	tcase_add_test(tc, test_close_here);
	tcase_add_test(tc, test_oversized_header);
	tcase_add_test(tc, test_huge_header);
	tcase_add_test(tc, test_empty_frame_header);
	tcase_add_test(tc, test_frames_split_and_joined);
	tcase_add_test(tc, test_delivered_before_end);
	tcase_add_test(tc, test_receive_pauses_for_slow_owner);
	tcase_add_test(tc, test_listener_accepts_many);
	tcase_add_test(tc, test_bad_urls);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(chan_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
