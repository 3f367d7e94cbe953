/* util/selfstats.h — the daemon's own counters, exported on /metrics.
 *
 * One struct selfstats is owned by main and outlives the engine and the HTTP
 * server, which hold borrowed pointers. Fields are C11 atomics updated with
 * relaxed ordering: they are statistics, not synchronisation.
 */
#ifndef FORESHOCK_SELFSTATS_H
#define FORESHOCK_SELFSTATS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Why a sample (or a line) was not stored. Keep in step with
 * selfstats_reject_name(). */
enum reject_reason {
	REJ_PARSE = 0,       /* malformed line / payload */
	REJ_LABELS,          /* invalid or too many labels, too long */
	REJ_CARDINALITY,     /* series limit reached */
	REJ_OUT_OF_ORDER,    /* older than the series' last sample */
	REJ_DUPLICATE,       /* same timestamp as the series' last sample */
	REJ_NON_FINITE,      /* NaN or infinite value */
	REJ_TOO_OLD,         /* reserved: before the retention horizon */
	REJ_OUT_OF_BOUNDS,   /* timestamp outside the accepted window around the clock */
	REJ_MEMORY,          /* memory budget of the series reached (limits.max_memory) */
	REJ__COUNT
};

#define SELFSTATS_LATENCY_BUCKETS 12
/* Requests are counted by route: an index the HTTP layer assigns
 * (enum http_route, http/route.h), below SELFSTATS_ROUTES. */
#define SELFSTATS_ROUTES 16

struct selfstats {
	_Atomic uint64_t samples_accepted;
	_Atomic uint64_t samples_rejected[REJ__COUNT];
	_Atomic uint64_t fields_ignored;        /* string/bool fields: not series */
	_Atomic uint64_t requests[SELFSTATS_ROUTES][6]; /* by route and status class 1xx..5xx (index 1..5), 0 = other */
	_Atomic uint64_t latency_bucket[SELFSTATS_ROUTES][SELFSTATS_LATENCY_BUCKETS + 1];
	_Atomic uint64_t latency_sum_us[SELFSTATS_ROUTES];
	_Atomic uint64_t bodies_too_large;
	_Atomic uint64_t writes_shed;           /* write requests answered 503 (overload) */
	_Atomic uint64_t writes_queued;         /* write requests that waited for a slot */
	_Atomic uint64_t write_queue_us;        /* total time they waited, microseconds */
	_Atomic uint64_t reads_shed;            /* API reads answered 503 (read slots full) */
	_Atomic uint64_t http_unauthorized;     /* 401: no or unknown bearer token */
	_Atomic uint64_t http_forbidden;        /* 403: wrong scope, foreign Host or Origin */
	_Atomic uint64_t http_timeouts;         /* connections closed by the header/body deadline */
	_Atomic uint64_t responses_too_large;   /* 422: response over http.max_response */
	_Atomic uint64_t alert_transitions;
	_Atomic uint64_t store_errors;
	_Atomic uint64_t notifications_sent;
	_Atomic uint64_t notifications_failed;
	int64_t start_time_ms;                  /* set once before threads start */
};

void selfstats_init(struct selfstats *s);
const char *selfstats_reject_name(enum reject_reason r);
/* Upper bounds (seconds) of the request-latency histogram buckets. */
extern const double selfstats_latency_bounds[SELFSTATS_LATENCY_BUCKETS];
/* Count one response of route r (r >= SELFSTATS_ROUTES counts as the last). */
void selfstats_observe_request(struct selfstats *s, unsigned r, unsigned status,
                               uint64_t micros);

#endif
