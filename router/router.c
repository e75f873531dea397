/* router: see router.h. The module map is in router_int.h; the edge
 * protocol is in common/PROTOCOL.md. This file builds the router, runs the
 * loop and its tick, and tears it down. */
#include "router.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "cidr.h"
#include "door.h"
#include "edges.h"
#include "ident.h"
#include "ops.h"
#include "pins.h"
#include "router_int.h"
#include "util.h"
#include "ws.h"

#define TICK_US (100 * 1000)

/* Signals: the first SIGTERM/SIGINT drains (ops.c), a second one stops at
 * once. A handler can only reach the loop through a static: the context of
 * the running router (set while it runs). */
static volatile sig_atomic_t stop_requested;
static struct lws_context *volatile signal_ctx;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested++;
	if (signal_ctx)
		lws_cancel_service(signal_ctx);
}

/* The door's thread: guests are waiting for the loop. */
static void wake_loop(void *arg)
{
	struct router *r = arg;
	lws_cancel_service(r->ctx);
}

static void on_tick(lws_sorted_usec_list_t *sul)
{
	struct router *r = lws_container_of(sul, struct router, tick);
	edges_drain(r);
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
	ops_tick(r);
	lws_sul_schedule(r->ctx, 0, &r->tick, on_tick, TICK_US);
}

static void lws_log(int level, const char *line)
{
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	/* lws 4.1.6 logs every adoption with a head (door.c) as an error. */
	bool adopt_noise = strstr(line, "adopt_socket_readbuf:") != NULL;
	log_msg(adopt_noise ? LOG_DEBUG
		: level == LLL_ERR ? LOG_ERROR : level == LLL_WARN ? LOG_WARN : LOG_DEBUG,
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

int router_run(const struct router_config *cfg)
{
	struct router r = { .cfg = cfg };
	int rc = 1;
	sessions_init(&r.sessions, LWS_PRE);
	routes_init(&r.routes, 0, cfg->handover_ms, pins_on_moved, &r);
	admission_rate_init(&r.rate, cfg->handshakes_per_ip);
	r.wbuf = xmalloc(LWS_PRE + WS_WRITE_BATCH_BYTES);
	int hl = snprintf(r.id_header, sizeof r.id_header - 1, "%s:", cfg->id_header);
	for (int i = 0; i < hl; i++)
		r.id_header[i] = (char)(r.id_header[i] >= 'A' && r.id_header[i] <= 'Z'
						? r.id_header[i] + 32 : r.id_header[i]);
	r.id_header_len = hl;

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	lws_set_log_level(LLL_ERR | LLL_WARN | (log_enabled(LOG_DEBUG) ? LLL_NOTICE : 0),
			  lws_log);

	if (setup_ident(&r) < 0)
		goto out;
	char serr[300];
	if (linkauth_load_secret(cfg->link_secret, &r.secret, serr, sizeof serr) < 0) {
		log_error("--link-secret (ROUTER_LINK_SECRET): %s", serr);
		goto out;
	}
	if (!linkauth_enabled(&r.secret))
		log_warn("no --link-secret: the links to the edges are not authenticated");
	lws_retry_bo_t retry = {
		.secs_since_valid_ping = (uint16_t)cfg->ping_interval_s,
		.secs_since_valid_hangup = (uint16_t)(2 * cfg->ping_interval_s),
	};
	struct lws_context_creation_info info;
	memset(&info, 0, sizeof info);
	info.timeout_secs = (unsigned int)cfg->handshake_timeout_s;
	/* The door bounds the head as received; lws keeps its rewritten copy
	 * (a few private headers more) with some bookkeeping. */
	long ah = cfg->max_header_bytes + 1024;
	info.max_http_header_data = (unsigned short)(ah > 65535 ? 65535 : ah);
	info.retry_and_idle_policy = &retry;
	info.port = CONTEXT_PORT_NO_LISTEN_SERVER; /* the door listens (door.h) */
	info.protocols = ws_protocols;
	info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6 |
		       LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
	info.vhost_name = "router";
	info.user = &r; /* router_of(wsi) */
	r.ctx = lws_create_context(&info);
	if (!r.ctx) {
		log_error("cannot create the WebSocket context");
		goto out;
	}
	signal_ctx = r.ctx;
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
		.max_waiting = 4096,
		.max_waiting_per_addr = (size_t)cfg->handshakes_waiting_per_ip,
		.id_header = cfg->id_header,
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
	lws_sul_schedule(r.ctx, 0, &r.tick, on_tick, TICK_US);
	log_info("router %s: WebSockets on %s:%ld/ws, client id from %s, partitioner %s, %d edges",
		 cfg->router_id, *cfg->listen_host ? cfg->listen_host : "*", cfg->port,
		 cfg->id_header, partitioner_name(cfg->partitioner), r.nlinks);
	if (*cfg->edges_dns)
		log_info("edges: every address of %s, resolved every %ld ms", cfg->edges_dns,
			 cfg->dns_interval_ms);

	if (ops_start(&r) < 0)
		goto out;
	while (stop_requested < 2 && !ops_drained(&r)) {
		if (stop_requested && !r.draining)
			ops_drain(&r, cfg->drain_timeout_ms, true);
		if (lws_service(r.ctx, 0) < 0)
			break;
	}
	log_info("router %s: stopping (%zu sessions, delivered %llu, fenced %llu, duplicates %llu)",
		 cfg->router_id, r.sessions.count, (unsigned long long)r.delivered,
		 (unsigned long long)r.fenced, (unsigned long long)r.duplicates);
	rc = 0;
out:
	/* The door, links and the resolver first: their threads wake the lws
	 * context. */
	door_stop(r.door);
	edges_stop(&r);
	signal_ctx = NULL;
	if (r.ctx)
		lws_context_destroy(r.ctx); /* closes clients: CLOSED frees their sessions */
	ops_stop(&r);
	free(r.links);
	routes_free(&r.routes);
	ident_free(r.ident);
	free(r.wbuf);
	linkauth_secret_free(&r.secret);
	admission_rate_free(&r.rate);
	sessions_free(&r.sessions);
	return rc;
}
