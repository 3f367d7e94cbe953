/* util/selfstats.c — the daemon's own counters (see selfstats.h). */
#include "util/selfstats.h"

#include <string.h>
#include <sys/time.h>

const double selfstats_latency_bounds[SELFSTATS_LATENCY_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5
};

void selfstats_init(struct selfstats *s)
{
	memset(s, 0, sizeof *s);
	struct timeval tv;
	gettimeofday(&tv, NULL);
	s->start_time_ms = (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

const char *selfstats_reject_name(enum reject_reason r)
{
	static const char *const names[REJ__COUNT] = {
		"parse_error", "invalid_labels", "cardinality_limit", "out_of_order",
		"duplicate",   "non_finite",     "too_old",           "out_of_bounds",
		"memory_limit",
	};
	return (unsigned)r < REJ__COUNT ? names[r] : "unknown";
}

void selfstats_observe_request(struct selfstats *s, unsigned r, unsigned status,
                               uint64_t micros)
{
	if (r >= SELFSTATS_ROUTES)
		r = SELFSTATS_ROUTES - 1;
	unsigned cls = status / 100;
	if (cls > 5)
		cls = 0;
	atomic_fetch_add_explicit(&s->requests[r][cls], 1, memory_order_relaxed);
	double secs = (double)micros / 1e6;
	int b = 0;
	while (b < SELFSTATS_LATENCY_BUCKETS && secs > selfstats_latency_bounds[b])
		b++;
	atomic_fetch_add_explicit(&s->latency_bucket[r][b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&s->latency_sum_us[r], micros, memory_order_relaxed);
}
