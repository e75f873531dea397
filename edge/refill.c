/* refill: see refill.h. */
#include "refill.h"

#include <stdlib.h>

static int64_t conf_int(rd_kafka_conf_t *conf, const char *name, int64_t fallback)
{
	char buf[32];
	size_t len = sizeof buf;
	if (rd_kafka_conf_get(conf, name, buf, &len) != RD_KAFKA_CONF_OK)
		return fallback;
	return strtoll(buf, NULL, 10);
}

void refill_init(struct refill *f, rd_kafka_conf_t *conf)
{
	*f = (struct refill){
		.min_msgs = conf_int(conf, "queued.min.messages", 100000),
		.max_bytes = conf_int(conf, "queued.max.messages.kbytes", 65536) * 1024,
		.avg_bytes = 100,
	};
}

void refill_note(struct refill *f, rd_kafka_queue_t *q)
{
	int64_t len = (int64_t)rd_kafka_queue_length(q);
	if (len <= 0)
		return;
	if ((f->min_msgs > 0 && len >= f->min_msgs) ||
	    (f->max_bytes > 0 && (double)len * f->avg_bytes >= 0.9 * (double)f->max_bytes))
		f->was_full = true;
}

void refill_record(struct refill *f, size_t len)
{
	f->avg_bytes += ((double)len - f->avg_bytes) / 64;
}

bool refill_due(struct refill *f, rd_kafka_queue_t *q)
{
	if (!f->was_full || rd_kafka_queue_length(q) > 0)
		return false;
	f->was_full = false;
	f->refills++;
	return true;
}
