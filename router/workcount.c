/* workcount: see workcount.h. */
#include "workcount.h"

#include <stdio.h>

int workcount_pick(int cpus, int cpu_limit, long max_connections, long nofile, int max_workers)
{
	long n = cpus > 0 ? cpus : 1;
	if (cpu_limit > 0 && cpu_limit < n)
		n = cpu_limit;
	if (nofile > WORKCOUNT_FILES_RESERVE && max_connections > 0) {
		long per = nofile - WORKCOUNT_FILES_RESERVE;
		long need = (max_connections + per - 1) / per;
		if (need > n)
			n = need;
	}
	if (n > max_workers)
		n = max_workers;
	return (int)(n < 1 ? 1 : n);
}

long workcount_files_needed(long max_connections, long door_waiting)
{
	return (max_connections > 0 ? max_connections : 0) + (door_waiting > 0 ? door_waiting : 0) +
	       WORKCOUNT_FILES_RESERVE;
}

int workcount_cpu_max_parse(const char *s)
{
	long long quota, period;
	if (!s || sscanf(s, "%lld %lld", &quota, &period) != 2 || quota <= 0 || period <= 0)
		return 0;
	return (int)((quota + period - 1) / period);
}
