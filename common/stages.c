/* stages: see stages.h. */
#include "stages.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define STAGES_DEFAULT_EVERY 16
#define STAGES_BUF_BYTES (1 << 20)

int64_t stages_every;
static FILE *stages_file;

int stages_setup(const char *program)
{
	const char *prefix = getenv("KWS_STAGES");
	if (!prefix || !*prefix)
		return 0;
	int64_t every = STAGES_DEFAULT_EVERY;
	const char *e = getenv("KWS_STAGES_EVERY");
	if (e && *e) {
		char *end;
		errno = 0;
		long long v = strtoll(e, &end, 10);
		if (errno || *end || v < 1) {
			log_error("KWS_STAGES_EVERY=%s: not a positive number", e);
			return -1;
		}
		every = v;
	}
	char path[4096];
	snprintf(path, sizeof path, "%s.%s.%d", prefix, program, (int)getpid());
	stages_file = fopen(path, "w");
	if (!stages_file) {
		log_error("KWS_STAGES: %s: %s", path, strerror(errno));
		return -1;
	}
	setvbuf(stages_file, NULL, _IOFBF, STAGES_BUF_BYTES);
	stages_every = every;
	log_info("stage timestamps of every %lld-th offset to %s (KWS_STAGES)", (long long)every,
		 path);
	return 0;
}

int64_t stages_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void stages_mark(char stage, uint32_t partition, int64_t offset, int64_t when_us, int64_t extra)
{
	if (!stages_file)
		return;
	fprintf(stages_file, "%c %" PRIu32 " %" PRId64 " %" PRId64 " %" PRId64 "\n", stage,
		partition, offset, when_us, extra);
}

void stages_close(void)
{
	if (!stages_file)
		return;
	fclose(stages_file);
	stages_file = NULL;
	stages_every = 0;
}
