/* engine/engine.h — the core pipeline: samples in, series registry, detectors, alerts.
 *
 * Data flows one way: a caller (HTTP handler, replay thread) opens a batch,
 * adds samples, and closes it. For each sample the engine finds or creates
 * the series (registry, cardinality limit), drops out-of-order and duplicate
 * samples, runs the series' detector model, records the result in the
 * series' in-memory history ring and steps its alert state machine. Alert
 * transitions are collected and written to the store in one transaction when
 * the batch closes, before the caller answers: an alert is never served
 * before it is durable. No samples are written to SQLite on this path.
 *
 * Locking: the engine is sharded internally (src/engine/), each shard with its
 * own mutex; a batch holds at most one shard lock at a time (the shard of
 * the sample being added) and releases it in engine_batch_end(), so batches
 * on different threads run in parallel and a batch is not atomic with
 * respect to readers. Read functions take each shard's lock in turn and copy
 * out what they return. The engine owns the registry, the models and the
 * per-series state; it borrows the store and the selfstats.
 */
#ifndef FORESHOCK_ENGINE_H
#define FORESHOCK_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "detect/detector.h"
#include "detect/forecast.h"
#include "util/labels.h"
#include "util/selector.h"
#include "util/selfstats.h"

struct engine;
struct store;
struct services;
struct obuf;

#define ENGINE_MAX_QUANTILES 8

/* Which series have a forecaster (1,536 bytes each: more than the rest of
 * a series together). A forecaster learns from the samples after it was
 * created; until it has seen forecast_params.min_steps grid steps a
 * forecast request answers "not ready" (n = 0). */
enum engine_forecast {
	ENGINE_FORECAST_OFF = 0,       /* none: every forecast request answers not ready */
	ENGINE_FORECAST_REQUESTED = 1, /* series whose forecast was asked for (engine_forecast*,
	                                * so /api/v1/forecast, /metrics, the query API), series of
	                                * a service model, and every series while an output wants
	                                * forecasts (engine_outputs.fc_horizon_ms) */
	ENGINE_FORECAST_ALL = 2,       /* every gauge and derived series from its first sample */
};

struct engine_config {
	size_t max_series;                /* cardinality limit (new series beyond are rejected) */
	size_t max_memory;                /* budget in bytes of the series' memory (state, labels,
	                                   * history, registry slots): new series are rejected once
	                                   * it is reached; 0 = none. Default: half the physical
	                                   * memory (sysconf) */
	double quantiles[ENGINE_MAX_QUANTILES]; /* derived from histograms: foreshock:pNN:<name> */
	size_t nquantiles;                /* default 3: 0.5, 0.9, 0.99 */
	size_t history_points;            /* per-series ring of recent samples and scores (default 24) */
	struct label_limits label_limits;
	int64_t alert_retention_ms;       /* ended alerts kept this long (event time) */
	const char *alertname;            /* label value of alertname, e.g. "ForeshockAnomaly" */
	/* Per-series alerts (series outside every service model; the model's
	 * `alert:` gives clear_threshold, resolve and severity). A sample counts
	 * as anomalous when its score is at least series_threshold (0: the
	 * model's alert threshold; < 0: the model's `hold`, the score of a
	 * detected anomaly that persists) and its value is at least
	 * series_min_factor times above or below its expected value (<= 1: any);
	 * the alert fires when that held for series_for_ms (< 0: the model's
	 * `for`). Defaults: 0, 0, -1 (the model's alerting as it is); the
	 * daemon's configuration defaults are -1, 2 and 10 min (settings.c).
	 * Only a rise alerts on latencies and errors (quantiles of histograms,
	 * *_seconds, names with "error" or "fail", code/status 5xx): a p99
	 * falling back or an error ratio reading 0 is not trouble.
	 * Hard break: an anomalous latency or error sample at least
	 * series_break_factor times the highest value the series showed over
	 * at least a day (outside anomalous runs, and the peak of each run once
	 * it ended) fires once such samples held series_break_ms, without
	 * waiting for series_for_ms. series_break_factor <= 1: none (the
	 * engine's default); the daemon's defaults are 5 and 1 min. */
	double series_threshold;
	double series_min_factor;
	int64_t series_for_ms;
	double series_break_factor;
	int64_t series_break_ms;
	const char *external_url;         /* base URL used in annotation links; may be NULL */
	int forecast;                     /* enum engine_forecast: which gauge/derived series have a
	                                   * seasonal forecaster (default ENGINE_FORECAST_REQUESTED) */
	int64_t max_sample_age_ms;        /* live ingest: samples older than the clock minus this are
	                                   * rejected (out_of_bounds); 0 = no limit */
	int64_t max_sample_future_ms;     /* live ingest: samples newer than the clock plus this are
	                                   * rejected; 0 = no limit. Default 10 min */
	struct forecast_params forecast_params;
};
void engine_config_default(struct engine_config *c);

/* Creates the engine. Takes ownership of `model` (the default model for
 * every series). Borrows store and stats, which must outlive the engine. */
struct engine *engine_new(const struct engine_config *cfg, struct model *model,
                          struct store *store, struct selfstats *stats, char *err, size_t errlen);
void engine_free(struct engine *e);

/* One batch = one request body. Sample results are counted in `res`. */
struct engine_result {
	size_t accepted;
	size_t rejected[REJ__COUNT];
	size_t series_created;
};

struct engine_staged;
struct engine_batch {
	struct engine *e;
	struct engine_result res;
	int shard;                /* private to the engine: shard locked now, -1 = none */
	unsigned touched;         /* private to the engine: bit mask of shards used */
	size_t counted;           /* private to the engine: res.accepted already in selfstats */
	/* private to the engine: samples staged by engine_batch_stage() */
	struct engine_staged *st;
	size_t nst, capst;
	uint32_t *sref;           /* per sample or tag set: its bytes' offset and length,
	                           * then per label its name's and value's lengths */
	size_t nsref, capsref;
	char *sbytes;             /* label bytes of the staged samples */
	size_t nbytes, capbytes;
	size_t max_nref;
	struct engine_staged *srt; /* the commit's scratch: st in commit order, */
	uint32_t *order;          /* and each one's staging index */
	size_t capsrt;
	/* private to the engine: the tag set of engine_batch_stage_tags() */
	uint64_t tag_route, tag_hash;
	uint32_t tag_ref0;
	uint16_t tag_n;
	uint8_t tag_ok;
	int64_t now_ms;           /* the clock of a live batch (engine_batch_set_clock); 0 = event
	                           * time only (replay, backtest): no window */
	int64_t ts_lo, ts_hi;     /* private to the engine: the timestamps a sample may have,
	                           * the limits and the window in one (engine_batch_set_clock) */
};

/* Every timestamp must lie within +-ENGINE_TS_LIMIT_MS of the epoch (about
 * 2,200 years either way), whatever the window, so that no detector,
 * forecaster or registry arithmetic on times can overflow. */
#define ENGINE_TS_LIMIT_MS (INT64_C(1) << 46)

/* Starts a batch (shard locks are taken by engine_batch_add). */
void engine_batch_begin(struct engine *e, struct engine_batch *b);
/* A live batch: samples outside [now_ms - max_sample_age, now_ms +
 * max_sample_future] are rejected as out_of_bounds (Prometheus' rule), one
 * message per sample. Without it only ENGINE_TS_LIMIT_MS applies. */
void engine_batch_set_clock(struct engine_batch *b, int64_t now_ms);
/* Adds one sample. labels must include __name__. Returns 0 if accepted, or
 * the reject reason (> 0, an enum reject_reason + 1) with a message in err
 * naming the series or metric. Counted in b->res and in selfstats (accepted
 * samples reach selfstats in engine_batch_end). */
int engine_batch_add(struct engine_batch *b, const struct label_ref *labels, size_t n,
                     int64_t ts_ms, double value, char *err, size_t errlen);
/* Staged ingest, what the HTTP handlers use: engine_batch_stage() copies a
 * sample (its labels too, so refs may point into a buffer that is reused
 * right after) and hashes its labels without taking any lock; then
 * engine_batch_commit() runs every staged sample through the same steps as
 * engine_batch_add(), taking each shard's lock once per run of samples
 * instead of once per sample, and prefetching the series of the samples a
 * few places ahead (at 100k series the engine path is bound by cache
 * misses). Order: samples of one series are always processed in the order
 * they were staged; samples of different series are grouped by shard only
 * within a run of consecutive samples with the same timestamp (one scrape,
 * one line-protocol batch), so services never see time go backwards across
 * their member series.
 *
 * engine_batch_stage() returns 0, or a reject reason + 1 for a sample that
 * can be refused at once (non-finite value, out of memory) with a message
 * in err. engine_batch_commit() calls fn (may be NULL) for every sample the
 * engine refused, with the sample's staging index (0-based, counting every
 * call of engine_batch_stage() in this batch that returned 0), the reason +
 * 1 and the message; it returns the number refused. engine_batch_end()
 * commits anything still staged. */
int engine_batch_stage(struct engine_batch *b, const struct label_ref *labels, size_t n,
                       int64_t ts_ms, double value, char *err, size_t errlen);
/* Samples that share every label but the metric name (the fields of one
 * line-protocol line): engine_batch_stage_tags() stages the shared labels
 * (tags: no __name__) once, hashing and copying them once; then each
 * engine_batch_stage_named() stages one sample with that tag set and its
 * own metric name, which is all it hashes and copies. A named sample is
 * exactly the sample engine_batch_stage() would stage with the labels
 * {__name__=name} followed by the tags (same hash, shard, order, verdicts
 * and messages). stage_tags returns 0, or -1 with a message in err (more
 * labels than the limit allows, out of memory) without counting anything:
 * the caller then stages the samples one by one with engine_batch_stage(),
 * which refuses them as it would have. The tag set stays current until the
 * next stage_tags or commit; stage_named without one refuses the sample
 * (invalid labels). stage_named returns like engine_batch_stage(). */
int engine_batch_stage_tags(struct engine_batch *b, const struct label_ref *tags, size_t n,
                            char *err, size_t errlen);
int engine_batch_stage_named(struct engine_batch *b, const char *name, size_t len,
                             int64_t ts_ms, double value, char *err, size_t errlen);
typedef void (*engine_reject_fn)(void *ctx, size_t index, int rc, const char *err);
size_t engine_batch_commit(struct engine_batch *b, engine_reject_fn fn, void *ctx);

/* Metric family types, as announced by # TYPE lines or remote_write
 * metadata. A family typed counter (or named *_total, *_count, *_sum) is a
 * counter: detectors see its per-second rate as foreshock:rate:<name>.
 * Histogram buckets (<name>_bucket with an le label) are turned into
 * quantile signals foreshock:pNN:<name> per label group. */
enum metric_type { METRIC_UNKNOWN = 0, METRIC_GAUGE, METRIC_COUNTER, METRIC_HISTOGRAM,
	           METRIC_SUMMARY };
void engine_batch_set_type(struct engine_batch *b, const char *family, size_t len,
                           enum metric_type type);

/* Persists the batch's alert transitions and releases its lock. Returns 0, or
 * -1 if the store failed (transitions stay queued and are retried by the next
 * batch; the error is logged and counted). */
int engine_batch_end(struct engine_batch *b);

/* --- read side (thread-safe; each call copies under the lock) --- */

struct series_info {
	const struct labels *labels;   /* valid during the callback only */
	uint64_t samples;              /* samples accepted */
	int64_t first_ts_ms, last_ts_ms;
	double last_value;
	struct det_result last;        /* last detector result (component string is static) */
	int alert_state;               /* enum alert_state */
	int kind;                      /* enum series_kind (series.h) */
	const void *priv_series;       /* private to the engine (engine_series_key) */
	void *priv_walk;
};
/* The series' canonical key name{...} (labels_to_string's text). A series
 * does not keep it: it is written from the labels when asked, into a buffer
 * of the walk, valid during the callback only. */
const char *engine_series_key(const struct series_info *s);
typedef int (*engine_series_fn)(void *ctx, const struct series_info *s);
/* Calls fn for each series matching any of the selectors (all series when
 * nsel == 0): shard by shard, in creation order within a shard. fn returns
 * nonzero to stop. */
int engine_series_foreach(struct engine *e, const struct selector *sel, size_t nsel,
                          engine_series_fn fn, void *ctx);
/* The engine's shards, for readers that build something per shard and keep
 * it (GET /metrics): engine_series_foreach() is shard 0, 1, ... in turn,
 * each one engine_series_foreach_shard(). A shard's generation changes
 * whenever one of its series may have changed (every batch that touches
 * it, a model swap, a restore): what a reader built from shard k after
 * reading generation g is still current while engine_shard_generation(k)
 * returns g (read it before the walk, never after). */
unsigned engine_shard_count(void);
uint64_t engine_shard_generation(struct engine *e, unsigned k);
int engine_series_foreach_shard(struct engine *e, unsigned k, const struct selector *sel,
                                size_t nsel, engine_series_fn fn, void *ctx);

struct history_point {
	int64_t ts_ms;
	float value, score, expected, lower, upper;
	int8_t direction;
	const char *component;         /* static string */
};
typedef int (*engine_history_fn)(void *ctx, const struct series_info *s,
                                 const struct history_point *pts, size_t n);
/* Recent history of each matching series with ts in [start_ms, end_ms]. */
int engine_history(struct engine *e, const struct selector *sel, size_t nsel, int64_t start_ms,
                   int64_t end_ms, engine_history_fn fn, void *ctx);

struct engine_stats {
	size_t series;
	size_t max_series;
	size_t series_bytes, max_memory; /* accounted series memory and its budget */
	size_t pending_transitions;    /* not yet durable (store failing) */
	int64_t last_sample_ms;        /* newest event time seen */
	size_t dirty_series;           /* state changed since last written */
	uint64_t state_writes;         /* series states written since start */
	uint64_t service_state_writes; /* service model states written since start */
	const char *model_name;
};
void engine_get_stats(struct engine *e, struct engine_stats *st);
/* Forecasts of each matching series (gauges and derived signals): n points
 * from just after the series' last sample, step_ms apart. If limit is not
 * NAN, breach is filled with the time-to-breach of that limit within
 * n * step_ms (above = 1: breach when the signal rises above it). Series
 * whose forecaster is not ready yet are passed with n = 0. A series that
 * has no forecaster yet (ENGINE_FORECAST_REQUESTED) gets one here, within
 * limits.max_memory, and is passed with n = 0 and info->samples = 0: it
 * learns from the next sample on. */
typedef int (*engine_forecast_fn)(void *ctx, const struct series_info *s,
                                  const struct forecast_point *pts, size_t n,
                                  const struct breach *breach, const struct forecast_info *info);
int engine_forecast(struct engine *e, const struct selector *sel, size_t nsel, int64_t step_ms,
                    size_t n, double limit, int above, engine_forecast_fn fn, void *ctx);
/* engine_forecast() of one shard (see engine_shard_generation), without a
 * breach; want (may be NULL) is asked first for each series that can have
 * a forecaster, and a series it returns 0 for is skipped before its
 * forecast is computed (and before a forecaster is made for it). Returns fn's last value, or -1 on bad arguments or out of
 * memory. */
int engine_forecast_shard(struct engine *e, unsigned k, const struct selector *sel, size_t nsel,
                          int64_t step_ms, size_t n, engine_series_fn want,
                          engine_forecast_fn fn, void *ctx);
/* Forecasts on a fixed grid from_ms + k * step_ms, k = 0 .. n-1 (step_ms > 0):
 * for each matching series, only the grid points strictly after its last
 * sample (s->last_ts_ms) are forecast, so fn gets the tail of the grid
 * starting at the first such point (pts[i].ts_ms on the grid), or n = 0 when
 * no grid point lies after the last sample or the forecaster is not ready.
 * Counters and buckets are skipped, and every series when forecasting is
 * off (engine_config.forecast = 0); a series without a forecaster gets one
 * as in engine_forecast(). breach is always NULL. fn is
 * called under a shard lock (pts and s are valid during the call only);
 * it returns nonzero to stop. Returns fn's last value, or -1 on bad
 * arguments or out of memory. */
int engine_forecast_at(struct engine *e, const struct selector *sel, size_t nsel, int64_t from_ms,
                       int64_t step_ms, size_t n, engine_forecast_fn fn, void *ctx);

/* Install a set of service models (service.h), taking ownership; the
 * previous set is freed and every series is bound again. NULL removes them. */
void engine_set_services(struct engine *e, struct services *svcs);
/* The services' current state as a JSON array (GET /api/v1/services). */
void engine_services_json(struct engine *e, struct obuf *b);

/* Base URL for links in alert annotations (set once the port is known). */
int engine_set_external_url(struct engine *e, const char *url);

/* Learned state is written incrementally. Every series whose state changed
 * since it was last written (a sample, an alert adopted at restore, a model
 * swap) is queued once, oldest first; engine_persist() writes up to
 * max_series of them (0 = all queued), in store transactions of at most
 * 1000 series, round robin over the shards. Each batch is copied out under
 * its shard's lock and written without it, so ingest never waits for
 * SQLite. Call it every few seconds from one housekeeping thread. A failed
 * write puts its series back in the queue. Returns the number of series
 * written, or -1 with err (store failing). */
long engine_persist(struct engine *e, size_t max_series, char *err, size_t errlen);
/* Series queued for engine_persist() (changed since last written). */
size_t engine_dirty_series(struct engine *e);
/* Shutdown: write every pending alert transition, then every queued
 * series' state (engine_persist with no limit). Returns 0 or -1. */
int engine_checkpoint(struct engine *e, char *err, size_t errlen);
/* Recreate series and their state from the store; series whose model
 * fingerprint changed start fresh. Open alerts of the store are carried
 * over: adopted by their series, or, for a series whose state was never
 * written (created just before a crash), kept open and adopted when its next
 * sample creates it again. Call before serving. Returns the number of series
 * restored, or -1. */
long engine_restore(struct engine *e, char *err, size_t errlen);
/* Swap in a new default model (SIGHUP). Takes ownership of m; series whose
 * fingerprint changes re-learn from scratch (logged). */
void engine_set_model(struct engine *e, struct model *m);
/* Drop ended alerts older than the retention (event time). */
int engine_prune(struct engine *e);

/* --- outputs (exporters) ---
 * What the engine computes, handed out as it is computed: one call per
 * scored sample (gauges and derived signals; raw counters and buckets have
 * no detector and are skipped) and one per evaluated service grid step. The
 * functions run on the ingesting thread under the series' shard lock (the
 * service function also under the services lock): they must be quick, must
 * not block and must not call back into the engine. Pointers are valid
 * during the call only. */
struct service_output;
struct engine_output {
	const struct labels *labels;     /* the series' labels, __name__ included */
	int64_t ts_ms;
	double value;
	const struct det_result *det;    /* score, expected value and band */
	int alert_state;                 /* enum alert_state after this sample */
	int64_t active_at_ms;            /* pending/firing: when the alert became active */
	const char *alertname, *severity;
	const struct forecast_point *fc; /* forecast fc_horizon_ms after ts_ms; NULL if not ready */
	const char *service, *role;      /* the service the series feeds and its role there; NULL */
};
struct engine_outputs {
	void (*series)(void *ctx, const struct engine_output *o);
	void (*service)(void *ctx, const struct service_output *o); /* service.h; may be NULL */
	void *ctx;
	int64_t fc_horizon_ms;           /* 0: no forecast in engine_output */
};
/* Install the output functions (copied; NULL removes them). Call before
 * ingest starts. */
void engine_set_outputs(struct engine *e, const struct engine_outputs *o);

#endif
