/* Unit tests for router/loopchan.c: the router's end of an edge link on a
 * libuv loop. The far end is what the edge really runs, common/chan.c on
 * nng (a chan_listener on loopback in this process), or a raw socket where a
 * test needs bytes chan would never send. What the router relies on: every
 * frame arrives whole and in order both ways, copied or taken; a kept frame
 * outlives the channel; reading pauses for an owner that does not take; the
 * size and queue limits and bad headers end the connection with a reason,
 * after what came before it; it dials before the edge is up and again after
 * the edge went away; freeing it in any state leaves nothing behind (the
 * loop closes with no handle left, and ASan and valgrind see no leak). */
#include "loopchan.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chan.h"

#define WAIT_MS 20000 /* generous: valgrind and a loaded machine */

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nop_wake(void *arg)
{
	(void)arg;
}

static unsigned news;
static void on_news(void *arg)
{
	(void)arg;
	news++;
}

/* ---- the fixture: a loop, the router's end (a), the edge's end (b) ---- */

static uv_loop_t L;
static struct loopchan *A;
static struct chan_listener *Lis;
static struct chan *B;
static char url[64];
static int port;

/* One turn of the router's loop, then a moment for nng's threads. */
static void pump(void)
{
	uv_run(&L, UV_RUN_NOWAIT);
	usleep(200);
}

static void pump_for(int ms)
{
	long long until = now_ms() + ms;
	while (now_ms() < until)
		pump();
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

static void setup(void)
{
	ck_assert_int_eq(uv_loop_init(&L), 0);
	A = NULL;
	B = NULL;
	Lis = NULL;
	news = 0;
	port = free_port();
	snprintf(url, sizeof url, "tcp://127.0.0.1:%d", port);
}

static void teardown(void)
{
	loopchan_free(A);
	chan_free(B);
	chan_listener_free(Lis);
	/* The close callbacks (and a lookup still under way) run, and then
	 * nothing of the channel may be left on the loop. */
	uv_run(&L, UV_RUN_DEFAULT);
	ck_assert_int_eq(uv_loop_close(&L), 0);
}

static void edge_listen(void)
{
	char err[256] = "";
	Lis = chan_listener_new(url, nop_wake, NULL, err, sizeof err);
	ck_assert_msg(Lis != NULL, "listen: %s", err);
}

static struct loopchan *dial(size_t max_msg, size_t max_queue)
{
	char err[256] = "";
	struct loopchan *c =
		loopchan_new(&L, url, max_msg, max_queue, on_news, NULL, err, sizeof err);
	ck_assert_msg(c != NULL, "loopchan_new: %s", err);
	return c;
}

static void wait_connected(struct loopchan *c)
{
	long long deadline = now_ms() + WAIT_MS;
	while (!loopchan_connected(c)) {
		ck_assert_msg(now_ms() < deadline, "not connected: %s", loopchan_error(c));
		pump();
	}
}

/* The edge's side of the connection the router made. */
static struct chan *edge_accept(size_t max_msg, size_t max_queue)
{
	long long deadline = now_ms() + WAIT_MS;
	nng_stream *s;
	while (!(s = chan_listener_take(Lis))) {
		ck_assert_msg(now_ms() < deadline, "the edge accepted nothing");
		pump();
	}
	return chan_new(s, max_msg, max_queue, nop_wake, NULL);
}

static void connect_pair(size_t a_max_msg, size_t a_queue)
{
	edge_listen();
	A = dial(a_max_msg, a_queue);
	wait_connected(A);
	B = edge_accept(4 << 20, 64 << 20);
}

/* loopchan_recv as the router does it, turning the loop until a frame (1)
 * or the end (-1) comes, or WAIT_MS pass (0). */
static int a_recv(const void **buf, size_t *len)
{
	long long deadline = now_ms() + WAIT_MS;
	for (;;) {
		int rc = loopchan_recv(A, buf, len);
		if (rc != 0 || now_ms() >= deadline)
			return rc;
		pump();
	}
}

static int b_recv(const void **buf, size_t *len)
{
	long long deadline = now_ms() + WAIT_MS;
	for (;;) {
		int rc = chan_recv(B, buf, len);
		if (rc != 0 || now_ms() >= deadline)
			return rc;
		pump();
	}
}

/* Message i of a test stream: small, 1 KB, around the 16 KiB read chunk,
 * or (every 50th) a 1 MiB frame read mostly straight into its memory. */
static size_t msg_len(int i)
{
	if (i % 50 == 49)
		return (1 << 20) + (size_t)i;
	switch (i % 3) {
	case 0:
		return 1 + (size_t)(i % 100);
	case 1:
		return 1000 + (size_t)i;
	default:
		return 16000 + (size_t)(i * 37 % 1000);
	}
}

static void msg_fill(char *buf, int i, size_t len)
{
	for (size_t k = 0; k < len; k++)
		buf[k] = (char)(i * 31 + (int)k);
}

static void assert_msg(const void *buf, size_t len, int i)
{
	static char want[(1 << 20) + 1000];
	ck_assert_uint_eq(len, msg_len(i));
	msg_fill(want, i, len);
	ck_assert_msg(memcmp(buf, want, len) == 0, "message %d: wrong bytes", i);
}

/* A raw TCP listener for the tests that send what chan never would. */
static int raw_listen(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static int raw_accept(int lfd)
{
	long long deadline = now_ms() + WAIT_MS;
	int fd;
	while ((fd = accept(lfd, NULL, NULL)) < 0) {
		ck_assert_msg(now_ms() < deadline, "nothing connected");
		pump();
	}
	return fd;
}

static void raw_header(int fd, uint32_t declared)
{
	uint32_t n = htonl(declared);
	ck_assert_int_eq(send(fd, &n, 4, MSG_NOSIGNAL), 4);
}

/* ---- tests ---- */

START_TEST(test_roundtrip_in_order)
{
	enum { N = 300 };
	connect_pair(4 << 20, 64 << 20);
	ck_assert_str_eq(loopchan_error(A), "");
	static char buf[(1 << 20) + 1000];
	/* Router to edge: copied and taken, alternately. */
	for (int i = 0; i < N; i++) {
		size_t len = msg_len(i);
		if (i % 2) {
			char *p = malloc(len);
			msg_fill(p, i, len);
			ck_assert_int_eq(loopchan_send_take(A, p, len), 0);
		} else {
			msg_fill(buf, i, len);
			ck_assert_int_eq(loopchan_send(A, buf, len), 0);
		}
	}
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(b_recv(&m, &len), 1);
		assert_msg(m, len, i);
	}
	/* Edge to router: the DELIVER direction. */
	for (int i = 0; i < N; i++) {
		msg_fill(buf, i, msg_len(i));
		ck_assert_int_eq(chan_send(B, buf, msg_len(i)), 0);
	}
	uint64_t bytes = 0;
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(a_recv(&m, &len), 1);
		assert_msg(m, len, i);
		bytes += 4 + len;
	}
	const void *m;
	size_t len;
	ck_assert_int_eq(loopchan_recv(A, &m, &len), 0); /* nothing more, still open */
	ck_assert(!loopchan_connected(A));               /* announced once */
	struct loopchan_stats st;
	loopchan_get_stats(A, &st);
	ck_assert_uint_eq(st.rx_msgs, N);
	ck_assert_uint_eq(st.rx_bytes, bytes);
	ck_assert_uint_eq(st.tx_msgs, N);
	ck_assert_uint_eq(st.attempts, 1);
	/* Fewer reads than frames: small frames come many to a read. */
	ck_assert_uint_lt(st.rx_reads, st.rx_msgs + 6 * (N / 50) * 16);
	ck_assert_uint_gt(news, 0);
	char want[32];
	snprintf(want, sizeof want, "127.0.0.1:%d", port);
	ck_assert_str_eq(loopchan_peer(A), want);
}
END_TEST

START_TEST(test_keep_outlives_recv_and_free)
{
	connect_pair(4 << 20, 64 << 20);
	static char buf[(1 << 20) + 1000];
	for (int i = 47; i < 50; i++) { /* 1 KB, 16 KB, 1 MiB */
		msg_fill(buf, i, msg_len(i));
		ck_assert_int_eq(chan_send(B, buf, msg_len(i)), 0);
	}
	void *kept[3];
	const void *m[3];
	for (int i = 0; i < 3; i++) {
		size_t len;
		ck_assert_int_eq(a_recv(&m[i], &len), 1);
		kept[i] = loopchan_keep(A);
		ck_assert_ptr_nonnull(kept[i]);
		ck_assert_ptr_null(loopchan_keep(A)); /* once */
		ck_assert_uint_ge(loopchan_kept_size(kept[i]), len);
	}
	loopchan_free(A);
	A = NULL;
	uv_run(&L, UV_RUN_DEFAULT);
	for (int i = 0; i < 3; i++) {
		assert_msg(m[i], msg_len(47 + i), 47 + i);
		loopchan_kept_free(kept[i]);
	}
	loopchan_kept_free(NULL);
}
END_TEST

START_TEST(test_dial_before_listen_and_redial)
{
	/* Nobody listens yet: it keeps trying, saying why. */
	A = dial(1000, 1 << 20);
	pump_for(400);
	ck_assert(!loopchan_connected(A));
	ck_assert_msg(strstr(loopchan_error(A), "refused"), "error: %s", loopchan_error(A));
	struct loopchan_stats st;
	loopchan_get_stats(A, &st);
	ck_assert_uint_ge(st.attempts, 2);
	ck_assert_uint_le(st.attempts, 5); /* 100, 200 ms back-off: not a busy loop */
	/* The edge comes up. */
	edge_listen();
	wait_connected(A);
	B = edge_accept(1000, 1 << 20);
	ck_assert_int_eq(loopchan_send(A, "first", 5), 0);
	const void *m;
	size_t len;
	ck_assert_int_eq(b_recv(&m, &len), 1);
	ck_assert_mem_eq(m, "first", 5);
	ck_assert_int_eq(chan_send(B, "back", 4), 0);
	/* The edge goes away right after it sent something: that still
	 * arrives, then the end, with the reason. */
	usleep(50000);
	chan_free(B);
	B = NULL;
	chan_listener_free(Lis);
	Lis = NULL;
	ck_assert_int_eq(a_recv(&m, &len), 1);
	ck_assert_mem_eq(m, "back", 4);
	ck_assert_int_eq(a_recv(&m, &len), -1);
	ck_assert_str_eq(loopchan_error(A), "closed by the edge");
	ck_assert_int_eq(loopchan_recv(A, &m, &len), -1); /* until redial */
	ck_assert_int_eq(loopchan_send(A, "x", 1), -1);
	loopchan_redial(A);
	pump_for(300);
	ck_assert(!loopchan_connected(A));
	/* It comes back on the same address: a new connection, working. */
	edge_listen();
	wait_connected(A);
	B = edge_accept(1000, 1 << 20);
	ck_assert_str_eq(loopchan_error(A), "");
	ck_assert_int_eq(loopchan_send(A, "second", 6), 0);
	ck_assert_int_eq(b_recv(&m, &len), 1);
	ck_assert_mem_eq(m, "second", 6);
}
END_TEST

START_TEST(test_receive_pauses_for_slow_owner)
{
	enum { N = 200, LEN = 8192, QUEUE = 64 * 1024 };
	connect_pair(1 << 20, QUEUE);
	static char buf[LEN];
	for (int i = 0; i < N; i++) {
		memset(buf, i, LEN);
		ck_assert_int_eq(chan_send(B, buf, LEN), 0);
	}
	pump_for(300); /* the loop runs; the router takes nothing */
	struct loopchan_stats st;
	loopchan_get_stats(A, &st);
	ck_assert_uint_gt(st.rx_bytes, QUEUE);
	/* The bound, then at most one 16 KiB read and a frame: not 1.6 MB. */
	ck_assert_uint_le(st.rx_bytes, QUEUE + 16384 + LEN + 4);
	for (int i = 0; i < N; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(a_recv(&m, &len), 1);
		ck_assert_uint_eq(len, LEN);
		ck_assert_int_eq(((const unsigned char *)m)[0], (unsigned char)i);
		ck_assert_int_eq(((const unsigned char *)m)[LEN - 1], (unsigned char)i);
	}
	ck_assert_str_eq(loopchan_error(A), "");
}
END_TEST

/* A raw edge sends a good frame, then a bad header: the good one arrives,
 * then the end with why; the raw edge sees the connection closed. */
static void bad_header(uint32_t declared, const char *why)
{
	int lfd = raw_listen();
	A = dial(1000, 1 << 20);
	int fd = raw_accept(lfd);
	wait_connected(A);
	raw_header(fd, 2);
	ck_assert_int_eq(send(fd, "ok", 2, MSG_NOSIGNAL), 2);
	raw_header(fd, declared);
	const void *m;
	size_t len;
	ck_assert_int_eq(a_recv(&m, &len), 1);
	ck_assert_mem_eq(m, "ok", 2);
	ck_assert_int_eq(a_recv(&m, &len), -1);
	ck_assert_str_eq(loopchan_error(A), why);
	pump_for(50);
	char c;
	ck_assert_int_eq(recv(fd, &c, 1, 0), 0);
	close(fd);
	close(lfd);
}

START_TEST(test_oversized_header)
{
	bad_header(1001, "frame over the size limit");
}
END_TEST

START_TEST(test_huge_header)
{
	bad_header(0xffffffffu, "frame over the size limit");
}
END_TEST

START_TEST(test_empty_frame_header)
{
	bad_header(0, "empty frame");
}
END_TEST

START_TEST(test_frames_split_and_joined)
{
	/* Headers and bodies cut anywhere, several frames in one segment. */
	int lfd = raw_listen();
	A = dial(1000, 1 << 20);
	int fd = raw_accept(lfd);
	wait_connected(A);
	const char wire[] = "\0\0\0\3abc\0\0\0\1d\0\0\0\5efghi";
	size_t cuts[] = { 1, 2, 5, 6, 9, 13, 15, sizeof wire - 1 };
	size_t at = 0;
	for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
		ck_assert_int_eq(send(fd, wire + at, cuts[i] - at, MSG_NOSIGNAL),
				 (ssize_t)(cuts[i] - at));
		at = cuts[i];
		pump_for(5);
	}
	const char *want[] = { "abc", "d", "efghi" };
	for (int i = 0; i < 3; i++) {
		const void *m;
		size_t len;
		ck_assert_int_eq(a_recv(&m, &len), 1);
		ck_assert_uint_eq(len, strlen(want[i]));
		ck_assert_mem_eq(m, want[i], len);
	}
	close(fd);
	close(lfd);
}
END_TEST

START_TEST(test_send_limits)
{
	const void *m;
	size_t len;
	A = dial(1000, 64 * 1024);
	ck_assert_int_eq(loopchan_send(A, "early", 5), -1); /* not connected */
	loopchan_free(A);
	A = NULL;
	int lfd = raw_listen();
	/* Over the size limit: refused, and the connection ends. */
	A = dial(1000, 64 * 1024);
	int fd = raw_accept(lfd);
	wait_connected(A);
	static char big[16384];
	ck_assert_int_eq(loopchan_send(A, big, 1001), -1);
	ck_assert_int_eq(a_recv(&m, &len), -1);
	ck_assert_str_eq(loopchan_error(A), "message over the size limit");
	close(fd);
	/* Empty. */
	loopchan_redial(A);
	fd = raw_accept(lfd);
	wait_connected(A);
	ck_assert_int_eq(loopchan_send(A, big, 0), -1);
	ck_assert_int_eq(a_recv(&m, &len), -1);
	ck_assert_str_eq(loopchan_error(A), "empty message (the wire has no empty frames)");
	close(fd);
	/* An edge that reads nothing: the queue fills, the router hangs up
	 * instead of holding more. */
	loopchan_redial(A);
	fd = raw_accept(lfd);
	wait_connected(A);
	int sent = 0, rc = 0;
	while (sent < 100000 && (rc = loopchan_send(A, big, 1000)) == 0) {
		sent++;
		if (sent % 64 == 0)
			pump();
	}
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(a_recv(&m, &len), -1);
	ck_assert_str_eq(loopchan_error(A), "send queue full: the edge is too slow");
	close(fd);
	close(lfd);
}
END_TEST

START_TEST(test_connect_times_out)
{
	/* An edge whose accept queue is full drops the router's SYNs (as an
	 * address that is gone would): the attempt gives up after its bound
	 * and tries again, instead of waiting out the kernel's two minutes. */
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	ck_assert_int_eq(listen(lfd, 0), 0);
	int fill[4];
	for (int i = 0; i < 4; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fill[i], (struct sockaddr *)&sa, sizeof sa);
	}
	usleep(100000);
	A = dial(1000, 1 << 20);
	pump_for(5600);
	ck_assert(!loopchan_connected(A));
	ck_assert_str_eq(loopchan_error(A), "connect timed out");
	struct loopchan_stats st;
	loopchan_get_stats(A, &st);
	ck_assert_uint_eq(st.attempts, 2); /* the second began 100 ms later */
	for (int i = 0; i < 4; i++)
		close(fill[i]);
	close(lfd);
}
END_TEST

START_TEST(test_close_here)
{
	connect_pair(1000, 1 << 20);
	ck_assert_int_eq(chan_send(B, "before", 6), 0);
	const void *m;
	size_t len;
	ck_assert_int_eq(a_recv(&m, &len), 1);
	loopchan_close(A);
	ck_assert_int_eq(loopchan_recv(A, &m, &len), -1);
	ck_assert_str_eq(loopchan_error(A), "closed here");
	ck_assert_int_eq(b_recv(&m, &len), -1); /* the edge sees the end */
}
END_TEST

START_TEST(test_urls)
{
	const char *bad[] = { "127.0.0.1:7100",  "http://127.0.0.1:7100",
			      "tcp://127.0.0.1", "tcp://127.0.0.1:",
			      "tcp://:7100",     "tcp://h:0",
			      "tcp://h:70000",   "tcp://h:7x",
			      "tcp://[::1:7100" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		char err[256] = "";
		ck_assert_ptr_null(
			loopchan_new(&L, bad[i], 10, 10, on_news, NULL, err, sizeof err));
		ck_assert_msg(strstr(err, bad[i]) && strstr(err, "expected tcp://HOST:PORT"),
			      "%s: %s", bad[i], err);
	}
	/* A name resolving to both ::1 and 127.0.0.1 reaches an edge listening
	 * on IPv4 only (the edge's default listens on 0.0.0.0). */
	edge_listen();
	snprintf(url, sizeof url, "tcp://localhost:%d", port);
	A = dial(1000, 1 << 20);
	wait_connected(A);
	B = edge_accept(1000, 1 << 20);
	char want[32];
	snprintf(want, sizeof want, "127.0.0.1:%d", port);
	ck_assert_str_eq(loopchan_peer(A), want);
	loopchan_free(A);
	/* An IPv6 address in brackets parses (nothing needs to listen). */
	snprintf(url, sizeof url, "tcp://[::1]:%d", port);
	A = dial(1000, 1 << 20);
	loopchan_free(NULL);
}
END_TEST

START_TEST(test_free_in_every_state)
{
	/* Looking a name up, connecting to an address, sleeping between
	 * attempts, open with frames queued each way: teardown's loop check
	 * says nothing was left. */
	char ip_url[64];
	snprintf(ip_url, sizeof ip_url, "%s", url);
	snprintf(url, sizeof url, "tcp://localhost:%d", port);
	A = dial(1000, 1 << 20);
	loopchan_free(A);
	snprintf(url, sizeof url, "%s", ip_url);
	A = dial(1000, 1 << 20);
	loopchan_free(A);
	A = dial(1000, 1 << 20);
	pump_for(150);
	loopchan_free(A);
	connect_pair(1000, 1 << 20);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(chan_send(B, "to the router", 13), 0);
		ck_assert_int_eq(loopchan_send(A, "to the edge", 11), 0);
	}
	pump_for(50);
	const void *m;
	size_t len;
	ck_assert_int_eq(a_recv(&m, &len), 1); /* one taken, the rest queued */
}
END_TEST

static Suite *loopchan_suite(void)
{
	Suite *s = suite_create("loopchan");
	TCase *tc = tcase_create("loopchan");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_roundtrip_in_order);
	tcase_add_test(tc, test_keep_outlives_recv_and_free);
	tcase_add_test(tc, test_dial_before_listen_and_redial);
	tcase_add_test(tc, test_receive_pauses_for_slow_owner);
	tcase_add_test(tc, test_oversized_header);
	tcase_add_test(tc, test_huge_header);
	tcase_add_test(tc, test_empty_frame_header);
	tcase_add_test(tc, test_frames_split_and_joined);
	tcase_add_test(tc, test_send_limits);
	tcase_add_test(tc, test_close_here);
	tcase_add_test(tc, test_connect_times_out);
	tcase_add_test(tc, test_urls);
	tcase_add_test(tc, test_free_in_every_state);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(loopchan_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
