/*
 * util: allocation that aborts on out-of-memory, leveled logging, clocks.
 * Out-of-memory is not an error a peer can cause, so it is not returned
 * (STYLE 9); everything a peer can cause goes through error returns instead.
 */
#ifndef KWS_UTIL_H
#define KWS_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* Makes glibc's malloc keep up to UTIL_MALLOC_KEEP_BYTES of freed memory per
 * arena (M_TRIM_THRESHOLD) and serve blocks up to that size from its heaps
 * (M_MMAP_THRESHOLD; 32 MiB is glibc's largest), instead of handing freed
 * memory back to the kernel and faulting zeroed pages in for the next link
 * message or Kafka fetch response (a page fault per 4 KiB: a tenth of the
 * router's CPU when it drained 4 KiB records, a fifth of the edge's).
 * Called first thing by router and edge. */
#define UTIL_MALLOC_KEEP_BYTES (32u * 1024 * 1024)
void util_malloc_keep(void);

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Sets the process-wide log threshold and format. name is the program name
 * written in every line. json: one JSON object per line instead of text. */
void log_setup(const char *name, enum log_level level, int json);
/* Parses "error", "warn", "info" or "debug"; returns -1 for anything else. */
int log_level_parse(const char *s);
int log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                   \
	do {                                             \
		if (log_enabled(LOG_DEBUG))              \
			log_msg(LOG_DEBUG, __VA_ARGS__); \
	} while (0)

/* Milliseconds of CLOCK_MONOTONIC and of the wall clock (Unix epoch). */
int64_t now_mono_ms(void);
int64_t now_wall_ms(void);
/* Microseconds of CLOCK_MONOTONIC. */
int64_t now_mono_us(void);

/* A random 64-bit value from getrandom(); aborts if the kernel has none. */
uint64_t random_u64(void);

#endif
