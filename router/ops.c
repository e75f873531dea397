/*
 * ops: the router's admin endpoint (README, "Operating it"): health and
 * readiness probes, Prometheus metrics, the JSON API (partition map, edges,
 * client lookup, disconnect, drain) and the status page. Handlers marked
 * ADMIN_ON_LOOP run on the loop's thread (admin_run_pending when woken and in
 * ops_tick), so they read the router's state directly.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "door.h"
#include "ops.h"
#include "pins.h"
#include "tls.h"
#include "router_int.h"
#include "status_html.h"
#include "util.h"

#define CLOSE_SERVICE_RESTART 1012

static const double delay_bounds[] = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
				       0.25,  0.5,    1,     2.5,  5,     10 };

/* ---- metrics --------------------------------------------------------------- */

static void family(struct metrics_writer *w, const char *name, const char *help,
		   enum metrics_type type)
{
	metrics_write_family(w, name, help, type);
}

static void collect(void *arg, struct metrics_writer *w)
{
	struct router *r = arg;
	size_t by_state[4] = { 0 }, queued = 0, qmsgs = 0, b;
	for (struct hnode *n = hmap_iter_first(&r->sessions.by_sid, &b); n;
	     n = hmap_iter_next(&r->sessions.by_sid, n, &b)) {
		struct session *s = hmap_entry(n, struct session, by_sid);
		by_state[s->state]++;
		queued += s->qbytes;
		qmsgs += s->qcount;
	}
	family(w, "kws_router_sessions", "Client sessions by state", METRICS_GAUGE);
	for (int i = 0; i < 4; i++)
		metrics_write_sample(w, (double)by_state[i], "state",
				     sessions_state_name((enum session_state)i));
	family(w, "kws_router_sessions_throttled", "Sessions paused at their edge (slow clients)",
	       METRICS_GAUGE);
	metrics_write_sample(w, (double)r->nthrottled);
	family(w, "kws_router_handshakes_rejected_total", "Handshakes refused, by reason",
	       METRICS_COUNTER);
	for (int i = 0; i < ADMISSION_NREASONS; i++)
		metrics_write_sample(
			w,
			(double)(r->rejected[i] + door_refused(r->door, (enum admission_reason)i)),
			"reason", admission_reason_name((enum admission_reason)i));
	family(w, "kws_router_accept_errors_total",
	       "accept() failures for want of descriptors or memory (each pauses accepts 100 ms)",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)door_accept_errors(r->door));
	family(w, "kws_router_tls_reloads_total",
	       "Certificate reloads after --tls-cert/--tls-key changed, by result",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)tls_server_reloads(r->tls), "result", "ok");
	metrics_write_sample(w, (double)tls_server_reload_failures(r->tls), "result", "failed");
	family(w, "kws_router_tls_handshake_failures_total",
	       "TLS handshakes that failed (not TLS, old version, no shared cipher)",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)tls_server_handshake_failures(r->tls));
	family(w, "kws_router_messages_total", "Messages proxied, by direction", METRICS_COUNTER);
	metrics_write_sample(w, (double)r->delivered, "direction", "to_client");
	metrics_write_sample(w, (double)r->upstream, "direction", "from_client");
	family(w, "kws_router_bytes_total", "Payload bytes proxied, by direction", METRICS_COUNTER);
	metrics_write_sample(w, (double)r->delivered_bytes, "direction", "to_client");
	metrics_write_sample(w, (double)r->upstream_bytes, "direction", "from_client");
	family(w, "kws_router_drops_total", "Records not queued for a session, by reason",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)r->fenced, "reason", "fenced");
	metrics_write_sample(w, (double)r->duplicates, "reason", "duplicate");
	metrics_write_sample(w, (double)r->not_live, "reason", "not_live");
	family(w, "kws_router_queued_bytes", "Bytes queued for clients", METRICS_GAUGE);
	metrics_write_sample(w, (double)queued);
	family(w, "kws_router_queued_messages", "Messages queued for clients", METRICS_GAUGE);
	metrics_write_sample(w, (double)qmsgs);
	family(w, "kws_router_partitions", "Partitions of the delivery topic, by owner state",
	       METRICS_GAUGE);
	uint32_t owned = 0;
	for (uint32_t p = 0; p < r->routes.partition_count; p++)
		owned += r->routes.p[p].owner != ROUTES_NONE;
	metrics_write_sample(w, (double)owned, "state", "owned");
	metrics_write_sample(w, (double)(r->routes.partition_count - owned), "state", "unowned");
	family(w, "kws_router_partition_moves_total", "Owner changes of partitions (rebalances)",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)r->moves);
	family(w, "kws_router_repins_total", "Sessions subscribed again at a new owner",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)r->repins);
	family(w, "kws_router_resumes_total", "Clients that presented a position, by outcome",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)(r->resumes - r->resumes_incomplete), "result", "complete");
	metrics_write_sample(w, (double)r->resumes_incomplete, "result", "incomplete");
	family(w, "kws_router_throttles_total", "Sessions paused because their client was slow",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)r->throttles);
	family(w, "kws_router_slow_closes_total", "Clients closed with 4008", METRICS_COUNTER);
	metrics_write_sample(w, (double)r->slow_closed);
	family(w, "kws_router_text_as_binary_total",
	       "Messages sent as binary frames by a text-mode router: not valid UTF-8",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)r->text_as_binary);
	family(w, "kws_router_short_writes_total",
	       "Client writes the socket took only in part (the cut frame stays queued until whole)",
	       METRICS_COUNTER);
	metrics_write_sample(w, (double)r->short_writes);
	family(w, "kws_router_edge_links", "Links to edges, by state", METRICS_GAUGE);
	int st[PEER_NSTATES] = { 0 };
	for (int i = 0; i < r->nlinks; i++)
		if (!r->links[i].retired)
			st[r->links[i].peer.state]++;
	for (int i = 0; i <= PEER_UP; i++) /* a router's links: down, hello-sent, up */
		metrics_write_sample(w, st[i], "state", peer_state_name((enum peer_state)i));
	family(w, "kws_router_link_messages_total", "Messages received from edges",
	       METRICS_COUNTER);
	for (int i = 0; i < r->nlinks; i++)
		if (!r->links[i].retired)
			metrics_write_sample(w, (double)r->links[i].received, "edge",
					     r->links[i].url);
	family(w, "kws_router_link_resyncs_total", "Link restarts after a gap or a bad message",
	       METRICS_COUNTER);
	for (int i = 0; i < r->nlinks; i++)
		if (!r->links[i].retired)
			metrics_write_sample(w, (double)r->links[i].peer.st.resyncs, "edge",
					     r->links[i].url);
	family(w, "kws_router_draining", "1 while the router drains", METRICS_GAUGE);
	metrics_write_sample(w, r->draining ? 1 : 0);
}

static void h_metrics(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct router *r = arg;
	char *out;
	size_t len;
	metrics_render(r->metrics, &out, &len);
	admin_response_text(resp, 200, METRICS_CONTENT_TYPE, out, len);
	free(out);
}

/* ---- JSON API -------------------------------------------------------------- */

static const char *edge_name(const struct router *r, int edge)
{
	if (edge < 0)
		return NULL;
	const struct link *l = &r->links[edge];
	return l->peer.peer_id ? l->peer.peer_id : l->url;
}

static json_t *owner_json(const struct router *r, int edge)
{
	return edge < 0 ? json_null() : json_string(edge_name(r, edge));
}

static void h_readyz(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct router *r = arg;
	const char *why = NULL;
	if (r->draining)
		why = "draining";
	else if (!r->routes.partition_count)
		why = "no edge has reported the partitions yet";
	else if (!routes_complete(&r->routes))
		why = "some partitions have no owner";
	for (uint32_t p = 0; !why && p < r->routes.partition_count; p++)
		if (r->links[r->routes.p[p].owner].peer.state != PEER_UP)
			why = "the link to a partition's owner is down";
	admin_response_ready(resp, why);
}

static void h_partitions(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct router *r = arg;
	json_t *parts = json_array();
	for (uint32_t p = 0; p < r->routes.partition_count; p++) {
		json_t *o = json_pack("{s:i,s:o}", "partition", (json_int_t)p, "owner",
				      owner_json(r, r->routes.p[p].owner));
		if (r->routes.p[p].pending != ROUTES_NONE)
			json_object_set_new(o, "pending", owner_json(r, r->routes.p[p].pending));
		json_array_append_new(parts, o);
	}
	admin_response_json(resp, 200,
			    json_pack("{s:I,s:i,s:o}", "generation",
				      (json_int_t)r->routes.generation, "partition_count",
				      (json_int_t)r->routes.partition_count, "partitions", parts));
}

static void h_edges(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct router *r = arg;
	json_t *edges = json_array();
	for (int i = 0; i < r->nlinks; i++) {
		const struct link *l = &r->links[i];
		const struct routes_edge *e = &r->routes.e[i];
		if (l->retired)
			continue;
		json_array_append_new(
			edges,
			json_pack("{s:s,s:o,s:s,s:I,s:I,s:i,s:I,s:I,s:I,s:b}", "url", l->url,
				  "edge_id",
				  l->peer.peer_id ? json_string(l->peer.peer_id) : json_null(),
				  "state", peer_state_name(l->peer.state), "epoch",
				  (json_int_t)e->epoch, "connects", (json_int_t)l->connects,
				  "partitions", (json_int_t)e->nclaims, "received",
				  (json_int_t)l->received, "gaps", (json_int_t)l->peer.st.gaps,
				  "resyncs", (json_int_t)l->peer.st.resyncs, "upstream",
				  l->upstream));
	}
	admin_response_json(resp, 200, json_pack("{s:o}", "edges", edges));
}

static void h_stats(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct router *r = arg;
	admin_response_json(resp, 200,
			    json_pack("{s:s,s:I,s:I,s:I,s:b}", "router", r->cfg->router_id,
				      "sessions", (json_int_t)r->sessions.count, "delivered",
				      (json_int_t)r->delivered, "throttled",
				      (json_int_t)r->nthrottled, "draining", r->draining));
}

struct client_walk {
	struct router *r;
	json_t *sessions;
	int code;
	const char *reason;
};

static void add_session(struct session *s, void *arg)
{
	struct client_walk *cw = arg;
	json_array_append_new(
		cw->sessions,
		json_pack("{s:I,s:s,s:s,s:o,s:[i,I],s:I,s:I,s:b,s:b}", "session",
			  (json_int_t)s->sid, "router", cw->r->cfg->router_id, "state",
			  sessions_state_name(s->state), "edge", owner_json(cw->r, s->edge),
			  "position", (json_int_t)s->partition, (json_int_t)s->next_offset,
			  "queued_bytes", (json_int_t)s->qbytes, "queued_messages",
			  (json_int_t)s->qcount, "kws_v1", s->framed, "throttled", s->throttled));
}

struct disconnect {
	struct router *r;
	int code;
	size_t n;
};

/* pins_close only marks the session; it is freed after its close. */
static void disconnect_one(struct session *s, void *arg)
{
	struct disconnect *dc = arg;
	if (s->state == SESSION_CLOSING)
		return;
	pins_close(dc->r, s, dc->code, "disconnected by an operator");
	dc->n++;
}

static void h_client(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct router *r = arg;
	const char *id = admin_path_param(req, "/api/v1/clients/");
	if (!id) {
		admin_response_error(resp, 400, "bad_request", "want /api/v1/clients/<client id>");
		return;
	}
	size_t n = strlen(id);
	const char *slash = strrchr(id, '/');
	if (slash && strcmp(req->method, "POST") == 0)
		n = (size_t)(slash - id); /* /api/v1/clients/<id>/disconnect */
	struct client_walk cw = { .r = r, .sessions = json_array() };
	json_t *body;
	if (strcmp(req->method, "POST") == 0) {
		if (!slash || strcmp(slash, "/disconnect") != 0) {
			json_decref(cw.sessions);
			admin_response_error(resp, 404, "not_found",
					     "want POST /api/v1/clients/<id>/disconnect");
			return;
		}
		char code_s[16];
		long code = 4000;
		if (admin_query_get(req, "code", code_s, sizeof code_s) == 0) {
			char *end;
			code = strtol(code_s, &end, 10);
			if (*end || code < 1000 || code > 4999 ||
			    (code > 1003 && code < 3000 && code != 1008 && code != 1011 &&
			     code != 1012 && code != 1013)) {
				json_decref(cw.sessions);
				admin_response_error(resp, 400, "bad_request",
						     "code must be a WebSocket close code a server "
						     "may send (1000-1003, 1008, 1011-1013, "
						     "3000-4999)");
				return;
			}
		}
		struct disconnect dc = { r, (int)code, 0 };
		sessions_for_client(&r->sessions, id, n, disconnect_one, &dc);
		json_decref(cw.sessions);
		admin_response_json(resp, 200,
				    json_pack("{s:s%,s:I,s:i}", "client_id", id, n, "disconnected",
					      (json_int_t)dc.n, "code", (int)code));
		return;
	}
	sessions_for_client(&r->sessions, id, n, add_session, &cw);
	int32_t p = r->routes.partition_count
			    ? partition_for_key(r->cfg->partitioner, id, n,
						(int32_t)r->routes.partition_count)
			    : -1;
	body = json_pack("{s:s%,s:o,s:o,s:o}", "client_id", id, n, "partition",
			 p >= 0 ? json_integer(p) : json_null(), "owner",
			 p >= 0 ? owner_json(r, routes_owner(&r->routes, (uint32_t)p))
				: json_null(),
			 "sessions", cw.sessions);
	admin_response_json(resp, 200, body);
}

static void h_drain(void *arg, const struct admin_request *req, struct admin_response *resp)
{
	struct router *r = arg;
	char buf[24];
	long deadline = r->cfg->drain_timeout_ms;
	if (admin_query_get(req, "deadline_ms", buf, sizeof buf) == 0) {
		char *end;
		deadline = strtol(buf, &end, 10);
		if (*end || deadline < 0 || deadline > 3600000) {
			admin_response_error(resp, 400, "bad_request",
					     "deadline_ms must be 0..3600000");
			return;
		}
	}
	ops_drain(r, deadline, false);
	admin_response_json(resp, 202,
			    json_pack("{s:b,s:I,s:I}", "draining", 1, "sessions",
				      (json_int_t)r->sessions.count, "deadline_ms",
				      (json_int_t)deadline));
}

/* ---- drain ----------------------------------------------------------------- */

void ops_drain(struct router *r, int64_t deadline_ms, bool then_exit)
{
	r->exit_after_drain |= then_exit;
	if (r->draining)
		return;
	r->draining = true;
	r->drain_deadline_ms = now_mono_ms() + deadline_ms;
	log_info("draining: %zu sessions to close within %lld ms", r->sessions.count,
		 (long long)deadline_ms);
}

/* Closes a share of the remaining sessions, so they are spread over the
 * deadline and do not all reconnect elsewhere at once. */
static void drain_step(struct router *r)
{
	int64_t now = now_mono_ms(), left = r->drain_deadline_ms - now;
	size_t open = 0, b;
	for (struct hnode *n = hmap_iter_first(&r->sessions.by_sid, &b); n;
	     n = hmap_iter_next(&r->sessions.by_sid, n, &b))
		open += hmap_entry(n, struct session, by_sid)->state != SESSION_CLOSING;
	if (!open)
		return;
	/* Ticks are 100 ms; aim to finish a tick before the deadline. */
	size_t ticks = left > 200 ? (size_t)(left - 100) / 100 : 1;
	size_t quota = (open + ticks - 1) / ticks;
	for (struct hnode *n = hmap_iter_first(&r->sessions.by_sid, &b); n && quota;
	     n = hmap_iter_next(&r->sessions.by_sid, n, &b)) {
		struct session *s = hmap_entry(n, struct session, by_sid);
		if (s->state == SESSION_CLOSING)
			continue;
		pins_close(r, s, CLOSE_SERVICE_RESTART, "router draining: reconnect to resume");
		r->drained++;
		quota--;
	}
}

bool ops_drained(struct router *r)
{
	if (!r->draining || !r->exit_after_drain)
		return false;
	return r->sessions.count == 0 || now_mono_ms() >= r->drain_deadline_ms + 1000;
}

void ops_tick(struct router *r)
{
	if (r->admin) {
		admin_loop_alive(r->admin);
		admin_run_pending(r->admin);
	}
	if (r->draining)
		drain_step(r);
}

/* ---- start ----------------------------------------------------------------- */

static void wake_loop(void *arg)
{
	router_wake(arg);
}

/* A worker (super.h): tells the supervisor it is up and where its admin
 * endpoint is (port 0: none), once. */
static void report_up(struct router *r, int port)
{
	if (r->cfg->report_fd < 0)
		return;
	char line[32];
	int n = snprintf(line, sizeof line, "ADMIN %d\n", port);
	if (write(r->cfg->report_fd, line, (size_t)n) != n)
		log_warn("cannot report the admin port to the supervisor");
	close(r->cfg->report_fd);
}

int ops_start(struct router *r)
{
	r->metrics = metrics_new();
	r->delay = metrics_histogram(r->metrics, "kws_router_delivery_delay_seconds",
				     "Kafka record timestamp to WebSocket write", delay_bounds,
				     sizeof delay_bounds / sizeof delay_bounds[0]);
	metrics_collect(r->metrics, collect, r);
	if (!*r->cfg->admin_listen) {
		report_up(r, 0);
		return 0;
	}
	struct admin_config ac = { .token = r->cfg->admin_token, .wake = wake_loop, .wake_arg = r };
	char err[256];
	r->admin = admin_start(r->cfg->admin_listen, &ac, err, sizeof err);
	if (!r->admin) {
		log_error("admin endpoint: %s", err);
		return -1;
	}
	const unsigned L = ADMIN_ON_LOOP, T = ADMIN_NEEDS_TOKEN;
	admin_route(r->admin, "GET", "/readyz", h_readyz, r, L);
	admin_route(r->admin, "GET", "/metrics", h_metrics, r, L);
	admin_route(r->admin, "GET", "/api/v1/partitions", h_partitions, r, L);
	admin_route(r->admin, "GET", "/api/v1/edges", h_edges, r, L);
	admin_route(r->admin, "GET", "/api/v1/stats", h_stats, r, L);
	admin_route(r->admin, "GET", "/api/v1/clients/", h_client, r, L);
	admin_route(r->admin, "POST", "/api/v1/clients/", h_client, r, L | T);
	admin_route(r->admin, "POST", "/api/v1/drain", h_drain, r, L | T);
	admin_route_static(r->admin, "/", "text/html; charset=utf-8", status_html,
			   sizeof status_html - 1);
	if (!r->cfg->admin_token || !*r->cfg->admin_token)
		log_warn("no admin token (--admin-token): disconnect and drain are refused");
	log_info("admin endpoint on %s (port %d)", r->cfg->admin_listen, admin_port(r->admin));
	report_up(r, admin_port(r->admin));
	return 0;
}

void ops_stop(struct router *r)
{
	admin_stop(r->admin);
	r->admin = NULL;
	metrics_free(r->metrics);
	r->metrics = NULL;
}
