/* watch: see watch.h. */
#include "watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "kconf.h"
#include "util.h"

/* How often the partition count is asked again. */
#define WATCH_METADATA_EVERY_MS 10000

struct watch_part {
	bool wanted; /* a query is requested */
	bool answered;
	int64_t lo, hi;
	int64_t asked_ms; /* when the answered query was sent */
};

struct watch {
	const struct edge_config *cfg;
	rd_kafka_t *rk;
	chan_wake_fn wake;
	void *arg;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;   /* the thread waits here for work */
	pthread_cond_t answer; /* watch_wait waits here */
	bool stop;
	bool busy;      /* the thread is in a Kafka call */
	uint32_t count; /* partition count, 0 unknown */
	int64_t ok_ms;
	int64_t next_metadata_ms;
	struct watch_part *parts;
	uint32_t nparts;
	uint32_t nwanted;
};

static void deadline_in(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

/* Locked. */
static struct watch_part *part(struct watch *w, uint32_t p)
{
	if (p >= w->nparts) {
		w->parts = xrealloc(w->parts, (p + 1) * sizeof *w->parts);
		memset(w->parts + w->nparts, 0, (p + 1 - w->nparts) * sizeof *w->parts);
		w->nparts = p + 1;
	}
	return &w->parts[p];
}

static void ask_metadata(struct watch *w)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_t *t = rd_kafka_topic_new(w->rk, w->cfg->topic, NULL);
	rd_kafka_resp_err_t err =
		rd_kafka_metadata(w->rk, 0, t, &md, (int)w->cfg->metadata_timeout_ms);
	rd_kafka_topic_destroy(t);
	if (err) {
		log_warn("metadata for topic %s: %s", w->cfg->topic, rd_kafka_err2str(err));
		return;
	}
	int64_t now = now_mono_ms();
	uint32_t n = 0;
	if (md->topic_cnt == 1 && !md->topics[0].err && md->topics[0].partition_cnt > 0)
		n = (uint32_t)md->topics[0].partition_cnt;
	else
		log_warn("topic %s: %s", w->cfg->topic,
			 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "not found");
	rd_kafka_metadata_destroy(md);
	pthread_mutex_lock(&w->mu);
	w->ok_ms = now;
	if (n > w->count)
		w->count = n;
	pthread_mutex_unlock(&w->mu);
}

static void ask_watermarks(struct watch *w, uint32_t p)
{
	int64_t asked = now_mono_ms(), lo = -1, hi = -1;
	rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
		w->rk, w->cfg->topic, (int32_t)p, &lo, &hi, (int)w->cfg->metadata_timeout_ms);
	if (err)
		log_warn("watermarks of partition %u: %s", p, rd_kafka_err2str(err));
	pthread_mutex_lock(&w->mu);
	struct watch_part *wp = part(w, p);
	wp->answered = true;
	wp->lo = err ? -1 : lo;
	wp->hi = err ? -1 : hi;
	wp->asked_ms = asked;
	if (!err)
		w->ok_ms = now_mono_ms();
	pthread_cond_broadcast(&w->answer);
	pthread_mutex_unlock(&w->mu);
}

static void *run(void *arg)
{
	struct watch *w = arg;
	pthread_mutex_lock(&w->mu);
	while (!w->stop) {
		int64_t now = now_mono_ms();
		if (now >= w->next_metadata_ms) {
			w->busy = true;
			pthread_mutex_unlock(&w->mu);
			ask_metadata(w);
			w->wake(w->arg);
			pthread_mutex_lock(&w->mu);
			w->busy = false;
			/* Until a count is known, ask again soon. */
			w->next_metadata_ms =
				now_mono_ms() + (w->count ? WATCH_METADATA_EVERY_MS : 500);
			continue;
		}
		if (w->nwanted) {
			uint32_t p = 0;
			while (!w->parts[p].wanted)
				p++;
			w->parts[p].wanted = false;
			w->nwanted--;
			w->busy = true;
			pthread_mutex_unlock(&w->mu);
			ask_watermarks(w, p);
			w->wake(w->arg);
			pthread_mutex_lock(&w->mu);
			w->busy = false;
			continue;
		}
		struct timespec ts;
		deadline_in(&ts, w->next_metadata_ms - now);
		pthread_cond_timedwait(&w->cond, &w->mu, &ts);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

struct watch *watch_new(const struct edge_config *cfg, const char *client_id, chan_wake_fn wake,
			void *arg)
{
	char err[512];
	struct watch *w = xcalloc(1, sizeof *w);
	w->cfg = cfg;
	w->wake = wake;
	w->arg = arg;
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err) ||
	    kconf_apply(cfg, client_id, conf, err, sizeof err) < 0) {
		log_error("kafka configuration: %s", err);
		rd_kafka_conf_destroy(conf);
		free(w);
		return NULL;
	}
	w->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
	if (!w->rk) {
		log_error("kafka client: %s", err);
		free(w);
		return NULL;
	}
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_cond_init(&w->answer, &ca);
	pthread_condattr_destroy(&ca);
	int rc = pthread_create(&w->thread, NULL, run, w);
	if (rc) {
		log_error("watch thread: %s", strerror(rc));
		abort();
	}
	return w;
}

/* A watch whose thread was left in a Kafka call: still referenced, so that
 * leak checkers do not report what the exiting process abandons on purpose. */
static struct watch *abandoned;

void watch_free(struct watch *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	bool busy = w->busy;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
	if (busy) {
		/* In a call that may never return: leave it and its client. */
		pthread_detach(w->thread);
		log_warn("a Kafka query did not return; not waiting for it");
		abandoned = w;
		return;
	}
	pthread_join(w->thread, NULL);
	rd_kafka_destroy(w->rk);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	pthread_cond_destroy(&w->answer);
	free(w->parts);
	free(w);
}

bool watch_partitions(struct watch *w, uint32_t *count, int64_t *ok_ms)
{
	pthread_mutex_lock(&w->mu);
	*count = w->count;
	*ok_ms = w->ok_ms;
	pthread_mutex_unlock(&w->mu);
	return *count > 0;
}

void watch_request(struct watch *w, uint32_t p)
{
	pthread_mutex_lock(&w->mu);
	struct watch_part *wp = part(w, p);
	if (!wp->wanted) {
		wp->wanted = true;
		w->nwanted++;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->mu);
}

bool watch_watermarks(struct watch *w, uint32_t p, int64_t *lo, int64_t *hi, int64_t *asked_ms)
{
	pthread_mutex_lock(&w->mu);
	bool ok = p < w->nparts && w->parts[p].answered;
	if (ok) {
		*lo = w->parts[p].lo;
		*hi = w->parts[p].hi;
		*asked_ms = w->parts[p].asked_ms;
	}
	pthread_mutex_unlock(&w->mu);
	return ok;
}

bool watch_wait(struct watch *w, uint32_t p, int64_t since_ms, int timeout_ms, int64_t *lo,
		int64_t *hi)
{
	struct timespec ts;
	deadline_in(&ts, timeout_ms);
	bool ok = false;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct watch_part *wp = part(w, p);
		if (wp->answered && wp->asked_ms >= since_ms) {
			*lo = wp->lo;
			*hi = wp->hi;
			ok = true;
			break;
		}
		if (pthread_cond_timedwait(&w->answer, &w->mu, &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&w->mu);
	return ok;
}
