/*
 * kconf: the librdkafka settings every client of the edge shares (bootstrap
 * servers and the user's --kafka-prop key=value properties).
 */
#ifndef KWS_EDGE_KCONF_H
#define KWS_EDGE_KCONF_H

#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "config.h"

/* Applies cfg's bootstrap servers and properties, then client.id = client_id,
 * to conf. Returns 0, or -1 with err set (conf is still the caller's). */
int kconf_apply(const struct edge_config *cfg, const char *client_id, rd_kafka_conf_t *conf,
		char *err, size_t errlen);

#endif
