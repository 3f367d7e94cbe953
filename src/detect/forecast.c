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
#include "detect/forecast_int.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>

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

/* Push the step's raw value y onto both rings: the coarse ring's open
 * 3-hourly mean and the fine ring at grid index k (gaps become NAN). */
static void rings_add(struct fstate *s, int64_t tc, int64_t k, double y)
{
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
}

/* Resolve the pending forecasts for grid index k; errors in units of the
 * time-of-day volatility vr. */
static void resolve_pending(const struct forecast_params *p, struct fstate *s, int64_t k, double z,
                            double vr)
{
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
}

/* Issue pending forecasts from grid index k (at time tc), staggered within
 * each horizon. */
static void issue_pending(const struct forecast_params *p, struct fstate *s, int64_t k, int64_t tc)
{
	double phi = p->phi;

	if (k < 0 || k >= (int64_t)UINT32_MAX - 1000)
		return;
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

static void close_bucket(const struct forecast_params *p, struct fstate *s, int64_t k, double y)
{
	int64_t tc = bucket_time(s, k);
	/* profile positions of this step: week phase, and day phase from it */
	int64_t rw = mod_pos(tc, MS_WEEK), rd = rw % MS_DAY;
	struct ppos pd = ppos_at(rd, MS_DAY, NDAILY), pw = ppos_at(rw, MS_WEEK, NWEEKLY);
	struct ppos pv = ppos_at(rd, MS_DAY, NVOL);
	double z = to_model(s, y);
	double phi = p->phi;

	rings_add(s, tc, k, y);

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
	resolve_pending(p, s, k, z, vr);

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

	issue_pending(p, s, k, tc);

	if ((s->refits == 0 && s->steps_since_refit >= 48) || s->steps_since_refit >= NFINE)
		forecast_refit(p, s);
	int per_day = (int)(MS_DAY / s->res_ms);
	if (s->coarse_len >= 2 * per_day && s->coarse_since_detect >= per_day)
		forecast_detect_season(p, s);
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
