/*
 * workcount: how many worker processes a router runs by default (super.h).
 * Pure: the caller reads the machine (CPUs, cgroup, file limit).
 */
#ifndef KWS_ROUTER_WORKCOUNT_H
#define KWS_ROUTER_WORKCOUNT_H

/* Files per worker not available to client sockets: edge links, logs, the
 * admin endpoint, the loop's own. */
#define WORKCOUNT_FILES_RESERVE 500

/* One worker per CPU (cpus; cpu_limit, if > 0, caps it), and more if
 * max_connections sessions would not fit in that many processes of nofile
 * open files each (nofile <= WORKCOUNT_FILES_RESERVE: not considered).
 * Returns 1..max_workers. */
int workcount_pick(int cpus, int cpu_limit, long max_connections, long nofile, int max_workers);

/* The open files one worker needs: max_connections sessions, the door_waiting
 * handshakes its door may hold before lws takes them, and
 * WORKCOUNT_FILES_RESERVE. A worker lowers its soft RLIMIT_NOFILE to this
 * (router.c): Debian's lws 4.1.6 is built with _DEBUG and scans a table of
 * as many entries as that limit at every close, and containers often get
 * 1,048,576 (8 MiB scanned per closed session). */
long workcount_files_needed(long max_connections, long door_waiting);

/* Parses a cgroup v2 cpu.max ("<quota> <period>" or "max <period>"): the
 * CPUs it allows, rounded up, or 0 for no limit or a text it cannot read. */
int workcount_cpu_max_parse(const char *s);

#endif
