/* admin: see admin.h. libmicrohttpd (MHD) parses HTTP, runs a thread per
 * connection and enforces the limits; this file routes, authorises, decodes
 * the target and hands ADMIN_ON_LOOP handlers to the owner's loop. */
#include "admin.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "util.h"

#define DEFAULT_STALL_MS 5000
#define DEFAULT_LOOP_TIMEOUT_MS 5000
#define DEFAULT_IDLE_TIMEOUT_S 10
#define MAX_METHOD 16
#define THREAD_STACK (256 * 1024) /* per connection thread; handlers here are small */

/* ------------------------------------------------------- requests (pure) */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

int admin_request_init(struct admin_request *req, const char *method, char *target)
{
	char *q;

	*req = (struct admin_request){ .method = method, .path = "", .query = "" };
	if (target[0] != '/')
		return -EINVAL;
	q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	req->path = target;
	req->path_len = strlen(target);
	req->query = q ? q : target + req->path_len; /* "" */
	return 0;
}

const char *admin_header(const struct admin_request *req, const char *name)
{
	if (!req->conn)
		return NULL;
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)(c | 0x20);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* %-decodes s[0..n) into out (NUL-terminated); plus: '+' is a space.
 * Returns the decoded length, -EINVAL or -ENOSPC. */
static int url_decode(const char *s, size_t n, bool plus, char *out, size_t outlen)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (c == '%') {
			int hi, lo;

			if (n - i < 3 || (hi = hexval(s[i + 1])) < 0 || (lo = hexval(s[i + 2])) < 0)
				return -EINVAL;
			c = (char)(hi << 4 | lo);
			if (c == '\0')
				return -EINVAL;
			i += 2;
		} else if (c == '+' && plus) {
			c = ' ';
		}
		if (o + 1 >= outlen)
			return -ENOSPC;
		out[o++] = c;
	}
	if (outlen == 0)
		return -ENOSPC;
	out[o] = '\0';
	return (int)o;
}

int admin_query_get(const struct admin_request *req, const char *name, char *buf, size_t len)
{
	const char *q = req->query, *end;
	char key[128];

	if (!q)
		return -ENOENT;
	for (end = q + strlen(q); q < end;) {
		const char *amp = memchr(q, '&', (size_t)(end - q));
		const char *eq;
		int r;

		if (!amp)
			amp = end;
		eq = memchr(q, '=', (size_t)(amp - q));
		r = url_decode(q, (size_t)((eq ? eq : amp) - q), true, key, sizeof key);
		if (r >= 0 && strcmp(key, name) == 0) {
			r = eq ? url_decode(eq + 1, (size_t)(amp - eq - 1), true, buf, len)
			       : url_decode("", 0, true, buf, len);
			return r < 0 ? r : 0;
		}
		if (amp == end)
			break;
		q = amp + 1;
	}
	return -ENOENT;
}

const char *admin_path_param(const struct admin_request *req, const char *prefix)
{
	size_t n = strlen(prefix);

	if (!req->scratch || req->path_len <= n || strncmp(req->path, prefix, n) != 0)
		return NULL;
	if (url_decode(req->path + n, req->path_len - n, false, req->scratch, req->path_len + 1) <=
	    0)
		return NULL;
	return req->scratch;
}

bool admin_bearer_ok(const char *token, const char *authorization)
{
	size_t n = strlen(token), glen;
	const char *given;
	unsigned char d;

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	given = authorization + 7;
	glen = strlen(given);
	while (glen && (given[glen - 1] == ' ' || given[glen - 1] == '\t'))
		glen--; /* MHD keeps a value's trailing blanks */
	d = glen != n;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(token[i] ^ (i < glen ? given[i] : 0));
	return d == 0;
}

/* -------------------------------------------------------------- responses */

struct header {
	char *name, *value;
};

struct admin_response {
	int status;
	char *ctype; /* owned; NULL until a handler sets a response */
	char *body;  /* owned */
	size_t len;
	struct header *headers; /* owned: extra header lines */
	size_t nheaders;
};

/* Takes body over. */
static void set_body(struct admin_response *r, int status, const char *ctype, char *body,
		     size_t len)
{
	free(r->ctype);
	free(r->body);
	r->status = status >= 100 && status <= 599 ? status : 500;
	r->ctype = xstrdup(ctype && !strpbrk(ctype, "\r\n") ? ctype : "application/octet-stream");
	r->body = body;
	r->len = len;
}

void admin_response_json(struct admin_response *resp, int status, json_t *body)
{
	char *s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
	size_t n;

	json_decref(body);
	if (!s) {
		status = 500;
		s = xstrdup("{\"error\":\"internal\",\"message\":\"no response body\"}");
	}
	n = strlen(s);
	s = xrealloc(s, n + 2); /* jansson allocates with malloc */
	memcpy(s + n, "\n", 2);
	set_body(resp, status, "application/json", s, n + 1);
}

void admin_response_ready(struct admin_response *resp, const char *why)
{
	if (why)
		admin_response_json(resp, 503, json_pack("{s:b,s:s}", "ready", 0, "reason", why));
	else
		admin_response_json(resp, 200, json_pack("{s:b}", "ready", 1));
}

void admin_response_text(struct admin_response *resp, int status, const char *content_type,
			 const char *body, size_t len)
{
	char *copy = xmalloc(len + 1);

	if (len)
		memcpy(copy, body, len);
	copy[len] = '\0';
	set_body(resp, status, content_type, copy, len);
}

/* A JSON string of s; bytes that are not valid UTF-8 become '?'. */
static json_t *json_text(char *s)
{
	json_t *j = json_string(s);

	if (j)
		return j;
	for (char *p = s; *p; p++)
		if ((unsigned char)*p >= 0x80)
			*p = '?';
	return json_string(s);
}

void admin_response_error(struct admin_response *resp, int status, const char *error_code,
			  const char *fmt, ...)
{
	char code[64], msg[512];
	va_list ap;

	snprintf(code, sizeof code, "%s", error_code);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	admin_response_json(
		resp, status,
		json_pack("{s:o,s:o}", "error", json_text(code), "message", json_text(msg)));
}

int admin_response_header(struct admin_response *resp, const char *name, const char *value)
{
	struct header *h;

	if (!*name || strpbrk(name, "\r\n: \t") || strpbrk(value, "\r\n"))
		return -EINVAL;
	resp->headers = xrealloc(resp->headers, (resp->nheaders + 1) * sizeof(*resp->headers));
	h = &resp->headers[resp->nheaders++];
	h->name = xstrdup(name);
	h->value = xstrdup(value);
	return 0;
}

static void response_free(struct admin_response *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->ctype);
	free(r->body);
}

/* ----------------------------------------------------------------- server */

struct page {
	char *ctype, *data;
	size_t len;
};

struct route {
	char *method, *prefix;
	size_t prefix_len;
	bool exact; /* a prefix ending in '/' still matches only itself */
	admin_handler_fn fn;
	void *arg;
	unsigned flags;
	struct page *page; /* owned, for static routes */
};

enum job_state { JOB_NONE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

/* One request, from its request line (uri_logged) to its end (completed). */
struct req {
	char *target; /* owned copy of the raw request-target */
	struct admin_request r;
	struct admin_response resp;
	bool started;  /* the handler saw the head */
	bool answered; /* a response is queued: the rest of the body is dropped */
	char *body;    /* owned */
	size_t body_len;
	struct route route; /* a copy; strings owned by the admin */
	/* ON_LOOP handoff, under admin.mu */
	struct req *qnext;
	enum job_state job;
};

struct admin {
	struct MHD_Daemon *mhd;
	int lfd, port; /* lfd: ours until MHD has started, then -1 */
	_Atomic int64_t last_tick;
	char *token; /* NULL: none configured */
	admin_wake_fn wake;
	void *wake_arg;
	int stall_ms, loop_timeout_ms, idle_timeout_s;

	pthread_mutex_t mu;
	pthread_cond_t done;  /* a job is done, or stopping (CLOCK_MONOTONIC) */
	bool stopping;        /* under mu */
	struct route *routes; /* under mu */
	size_t nroutes;
	struct req *queue, **qtail; /* ON_LOOP jobs, under mu */
};

static bool path_match(const struct route *r, const char *path)
{
	if (!r->exact && r->prefix[r->prefix_len - 1] == '/')
		return strncmp(path, r->prefix, r->prefix_len) == 0;
	return strcmp(path, r->prefix) == 0;
}

/* Finds req's route and copies it to *out; otherwise fills a 404 or 405.
 * Called under mu. */
static bool route_find(struct admin *a, const struct admin_request *req, struct route *out,
		       struct admin_response *resp)
{
	const struct route *best = NULL, *hit = NULL;
	char allow[256] = "";
	size_t n = 0;

	for (size_t i = 0; i < a->nroutes; i++)
		if (path_match(&a->routes[i], req->path) &&
		    (!best || a->routes[i].prefix_len > best->prefix_len))
			best = &a->routes[i];
	if (!best) {
		admin_response_error(resp, 404, "not_found", "no such path: %s", req->path);
		return false;
	}
	for (size_t i = 0; i < a->nroutes; i++) {
		const struct route *r = &a->routes[i];

		if (strcmp(r->prefix, best->prefix) != 0 || r->exact != best->exact)
			continue;
		if (strcmp(r->method, req->method) == 0)
			hit = r;
		if (n < sizeof allow)
			n += (size_t)snprintf(allow + n, sizeof allow - n, "%s%s", n ? ", " : "",
					      r->method);
	}
	if (hit) {
		*out = *hit;
		return true;
	}
	admin_response_error(resp, 405, "method_not_allowed", "%s is not allowed on %s",
			     req->method, req->path);
	admin_response_header(resp, "Allow", allow);
	return false;
}

/* Sends q's response (a 500 if the handler set none). */
static enum MHD_Result respond(struct MHD_Connection *conn, struct req *q)
{
	struct admin_response *r = &q->resp;
	struct MHD_Response *m;
	enum MHD_Result ret;

	if (!r->ctype)
		admin_response_error(r, 500, "internal", "the handler gave no response");
	m = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_COPY);
	if (!m)
		return MHD_NO;
	if (r->status >= 200 && r->status != 204 && r->status != 304)
		MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
	MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	MHD_add_response_header(m, MHD_HTTP_HEADER_CONNECTION, "close");
	for (size_t i = 0; i < r->nheaders; i++)
		MHD_add_response_header(m, r->headers[i].name, r->headers[i].value);
	ret = MHD_queue_response(conn, (unsigned)r->status, m);
	MHD_destroy_response(m);
	q->answered = true;
	return ret;
}

/* The head is in: decides what can be decided before the body. Returns
 * false with q->resp filled if the request is refused. */
static bool admit(struct admin *a, struct MHD_Connection *conn, const char *method, struct req *q)
{
	const char *te, *cl;
	bool found;

	if (admin_request_init(&q->r, method, q->target) < 0) {
		admin_response_error(&q->resp, 400, "bad_request",
				     "the request target must be a path (/...)");
		return false;
	}
	q->r.conn = conn;
	q->r.scratch = xmalloc(q->r.path_len + 1);
	te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (te) {
		admin_response_error(&q->resp, 411, "length_required",
				     "send a Content-Length, not chunks");
		return false;
	}
	if (cl && strtoull(cl, NULL, 10) > ADMIN_MAX_BODY) {
		admin_response_error(&q->resp, 413, "payload_too_large", "the body is over %d KiB",
				     ADMIN_MAX_BODY / 1024);
		return false;
	}
	pthread_mutex_lock(&a->mu);
	found = route_find(a, &q->r, &q->route, &q->resp);
	pthread_mutex_unlock(&a->mu);
	if (!found || !(q->route.flags & ADMIN_NEEDS_TOKEN))
		return found;
	if (!a->token) {
		admin_response_error(&q->resp, 403, "forbidden", "admin token not configured");
		return false;
	}
	if (!admin_bearer_ok(a->token, admin_header(&q->r, MHD_HTTP_HEADER_AUTHORIZATION))) {
		admin_response_error(&q->resp, 401, "unauthorized",
				     "missing or wrong bearer token");
		admin_response_header(&q->resp, "WWW-Authenticate", "Bearer");
		return false;
	}
	return true;
}

static struct timespec deadline_after(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

/* Takes q off the queue. Called under mu with q queued. */
static void dequeue(struct admin *a, struct req *q)
{
	for (struct req **pp = &a->queue; *pp; pp = &(*pp)->qnext) {
		if (*pp == q) {
			*pp = q->qnext;
			if (!*pp)
				a->qtail = pp;
			break;
		}
	}
	q->qnext = NULL;
	q->job = JOB_NONE;
}

/* Queues q for the owner's loop and waits (on the connection's thread)
 * until it ran; fills a 503 if the loop did not take it within
 * loop_timeout_ms. Returns -ESHUTDOWN if the server is stopping. */
static int run_on_loop(struct admin *a, struct req *q)
{
	struct timespec until = deadline_after(a->loop_timeout_ms);
	int err = 0;

	pthread_mutex_lock(&a->mu);
	if (a->stopping) {
		pthread_mutex_unlock(&a->mu);
		return -ESHUTDOWN;
	}
	q->job = JOB_QUEUED;
	*a->qtail = q;
	a->qtail = &q->qnext;
	pthread_mutex_unlock(&a->mu);
	if (a->wake)
		a->wake(a->wake_arg);

	pthread_mutex_lock(&a->mu);
	while (q->job != JOB_DONE && !a->stopping) {
		if (q->job == JOB_RUNNING) { /* past the deadline too: it finishes */
			pthread_cond_wait(&a->done, &a->mu);
		} else if (pthread_cond_timedwait(&a->done, &a->mu, &until) == ETIMEDOUT &&
			   q->job == JOB_QUEUED) {
			dequeue(a, q);
			admin_response_error(&q->resp, 503, "busy",
					     "the event loop did not take the request");
			break;
		}
	}
	if (q->job == JOB_QUEUED) { /* stopping */
		dequeue(a, q);
		err = -ESHUTDOWN;
	}
	pthread_mutex_unlock(&a->mu);
	return err;
}

/* MHD's access handler: called with the head, with each piece of the body,
 * and once more at its end. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct admin *a = cls;
	struct req *q = *con_cls;

	if (!q)
		return MHD_NO; /* cannot happen: on_uri made it */
	if (!q->started) {
		q->started = true;
		if (!admit(a, conn, method, q))
			return respond(conn, q);
		return MHD_YES;
	}
	if (*upload_data_size) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (q->answered)
			return MHD_YES;
		if (q->body_len + n > ADMIN_MAX_BODY) { /* no Content-Length said so */
			admin_response_error(&q->resp, 413, "payload_too_large",
					     "the body is over %d KiB", ADMIN_MAX_BODY / 1024);
			return respond(conn, q);
		}
		q->body = xrealloc(q->body, q->body_len + n);
		memcpy(q->body + q->body_len, upload_data, n);
		q->body_len += n;
		return MHD_YES;
	}
	if (q->answered)
		return MHD_YES;
	q->r.body = q->body ? q->body : "";
	q->r.body_len = q->body_len;
	if (!(q->route.flags & ADMIN_ON_LOOP))
		q->route.fn(q->route.arg, &q->r, &q->resp);
	else if (run_on_loop(a, q) < 0)
		return MHD_NO; /* stopping: close without an answer */
	return respond(conn, q);
}

/* MHD: a request line came in. Its raw target becomes the request. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	struct req *q = xcalloc(1, sizeof(*q));

	q->target = xstrdup(uri);
	return q;
}

/* MHD: the request ended (answered, or the connection failed). */
static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	if (!q)
		return;
	response_free(&q->resp);
	free(q->r.scratch);
	free(q->body);
	free(q->target);
	free(q);
	*con_cls = NULL;
}

/* MHD's messages are about clients and connections: debug level. */
static void __attribute__((format(printf, 2, 0))) on_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	vsnprintf(msg, sizeof msg, fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	log_debug("admin: %s", msg);
}

int admin_run_pending(struct admin *a)
{
	struct req *q;
	int ran = 0;

	pthread_mutex_lock(&a->mu);
	while ((q = a->queue)) {
		a->queue = q->qnext;
		if (!a->queue)
			a->qtail = &a->queue;
		q->qnext = NULL;
		q->job = JOB_RUNNING;
		pthread_mutex_unlock(&a->mu);
		q->route.fn(q->route.arg, &q->r, &q->resp);
		pthread_mutex_lock(&a->mu);
		q->job = JOB_DONE;
		ran++;
	}
	if (ran)
		pthread_cond_broadcast(&a->done);
	pthread_mutex_unlock(&a->mu);
	return ran;
}

void admin_loop_alive(struct admin *a)
{
	atomic_store_explicit(&a->last_tick, now_mono_ms(), memory_order_relaxed);
}

static void healthz(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct admin *a = arg;
	int64_t ago = now_mono_ms() - atomic_load_explicit(&a->last_tick, memory_order_relaxed);

	if (ago <= a->stall_ms)
		admin_response_json(resp, 200, json_pack("{s:s}", "status", "ok"));
	else
		admin_response_json(resp, 503,
				    json_pack("{s:s,s:I}", "status", "stalled", "last_tick_ms_ago",
					      (json_int_t)ago));
}

static void serve_page(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	const struct page *p = arg;

	admin_response_text(resp, 200, p->ctype, p->data, p->len);
}

static int add_route(struct admin *a, const char *method, const char *prefix, admin_handler_fn fn,
		     void *arg, unsigned flags, struct page *page)
{
	size_t mlen = strlen(method);
	bool exact = page != NULL;
	int err = 0;

	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)method[i]))
			mlen = 0;
	if (mlen == 0 || mlen > MAX_METHOD || prefix[0] != '/' || !fn)
		return -EINVAL;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->nroutes; i++)
		if (strcmp(a->routes[i].method, method) == 0 &&
		    strcmp(a->routes[i].prefix, prefix) == 0 && a->routes[i].exact == exact)
			err = -EEXIST;
	if (!err) {
		a->routes = xrealloc(a->routes, (a->nroutes + 1) * sizeof(*a->routes));
		a->routes[a->nroutes++] = (struct route){ xstrdup(method),
							  xstrdup(prefix),
							  strlen(prefix),
							  exact,
							  fn,
							  page ? (void *)page : arg,
							  flags,
							  page };
	}
	pthread_mutex_unlock(&a->mu);
	return err;
}

int admin_route(struct admin *a, const char *method, const char *path_prefix, admin_handler_fn fn,
		void *arg, unsigned flags)
{
	return add_route(a, method, path_prefix, fn, arg, flags, NULL);
}

int admin_route_static(struct admin *a, const char *path, const char *content_type,
		       const char *data, size_t len)
{
	struct page *p = xcalloc(1, sizeof(*p));
	int err;

	p->ctype = xstrdup(content_type);
	p->data = xmalloc(len ? len : 1);
	if (len)
		memcpy(p->data, data, len);
	p->len = len;
	err = add_route(a, "GET", path, serve_page, NULL, 0, p);
	if (err) {
		free(p->ctype);
		free(p->data);
		free(p);
	}
	return err;
}

/* Binds and listens on "host:port"; returns the socket or -1 with err set. */
static int listen_on(const char *addr, int *port, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	const char *sep, *service;
	char host[256];
	int fd = -1, rc, saved = 0, one = 1;

	sep = addr[0] == '[' ? strchr(addr, ']') : strrchr(addr, ':');
	if (sep && addr[0] == '[')
		sep = sep[1] == ':' ? sep + 1 : NULL;
	if (!sep || !sep[1] || (size_t)(sep - addr) >= sizeof host) {
		snprintf(err, errlen, "admin: bad listen address \"%s\" (want host:port)", addr);
		return -1;
	}
	if (addr[0] == '[')
		snprintf(host, sizeof host, "%.*s", (int)(sep - addr - 2), addr + 1);
	else
		snprintf(host, sizeof host, "%.*s", (int)(sep - addr), addr);
	service = sep + 1;
	rc = getaddrinfo(host[0] ? host : NULL, service, &hints, &res);
	if (rc != 0) {
		snprintf(err, errlen, "admin: %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(err, errlen, "admin: listen on %s: %s", addr, strerror(saved));
		return -1;
	}
	getsockname(fd, (struct sockaddr *)&ss, &sslen);
	*port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
					       : ((struct sockaddr_in *)&ss)->sin_port);
	return fd;
}

struct admin *admin_start(const char *listen, const struct admin_config *cfg, char *err,
			  size_t errlen)
{
	static const struct admin_config defaults = { 0 };
	struct admin *a = xcalloc(1, sizeof(*a));
	pthread_condattr_t ca;
	sigset_t all, old;

	if (!cfg)
		cfg = &defaults;
	a->lfd = -1;
	a->qtail = &a->queue;
	a->token = cfg->token && cfg->token[0] ? xstrdup(cfg->token) : NULL;
	a->wake = cfg->wake;
	a->wake_arg = cfg->wake_arg;
	a->stall_ms = cfg->stall_ms > 0 ? cfg->stall_ms : DEFAULT_STALL_MS;
	a->loop_timeout_ms =
		cfg->loop_timeout_ms > 0 ? cfg->loop_timeout_ms : DEFAULT_LOOP_TIMEOUT_MS;
	a->idle_timeout_s = cfg->idle_timeout_s > 0 ? cfg->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
	atomic_init(&a->last_tick, now_mono_ms());
	pthread_mutex_init(&a->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&a->done, &ca);
	pthread_condattr_destroy(&ca);
	add_route(a, "GET", "/healthz", healthz, a, 0, NULL);

	a->lfd = listen_on(listen, &a->port, err, errlen);
	if (a->lfd < 0)
		goto out_free;
	/* MHD's threads inherit the mask: the owner's signals go to the owner's
	 * threads. poll(), not select(): the owner may hold fds past 1024. A
	 * thread per connection: a handler waiting for the owner's loop holds
	 * only its own connection. Strict: HTTP/1.1 needs a Host, no blanks in
	 * the target. on_uri keeps the raw target, as MHD decodes its copy
	 * (then "%2F" and "/" could not be told apart). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	a->mhd = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG, 0,
		NULL, NULL, on_request, a, MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, a->lfd, MHD_OPTION_CONNECTION_LIMIT,
		(unsigned)ADMIN_MAX_CONNS, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		(unsigned)ADMIN_MAX_CONNS_PER_ADDR, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned)a->idle_timeout_s, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
		(size_t)ADMIN_MEMORY, MHD_OPTION_STRICT_FOR_CLIENT, 1, MHD_OPTION_THREAD_STACK_SIZE,
		(size_t)THREAD_STACK, MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!a->mhd) {
		snprintf(err, errlen, "admin: libmicrohttpd could not start on %s", listen);
		goto out_free;
	}
	a->lfd = -1; /* MHD_stop_daemon closes it */
	return a;

out_free:
	admin_stop(a);
	return NULL;
}

void admin_stop(struct admin *a)
{
	if (!a)
		return;
	/* Waiting ON_LOOP requests give up (their handlers never run: only
	 * this thread runs them); then MHD joins its threads. */
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	pthread_cond_broadcast(&a->done);
	pthread_mutex_unlock(&a->mu);
	if (a->mhd)
		MHD_stop_daemon(a->mhd);
	if (a->lfd >= 0)
		close(a->lfd); /* MHD did not start */
	for (size_t i = 0; i < a->nroutes; i++) {
		struct route *r = &a->routes[i];

		if (r->page) {
			free(r->page->ctype);
			free(r->page->data);
			free(r->page);
		}
		free(r->method);
		free(r->prefix);
	}
	free(a->routes);
	pthread_cond_destroy(&a->done);
	pthread_mutex_destroy(&a->mu);
	free(a->token);
	free(a);
}

int admin_port(const struct admin *a)
{
	return a->port;
}

int admin_connections(const struct admin *a)
{
	const union MHD_DaemonInfo *i =
		MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);

	return i ? (int)i->num_connections : 0;
}
