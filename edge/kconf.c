/* kconf: see kconf.h. */
#include "kconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

int kconf_apply(const struct edge_config *cfg, const char *client_id, rd_kafka_conf_t *conf,
		char *err, size_t errlen)
{
	if (rd_kafka_conf_set(conf, "client.id", client_id, err, errlen) ||
	    rd_kafka_conf_set(conf, "bootstrap.servers", cfg->bootstrap, err, errlen))
		return -1;
	for (size_t i = 0; i < cfg->kafka_props.count; i++) {
		const char *kv = cfg->kafka_props.items[i];
		const char *eq = strchr(kv, '=');
		if (!eq) {
			snprintf(err, errlen, "--kafka-prop '%s' is not key=value", kv);
			return -1;
		}
		char *key = xstrndup(kv, (size_t)(eq - kv));
		rd_kafka_conf_res_t r = rd_kafka_conf_set(conf, key, eq + 1, err, errlen);
		free(key);
		if (r != RD_KAFKA_CONF_OK)
			return -1;
	}
	return 0;
}
