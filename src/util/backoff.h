/* util/backoff.h — the retry delay that the notifier and the remote-write
 * exporter share: exponential with full-range jitter in its upper half.
 * Depends on nothing. */
#ifndef FORESHOCK_UTIL_BACKOFF_H
#define FORESHOCK_UTIL_BACKOFF_H

#include <stdint.h>

/* Delay before the next try after `failures` consecutive failures (1 = the
 * first): base_ms doubled per further failure, capped at max_ms (at least
 * 1 ms), then a value in [d/2, d] picked by rnd. */
int64_t backoff_jitter_ms(unsigned failures, int64_t base_ms, int64_t max_ms, uint64_t rnd);

#endif
