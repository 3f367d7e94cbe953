/* detect/forecast.c — streaming per-series seasonal forecaster (see forecast.h and
 * docs/forecasting.md for the model, the intervals and time-to-breach).
 *
 * Layout of the work: forecast_update() buckets samples onto a grid; closing a
 * grid bucket runs one damped-trend exponential-smoothing step, updates the
 * seasonal profiles, resolves/issues the pending forecasts that measure h-step
 * errors, and appends to two small rings (the recent grid values, for the
 * refit, and 3-hourly means, for season detection and the profiles'
 * baseline). Every NFINE grid steps the smoothing constants are refitted
 * (12 candidates x <= 112 points, or Nelder-Mead <= 60 iterations x <= 112
 * points); every day of data the seasonality is re-detected (autocorrelation
 * over <= 112 points). Both are bounded; only Nelder-Mead allocates.
 */
#include "config.h"

#include "detect/forecast.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>

#include <gsl/gsl_fit.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_statistics_double.h>
#include <gsl/gsl_vector.h>

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

static uint16_t bf16_enc(double d)
{
	float f = (float)d;
	uint32_t u;
	if (isnan(f))
		return 0x7fc0;
	memcpy(&u, &f, 4);
	u += 0x7fff + ((u >> 16) & 1); /* round to nearest even */
	return (uint16_t)(u >> 16);
}

static double bf16_dec(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, 4);
	return f;
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if ((a % b != 0) && ((a < 0) != (b < 0)))
		q--;
	return q;
}

static int64_t mod_pos(int64_t a, int64_t m)
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

static double damp_sum(double phi, double m)
{
	if (m <= 0)
		return 0;
	if (phi >= 1.0)
		return m;
	return phi * (1.0 - powm(phi, m)) / (1.0 - phi);
}

static double to_model(const struct fstate *s, double y)
{
	if (!s->mult)
		return y;
	return log((y > 0 ? y : 0) + s->offset);
}

static double from_model(const struct fstate *s, double z)
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

static double profile_get(const float *prof, int nb, int64_t period, int64_t t)
{
	return profile_get_at(prof, ppos_at(mod_pos(t, period), period, nb));
}

/* Move the two bins around t towards x with weights g*(1-w) and g*w (a
 * kernel-weighted EWMA per bin); an unvisited bin takes x at its first
 * visit from its own half. */
static double clampd(double x, double lim)
{
	return x > lim ? lim : x < -lim ? -lim : x;
}

/* lim > 0 caps the step towards x (robust to spikes). */
static void profile_learn_at(float *prof, struct ppos q, double x, double g, double lim)
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

static double season_daily(const struct fstate *s, int64_t t)
{
	return profile_get(s->daily, NDAILY, MS_DAY, t);
}

static double season_weekly(const struct fstate *s, int64_t t)
{
	return profile_get(s->weekly, NWEEKLY, MS_WEEK, t);
}

/* The seasonal term the model uses (detected components only). */
static double season_used(const struct fstate *s, int64_t t)
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
static double vol_ratio_at(const struct fstate *s, struct ppos q)
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

static double vol_ratio(const struct fstate *s, int64_t t)
{
	return vol_ratio_at(s, ppos_at(mod_pos(t, MS_DAY), MS_DAY, NVOL));
}

static void vol_learn_at(struct fstate *s, struct ppos q, double abs_err, double g)
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

static void vol_reset(struct fstate *s)
{
	for (int i = 0; i < NVOL; i++)
		s->vol[i] = bf16_enc(NAN);
}

static int64_t bucket_time(const struct fstate *s, int64_t k)
{
	return s->t0_ms + k * s->step_ms + s->step_ms / 2;
}

/* ---- params and init ---- */

void forecast_params_default(struct forecast_params *p)
{
	memset(p, 0, sizeof(*p));
	p->alpha = 0.2;
	p->beta = 0.05;
	p->phi = 0.98;
	p->gamma_daily = 0.1;
	p->gamma_weekly = 0.05;
	p->fit = 1;
	p->fit_horizon_ms = MS_HOUR;
	p->detect_season = 1;
	p->mode = FORECAST_MODE_AUTO;
	p->acf_threshold = 0.3;
	p->min_step_ms = 60000; /* 1 min: finer grids cost a bucket close per sample for no gain at the 15 min - 1 h horizons */
	p->max_step_ms = MS_DAY;
	p->min_steps = 12;
	p->quantile_rate = 0.02;
	p->scale_rate = 0.05;
	p->median_correct = 1;
	p->huber_k = 3.0;
	p->profile_clip = 4.0;
	p->shift_run = 6;
}

size_t forecast_state_size(const struct forecast_params *p)
{
	(void)p;
	return sizeof(struct fstate);
}

void forecast_state_init(const struct forecast_params *p, void *state)
{
	struct fstate *s = state;
	memset(s, 0, sizeof(*s));
	s->magic = MAGIC;
	s->last_k = -1;
	s->prof_k = -1;
	s->slow = NAN;
	for (int i = 0; i < NDAILY; i++)
		s->daily[i] = NAN;
	for (int i = 0; i < NWEEKLY; i++)
		s->weekly[i] = NAN;
	vol_reset(s);
	s->alpha = (float)p->alpha;
	s->beta = (float)p->beta;
	s->mult = p->mode == FORECAST_MODE_MULTIPLICATIVE;
	s->mode_decided = p->mode != FORECAST_MODE_AUTO;
	for (int b = 0; b < NBUCKET; b++) {
		for (int i = 0; i < NQ; i++)
			s->eb[b].q[i] = (float)qinit[i];
		for (int j = 0; j < NSLOT; j++)
			s->eb[b].slot_k[j] = SLOT_FREE;
	}
}

/* ---- rings ---- */

static void fine_push(struct fstate *s, double y)
{
	if (s->fine_len == 0)
		s->fine_ref = y;
	s->u.r.fine[s->fine_head] = bf16_enc(isnan(y) ? NAN : y - s->fine_ref);
	s->fine_head = (uint16_t)((s->fine_head + 1) % NFINE);
	if (s->fine_len < NFINE)
		s->fine_len++;
}

/* i = 0 is the oldest entry. */
static double fine_get(const struct fstate *s, int i)
{
	int idx = (s->fine_head - s->fine_len + i + 2 * NFINE) % NFINE;
	return bf16_dec(s->u.r.fine[idx]) + s->fine_ref;
}

static void baseline_update(struct fstate *s);

static void coarse_push(struct fstate *s, double y)
{
	if (s->coarse_len == 0 && !isnan(y))
		s->coarse_ref = y;
	s->u.r.coarse[s->coarse_head] = bf16_enc(isnan(y) ? NAN : y - s->coarse_ref);
	s->coarse_head = (uint16_t)((s->coarse_head + 1) % NCOARSE);
	if (s->coarse_len < NCOARSE)
		s->coarse_len++;
	s->coarse_since_detect++;
	baseline_update(s);
}

static double coarse_get(const struct fstate *s, int i)
{
	int idx = (s->coarse_head - s->coarse_len + i + 2 * NCOARSE) % NCOARSE;
	return bf16_dec(s->u.r.coarse[idx]) + s->coarse_ref;
}

/* Baseline for the profiles: mean of the last day (a week when the weekly
 * season is on and a week is there) of coarse means, minus the profiles'
 * mean over the same span (zero once renormalised). A boxcar over whole
 * periods cancels the cycle exactly; it lags a trend by half the window,
 * which is the same at every phase and so does not bias the profile shape. */
static void baseline_update(struct fstate *s)
{
	int per_day = (int)(MS_DAY / s->res_ms);
	int w = per_day;
	if ((s->season & SEASON_WEEKLY) && s->coarse_len >= 7 * per_day)
		w = 7 * per_day;
	if (per_day < 1 || s->coarse_len < w)
		return;
	double sum = 0;
	int n = 0;
	for (int i = s->coarse_len - w; i < s->coarse_len; i++) {
		double v = coarse_get(s, i);
		if (isnan(v))
			continue;
		sum += s->mult ? log((v > 0 ? v : 0) + s->offset) : v;
		n++;
	}
	if (n * 4 >= w * 3)
		s->slow = sum / n;
}

/* Re-encode both rings around their current means so bfloat16 keeps precision
 * when the level drifts. O(ring). */
static void rings_rebase(struct fstate *s)
{
	double v[NFINE > NCOARSE ? NFINE : NCOARSE];
	double sum = 0;
	int n = 0, len = s->fine_len;
	for (int i = 0; i < len; i++) {
		v[i] = fine_get(s, i);
		if (!isnan(v[i])) {
			sum += v[i];
			n++;
		}
	}
	if (n > 0) {
		s->fine_ref = sum / n;
		for (int i = 0; i < len; i++) {
			int idx = (s->fine_head - len + i + 2 * NFINE) % NFINE;
			s->u.r.fine[idx] = bf16_enc(isnan(v[i]) ? NAN : v[i] - s->fine_ref);
		}
	}
	sum = 0;
	n = 0;
	len = s->coarse_len;
	for (int i = 0; i < len; i++) {
		v[i] = coarse_get(s, i);
		if (!isnan(v[i])) {
			sum += v[i];
			n++;
		}
	}
	if (n > 0) {
		s->coarse_ref = sum / n;
		for (int i = 0; i < len; i++) {
			int idx = (s->coarse_head - len + i + 2 * NCOARSE) % NCOARSE;
			s->u.r.coarse[idx] = bf16_enc(isnan(v[i]) ? NAN : v[i] - s->coarse_ref);
		}
	}
}

/* ---- season detection and additive/multiplicative choice ---- */

/* Correlation of x[i] and x[i+lag] over pairs where both are present. */
static double lag_corr(const double *x, int n, int lag, int *npairs)
{
	double a[NCOARSE], b[NCOARSE];
	int m = 0;
	for (int i = 0; i + lag < n; i++) {
		if (isnan(x[i]) || isnan(x[i + lag]))
			continue;
		a[m] = x[i];
		b[m] = x[i + lag];
		m++;
	}
	*npairs = m;
	if (m < 4)
		return 0;
	double r = gsl_stats_correlation(a, 1, b, 1, (size_t)m);
	return isfinite(r) ? r : 0;
}

/* Switch the running model to log(y + c) space, keeping the current fitted
 * value; the profiles are relearnt. */
static void switch_to_log(struct fstate *s, double c)
{
	int64_t t = bucket_time(s, s->last_k);
	double fitted = s->level + season_used(s, t); /* raw space */
	double ref = (isnan(s->slow) ? s->level : s->slow) + c;
	if (!(ref > 0))
		ref = c > 0 ? c : 1;
	s->offset = c;
	s->mult = 1;
	if (!isnan(s->slow))
		s->slow = log(ref);
	/* Converting additive profiles bin by bin amplifies their noise (a bin
	 * below -ref has no logarithm): relearn them in log space instead. */
	for (int i = 0; i < NDAILY; i++)
		s->daily[i] = NAN;
	for (int i = 0; i < NWEEKLY; i++)
		s->weekly[i] = NAN;
	s->prof_k = -1;
	vol_reset(s);
	s->dev_n = 0;
	s->dev_scale = 0;
	double fz = fitted + c > 0.05 * ref ? fitted + c : 0.05 * ref;
	s->level = log(fz);
	s->trend = s->trend / fz;
	for (int b = 0; b < NBUCKET; b++) {
		struct err_bucket *e = &s->eb[b];
		e->scale = (float)(e->scale / fz);
		for (int j = 0; j < NSLOT; j++)
			if (e->slot_k[j] != SLOT_FREE) {
				double f = e->slot_f[j];
				e->slot_f[j] = (float)log((f > 0 ? f : 0) + c);
			}
	}
}

/* Multiplicative if the within-day spread grows with the daily mean:
 * slope of log(sd_day) on log(mean_day) > 0.5 over >= 4 days whose means
 * vary by >= 10%, all values >= 0. */
static void decide_mode(struct fstate *s, const double *x, int n, int per_day)
{
	double dm[NCOARSE / 2];
	int dok[NCOARSE / 2];
	int nd = 0, ndays = n / per_day;
	double sum = 0;
	int cnt = 0;
	for (int i = 0; i < n; i++) {
		if (isnan(x[i]))
			continue;
		if (x[i] < 0) {
			s->mode_decided = 1; /* negative values: additive for good */
			return;
		}
		sum += x[i];
		cnt++;
	}
	for (int d = 0; d < ndays; d++) {
		double v[NCOARSE];
		int m = 0;
		for (int i = d * per_day; i < (d + 1) * per_day; i++)
			if (!isnan(x[i]))
				v[m++] = x[i];
		dok[d] = m >= (per_day * 3) / 4 && m >= 3;
		dm[d] = dok[d] ? gsl_stats_mean(v, 1, (size_t)m) : NAN;
		if (dok[d] && !(dm[d] > 0))
			dok[d] = 0;
		nd += dok[d];
	}
	if (nd < 4 || cnt == 0)
		return; /* not enough whole days yet: decide later */
	s->mode_decided = 1;
	/* In-sample fit of day mean + additive profile vs day mean x profile. */
	double pa[NCOARSE], pm[NCOARSE];
	int pn[NCOARSE];
	for (int j = 0; j < per_day; j++) {
		pa[j] = pm[j] = 0;
		pn[j] = 0;
	}
	for (int d = 0; d < ndays; d++)
		for (int j = 0; dok[d] && j < per_day; j++) {
			double v = x[d * per_day + j];
			if (isnan(v))
				continue;
			pa[j] += v - dm[d];
			pm[j] += v / dm[d];
			pn[j]++;
		}
	double ea = 0, em = 0;
	for (int d = 0; d < ndays; d++)
		for (int j = 0; dok[d] && j < per_day; j++) {
			double v = x[d * per_day + j];
			if (isnan(v) || !pn[j])
				continue;
			ea += fabs(v - dm[d] - pa[j] / pn[j]);
			em += fabs(v - dm[d] * pm[j] / pn[j]);
		}
	/* Spread growing with the level: slope of log(day sd) on log(day mean). */
	double lm[NCOARSE / 2], ls[NCOARSE / 2];
	int nl = 0;
	for (int d = 0; d < ndays; d++) {
		if (!dok[d])
			continue;
		double v[NCOARSE];
		int m = 0;
		for (int i = d * per_day; i < (d + 1) * per_day; i++)
			if (!isnan(x[i]))
				v[m++] = x[i];
		double sd = gsl_stats_sd_m(v, 1, (size_t)m, dm[d]);
		if (!(sd > 0))
			continue;
		lm[nl] = log(dm[d]);
		ls[nl] = log(sd);
		nl++;
	}
	double slope = 0, c0, cov00, cov01, cov11, sumsq;
	if (nl >= 4 && gsl_stats_sd(lm, 1, (size_t)nl) > 0.1 &&
	    gsl_fit_linear(lm, 1, ls, 1, (size_t)nl, &c0, &slope, &cov00, &cov01, &cov11, &sumsq))
		slope = 0;
	if (em < 0.9 * ea || slope > 0.5)
		switch_to_log(s, 0.2 * sum / cnt + 1e-9);
}

static void detect_season(const struct forecast_params *p, struct fstate *s)
{
	int n = s->coarse_len;
	double x[NCOARSE] = { 0 }, r[NCOARSE] = { 0 }, ma[NCOARSE] = { 0 };
	int per_day = (int)(MS_DAY / s->res_ms);
	s->coarse_since_detect = 0;
	if (per_day < 2)
		return;
	for (int i = 0; i < n; i++)
		x[i] = coarse_get(s, i);
	if (!s->mode_decided && n >= 4 * per_day)
		decide_mode(s, x, n, per_day);
	if (s->mult)
		for (int i = 0; i < n; i++)
			if (!isnan(x[i]))
				x[i] = log((x[i] > 0 ? x[i] : 0) + s->offset);

	/* Daily: autocorrelation at one day of x minus its centred one-day
	 * moving average (removes level shifts and trends, keeps the cycle). */
	int half = per_day / 2;
	for (int i = 0; i < n; i++) {
		double sum = 0, wsum = 0;
		for (int j = -half; j <= half; j++) {
			int k = i + j;
			if (k < 0 || k >= n || isnan(x[k]))
				continue;
			double w = (j == -half || j == half) && per_day % 2 == 0 ? 0.5 : 1.0;
			sum += w * x[k];
			wsum += w;
		}
		ma[i] = (wsum >= 0.5 * per_day && i >= half && i + half < n) ? sum / wsum : NAN;
		r[i] = isnan(x[i]) || isnan(ma[i]) ? NAN : x[i] - ma[i];
	}
	int np;
	double rd = lag_corr(r, n, per_day, &np);
	int daily = np >= per_day && rd > p->acf_threshold;

	/* Weekly: autocorrelation at 7 days of the linearly detrended series must
	 * beat the one at 1 day (same weekday resembles more than yesterday). */
	double xi[NCOARSE], xv[NCOARSE];
	int m = 0;
	for (int i = 0; i < n; i++)
		if (!isnan(x[i])) {
			xi[m] = i;
			xv[m] = x[i];
			m++;
		}
	double rw = 0;
	int weekly = 0;
	if (m >= 8) {
		double c0, c1, cov00, cov01, cov11, sumsq;
		if (gsl_fit_linear(xi, 1, xv, 1, (size_t)m, &c0, &c1, &cov00, &cov01, &cov11, &sumsq) == 0) {
			for (int i = 0; i < n; i++)
				r[i] = isnan(x[i]) ? NAN : x[i] - (c0 + c1 * i);
			int npw, npd;
			rw = lag_corr(r, n, 7 * per_day, &npw);
			double rd1 = lag_corr(r, n, per_day, &npd);
			weekly = npw >= per_day * 5 && rw > p->acf_threshold && rw > rd1 + 0.1;
		}
	}
	s->acf_d = (float)rd;
	s->acf_w = (float)rw;
	if (p->detect_season)
		s->season = (uint8_t)((daily ? SEASON_DAILY : 0) | (weekly ? SEASON_WEEKLY : 0));
	rings_rebase(s);
}

/* ---- refit of alpha and beta ---- */

#define NCAND (NGRID_A * NGRID_B)

/* The refit's data and what every candidate shares (phi is fixed): the
 * present values after the first, the gap m before each and the damping
 * factors of that gap, all computed once per refit by fit_prepare(). */
struct fit_data {
	const double *x;         /* deseasonalised model-space values, NAN = missing */
	int n;
	int h;                   /* second horizon in the objective, grid steps */
	double phi;
	int first;               /* index of the first present value, -1 if none */
	int np;                  /* present values after it */
	int idx[NFINE];          /* their indices */
	int gap[NFINE];          /* m = idx - previous present index */
	double dsum[NFINE];      /* damp_sum(phi, m) */
	double pm[NFINE];        /* powm(phi, m) */
	double dh;               /* damp_sum(phi, h) */
};

static void fit_prepare(struct fit_data *d, const double *x, int n, int h, double phi)
{
	d->x = x;
	d->n = n;
	d->h = h;
	d->phi = phi;
	d->first = -1;
	d->np = 0;
	d->dh = damp_sum(phi, h);
	int last = -1;
	for (int i = 0; i < n; i++) {
		if (isnan(x[i]))
			continue;
		if (last >= 0) {
			int m = i - last;
			d->idx[d->np] = i;
			d->gap[d->np] = m;
			d->dsum[d->np] = damp_sum(phi, m);
			d->pm[d->np] = powm(phi, m);
			d->np++;
		} else {
			d->first = i;
		}
		last = i;
	}
}

static void fit_map(const gsl_vector *v, double *alpha, double *beta)
{
	double u0 = gsl_vector_get(v, 0), u1 = gsl_vector_get(v, 1);
	*alpha = 0.005 + 0.945 / (1 + exp(-u0));
	*beta = 0.3 / (1 + exp(-u1));
}

/* Objective of nc <= NCAND candidates (alpha[c], beta[c]) into out[c]: the
 * mean absolute 1-step error plus the mean absolute h-step error of the
 * damped-trend recursion run over the window. The candidates run side by
 * side through one pass over the points (independent recursions, so they
 * overlap in the pipeline); each one's arithmetic is the one-candidate loop's. */
static void fit_eval_n(const struct fit_data *d, int nc, const double *alpha, const double *beta,
                       double *out)
{
	if (d->first < 0) {
		for (int c = 0; c < nc; c++)
			out[c] = 0;
		return;
	}
	double l[NCAND], b[NCAND], s1[NCAND], sh[NCAND], ae1[NCAND], aem[NCAND];
	double hp[NFINE][NCAND]; /* h-step forecasts for index i, valid where hp_set[i] */
	unsigned char hp_set[NFINE];
	int nh[NCAND], n1 = 0;
	const int first = d->first, h = d->h, n = d->n;
	memset(hp_set, 0, sizeof hp_set);
	for (int c = 0; c < nc; c++) {
		l[c] = d->x[first];
		b[c] = 0;
		s1[c] = sh[c] = 0;
		nh[c] = 0;
		ae1[c] = 1 - (1 - alpha[c]); /* 1 - powm(1 - alpha, 1) */
	}
	for (int j = 0; j < d->np; j++) {
		const int i = d->idx[j], m = d->gap[j];
		const double xi = d->x[i], ds = d->dsum[j], pm = d->pm[j];
		const int scored = i - first > 8, hps = hp_set[i], fwd = i + h < n;
		const double *a = ae1;
		if (m != 1) { /* after a gap */
			for (int c = 0; c < nc; c++)
				aem[c] = 1 - pow(1 - alpha[c], m);
			a = aem;
		}
		n1 += scored;
		for (int c = 0; c < nc; c++) {
			double pred = l[c] + ds * b[c];
			double e = xi - pred;
			if (scored) {
				s1[c] += fabs(e);
				if (hps && !isnan(hp[i][c])) {
					sh[c] += fabs(xi - hp[i][c]);
					nh[c]++;
				}
			}
			l[c] = pred + a[c] * e;
			b[c] = pm * b[c] + a[c] * beta[c] * e / m;
			if (fwd)
				hp[i + h][c] = l[c] + d->dh * b[c];
		}
		if (fwd)
			hp_set[i + h] = 1;
	}
	for (int c = 0; c < nc; c++)
		out[c] = (n1 ? s1[c] / n1 : 0) + (nh[c] ? sh[c] / nh[c] : 0);
}

static double fit_objective(const gsl_vector *v, void *params)
{
	double alpha, beta, obj;
	fit_map(v, &alpha, &beta);
	fit_eval_n(params, 1, &alpha, &beta, &obj);
	return obj;
}

/* Candidate (alpha, beta) pairs of the grid refit. */
static const float grid_alpha[NGRID_A] = { 0.01f, 0.03f, 0.07f, 0.15f, 0.3f, 0.6f };
static const float grid_beta[NGRID_B] = { 0.0f, 0.1f };

/* Score every candidate on this window, relative to the window's best, and
 * fold into a running (EWMA) score: the choice reflects many windows, not
 * the last few hours. */
static void refit_grid(struct fstate *s, const struct fit_data *fd)
{
	double obj[NCAND], ca[NCAND], cb[NCAND], best = INFINITY;
	for (int i = 0; i < NGRID_A; i++)
		for (int j = 0; j < NGRID_B; j++) {
			ca[i * NGRID_B + j] = grid_alpha[i];
			cb[i * NGRID_B + j] = grid_beta[j];
		}
	fit_eval_n(fd, NCAND, ca, cb, obj);
	for (int c = 0; c < NCAND; c++)
		if (obj[c] < best)
			best = obj[c];
	if (!(best > 0) || !isfinite(best))
		return;
	int arg = 0;
	double rho = s->refits == 0 ? 1.0 : 0.2;
	for (int c = 0; c < NGRID_A * NGRID_B; c++) {
		s->fit_score[c] += (float)(rho * (obj[c] / best - s->fit_score[c]));
		if (s->fit_score[c] < s->fit_score[arg])
			arg = c;
	}
	s->alpha = grid_alpha[arg / NGRID_B];
	s->beta = grid_beta[arg % NGRID_B];
	s->refits++;
}

static void renormalise_profiles(struct fstate *s)
{
	double md = 0, mw = 0;
	int nd = 0, nw = 0;
	for (int i = 0; i < NDAILY; i++)
		if (!isnan(s->daily[i])) {
			md += s->daily[i];
			nd++;
		}
	for (int i = 0; i < NWEEKLY; i++)
		if (!isnan(s->weekly[i])) {
			mw += s->weekly[i];
			nw++;
		}
	if (nd < NDAILY)
		md = 0; /* not yet a whole profile: nothing to centre */
	if (nw < NWEEKLY)
		mw = 0;
	md /= NDAILY;
	mw /= NWEEKLY;
	for (int i = 0; i < NDAILY; i++)
		s->daily[i] -= (float)md;
	for (int i = 0; i < NWEEKLY; i++)
		s->weekly[i] -= (float)mw;
	if (s->season & SEASON_DAILY)
		s->level += md;
	if (s->season & SEASON_WEEKLY)
		s->level += mw;
}

static void refit(const struct forecast_params *p, struct fstate *s)
{
	s->steps_since_refit = 0;
	renormalise_profiles(s);
	if (!p->fit)
		return;
	double x[NFINE];
	int n = s->fine_len, valid = 0;
	for (int i = 0; i < n; i++) {
		double y = fine_get(s, i);
		int64_t k = s->fine_last_k - (n - 1 - i);
		x[i] = isnan(y) ? NAN : to_model(s, y) - season_used(s, bucket_time(s, k));
		valid += !isnan(x[i]);
	}
	if (valid < 32)
		return;
	int h = (int)(p->fit_horizon_ms / s->step_ms);
	if (h < 1)
		h = 1;
	if (h > n / 3)
		h = n / 3;
	struct fit_data fd;
	fit_prepare(&fd, x, n, h, p->phi);
	if (p->fit != 2) {
		refit_grid(s, &fd);
		rings_rebase(s);
		return;
	}
	const gsl_multimin_fminimizer_type *T = gsl_multimin_fminimizer_nmsimplex2;
	gsl_multimin_fminimizer *m = gsl_multimin_fminimizer_alloc(T, 2);
	gsl_vector *start = gsl_vector_alloc(2), *step = gsl_vector_alloc(2);
	if (!m || !start || !step)
		goto out;
	double a = s->alpha, b = s->alpha > 0 ? s->beta : 0.05;
	double fa = (a - 0.005) / 0.945, fb = b / 0.3;
	fa = fa < 0.01 ? 0.01 : fa > 0.99 ? 0.99 : fa;
	fb = fb < 0.01 ? 0.01 : fb > 0.99 ? 0.99 : fb;
	gsl_vector_set(start, 0, log(fa / (1 - fa)));
	gsl_vector_set(start, 1, log(fb / (1 - fb)));
	gsl_vector_set_all(step, 1.0);
	gsl_multimin_function f = { fit_objective, 2, &fd };
	if (gsl_multimin_fminimizer_set(m, &f, start, step))
		goto out;
	for (int it = 0; it < 60; it++) {
		if (gsl_multimin_fminimizer_iterate(m))
			break;
		if (gsl_multimin_test_size(gsl_multimin_fminimizer_size(m), 1e-2) == GSL_SUCCESS)
			break;
	}
	double alpha, beta;
	fit_map(gsl_multimin_fminimizer_x(m), &alpha, &beta);
	if (isfinite(alpha) && isfinite(beta)) {
		s->alpha = (float)alpha;
		s->beta = (float)beta;
		s->refits++;
	}
out:
	if (step)
		gsl_vector_free(step);
	if (start)
		gsl_vector_free(start);
	if (m)
		gsl_multimin_fminimizer_free(m);
	rings_rebase(s);
}

/* ---- error tracking ---- */

static void err_record(const struct forecast_params *p, struct err_bucket *e, double err)
{
	/* The step sizes fall as 1/sqrt(n) and 1/n to their floors: once clearly
	 * below (by far more than the rounding of the division), take the floor
	 * without the sqrt and the division; near the switch compute as always. */
	double n1 = e->n + 1.0;
	if (e->n > 0 && e->scale > 0) {
		double u = err / e->scale;
		double qr = p->quantile_rate, eta;
		if (qr > 0 && n1 * qr * qr > 0.25 * (1 + 1e-9)) {
			eta = qr;
		} else {
			eta = 0.5 / sqrt(n1);
			if (eta < qr)
				eta = qr;
		}
		for (int i = 0; i < NQ; i++)
			e->q[i] += (float)(eta * (qtau[i] - (u <= e->q[i] ? 1.0 : 0.0)));
		for (int i = 1; i < NQ; i++)
			if (e->q[i] < e->q[i - 1])
				e->q[i] = e->q[i - 1];
	}
	double sr = p->scale_rate, rho;
	if (sr > 0 && n1 * sr > 1 + 1e-9) {
		rho = sr;
	} else {
		rho = 1.0 / n1;
		if (rho < sr)
			rho = sr;
	}
	e->scale += (float)(rho * (fabs(err) - e->scale));
	e->n++;
}

/* ---- the grid step ---- */

static void close_bucket(const struct forecast_params *p, struct fstate *s, int64_t k, double y)
{
	int64_t tc = bucket_time(s, k);
	/* profile positions of this step: week phase, and day phase from it */
	int64_t rw = mod_pos(tc, MS_WEEK), rd = rw % MS_DAY;
	struct ppos pd = ppos_at(rd, MS_DAY, NDAILY), pw = ppos_at(rw, MS_WEEK, NWEEKLY);
	struct ppos pv = ppos_at(rd, MS_DAY, NVOL);
	double z = to_model(s, y);
	double phi = p->phi;

	/* coarse ring (raw values, 3-hourly means) */
	int64_t ci = floor_div(tc, s->res_ms);
	if (s->coarse_n == 0 && s->coarse_len == 0) {
		s->coarse_idx = ci;
	} else if (ci != s->coarse_idx) {
		coarse_push(s, s->coarse_n ? s->coarse_sum / s->coarse_n : NAN);
		int64_t gap = ci - s->coarse_idx - 1;
		if (gap > NCOARSE)
			gap = NCOARSE;
		for (int64_t i = 0; i < gap; i++)
			coarse_push(s, NAN);
		s->coarse_idx = ci;
		s->coarse_sum = 0;
		s->coarse_n = 0;
	}
	s->coarse_sum += y;
	s->coarse_n++;

	/* fine ring (raw values at grid resolution) */
	if (s->fine_len > 0) {
		int64_t gap = k - s->fine_last_k - 1;
		if (gap > NFINE)
			gap = NFINE;
		for (int64_t i = 0; i < gap; i++)
			fine_push(s, NAN);
	}
	fine_push(s, y);
	s->fine_last_k = k;

	if (s->last_k < 0) {
		s->level = z - season_used(s, tc);
		s->slow = NAN;
		s->trend = 0;
		s->last_k = k;
		s->steps++;
		return;
	}

	/* resolve pending forecasts; errors in units of the time-of-day volatility */
	double vr = vol_ratio_at(s, pv);
	for (int b = 0; b < NBUCKET; b++) {
		struct err_bucket *e = &s->eb[b];
		for (int j = 0; j < NSLOT; j++) {
			if (e->slot_k[j] == SLOT_FREE)
				continue;
			if ((int64_t)e->slot_k[j] == k)
				err_record(p, e, (z - e->slot_f[j]) / vr);
			if ((int64_t)e->slot_k[j] <= k)
				e->slot_k[j] = SLOT_FREE;
		}
	}

	/* damped-trend smoothing step (error-correction form); m > 1 after a gap */
	double m = (double)(k - s->last_k);
	double base = s->level + damp_sum(phi, m) * s->trend;
	double sd = profile_get_at(s->daily, pd), sw = profile_get_at(s->weekly, pw);
	double su = 0; /* season_used(s, tc), from the same two values */
	if (s->season & SEASON_DAILY)
		su += sd;
	if (s->season & SEASON_WEEKLY)
		su += sw;
	double e = z - (base + su);
	double ae = 1 - powm(1 - s->alpha, m);
	if (m == 1) { /* after a gap the error is not a one-step error */
		double vdays = (double)s->steps * (double)s->step_ms / MS_DAY;
		vol_learn_at(s, pv, fabs(e),
		             fmin_(1.0, fmax_(0.1, 1 / (vdays + 1)) * (double)s->step_ms * NVOL / MS_DAY));
	}
	/* Robust level: outliers move the level by at most huber_k mean errors;
	 * more than shift_run in a row on the same side are a level shift and go
	 * through unclipped. */
	if (p->huber_k > 0 && s->eb[0].n >= NMIN_ERR) {
		double lim = p->huber_k * s->eb[0].scale * vr;
		int sign = e > lim ? 1 : e < -lim ? -1 : 0;
		int run = s->clip_run * sign > 0 ? abs(s->clip_run) + 1 : 1;
		if (run > 100)
			run = 100;
		s->clip_run = (int8_t)(sign * run);
		if (sign != 0 && run <= (int)p->shift_run)
			e = clampd(e, lim);
	}
	s->level = base + ae * e;
	s->trend = powm(phi, m) * s->trend + ae * s->beta * e / m; /* slope over the gap */
	/* gamma is per pass over a bin (a running mean over the first passes),
	 * scaled by the share of a bin this step covers */
	if (!isnan(s->slow)) {
		if (s->prof_k < 0)
			s->prof_k = k;
		double pdays = (double)(k - s->prof_k) * (double)s->step_ms / MS_DAY;
		double gd = fmin_(1.0, fmax_(p->gamma_daily, 1 / (pdays + 1)) *
		                           (double)s->step_ms * NDAILY / MS_DAY);
		double gw = fmin_(1.0, fmax_(p->gamma_weekly, 1 / (pdays / 7 + 1)) *
		                           (double)s->step_ms * NWEEKLY / MS_WEEK);
		/* hierarchical: the daily profile learns the average day, the weekly one
		 * what is left (weekday-specific deviations) */
		double xd = z - s->slow - ((s->season & SEASON_WEEKLY) ? sw : 0);
		double lim = s->dev_n >= 12 ? p->profile_clip * s->dev_scale : 0;
		profile_learn_at(s->daily, pd, xd, gd, lim);
		profile_learn_at(s->weekly, pw, z - s->slow - sd, gw, lim);
		double r = s->dev_n < 100 ? 1.0 / (s->dev_n + 1) : 0.01;
		s->dev_scale += (float)(r * (fabs(xd) - s->dev_scale));
		s->dev_n++;
	}
	s->last_k = k;
	s->steps++;
	s->steps_since_refit++;

	/* issue pending forecasts, staggered within each horizon */
	if (k >= 0 && k < (int64_t)UINT32_MAX - 1000) {
		for (int b = 0; b < NBUCKET; b++) {
			struct err_bucket *eb = &s->eb[b];
			uint32_t h = horizon_steps[b];
			uint32_t ns = h < NSLOT ? h : NSLOT;
			for (uint32_t j = 0; j < ns; j++) {
				if (eb->slot_k[j] != SLOT_FREE || (uint64_t)k % h != (j * h) / ns)
					continue;
				eb->slot_k[j] = (uint32_t)(k + h);
				eb->slot_f[j] = (float)(s->level + damp_sum(phi, h) * s->trend +
				                        season_used(s, tc + (int64_t)h * s->step_ms));
			}
		}
	}

	if ((s->refits == 0 && s->steps_since_refit >= 48) || s->steps_since_refit >= NFINE)
		refit(p, s);
	int per_day = (int)(MS_DAY / s->res_ms);
	if (s->coarse_len >= 2 * per_day && s->coarse_since_detect >= per_day)
		detect_season(p, s);
}

static void ingest(const struct forecast_params *p, struct fstate *s, int64_t ts, double v)
{
	int64_t k = floor_div(ts - s->t0_ms, s->step_ms);
	if (k < s->open_k) {
		s->dropped++;
		return;
	}
	if (k > s->open_k) {
		if (s->acc_n > 0)
			close_bucket(p, s, s->open_k, s->acc_sum / s->acc_n);
		s->open_k = k;
		s->acc_sum = 0;
		s->acc_n = 0;
	}
	s->acc_sum += v;
	s->acc_n++;
	s->samples++;
	s->last_ts = ts;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static const int64_t nice_steps[] = {
	1000, 2000, 5000, 10000, 15000, 20000, 30000, 60000, 120000, 180000, 300000,
	600000, 900000, 1200000, 1800000, 3600000, 7200000, 10800000, 14400000,
	21600000, 43200000, 86400000,
};

static void start_running(const struct forecast_params *p, struct fstate *s)
{
	int64_t d[NWARM];
	int nd = 0;
	for (int i = 1; i < s->nwarm; i++)
		d[nd++] = s->u.w.ts[i] - s->u.w.ts[i - 1];
	int64_t med = 0;
	if (nd > 0) {
		/* insertion sort: tiny */
		for (int i = 1; i < nd; i++)
			for (int j = i; j > 0 && cmp_i64(&d[j - 1], &d[j]) > 0; j--) {
				int64_t t = d[j];
				d[j] = d[j - 1];
				d[j - 1] = t;
			}
		med = d[nd / 2];
	}
	int64_t step = nice_steps[0];
	double best = INFINITY;
	for (size_t i = 0; i < sizeof(nice_steps) / sizeof(nice_steps[0]); i++) {
		double dist = fabs(log((double)nice_steps[i] / (double)(med > 0 ? med : 1)));
		if (dist < best) {
			best = dist;
			step = nice_steps[i];
		}
	}
	if (step < p->min_step_ms)
		step = p->min_step_ms;
	if (step > p->max_step_ms)
		step = p->max_step_ms;
	if (step < 1)
		step = 1;

	int64_t ts[NWARM];
	double v[NWARM];
	int n = s->nwarm;
	memcpy(ts, s->u.w.ts, sizeof(ts));
	memcpy(v, s->u.w.v, sizeof(v));
	memset(&s->u, 0, sizeof(s->u));

	if (s->mult && !(s->offset > 0)) { /* forced multiplicative: offset from the warm-up */
		double sum = 0;
		for (int i = 0; i < n; i++)
			sum += fabs(v[i]);
		s->offset = 0.2 * sum / (n > 0 ? n : 1) + 1e-9;
	}
	s->running = 1;
	s->step_ms = step;
	s->t0_ms = floor_div(ts[0], step) * step;
	s->res_ms = step > 3 * MS_HOUR ? step : (3 * MS_HOUR / step) * step;
	s->open_k = 0;
	s->samples = 0;
	for (int i = 0; i < n; i++)
		ingest(p, s, ts[i], v[i]);
}

void forecast_update(const struct forecast_params *p, void *state, int64_t ts_ms, double value)
{
	struct fstate *s = state;
	/* NaN/inf, magnitudes a float cannot hold, and times beyond +-3000 years
	 * (whose grid arithmetic could overflow) are dropped. */
	if (!isfinite(value) || fabs(value) > 1e30 || ts_ms > 100000000000000LL ||
	    ts_ms < -100000000000000LL) {
		s->dropped++;
		return;
	}
	if (!s->running) {
		if (s->nwarm > 0 && ts_ms < s->u.w.ts[s->nwarm - 1]) {
			s->dropped++;
			return;
		}
		s->u.w.ts[s->nwarm] = ts_ms;
		s->u.w.v[s->nwarm] = value;
		s->nwarm++;
		s->last_ts = ts_ms;
		if (s->nwarm == NWARM)
			start_running(p, s);
		return;
	}
	ingest(p, s, ts_ms, value);
}

/* ---- prediction ---- */

static int is_ready(const struct forecast_params *p, const struct fstate *s)
{
	return s->magic == MAGIC && s->running && s->steps >= p->min_steps &&
	       s->eb[0].n >= NMIN_ERR;
}

/* Origin of forecasts: the state after (virtually) closing the open bucket. */
struct origin {
	double level, trend;
	int64_t t;               /* time the level refers to */
};

static void get_origin(const struct forecast_params *p, const struct fstate *s, struct origin *o)
{
	o->level = s->level;
	o->trend = s->trend;
	o->t = bucket_time(s, s->last_k);
	if (s->acc_n > 0 && s->open_k > s->last_k) {
		int64_t tc = bucket_time(s, s->open_k);
		double z = to_model(s, s->acc_sum / s->acc_n);
		double m = (double)(s->open_k - s->last_k);
		double base = s->level + damp_sum(p->phi, m) * s->trend;
		double e = z - (base + season_used(s, tc));
		double ae = 1 - powm(1 - s->alpha, m);
		if (p->huber_k > 0 && s->eb[0].n >= NMIN_ERR &&
		    !(s->clip_run * (e > 0 ? 1 : -1) >= (int)p->shift_run))
			e = clampd(e, p->huber_k * s->eb[0].scale * vol_ratio(s, tc));
		o->level = base + ae * e;
		o->trend = powm(p->phi, m) * s->trend + ae * s->beta * e / m;
		o->t = tc;
	}
}

/* Error scale (unit volatility) and standardised quantiles at horizon j grid
 * steps. *grow > 1 when j is beyond the longest populated horizon and the
 * scale was extrapolated (not applied to the median: a bias does not grow). */
static void err_at(const struct fstate *s, double j, double *scale, double q[NQ], double *grow)
{
	*grow = 1;
	int top = 0;
	while (top + 1 < NBUCKET && s->eb[top + 1].n >= NMIN_ERR_LONG)
		top++;
	if (j <= 1) {
		*scale = s->eb[0].scale;
		memcpy(q, (const double[NQ]){ s->eb[0].q[0], s->eb[0].q[1], s->eb[0].q[2],
		                              s->eb[0].q[3], s->eb[0].q[4] },
		       sizeof(double) * NQ);
		return;
	}
	int b = 0;
	while (b + 1 < NBUCKET && horizon_steps[b + 1] <= j)
		b++;
	if (b < top) {
		const struct err_bucket *e0 = &s->eb[b], *e1 = &s->eb[b + 1];
		double t = log(j / horizon_steps[b]) / log(3.0);
		double s0 = e0->scale > 1e-12 ? e0->scale : 1e-12;
		double s1 = e1->scale > 1e-12 ? e1->scale : 1e-12;
		*scale = exp((1 - t) * log(s0) + t * log(s1));
		for (int i = 0; i < NQ; i++)
			q[i] = (1 - t) * e0->q[i] + t * e1->q[i];
		return;
	}
	const struct err_bucket *e = &s->eb[top];
	*grow = sqrt(j / horizon_steps[top]);
	*scale = e->scale * *grow;
	for (int i = 0; i < NQ; i++)
		q[i] = e->q[i];
}

struct pred_z {
	double centre;           /* model mean */
	double knot[NQ];         /* model-space quantiles */
};

static void predict_z(const struct forecast_params *p, const struct fstate *s,
                      const struct origin *o, int64_t t, struct pred_z *out)
{
	double j = (double)(t - o->t) / (double)s->step_ms;
	if (j < 0)
		j = 0;
	double scale, q[NQ], grow;
	err_at(s, j, &scale, q, &grow);
	scale *= vol_ratio(s, t);
	out->centre = o->level + damp_sum(p->phi, j) * o->trend + season_used(s, t);
	for (int i = 0; i < NQ; i++)
		out->knot[i] = out->centre + scale * (i == 2 ? q[i] / grow : q[i]);
	if (out->knot[2] < out->knot[1])
		out->knot[2] = out->knot[1];
	if (out->knot[2] > out->knot[3])
		out->knot[2] = out->knot[3];
}

static void fill_point(const struct forecast_params *p, const struct fstate *s,
                       const struct pred_z *z, int64_t t, struct forecast_point *pt)
{
	pt->ts_ms = t;
	pt->mean = from_model(s, p->median_correct ? z->knot[2] : z->centre);
	pt->lo95 = from_model(s, z->knot[0]);
	pt->lo80 = from_model(s, z->knot[1]);
	pt->hi80 = from_model(s, z->knot[3]);
	pt->hi95 = from_model(s, z->knot[4]);
}

int forecast_predict(const struct forecast_params *p, const void *state, int64_t from_ms,
                     int64_t step_ms, size_t n, struct forecast_point *out)
{
	const struct fstate *s = state;
	if (!is_ready(p, s) || n == 0 || step_ms < 0)
		return -1;
	struct origin o;
	get_origin(p, s, &o);
	for (size_t i = 0; i < n; i++) {
		int64_t t = from_ms + (int64_t)i * step_ms;
		struct pred_z z;
		predict_z(p, s, &o, t, &z);
		fill_point(p, s, &z, t, &out[i]);
	}
	return 0;
}

/* P(Y > x) from the piecewise-linear CDF through the quantile knots, with
 * exponential tails continuing the slope of log tail probability between
 * the 80% and 95% knots. */
static double exceed_prob(const struct pred_z *z, double x)
{
	const double *v = z->knot;
	if (x >= v[4]) {
		double w = v[4] - v[3];
		if (!(w > 0))
			return x > v[4] ? 0 : 0.025;
		return 0.025 * exp(-(x - v[4]) / w * log(4.0));
	}
	if (x <= v[0]) {
		double w = v[1] - v[0];
		if (!(w > 0))
			return x < v[0] ? 1 : 0.975;
		return 1 - 0.025 * exp(-(v[0] - x) / w * log(4.0));
	}
	for (int i = 0; i < NQ - 1; i++) {
		if (x <= v[i + 1]) {
			double w = v[i + 1] - v[i];
			double f = w > 0 ? qtau[i] + (qtau[i + 1] - qtau[i]) * (x - v[i]) / w : qtau[i + 1];
			return 1 - f;
		}
	}
	return 0;
}

/* Where the linear interpolation of f between (t0, f0 < 0) and (t1, f1 >= 0)
 * reaches 0. */
static int64_t cross_time(int64_t t0, double f0, int64_t t1, double f1, int first)
{
	if (first)
		return t1;
	double frac = -f0 / (f1 - f0);
	if (!(frac >= 0 && frac <= 1))
		return t1;
	return t0 + (int64_t)((double)(t1 - t0) * frac);
}

int forecast_time_to_breach(const struct forecast_params *p, const void *state, int64_t now_ms,
                            int64_t horizon_ms, double limit, int above, struct breach *out)
{
	const struct fstate *s = state;
	memset(out, 0, sizeof(*out));
	if (!is_ready(p, s))
		return -1;
	if (horizon_ms < 0)
		horizon_ms = 0;
	struct origin o;
	get_origin(p, s, &o);
	int64_t dt = s->step_ms;
	if (horizon_ms / dt > 4096)
		dt = horizon_ms / 4096 + 1;
	/* Limit in model space; a limit at or below -offset is below every value. */
	double zl;
	int always = 0;
	if (s->mult) {
		if (limit + s->offset <= 0) {
			zl = -INFINITY;
			always = above;
		} else {
			zl = log(limit + s->offset);
		}
	} else {
		zl = limit;
	}
	double fm_prev = 0, fu_prev = 0;
	int64_t t_prev = now_ms;
	double pmax = 0;
	for (int64_t t = now_ms;; t += dt) {
		if (t > now_ms + horizon_ms)
			t = now_ms + horizon_ms;
		struct pred_z z;
		predict_z(p, s, &o, t, &z);
		double pm = p->median_correct ? z.knot[2] : z.centre;
		double pu = above ? z.knot[4] : z.knot[0];
		double fm = above ? pm - zl : zl - pm; /* >= 0: breached */
		double fu = above ? pu - zl : zl - pu;
		double pr = always ? 1 : (above ? exceed_prob(&z, zl) : 1 - exceed_prob(&z, zl));
		if (pr > pmax)
			pmax = pr;
		if (!out->mean_crosses && fm >= 0) {
			out->mean_crosses = 1;
			out->mean_at_ms = cross_time(t_prev, fm_prev, t, fm, t == now_ms);
		}
		if (!out->upper_crosses && fu >= 0) {
			out->upper_crosses = 1;
			out->upper_at_ms = cross_time(t_prev, fu_prev, t, fu, t == now_ms);
		}
		fm_prev = fm;
		fu_prev = fu;
		t_prev = t;
		if (t >= now_ms + horizon_ms)
			break;
	}
	out->probability = pmax;
	return 0;
}

int64_t forecast_period_ms(const void *state)
{
	const struct fstate *s = state;
	if (s->season & SEASON_WEEKLY)
		return MS_WEEK;
	if (s->season & SEASON_DAILY)
		return MS_DAY;
	return 0;
}

void forecast_info_get(const void *state, struct forecast_info *out)
{
	const struct fstate *s = state;
	struct forecast_params p;
	forecast_params_default(&p);
	memset(out, 0, sizeof(*out));
	out->ready = is_ready(&p, s); /* with the default min_steps */
	out->step_ms = s->running ? s->step_ms : 0;
	out->period_ms = forecast_period_ms(state);
	out->multiplicative = s->mult;
	out->offset = s->offset;
	out->alpha = s->alpha;
	out->beta = s->beta;
	out->acf_daily = s->acf_d;
	out->acf_weekly = s->acf_w;
	out->samples = s->samples;
	out->steps = s->steps;
	out->dropped = s->dropped;
	out->refits = s->refits;
	out->last_ts_ms = s->last_ts;
}
