/* brake: see brake.h. */
#include "brake.h"

#include <string.h>

enum brake_verdict brake_check(struct brake *b, bool backlogged, uint64_t tx, int64_t now_ms)
{
	if (!backlogged) {
		memset(b, 0, sizeof *b);
		return BRAKE_OFF;
	}
	if (!b->since) {
		b->since = now_ms ? now_ms : 1;
		b->moved = now_ms;
		b->tx = tx;
	} else if (tx != b->tx) {
		b->moved = now_ms;
		b->tx = tx;
		if (b->released == BRAKE_STALLED)
			b->released = BRAKE_OFF; /* reading again */
	}
	if (b->released != BRAKE_OFF)
		return b->released;
	if (now_ms - b->since >= BRAKE_MAX_MS)
		b->released = BRAKE_TOO_LONG;
	else if (now_ms - b->moved >= BRAKE_STALL_MS)
		b->released = BRAKE_STALLED;
	return b->released != BRAKE_OFF ? b->released : BRAKE_HOLD;
}
