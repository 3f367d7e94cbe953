/* detect/forecast.h — streaming per-series seasonal forecaster: point forecasts,
 * 80%/95% prediction intervals and time-to-breach for one metric series.
 *
 * Model (details and mathematics in docs/forecasting.md): samples are bucketed
 * onto a regular grid whose step is chosen from the median sampling interval
 * of the first samples; a damped-trend exponential-smoothing model with a
 * daily and a weekly seasonal profile runs on that grid (in log space when the
 * seasonal amplitude scales with the level). Daily/weekly seasonality is
 * detected from a downsampled history by autocorrelation (GSL), and the
 * smoothing constants are refitted on the recent history (a candidate grid
 * scored over many windows, or GSL Nelder-Mead on the last window); both run
 * rarely, with bounded work. Prediction intervals come from empirical,
 * online-tracked quantiles of the realised h-step errors per horizon bucket,
 * scaled by a time-of-day profile of the error size.
 *
 * Memory and ownership: the per-series state is one fixed-size block of plain
 * data (no pointers) of forecast_state_size() bytes (<= FORECAST_STATE_MAX),
 * owned by the caller (pool it, checkpoint it as bytes; it must be 8-byte
 * aligned). forecast_update() never allocates; only fit=2 (Nelder-Mead)
 * allocates a GSL minimiser during the rare refit and frees it. No global
 * state: different states may be used from different threads; one state must
 * not be updated and read at the same time.
 *
 * GSL: the refit calls GSL functions that report errors through GSL's error
 * handler; the programs call gsl_set_error_handler_off() at start-up so that a
 * GSL failure makes the refit keep the old constants instead of aborting.
 *
 * Dependencies: libc, libm, GSL. Nothing above this module.
 */
#ifndef FORESHOCK_FORECAST_H
#define FORESHOCK_FORECAST_H

#include <stddef.h>
#include <stdint.h>

#define FORECAST_STATE_MAX 1536 /* bytes; compile-time checked in forecast.c */

enum forecast_mode {
	FORECAST_MODE_AUTO = 0,           /* decide from the data (once, after ~4 days) */
	FORECAST_MODE_ADDITIVE = 1,       /* y = level + season + noise */
	FORECAST_MODE_MULTIPLICATIVE = 2, /* log(y + c) additive: season scales with level */
};

/* Tuning. A plain struct of numbers so the model loader can fill it from YAML;
 * start from forecast_params_default(). The same params must be passed to every
 * call on a given state. */
struct forecast_params {
	double alpha;            /* level smoothing per grid step (initial; refitted when fit>0) */
	double beta;             /* trend smoothing, as a fraction of alpha (initial; refitted) */
	double phi;              /* trend damping per step, 0..1 (fixed) */
	double gamma_daily;      /* daily profile smoothing per visit (fixed) */
	double gamma_weekly;     /* weekly profile smoothing per visit (fixed) */
	int fit;                 /* refit alpha and beta every 112 grid steps: 0 never,
	                          * 1 grid of 6x2 candidates scored by a running mean over
	                          * refit windows (default), 2 GSL Nelder-Mead on the last
	                          * window only (noisier; kept for comparison) */
	int64_t fit_horizon_ms;  /* the fit minimises 1-step + this-horizon absolute error */
	int detect_season;       /* 1: detect daily/weekly seasonality; 0: never seasonal */
	int mode;                /* enum forecast_mode */
	double acf_threshold;    /* autocorrelation at the seasonal lag needed to call a season */
	int64_t min_step_ms;     /* grid step bounds; the step is the median interval, */
	int64_t max_step_ms;     /*   rounded to a "nice" value, clamped to these */
	uint32_t min_steps;      /* grid steps with data before forecasts are given */
	double quantile_rate;    /* floor of the online quantile step size */
	double scale_rate;       /* floor of the online error-scale EWMA rate */
	int median_correct;      /* 1: point forecast is the predictive median (learned bias) */
	double huber_k;          /* level/trend errors are capped at this many mean abs errors
	                          * (robust to spikes); 0: no cap */
	uint32_t shift_run;      /* ... except after this many capped errors in a row on one
	                          * side (a level shift, not a spike) */
	double profile_clip;     /* seasonal profile steps capped at this many mean abs
	                          * deviations from the baseline; 0: no cap */
};

/* Fill *p with the defaults documented in docs/forecasting.md. */
void forecast_params_default(struct forecast_params *p);

/* Bytes needed for one state (constant; <= FORECAST_STATE_MAX). */
size_t forecast_state_size(const struct forecast_params *p);

/* Initialise a caller-owned block of forecast_state_size() bytes. */
void forecast_state_init(const struct forecast_params *p, void *state);

/* Feed one sample. Timestamps should be non-decreasing; a sample older than the
 * grid bucket being filled is dropped (counted in forecast_info.dropped), as
 * are NaN/inf values, |value| > 1e30 and |ts_ms| > 1e14 (3000 years). O(1) amortised; no allocation except during the rare
 * refit (see above). */
void forecast_update(const struct forecast_params *p, void *state, int64_t ts_ms, double value);

struct forecast_point {
	int64_t ts_ms;
	double mean;             /* point forecast (the predictive median when median_correct=1) */
	double lo80, hi80;       /* 80% central prediction interval */
	double lo95, hi95;       /* 95% central prediction interval */
};

/* Forecast n points at from_ms, from_ms + step_ms, ... into out[n] (caller-owned).
 * Times before the last data are treated as the last data's time. Returns 0, or
 * -1 if there is not enough history yet (or n == 0 / step_ms < 0). */
int forecast_predict(const struct forecast_params *p, const void *state, int64_t from_ms,
                     int64_t step_ms, size_t n, struct forecast_point *out);

/* What a series' unit allows, from its metric name (the Prometheus naming
 * conventions): [0, 1] for names ending in `_ratio`, [0, 100] for `_percent`,
 * [0, +inf) for durations, sizes, counts and their derived rates and
 * quantiles (`_seconds`, `_bytes`, `_total`, `_count`, `_bucket`, `_sum` of
 * seconds/bytes, `foreshock:rate:`, `foreshock:pNN:` prefixes), else
 * (-inf, +inf). `name` is the metric name or a series key (the name ends at
 * the first '{'). Returns 1 when a bound applies, 0 otherwise. */
int forecast_unit_range(const char *name, double *lo, double *hi);

/* Clip the mean and the bands of out[n] to [lo, hi] (a band never extends
 * beyond what the unit allows: no negative latency, ratios in [0, 1]). */
void forecast_clip(struct forecast_point *out, size_t n, double lo, double hi);

struct breach {
	int mean_crosses;        /* 1 if the point forecast crosses the limit within the horizon */
	int64_t mean_at_ms;      /*   when (interpolated); 0 if it does not */
	int upper_crosses;       /* 1 if the 95% bound on the breach side crosses (hi95 when
	                          * above, lo95 when below) */
	int64_t upper_at_ms;     /*   when; 0 if it does not */
	double probability;      /* P(breach at some time in the horizon), approximated by the
	                          * largest per-time exceedance probability (a lower bound) */
};

/* Time to breach of `limit` within [now_ms, now_ms + horizon_ms]; above=1 means
 * a breach is value > limit, above=0 means value < limit. A limit already breached
 * at now_ms crosses at now_ms. Returns 0, or -1 if not enough history. */
int forecast_time_to_breach(const struct forecast_params *p, const void *state, int64_t now_ms,
                            int64_t horizon_ms, double limit, int above, struct breach *out);

/* Detected season: 7 days, 1 day, or 0 if none (yet). */
int64_t forecast_period_ms(const void *state);

/* Read-only summary, for the API and the CLI. */
struct forecast_info {
	int ready;               /* forecast_predict would succeed with default params */
	int64_t step_ms;         /* grid step, 0 while still collecting the first samples */
	int64_t period_ms;       /* as forecast_period_ms */
	int multiplicative;      /* 1 if the model runs on log(y + offset) */
	double offset;           /* the log offset c when multiplicative */
	double alpha, beta;      /* current smoothing constants */
	double acf_daily, acf_weekly; /* autocorrelations at the last detection */
	uint64_t samples, steps, dropped, refits;
	int64_t last_ts_ms;      /* newest sample accepted */
};
void forecast_info_get(const void *state, struct forecast_info *out);

#endif
