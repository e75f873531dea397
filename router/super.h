/*
 * super: a router on every core (--workers N). A supervisor process starts N
 * worker processes (this binary again, exec'ed), each a whole router
 * (router_run) with its own loop, its own front door on the shared client
 * port (SO_REUSEPORT: the kernel spreads connections) and its own links to
 * every edge, so a partition move stays a re-pin inside each worker.
 * Processes, not threads: a process may hold only so many files, and lws
 * 4.1.6 runs one service thread per context. The supervisor serves the
 * public admin endpoint, answering for the whole router from the workers'
 * private ones (127.0.0.1, a port each reports over a pipe); restarts a
 * worker that dies, with back-off; forwards SIGTERM/SIGINT (drain, then a
 * second one: stop now) and exits when every worker is gone.
 */
#ifndef KWS_ROUTER_SUPER_H
#define KWS_ROUTER_SUPER_H

#include "config.h"

#define SUPER_MAX_WORKERS 64
/* The environment variable that makes a process a worker: "<index>/<n>/<fd>"
 * (set by the supervisor only). */
#define SUPER_WORKER_ENV "KWS_ROUTER_WORKER"

/* Runs n workers (2..SUPER_MAX_WORKERS) with the command line argv (the
 * supervisor's own: the workers parse the same settings) until they are
 * stopped. cfg is the supervisor's parsed settings (admin endpoint, token,
 * drain timeout, router id). Returns the exit code: 0 after a stop by
 * signal in which every worker exited 0, else 1. */
int super_run(const struct router_config *cfg, int n, char **argv);

/* The default worker count for a router of max_connections sessions (its
 * --max-connections): workcount_pick (workcount.h) with what this process may use:
 * its CPUs (sched_getaffinity), the cgroup CPU limit (/sys/fs/cgroup/cpu.max,
 * the pod's CPU limit) and its open-file hard limit (RLIMIT_NOFILE). */
int super_default_workers(long max_connections);

/* Parses SUPER_WORKER_ENV's value: 0 with *index, *n and *fd set, or
 * -EINVAL. */
int super_worker_parse(const char *s, int *index, int *n, int *fd);

#endif
