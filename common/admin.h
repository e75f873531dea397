/*
 * admin: a small HTTP/1.1 server for health, readiness, metrics and a JSON
 * API, on its own address and its own thread (poll()), so that probes are
 * answered even when the owner's loop is stuck. Handlers that touch the
 * owner's state are queued and run on the owner's loop (ADMIN_ON_LOOP).
 * One request per connection (Connection: close); bodies need Content-Length.
 */
#ifndef KWS_ADMIN_H
#define KWS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define ADMIN_MAX_HEAD (8 * 1024)  /* request line and headers */
#define ADMIN_MAX_BODY (64 * 1024) /* larger: 413 */
#define ADMIN_MAX_HEADERS 32       /* more: 431 */
#define ADMIN_MAX_CONNS 64         /* more: 503 */

/* ---- Parsing (pure: no I/O, no allocation) ---- */

struct admin_header {
	const char *name, *value; /* value without surrounding blanks */
	size_t name_len, value_len;
};

/*
 * A parsed request. After admin_parse_request the pointers point into the
 * parsed buffer and are NOT NUL-terminated. Requests handed to handlers are
 * NUL-terminated in place (method, path, query, header names and values;
 * query is "" when absent) and stay valid until the handler returns; body
 * is never terminated.
 */
struct admin_request {
	const char *method;
	size_t method_len;
	const char *path; /* the target up to '?', still %-encoded */
	size_t path_len;
	const char *query; /* after '?', NULL if none; still encoded */
	size_t query_len;
	int minor_version; /* HTTP/1.x */
	struct admin_header headers[ADMIN_MAX_HEADERS];
	size_t nheaders;
	const char *body; /* Content-Length bytes after the head */
	size_t body_len;
	int error;     /* after -1: the status to answer (400, 411, 413, 414, 431, 505) */
	char *scratch; /* the server's buffer for admin_path_param (path_len + 1 bytes) */
};

/*
 * Parses one request from buf[0..len). Returns the bytes it takes (head and
 * body; a pipelined request may follow), -2 if buf is a valid beginning that
 * needs more bytes, -1 if it is bad (out->error says which status). Strict:
 * a method is a token, the target starts with '/', the version is HTTP/1.x,
 * headers are "token: value" lines (no folding, no NULs or controls); at most
 * ADMIN_MAX_HEAD bytes of head, ADMIN_MAX_HEADERS headers and ADMIN_MAX_BODY
 * bytes of body; one Content-Length of digits; Transfer-Encoding is refused
 * (411, or 400 alongside Content-Length). CRLF or bare LF ends a line.
 */
int admin_parse_request(const char *buf, size_t len, struct admin_request *out);

/* The first header of that name (case-insensitive), or NULL. */
const struct admin_header *admin_header_find(const struct admin_request *req, const char *name);

/* Copies the %-decoded value of query parameter name ('+' is a space; a
 * parameter without '=' has the value "") into buf, NUL-terminated.
 * Returns 0, -ENOENT if absent, -EINVAL if badly encoded (or %00), -ENOSPC
 * if buf is too small. The first occurrence wins. */
int admin_query_get(const struct admin_request *req, const char *name, char *buf, size_t len);

/* For a path prefix + "<param>" (routes like "/clients/"): the %-decoded
 * param, in req->scratch (valid until the handler returns; the next call
 * overwrites it). NULL if the path does not start with prefix, the param is
 * empty or badly encoded, or req has no scratch. */
const char *admin_path_param(const struct admin_request *req, const char *prefix);

/* ---- The server ---- */

struct admin;
struct admin_response; /* owned by the server; filled by one handler call */

/* Called on the admin thread when an ADMIN_ON_LOOP request is queued: must
 * only signal the owner's loop (write an eventfd, lws_cancel_service). */
typedef void (*admin_wake_fn)(void *arg);

struct admin_config {
	const char *token;     /* bearer token of ADMIN_NEEDS_TOKEN routes (copied);
				  NULL or "": those routes answer 403 */
	admin_wake_fn wake;    /* NULL: the owner calls admin_run_pending anyway */
	void *wake_arg;
	int stall_ms;          /* /healthz is 503 past this since admin_loop_alive; 0: 5000 */
	int loop_timeout_ms;   /* ON_LOOP request not started by then: 503 busy; 0: 5000 */
	int idle_timeout_ms;   /* a connection's deadline to send its request; 0: 10000 */
};

/* Listens on listen ("host:port", "[v6]:port" or ":port" for every
 * address; port 0 picks one) and starts the thread. cfg may be NULL (the
 * defaults). Returns NULL with a message in err on failure. Built in:
 * GET /healthz: 200 {"status":"ok"} if admin_loop_alive ran within stall_ms,
 * else 503 {"status":"stalled","last_tick_ms_ago":N}. The clock starts at
 * admin_start. */
struct admin *admin_start(const char *listen, const struct admin_config *cfg, char *err,
			  size_t errlen);
/* Stops the thread, closes every connection (queued ON_LOOP requests are
 * dropped without running) and frees a. Call it on the owner's thread (the
 * one calling admin_run_pending), never from a handler: so no handler runs
 * meanwhile. NULL is fine. */
void admin_stop(struct admin *a);
/* The bound port (useful after port 0). */
int admin_port(const struct admin *a);

/* The owner's loop calls this every iteration (cheap: one atomic store). */
void admin_loop_alive(struct admin *a);
/* Runs the queued ADMIN_ON_LOOP handlers on the calling (owner's) thread.
 * Call it after each wake and may call it every iteration (cheap when the
 * queue is empty). Returns how many ran. */
int admin_run_pending(struct admin *a);

#define ADMIN_NEEDS_TOKEN 1u /* needs "Authorization: Bearer <token>": else 401 */
#define ADMIN_ON_LOOP 2u     /* runs in admin_run_pending; otherwise on the admin
				thread, where it may only touch thread-safe state */

/* Fills resp for req. arg is the one given to admin_route. A handler that
 * sets no response answers 500; setting one twice keeps the last. */
typedef void (*admin_handler_fn)(void *arg, const struct admin_request *req,
				 struct admin_response *resp);

/*
 * Routes method requests whose path is path_prefix exactly, or, if it ends
 * in '/', any path starting with it; the longest match wins. A path that
 * matches with another method answers 405 with Allow; no match, 404. May
 * be called while the server runs. Returns 0, -EEXIST for a method and prefix already routed, -EINVAL
 * for a prefix not starting with '/' or an empty method.
 */
int admin_route(struct admin *a, const char *method, const char *path_prefix,
		admin_handler_fn fn, void *arg, unsigned flags);
/* Serves data (copied) at GET path exactly, on the admin thread. */
int admin_route_static(struct admin *a, const char *path, const char *content_type,
		       const char *data, size_t len);

/* Responses. body is stolen (NULL: 500, for json_pack failures); it is
 * sent compact with a final newline, as application/json. */
void admin_response_json(struct admin_response *resp, int status, json_t *body);
/* Copies body. */
void admin_response_text(struct admin_response *resp, int status, const char *content_type,
			 const char *body, size_t len);
/* {"error":error_code,"message":"<formatted>"}, as application/json. */
void admin_response_error(struct admin_response *resp, int status, const char *error_code,
			  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Adds a header line (e.g. Retry-After). Returns -EINVAL if name or value
 * hold CR, LF or (name) ':'. */
int admin_response_header(struct admin_response *resp, const char *name, const char *value);

#endif
