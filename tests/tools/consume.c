/*
 * consume: reads a topic from the beginning and prints one line per record,
 *   <partition> <offset> <key> <value>
 * (key and value as text; "-" for a null key), until --count records were
 * read or --timeout-ms passed without the count being reached (exit 1).
 * A test tool: it lets the integration tests check what the edges produced.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

#include "conf.h"
#include "util.h"

static const char summary[] =
	"consume: prints every record of a topic from its beginning, one line each:\n"
	"<partition> <offset> <key> <value>. Exits 0 once --count records were read,\n"
	"1 if --timeout-ms passes first, 2 on bad arguments.";

int main(int argc, char **argv)
{
	const char *bootstrap = NULL, *topic = NULL;
	long count = 0, timeout_ms = 0;
	const struct conf_opt opts[] = {
		{ "bootstrap", NULL, CONF_STR, &bootstrap, NULL, "Kafka bootstrap servers.",
		  CONF_REQUIRED },
		{ "topic", NULL, CONF_STR, &topic, NULL, "Topic to read.", CONF_REQUIRED },
		{ "count", NULL, CONF_INT, &count, "1", "Records to read.", 0, 1, 100000000 },
		{ "timeout-ms", NULL, CONF_INT, &timeout_ms, "30000", "Give up after this long.", 0,
		  1, 3600000 },
		{ 0 },
	};
	int status;
	if (conf_main_exits(opts, argc, argv, "consume", summary, &status))
		return status;

	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	char group[64];
	snprintf(group, sizeof group, "kws-consume-%llx", (unsigned long long)random_u64());
	if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) ||
	    rd_kafka_conf_set(conf, "group.id", group, err, sizeof err) ||
	    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err)) {
		fprintf(stderr, "consume: %s\n", err);
		rd_kafka_conf_destroy(conf);
		return 2;
	}
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!rk) {
		fprintf(stderr, "consume: %s\n", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(rk);
	rd_kafka_topic_partition_list_t *t = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(t, topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(rk, t);
	rd_kafka_topic_partition_list_destroy(t);

	long got = 0;
	int64_t deadline = now_mono_ms() + timeout_ms;
	while (got < count && now_mono_ms() < deadline) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
		if (!m)
			continue;
		if (m->err) {
			if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
				fprintf(stderr, "consume: %s\n", rd_kafka_message_errstr(m));
		} else {
			printf("%d %lld %.*s %.*s\n", m->partition, (long long)m->offset,
			       m->key ? (int)m->key_len : 1, m->key ? (const char *)m->key : "-",
			       (int)m->len, m->payload ? (const char *)m->payload : "");
			got++;
		}
		rd_kafka_message_destroy(m);
	}
	fflush(stdout);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	if (got < count) {
		fprintf(stderr, "consume: read %ld of %ld records before the timeout\n", got,
			count);
		return 1;
	}
	return 0;
}
