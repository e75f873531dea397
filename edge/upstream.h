/*
 * upstream: the producer of the frames clients send, to the inbound topic,
 * keyed by client id. A produce that fails later (its delivery report) is
 * told through the fail callback, so the session's router can close it.
 */
#ifndef KWS_EDGE_UPSTREAM_H
#define KWS_EDGE_UPSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct upstream;

/* Called on the loop thread from upstream_poll: the frame of session sid of
 * router link `link` was not produced, for `reason`; code is WIRE_UP_NO_TOPIC
 * when the inbound topic does not exist, else WIRE_UP_FAILED. */
typedef void (*upstream_fail_fn)(void *arg, uint32_t link, uint64_t sid, uint32_t code,
				 const char *reason);

/* Creates the producer for cfg->inbound_topic (must not be empty). Returns
 * NULL (logged) on a bad configuration. */
struct upstream *upstream_new(const struct edge_config *cfg, const char *client_id,
			      upstream_fail_fn fail, void *arg);
/* Waits up to timeout_ms for queued frames to be produced, then frees
 * everything. Accepts NULL. */
void upstream_free(struct upstream *u, int timeout_ms);

/* Queues key/value (copied) for the inbound topic. Returns 0, or -1 with
 * *reason set (a static string) and *code (as for upstream_fail_fn) when the
 * producer refused it now. */
int upstream_produce(struct upstream *u, uint32_t link, uint64_t sid, const void *key,
		     size_t key_len, const void *value, size_t value_len, uint32_t *code,
		     const char **reason);
/* Serves delivery reports (calls fail); never blocks. */
void upstream_poll(struct upstream *u);

#endif
