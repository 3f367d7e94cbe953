/* ingest/prw.h — Prometheus remote_write 1.0 decoder: bytes in, samples out.
 *
 * A remote_write body is a snappy *block* (not framed) holding a protobuf
 * prometheus.WriteRequest (proto/remote.proto). prw_decode() checks the
 * declared uncompressed length against a cap before allocating, decompresses,
 * reads the protobuf fields straight from the wire (no message objects, no
 * copies), validates every series, and only then emits the samples — a
 * payload is accepted or refused whole, so a 400 never leaves half a request
 * ingested.
 *
 * Samples reach the same callbacks as the text decoder (ingest/prom.h):
 * labels[0] is {"__name__", metric name}, then the other labels in wire order
 * (empty values kept: the registry drops them); ts_ms is the sender's
 * timestamp (has_ts is always 1); lineno is 0.
 *
 * Stale markers (value bits PROM_STALE_NAN_BITS) are skipped and counted by
 * default; set keep_stale to pass them through (test with prom_is_stale()).
 * Native histograms and exemplars are ignored.
 *
 * Memory: everything handed to callbacks lives in buffers owned by the
 * decoder and freed before prw_decode() returns; copy what you keep. The
 * caller keeps `body`. Depends on ingest/prom.h and libsnappy.
 */
#ifndef FORESHOCK_INGEST_PRW_H
#define FORESHOCK_INGEST_PRW_H

#include <stddef.h>

#include "ingest/prom.h"

/* Resource caps for one request. A zero field means "use the default". */
struct prw_limits {
	size_t max_uncompressed; /* snappy's declared length; larger is refused unread */
	size_t max_decoded;      /* the request's decoded size may not exceed
	                          * this: PRW_LABEL_COST plus name and value per
	                          * label of each series, PRW_SAMPLE_COST per
	                          * series and per sample (about what protobuf-c's unpacking
	                          * took; it bounds what a request hands out to
	                          * the callbacks). Typical requests measure 2-4x
	                          * their uncompressed size: keep >= 8 *
	                          * max_uncompressed */
	int keep_stale;          /* 1: emit stale markers instead of skipping them */
};
#define PRW_LABEL_COST 32
#define PRW_SAMPLE_COST 48
#define PRW_MAX_UNCOMPRESSED_DEFAULT ((size_t)64 << 20)
#define PRW_MAX_DECODED_DEFAULT ((size_t)256 << 20)
#define PRW_LIMITS_DEFAULT { PRW_MAX_UNCOMPRESSED_DEFAULT, PRW_MAX_DECODED_DEFAULT, 0 }

struct prw_stats {
	size_t series;   /* time series in the request */
	size_t samples;  /* samples emitted and accepted by the callback */
	size_t refused;  /* samples the callback returned nonzero for */
	size_t stale;    /* stale markers skipped (0 with keep_stale) */
	size_t metadata; /* metadata entries passed to on_meta */
	size_t ignored;  /* series carrying only histograms/exemplars/unknown fields */
};

/* Decode one request body. lim NULL = PROM_LIMITS_DEFAULT (max_line_len is
 * unused here). on_meta may be NULL. Returns 0 (even if the callback refused
 * some samples), or -1 with a reason in err for a malformed or oversize
 * payload; then no sample was emitted. err may be NULL. */
int prw_decode(const void *body, size_t len, const struct prom_limits *lim,
               prom_sample_fn on_sample, prom_meta_fn on_meta, void *ctx,
               char *err, size_t errlen);

/* Same, with resource caps (plim NULL = PRW_LIMITS_DEFAULT) and counters
 * (stats may be NULL; filled on success and on failure). */
int prw_decode_ex(const void *body, size_t len, const struct prom_limits *lim,
                  const struct prw_limits *plim, prom_sample_fn on_sample,
                  prom_meta_fn on_meta, void *ctx, struct prw_stats *stats,
                  char *err, size_t errlen);

#endif
