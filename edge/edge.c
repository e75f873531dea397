/* edge: see edge.h. The loop, and the wiring of its modules: a record goes
 * Kafka → consumer (or replay) → routers; a router's SUB goes to replay, its
 * UP to upstream. The protocol is in common/PROTOCOL.md. */
#include "edge.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/time.h>
#include <unistd.h>

#include "consumer.h"
#include "linkauth.h"
#include "ops.h"
#include "replay.h"
#include "routers.h"
#include "stages.h"
#include "subs.h"
#include "upstream.h"
#include "util.h"
#include "watch.h"

struct edge {
	const struct edge_config *cfg;
	char edge_id[256];
	int wake_fd;                   /* eventfd: other threads signal news here */
	struct linkauth_secret secret; /* --link-secret; empty: links unauthenticated */
	struct subs subs;
	struct routers *routers;
	struct consumer *consumer;
	struct replay *replay;
	struct upstream *upstream; /* NULL when upstream is disabled */
	struct watch *watch;
	struct ops *ops;
};

static volatile sig_atomic_t stop_requested;

/* Leaves at once, from a signal handler: async-signal-safe calls only. */
static void exit_now(const char *why)
{
	ssize_t n = write(STDERR_FILENO, why, strlen(why));
	(void)n; /* nothing to do about a failed write here */
	_exit(0);
}

/* The first SIGTERM/SIGINT asks for a stop; a second one exits at once. */
static void on_signal(int sig)
{
	if (stop_requested)
		exit_now("edge: a second signal: exiting at once (the group will notice by "
			 "its session timeout)\n");
	stop_requested = 1;
}

/* --shutdown-timeout-ms passed: whatever Kafka does, the edge is gone. */
static void on_deadline(int sig)
{
	exit_now("edge: --shutdown-timeout-ms passed before Kafka let the edge leave: exiting "
		 "(the group will notice by its session timeout)\n");
}

/* From now on the process ends within ms milliseconds. */
static void arm_deadline(long ms)
{
	struct sigaction sa = { .sa_handler = on_deadline };
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { .it_value = { .tv_sec = ms / 1000,
					      .tv_usec = (ms % 1000) * 1000 } };
	setitimer(ITIMER_REAL, &it, NULL);
}

/* Milliseconds left before the deadline armed above. */
static long deadline_left_ms(void)
{
	struct itimerval it;
	getitimer(ITIMER_REAL, &it);
	return it.it_value.tv_sec * 1000 + it.it_value.tv_usec / 1000;
}

/* Called on other threads: only wakes the loop. */
static void wake_loop(void *arg)
{
	struct edge *e = arg;
	uint64_t one = 1;
	if (write(e->wake_fd, &one, sizeof one) < 0)
		return; /* the counter is full: a wake-up is pending anyway */
}

static void on_sub(void *arg, uint32_t link, const struct wire_sub *s)
{
	struct edge *e = arg;
	replay_sub(e->replay, link, s);
}

static void on_up(void *arg, uint32_t link, const struct wire_up *u)
{
	struct edge *e = arg;
	const char *reason;
	uint32_t code;
	if (!e->upstream)
		routers_up_error(e->routers, link, u->sid, WIRE_UP_DISABLED,
				 "no inbound topic is configured");
	else if (upstream_produce(e->upstream, link, u->sid, u->key.ptr, u->key.len, u->data.ptr,
				  u->data.len, &code, &reason) < 0)
		routers_up_error(e->routers, link, u->sid, code, reason);
}

static void on_up_failed(void *arg, uint32_t link, uint64_t sid, uint32_t code, const char *reason)
{
	struct edge *e = arg;
	routers_up_error(e->routers, link, sid, code, reason);
}

static void on_revoke(void *arg, uint32_t p)
{
	struct edge *e = arg;
	replay_drop(e->replay, p);
}

/* Creates the modules; 0 or -1 (logged). */
static int edge_open(struct edge *e)
{
	const struct edge_config *cfg = e->cfg;
	char err[300];
	if (linkauth_load_secret(cfg->link_secret, &e->secret, err, sizeof err) < 0) {
		log_error("--link-secret (EDGE_LINK_SECRET): %s", err);
		return -1;
	}
	if (!linkauth_enabled(&e->secret))
		log_warn("no --link-secret: any process that reaches %s can subscribe here",
			 cfg->listen);
	struct routers_config rc = {
		.listen = cfg->listen,
		.edge_id = e->edge_id,
		.upstream = *cfg->inbound_topic != '\0',
		.batch_bytes = (size_t)cfg->batch_bytes,
		.secret = &e->secret,
		.wake = wake_loop,
		.wake_arg = e,
	};
	struct routers_handler h = { .on_sub = on_sub, .on_up = on_up, .arg = e };
	e->routers = routers_new(&rc, &e->subs, &h, err, sizeof err);
	if (!e->routers) {
		log_error("%s", err);
		return -1;
	}
	e->watch = watch_new(cfg, e->edge_id, wake_loop, e);
	if (!e->watch)
		return -1;
	e->consumer = consumer_new(cfg, e->edge_id, &e->subs, e->routers, e->watch, on_revoke, e);
	if (!e->consumer)
		return -1;
	e->replay = replay_new(cfg, e->edge_id, e->consumer, e->routers, &e->subs, e->watch);
	if (!e->replay)
		return -1;
	if (*cfg->inbound_topic) {
		e->upstream = upstream_new(cfg, e->edge_id, on_up_failed, e);
		if (!e->upstream)
			return -1;
	}
	return 0;
}

/* Waits up to 100 ms for news, then serves everything once: the routers'
 * messages, replays, the consumer queue, the producer's reports and the admin
 * endpoint. Never blocks on Kafka. Returns 0, or -1 when poll failed. */
static int loop_turn(struct edge *e)
{
	struct pollfd fds[3] = {
		{ .fd = consumer_fd(e->consumer), .events = POLLIN },
		{ .fd = e->wake_fd, .events = POLLIN },
		{ .fd = replay_fd(e->replay), .events = POLLIN },
	};
	int n = poll(fds, 3, 100);
	if (n < 0 && errno != EINTR) {
		log_error("poll: %s", strerror(errno));
		return -1;
	}
	if (fds[1].revents & POLLIN) {
		uint64_t v;
		if (read(e->wake_fd, &v, sizeof v) < 0 && errno != EAGAIN)
			log_debug("eventfd read: %s", strerror(errno));
		routers_poll(e->routers);
	}
	routers_tick(e->routers);
	/* Replays before new records: what a session is owed comes first, and
	 * the tail does not move under a pending replay. */
	replay_poll(e->replay);
	/* Always serve the consumer queue: rebalances and records. */
	consumer_poll(e->consumer);
	if (e->upstream)
		upstream_poll(e->upstream);
	ops_tick(e->ops);
	return 0;
}

int edge_run(const struct edge_config *cfg)
{
	struct edge *e = xcalloc(1, sizeof *e);
	int rc = 1;
	e->cfg = cfg;
	subs_init(&e->subs);
	if (*cfg->edge_id) {
		snprintf(e->edge_id, sizeof e->edge_id, "%s", cfg->edge_id);
	} else {
		char host[128] = "edge";
		gethostname(host, sizeof host - 1);
		snprintf(e->edge_id, sizeof e->edge_id, "%s:%d", host, (int)getpid());
	}
	e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (stages_setup("edge") < 0 || edge_open(e) < 0)
		goto out;

	/* The partition count first: routers need it to place clients. */
	while (!stop_requested && !consumer_sync_metadata(e->consumer)) {
		struct pollfd pfd = { .fd = e->wake_fd, .events = POLLIN };
		uint64_t v;
		if (poll(&pfd, 1, 100) > 0 && read(e->wake_fd, &v, sizeof v) < 0)
			log_debug("eventfd read: %s", strerror(errno));
	}
	if (stop_requested)
		goto out_ok;
	if (consumer_subscribe(e->consumer) < 0)
		goto out;
	log_info("edge %s: listening on %s, group %s, topic %s, upstream %s", e->edge_id,
		 cfg->listen, cfg->group, cfg->topic,
		 *cfg->inbound_topic ? cfg->inbound_topic : "disabled");
	struct ops_source os = { .cfg = cfg,
				 .edge_id = e->edge_id,
				 .consumer = e->consumer,
				 .routers = e->routers,
				 .replay = e->replay,
				 .subs = &e->subs,
				 .wake = wake_loop,
				 .wake_arg = e };
	e->ops = ops_start(&os);
	if (!e->ops)
		goto out;

	while (!stop_requested)
		if (loop_turn(e) < 0)
			goto out;
out_ok:
	rc = 0;
out:
	/* Bounded from here on, whatever Kafka does (DESIGN: librdkafka 2.0.2
	 * can block in consumer_close for the session timeout or forever). */
	arm_deadline(cfg->shutdown_timeout_ms);
	if (e->consumer) {
		log_info("edge %s: stopping: leaving the group (at most %ld ms)", e->edge_id,
			 cfg->shutdown_timeout_ms);
		/* The loop goes on meanwhile: the revoke tells the routers, and
		 * the probes answer ("stopping"). */
		consumer_close(e->consumer);
		while (!consumer_closed(e->consumer) && e->ops && loop_turn(e) == 0)
			;
		routers_flush(e->routers);
		struct consumer_stats cs;
		struct routers_stats rs;
		consumer_get_stats(e->consumer, &cs);
		routers_get_stats(e->routers, &rs);
		log_info("edge %s: left the group (records %llu, delivered %llu, send drops %llu)",
			 e->edge_id, (unsigned long long)cs.records,
			 (unsigned long long)rs.delivered, (unsigned long long)rs.dropped_send);
	}
	ops_stop(e->ops);
	long left = deadline_left_ms();
	upstream_free(e->upstream, (int)(left > 5000 ? 5000 : left / 2));
	replay_free(e->replay);
	consumer_free(e->consumer);
	watch_free(e->watch);
	routers_free(e->routers);
	subs_free(&e->subs);
	stages_close();
	linkauth_secret_free(&e->secret);
	if (e->wake_fd >= 0)
		close(e->wake_fd);
	free(e);
	return rc;
}
