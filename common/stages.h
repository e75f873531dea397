/*
 * stages: per-record timestamps for the benchmark's stage breakdown
 * (tests/bench/stages.py, tests/bench/README "Latency at load"). Off unless
 * the environment variable KWS_STAGES names a file prefix when the process
 * starts; then records whose offset is a multiple of KWS_STAGES_EVERY
 * (default 16) are written, one line each, "<stage> <partition> <offset>
 * <wall µs> [<extra>]", to "<prefix>.<program>.<pid>". Off, a call site
 * costs one load and branch (stages_want). Not for production: the file
 * grows with the records and is written from the caller's thread.
 */
#ifndef KWS_STAGES_H
#define KWS_STAGES_H

#include <stdbool.h>
#include <stdint.h>

/* 0 when off, else the sampling period in offsets. Set by stages_setup. */
extern int64_t stages_every;

/* Reads KWS_STAGES and KWS_STAGES_EVERY; program names the output file.
 * Call once at start, before any thread marks. Returns 0, or -1 (logged) if
 * the file cannot be opened or KWS_STAGES_EVERY is not a positive number. */
int stages_setup(const char *program);

/* Whether the record at this offset is sampled (false when off). */
static inline bool stages_want(int64_t offset)
{
	return stages_every && offset % stages_every == 0;
}

/* The wall clock in microseconds (CLOCK_REALTIME), the clock of every
 * stage of every process. */
int64_t stages_now_us(void);

/* Writes one line: stage (a letter naming where), the record's partition
 * and offset, when (stages_now_us) and one more number (-1: none). Only
 * after stages_want said yes. Not thread-safe: one thread per process. */
void stages_mark(char stage, uint32_t partition, int64_t offset, int64_t when_us, int64_t extra);

/* Flushes and closes the file (at exit; safe when off). */
void stages_close(void);

#endif
