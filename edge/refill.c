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
		.idle_wait_ms = REFILL_IDLE_MS,
	};
}

void refill_seen(struct refill *f, int64_t queue_len, int64_t batch)
{
	/* Counted as if a batch longer: between two looks the owner takes one
	 * batch, so a queue that was at the bound in between is seen within a
	 * batch of it. An empty queue counts nothing (with a bound under a
	 * batch, an idle owner would otherwise seek at every turn). */
	if (queue_len > 0 && queue_len + batch > f->seen)
		f->seen = queue_len + batch;
}

void refill_record(struct refill *f, size_t len, int64_t now_ms)
{
	f->taken++;
	f->taken_bytes += (int64_t)len;
	f->idle_from_ms = now_ms;
	f->idle_wait_ms = REFILL_IDLE_MS;
}

bool refill_due(struct refill *f, int64_t queue_len)
{
	if (queue_len > 0)
		return false;
	/* The byte bound counts librdkafka's own sizes, a little more than
	 * key and value: 90% of it is taken as reached. */
	int64_t count = f->taken > f->seen ? f->taken : f->seen;
	bool stopped = (f->min_msgs > 0 && count >= f->min_msgs) ||
		       (f->max_bytes > 0 && (double)f->taken_bytes >= 0.9 * (double)f->max_bytes);
	f->taken = 0;
	f->taken_bytes = 0;
	f->seen = 0;
	if (stopped)
		f->full++;
	return stopped;
}

bool refill_idle_due(struct refill *f, int64_t queue_len, int64_t now_ms,
		     bool (*lagging)(void *arg), void *arg)
{
	if (queue_len > 0 || f->idle_wait_ms > REFILL_IDLE_MAX_MS ||
	    now_ms - f->idle_from_ms < f->idle_wait_ms || !lagging(arg))
		return false;
	f->idle_from_ms = now_ms;
	f->idle_wait_ms *= 2;
	f->idle++;
	return true;
}

int64_t refill_seek_offset(rd_kafka_t *rk, const char *topic, int32_t p, int64_t next)
{
	int64_t lo = -1, hi = -1;
	/* The cached watermarks of the last fetch response: no request. */
	if (rd_kafka_get_watermark_offsets(rk, topic, p, &lo, &hi) == RD_KAFKA_RESP_ERR_NO_ERROR &&
	    lo > next)
		return lo;
	return next;
}
