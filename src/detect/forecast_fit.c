/* detect/forecast_fit.c — the forecaster's periodic work (see forecast.c):
 * season detection with the additive/multiplicative choice, and the refit of
 * the smoothing constants alpha and beta (grid or GSL Nelder-Mead); both
 * re-encode the rings around their current means afterwards. */

#include "config.h"

#include "detect/forecast.h"
#include "detect/forecast_int.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>

#include <gsl/gsl_fit.h>
#include <gsl/gsl_multimin.h>
#include <gsl/gsl_statistics_double.h>
#include <gsl/gsl_vector.h>

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

void forecast_detect_season(const struct forecast_params *p, struct fstate *s)
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

void forecast_refit(const struct forecast_params *p, struct fstate *s)
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
