/* ingest/json.h — decoder for foreshock's JSON import format (POST /api/v1/import).
 *
 * Bytes in, samples out, like ingest_line and ingest_prom: json_import_parse()
 * walks a whole body and hands each sample to a callback. It knows nothing
 * about HTTP or the engine. The format (docs/api.md, "JSON import"):
 *
 *   {"series":[{"labels":{"__name__":"up","job":"api"},
 *               "samples":[[1700000000000,1],["2023-11-14T22:13:20Z","2.5"]]}]}
 *
 * A body is a sequence of JSON objects (one document, or NDJSON: one object
 * per line). Each object is either a document with a "series" array, or one
 * series object itself ({"labels":..,"samples":..}). "metric" is accepted as
 * an alias of "labels", and the VictoriaMetrics export shape
 * {"metric":{..},"values":[..],"timestamps":[..]} is accepted too.
 * Timestamps are integer milliseconds since the epoch, or RFC 3339 strings;
 * values are JSON numbers or the strings Prometheus uses ("1.5", "NaN",
 * "+Inf", "-Inf").
 *
 * Errors never stop the rest of the body: a bad sample rejects that sample,
 * a bad series object (labels) rejects its samples, and a JSON syntax error
 * rejects the rest of its object; decoding resumes at the next line that
 * starts with '{' in its first column. Every error names its place as a path,
 * e.g. "series[0].samples[3][0]", and the 1-based line where its object starts.
 *
 * Memory: label_refs and the path string point into jansson values or a
 * buffer owned by the decoder; both are valid only during the callback.
 * Depends on jansson, labels.h (types only) and timefmt.h.
 */
#ifndef FORESHOCK_INGEST_JSON_H
#define FORESHOCK_INGEST_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "util/labels.h"

/* One decoded sample; everything borrowed for the duration of the callback. */
struct json_sample {
	const struct label_ref *labels; /* unsorted, as in the input; __name__ among them */
	size_t nlabels;
	int64_t ts_ms;
	double value;                   /* may be NaN or +-Inf (the caller decides) */
	size_t line;                    /* 1-based line where the sample's object starts */
	const char *path;               /* e.g. "series[0].samples[3]" (NUL-terminated) */
};

/* Return 0 if the caller accepted the sample, nonzero if it rejected it
 * (counted in json_import_stats.refused; the caller reports its own reason). */
typedef int (*json_sample_fn)(void *ctx, const struct json_sample *s);
/* A rejected element. reason is lowercase, error first, subject quoted, and
 * ends with the path: "invalid timestamp 'abc' at series[0].samples[3][0]".
 * nsamples is how many samples the error rejected (the samples of a series
 * with bad labels; 1 for a bad sample; 1 for a syntax error). Valid during
 * the call only. */
typedef void (*json_error_fn)(void *ctx, size_t line, const char *reason, size_t nsamples);

struct json_import_limits {
	size_t max_labels;        /* per series, including __name__; 0 = 64 */
	size_t max_errors;        /* stop calling on_error after this many (still counted); 0 = no limit */
};

struct json_import_stats {
	size_t objects;           /* top-level objects decoded */
	size_t samples;           /* samples accepted by the callback */
	size_t refused;           /* samples the callback rejected */
	size_t rejected;          /* samples (or elements) rejected by the decoder */
	size_t errors;            /* error reports (including those past max_errors) */
};

/* Decode a whole body. on_sample is required; on_error, lim and stats may be
 * NULL. Returns the number of rejected samples (decoder + callback). */
size_t json_import_parse(const char *body, size_t len, const struct json_import_limits *lim,
                         json_sample_fn on_sample, json_error_fn on_error, void *ctx,
                         struct json_import_stats *stats);

#endif
