/* upstream: see upstream.h. */
#include "upstream.h"

#include <stdlib.h>

#include <librdkafka/rdkafka.h>

#include "kconf.h"
#include "wire.h"
#include "util.h"

struct upstream {
	rd_kafka_t *producer;
	rd_kafka_topic_t *inbound;
	upstream_fail_fn fail;
	void *arg;
};

/* What a produce call carries to its delivery report. */
struct up_ctx {
	uint32_t link;
	uint64_t sid;
};

/* The UP_ERR code for a produce error: a missing topic is told apart, since
 * retrying cannot help a client there. */
static uint32_t up_code(rd_kafka_resp_err_t err)
{
	return err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
			       err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART
		       ? WIRE_UP_NO_TOPIC
		       : WIRE_UP_FAILED;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	struct upstream *u = opaque;
	struct up_ctx *c = m->_private;
	if (m->err && c) {
		u->fail(u->arg, c->link, c->sid, up_code(m->err), rd_kafka_err2str(m->err));
		log_warn("upstream produce failed: %s", rd_kafka_err2str(m->err));
	}
	free(c);
}

struct upstream *upstream_new(const struct edge_config *cfg, const char *client_id,
			      upstream_fail_fn fail, void *arg)
{
	char err[512];
	struct upstream *u = xcalloc(1, sizeof *u);
	u->fail = fail;
	u->arg = arg;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof err) ||
	    kconf_apply(cfg, client_id, conf, err, sizeof err) < 0) {
		log_error("kafka configuration: %s", err);
		rd_kafka_conf_destroy(conf);
		free(u);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_opaque(conf, u);
	u->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (!u->producer) {
		log_error("kafka producer: %s", err);
		free(u);
		return NULL;
	}
	u->inbound = rd_kafka_topic_new(u->producer, cfg->inbound_topic, NULL);
	return u;
}

void upstream_free(struct upstream *u, int timeout_ms)
{
	if (!u)
		return;
	rd_kafka_flush(u->producer, timeout_ms);
	rd_kafka_topic_destroy(u->inbound);
	rd_kafka_destroy(u->producer);
	free(u);
}

int upstream_produce(struct upstream *u, uint32_t link, uint64_t sid, const void *key,
		     size_t key_len, const void *value, size_t value_len, uint32_t *code,
		     const char **reason)
{
	struct up_ctx *c = xmalloc(sizeof *c);
	c->link = link;
	c->sid = sid;
	if (rd_kafka_produce(u->inbound, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, (void *)value,
			     value_len, key, key_len, c) < 0) {
		free(c);
		rd_kafka_resp_err_t err = rd_kafka_last_error();
		*code = up_code(err);
		*reason = rd_kafka_err2str(err);
		return -1;
	}
	return 0;
}

void upstream_poll(struct upstream *u)
{
	rd_kafka_poll(u->producer, 0);
}
