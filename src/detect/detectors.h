/* detectors.h — private to the src/detect/ files: the component vtable.
 *
 * A model is an ensemble of components. Each component kind describes its
 * parameters in a table (name, type, default, range) so that model_parse.c can
 * parse and range-check YAML generically, and provides state_size/init/update
 * over a fixed-size block of plain data (no pointers) that model_parse.c carves
 * out of the per-series state. Components never allocate and never keep
 * global state (the exceptions: det_alpha_at's per-thread memo, which only
 * remembers the last result of a pure function, and changept's table of
 * constants, filled once under pthread_once from prepare and read-only
 * after); parameters are read-only
 * doubles indexed like the table.
 */
#ifndef FORESHOCK_DETECTORS_H
#define FORESHOCK_DETECTORS_H

#include <stddef.h>
#include <stdint.h>

#define DET_MAX_PARAMS 12
/* Constants a component derives from its parameters once per model
 * (comp_kind.prepare), kept after them: p[DET_MAX_PARAMS + k]. */
#define DET_MAX_DERIVED 4

enum param_type {
	PARAM_NUMBER,   /* any real number within [min, max] */
	PARAM_INT,      /* integer within [min, max] */
	PARAM_DURATION, /* "5m", "1d"; stored as milliseconds, range in ms */
	PARAM_BOOL      /* 0 or 1 */
};

struct param_def {
	const char *name;
	enum param_type type;
	double def, min, max;
};

/* Per-sample context computed once by the model and shared by components. */
struct comp_ctx {
	int64_t ts_ms;     /* event time of this sample */
	double value;      /* the sample */
	double steps;      /* elapsed time in typical sampling intervals, clamped to
	                    * [1, 64]; 1 for the first sample. Components decay by
	                    * this so that gaps count as elapsed time. */
	double interval_ms;/* running estimate of the typical sampling interval */
	uint32_t n;        /* samples seen by the model, this one included (1-based) */
	double season;     /* what an earlier seasonal component expects this sample
	                    * to lie above its level (its profile offset), 0 if none:
	                    * components with `deseason` judge value - season */
};

/* One component's verdict on one sample. update() gets it set to raw 0,
 * expected, lower and upper NAN, direction 0, mag 0, season 0, and sets
 * what it has. */
struct comp_out {
	double raw;          /* raw anomaly score, >= 0; 0 = perfectly normal; NAN while
	                      * the component is not ready (it then neither scores
	                      * nor feeds the likelihood stage) */
	double expected;     /* baseline value, NAN if the component has none */
	double lower, upper; /* band, NAN if none */
	int direction;       /* +1 above, -1 below, 0 inside / unknown */
	double mag;          /* > 0: expected, lower and upper are in asinh(x / mag) space
	                      * ("log" components); model_update maps back (mag *
	                      * sinh) only the outputs it reports, not every component's */
	double season;       /* seasonal components: the offset expected for this sample
	                      * (passed to later components as comp_ctx.season), else 0 */
};

struct comp_kind {
	const char *name; /* YAML `kind:` and det_result.component */
	const struct param_def *params;
	size_t nparams;   /* <= DET_MAX_PARAMS */
	size_t (*state_size)(const double *p);
	void (*init)(const double *p, void *state);
	/* Score the sample against the state, then learn from it. */
	void (*update)(const double *p, void *state, const struct comp_ctx *c, struct comp_out *o);
	/* Optional: prefetch the lines of state that update() will touch for a
	 * sample at ts_ms (NULL: the whole state is prefetched). */
	void (*prefetch)(const double *p, const void *state, int64_t ts_ms);
	/* Optional, with prefetch: the parts of the state every sample
	 * touches, at fixed offsets in it (at most 2 ranges: off[i], len[i]);
	 * model_prefetch asks for them with the model's other ranges, so
	 * prefetch() need only ask for the rest. Returns how many. */
	int (*prefetch_fixed)(const double *p, size_t off[2], size_t len[2]);
	/* Optional: called once when the model is loaded, after the parameters
	 * are read: fills p[DET_MAX_PARAMS ..] (at most DET_MAX_DERIVED) with
	 * constants update() would otherwise compute per sample. */
	void (*prepare)(double *p);
};

extern const struct comp_kind comp_level;
extern const struct comp_kind comp_seasonal;
extern const struct comp_kind comp_context;
extern const struct comp_kind comp_cusum;
extern const struct comp_kind comp_volatility;
extern const struct comp_kind comp_record;
extern const struct comp_kind comp_spike;
extern const struct comp_kind comp_changept;

/* Helpers shared by components (detect/common.c). */
/* EWMA weight for a half-life of `halflife` samples, raised to `steps`. */
double det_alpha(double halflife, double steps);
/* Same, but at least 1/(n+1) while n samples have been seen: a running mean
 * at the start, so estimates are not biased towards their zero initial value. */
double det_warm_alpha(double halflife, double steps, uint32_t n);
/* The same two with a1 = det_alpha(halflife, 1) computed beforehand
 * (comp_kind.prepare): on a regular series steps is 1 and the weight is
 * a1, bit for bit, without a call to exp2f. */
static inline double det_alpha1(double a1, double halflife, double steps)
{
	return steps == 1 ? a1 : det_alpha(halflife, steps);
}

static inline double det_warm_alpha1(double a1, double halflife, double steps, uint32_t n)
{
	double a = det_alpha1(a1, halflife, steps);
	double w = 1.0 / ((double)n + 1.0);
	return a > w ? a : w;
}
/* det_alpha(halflife, steps) where halflife depends on the series' sampling
 * interval (so prepare cannot compute it): the last arguments and result of
 * one call site, per thread, so that a run of series with the same interval
 * and steps (the usual case: the engine and the backtest see most series at
 * one interval) calls exp2f once, not per sample. A hit returns the double
 * det_alpha returned for equal arguments: the same bits. Sites are static
 * __thread memos initialised to DET_ALPHA_MEMO_INIT (NaN never compares
 * equal, so the first call computes). */
struct det_alpha_memo {
	double halflife, steps, a;
};
#define DET_ALPHA_MEMO_INIT { __builtin_nan(""), __builtin_nan(""), 0 }
static inline double det_alpha_at(struct det_alpha_memo *m, double halflife, double steps)
{
	if (halflife == m->halflife && steps == m->steps)
		return m->a;
	m->halflife = halflife;
	m->steps = steps;
	return m->a = det_alpha(halflife, steps);
}
/* The `log` option of level, seasonal, cusum and record: model asinh(x / m)
 * instead of x, where m is a slow EWMA of |x| (*mag, updated by
 * det_mag_learn with weight a). Close to x/m for |x| << m and to a
 * logarithm beyond, so multiplicative bursts (counts) are judged as ratios.
 * det_asinh_scale initialises *mag on the first sample (n == 0) and returns
 * the transformed value and, in *scale, the m used (> 0): x = scale * sinh(y). */
double det_asinh_scale(float *mag, uint32_t n, double x, double *scale);
void det_mag_learn(float *mag, double a, double x);

#endif
