/*
 * check_admin: unit tests of common/admin.c. The parser: valid requests,
 * every prefix of them needing more, pipelining, and each kind of malformed
 * input with its status. The helpers: query, path parameter, headers. The
 * server, in process on 127.0.0.1:0 with a blocking client: built-in
 * /healthz, routing (404, 405 + Allow), bearer auth (401, 403), limits
 * (413, 411, 400, 64 connections, idle timeout), and the handoff of
 * ADMIN_ON_LOOP handlers to an owner loop played by a test thread.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "util.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---------------------------------------------------------------- requests */

static const struct target {
	const char *target, *path, *query; /* path NULL: refused */
} targets[] = {
	{ "/", "/", "" },
	{ "/healthz", "/healthz", "" },
	{ "/a?b=c&d", "/a", "b=c&d" },
	{ "/q?", "/q", "" },
	{ "/x?a?b", "/x", "a?b" },
	{ "/%41/b%2F?%3F", "/%41/b%2F", "%3F" },
	{ "//x", "//x", "" },
	{ "http://h/", NULL, NULL },
	{ "*", NULL, NULL },
	{ "", NULL, NULL },
	{ "?a=1", NULL, NULL },
};

START_TEST(request_init)
{
	const struct target *t = &targets[_i];
	char *buf = xstrdup(t->target);
	struct admin_request r;
	int err = admin_request_init(&r, "GET", buf);

	ck_assert_str_eq(r.method, "GET");
	if (!t->path) {
		ck_assert_int_eq(err, -EINVAL);
	} else {
		ck_assert_int_eq(err, 0);
		ck_assert_str_eq(r.path, t->path);
		ck_assert_uint_eq(r.path_len, strlen(t->path));
		ck_assert_str_eq(r.query, t->query);
	}
	ck_assert_ptr_null(r.body);
	ck_assert_ptr_null(r.scratch);
	ck_assert_ptr_null(admin_header(&r, "Host"));
	free(buf);
}
END_TEST

START_TEST(bearer)
{
	static const char *const wrong[] = {
		"Bearer s3cre",   "Bearer s3cret2", "Bearer S3cret", "Basic s3cret",
		"Bearers3cret",   "s3cret",         "Bearer",        "",
		"Bearer  s3cret",
	};

	ck_assert(admin_bearer_ok("s3cret", "Bearer s3cret"));
	ck_assert(admin_bearer_ok("s3cret", "bEARER s3cret"));
	ck_assert(admin_bearer_ok("s3cret", "Bearer s3cret \t")); /* blanks around a value */
	for (size_t i = 0; i < N(wrong); i++)
		ck_assert_msg(!admin_bearer_ok("s3cret", wrong[i]), "%s", wrong[i]);
	ck_assert(!admin_bearer_ok("s3cret", NULL));
}
END_TEST

/* Splits a copy of target into r as the server does, sets a scratch. */
static char *parsed(const char *target, struct admin_request *r)
{
	char *buf = xstrdup(target);

	ck_assert_int_eq(admin_request_init(r, "GET", buf), 0);
	r->scratch = xmalloc(r->path_len + 1);
	return buf;
}

START_TEST(query_get)
{
	struct admin_request r;
	char *buf = parsed("/x?a=1&b=x+y%20z&c&d=&e=%2&f=%00&a=2&%62%2B=k&long=12345678", &r);
	char v[8];

	ck_assert_int_eq(admin_query_get(&r, "a", v, sizeof v), 0);
	ck_assert_str_eq(v, "1");
	ck_assert_int_eq(admin_query_get(&r, "b", v, sizeof v), 0);
	ck_assert_str_eq(v, "x y z");
	ck_assert_int_eq(admin_query_get(&r, "c", v, sizeof v), 0);
	ck_assert_str_eq(v, "");
	ck_assert_int_eq(admin_query_get(&r, "d", v, sizeof v), 0);
	ck_assert_str_eq(v, "");
	ck_assert_int_eq(admin_query_get(&r, "e", v, sizeof v), -EINVAL);
	ck_assert_int_eq(admin_query_get(&r, "f", v, sizeof v), -EINVAL);
	ck_assert_int_eq(admin_query_get(&r, "b+", v, sizeof v), 0);
	ck_assert_str_eq(v, "k");
	ck_assert_int_eq(admin_query_get(&r, "long", v, sizeof v), -ENOSPC);
	ck_assert_int_eq(admin_query_get(&r, "long", v, 7), -ENOSPC);
	ck_assert_int_eq(admin_query_get(&r, "missing", v, sizeof v), -ENOENT);
	ck_assert_int_eq(admin_query_get(&r, "a", v, 0), -ENOSPC);
	free(r.scratch);
	free(buf);

	buf = parsed("/x", &r);
	ck_assert_int_eq(admin_query_get(&r, "a", v, sizeof v), -ENOENT);
	free(r.scratch);
	free(buf);
}
END_TEST

START_TEST(path_param)
{
	struct admin_request r;
	char *buf = parsed("/clients/a%2Fb+c%41", &r);

	ck_assert_str_eq(admin_path_param(&r, "/clients/"), "a/b+cA");
	ck_assert_str_eq(admin_path_param(&r, "/clients/a"), "/b+cA");
	ck_assert_ptr_null(admin_path_param(&r, "/users/"));
	ck_assert_ptr_null(admin_path_param(&r, "/clients/a%2Fb+c%41"));
	free(r.scratch);
	free(buf);

	buf = parsed("/clients/%zz", &r);
	ck_assert_ptr_null(admin_path_param(&r, "/clients/"));
	free(r.scratch);
	r.scratch = NULL;
	ck_assert_ptr_null(admin_path_param(&r, "/"));
	free(buf);
}
END_TEST

/* ----------------------------------------------------------------- server */

static struct admin *adm;
static int owner_efd = -1;
static atomic_int wakes;
static pthread_t owner_thread;
static atomic_bool owner_stop, owner_running;
/* Taken just before each admin_loop_alive: never later than the tick it
 * precedes. */
static _Atomic int64_t owner_tick_ms;
static int ran_on_owner; /* handlers that ran on the owner thread */
static int ran_elsewhere;

static void wake(void *arg)
{
	uint64_t one = 1;

	atomic_fetch_add(&wakes, 1);
	if (write(*(int *)arg, &one, sizeof one) < 0)
		abort();
}

/* The owner's loop: waits for a wake (or 10 ms), ticks, runs the queue. */
static void *owner_main(void *arg)
{
	struct pollfd p = { .fd = owner_efd, .events = POLLIN };
	uint64_t v;

	while (!atomic_load(&owner_stop)) {
		if (poll(&p, 1, 10) > 0 && read(owner_efd, &v, sizeof v) < 0)
			abort();
		atomic_store(&owner_tick_ms, now_mono_ms());
		admin_loop_alive(adm);
		admin_run_pending(adm);
	}
	return NULL;
}

static void owner_start(void)
{
	atomic_store(&owner_stop, false);
	ck_assert_int_eq(pthread_create(&owner_thread, NULL, owner_main, NULL), 0);
	atomic_store(&owner_running, true);
}

static void owner_join(void)
{
	if (!atomic_load(&owner_running))
		return;
	atomic_store(&owner_stop, true);
	pthread_join(owner_thread, NULL);
	atomic_store(&owner_running, false);
}

static void h_hello(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	admin_response_text(resp, 200, "text/plain", "hi", 2);
}

static void h_client(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	char q[64] = "";

	if (admin_query_get(req, "q", q, sizeof q) == -EINVAL) {
		admin_response_error(resp, 400, "bad_query", "q is badly encoded");
		return;
	}
	admin_response_json(resp, 200,
			    json_pack("{s:s?,s:s,s:s}", "id", admin_path_param(req, "/clients/"),
				      "q", q, "method", req->method));
}

/* ON_LOOP: notes the thread and echoes the body. */
static void h_echo(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	if (atomic_load(&owner_running) && pthread_equal(pthread_self(), owner_thread))
		ran_on_owner++;
	else
		ran_elsewhere++;
	admin_response_text(resp, 201, "application/octet-stream", req->body, req->body_len);
	admin_response_header(resp, "X-Echo", "yes");
}

/* Echoes the X-Key header (x-KEY: names are case-insensitive). */
static void h_header(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	const char *v = admin_header(req, "x-KEY");

	admin_response_json(
		resp, 200,
		json_pack("{s:s?,s:b}", "x-key", v, "none", admin_header(req, "X-Ke") == NULL));
}

static void h_nothing(void *arg, const struct admin_request *req, struct admin_response *resp)
{
}

static void h_bad_json(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	ck_assert_int_eq(admin_response_header(resp, "Bad:Name", "v"), -EINVAL);
	ck_assert_int_eq(admin_response_header(resp, "Name", "v\r\nX: y"), -EINVAL);
	admin_response_json(resp, 200, json_string("not \xff utf-8")); /* NULL: 500 */
}

static struct admin *start(const char *token, int stall_ms, int loop_ms, int idle_s)
{
	struct admin_config cfg = { .token = token,
				    .wake = wake,
				    .wake_arg = &owner_efd,
				    .stall_ms = stall_ms,
				    .loop_timeout_ms = loop_ms,
				    .idle_timeout_s = idle_s };
	char err[256] = "";
	struct admin *a = admin_start("127.0.0.1:0", &cfg, err, sizeof err);

	ck_assert_msg(a != NULL, "%s", err);
	ck_assert_int_gt(admin_port(a), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/hello", h_hello, NULL, 0), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/clients/", h_client, NULL, 0), 0);
	ck_assert_int_eq(admin_route(a, "POST", "/clients/", h_client, NULL, ADMIN_NEEDS_TOKEN), 0);
	ck_assert_int_eq(admin_route(a, "POST", "/echo", h_echo, NULL, ADMIN_ON_LOOP), 0);
	ck_assert_int_eq(
		admin_route(a, "PUT", "/echo", h_echo, NULL, ADMIN_ON_LOOP | ADMIN_NEEDS_TOKEN), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/nothing", h_nothing, NULL, ADMIN_ON_LOOP), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/badjson", h_bad_json, NULL, 0), 0);
	ck_assert_int_eq(admin_route_static(a, "/ui", "text/html", "<p>ui</p>", 9), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/header", h_header, NULL, ADMIN_ON_LOOP), 0);
	return a;
}

static void server_setup(void)
{
	owner_efd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(owner_efd, 0);
	atomic_store(&wakes, 0);
	ran_on_owner = ran_elsewhere = 0;
	adm = start("s3cret", 0, 0, 0);
}

static void server_teardown(void)
{
	owner_join();
	admin_stop(adm);
	adm = NULL;
	close(owner_efd);
}

/* The calling thread's last reply: raw bytes, body. */
static _Thread_local char raw[ADMIN_MAX_BODY + 4096];
static _Thread_local size_t raw_len;
static _Thread_local const char *body;

static int dial(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(admin_port(adm)),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	return fd;
}

static void send_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		ck_assert_int_gt(n, 0);
		p += n;
		len -= (size_t)n;
	}
}

/* Reads the reply until EOF; returns its status (0: none). */
static int read_reply(int fd)
{
	ssize_t n;
	int status = 0;

	raw_len = 0;
	while ((n = recv(fd, raw + raw_len, sizeof raw - 1 - raw_len, 0)) > 0)
		raw_len += (size_t)n;
	raw[raw_len] = '\0';
	close(fd);
	body = strstr(raw, "\r\n\r\n");
	body = body ? body + 4 : raw + raw_len;
	if (sscanf(raw, "HTTP/1.1 %d ", &status) != 1)
		return 0;
	return status;
}

static int http_n(const char *req, size_t len)
{
	int fd = dial();

	send_all(fd, req, len);
	return read_reply(fd);
}

static int http(const char *req)
{
	return http_n(req, strlen(req));
}

/* The value of a reply header, or "" (copied into a static buffer). */
static const char *header(const char *name)
{
	static char v[256];
	char key[64];
	const char *p;

	snprintf(key, sizeof key, "\r\n%s: ", name);
	p = strstr(raw, key);
	v[0] = '\0';
	if (p && p < body)
		sscanf(p + strlen(key), "%255[^\r]", v);
	return v;
}

START_TEST(healthz)
{
	ck_assert_int_eq(http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
	ck_assert_str_eq(header("Content-Type"), "application/json");
	ck_assert_str_eq(header("Content-Length"), "16");
	ck_assert_str_eq(header("Cache-Control"), "no-store");
	ck_assert_str_eq(header("Connection"), "close");
	ck_assert_str_eq(body, "{\"status\":\"ok\"}\n");
	ck_assert_int_eq(http("GET /healthz HTTP/1.0\r\n\r\n"), 200);
}
END_TEST

/* Polls /healthz until it answers want; fails after 30 s. */
static void healthz_until(int want)
{
	int64_t t0 = now_mono_ms();

	while (http("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n") != want) {
		ck_assert_msg(now_mono_ms() - t0 < 30000, "/healthz never answered %d", want);
		usleep(20 * 1000);
	}
}

/* A stalled owner loop shows on /healthz, no earlier than stall_ms after
 * its last turn, and recovers when it turns again. (Measured from the last
 * turn, not from the join: the owner may have turned last some ms before
 * the join returned, so 503 can come less than 500 ms after it; CI's ASan
 * run saw 499.) */
START_TEST(healthz_stalled)
{
	int ago = 0;

	admin_stop(adm);
	adm = start(NULL, 500, 0, 0);
	owner_start(); /* turning: alive */
	healthz_until(200);
	owner_join();
	healthz_until(503);
	ck_assert_int_ge(now_mono_ms() - atomic_load(&owner_tick_ms), 500);
	ck_assert_int_eq(sscanf(body, "{\"status\":\"stalled\",\"last_tick_ms_ago\":%d}", &ago), 1);
	ck_assert_int_gt(ago, 500);
	owner_start();
	healthz_until(200);
}
END_TEST

START_TEST(routing)
{
	ck_assert_int_eq(http("GET /hello HTTP/1.0\r\n\r\n"), 200);
	ck_assert_str_eq(body, "hi");
	ck_assert_str_eq(header("Content-Type"), "text/plain");

	ck_assert_int_eq(http("GET /hello/x HTTP/1.1\r\nHost: a\r\n\r\n"), 404);
	ck_assert_str_eq(body,
			 "{\"error\":\"not_found\",\"message\":\"no such path: /hello/x\"}\n");
	ck_assert_int_eq(http("GET /clients HTTP/1.1\r\nHost: a\r\n\r\n"), 404);
	ck_assert_int_eq(http("GET /nope?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"), 404);

	ck_assert_int_eq(http("DELETE /clients/x HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
	ck_assert_str_eq(header("Allow"), "GET, POST");
	ck_assert_str_eq(body, "{\"error\":\"method_not_allowed\",\"message\":"
			       "\"DELETE is not allowed on /clients/x\"}\n");
	ck_assert_int_eq(http("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
	ck_assert_str_eq(header("Allow"), "POST, PUT");

	ck_assert_int_eq(http("GET /clients/a%2Fb%20c?q=x+y&r=1 HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert_str_eq(body, "{\"id\":\"a/b c\",\"q\":\"x y\",\"method\":\"GET\"}\n");
	ck_assert_int_eq(http("GET /clients/ HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert_str_eq(body, "{\"id\":null,\"q\":\"\",\"method\":\"GET\"}\n");
	ck_assert_int_eq(http("GET /clients/x?q=%zz HTTP/1.1\r\nHost: a\r\n\r\n"), 400);
	ck_assert_str_eq(body, "{\"error\":\"bad_query\",\"message\":\"q is badly encoded\"}\n");

	ck_assert_int_eq(http("HEAD /hello HTTP/1.1\r\nHost: a\r\n\r\n"), 405);

	ck_assert_int_eq(http("GET /ui HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert_str_eq(body, "<p>ui</p>");
	ck_assert_str_eq(header("Content-Type"), "text/html");

	ck_assert_int_eq(http("GET /badjson HTTP/1.1\r\nHost: a\r\n\r\n"), 500);
	ck_assert_str_eq(body, "{\"error\":\"internal\",\"message\":\"no response body\"}\n");

	/* a static page at "/" is that path only: unknown paths stay 404 */
	ck_assert_int_eq(admin_route_static(adm, "/", "text/html", "<p>status</p>", 13), 0);
	ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert_str_eq(body, "<p>status</p>");
	ck_assert_int_eq(http("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"), 404);
	ck_assert_str_eq(body, "{\"error\":\"not_found\",\"message\":\"no such path: /nope\"}\n");
	ck_assert_int_eq(http("GET /clients/a HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert_int_eq(http("POST / HTTP/1.1\r\nHost: a\r\n\r\n"), 405);
	ck_assert_str_eq(header("Allow"), "GET");
	ck_assert_int_eq(admin_route(adm, "GET", "/", h_hello, NULL, 0), 0); /* a prefix route */
	ck_assert_int_eq(http("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert_str_eq(body, "hi");
	ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);

	ck_assert_int_eq(admin_route(adm, "GET", "/hello", h_hello, NULL, 0), -EEXIST);
	ck_assert_int_eq(admin_route(adm, "GET", "hello", h_hello, NULL, 0), -EINVAL);
	ck_assert_int_eq(admin_route(adm, "", "/x", h_hello, NULL, 0), -EINVAL);
	ck_assert_int_eq(admin_route(adm, "G T", "/x", h_hello, NULL, 0), -EINVAL);
	ck_assert_int_eq(admin_route_static(adm, "/ui", "text/html", "", 0), -EEXIST);
}
END_TEST

START_TEST(auth)
{
	static const char *const wrong[] = {
		"",
		"Authorization: Bearer s3cre\r\n",
		"Authorization: Bearer s3cret2\r\n",
		"Authorization: Bearer S3cret\r\n",
		"Authorization: Basic s3cret\r\n",
		"Authorization: Bearers3cret\r\n",
		"Authorization: s3cret\r\n",
	};
	char req[256];

	for (size_t i = 0; i < N(wrong); i++) {
		snprintf(req, sizeof req, "POST /clients/x HTTP/1.1\r\nHost: a\r\n%s\r\n",
			 wrong[i]);
		ck_assert_int_eq(http(req), 401);
		ck_assert_str_eq(header("WWW-Authenticate"), "Bearer");
		ck_assert_str_eq(body, "{\"error\":\"unauthorized\",\"message\":"
				       "\"missing or wrong bearer token\"}\n");
	}
	ck_assert_int_eq(
		http("POST /clients/x HTTP/1.1\r\nHost: a\r\nauthorization: bearer s3cret \r\n\r\n"),
		200);
	ck_assert_str_eq(body, "{\"id\":\"x\",\"q\":\"\",\"method\":\"POST\"}\n");

	admin_stop(adm);
	adm = start("", 0, 0, 0);
	ck_assert_int_eq(
		http("POST /clients/x HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer \r\n\r\n"), 403);
	ck_assert_str_eq(body, "{\"error\":\"forbidden\",\"message\":"
			       "\"admin token not configured\"}\n");
	ck_assert_int_eq(http("GET /clients/x HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
}
END_TEST

START_TEST(bad_requests)
{
	char *big;
	size_t n;

	/* libmicrohttpd's own refusals come with its HTML bodies; ours are JSON */
	ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost x\r\n\r\n"), 400);
	ck_assert_int_eq(
		http("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
		411);
	ck_assert_int_eq(http("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 70000\r\n\r\n"),
			 413);
	ck_assert_str_eq(body, "{\"error\":\"payload_too_large\",\"message\":"
			       "\"the body is over 64 KiB\"}\n");
	ck_assert_int_eq(http("GET / HTTP/3.0\r\n\r\n"), 505);

	/* a 413 while the client still sends its body: the lingering close
	 * lets it read the answer */
	big = xmalloc(200000);
	n = (size_t)snprintf(big, 200000,
			     "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 150000\r\n\r\n");
	memset(big + n, 'b', 200000 - n);
	ck_assert_int_eq(http_n(big, n + 150000), 413);
	free(big);

	/* heads: half of ADMIN_MEMORY is fine; twice is too long (414 in the
	 * request line, also before it ends; 431 in the headers) */
	big = xmalloc(2 * ADMIN_MEMORY + 100);
	memset(big, 'a', 2 * ADMIN_MEMORY);
	memcpy(big, "GET /hello?", 11);
	memcpy(big + ADMIN_MEMORY / 2, " HTTP/1.1\r\nHost: a\r\n\r\n", 23);
	ck_assert_int_eq(http_n(big, ADMIN_MEMORY / 2 + 23), 200);
	memset(big + ADMIN_MEMORY / 2, 'a', 23);
	ck_assert_int_eq(http_n(big, 2 * ADMIN_MEMORY), 414);
	n = (size_t)snprintf(big, 100, "GET /hello HTTP/1.1\r\nHost: a\r\nX: ");
	memset(big + n, 'v', 2 * ADMIN_MEMORY - n);
	memcpy(big + 2 * ADMIN_MEMORY, "\r\n\r\n", 4);
	ck_assert_int_eq(http_n(big, 2 * ADMIN_MEMORY + 4), 431);
	free(big);
}
END_TEST

/* Malformed requests are refused before any handler runs, by
 * libmicrohttpd (strict: HTTP/1.1 needs a Host) or by our checks (target,
 * length). status 0: refused either way (4xx/5xx, or closed unanswered).
 * MHD 0.9.75 tolerates some things the RFCs forbid (folding, a blank before
 * ':', control bytes in values, a doubled Host or equal Content-Length):
 * harmless here, as the endpoint is the last hop and proxies nothing. */
#define RAW(s) s, sizeof(s) - 1
static const struct bad {
	const char *what, *raw;
	size_t len;
	int status;
} bads[] = {
	{ "method char", RAW("GE(T / HTTP/1.1\r\nHost: a\r\n\r\n"), 0 },
	{ "method empty", RAW(" / HTTP/1.1\r\nHost: a\r\n\r\n"), 0 },
	{ "method then tab", RAW("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "no version", RAW("GET /\r\nHost: a\r\n\r\n"), 0 },
	{ "empty version", RAW("GET / \r\nHost: a\r\n\r\n"), 400 },
	{ "lower version", RAW("GET / http/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "version 2", RAW("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), 505 },
	{ "version minor", RAW("GET / HTTP/1.x\r\nHost: a\r\n\r\n"), 400 },
	{ "version long", RAW("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), 400 },
	{ "absolute target", RAW("GET http://h/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "asterisk", RAW("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), 400 },
	{ "bare CR", RAW("GET / HTTP/1.1\rX\nHost: a\r\n\r\n"), 400 },
	{ "no colon", RAW("GET / HTTP/1.1\r\nHost: a\r\nA b\r\n\r\n"), 400 },
	{ "NUL in method", RAW("G\0T / HTTP/1.1\r\nHost: a\r\n\r\n"), 0 },
	{ "NUL in name", RAW("GET / HTTP/1.1\r\nHost: a\r\nA\0: b\r\n\r\n"), 400 },
	{ "NUL first", RAW("\0"), 0 },
	{ "no Host in 1.1", RAW("GET / HTTP/1.1\r\n\r\n"), 400 },
	{ "CL empty", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n"), 400 },
	{ "CL letters", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n"), 400 },
	{ "CL negative", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), 400 },
	{ "CL plus", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), 400 },
	{ "CL hex", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n"), 400 },
	{ "CL list", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n"), 400 },
	{ "CL over", RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65537\r\n\r\n"), 413 },
	{ "CL huge",
	  RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999999\r\n\r\n"),
	  0 },
	{ "chunked",
	  RAW("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 411 },
	{ "chunked and CL",
	  RAW("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
	      "abc"),
	  0 },
};

static atomic_int root_hits;

static void h_root(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	atomic_fetch_add(&root_hits, 1);
	admin_response_text(resp, 200, "text/plain", "root", 4);
}

START_TEST(malformed)
{
	const struct bad *b = &bads[_i];
	int st;

	atomic_store(&root_hits, 0);
	ck_assert_int_eq(admin_route(adm, "GET", "/", h_root, NULL, 0), 0);
	ck_assert_int_eq(admin_route(adm, "POST", "/", h_root, NULL, 0), 0);
	st = http_n(b->raw, b->len);
	if (b->status)
		ck_assert_msg(st == b->status, "%s: status %d", b->what, st);
	else
		ck_assert_msg(st == 0 || st >= 400, "%s: status %d", b->what, st);
	ck_assert_msg(atomic_load(&root_hits) == 0, "%s reached a handler", b->what);
	/* and a good request still reaches it */
	ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert_int_eq(atomic_load(&root_hits), 1);
}
END_TEST

START_TEST(on_loop)
{
	char *req, *big;
	size_t n;

	owner_start();
	ck_assert_int_eq(http("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
			 201);
	ck_assert_str_eq(body, "hello");
	ck_assert_str_eq(header("X-Echo"), "yes");
	ck_assert_str_eq(header("Content-Type"), "application/octet-stream");
	ck_assert_int_eq(http("PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"), 401);
	ck_assert_int_eq(
		http("PUT /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nAuthorization: Bearer "
		     "s3cret\r\n\r\nx"),
		201);
	ck_assert_int_eq(http("GET /header HTTP/1.1\r\nHost: a\r\nX-Key:  v w\r\n\r\n"), 200);
	ck_assert_str_eq(body, "{\"x-key\":\"v w\",\"none\":true}\n");
	ck_assert_int_eq(http("GET /nothing HTTP/1.1\r\nHost: a\r\n\r\n"), 500);
	ck_assert_str_eq(body, "{\"error\":\"internal\",\"message\":"
			       "\"the handler gave no response\"}\n");

	/* the biggest body */
	big = xmalloc(ADMIN_MAX_BODY);
	for (size_t i = 0; i < ADMIN_MAX_BODY; i++)
		big[i] = (char)('a' + i % 26);
	req = xmalloc(ADMIN_MAX_BODY + 100);
	n = (size_t)snprintf(req, 100,
			     "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n",
			     ADMIN_MAX_BODY);
	memcpy(req + n, big, ADMIN_MAX_BODY);
	ck_assert_int_eq(http_n(req, n + ADMIN_MAX_BODY), 201);
	ck_assert_uint_eq(raw_len - (size_t)(body - raw), ADMIN_MAX_BODY);
	ck_assert(memcmp(body, big, ADMIN_MAX_BODY) == 0);
	free(req);
	free(big);

	owner_join();
	ck_assert_int_eq(ran_on_owner, 3); /* /nothing and /header do not count */
	ck_assert_int_eq(ran_elsewhere, 0);
	ck_assert_int_eq(atomic_load(&wakes), 5); /* the 401 was not queued */
}
END_TEST

/* A request sent in pieces, a line at a time and then byte by byte. */
START_TEST(slow_sender)
{
	static const char req[] =
		"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789";
	int fd;

	owner_start();
	fd = dial();
	for (size_t i = 0; i < sizeof req - 1; i++) {
		send_all(fd, req + i, 1);
		if (req[i] == '\n' || i > sizeof req - 6)
			usleep(2000);
	}
	ck_assert_int_eq(read_reply(fd), 201);
	ck_assert_str_eq(body, "0123456789");
}
END_TEST

struct pending {
	pthread_t t;
	int status;
	atomic_bool done;
};

static void *pending_main(void *arg)
{
	struct pending *p = arg;

	p->status = http("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi");
	atomic_store(&p->done, true);
	return NULL;
}

/* Waits until cond() holds; fails after 30 s. */
static void wait_for(bool (*cond)(void), const char *what)
{
	int64_t t0 = now_mono_ms();

	while (!cond()) {
		ck_assert_msg(now_mono_ms() - t0 < 30000, "never: %s", what);
		usleep(5 * 1000);
	}
}

static bool woken(void)
{
	return atomic_load(&wakes) > 0;
}

/* No owner loop: the ON_LOOP request answers 503 busy after the loop
 * timeout, is not run later, and /healthz answers meanwhile. */
START_TEST(busy)
{
	struct pending p = { .status = -1 };
	int64_t t0;

	admin_stop(adm);
	adm = start(NULL, 0, 1000, 0);
	t0 = now_mono_ms();
	pthread_create(&p.t, NULL, pending_main, &p);
	wait_for(woken, "the request queued");
	ck_assert_int_eq(http("GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	ck_assert(!atomic_load(&p.done) || now_mono_ms() - t0 >= 1000);
	pthread_join(p.t, NULL);
	ck_assert_int_eq(p.status, 503);
	ck_assert_int_ge(now_mono_ms() - t0, 1000);
	ck_assert_int_eq(admin_run_pending(adm), 0);
	ck_assert_int_eq(ran_elsewhere + ran_on_owner, 0);
	ck_assert_int_eq(atomic_load(&wakes), 1);
}
END_TEST

/* admin_stop with a request queued: it is dropped, its client sees EOF. */
START_TEST(stop_with_queued)
{
	struct pending p = { .status = -1 };

	pthread_create(&p.t, NULL, pending_main, &p);
	wait_for(woken, "the request queued");
	admin_stop(adm);
	adm = NULL;
	pthread_join(p.t, NULL);
	ck_assert_int_eq(p.status, 0);
	ck_assert_int_eq(ran_elsewhere + ran_on_owner, 0);
}
END_TEST

/* A connection from 127.0.0.<host> (every 127/8 address is loopback). */
static int dial_from(int host)
{
	struct sockaddr_in src = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK - 1 + (unsigned)host) };
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(admin_port(adm)),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 20 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&src, sizeof src), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	return fd;
}

static int conns_want;

static bool conns_reached(void)
{
	return admin_connections(adm) == conns_want;
}

/* Waits until the server holds n connections. */
static void conns_until(int n)
{
	conns_want = n;
	wait_for(conns_reached, "the connection count");
}

/* Over the limit a connection is closed unanswered; one closing makes room. */
START_TEST(connection_limit)
{
	int fds[ADMIN_MAX_CONNS];

	for (int i = 0; i < ADMIN_MAX_CONNS; i++)
		fds[i] = dial_from(2 + i / ADMIN_MAX_CONNS_PER_ADDR);
	conns_until(ADMIN_MAX_CONNS);
	ck_assert_int_eq(http("GET /hello HTTP/1.0\r\n\r\n"), 0);
	ck_assert_uint_eq(raw_len, 0);
	ck_assert_int_eq(admin_connections(adm), ADMIN_MAX_CONNS);
	close(fds[0]);
	conns_until(ADMIN_MAX_CONNS - 1);
	ck_assert_int_eq(http("GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"), 200);
	for (int i = 1; i < ADMIN_MAX_CONNS; i++)
		close(fds[i]);
	conns_until(0);
}
END_TEST

/* One address gets ADMIN_MAX_CONNS_PER_ADDR; another is still served. */
START_TEST(per_address_limit)
{
	int fds[ADMIN_MAX_CONNS_PER_ADDR], fd;

	for (int i = 0; i < ADMIN_MAX_CONNS_PER_ADDR; i++)
		fds[i] = dial_from(1);
	conns_until(ADMIN_MAX_CONNS_PER_ADDR);
	fd = dial_from(1);
	send_all(fd, "GET /hello HTTP/1.0\r\n\r\n", 24);
	ck_assert_int_eq(read_reply(fd), 0);
	ck_assert_uint_eq(raw_len, 0);
	fd = dial_from(9);
	send_all(fd, "GET /hello HTTP/1.0\r\n\r\n", 24);
	ck_assert_int_eq(read_reply(fd), 200);
	for (int i = 0; i < ADMIN_MAX_CONNS_PER_ADDR; i++)
		close(fds[i]);
}
END_TEST

/* A connection that stops sending is closed after idle_timeout_s. */
START_TEST(idle_timeout)
{
	int64_t t0;
	int fd;

	admin_stop(adm);
	adm = start(NULL, 0, 0, 1);
	t0 = now_mono_ms();
	fd = dial();
	send_all(fd, "GET /hello HTTP/1.1\r\n", 21);
	ck_assert_int_eq(read_reply(fd), 0);
	ck_assert_uint_eq(raw_len, 0);
	ck_assert_int_ge(now_mono_ms() - t0, 1000);
	ck_assert_int_lt(now_mono_ms() - t0, 10000);
}
END_TEST

START_TEST(bad_listen)
{
	static const char *const addrs[] = { "nope",  "127.0.0.1:",  "[::1",
					     "[::1]", "127.0.0.1:x", "127.0.0.1:in-use" };
	char err[256], in_use[32];

	snprintf(in_use, sizeof in_use, "127.0.0.1:%d", admin_port(adm));
	for (size_t i = 0; i < N(addrs); i++) {
		const char *addr = strcmp(addrs[i], "127.0.0.1:in-use") ? addrs[i] : in_use;

		err[0] = '\0';
		ck_assert_ptr_null(admin_start(addr, NULL, err, sizeof err));
		ck_assert_msg(strstr(err, "admin: ") == err, "%s: %s", addr, err);
	}
	admin_stop(NULL);
}
END_TEST

static Suite *admin_suite(void)
{
	Suite *s = suite_create("admin");
	TCase *tc;

	tc = tcase_create("requests");
	tcase_add_loop_test(tc, request_init, 0, N(targets));
	tcase_add_test(tc, bearer);
	tcase_add_test(tc, query_get);
	tcase_add_test(tc, path_param);
	suite_add_tcase(s, tc);

	tc = tcase_create("server");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, server_setup, server_teardown);
	tcase_add_test(tc, healthz);
	tcase_add_test(tc, healthz_stalled);
	tcase_add_test(tc, routing);
	tcase_add_test(tc, auth);
	tcase_add_test(tc, bad_requests);
	tcase_add_loop_test(tc, malformed, 0, N(bads));
	tcase_add_test(tc, on_loop);
	tcase_add_test(tc, slow_sender);
	tcase_add_test(tc, busy);
	tcase_add_test(tc, stop_with_queued);
	tcase_add_test(tc, connection_limit);
	tcase_add_test(tc, per_address_limit);
	tcase_add_test(tc, idle_timeout);
	tcase_add_test(tc, bad_listen);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(admin_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
