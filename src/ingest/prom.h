/* ingest/prom.h — Prometheus text exposition decoder (and OpenMetrics text).
 *
 * Bytes in, samples out, like ingest_line: prom_parse() walks a body line by
 * line and hands each sample to a callback as borrowed label_refs (the metric
 * name first, as the label "__name__"). A bad line is reported through the
 * error callback and counted; it never stops the rest of the body.
 *
 * prom_om_validate() is the strict OpenMetrics 1.0 checker (whole document:
 * "# EOF", metadata placement, histogram/summary rules, ordering). It is used
 * for conformance and by `foreshock parse --strict`; ingest uses prom_parse().
 *
 * Memory: the parser never keeps the body. label_refs point into the body, or
 * (for label values with escapes) into a scratch buffer that prom_parse()
 * allocates once per call; both are valid only during the sample callback.
 * Per-sample work does not allocate. Depends on labels.h (types only) and libc.
 * See docs/prometheus-formats.md for the accepted syntax.
 */
#ifndef FORESHOCK_INGEST_PROM_H
#define FORESHOCK_INGEST_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/labels.h"

enum prom_type {
	PROM_UNKNOWN,        /* "untyped" (text) / "unknown" (OpenMetrics) */
	PROM_COUNTER,
	PROM_GAUGE,
	PROM_HISTOGRAM,
	PROM_SUMMARY,
	PROM_GAUGE_HISTOGRAM,
	PROM_INFO,
	PROM_STATESET
};

enum prom_format {
	PROM_FORMAT_TEXT,        /* text/plain; version=0.0.4: timestamps are integer ms */
	PROM_FORMAT_OPENMETRICS  /* application/openmetrics-text: timestamps are float
	                          * seconds, "# EOF" ends the body, _created samples of
	                          * counters/histograms/summaries are skipped */
};

/* One sample. labels[0] is {"__name__", metric name}; the others follow in
 * input order (unsorted, empty values kept). value is any double (NaN, ±Inf
 * included). has_ts == 0: no timestamp in the input, ts_ms is 0 (use the
 * receive time). lineno is 1-based (0 for remote_write).
 * Return nonzero if the caller rejected the sample: it is counted. */
typedef int (*prom_sample_fn)(void *ctx, const struct label_ref *labels, size_t nlabels,
                              double value, int64_t ts_ms, int has_ts, size_t lineno);
/* A "# TYPE" line (and remote_write metadata). family is not NUL-terminated. */
typedef void (*prom_meta_fn)(void *ctx, const char *family, size_t len, enum prom_type type);
/* A rejected line. reason is NUL-terminated, lowercase, quotes its subject,
 * e.g. "invalid label name '1x'"; valid only during the call. lineno 0 means
 * the whole body (out of memory). */
typedef void (*prom_error_fn)(void *ctx, size_t lineno, const char *reason);

/* Limits on untrusted input. A zero field means "use the default". */
struct prom_limits {
	size_t max_labels;     /* per sample, including __name__ */
	size_t max_name_len;   /* metric and label names, bytes */
	size_t max_value_len;  /* label values after unescaping, bytes */
	size_t max_line_len;   /* text format only: bytes per line, '\n' excluded */
};
#define PROM_LIMITS_DEFAULT { 32, 128, 1024, 65536 }

/* Counters for one prom_parse() call (all may be read after the call). */
struct prom_stats {
	size_t lines;      /* lines seen (including comments and blank lines) */
	size_t samples;    /* samples handed to the callback and accepted */
	size_t rejected;   /* lines rejected by the parser */
	size_t refused;    /* samples the callback returned nonzero for */
	size_t skipped;    /* OpenMetrics _created samples not emitted */
};

/* Parse a whole body. on_sample is required; on_meta, on_error and stats may
 * be NULL; lim NULL means PROM_LIMITS_DEFAULT. Returns the number of rejected
 * lines (parser rejections + callback refusals), or SIZE_MAX if the scratch
 * buffer could not be allocated (on_error gets lineno 0, "out of memory"). */
size_t prom_parse(const char *body, size_t len, enum prom_format fmt,
                  const struct prom_limits *lim, prom_sample_fn on_sample,
                  prom_meta_fn on_meta, prom_error_fn on_error, void *ctx,
                  struct prom_stats *stats);

/* Strict OpenMetrics 1.0 validation of a whole document. Returns 1 if valid,
 * 0 if not (first problem in err, with *err_line its 1-based line; err and
 * err_line may be NULL/0). No callbacks; allocates only temporary tables. */
int prom_om_validate(const char *body, size_t len, char *err, size_t errlen, size_t *err_line);

/* "counter" -> PROM_COUNTER ... ; accepts "untyped" and "unknown".
 * Returns -1 for an unknown word. */
int prom_type_parse(const char *s, size_t len, enum prom_type *out);
const char *prom_type_name(enum prom_type t);  /* "counter", ..., "unknown" */

/* Prometheus's staleness marker: a NaN with this exact bit pattern. */
#define PROM_STALE_NAN_BITS UINT64_C(0x7ff0000000000002)
static inline int prom_is_stale(double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof bits);
	return bits == PROM_STALE_NAN_BITS;
}

#endif
