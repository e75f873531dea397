/* edge: command line and environment; see edge.h. */
#include <stdio.h>
#include <stdlib.h>

#include "conf.h"
#include "edge.h"
#include "util.h"

static const char summary[] =
	"edge: consumes the delivery topic as a member of a Kafka consumer group and\n"
	"delivers each record to the router sessions of its key. Routers connect to\n"
	"--listen. Every flag can also be set by the environment variable shown.";

int main(int argc, char **argv)
{
	util_malloc_keep();
	struct edge_config cfg = { 0 };
	bool log_json = false;
	static const char *const levels[] = { "error", "warn", "info", "debug", NULL };
	int level = LOG_INFO;
	const struct conf_opt opts[] = {
		{ "bootstrap", "EDGE_BOOTSTRAP", CONF_STR, &cfg.bootstrap, NULL,
		  "Kafka bootstrap servers, host:port[,host:port...].", CONF_REQUIRED },
		{ "topic", "EDGE_TOPIC", CONF_STR, &cfg.topic, "deliveries",
		  "Delivery topic: records keyed by client id." },
		{ "group", "EDGE_GROUP", CONF_STR, &cfg.group, "kws-edge",
		  "Consumer group id shared by all edges." },
		{ "listen", "EDGE_LISTEN", CONF_STR, &cfg.listen, "tcp://0.0.0.0:7100",
		  "Address routers connect to, tcp://HOST:PORT.", 0, 0, 0, NULL,
		  conf_check_tcp_url },
		{ "inbound-topic", "EDGE_INBOUND_TOPIC", CONF_STR, &cfg.inbound_topic, "",
		  "Topic for frames clients send, keyed by client id; empty disables upstream." },
		{ "instance-id", "EDGE_INSTANCE_ID", CONF_STR, &cfg.instance_id, "",
		  "Static group member id (group.instance.id), e.g. the pod name; empty: dynamic membership." },
		{ "edge-id", "EDGE_ID", CONF_STR, &cfg.edge_id, "",
		  "Name shown to routers and operators; empty: host:pid." },
		{ "kafka-prop", "EDGE_KAFKA_PROPS", CONF_LIST, &cfg.kafka_props, NULL,
		  "A librdkafka property key=value for the consumer and producer (e.g. security.protocol=SASL_SSL)." },
		{ "batch-bytes", "EDGE_BATCH_BYTES", CONF_SIZE, &cfg.batch_bytes, "256KiB",
		  "Largest DELIVER message to a router before it is sent.", 0, 1024, 8L << 20 },
		{ "tail-bytes", "EDGE_TAIL_BYTES", CONF_SIZE, &cfg.tail_bytes, "64MiB",
		  "Recent records kept in memory (all partitions) to replay positions without reading Kafka again.",
		  0, 0, 1L << 40 },
		{ "replay-timeout-ms", "EDGE_REPLAY_TIMEOUT_MS", CONF_INT, &cfg.replay_timeout_ms,
		  "60000",
		  "Longest replay from Kafka before the session is served live with what was found.",
		  0, 1000, 3600000 },
		{ "metadata-timeout-ms", "EDGE_METADATA_TIMEOUT_MS", CONF_INT,
		  &cfg.metadata_timeout_ms, "5000", "Timeout of one Kafka metadata request.", 0,
		  100, 600000 },
		{ "shutdown-timeout-ms", "EDGE_SHUTDOWN_TIMEOUT_MS", CONF_INT,
		  &cfg.shutdown_timeout_ms, "5000",
		  "Longest stop after SIGTERM or SIGINT: leaving the group (which commits the "
		  "offsets) gets this long, then the edge exits anyway; a second signal exits at once.",
		  0, 100, 600000 },
		{ "admin-listen", "EDGE_ADMIN_LISTEN", CONF_STR, &cfg.admin_listen,
		  "127.0.0.1:9091",
		  "Admin HTTP endpoint (health, metrics, API), host:port; empty disables it." },
		{ "admin-token", "EDGE_ADMIN_TOKEN", CONF_STR, &cfg.admin_token, "",
		  "Bearer token for drain; empty refuses it." },
		{
			"link-secret",
			"EDGE_LINK_SECRET",
			CONF_STR,
			&cfg.link_secret,
			"",
			"Shared secret routers must prove (file:PATH or env:NAME, never the value itself); "
			"empty: links are not authenticated.",
		},
		{ "log-level", "EDGE_LOG_LEVEL", CONF_CHOICE, &level, "info", "Log threshold.", 0,
		  0, 0, levels },
		{ "log-json", "EDGE_LOG_JSON", CONF_BOOL, &log_json, "false",
		  "Write logs as JSON lines." },
		{ 0 },
	};
	int status;
	if (conf_main_exits(opts, argc, argv, "edge", summary, &status))
		return status;
	/* tcp://HOST:PORT, checked by conf_check_tcp_url; and free to bind. */
	char host[256], why[200];
	long port = 0;
	if (conf_parse_host_port(cfg.listen + 6, true, host, sizeof host, &port, why, sizeof why) <
		    0 ||
	    conf_try_bind(host, port, why, sizeof why) < 0) {
		fprintf(stderr, "edge: cannot listen on %s (--listen, EDGE_LISTEN): %s\n",
			cfg.listen, why);
		return 2;
	}
	log_setup("edge", (enum log_level)level, log_json);
	int rc = edge_run(&cfg);
	conf_list_free(&cfg.kafka_props);
	return rc;
}
