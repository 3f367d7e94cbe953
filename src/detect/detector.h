/* detect/detector.h — streaming anomaly-detector models.
 *
 * A model (struct model) is loaded once from YAML (models/default.yml), is
 * immutable afterwards and is shared read-only by every series and every
 * thread. Per-series detector state is a fixed-size block of plain data of
 * model_state_size() bytes: no pointers inside, so the series registry can
 * carve it from a pool and the store can checkpoint it as bytes and restore it
 * after a restart (guarded by model_fingerprint()).
 *
 * Contract of model_update(): strictly streaming and deterministic. The result
 * for sample k depends only on samples 0..k of that series and on the model.
 * Timestamps may be irregular and have gaps; callers guarantee they are
 * strictly increasing (out-of-order and duplicate samples are dropped before
 * they get here). Non-finite values are never passed in.
 *
 * Dependencies point down: detector.c, model_parse.c and the component files use yaml_tree.h
 * and log.h, nothing above them (no component uses GSL; forecast.c does).
 */
#ifndef FORESHOCK_DETECTOR_H
#define FORESHOCK_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

struct model;

/* What the model says about one sample. */
struct det_result {
	double score;          /* anomaly score in [0,1]; 0 during warm-up */
	double expected;       /* the baseline's expected value for this sample (NAN if unknown) */
	double lower, upper;   /* expected band (NAN if unknown) */
	int direction;         /* +1 above the band, -1 below, 0 inside */
	const char *component; /* static name of the component that contributed most, e.g. "level" */
};

/* Alerting parameters carried by a model (the alert state machine reads them). */
struct model_alerting {
	double threshold;      /* score >= threshold counts as anomalous */
	double clear_threshold;/* score < clear_threshold counts as normal (hysteresis) */
	int64_t for_ms;        /* anomalous this long (event time) before pending -> firing */
	int64_t resolve_ms;    /* normal this long before firing -> resolved */
	const char *severity;  /* label value, e.g. "warning" */
};

/* Load a model from a YAML file. On error returns NULL and writes
 * "FILE:LINE: reason" into err. */
struct model *model_load_file(const char *path, char *err, size_t errlen);
/* Same, from a string; name is used in error messages. */
struct model *model_load_string(const char *yaml, size_t len, const char *name,
                                char *err, size_t errlen);
/* The built-in default (same settings as models/default.yml). Never NULL. */
struct model *model_builtin_default(void);
void model_free(struct model *m);

const char *model_name(const struct model *m);
const struct model_alerting *model_alerting(const struct model *m);
/* The score the detector holds a detected anomaly at while it persists (`hold`). */
double model_hold(const struct model *m);
/* Changes whenever the layout or meaning of the state block changes. */
uint64_t model_fingerprint(const struct model *m);

size_t model_state_size(const struct model *m);
void model_state_init(const struct model *m, void *state);
/* Prefetch the lines of state a sample at ts_ms will touch (the engine
 * calls it a few samples ahead: at 100k series the state is not in cache). */
void model_prefetch(const struct model *m, const void *state, int64_t ts_ms);
/* Which samples a model never sees. The daemon's engine, `foreshock replay`
 * and `foreshock backtest` drop the same samples, checked in this order, and
 * count them under the same names (foreshock_samples_rejected_total reasons):
 * a missing or non-finite value ("non_finite": a gap, not an error), a
 * timestamp equal to the last accepted one ("duplicate") or before it
 * ("out_of_order"). The dropped sample leaves the state untouched, so the
 * next accepted one sees the elapsed time as a gap. */
enum det_drop { DET_KEEP = 0, DET_DROP_NON_FINITE, DET_DROP_DUPLICATE, DET_DROP_OUT_OF_ORDER,
	        DET_DROP__COUNT };
/* have_last: some sample was accepted before, at last_ts. */
static inline enum det_drop det_admit(int have_last, int64_t last_ts, int64_t ts, double value)
{
	if (!(value - value == 0)) /* NaN or infinite, without <math.h> */
		return DET_DROP_NON_FINITE;
	if (have_last && ts == last_ts)
		return DET_DROP_DUPLICATE;
	if (have_last && ts < last_ts)
		return DET_DROP_OUT_OF_ORDER;
	return DET_KEEP;
}
/* "non_finite", "duplicate", "out_of_order" ("" for DET_KEEP) */
const char *det_drop_name(enum det_drop d);

/* Feed one sample; fills *out. */
void model_update(const struct model *m, void *state, int64_t ts_ms, double value,
                  struct det_result *out);

#endif
