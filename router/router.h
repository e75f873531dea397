/*
 * router: terminates client WebSockets on /ws, places each client by the
 * partition of its id, pins its session to the edge that owns that partition
 * and proxies frames both ways. One loop thread: libuv (epoll), with lws on
 * it as a foreign loop; nng's, the door's, the resolver's and the admin
 * endpoint's threads only wake it (a uv_async), so every state change
 * happens on that thread.
 */
#ifndef KWS_ROUTER_H
#define KWS_ROUTER_H

#include <stdbool.h>

#include "config.h"

/* Runs the router until SIGINT/SIGTERM. Returns the process exit code. */
int router_run(const struct router_config *cfg);

#endif
