/* router: command line and environment; see router.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "ident.h"
#include "router.h"
#include "super.h"
#include "tls.h"
#include "util.h"

static const char summary[] =
	"router: serves client WebSockets on /ws, reads the client id from a header,\n"
	"pins each client to the edge that owns its Kafka partition and proxies frames\n"
	"both ways. Every flag can also be set by the environment variable shown.";

int main(int argc, char **argv)
{
	util_malloc_keep();
	struct router_config cfg = { .report_fd = -1 };
	long workers = 0;
	const char *listen = NULL;
	bool log_json = false;
	int level = LOG_INFO, message_type = 0, deflate = 0;
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	static const char *const partitioners[] = { "murmur2", "crc32", NULL };
	static const char *const types[] = { "binary", "text", NULL };
	static const char *const deflates[] = { "off", "on", "no-context-takeover", NULL };
	static const char *const auths[] = { "none", "header-from-proxies", "jwt", NULL };
	const struct conf_opt opts[] = {
		{ "listen", "ROUTER_LISTEN", CONF_STR, &listen, "0.0.0.0:8080",
		  "Address and port for client WebSockets, [host:]port.", 0, 0, 0, NULL,
		  conf_check_listen },
		{ "edges", "ROUTER_EDGES", CONF_LIST, &cfg.edges, NULL,
		  "Address of an edge, e.g. tcp://10.0.0.5:7100 (a static list; or --edges-dns).",
		  0, 0, 0, NULL, conf_check_tcp_url },
		{ "edges-dns", "ROUTER_EDGES_DNS", CONF_STR, &cfg.edges_dns, "",
		  "host:port: a DNS name resolving to every edge (a headless Service), re-resolved periodically.",
		  0, 0, 0, NULL, conf_check_host_port },
		{ "dns-interval-ms", "ROUTER_DNS_INTERVAL_MS", CONF_INT, &cfg.dns_interval_ms,
		  "5000", "How often --edges-dns is resolved again.", 0, 100, 600000 },
		{ "id-header", "ROUTER_ID_HEADER", CONF_STR, &cfg.id_header, "X-Client-Id",
		  "HTTP header that carries the client id." },
		{ "partitioner", "ROUTER_PARTITIONER", CONF_CHOICE, &cfg.partitioner, "murmur2",
		  "How producers partition by key: murmur2 (Kafka's Java client) or crc32 (librdkafka's default).",
		  0, 0, 0, partitioners },
		{ "message-type", "ROUTER_MESSAGE_TYPE", CONF_CHOICE, &message_type, "binary",
		  "WebSocket message type for records.", 0, 0, 0, types },
		{ "deflate", "ROUTER_DEFLATE", CONF_CHOICE, &deflate, "off",
		  "Accept permessage-deflate (RFC 7692) when a client offers it; no-context-takeover: the router's compressor forgets each message (README, \"Compression\").",
		  0, 0, 0, deflates },
		{ "tls-cert", "ROUTER_TLS_CERT", CONF_STR, &cfg.tls_cert, "",
		  "PEM certificate chain: with --tls-key, the client port speaks only wss (TLS 1.2+, reloaded when the file changes)." },
		{ "tls-key", "ROUTER_TLS_KEY", CONF_STR, &cfg.tls_key, "",
		  "PEM private key of --tls-cert." },
		{ "max-id-bytes", "ROUTER_MAX_ID_BYTES", CONF_INT, &cfg.max_id_bytes, "256",
		  "Longest client id accepted.", 0, 1, 4000 },
		{ "max-frame-bytes", "ROUTER_MAX_FRAME_BYTES", CONF_SIZE, &cfg.max_frame_bytes,
		  "64KiB", "Largest message a client may send; a larger one closes it with 1009.",
		  0, 1, 8L << 20 },
		{ "queue-bytes", "ROUTER_QUEUE_BYTES", CONF_SIZE, &cfg.queue_bytes, "1MiB",
		  "Bytes queued for one client; at half of it the session pauses at its edge until the client catches up (README, slow clients).",
		  0, 1024, 1L << 30 },
		{ "stall-timeout-ms", "ROUTER_STALL_TIMEOUT_MS", CONF_INT, &cfg.stall_timeout_ms,
		  "30000",
		  "A client whose queue is full and that reads nothing for this long is closed with 4008.",
		  0, 100, 3600000 },
		{ "handover-ms", "ROUTER_HANDOVER_MS", CONF_INT, &cfg.handover_ms, "5000",
		  "How long a new owner's claim waits for the old owner's revoke.", 0, 0, 600000 },
		{ "router-id", "ROUTER_ID", CONF_STR, &cfg.router_id, "",
		  "Name shown to edges and operators; empty: host:port." },
		{ "admin-listen", "ROUTER_ADMIN_LISTEN", CONF_STR, &cfg.admin_listen,
		  "127.0.0.1:9090",
		  "Admin HTTP endpoint (health, metrics, API), host:port; empty disables it." },
		{ "admin-token", "ROUTER_ADMIN_TOKEN", CONF_STR, &cfg.admin_token, "",
		  "Bearer token for mutating admin calls (disconnect, drain); empty refuses them." },
		{ "drain-timeout-ms", "ROUTER_DRAIN_TIMEOUT_MS", CONF_INT, &cfg.drain_timeout_ms,
		  "30000", "On SIGTERM, close the sessions (1012) over this long, then exit.", 0, 0,
		  3600000 },
		{ "link-secret", "ROUTER_LINK_SECRET", CONF_STR, &cfg.link_secret, "",
		  "Shared secret the edges must prove (file:PATH or env:NAME, never the value itself); "
		  "empty: links are not authenticated." },
		{ "auth", "ROUTER_AUTH", CONF_CHOICE, &cfg.auth_mode, "none",
		  "How a client's id is trusted: none (the header as sent: local runs only), "
		  "header-from-proxies (the header only from --trusted-proxies), jwt (a signed token).",
		  0, 0, 0, auths },
		{ "trusted-proxies", "ROUTER_TRUSTED_PROXIES", CONF_STR, &cfg.trusted_proxies, "",
		  "CIDRs of the proxies whose id header is trusted (header-from-proxies)." },
		{ "jwt-keys", "ROUTER_JWT_KEYS", CONF_LIST, &cfg.jwt_keys, NULL,
		  "A key file or directory (HMAC secret, or RSA/EC public key PEM; the file name is the kid)." },
		{ "jwt-claim", "ROUTER_JWT_CLAIM", CONF_STR, &cfg.jwt_claim, "sub",
		  "The token claim that holds the client id." },
		{ "jwt-issuer", "ROUTER_JWT_ISSUER", CONF_STR, &cfg.jwt_issuer, "",
		  "Required iss claim; empty: not checked." },
		{ "jwt-audience", "ROUTER_JWT_AUDIENCE", CONF_STR, &cfg.jwt_audience, "",
		  "Required aud claim; empty: tokens with an aud are refused." },
		{ "jwt-leeway-s", "ROUTER_JWT_LEEWAY_S", CONF_INT, &cfg.jwt_leeway_s, "30",
		  "Clock skew allowed on exp and nbf.", 0, 0, 86400 },
		{ "token-in-id-header", "ROUTER_TOKEN_IN_ID_HEADER", CONF_BOOL,
		  &cfg.token_in_id_header, "false", "Also take the token from the id header." },
		{ "token-in-query", "ROUTER_TOKEN_IN_QUERY", CONF_BOOL, &cfg.token_in_query,
		  "false",
		  "Also take the token from ?access_token= (it then appears in proxy logs)." },
		{ "token-cookie", "ROUTER_TOKEN_COOKIE", CONF_STR, &cfg.token_cookie, "",
		  "Also take the token from this cookie (same-site browsers; stays out of URLs and "
		  "logs); empty: no cookie." },
		{ "allowed-origins", "ROUTER_ALLOWED_ORIGINS", CONF_LIST, &cfg.allowed_origins,
		  NULL,
		  "An Origin browsers may connect from, e.g. https://app.example.com; none given: any." },
		{ "max-connections", "ROUTER_MAX_CONNECTIONS", CONF_INT, &cfg.max_connections,
		  "18000", "Client sessions on this router; beyond: 503.", 0, 1, 10000000 },
		{ "max-sessions-per-id", "ROUTER_MAX_SESSIONS_PER_ID", CONF_INT,
		  &cfg.max_sessions_per_id, "16",
		  "Sessions of one client id on this router; beyond: 429.", 0, 1, 100000 },
		{ "handshakes-per-ip", "ROUTER_HANDSHAKES_PER_IP", CONF_INT, &cfg.handshakes_per_ip,
		  "100",
		  "Handshakes a second from one source address (burst: twice that); beyond: 429.",
		  0, 1, 1000000 },
		{ "handshakes-waiting-per-ip", "ROUTER_HANDSHAKES_WAITING_PER_IP", CONF_INT,
		  &cfg.handshakes_waiting_per_ip, "1024",
		  "Connections from one source address whose request head has not arrived yet; beyond: 429 at accept.",
		  0, 1, 4096 },
		{ "handshake-timeout-s", "ROUTER_HANDSHAKE_TIMEOUT_S", CONF_INT,
		  &cfg.handshake_timeout_s, "5",
		  "A connection must complete its handshake within this.", 0, 1, 300 },
		{ "ping-interval-s", "ROUTER_PING_INTERVAL_S", CONF_INT, &cfg.ping_interval_s, "30",
		  "Idle clients are pinged this often and closed after two intervals without an answer.",
		  0, 1, 3600 },
		{ "max-header-bytes", "ROUTER_MAX_HEADER_BYTES", CONF_INT, &cfg.max_header_bytes,
		  "4096", "Room for the request line and headers of a handshake; beyond: refused.",
		  0, 1024, 65536 },
		{ "workers", "ROUTER_WORKERS", CONF_INT, &workers, "0",
		  "Worker processes sharing the client port, each with its own links to the "
		  "edges; 0: one per CPU the process may use (its affinity, or the cgroup CPU "
		  "limit: the pod's), more if --max-connections needs more processes under the "
		  "open-file limit. 1: a single process, no supervisor (README, \"Workers\").",
		  0, 0, SUPER_MAX_WORKERS },
		{ "log-level", "ROUTER_LOG_LEVEL", CONF_CHOICE, &level, "info", "Log threshold.", 0,
		  0, 0, levels },
		{ "log-json", "ROUTER_LOG_JSON", CONF_BOOL, &log_json, "false",
		  "Write logs as JSON lines." },
		{ 0 },
	};
	int rc;
	if (conf_main_exits(opts, argc, argv, "router", summary, &rc))
		goto out;
	if (!cfg.edges.count && !*cfg.edges_dns) {
		fprintf(stderr, "router: give the edges: --edges (ROUTER_EDGES) or --edges-dns "
				"(ROUTER_EDGES_DNS)\n");
		rc = 2;
		goto out;
	}
	if (cfg.auth_mode == IDENT_JWT && !cfg.jwt_keys.count) {
		fprintf(stderr,
			"router: --auth jwt needs keys: give --jwt-keys (ROUTER_JWT_KEYS) a key "
			"file or directory (an HMAC secret, or RSA/EC public keys in PEM)\n");
		rc = 2;
		goto out;
	}
	if (cfg.auth_mode == IDENT_HEADER_FROM_PROXIES && !*cfg.trusted_proxies) {
		fprintf(stderr,
			"router: --auth header-from-proxies needs --trusted-proxies "
			"(ROUTER_TRUSTED_PROXIES): the CIDRs of the proxies that set the id "
			"header\n");
		rc = 2;
		goto out;
	}
	/* A worker of a supervisor (super.h): the supervisor checked the port
	 * and holds the admin endpoint; this process shares the port and
	 * reports a private admin port. */
	const char *wenv = getenv(SUPER_WORKER_ENV);
	int windex = -1, wn = 1, wfd = -1;
	if (wenv && super_worker_parse(wenv, &windex, &wn, &wfd) < 0) {
		fprintf(stderr, "router: bad %s=%s (set by the supervisor only)\n",
			SUPER_WORKER_ENV, wenv);
		rc = 2;
		goto out;
	}
	unsetenv(SUPER_WORKER_ENV);
	if (!workers)
		workers = super_default_workers(cfg.max_connections);
	if (!*cfg.tls_cert != !*cfg.tls_key) {
		fprintf(stderr,
			"router: wss needs both --tls-cert (ROUTER_TLS_CERT) and --tls-key "
			"(ROUTER_TLS_KEY): give %s too, or neither for plain ws\n",
			*cfg.tls_cert ? "--tls-key" : "--tls-cert");
		rc = 2;
		goto out;
	}
	if (*cfg.tls_cert) {
		char terr[600];
		enum tls_fault fault;
		struct tls_server *t =
			tls_server_new(cfg.tls_cert, cfg.tls_key, terr, sizeof terr, &fault);
		static const char *const flag[] = {
			[TLS_FAULT_CERT] = "--tls-cert (ROUTER_TLS_CERT)",
			[TLS_FAULT_KEY] = "--tls-key (ROUTER_TLS_KEY)",
			[TLS_FAULT_PAIR] =
				"--tls-key (ROUTER_TLS_KEY) with --tls-cert (ROUTER_TLS_CERT)",
		};
		static const char *const fix[] = {
			[TLS_FAULT_CERT] = "give a readable PEM certificate (chain) file",
			[TLS_FAULT_KEY] = "give a readable PEM private key file",
			[TLS_FAULT_PAIR] = "give the private key of that certificate",
		};
		if (!t) {
			fprintf(stderr, "router: %s: %s; %s\n", flag[fault], terr, fix[fault]);
			rc = 2;
			goto out;
		}
		tls_server_free(t);
	}
	/* [host:]port, checked by conf_check_listen; and free to bind. */
	char host[256] = "", why[200];
	if (conf_parse_host_port(listen, false, host, sizeof host, &cfg.port, why, sizeof why) <
		    0 ||
	    (windex < 0 && conf_try_bind(host, cfg.port, why, sizeof why) < 0)) {
		fprintf(stderr, "router: cannot listen on %s:%ld (--listen, ROUTER_LISTEN): %s\n",
			*host ? host : "0.0.0.0", cfg.port, why);
		rc = 2;
		goto out;
	}
	cfg.listen_host = host;
	cfg.text = message_type == 1;
	cfg.deflate = deflate >= 1;
	cfg.deflate_no_takeover = deflate == 2;
	char rid[300];
	if (!*cfg.router_id) {
		char hn[200] = "router";
		gethostname(hn, sizeof hn - 1);
		snprintf(rid, sizeof rid, "%s:%ld", hn, cfg.port);
		cfg.router_id = rid;
	}
	char wid[340], wname[32];
	if (windex >= 0) {
		snprintf(wid, sizeof wid, "%s/w%d", cfg.router_id, windex);
		cfg.router_id = wid;
		snprintf(wname, sizeof wname, "router/w%d", windex);
		cfg.reuseport = true;
		cfg.report_fd = wfd;
		cfg.admin_listen = *cfg.admin_listen ? "127.0.0.1:0" : "";
		/* --max-connections is the router's: each worker takes its share. */
		cfg.max_connections = (cfg.max_connections + wn - 1) / wn;
		log_setup(wname, (enum log_level)level, log_json);
		rc = router_run(&cfg);
	} else if (workers > 1) {
		log_setup("router", (enum log_level)level, log_json);
		rc = super_run(&cfg, (int)workers, argv);
	} else {
		log_setup("router", (enum log_level)level, log_json);
		rc = router_run(&cfg);
	}
out:
	conf_list_free(&cfg.edges);
	conf_list_free(&cfg.jwt_keys);
	conf_list_free(&cfg.allowed_origins);
	return rc;
}
