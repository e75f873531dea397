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

/* ----------------------------------------------------------------- parser */

static const struct valid {
	const char *raw;
	const char *method, *path, *query; /* query NULL: none */
	int minor;
	size_t nheaders;
	const char *body;
} valids[] = {
	{ "GET / HTTP/1.1\r\n\r\n", "GET", "/", NULL, 1, 0, "" },
	{ "GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n", "GET", "/healthz", NULL, 0, 1, "" },
	{ "GET /a?b=c&d HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n", "GET", "/a", "b=c&d", 1, 2,
	  "" },
	{ "GET /q? HTTP/1.1\r\n\r\n", "GET", "/q", "", 1, 0, "" },
	{ "GET /x?a?b HTTP/1.1\n\n", "GET", "/x", "a?b", 1, 0, "" },
	{ "POST /clients/abc HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", "POST",
	  "/clients/abc", NULL, 1, 1, "hello" },
	{ "PUT /p HTTP/1.1\r\ncontent-length:   0  \r\nX-E:\r\n\r\n", "PUT", "/p", NULL, 1, 2, "" },
	{ "M-SEARCH~ /%41 HTTP/1.9\r\nX: \t v\xc3\xa9 \t\r\n\r\n", "M-SEARCH~", "/%41", NULL, 9,
	  1, "" },
	{ "DELETE /b HTTP/1.1\r\nContent-Length: 000003\r\n\r\n\0\r\n", "DELETE", "/b", NULL, 1,
	  1, "\0\r\n" },
};

static size_t valid_len(const struct valid *v)
{
	const char *end = strstr(v->raw, "\n\n") ? strstr(v->raw, "\n\n") + 2
						 : strstr(v->raw, "\r\n\r\n") + 4;
	const char *cl = strcasestr(v->raw, "content-length:");

	return (size_t)(end - v->raw) + (cl ? strtoul(cl + 15, NULL, 10) : 0);
}

START_TEST(parse_valid)
{
	const struct valid *v = &valids[_i];
	size_t len = valid_len(v);
	struct admin_request r;

	ck_assert_int_eq(admin_parse_request(v->raw, len, &r), (int)len);
	ck_assert_uint_eq(r.method_len, strlen(v->method));
	ck_assert(memcmp(r.method, v->method, r.method_len) == 0);
	ck_assert_uint_eq(r.path_len, strlen(v->path));
	ck_assert(memcmp(r.path, v->path, r.path_len) == 0);
	if (v->query) {
		ck_assert_ptr_nonnull(r.query);
		ck_assert_uint_eq(r.query_len, strlen(v->query));
		ck_assert(memcmp(r.query, v->query, r.query_len) == 0);
	} else {
		ck_assert_ptr_null(r.query);
	}
	ck_assert_int_eq(r.minor_version, v->minor);
	ck_assert_uint_eq(r.nheaders, v->nheaders);
	ck_assert_ptr_eq(r.body + r.body_len, v->raw + len);
	ck_assert(memcmp(r.body, v->body, r.body_len) == 0);
	/* with garbage after it (a pipelined request): the same length */
	{
		char *buf = xmalloc(len + 3);

		memcpy(buf, v->raw, len);
		memcpy(buf + len, "GE", 3);
		ck_assert_int_eq(admin_parse_request(buf, len + 2, &r), (int)len);
		free(buf);
	}
}
END_TEST

/* Every proper prefix of a valid request needs more; each is parsed from an
 * exact-size copy so that ASan sees a read past its end. */
START_TEST(parse_partial)
{
	const struct valid *v = &valids[_i];
	size_t len = valid_len(v);
	struct admin_request r;

	for (size_t n = 0; n < len; n++) {
		char *buf = xmalloc(n ? n : 1);

		memcpy(buf, v->raw, n);
		ck_assert_msg(admin_parse_request(buf, n, &r) == -2, "prefix %zu of %d", n, _i);
		free(buf);
	}
}
END_TEST

START_TEST(parse_pipelined)
{
	const char buf[] = "POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nxyGET /b HTTP/1.1\r\n\r\n"
			   "GET /c HTT";
	struct admin_request r;
	int n, m;

	n = admin_parse_request(buf, sizeof buf - 1, &r);
	ck_assert_int_eq(n, 41);
	ck_assert(r.body_len == 2 && memcmp(r.body, "xy", 2) == 0);
	m = admin_parse_request(buf + n, sizeof buf - 1 - (size_t)n, &r);
	ck_assert_int_eq(m, 19);
	ck_assert(r.path_len == 2 && memcmp(r.path, "/b", 2) == 0);
	ck_assert_int_eq(admin_parse_request(buf + n + m, sizeof buf - 1 - (size_t)(n + m), &r),
			 -2);
}
END_TEST

/* A head without its body: -2, with the head's fields set. */
START_TEST(parse_body_pending)
{
	const char buf[] = "POST /a HTTP/1.1\r\nContent-Length: 65536\r\n\r\nab";
	struct admin_request r;

	ck_assert_int_eq(admin_parse_request(buf, sizeof buf - 1, &r), -2);
	ck_assert_uint_eq(r.body_len, 65536);
	ck_assert_ptr_eq(r.body, buf + sizeof buf - 3);
}
END_TEST

static const struct bad {
	const char *what, *raw;
	size_t len; /* 0: strlen */
	int status;
} bads[] = {
	{ "method char", "GE(T / HTTP/1.1\r\n\r\n", 0, 400 },
	{ "method empty", " / HTTP/1.1\r\n\r\n", 0, 400 },
	{ "method then tab", "GET\t/ HTTP/1.1\r\n\r\n", 0, 400 },
	{ "two spaces", "GET  / HTTP/1.1\r\n\r\n", 0, 400 },
	{ "no version", "GET /\r\n\r\n", 0, 400 },
	{ "empty version", "GET / \r\n\r\n", 0, 400 },
	{ "lower version", "GET / http/1.1\r\n\r\n", 0, 400 },
	{ "version 2", "GET / HTTP/2.0\r\n\r\n", 0, 505 },
	{ "version minor", "GET / HTTP/1.x\r\n\r\n", 0, 400 },
	{ "version long", "GET / HTTP/1.10\r\n\r\n", 0, 400 },
	{ "absolute target", "GET http://h/ HTTP/1.1\r\n\r\n", 0, 400 },
	{ "asterisk", "OPTIONS * HTTP/1.1\r\n\r\n", 0, 400 },
	{ "target control", "GET /\x01 HTTP/1.1\r\n\r\n", 0, 400 },
	{ "target 8bit", "GET /\xc3\xa9 HTTP/1.1\r\n\r\n", 0, 400 },
	{ "bare CR", "GET / HTTP/1.1\rX\n\r\n", 0, 400 },
	{ "no colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 0, 400 },
	{ "space before colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 0, 400 },
	{ "empty name", "GET / HTTP/1.1\r\n: x\r\n\r\n", 0, 400 },
	{ "folding", "GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 0, 400 },
	{ "CR in value", "GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", 0, 400 },
	{ "control in value", "GET / HTTP/1.1\r\nA: b\x01\r\n\r\n", 0, 400 },
	{ "DEL in value", "GET / HTTP/1.1\r\nA: b\x7f\r\n\r\n", 0, 400 },
	{ "NUL in method", "G\0T / HTTP/1.1\r\n\r\n", 18, 400 },
	{ "NUL in target", "GET /\0 HTTP/1.1\r\n\r\n", 19, 400 },
	{ "NUL in name", "GET / HTTP/1.1\r\nA\0: b\r\n\r\n", 25, 400 },
	{ "NUL in value", "GET / HTTP/1.1\r\nA: \0\r\n\r\n", 23, 400 },
	{ "NUL first", "\0", 1, 400 },
	{ "empty line first", "\r\nGET / HTTP/1.1\r\n\r\n", 0, 400 },
	{ "CL empty", "POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", 0, 400 },
	{ "CL letters", "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 0, 400 },
	{ "CL negative", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0, 400 },
	{ "CL plus", "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 0, 400 },
	{ "CL hex", "POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", 0, 400 },
	{ "CL list", "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 0, 400 },
	{ "CL twice", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-length: 1\r\n\r\n", 0,
	  400 },
	{ "CL over", "POST / HTTP/1.1\r\nContent-Length: 65537\r\n\r\n", 0, 413 },
	{ "CL huge", "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", 0,
	  413 },
	{ "chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 411 },
	{ "chunked and CL",
	  "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc", 0, 400 },
};

START_TEST(parse_bad)
{
	const struct bad *b = &bads[_i];
	size_t len = b->len ? b->len : strlen(b->raw);
	char *buf = xmalloc(len);
	struct admin_request r;

	memcpy(buf, b->raw, len);
	ck_assert_msg(admin_parse_request(buf, len, &r) == -1, "%s", b->what);
	ck_assert_msg(r.error == b->status, "%s: status %d", b->what, r.error);
	free(buf);
}
END_TEST

/* A head over 8 KiB: 414 in the request line, 431 in the headers, also when
 * it arrives without its end; 32 headers pass, 33 do not. */
START_TEST(parse_oversized)
{
	size_t cap = ADMIN_MAX_HEAD + 256, n;
	char *buf = xmalloc(cap);
	struct admin_request r;

	n = (size_t)snprintf(buf, cap, "GET /");
	memset(buf + n, 'a', ADMIN_MAX_HEAD);
	ck_assert_int_eq(admin_parse_request(buf, ADMIN_MAX_HEAD - 1, &r), -2);
	ck_assert_int_eq(admin_parse_request(buf, ADMIN_MAX_HEAD, &r), -1);
	ck_assert_int_eq(r.error, 414);

	n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\nX: ");
	memset(buf + n, 'v', cap - n);
	memcpy(buf + ADMIN_MAX_HEAD - 4, "\r\n\r\n", 4); /* exactly 8 KiB: fine */
	ck_assert_int_eq(admin_parse_request(buf, cap, &r), ADMIN_MAX_HEAD);
	memcpy(buf + ADMIN_MAX_HEAD - 4, "vv\r\n\r\n", 6); /* 2 over */
	ck_assert_int_eq(admin_parse_request(buf, cap, &r), -1);
	ck_assert_int_eq(r.error, 431);

	n = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < ADMIN_MAX_HEADERS; i++)
		n += (size_t)snprintf(buf + n, cap - n, "H%d: v\r\n", i);
	n += (size_t)snprintf(buf + n, cap - n, "\r\n");
	ck_assert_int_eq(admin_parse_request(buf, n, &r), (int)n);
	ck_assert_uint_eq(r.nheaders, ADMIN_MAX_HEADERS);
	snprintf(buf + n - 2, cap - n + 2, "H: v\r\n\r\n");
	ck_assert_int_eq(admin_parse_request(buf, n + 6, &r), -1);
	ck_assert_int_eq(r.error, 431);
	free(buf);
}
END_TEST

/* Parses raw into r, NUL-terminates as the server does, sets a scratch. */
static char *parsed(const char *raw, struct admin_request *r)
{
	char *buf = xstrdup(raw);

	ck_assert_int_gt(admin_parse_request(buf, strlen(buf), r), 0);
	r->scratch = xmalloc(r->path_len + 1);
	return buf;
}

START_TEST(query_get)
{
	struct admin_request r;
	char *buf = parsed("GET /x?a=1&b=x+y%20z&c&d=&e=%2&f=%00&a=2&%62%2B=k&long=12345678 "
			   "HTTP/1.1\r\n\r\n",
			   &r);
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

	buf = parsed("GET /x HTTP/1.1\r\n\r\n", &r);
	ck_assert_int_eq(admin_query_get(&r, "a", v, sizeof v), -ENOENT);
	free(r.scratch);
	free(buf);
}
END_TEST

START_TEST(path_param)
{
	struct admin_request r;
	char *buf = parsed("GET /clients/a%2Fb+c%41 HTTP/1.1\r\nX-Key:  v  \r\n\r\n", &r);
	const struct admin_header *h;

	ck_assert_str_eq(admin_path_param(&r, "/clients/"), "a/b+cA");
	ck_assert_str_eq(admin_path_param(&r, "/clients/a"), "/b+cA");
	ck_assert_ptr_null(admin_path_param(&r, "/users/"));
	ck_assert_ptr_null(admin_path_param(&r, "/clients/a%2Fb+c%41"));
	h = admin_header_find(&r, "x-KEY");
	ck_assert_ptr_nonnull(h);
	ck_assert(h->value_len == 1 && h->value[0] == 'v');
	ck_assert_ptr_null(admin_header_find(&r, "X-Ke"));
	free(r.scratch);
	free(buf);

	buf = parsed("GET /clients/%zz HTTP/1.1\r\n\r\n", &r);
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

static void h_nothing(void *arg, const struct admin_request *req, struct admin_response *resp)
{
}

static void h_bad_json(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	ck_assert_int_eq(admin_response_header(resp, "Bad:Name", "v"), -EINVAL);
	ck_assert_int_eq(admin_response_header(resp, "Name", "v\r\nX: y"), -EINVAL);
	admin_response_json(resp, 200, json_string("not \xff utf-8")); /* NULL: 500 */
}

static struct admin *start(const char *token, int stall_ms, int loop_ms, int idle_ms)
{
	struct admin_config cfg = { .token = token, .wake = wake, .wake_arg = &owner_efd,
				    .stall_ms = stall_ms, .loop_timeout_ms = loop_ms,
				    .idle_timeout_ms = idle_ms };
	char err[256] = "";
	struct admin *a = admin_start("127.0.0.1:0", &cfg, err, sizeof err);

	ck_assert_msg(a != NULL, "%s", err);
	ck_assert_int_gt(admin_port(a), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/hello", h_hello, NULL, 0), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/clients/", h_client, NULL, 0), 0);
	ck_assert_int_eq(admin_route(a, "POST", "/clients/", h_client, NULL, ADMIN_NEEDS_TOKEN),
			 0);
	ck_assert_int_eq(admin_route(a, "POST", "/echo", h_echo, NULL, ADMIN_ON_LOOP), 0);
	ck_assert_int_eq(admin_route(a, "PUT", "/echo", h_echo, NULL,
				     ADMIN_ON_LOOP | ADMIN_NEEDS_TOKEN),
			 0);
	ck_assert_int_eq(admin_route(a, "GET", "/nothing", h_nothing, NULL, ADMIN_ON_LOOP), 0);
	ck_assert_int_eq(admin_route(a, "GET", "/badjson", h_bad_json, NULL, 0), 0);
	ck_assert_int_eq(admin_route_static(a, "/ui", "text/html", "<p>ui</p>", 9), 0);
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
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(admin_port(adm)),
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
	static const char want[] = "HTTP/1.1 200 OK\r\n"
				   "Content-Type: application/json\r\n"
				   "Content-Length: 16\r\n"
				   "Cache-Control: no-store\r\n"
				   "Connection: close\r\n"
				   "\r\n"
				   "{\"status\":\"ok\"}\n";

	ck_assert_int_eq(http("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"), 200);
	ck_assert_str_eq(raw, want);
}
END_TEST

START_TEST(healthz_stalled)
{
	int ago = 0;

	admin_stop(adm);
	adm = start(NULL, 300, 0, 0);
	admin_loop_alive(adm);
	ck_assert_int_eq(http("GET /healthz HTTP/1.1\r\n\r\n"), 200);
	usleep(400 * 1000);
	ck_assert_int_eq(http("GET /healthz HTTP/1.1\r\n\r\n"), 503);
	ck_assert_int_eq(sscanf(body, "{\"status\":\"stalled\",\"last_tick_ms_ago\":%d}", &ago),
			 1);
	ck_assert_int_ge(ago, 400);
	admin_loop_alive(adm);
	ck_assert_int_eq(http("GET /healthz HTTP/1.1\r\n\r\n"), 200);
}
END_TEST

START_TEST(routing)
{
	ck_assert_int_eq(http("GET /hello HTTP/1.0\r\n\r\n"), 200);
	ck_assert_str_eq(body, "hi");
	ck_assert_str_eq(header("Content-Type"), "text/plain");

	ck_assert_int_eq(http("GET /hello/x HTTP/1.1\r\n\r\n"), 404);
	ck_assert_str_eq(body, "{\"error\":\"not_found\",\"message\":\"no such path: /hello/x\"}\n");
	ck_assert_int_eq(http("GET /clients HTTP/1.1\r\n\r\n"), 404);
	ck_assert_int_eq(http("GET /nope?x=1 HTTP/1.1\r\n\r\n"), 404);

	ck_assert_int_eq(http("DELETE /clients/x HTTP/1.1\r\n\r\n"), 405);
	ck_assert_str_eq(header("Allow"), "GET, POST");
	ck_assert_str_eq(body, "{\"error\":\"method_not_allowed\",\"message\":"
			       "\"DELETE is not allowed on /clients/x\"}\n");
	ck_assert_int_eq(http("GET /echo HTTP/1.1\r\n\r\n"), 405);
	ck_assert_str_eq(header("Allow"), "POST, PUT");

	ck_assert_int_eq(http("GET /clients/a%2Fb%20c?q=x+y&r=1 HTTP/1.1\r\n\r\n"), 200);
	ck_assert_str_eq(body, "{\"id\":\"a/b c\",\"q\":\"x y\",\"method\":\"GET\"}\n");
	ck_assert_int_eq(http("GET /clients/ HTTP/1.1\r\n\r\n"), 200);
	ck_assert_str_eq(body, "{\"id\":null,\"q\":\"\",\"method\":\"GET\"}\n");
	ck_assert_int_eq(http("GET /clients/x?q=%zz HTTP/1.1\r\n\r\n"), 400);
	ck_assert_str_eq(body, "{\"error\":\"bad_query\",\"message\":\"q is badly encoded\"}\n");

	ck_assert_int_eq(http("HEAD /hello HTTP/1.1\r\n\r\n"), 405);

	ck_assert_int_eq(http("GET /ui HTTP/1.1\r\n\r\n"), 200);
	ck_assert_str_eq(body, "<p>ui</p>");
	ck_assert_str_eq(header("Content-Type"), "text/html");

	ck_assert_int_eq(http("GET /badjson HTTP/1.1\r\n\r\n"), 500);
	ck_assert_str_eq(body, "{\"error\":\"internal\",\"message\":\"no response body\"}\n");

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
		snprintf(req, sizeof req, "POST /clients/x HTTP/1.1\r\n%s\r\n", wrong[i]);
		ck_assert_int_eq(http(req), 401);
		ck_assert_str_eq(header("WWW-Authenticate"), "Bearer");
		ck_assert_str_eq(body, "{\"error\":\"unauthorized\",\"message\":"
				       "\"missing or wrong bearer token\"}\n");
	}
	ck_assert_int_eq(http("POST /clients/x HTTP/1.1\r\nauthorization: bearer s3cret\r\n\r\n"),
			 200);
	ck_assert_str_eq(body, "{\"id\":\"x\",\"q\":\"\",\"method\":\"POST\"}\n");

	admin_stop(adm);
	adm = start("", 0, 0, 0);
	ck_assert_int_eq(http("POST /clients/x HTTP/1.1\r\nAuthorization: Bearer \r\n\r\n"), 403);
	ck_assert_str_eq(body, "{\"error\":\"forbidden\",\"message\":"
			       "\"admin token not configured\"}\n");
	ck_assert_int_eq(http("GET /clients/x HTTP/1.1\r\n\r\n"), 200);
}
END_TEST

START_TEST(bad_requests)
{
	char *big;
	size_t n;

	ck_assert_int_eq(http("GET / HTTP/1.1\r\nHost x\r\n\r\n"), 400);
	ck_assert_str_eq(body, "{\"error\":\"bad_request\",\"message\":\"malformed HTTP request\"}\n");
	ck_assert_int_eq(http("POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
			 411);
	ck_assert_int_eq(http("POST /echo HTTP/1.1\r\nContent-Length: 70000\r\n\r\n"), 413);
	ck_assert_int_eq(http("GET / HTTP/3.0\r\n\r\n"), 505);
	ck_assert_int_eq(http_n("GET /\0 HTTP/1.1\r\n\r\n", 19), 400);

	/* a 413 while the client still sends its body: the lingering close
	 * lets it read the answer */
	big = xmalloc(200000);
	n = (size_t)snprintf(big, 200000, "POST /echo HTTP/1.1\r\nContent-Length: 150000\r\n\r\n");
	memset(big + n, 'b', 200000 - n);
	ck_assert_int_eq(http_n(big, n + 150000), 413);
	free(big);

	/* a head of 9 KiB */
	big = xmalloc(9000);
	memset(big, 'a', 9000);
	memcpy(big, "GET /", 5);
	ck_assert_int_eq(http_n(big, 9000), 414);
	free(big);
}
END_TEST

START_TEST(on_loop)
{
	char *req, *big;
	size_t n;

	owner_start();
	ck_assert_int_eq(http("POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"), 201);
	ck_assert_str_eq(body, "hello");
	ck_assert_str_eq(header("X-Echo"), "yes");
	ck_assert_str_eq(header("Content-Type"), "application/octet-stream");
	ck_assert_int_eq(http("PUT /echo HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"), 401);
	ck_assert_int_eq(http("PUT /echo HTTP/1.1\r\nContent-Length: 1\r\nAuthorization: Bearer "
			      "s3cret\r\n\r\nx"),
			 201);
	ck_assert_int_eq(http("GET /nothing HTTP/1.1\r\n\r\n"), 500);
	ck_assert_str_eq(body, "{\"error\":\"internal\",\"message\":"
			       "\"the handler gave no response\"}\n");

	/* the biggest body */
	big = xmalloc(ADMIN_MAX_BODY);
	for (size_t i = 0; i < ADMIN_MAX_BODY; i++)
		big[i] = (char)('a' + i % 26);
	req = xmalloc(ADMIN_MAX_BODY + 100);
	n = (size_t)snprintf(req, 100, "POST /echo HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
			     ADMIN_MAX_BODY);
	memcpy(req + n, big, ADMIN_MAX_BODY);
	ck_assert_int_eq(http_n(req, n + ADMIN_MAX_BODY), 201);
	ck_assert_uint_eq(raw_len - (size_t)(body - raw), ADMIN_MAX_BODY);
	ck_assert(memcmp(body, big, ADMIN_MAX_BODY) == 0);
	free(req);
	free(big);

	owner_join();
	ck_assert_int_eq(ran_on_owner, 3); /* /nothing does not count */
	ck_assert_int_eq(ran_elsewhere, 0);
	ck_assert_int_ge(atomic_load(&wakes), 4);
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
};

static void *pending_main(void *arg)
{
	struct pending *p = arg;

	p->status = http("POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
	return NULL;
}

/* No owner loop: the ON_LOOP request answers 503 busy after the loop
 * timeout, is not run later, and /healthz answers meanwhile. */
START_TEST(busy)
{
	struct pending p;
	int64_t t0;

	admin_stop(adm);
	adm = start(NULL, 0, 1000, 0);
	t0 = now_mono_ms();
	pthread_create(&p.t, NULL, pending_main, &p);
	usleep(50 * 1000);
	ck_assert_int_eq(http("GET /healthz HTTP/1.1\r\n\r\n"), 200);
	ck_assert_int_lt(now_mono_ms() - t0, 1000);
	pthread_join(p.t, NULL);
	ck_assert_int_eq(p.status, 503);
	ck_assert_int_ge(now_mono_ms() - t0, 1000);
	ck_assert_int_eq(admin_run_pending(adm), 0);
	ck_assert_int_eq(ran_elsewhere + ran_on_owner, 0);
	ck_assert_int_ge(atomic_load(&wakes), 1);
}
END_TEST

/* admin_stop with a request queued: it is dropped, its client sees EOF. */
START_TEST(stop_with_queued)
{
	struct pending p;

	pthread_create(&p.t, NULL, pending_main, &p);
	while (atomic_load(&wakes) == 0)
		usleep(1000);
	admin_stop(adm);
	adm = NULL;
	pthread_join(p.t, NULL);
	ck_assert_int_eq(p.status, 0);
	ck_assert_int_eq(ran_elsewhere + ran_on_owner, 0);
}
END_TEST

START_TEST(connection_limit)
{
	int fds[ADMIN_MAX_CONNS];

	for (int i = 0; i < ADMIN_MAX_CONNS; i++)
		fds[i] = dial();
	usleep(300 * 1000);
	ck_assert_int_eq(read_reply(dial()), 503);
	ck_assert_str_eq(body, "{\"error\":\"busy\",\"message\":\"too many admin connections\"}\n");
	close(fds[0]);
	usleep(300 * 1000);
	ck_assert_int_eq(http("GET /hello HTTP/1.1\r\n\r\n"), 200);
	for (int i = 1; i < ADMIN_MAX_CONNS; i++)
		close(fds[i]);
}
END_TEST

START_TEST(idle_timeout)
{
	int64_t t0;
	int fd;

	admin_stop(adm);
	adm = start(NULL, 0, 0, 200);
	t0 = now_mono_ms();
	fd = dial();
	send_all(fd, "GET /hello HTTP/1.1\r\n", 21);
	ck_assert_int_eq(read_reply(fd), 0);
	ck_assert_uint_eq(raw_len, 0);
	ck_assert_int_ge(now_mono_ms() - t0, 200);
	ck_assert_int_lt(now_mono_ms() - t0, 5000);
}
END_TEST

START_TEST(bad_listen)
{
	static const char *const addrs[] = { "nope", "127.0.0.1:", "[::1", "[::1]",
					     "127.0.0.1:x", "127.0.0.1:in-use" };
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

	tc = tcase_create("parser");
	tcase_add_loop_test(tc, parse_valid, 0, N(valids));
	tcase_add_loop_test(tc, parse_partial, 0, N(valids));
	tcase_add_test(tc, parse_pipelined);
	tcase_add_test(tc, parse_body_pending);
	tcase_add_loop_test(tc, parse_bad, 0, N(bads));
	tcase_add_test(tc, parse_oversized);
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
	tcase_add_test(tc, on_loop);
	tcase_add_test(tc, slow_sender);
	tcase_add_test(tc, busy);
	tcase_add_test(tc, stop_with_queued);
	tcase_add_test(tc, connection_limit);
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
