/* admin: see admin.h. */
#include "admin.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define DEFAULT_STALL_MS 5000
#define DEFAULT_LOOP_TIMEOUT_MS 5000
#define DEFAULT_IDLE_TIMEOUT_MS 10000
#define LINGER_MS 1000      /* after a response: reading what the peer still sends */
#define MAX_METHOD 16
#define MAX_IN (ADMIN_MAX_HEAD + ADMIN_MAX_BODY)

/* ---------------------------------------------------------------- parser */

static bool is_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Field content: visible ASCII, blanks and obs-text (bytes >= 0x80). */
static bool is_field_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool name_is(const struct admin_header *h, const char *name)
{
	size_t n = strlen(name);

	return h->name_len == n && strncasecmp(h->name, name, n) == 0;
}

/* Ran out of bytes: more may come, unless the head limit is reached. */
static int need_more(size_t len, struct admin_request *out, int status)
{
	if (len < ADMIN_MAX_HEAD)
		return -2;
	out->error = status;
	return -1;
}

/* A line end at p: its length (CRLF or LF), 0 if more bytes are needed, -1 if bad. */
static int eol(const char *p, const char *end)
{
	if (p == end)
		return 0;
	if (*p == '\n')
		return 1;
	if (*p != '\r')
		return -1;
	if (p + 1 == end)
		return 0;
	return p[1] == '\n' ? 2 : -1;
}

/* Checks Content-Length and Transfer-Encoding; sets out->body_len. */
static int body_length(struct admin_request *out)
{
	bool have_cl = false, te = false;

	for (size_t i = 0; i < out->nheaders; i++) {
		const struct admin_header *h = &out->headers[i];

		if (name_is(h, "transfer-encoding"))
			te = true;
		if (!name_is(h, "content-length"))
			continue;
		if (have_cl || h->value_len == 0)
			return -1;
		have_cl = true;
		for (size_t j = 0; j < h->value_len; j++) {
			if (h->value[j] < '0' || h->value[j] > '9')
				return -1;
			if (out->body_len <= ADMIN_MAX_BODY)
				out->body_len = out->body_len * 10 + (size_t)(h->value[j] - '0');
		}
	}
	if (te) {
		out->error = have_cl ? 400 : 411;
		return -1;
	}
	if (out->body_len > ADMIN_MAX_BODY) {
		out->error = 413;
		return -1;
	}
	return 0;
}

int admin_parse_request(const char *buf, size_t len, struct admin_request *out)
{
	const char *p = buf, *end = buf + (len < ADMIN_MAX_HEAD ? len : ADMIN_MAX_HEAD);
	const char *start;
	size_t head;
	int n;

	memset(out, 0, sizeof(*out));
	out->error = 400;

	/* method SP */
	for (start = p; p < end && is_tchar((unsigned char)*p); p++)
		;
	if (p == end)
		return need_more(len, out, 414);
	if (*p != ' ' || p == start)
		return -1;
	out->method = start;
	out->method_len = (size_t)(p - start);
	p++;

	/* request-target SP: origin form, split at the first '?' */
	for (start = p; p < end && *p > 0x20 && *p < 0x7f; p++)
		if (*p == '?' && !out->query)
			out->query = p + 1;
	if (p == end)
		return need_more(len, out, 414);
	if (*p != ' ' || p == start || *start != '/')
		return -1;
	out->path = start;
	out->path_len = (size_t)((out->query ? out->query - 1 : p) - start);
	if (out->query)
		out->query_len = (size_t)(p - out->query);
	p++;

	/* HTTP/1.x line end; another major version is 505 */
	for (int i = 0; i < 8; i++) {
		if (p + i == end)
			return need_more(len, out, 414);
		if (i == 7 ? p[i] < '0' || p[i] > '9' : p[i] != "HTTP/1."[i]) {
			if (i == 5 && p[i] >= '0' && p[i] <= '9')
				out->error = 505;
			return -1;
		}
	}
	out->minor_version = p[7] - '0';
	p += 8;
	if ((n = eol(p, end)) <= 0)
		return n == 0 ? need_more(len, out, 414) : -1;
	p += n;

	/* headers, then an empty line */
	for (;;) {
		struct admin_header *h;
		const char *vend;

		if (p == end)
			return need_more(len, out, 431);
		if (*p == '\r' || *p == '\n') {
			if ((n = eol(p, end)) <= 0)
				return n == 0 ? need_more(len, out, 431) : -1;
			p += n;
			break;
		}
		if (out->nheaders == ADMIN_MAX_HEADERS) {
			out->error = 431;
			return -1;
		}
		h = &out->headers[out->nheaders];
		for (start = p; p < end && is_tchar((unsigned char)*p); p++)
			;
		if (p == end)
			return need_more(len, out, 431);
		if (*p != ':' || p == start)
			return -1;
		h->name = start;
		h->name_len = (size_t)(p - start);
		for (p++; p < end && (*p == ' ' || *p == '\t'); p++)
			;
		for (start = p; p < end && is_field_char((unsigned char)*p); p++)
			;
		for (vend = p; vend > start && (vend[-1] == ' ' || vend[-1] == '\t'); vend--)
			;
		if ((n = eol(p, end)) <= 0)
			return n == 0 ? need_more(len, out, 431) : -1;
		h->value = start;
		h->value_len = (size_t)(vend - start);
		out->nheaders++;
		p += n;
	}

	if (body_length(out) < 0)
		return -1;
	head = (size_t)(p - buf);
	out->body = p;
	if (len - head < out->body_len)
		return -2; /* the head is complete: the fields are set */
	return (int)(head + out->body_len);
}

const struct admin_header *admin_header_find(const struct admin_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (name_is(&req->headers[i], name))
			return &req->headers[i];
	return NULL;
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
	for (end = q + req->query_len; q < end;) {
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
	if (url_decode(req->path + n, req->path_len - n, false, req->scratch, req->path_len + 1) <= 0)
		return NULL;
	return req->scratch;
}

/* -------------------------------------------------------------- responses */

struct admin_response {
	int status;
	char *ctype;   /* owned; NULL until a handler sets a response */
	char *body;    /* owned */
	size_t len;
	char *headers; /* owned: extra "Name: value\r\n" lines, or NULL */
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
	admin_response_json(resp, status,
			    json_pack("{s:o,s:o}", "error", json_text(code), "message",
				      json_text(msg)));
}

int admin_response_header(struct admin_response *resp, const char *name, const char *value)
{
	size_t old = resp->headers ? strlen(resp->headers) : 0;
	size_t add = strlen(name) + strlen(value) + 4;

	if (!*name || strpbrk(name, "\r\n: ") || strpbrk(value, "\r\n"))
		return -EINVAL;
	resp->headers = xrealloc(resp->headers, old + add + 1);
	snprintf(resp->headers + old, add + 1, "%s: %s\r\n", name, value);
	return 0;
}

/* Reason phrases; for the statuses of admin_parse_request, the error too. */
static const struct status {
	int status;
	const char *reason, *code, *msg;
} statuses[] = {
	{ 200, "OK" }, { 201, "Created" }, { 202, "Accepted" }, { 204, "No Content" },
	{ 400, "Bad Request", "bad_request", "malformed HTTP request" },
	{ 401, "Unauthorized" }, { 403, "Forbidden" }, { 404, "Not Found" },
	{ 405, "Method Not Allowed" }, { 409, "Conflict" },
	{ 411, "Length Required", "length_required", "send a Content-Length, not chunks" },
	{ 413, "Content Too Large", "payload_too_large", "the body is over 64 KiB" },
	{ 414, "URI Too Long", "uri_too_long", "the request line is over 8 KiB" },
	{ 415, "Unsupported Media Type" }, { 422, "Unprocessable Content" },
	{ 429, "Too Many Requests" },
	{ 431, "Request Header Fields Too Large", "headers_too_large",
	  "the head is over 8 KiB or 32 headers" },
	{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
	{ 503, "Service Unavailable" },
	{ 505, "HTTP Version Not Supported", "version_not_supported", "HTTP/1.x only" },
	{ 0, "Unknown" },
};

static const struct status *status_find(int status)
{
	const struct status *s = statuses;

	while (s->status && s->status != status)
		s++;
	return s;
}

/* ----------------------------------------------------------------- server */

enum conn_state {
	CONN_READ,   /* reading the request */
	CONN_LOOP,   /* its handler is queued for or running on the owner's loop */
	CONN_WRITE,  /* writing the response */
	CONN_LINGER, /* response sent and write side shut: draining until EOF */
	CONN_CLOSED, /* to be freed at the end of the iteration */
};

enum job_state { JOB_NONE, JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct conn {
	int fd;
	enum conn_state state;
	int64_t deadline; /* monotonic ms */
	char *in;
	size_t in_len, in_cap, need; /* need: bytes of a request whose head is in */
	struct admin_request req;
	struct admin_response resp;
	char *out;
	size_t out_len, out_off;
	/* ON_LOOP handoff, under admin.mu */
	struct conn *qnext;
	enum job_state job;
	admin_handler_fn fn;
	void *arg;
};

struct page {
	char *ctype, *data;
	size_t len;
};

struct route {
	char *method, *prefix;
	size_t prefix_len;
	admin_handler_fn fn;
	void *arg;
	unsigned flags;
	struct page *page; /* owned, for static routes */
};

struct admin {
	int lfd, efd, port;
	pthread_t thread;
	bool running; /* the thread was started */
	atomic_bool stop;
	_Atomic int64_t last_tick;
	char *token; /* NULL: none configured */
	admin_wake_fn wake;
	void *wake_arg;
	int stall_ms, loop_timeout_ms, idle_timeout_ms;

	pthread_mutex_t mu;
	struct route *routes; /* under mu */
	size_t nroutes;
	struct conn *queue, **qtail; /* ON_LOOP jobs, under mu */

	/* the admin thread's */
	struct conn *conns[ADMIN_MAX_CONNS];
	size_t nconns;
};

static void efd_signal(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof one) < 0)
		return; /* the counter is full: a wake-up is pending anyway */
}

/* Serialises the response and starts writing it. */
static void start_write(struct admin *a, struct conn *c)
{
	struct admin_response *r = &c->resp;
	bool bodyless;
	FILE *f;

	if (!r->ctype)
		admin_response_error(r, 500, "internal", "the handler gave no response");
	bodyless = r->status < 200 || r->status == 204 || r->status == 304;
	f = open_memstream(&c->out, &c->out_len);
	if (!f)
		abort(); /* out of memory */
	fprintf(f, "HTTP/1.1 %d %s\r\n", r->status, status_find(r->status)->reason);
	if (!bodyless)
		fprintf(f, "Content-Type: %s\r\nContent-Length: %zu\r\n", r->ctype, r->len);
	fprintf(f, "Cache-Control: no-store\r\nConnection: close\r\n%s\r\n",
		r->headers ? r->headers : "");
	if (!bodyless && r->len)
		fwrite(r->body, 1, r->len, f);
	if (ferror(f) || fclose(f) != 0)
		abort(); /* out of memory */
	c->state = CONN_WRITE;
	c->deadline = now_mono_ms() + a->idle_timeout_ms;
}

static bool path_match(const struct route *r, const char *path)
{
	if (r->prefix[r->prefix_len - 1] == '/')
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

		if (strcmp(r->prefix, best->prefix) != 0)
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

/* Compares the bearer token in constant time (for a given token length). */
static bool token_ok(const struct admin *a, const struct admin_request *req)
{
	const struct admin_header *h = admin_header_find(req, "Authorization");
	size_t n = strlen(a->token), glen;
	const char *given;
	unsigned char d;

	if (!h || h->value_len < 7 || strncasecmp(h->value, "Bearer ", 7) != 0)
		return false;
	given = h->value + 7;
	glen = h->value_len - 7;
	d = glen != n;
	for (size_t i = 0; i < n; i++)
		d |= (unsigned char)(a->token[i] ^ (i < glen ? given[i] : 0));
	return d == 0;
}

/* NUL-terminates the request's strings in place: each is followed by a
 * delimiter of the head that is no longer needed. */
static void terminate(struct admin_request *r)
{
	((char *)r->method)[r->method_len] = '\0';
	((char *)r->path)[r->path_len] = '\0';
	if (r->query)
		((char *)r->query)[r->query_len] = '\0';
	else
		r->query = "";
	for (size_t i = 0; i < r->nheaders; i++) {
		((char *)r->headers[i].name)[r->headers[i].name_len] = '\0';
		((char *)r->headers[i].value)[r->headers[i].value_len] = '\0';
	}
}

/* A whole request (or a bad one) is in: route it and run or queue its handler. */
static void dispatch(struct admin *a, struct conn *c, int n)
{
	struct route r;
	bool found;

	if (n < 0) {
		const struct status *s = status_find(c->req.error);

		if (!s->code)
			s = status_find(400);
		admin_response_error(&c->resp, s->status, s->code, "%s", s->msg);
		start_write(a, c);
		return;
	}
	terminate(&c->req);
	c->req.scratch = xmalloc(c->req.path_len + 1);
	pthread_mutex_lock(&a->mu);
	found = route_find(a, &c->req, &r, &c->resp);
	pthread_mutex_unlock(&a->mu);
	if (found && (r.flags & ADMIN_NEEDS_TOKEN)) {
		if (!a->token) {
			admin_response_error(&c->resp, 403, "forbidden",
					     "admin token not configured");
			found = false;
		} else if (!token_ok(a, &c->req)) {
			admin_response_error(&c->resp, 401, "unauthorized",
					     "missing or wrong bearer token");
			admin_response_header(&c->resp, "WWW-Authenticate", "Bearer");
			found = false;
		}
	}
	if (found && (r.flags & ADMIN_ON_LOOP)) {
		c->fn = r.fn;
		c->arg = r.arg;
		c->state = CONN_LOOP;
		c->deadline = now_mono_ms() + a->loop_timeout_ms;
		pthread_mutex_lock(&a->mu);
		c->job = JOB_QUEUED;
		*a->qtail = c;
		a->qtail = &c->qnext;
		pthread_mutex_unlock(&a->mu);
		if (a->wake)
			a->wake(a->wake_arg);
		return;
	}
	if (found)
		r.fn(r.arg, &c->req, &c->resp);
	start_write(a, c);
}

static void on_readable(struct admin *a, struct conn *c)
{
	size_t old = c->in_len;
	ssize_t got;
	int n;

	if (c->in_len == c->in_cap) {
		c->in_cap = c->in_cap ? c->in_cap * 2 : 4096;
		if (c->in_cap > MAX_IN)
			c->in_cap = MAX_IN;
		c->in = xrealloc(c->in, c->in_cap);
	}
	got = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
	if (got < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (got <= 0) {
		c->state = CONN_CLOSED; /* gone before a whole request */
		return;
	}
	c->in_len += (size_t)got;
	/* Parse only when the head can have ended or the body is in: a slow
	 * sender costs one parse per line, not one per byte. */
	if (c->need ? c->in_len < c->need
		    : !memchr(c->in + old, '\n', (size_t)got) && c->in_len < ADMIN_MAX_HEAD)
		return;
	n = admin_parse_request(c->in, c->in_len, &c->req);
	if (n == -2 && c->req.body)
		c->need = (size_t)(c->req.body - c->in) + c->req.body_len;
	if (n == -2 && c->in_len < MAX_IN)
		return;
	if (n == -2) { /* cannot happen within the limits */
		n = -1;
		c->req.error = 400;
	}
	dispatch(a, c, n);
}

static void on_writable(struct admin *a, struct conn *c)
{
	ssize_t sent = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);

	if (sent < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (sent < 0) {
		c->state = CONN_CLOSED;
		return;
	}
	c->out_off += (size_t)sent;
	c->deadline = now_mono_ms() + a->idle_timeout_ms;
	if (c->out_off < c->out_len)
		return;
	/* Lingering close: a peer still sending would get a reset that can
	 * destroy the response it has not read yet. */
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_LINGER;
	c->deadline = now_mono_ms() + LINGER_MS;
}

static void on_linger(struct conn *c)
{
	char sink[4096];
	ssize_t got = recv(c->fd, sink, sizeof sink, 0);

	if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
		c->state = CONN_CLOSED;
}

static void conn_free(struct conn *c)
{
	close(c->fd);
	free(c->in);
	free(c->out);
	free(c->req.scratch);
	free(c->resp.ctype);
	free(c->resp.body);
	free(c->resp.headers);
	free(c);
}

/* Takes c off the queue if its handler has not started; returns its job state. */
static enum job_state job_cancel(struct admin *a, struct conn *c)
{
	enum job_state st;

	pthread_mutex_lock(&a->mu);
	st = c->job;
	if (st == JOB_QUEUED) {
		for (struct conn **pp = &a->queue; *pp; pp = &(*pp)->qnext) {
			if (*pp == c) {
				*pp = c->qnext;
				if (!*pp)
					a->qtail = pp;
				break;
			}
		}
		c->job = JOB_NONE;
	}
	pthread_mutex_unlock(&a->mu);
	return st;
}

static void accept_all(struct admin *a)
{
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
				   "Content-Type: application/json\r\nContent-Length: 56\r\n"
				   "Connection: close\r\n\r\n"
				   "{\"error\":\"busy\",\"message\":\"too many admin connections\"}\n";
	int fd;

	while ((fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct conn *c;

		if (a->nconns == ADMIN_MAX_CONNS) { /* the socket buffer takes it whole */
			if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL) < 0)
				log_debug("admin: %s", strerror(errno));
			close(fd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->fd = fd;
		c->state = CONN_READ;
		c->deadline = now_mono_ms() + a->idle_timeout_ms;
		a->conns[a->nconns++] = c;
	}
	if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
		log_warn("admin: accept: %s", strerror(errno));
		poll(NULL, 0, 100); /* the listener stays readable: do not spin */
	}
}

/* One pass over the connections after poll: deadlines, finished jobs, and
 * the sweep of closed connections. */
static void conns_tick(struct admin *a)
{
	int64_t now = now_mono_ms();

	for (size_t i = 0; i < a->nconns; i++) {
		struct conn *c = a->conns[i];

		if (c->state == CONN_LOOP) {
			pthread_mutex_lock(&a->mu);
			enum job_state st = c->job;
			pthread_mutex_unlock(&a->mu);
			if (st == JOB_DONE) {
				start_write(a, c);
			} else if (now >= c->deadline && job_cancel(a, c) == JOB_QUEUED) {
				admin_response_error(&c->resp, 503, "busy",
						     "the event loop did not take the request");
				start_write(a, c);
			}
		} else if (now >= c->deadline && c->state != CONN_CLOSED) {
			c->state = CONN_CLOSED;
		}
	}
	for (size_t i = 0; i < a->nconns;) {
		if (a->conns[i]->state == CONN_CLOSED) {
			conn_free(a->conns[i]);
			a->conns[i] = a->conns[--a->nconns];
		} else {
			i++;
		}
	}
}

static int poll_timeout(const struct admin *a)
{
	int64_t now = now_mono_ms(), t = -1;

	for (size_t i = 0; i < a->nconns; i++) {
		int64_t d = a->conns[i]->deadline - now;

		if (a->conns[i]->state == CONN_LOOP && d <= 0)
			continue; /* running past its deadline: DONE wakes us */
		if (t < 0 || d < t)
			t = d < 0 ? 0 : d;
	}
	return (int)t;
}

static void *admin_thread(void *arg)
{
	struct admin *a = arg;
	struct pollfd pfd[2 + ADMIN_MAX_CONNS];
	struct conn *polled[ADMIN_MAX_CONNS];

	while (!atomic_load(&a->stop)) {
		size_t np = 0, nfd = 2;
		uint64_t v;

		pfd[0] = (struct pollfd){ .fd = a->efd, .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = a->lfd, .events = POLLIN };
		for (size_t i = 0; i < a->nconns; i++) {
			struct conn *c = a->conns[i];
			short ev = c->state == CONN_WRITE ? POLLOUT : POLLIN;

			if (c->state == CONN_LOOP)
				continue;
			polled[np++] = c;
			pfd[nfd++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(pfd, nfd, poll_timeout(a)) < 0 && errno != EINTR) {
			log_error("admin: poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents && read(a->efd, &v, sizeof v) < 0 && errno != EAGAIN)
			log_debug("admin: eventfd: %s", strerror(errno));
		if (pfd[1].revents)
			accept_all(a);
		for (size_t i = 0; i < np; i++) {
			struct conn *c = polled[i];

			if (!pfd[2 + i].revents)
				continue;
			if (c->state == CONN_READ)
				on_readable(a, c);
			else if (c->state == CONN_WRITE)
				on_writable(a, c);
			else if (c->state == CONN_LINGER)
				on_linger(c);
		}
		conns_tick(a);
	}

	/* Stopping, on the owner's thread: no handler runs (admin_stop). */
	for (size_t i = 0; i < a->nconns; i++) {
		if (a->conns[i]->state == CONN_LOOP)
			job_cancel(a, a->conns[i]);
		conn_free(a->conns[i]);
	}
	a->nconns = 0;
	return NULL;
}

int admin_run_pending(struct admin *a)
{
	struct conn *c;
	int ran = 0;

	pthread_mutex_lock(&a->mu);
	while ((c = a->queue)) {
		a->queue = c->qnext;
		if (!a->queue)
			a->qtail = &a->queue;
		c->qnext = NULL;
		c->job = JOB_RUNNING;
		pthread_mutex_unlock(&a->mu);
		c->fn(c->arg, &c->req, &c->resp);
		pthread_mutex_lock(&a->mu);
		c->job = JOB_DONE;
		ran++;
	}
	pthread_mutex_unlock(&a->mu);
	if (ran)
		efd_signal(a->efd);
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
		admin_response_json(resp, 503, json_pack("{s:s,s:I}", "status", "stalled",
							 "last_tick_ms_ago", (json_int_t)ago));
}

static void serve_page(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	const struct page *p = arg;

	admin_response_text(resp, 200, p->ctype, p->data, p->len);
}

static int add_route(struct admin *a, const char *method, const char *prefix,
		     admin_handler_fn fn, void *arg, unsigned flags, struct page *page)
{
	size_t mlen = strlen(method);
	struct route *r;
	int err = 0;

	for (size_t i = 0; i < mlen; i++)
		if (!is_tchar((unsigned char)method[i]))
			mlen = 0;
	if (mlen == 0 || mlen > MAX_METHOD || prefix[0] != '/' || !fn)
		return -EINVAL;
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->nroutes; i++)
		if (strcmp(a->routes[i].method, method) == 0 &&
		    strcmp(a->routes[i].prefix, prefix) == 0)
			err = -EEXIST;
	if (!err) {
		a->routes = xrealloc(a->routes, (a->nroutes + 1) * sizeof(*a->routes));
		r = &a->routes[a->nroutes++];
		*r = (struct route){ xstrdup(method), xstrdup(prefix), strlen(prefix), fn,
				     page ? (void *)page : arg, flags, page };
	}
	pthread_mutex_unlock(&a->mu);
	return err;
}

int admin_route(struct admin *a, const char *method, const char *path_prefix,
		admin_handler_fn fn, void *arg, unsigned flags)
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
	sigset_t all, old;
	int rc;

	if (!cfg)
		cfg = &defaults;
	a->lfd = a->efd = -1;
	a->qtail = &a->queue;
	a->token = cfg->token && cfg->token[0] ? xstrdup(cfg->token) : NULL;
	a->wake = cfg->wake;
	a->wake_arg = cfg->wake_arg;
	a->stall_ms = cfg->stall_ms > 0 ? cfg->stall_ms : DEFAULT_STALL_MS;
	a->loop_timeout_ms = cfg->loop_timeout_ms > 0 ? cfg->loop_timeout_ms
						      : DEFAULT_LOOP_TIMEOUT_MS;
	a->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms
						      : DEFAULT_IDLE_TIMEOUT_MS;
	atomic_init(&a->stop, false);
	atomic_init(&a->last_tick, now_mono_ms());
	pthread_mutex_init(&a->mu, NULL);
	add_route(a, "GET", "/healthz", healthz, a, 0, NULL);

	a->lfd = listen_on(listen, &a->port, err, errlen);
	if (a->lfd < 0)
		goto out_free;
	a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (a->efd < 0) {
		snprintf(err, errlen, "admin: eventfd: %s", strerror(errno));
		goto out_free;
	}
	/* The owner's signals go to the owner's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&a->thread, NULL, admin_thread, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		snprintf(err, errlen, "admin: thread: %s", strerror(rc));
		goto out_free;
	}
	a->running = true;
	return a;

out_free:
	admin_stop(a);
	return NULL;
}

void admin_stop(struct admin *a)
{
	if (!a)
		return;
	if (a->running) {
		atomic_store(&a->stop, true);
		efd_signal(a->efd);
		pthread_join(a->thread, NULL);
	}
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
	if (a->efd >= 0)
		close(a->efd);
	if (a->lfd >= 0)
		close(a->lfd);
	pthread_mutex_destroy(&a->mu);
	free(a->token);
	free(a);
}

int admin_port(const struct admin *a)
{
	return a->port;
}
