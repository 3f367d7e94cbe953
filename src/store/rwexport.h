/* store/rwexport.h — the remote_write exporter: foreshock's outputs (scores,
 * expected values and bands, forecasts, service risk, alert states) sent to
 * a Prometheus-compatible time-series database (VictoriaMetrics, Prometheus
 * with --web.enable-remote-write-receiver) with Prometheus remote_write 1.0
 * (snappy-compressed protobuf over HTTP POST, libcurl).
 *
 * Producers (the engine's output hook, under a shard lock) hand samples to
 * rwexport_add() or, a batch at a time, to rwexport_submit(): they are
 * copied into a pending buffer and return at once; no I/O happens on the
 * caller's thread. A sender thread turns pending samples into requests of at
 * most max_samples_per_send samples (samples of one series in one request
 * share a TimeSeries), compresses them and keeps them in a FIFO queue, which
 * it sends in order, one request at a time. A request that fails with a
 * network error, 5xx or 429 is retried (the same bytes) with exponential
 * backoff between min_backoff and max_backoff; a request refused with any
 * other 4xx is dropped and counted (retrying the same bytes cannot help).
 *
 * Bounds: the queue holds at most max_queue_bytes of compressed requests and
 * the pending buffer max_pending_bytes of samples not yet encoded. Past the
 * queue bound the oldest queued request is dropped; past the pending bound
 * the new sample is dropped; both are counted in samples_dropped (the metric
 * foreshock_export_samples_dropped_total) and logged. Nothing is written to
 * disk: what is still queued when the daemon stops after its drain time is
 * lost (counted and logged). docs/integrations.md says how long an outage
 * the defaults cover.
 *
 * Ownership: rwexport_new() copies the configuration; the exporter owns its
 * buffers, its thread and its curl handle. All functions are thread-safe.
 * Layer: depends on labels, log, yaml_tree; libcurl, snappy and protobuf-c
 * stay inside rwexport.c.
 */
#ifndef FORESHOCK_RWEXPORT_H
#define FORESHOCK_RWEXPORT_H

#include <stddef.h>
#include <stdint.h>

#include "util/labels.h"

struct ynode;

struct rwexport_config {
	char *url;                 /* remote_write URL; NULL = export off; owned */
	int64_t timeout_ms;        /* 10 s: one request, connect included */
	int64_t flush_ms;          /* 1 s: a sample waits at most about this long to be sent */
	size_t max_samples_per_send; /* 2000 */
	int64_t max_queue_bytes;   /* 1 GiB of compressed requests */
	int64_t max_pending_bytes; /* 256 MiB of samples not yet encoded */
	int64_t min_backoff_ms;    /* 250 ms: first retry delay, doubled per failure */
	int64_t max_backoff_ms;    /* 5 s: retry delay cap */
	int64_t drain_ms;          /* 5 s: at stop, how long to keep sending what is queued */
	char **headers;            /* extra request headers "Name: value"; owned */
	size_t nheaders;
	char **ext_names, **ext_values; /* external labels added to every series; owned */
	size_t next;
};

void rwexport_config_init(struct rwexport_config *c);
/* Parse the `export:` section (a yaml_tree map) into c. Unknown keys are
 * rejected. Returns 0, or -1 with "FILE:LINE: reason" in err. */
int rwexport_config_parse(struct rwexport_config *c, const struct ynode *sec, char *err,
                          size_t errlen);
/* Add an external label (copied; replaces one of the same name). 0 or -1. */
int rwexport_config_add_label(struct rwexport_config *c, const char *name, const char *value);
int rwexport_config_set_url(struct rwexport_config *c, const char *url, char *err, size_t errlen);
void rwexport_config_free(struct rwexport_config *c);

struct rwexport_stats {
	uint64_t samples_in;       /* handed to the exporter */
	uint64_t samples_sent;     /* acknowledged by the endpoint (2xx) */
	uint64_t samples_dropped;  /* lost: a bound was hit, refused (4xx), or unsent at stop */
	uint64_t samples_rejected; /* of those, refused by the endpoint with a 4xx */
	uint64_t requests_sent, requests_failed; /* failed attempts, each retry counted */
	uint64_t queue_bytes, queue_samples;     /* waiting now (queued, being encoded, pending) */
	int64_t last_success_ms;   /* wall clock of the last 2xx, 0 = never */
};

struct rwexport;

/* Start the sender thread. c is copied. Returns NULL with err (no URL,
 * curl failure). */
struct rwexport *rwexport_start(const struct rwexport_config *c, char *err, size_t errlen);
/* Stop: keeps sending for at most drain_ms, joins, counts and logs what is
 * left unsent as dropped, frees everything. NULL is fine. */
void rwexport_stop(struct rwexport *x);

/* One sample of the series name{labels...} (labels: any order, __name__
 * must not be among them, empty values are skipped). Never blocks on I/O.
 * Returns 0, or -1 if it was dropped (pending bound; counted). */
int rwexport_add(struct rwexport *x, const char *name, const struct label_ref *labels, size_t n,
                 int64_t ts_ms, double value);

/* Batched form, for producers that emit many samples at once: records are
 * encoded into a caller-owned rwexport_buf without any lock, then handed
 * over with one lock by rwexport_submit(), which empties the buffer. */
struct rwexport_buf {
	char *p;
	size_t len, cap;
	size_t n;      /* samples */
	int failed;    /* out of memory while appending: the buffer is dropped at submit */
};
void rwexport_buf_add(struct rwexport_buf *b, const char *name, const struct label_ref *labels,
                      size_t n, int64_t ts_ms, double value);
/* Returns the number of samples dropped (0 when all were taken). */
size_t rwexport_submit(struct rwexport *x, struct rwexport_buf *b);
void rwexport_buf_free(struct rwexport_buf *b);

/* Wake the sender now (tests; a flush before a read). */
void rwexport_flush(struct rwexport *x);
void rwexport_get_stats(struct rwexport *x, struct rwexport_stats *st);

/* ---- pure helpers (exposed for tests) ---------------------------------- */

/* Encode up to max records of a pending buffer (bytes p..p+len, as built by
 * rwexport_buf_add) into one snappy-compressed WriteRequest, adding the
 * external labels of c. *used is set to the bytes consumed and *nsamples to
 * the samples encoded. Returns a malloc'd body with its length in *outlen,
 * or NULL (out of memory, or a malformed buffer). */
char *rwexport_encode(const struct rwexport_config *c, const char *p, size_t len, size_t max,
                      size_t *used, size_t *nsamples, size_t *outlen);
/* Retry delay after `failures` (>= 1) consecutive failures: min doubled per
 * failure, capped at max, jittered into [d/2, d] with rnd. */
int64_t rwexport_backoff_ms(unsigned failures, int64_t min_ms, int64_t max_ms, uint64_t rnd);

#endif
