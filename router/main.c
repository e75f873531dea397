/* router: command line and environment; see router.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "router.h"
#include "util.h"

static const char summary[] =
	"router: serves client WebSockets on /ws, reads the client id from a header,\n"
	"pins each client to the edge that owns its Kafka partition and proxies frames\n"
	"both ways. Every flag can also be set by the environment variable shown.";

int main(int argc, char **argv)
{
	struct router_config cfg = { 0 };
	const char *listen = NULL;
	bool log_json = false;
	int level = LOG_INFO, message_type = 0;
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	static const char *const partitioners[] = { "murmur2", "crc32", NULL };
	static const char *const types[] = { "binary", "text", NULL };
	const struct conf_opt opts[] = {
		{ "listen", "ROUTER_LISTEN", CONF_STR, &listen, "0.0.0.0:8080",
		  "Address and port for client WebSockets, [host:]port." },
		{ "edges", "ROUTER_EDGES", CONF_LIST, &cfg.edges, NULL,
		  "Address of an edge, e.g. tcp://10.0.0.5:7100 (a static list; or --edges-dns)." },
		{ "edges-dns", "ROUTER_EDGES_DNS", CONF_STR, &cfg.edges_dns, "",
		  "host:port: a DNS name resolving to every edge (a headless Service), re-resolved periodically." },
		{ "dns-interval-ms", "ROUTER_DNS_INTERVAL_MS", CONF_INT, &cfg.dns_interval_ms, "5000",
		  "How often --edges-dns is resolved again.", 0, 100, 600000 },
		{ "id-header", "ROUTER_ID_HEADER", CONF_STR, &cfg.id_header, "X-Client-Id",
		  "HTTP header that carries the client id." },
		{ "partitioner", "ROUTER_PARTITIONER", CONF_CHOICE, &cfg.partitioner, "murmur2",
		  "How producers partition by key: murmur2 (Kafka's Java client) or crc32 (librdkafka's default).",
		  0, 0, 0, partitioners },
		{ "message-type", "ROUTER_MESSAGE_TYPE", CONF_CHOICE, &message_type, "binary",
		  "WebSocket message type for records.", 0, 0, 0, types },
		{ "max-id-bytes", "ROUTER_MAX_ID_BYTES", CONF_INT, &cfg.max_id_bytes, "256",
		  "Longest client id accepted.", 0, 1, 4000 },
		{ "max-frame-bytes", "ROUTER_MAX_FRAME_BYTES", CONF_SIZE, &cfg.max_frame_bytes, "64KiB",
		  "Largest message a client may send; a larger one closes it with 1009.", 0, 1, 8L << 20 },
		{ "queue-bytes", "ROUTER_QUEUE_BYTES", CONF_SIZE, &cfg.queue_bytes, "1MiB",
		  "Bytes queued for one client; at half of it the session pauses at its edge until the client catches up (README, slow clients).", 0, 1024,
		  1L << 30 },
		{ "stall-timeout-ms", "ROUTER_STALL_TIMEOUT_MS", CONF_INT, &cfg.stall_timeout_ms, "30000",
		  "A client whose queue is full and that reads nothing for this long is closed with 4008.",
		  0, 100, 3600000 },
		{ "handover-ms", "ROUTER_HANDOVER_MS", CONF_INT, &cfg.handover_ms, "5000",
		  "How long a new owner's claim waits for the old owner's revoke.", 0, 0, 600000 },
		{ "router-id", "ROUTER_ID", CONF_STR, &cfg.router_id, "",
		  "Name shown to edges and operators; empty: host:port." },
		{ "admin-listen", "ROUTER_ADMIN_LISTEN", CONF_STR, &cfg.admin_listen, "127.0.0.1:9090",
		  "Admin HTTP endpoint (health, metrics, API), host:port; empty disables it." },
		{ "admin-token", "ROUTER_ADMIN_TOKEN", CONF_STR, &cfg.admin_token, "",
		  "Bearer token for mutating admin calls (disconnect, drain); empty refuses them." },
		{ "drain-timeout-ms", "ROUTER_DRAIN_TIMEOUT_MS", CONF_INT, &cfg.drain_timeout_ms,
		  "30000", "On SIGTERM, close the sessions (1012) over this long, then exit.", 0, 0,
		  3600000 },
		{ "log-level", "ROUTER_LOG_LEVEL", CONF_CHOICE, &level, "info", "Log threshold.", 0, 0,
		  0, levels },
		{ "log-json", "ROUTER_LOG_JSON", CONF_BOOL, &log_json, "false",
		  "Write logs as JSON lines." },
		{ 0 },
	};
	char err[512];
	int rc = conf_parse(opts, argc, argv, stdout, summary, err, sizeof err);
	if (rc == 1)
		return 0;
	if (rc < 0) {
		fprintf(stderr, "router: %s\n", err);
		return 2;
	}
	if (!cfg.edges.count && !*cfg.edges_dns) {
		fprintf(stderr, "router: give the edges: --edges (ROUTER_EDGES) or --edges-dns "
				"(ROUTER_EDGES_DNS)\n");
		return 2;
	}
	/* [host:]port */
	char host[256] = "";
	const char *colon = strrchr(listen, ':');
	const char *port = colon ? colon + 1 : listen;
	if (colon)
		snprintf(host, sizeof host, "%.*s", (int)(colon - listen), listen);
	char *end;
	cfg.port = strtol(port, &end, 10);
	if (!*port || *end || cfg.port < 1 || cfg.port > 65535) {
		fprintf(stderr, "router: --listen (ROUTER_LISTEN): '%s' is not [host:]port\n", listen);
		return 2;
	}
	cfg.listen_host = host;
	cfg.text = message_type == 1;
	char rid[300];
	if (!*cfg.router_id) {
		char hn[200] = "router";
		gethostname(hn, sizeof hn - 1);
		snprintf(rid, sizeof rid, "%s:%ld", hn, cfg.port);
		cfg.router_id = rid;
	}
	log_setup("router", (enum log_level)level, log_json);
	rc = router_run(&cfg);
	conf_list_free(&cfg.edges);
	return rc;
}
