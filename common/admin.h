/*
 * admin: the HTTP endpoint for health, readiness, metrics and a JSON API, on
 * its own address. libmicrohttpd serves it (HTTP parsing, a thread per
 * connection, connection and per-address limits, timeouts), so probes are
 * answered even when the owner's loop is stuck. Ours: routing, bearer auth,
 * query and path decoding, and the handoff of handlers that touch the
 * owner's state to the owner's loop (ADMIN_ON_LOOP). One request per
 * connection (Connection: close).
 */
#ifndef KWS_ADMIN_H
#define KWS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define ADMIN_MAX_BODY (64 * 1024)  /* larger: 413 */
#define ADMIN_MAX_CONNS 64          /* more: closed at accept */
#define ADMIN_MAX_CONNS_PER_ADDR 16 /* from one address; more: closed at accept */
#define ADMIN_MEMORY \
	(16 * 1024) /* per connection, holds the head: a longer
					request line 414, more headers 431 */

/* ---- Requests (pure: no I/O) ---- */

struct MHD_Connection;

/*
 * A request as handlers see it: strings NUL-terminated, valid until the
 * handler returns. Filled by admin_request_init; the server adds the body
 * and the connection.
 */
struct admin_request {
	const char *method;
	const char *path;  /* the target up to '?', still %-encoded */
	const char *query; /* after '?', "" if none; still encoded */
	size_t path_len;
	const char *body; /* the whole body (up to ADMIN_MAX_BODY), not terminated */
	size_t body_len;
	char *scratch;               /* path_len + 1 bytes for admin_path_param, or NULL */
	struct MHD_Connection *conn; /* the server's, for admin_header; or NULL */
};

/*
 * Splits target (the raw request-target, modified in place: its '?' becomes
 * a NUL) into req's path and query; sets req's method (not copied) and
 * clears the rest. Returns 0, or -EINVAL if the target is not in origin form
 * (does not start with '/'). The caller sets req->scratch if it wants
 * admin_path_param.
 */
int admin_request_init(struct admin_request *req, const char *method, char *target);

/* The value of request header name (case-insensitive), or NULL (also
 * without a connection). Leading blanks are gone; trailing blanks stay
 * (libmicrohttpd 0.9.75 keeps them). */
const char *admin_header(const struct admin_request *req, const char *name);

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

/* Whether authorization (an Authorization header's value, or NULL) is
 * "Bearer <token>" (the scheme case-insensitive, trailing blanks ignored).
 * Compares in constant time for a given token length. */
bool admin_bearer_ok(const char *token, const char *authorization);

/* ---- The server ---- */

struct admin;
struct admin_response; /* owned by the server; filled by one handler call */

/* Called on a connection's thread when an ADMIN_ON_LOOP request is queued:
 * must only signal the owner's loop (write an eventfd, lws_cancel_service). */
typedef void (*admin_wake_fn)(void *arg);

struct admin_config {
	const char *token;  /* bearer token of ADMIN_NEEDS_TOKEN routes (copied);
				  NULL or "": those routes answer 403 */
	admin_wake_fn wake; /* NULL: the owner calls admin_run_pending anyway */
	void *wake_arg;
	int stall_ms;        /* /healthz is 503 past this since admin_loop_alive; 0: 5000 */
	int loop_timeout_ms; /* ON_LOOP request not started by then: 503 busy; 0: 5000 */
	int idle_timeout_s;  /* a connection silent this long is closed; 0: 10 */
};

/* Listens on listen ("host:port", "[v6]:port" or ":port" for every
 * address; port 0 picks one) and starts the server's threads. cfg may be
 * NULL (the defaults). Returns NULL with a message in err on failure.
 * Built in: GET /healthz: 200 {"status":"ok"} if admin_loop_alive ran
 * within stall_ms, else 503 {"status":"stalled","last_tick_ms_ago":N}
 * (answered on the connection's thread: a stuck owner shows). The clock
 * starts at admin_start. */
struct admin *admin_start(const char *listen, const struct admin_config *cfg, char *err,
			  size_t errlen);
/* Stops the server, closes every connection (queued ON_LOOP requests are
 * dropped without running, their clients see the connection close) and
 * frees a. Call it on the owner's thread (the one calling
 * admin_run_pending), never from a handler: so no handler runs meanwhile.
 * NULL is fine. */
void admin_stop(struct admin *a);
/* The bound port (useful after port 0). */
int admin_port(const struct admin *a);
/* How many connections the server holds now (accepted, not yet closed). */
int admin_connections(const struct admin *a);

/* The owner's loop calls this every iteration (cheap: one atomic store). */
void admin_loop_alive(struct admin *a);
/* Runs the queued ADMIN_ON_LOOP handlers on the calling (owner's) thread.
 * Call it after each wake and may call it every iteration (cheap when the
 * queue is empty). Returns how many ran. */
int admin_run_pending(struct admin *a);

#define ADMIN_NEEDS_TOKEN 1u /* needs "Authorization: Bearer <token>": else 401 */
#define ADMIN_ON_LOOP \
	2u /* runs in admin_run_pending; otherwise on the
				connection's thread, where it may only touch
				thread-safe state */

/* Fills resp for req. arg is the one given to admin_route. A handler that
 * sets no response answers 500; setting one twice keeps the last. */
typedef void (*admin_handler_fn)(void *arg, const struct admin_request *req,
				 struct admin_response *resp);

/*
 * Routes method requests whose path is path_prefix exactly, or, if it ends
 * in '/', any path starting with it; the longest match wins. A path that
 * matches with another method answers 405 with Allow; no match, 404. May
 * be called while the server runs. Returns 0, -EEXIST for a method and
 * prefix already routed, -EINVAL for a prefix not starting with '/' or a
 * method that is not an HTTP token.
 */
int admin_route(struct admin *a, const char *method, const char *path_prefix, admin_handler_fn fn,
		void *arg, unsigned flags);
/* Serves data (copied) at GET path exactly (also when path ends in '/'),
 * on the connection's thread. Same returns as admin_route. */
int admin_route_static(struct admin *a, const char *path, const char *content_type,
		       const char *data, size_t len);

/* Responses. body is stolen (NULL: 500, for json_pack failures); it is
 * sent compact with a final newline, as application/json. */
void admin_response_json(struct admin_response *resp, int status, json_t *body);
/* The answer of a readiness probe: 503 {"ready":false,"reason":why} when why
 * is set, else 200 {"ready":true}. */
void admin_response_ready(struct admin_response *resp, const char *why);
/* Copies body. */
void admin_response_text(struct admin_response *resp, int status, const char *content_type,
			 const char *body, size_t len);
/* {"error":error_code,"message":"<formatted>"}, as application/json. */
void admin_response_error(struct admin_response *resp, int status, const char *error_code,
			  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Adds a header line (e.g. Retry-After). Returns -EINVAL if name or value
 * hold CR, LF or (name) ':' or a blank. */
int admin_response_header(struct admin_response *resp, const char *name, const char *value);

#endif
