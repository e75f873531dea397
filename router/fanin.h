/*
 * fanin: merges what the workers of one router (super.h) answer into one
 * answer for the whole router. Pure: strings in, strings out, no I/O.
 */
#ifndef KWS_ROUTER_FANIN_H
#define KWS_ROUTER_FANIN_H

#include <stddef.h>

/*
 * Merges n Prometheus text expositions (texts[i], lens[i] bytes; a NULL
 * text is skipped) into one: every series (name and labels) appears once,
 * in its family, families in the order first seen; its value is the sum over
 * the texts, except in the families named in max_families (a NULL-ended
 * list, or NULL) whose value is the largest (a gauge that is the same in
 * every worker, such as the partition count). HELP and TYPE lines are kept
 * from the first text that has them. Lines that are neither comments nor
 * "<series> <value>" are dropped. Returns a malloc'ed NUL-terminated text
 * owned by the caller, its length in *outlen.
 */
char *fanin_metrics(const char *const *texts, const size_t *lens, size_t n,
		    const char *const *max_families, size_t *outlen);

#endif
