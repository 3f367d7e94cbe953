/* util/backoff.c — retry delays with jitter (see backoff.h). */
#include "util/backoff.h"

int64_t backoff_jitter_ms(unsigned failures, int64_t base_ms, int64_t max_ms, uint64_t rnd)
{
	if (max_ms < 1)
		max_ms = 1;
	int64_t d = base_ms;
	for (unsigned i = 1; i < failures && d < max_ms; i++)
		d *= 2;
	if (d > max_ms)
		d = max_ms;
	int64_t half = d / 2;
	return half + (int64_t)(rnd % (uint64_t)(d - half + 1));
}
