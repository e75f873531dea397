/* position: see position.h. */
#include "position.h"

bool position_needs_watermarks(int64_t from, int64_t live, int64_t known_hi)
{
	if (from < 0 || live < 0 || from == live)
		return false;
	if (from < live)
		return true;
	return known_hi < 0 || from > known_hi;
}

struct position_plan position_plan(int64_t from, int64_t live, int64_t lo, int64_t hi)
{
	struct position_plan p = { .start = live, .complete = true, .replay_from = -1 };
	if (from < 0 || live < 0 || from == live)
		return p;
	if (from < live) {
		p.complete = lo < 0 || from >= lo;
		p.replay_from = from;
		return p;
	}
	if (hi >= 0 && from > hi) {
		p.complete = false;
		p.beyond_end = true;
		p.start = hi > live ? hi : live;
		return p;
	}
	p.start = from;
	return p;
}
