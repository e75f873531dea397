/* router: see router.h. The module map is in router_int.h; the edge
 * protocol is in common/PROTOCOL.md. This file builds the router, runs the
 * loop and its tick, and tears it down. */
#include "router.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <libwebsockets.h>

#include "cidr.h"
#include "deflate.h"
#include "door.h"
#include "edges.h"
#include "ident.h"
#include "ops.h"
#include "pins.h"
#include "recvhook.h"
#include "tls.h"
#include "router_int.h"
#include "stages.h"
#include "util.h"
#include "workcount.h"
#include "ws.h"

#define TICK_MS 100

/* The door's thread: guests are waiting for the loop. */
static void wake_loop(void *arg)
{
	router_wake(arg);
}

/* Ends the loop when the router is done: the first SIGINT/SIGTERM drains
 * (ops.c), a second one stops at once. */
static void check_stop(struct router *r)
{
	if (r->stop_requested == 1 && !r->draining)
		ops_drain(r, r->cfg->drain_timeout_ms, true);
	if (r->stop_requested >= 2 || ops_drained(r))
		uv_stop(&r->loop);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct router *r = h->data;
	log_info("signal %d: %s", signum, r->stop_requested ? "stopping now" : "draining");
	r->stop_requested++;
	check_stop(r);
}

/* router_wake() was called: the door has guests, an edge link or the
 * resolver has news, or the admin endpoint has a request for the loop. */
static void on_wake(uv_async_t *h)
{
	struct router *r = h->data;
	ws_adopt_guests(r);
	edges_drain(r);
	ws_flush(r); /* what the edges' input queued, without a loop turn */
	if (r->admin)
		admin_run_pending(r->admin);
}

static void on_tick(uv_timer_t *h)
{
	struct router *r = h->data;
	edges_drain(r);
	ws_flush(r);
	int64_t now = now_mono_ms();
	routes_tick(&r->routes, now);
	edges_tick(r, now);
	if (now >= r->next_prune_ms) {
		r->next_prune_ms = now + 5000;
		admission_rate_prune(&r->rate, now);
	}
	if (r->nthrottled && now >= r->next_stall_check_ms) {
		r->next_stall_check_ms = now + 1000;
		pins_close_stalled(r, now);
	}
	if (r->retry_waiting) {
		r->retry_waiting = false;
		pins_retry_waiting(r);
	}
	ws_keepalive_tick(r, now);
	ops_tick(r);
	check_stop(r);
}

/* wss: TLS connections with plaintext left inside after lws's read
 * (recvhook_tls_pending): the socket may never become readable for it.
 * fresh: noted in this loop iteration; due: in an earlier one. After poll
 * (so after lws has written what the last read queued, e.g. a Pong), the
 * check handle gives lws a POLLIN for each due one, as a readable socket
 * would; the idle handle keeps poll from blocking while any wait. One
 * router per process, so file scope. */
struct fd_list {
	int *fd;
	size_t n, cap;
};
static struct fd_list tls_fresh, tls_due;
static struct router *tls_router;
static pthread_t tls_loop_thread;

static void tls_idle_noop(uv_idle_t *h)
{
	(void)h;
}

/* recvhook_tls_pending: notes fd (the loop's thread only; the door reads
 * a head at once and hands the rest to lws with it). */
static void tls_note_pending(int fd)
{
	struct router *r = tls_router;
	if (!r || !pthread_equal(pthread_self(), tls_loop_thread))
		return;
	for (size_t i = 0; i < tls_fresh.n; i++)
		if (tls_fresh.fd[i] == fd)
			return;
	if (tls_fresh.n == tls_fresh.cap) {
		tls_fresh.cap = tls_fresh.cap ? 2 * tls_fresh.cap : 16;
		tls_fresh.fd = xrealloc(tls_fresh.fd, tls_fresh.cap * sizeof *tls_fresh.fd);
	}
	tls_fresh.fd[tls_fresh.n++] = fd;
	uv_idle_start(&r->tls_idle, tls_idle_noop);
}

static void on_tls_check(uv_check_t *h)
{
	struct router *r = h->data;
	struct fd_list due = tls_due;
	tls_due = tls_fresh;
	tls_fresh = (struct fd_list){ 0 };
	for (size_t i = 0; i < due.n; i++) {
		struct tls_conn *c = tls_conn_of(due.fd[i]);
		if (!c || !tls_conn_pending(c) || !r->ctx)
			continue;
		struct lws_pollfd p = { .fd = due.fd[i],
					.events = LWS_POLLIN,
					.revents = LWS_POLLIN };
		lws_service_fd(r->ctx, &p);
	}
	free(due.fd);
	if (!tls_due.n && !tls_fresh.n)
		uv_idle_stop(&r->tls_idle);
}

/* Sets up the loop and the router's own handles on it. 0, or -1 (logged;
 * nothing to undo). */
static int loop_open(struct router *r)
{
	int rc = uv_loop_init(&r->loop);
	if (rc < 0) {
		log_error("event loop: %s", uv_strerror(rc));
		return -1;
	}
	uv_async_init(&r->loop, &r->wake, on_wake);
	uv_timer_init(&r->loop, &r->tick);
	uv_signal_init(&r->loop, &r->sigint);
	uv_signal_init(&r->loop, &r->sigterm);
	uv_check_init(&r->loop, &r->tls_check);
	uv_idle_init(&r->loop, &r->tls_idle);
	r->tls_check.data = r;
	r->wake.data = r->tick.data = r->sigint.data = r->sigterm.data = r;
	uv_signal_start(&r->sigint, on_signal, SIGINT);
	uv_signal_start(&r->sigterm, on_signal, SIGTERM);
	/* A worker starts with them blocked (super.c): one that came during
	 * the start-up is delivered now, to on_signal. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return 0;
}

/* Closes the router's handles and destroys the lws context, running the
 * loop until lws has closed its own handles (libuv closes asynchronously),
 * then closes the loop. Every thread that calls router_wake() must have
 * stopped. */
/* The longest the loop runs on at exit to finish closing (loop_close). */
#define LOOP_CLOSE_MS 2000

static void on_close_deadline(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Closes the loop; false if a name lookup was left running (see below). */
static bool loop_close(struct router *r)
{
	uv_close((uv_handle_t *)&r->wake, NULL);
	uv_close((uv_handle_t *)&r->tick, NULL);
	uv_close((uv_handle_t *)&r->sigint, NULL);
	uv_close((uv_handle_t *)&r->sigterm, NULL);
	recvhook_tls_pending = NULL;
	tls_router = NULL;
	uv_close((uv_handle_t *)&r->tls_check, NULL);
	uv_close((uv_handle_t *)&r->tls_idle, NULL);
	free(tls_fresh.fd);
	free(tls_due.fd);
	tls_fresh = tls_due = (struct fd_list){ 0 };
	/* Closes every client (CLOSED frees their sessions) and starts closing
	 * lws's handles; the loop completes that, and the second call frees
	 * what is left (lws 4.1, foreign loops). info.pcontext clears r->ctx
	 * once the context is gone. */
	if (r->ctx)
		lws_context_destroy(r->ctx);
	/* Bounded: an edge's name lookup stuck on a DNS server that does not
	 * answer keeps the loop alive (libuv's thread pool cannot cancel a
	 * getaddrinfo under way) and must not hold the stop. */
	uv_timer_t deadline;
	uv_timer_init(&r->loop, &deadline);
	uv_timer_start(&deadline, on_close_deadline, LOOP_CLOSE_MS, 0);
	uv_unref((uv_handle_t *)&deadline);
	uv_run(&r->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(&r->loop, UV_RUN_NOWAIT);
	if (r->ctx)
		lws_context_destroy(r->ctx);
	int rc = uv_loop_close(&r->loop);
	if (rc == UV_EBUSY) {
		log_warn("event loop: an edge's name lookup is still running at exit; not waiting "
			 "for it");
		return false;
	}
	if (rc < 0)
		log_warn("event loop: %s at exit", uv_strerror(rc));
	return true;
}

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	/* lws 4.1.6 logs every adoption with a head (door.c) as an error. */
	bool adopt_noise = strstr(line, "adopt_socket_readbuf:") != NULL;
	log_msg(adopt_noise         ? LOG_DEBUG
		: level == LLL_ERR  ? LOG_ERROR
		: level == LLL_WARN ? LOG_WARN
				    : LOG_DEBUG,
		"lws: %.*s", (int)n, line);
}

/* Builds the identity checker from the settings (README, "Trust"). */
static int setup_ident(struct router *r)
{
	const struct router_config *cfg = r->cfg;
	struct ident_config ic = {
		.mode = (enum ident_mode)cfg->auth_mode,
		.id_header = cfg->id_header,
		.max_id_bytes = cfg->max_id_bytes,
		.key_files = cfg->jwt_keys,
		.claim = cfg->jwt_claim,
		.leeway_s = cfg->jwt_leeway_s,
		.issuer = cfg->jwt_issuer,
		.audience = cfg->jwt_audience,
		.token_in_id_header = cfg->token_in_id_header,
		.token_in_query = cfg->token_in_query,
	};
	char err[300];
	if (*cfg->trusted_proxies &&
	    cidr_parse(cfg->trusted_proxies, &ic.proxies, err, sizeof err) < 0) {
		log_error("--trusted-proxies (ROUTER_TRUSTED_PROXIES): %s", err);
		return -1;
	}
	r->ident = ident_new(&ic, err, sizeof err);
	cidr_free(&ic.proxies);
	if (!r->ident) {
		log_error("identity (--auth %s): %s", ident_mode_name(ic.mode), err);
		return -1;
	}
	if (ic.mode == IDENT_NONE)
		log_warn("*** --auth none: the %s header is trusted as sent, so any client can "
			 "read any other client's messages. For local runs only. ***",
			 cfg->id_header);
	else if (ic.mode == IDENT_JWT)
		log_info("identity: JWT, %zu keys, id from claim %s", ident_key_count(r->ident),
			 cfg->jwt_claim);
	else
		log_info("identity: the %s header from %s only", cfg->id_header,
			 cfg->trusted_proxies);
	return 0;
}

/* Handshakes the door holds at most before lws takes them (door.h). */
#define ROUTER_DOOR_MAX_WAITING 4096

/* Lowers the soft limit of open files to what this worker needs
 * (workcount_files_needed): lws sizes its fd table by it, and Debian's
 * build scans the whole table at every close. Never raises it. */
static void fit_file_limit(const struct router_config *cfg)
{
	struct rlimit rl;
	long need = workcount_files_needed(cfg->max_connections, ROUTER_DOOR_MAX_WAITING);
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
	    (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= (rlim_t)need))
		return;
	rlim_t was = rl.rlim_cur;
	rl.rlim_cur = (rlim_t)need;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	log_info("open files: soft limit %ld (was %s%llu): --max-connections %ld, %d handshakes "
		 "at the door, %d for the rest",
		 need, was == RLIM_INFINITY ? "unlimited, " : "", (unsigned long long)was,
		 cfg->max_connections, ROUTER_DOOR_MAX_WAITING, WORKCOUNT_FILES_RESERVE);
}

int router_run(const struct router_config *cfg)
{
	struct router r = { .cfg = cfg };
	int rc = 1;
	bool loop_up = false, lookup_left = false;
	sessions_init(&r.sessions);
	routes_init(&r.routes, 0, cfg->handover_ms, pins_on_moved, &r);
	admission_rate_init(&r.rate, cfg->handshakes_per_ip);
	r.wbuf = xmalloc(LWS_PRE + WS_WRITE_BATCH_BYTES);
	int hl = snprintf(r.id_header, sizeof r.id_header - 1, "%s:", cfg->id_header);
	for (int i = 0; i < hl; i++)
		r.id_header[i] =
			(char)(r.id_header[i] >= 'A' && r.id_header[i] <= 'Z' ? r.id_header[i] + 32
									      : r.id_header[i]);
	r.id_header_len = hl;

	signal(SIGPIPE, SIG_IGN);
	fit_file_limit(cfg);
	lws_set_log_level(LLL_ERR | LLL_WARN | (log_enabled(LOG_DEBUG) ? LLL_NOTICE : 0), lws_log);

	if (stages_setup("router") < 0)
		goto out;
	if (setup_ident(&r) < 0)
		goto out;
	if (loop_open(&r) < 0)
		goto out;
	loop_up = true;
	char serr[300];
	if (linkauth_load_secret(cfg->link_secret, &r.secret, serr, sizeof serr) < 0) {
		log_error("--link-secret (ROUTER_LINK_SECRET): %s", serr);
		goto out;
	}
	if (!linkauth_enabled(&r.secret))
		log_warn("no --link-secret: the links to the edges are not authenticated");
	if (*cfg->tls_cert) {
		r.tls = tls_server_new(cfg->tls_cert, cfg->tls_key, serr, sizeof serr, NULL);
		if (!r.tls) {
			log_error("--tls-cert/--tls-key: %s", serr);
			goto out;
		}
		tls_router = &r;
		tls_loop_thread = pthread_self();
		recvhook_tls_pending = tls_note_pending;
		uv_check_start(&r.tls_check, on_tls_check);
		uv_unref((uv_handle_t *)&r.tls_check);
	}
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	/* wss: lws's reads must take a whole TLS record (16 KiB of plaintext)
	 * so none is left inside OpenSSL with the socket no longer readable
	 * (per thread, not per connection). */
	if (r.tls)
		info.pt_serv_buf_size = 32768 + LWS_PRE;
	info.timeout_secs = (unsigned int)cfg->handshake_timeout_s;
	/* The door bounds the head as received; lws keeps its rewritten copy
	 * (a few private headers more) with some bookkeeping. */
	long ah = cfg->max_header_bytes + 1024;
	info.max_http_header_data = (unsigned short)(ah > 65535 ? 65535 : ah);
	/* The router pings itself (ws_keepalive_tick), so lws keeps no validity
	 * timer: without a policy lws 4.1.6 uses its default (ping at 300 s,
	 * hang up at 310 s) and re-inserts each connection's timer into its one
	 * sorted timer list on every handshake and every Pong, walking past the
	 * timers of all the other sessions: O(sessions) per Pong, which made
	 * the router's keepalive waves cost a core at 18,000 sessions (tests/
	 * bench README, "The event loop"). A hangup of 0 turns it off. */
	static const lws_retry_bo_t no_validity = { .secs_since_valid_ping = 0,
						    .secs_since_valid_hangup = 0 };
	info.retry_and_idle_policy = &no_validity;
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* the door listens (door.h) */
	info.protocols = ws_protocols;
	if (cfg->deflate)
		info.extensions = deflate_extensions;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 |
		       LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.vhost_name = "router";
	info.user = &r; /* router_of(wsi) */
	/* lws on the router's libuv loop (epoll): the default poll() loop looks
	 * at every connection on every wake-up (issue 13). */
	info.options |= LWS_SERVER_OPTION_LIBUV;
	void *loops[1] = { &r.loop };
	info.foreign_loops = loops;
	info.pcontext = &r.ctx;
	r.ctx = lws_create_context(&info);
	if (!r.ctx) {
		log_error("cannot create the WebSocket context (is libwebsockets-evlib-uv "
			  "installed?)");
		goto out;
	}
	r.vh = lws_create_vhost(r.ctx, &info);
	if (!r.vh) {
		log_error("cannot create the WebSocket vhost");
		goto out;
	}
	struct door_config dc = {
		.host = cfg->listen_host,
		.port = cfg->port,
		.max_head = (size_t)cfg->max_header_bytes,
		.timeout_ms = (int)cfg->handshake_timeout_s * 1000,
		.max_waiting = ROUTER_DOOR_MAX_WAITING,
		.max_waiting_per_addr = (size_t)cfg->handshakes_waiting_per_ip,
		.id_header = cfg->id_header,
		.reuseport = cfg->reuseport,
		.tls = r.tls,
		.wake = wake_loop,
		.wake_arg = &r,
	};
	r.door = door_start(&dc, serr, sizeof serr);
	if (!r.door) {
		log_error("--listen: %s", serr);
		goto out;
	}
	if (edges_start(&r) < 0)
		goto out;
	uv_timer_start(&r.tick, on_tick, TICK_MS, TICK_MS);
	log_info("router %s: WebSockets on %s:%ld/ws, client id from %s, partitioner %s, %d edges",
		 cfg->router_id, *cfg->listen_host ? cfg->listen_host : "*", cfg->port,
		 cfg->id_header, partitioner_name(cfg->partitioner), r.nlinks);
	if (*cfg->edges_dns)
		log_info("edges: every address of %s, resolved every %ld ms", cfg->edges_dns,
			 cfg->dns_interval_ms);

	if (ops_start(&r) < 0)
		goto out;
	uv_run(&r.loop, UV_RUN_DEFAULT); /* until check_stop() */
	log_info("router %s: stopping (%zu sessions, delivered %llu, fenced %llu, duplicates %llu)",
		 cfg->router_id, r.sessions.count, (unsigned long long)r.delivered,
		 (unsigned long long)r.fenced, (unsigned long long)r.duplicates);
	rc = 0;
out:
	/* The door, links, resolver and admin endpoint first: their threads
	 * wake the loop. */
	door_stop(r.door);
	r.door = NULL;
	edges_stop(&r);
	admin_stop(r.admin);
	r.admin = NULL;
	if (loop_up)
		lookup_left = !loop_close(&r);
	else if (r.ctx)
		lws_context_destroy(r.ctx);
	tls_server_free(r.tls); /* after the loop: connections are closed */
	ops_stop(&r);
	free(r.links);
	routes_free(&r.routes);
	ident_free(r.ident);
	free(r.wbuf);
	free(r.flush);
	linkauth_secret_free(&r.secret);
	admission_rate_free(&r.rate);
	sessions_free(&r.sessions);
	stages_close();
	/* libuv joins its thread pool at exit (a destructor), and the
	 * lookup left running would hold the exit until it returns. */
	if (lookup_left) {
		fflush(NULL);
		_exit(rc);
	}
	return rc;
}
