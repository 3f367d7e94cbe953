/* detect/forecast_int.h — internal to detect/forecast*.c: the state layout,
 * its constants and the small helpers the grid step, the refit and the
 * prediction share (static inline: each file keeps its own inlined copy).
 * forecast.c: params, init, rings, the grid step and forecast_update();
 * forecast_fit.c: season detection and the refit of alpha and beta;
 * forecast_predict.c: forecast_predict(), time to breach and info.
 * Include after detect/forecast.h (struct forecast_params). */
#ifndef FORESHOCK_DETECT_FORECAST_INT_H
#define FORESHOCK_DETECT_FORECAST_INT_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS_HOUR 3600000LL
#define MS_DAY 86400000LL
#define MS_WEEK (7 * MS_DAY)

#define NWARM 24    /* samples collected before the grid step is chosen */
#define NFINE 112   /* recent grid values kept for the refit */
#define NCOARSE 112 /* 3-hourly means kept for season detection (14 days) */
#define NDAILY 48   /* daily profile bins (30 min at a 1 day period) */
#define NWEEKLY 56  /* weekly profile bins (3 h) */
#define NVOL 24     /* time-of-day volatility bins (1 h) */
#define NBUCKET 7   /* error-tracking horizons 1, 3, 9, ..., 729 grid steps */
#define NSLOT 3     /* pending forecasts per horizon */
#define NQ 5        /* tracked quantiles of the standardised error */
#define NMIN_ERR 5  /* errors needed before the 1-step bucket is used */
#define NMIN_ERR_LONG 20 /* ... and before a longer horizon bucket is used */
#define SLOT_FREE UINT32_MAX
#define NGRID_A 6   /* refit candidates: alpha values x beta values */
#define NGRID_B 2
#define MAGIC 0x46435331u /* "FCS1" */

#define SEASON_DAILY 1
#define SEASON_WEEKLY 2

static const double qtau[NQ] = { 0.025, 0.10, 0.50, 0.90, 0.975 };
/* Standardised by the mean absolute error, a normal error has these quantiles. */
static const double qinit[NQ] = { -2.456, -1.606, 0.0, 1.606, 2.456 };

/* Errors of forecasts made h = 3^b grid steps ahead. */
struct err_bucket {
	float scale;             /* EWMA of |error| (model space) */
	float q[NQ];             /* quantiles of error / scale */
	uint32_t n;              /* errors seen */
	uint32_t slot_k[NSLOT];  /* grid index a pending forecast is for, SLOT_FREE */
	float slot_f[NSLOT];     /* the pending forecast (model space) */
};

struct fstate {
	uint32_t magic;
	uint8_t running;         /* 0 while collecting the first NWARM samples */
	uint8_t mult;            /* model runs on log(y + offset) */
	uint8_t mode_decided;    /* additive/multiplicative decided (AUTO mode) */
	uint8_t season;          /* SEASON_DAILY | SEASON_WEEKLY, as detected */
	int8_t clip_run;         /* +-n: the last n level errors were all beyond the cap */
	uint16_t nwarm;          /* samples in u.w */
	uint16_t fine_len, coarse_len, coarse_head;
	uint16_t fine_head, coarse_since_detect;
	int64_t step_ms;         /* grid step */
	int64_t t0_ms;           /* grid origin (multiple of step_ms) */
	int64_t res_ms;          /* coarse ring resolution */
	int64_t open_k;          /* grid bucket being filled */
	int64_t last_k;          /* last closed bucket with data, -1 none */
	int64_t prof_k;          /* grid index when the profiles started learning, -1 */
	int64_t fine_last_k;     /* grid index of the newest fine ring entry */
	int64_t coarse_idx;      /* coarse bucket being filled (absolute: ts / res_ms) */
	int64_t last_ts;
	double acc_sum;          /* open grid bucket */
	double coarse_sum;       /* open coarse bucket */
	uint32_t acc_n, coarse_n;
	uint32_t samples, dropped; /* with the fields above: what a sample that closes
	                          * no bucket touches, in the first 128 bytes */
	double level, trend;     /* model space */
	double slow;             /* baseline the profiles learn deviations from: mean of
	                          * the last day (week, once weekly) of the coarse ring,
	                          * model space; NAN until a day is there */
	double offset;           /* c in log(y + c) */
	double fine_ref, coarse_ref; /* rings store value - ref as bfloat16 */
	float alpha, beta;
	float acf_d, acf_w;
	float dev_scale;         /* EWMA |deviation from baseline|: caps profile steps */
	uint32_t dev_n;
	float fit_score[NGRID_A * NGRID_B]; /* running refit score per candidate */
	uint16_t vol[NVOL];      /* bfloat16 EWMA of |one-step error| by time of day, NAN
	                          * until visited: h-step errors are measured in its units */
	uint32_t steps_since_refit;
	uint32_t steps, refits;
	struct err_bucket eb[NBUCKET];
	float daily[NDAILY];     /* seasonal profiles, model space, always learnt */
	float weekly[NWEEKLY];
	union {
		struct {
			uint16_t fine[NFINE];
			uint16_t coarse[NCOARSE];
		} r;
		struct {
			int64_t ts[NWARM];
			double v[NWARM];
		} w;
	} u;
};

_Static_assert(sizeof(struct fstate) <= FORECAST_STATE_MAX, "forecast state too big");

static const uint32_t horizon_steps[NBUCKET] = { 1, 3, 9, 27, 81, 243, 729 };

/* ---- small helpers ---- */

static inline uint16_t bf16_enc(double d)
{
	float f = (float)d;
	uint32_t u;
	if (isnan(f))
		return 0x7fc0;
	memcpy(&u, &f, 4);
	u += 0x7fff + ((u >> 16) & 1); /* round to nearest even */
	return (uint16_t)(u >> 16);
}

static inline double bf16_dec(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static inline int64_t mod_pos(int64_t a, int64_t m)
{
	int64_t r = a % m;
	return r < 0 ? r + m : r;
}

/* Sum_{i=1..m} phi^i for real m >= 0. */
/* pow(x, m) for the step counts m of the smoothing recursions: m is 1 on
 * every regular step, and pow(x, 1) == x exactly, so skip the libm call
 * (it was a fifth of the ingest profile). */
static inline double powm(double x, double m)
{
	return m == 1 ? x : pow(x, m);
}

static inline double damp_sum(double phi, double m)
{
	if (m <= 0)
		return 0;
	if (phi >= 1.0)
		return m;
	return phi * (1.0 - powm(phi, m)) / (1.0 - phi);
}

static inline double to_model(const struct fstate *s, double y)
{
	if (!s->mult)
		return y;
	return log((y > 0 ? y : 0) + s->offset);
}

static inline double from_model(const struct fstate *s, double z)
{
	if (!s->mult)
		return z;
	if (z > 700)
		z = 700;
	return exp(z) - s->offset;
}

/* fmin/fmax without the libm call (same results, NaN included: a NaN
 * argument yields the other one). */
static inline double fmax_(double a, double b)
{
	return a > b || isnan(b) ? a : b;
}

static inline double fmin_(double a, double b)
{
	return a < b || isnan(b) ? a : b;
}

/* Linear interpolation position in a profile of nb bins: bins i0 and i1,
 * weight w of i1. */
struct ppos {
	int i0, i1;
	double w;
};

/* Linear interpolation position of time t in a profile of nb bins over
 * period, from its phase r = mod_pos(t, period) (0 <= r < period). close_bucket
 * computes the phases of a step once (the day phase is the week phase mod a
 * day) and passes the positions to the _at functions below. */
static inline struct ppos ppos_at(int64_t r, int64_t period, int nb)
{
	double ph = (double)r / (double)period * nb;
	int i = (int)ph;
	if (i >= nb)
		i = nb - 1;
	return (struct ppos){ i, i + 1 < nb ? i + 1 : 0, ph - i };
}

/* Profile bins hold NAN until first visited; a missing bin reads as 0. */
static inline double profile_get_at(const float *prof, struct ppos q)
{
	double a = isnan(prof[q.i0]) ? 0 : prof[q.i0], b = isnan(prof[q.i1]) ? 0 : prof[q.i1];
	return (1 - q.w) * a + q.w * b;
}

static inline double profile_get(const float *prof, int nb, int64_t period, int64_t t)
{
	return profile_get_at(prof, ppos_at(mod_pos(t, period), period, nb));
}

/* Move the two bins around t towards x with weights g*(1-w) and g*w (a
 * kernel-weighted EWMA per bin); an unvisited bin takes x at its first
 * visit from its own half. */
static inline double clampd(double x, double lim)
{
	return x > lim ? lim : x < -lim ? -lim : x;
}

/* lim > 0 caps the step towards x (robust to spikes). */
static inline void profile_learn_at(float *prof, struct ppos q, double x, double g, double lim)
{
	int idx[2] = { q.i0, q.i1 };
	double om[2] = { 1 - q.w, q.w };
	for (int j = 0; j < 2; j++) {
		float *b = &prof[idx[j]];
		if (isnan(*b)) {
			if (om[j] >= 0.5)
				*b = (float)(lim > 0 ? clampd(x, lim) : x);
		} else {
			double d = x - *b;
			*b += (float)(g * om[j] * (lim > 0 ? clampd(d, lim) : d));
		}
	}
}

static inline double season_daily(const struct fstate *s, int64_t t)
{
	return profile_get(s->daily, NDAILY, MS_DAY, t);
}

static inline double season_weekly(const struct fstate *s, int64_t t)
{
	return profile_get(s->weekly, NWEEKLY, MS_WEEK, t);
}

/* The seasonal term the model uses (detected components only). */
static inline double season_used(const struct fstate *s, int64_t t)
{
	double v = 0;
	if (s->season & SEASON_DAILY)
		v += season_daily(s, t);
	if (s->season & SEASON_WEEKLY)
		v += season_weekly(s, t);
	return v;
}

/* Time-of-day volatility: |one-step error| by hour, relative to its mean
 * over the day. 1 until every hour has been seen. */
static inline double vol_ratio_at(const struct fstate *s, struct ppos q)
{
	double sum = 0;
	for (int i = 0; i < NVOL; i++) {
		double v = bf16_dec(s->vol[i]);
		if (isnan(v))
			return 1;
		sum += v;
	}
	if (!(sum > 0))
		return 1;
	double r = ((1 - q.w) * bf16_dec(s->vol[q.i0]) + q.w * bf16_dec(s->vol[q.i1])) / (sum / NVOL);
	return r < 0.2 ? 0.2 : r > 5 ? 5 : r;
}

static inline double vol_ratio(const struct fstate *s, int64_t t)
{
	return vol_ratio_at(s, ppos_at(mod_pos(t, MS_DAY), MS_DAY, NVOL));
}

static inline void vol_learn_at(struct fstate *s, struct ppos q, double abs_err, double g)
{
	int idx[2] = { q.i0, q.i1 };
	double om[2] = { 1 - q.w, q.w };
	for (int j = 0; j < 2; j++) {
		double v = bf16_dec(s->vol[idx[j]]);
		if (isnan(v)) {
			if (om[j] >= 0.5)
				s->vol[idx[j]] = bf16_enc(abs_err);
		} else {
			s->vol[idx[j]] = bf16_enc(v + g * om[j] * (abs_err - v));
		}
	}
}

static inline void vol_reset(struct fstate *s)
{
	for (int i = 0; i < NVOL; i++)
		s->vol[i] = bf16_enc(NAN);
}

static inline int64_t bucket_time(const struct fstate *s, int64_t k)
{
	return s->t0_ms + k * s->step_ms + s->step_ms / 2;
}

/* ---- ring reads (forecast.c writes them) ---- */

/* i = 0 is the oldest entry. */
static inline double fine_get(const struct fstate *s, int i)
{
	int idx = (s->fine_head - s->fine_len + i + 2 * NFINE) % NFINE;
	return bf16_dec(s->u.r.fine[idx]) + s->fine_ref;
}

static inline double coarse_get(const struct fstate *s, int i)
{
	int idx = (s->coarse_head - s->coarse_len + i + 2 * NCOARSE) % NCOARSE;
	return bf16_dec(s->u.r.coarse[idx]) + s->coarse_ref;
}

/* forecast_fit.c: re-detect the seasonality (every day of data) and refit
 * alpha and beta (every NFINE grid steps); both rebase the rings. */
void forecast_detect_season(const struct forecast_params *p, struct fstate *s);
void forecast_refit(const struct forecast_params *p, struct fstate *s);

#endif
