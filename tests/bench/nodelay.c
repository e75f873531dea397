/*
 * libnodelay: a what-if diagnostic for tests/bench (run.py --preload). An
 * LD_PRELOAD shim that turns every setsockopt(TCP_NODELAY, ...) into
 * TCP_NODELAY = 1, so a run shows what Nagle's algorithm costs where a
 * library switches it on (nng's TCP streams set TCP_NODELAY 0 by default on
 * the edge-router link). Not used by a normal benchmark run.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
{
	static int (*real)(int, int, int, const void *, socklen_t);
	static const int one = 1;

	if (!real)
		real = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT,
									      "setsockopt");
	if (level == IPPROTO_TCP && name == TCP_NODELAY && len == sizeof one)
		val = &one;
	return real(fd, level, name, val, len);
}
