/* service/knee.c — where the service's own latency–load curve crosses its
 * latency SLO, and when the load gets there at its current growth.
 *
 * A service with no capacity figure still shows its latency–load relation
 * every day: the daily cycle walks the load up and down its curve. Healthy
 * steps (no incident alert open or pending, no SLO breach, no significant
 * error excess) are kept as 10-minute means of (load, p99) over the last
 * three days. Every 10 minutes of event time the curve is refitted: the
 * queueing form latency = a + b / (c − load) (a single-server queue's
 * sojourn time; c is the load at which the queue never drains) for each c on
 * a geometric grid above the highest load seen, and the straight line
 * a + b·load (no knee in sight); a and b by least squares (GSL's
 * gsl_fit_linear), c by the smallest residual sum of squares, then once
 * more without the points further than 3 robust standard deviations (MAD)
 * from that fit (a batch job's slow minutes, a GC pause). The load at which
 * the fit reaches the SLO is the **knee load**; the loads of the fits whose
 * residuals are within an F-test margin of the best give its range.
 *
 * The load's growth is an ordinary least-squares line over the last
 * GROW_MIN_MS (at least GROW_MIN_STEPS steps). It counts only when it is
 * significant (t >= 4), the load is above its forecast's 95% bound, and it
 * is *sustained*: the line explains the window as well as the step-to-step
 * noise allows (lack-of-fit ratio of the residual variance to the variance
 * of lag-2 differences at most GROW_MAX_LOF). A campaign's or a load bump's
 * ramp of a few minutes followed by a plateau, a burst or a batch job's step
 * is a corner in the window, not a line — provided the window is precise
 * enough to tell the two apart (the noise of a small service's few hundred
 * requests per step is not). The time to the knee load at that
 * growth is the projection; its range comes from the slope ± 2 standard
 * errors. */
#include "config.h"

#include "service/service.h"
#include "service/internal.h"

#include <gsl/gsl_fit.h>
#include <gsl/gsl_sort.h>
#include <gsl/gsl_statistics_double.h>
#include <math.h>
#include <string.h>

#define KNEE_MIN_POINTS 144  /* a day of healthy 10-minute means: a whole daily cycle */
#define KNEE_MIN_RANGE 1.5   /* highest / lowest load among them */
#define KNEE_NGRID 48        /* capacity candidates c = r_max * 1.02 * 1.08^i */
#define KNEE_MAX_REACH 4.0   /* a knee beyond 4x the highest load seen is not in sight */
#define GROW_MIN_MS (10 * MS_MIN)
#define GROW_MIN_STEPS 10
#define GROW_MAX_LOF 3.0
#define GROW_MAX_BEND 3.0
#define GROW_MIN_SEEN 4.0
#define GROW_MIN_T 4.0

static int knee_bin_steps(const struct svc *s)
{
	int64_t n = KNEE_BIN_MS / s->m.step_ms;
	return n > 0 ? (int)n : 1;
}

/* Least squares of y on x = 1/(c - r) (or x = r when c is infinite); the
 * residual sum of squares, or INFINITY when the fit is not increasing. */
static double fit_at(const double *r, const double *y, size_t n, double c, double *a, double *b)
{
	double x[KNEE_NBIN];
	for (size_t i = 0; i < n; i++)
		x[i] = isfinite(c) ? 1.0 / (c - r[i]) : r[i];
	double c00, c01, c11, ss;
	if (gsl_fit_linear(x, 1, y, 1, n, a, b, &c00, &c01, &c11, &ss) != 0 || !(*b > 0) ||
	    !isfinite(ss))
		return INFINITY;
	return ss;
}

/* The load at which a + b/(c - r) (or a + b r) reaches lim; NAN if never. */
static double load_at(double a, double b, double c, double lim)
{
	if (!(lim > a) || !(b > 0))
		return NAN;
	return isfinite(c) ? c - b / (lim - a) : (lim - a) / b;
}

struct kfit {
	double ss, a, b, c;
};

/* Search c over the grid and the straight line; returns the best fit and,
 * in lo/hi, the range of knee loads of the fits within the F margin. */
static struct kfit knee_search(const double *r, const double *y, size_t n, double rmax,
                               double lim, double *lo, double *hi)
{
	struct kfit f[KNEE_NGRID + 1];
	struct kfit best = { INFINITY, NAN, NAN, NAN };
	for (int i = 0; i <= KNEE_NGRID; i++) {
		f[i].c = i < KNEE_NGRID ? rmax * 1.02 * pow(1.08, i) : INFINITY;
		f[i].ss = fit_at(r, y, n, f[i].c, &f[i].a, &f[i].b);
		if (f[i].ss < best.ss)
			best = f[i];
	}
	/* an F-test margin (about two standard errors for one parameter), on
	 * the hours rather than the 10-minute means: the residuals around a
	 * daily cycle run in stretches, and six means of one hour are not six
	 * independent points */
	double neff = (double)n / 6;
	double margin = best.ss * (1 + 4.0 / (neff > 3 ? neff - 2 : 1));
	*lo = INFINITY;
	*hi = -INFINITY;
	for (int i = 0; i <= KNEE_NGRID; i++) {
		if (!(f[i].ss <= margin))
			continue;
		double v = load_at(f[i].a, f[i].b, f[i].c, lim);
		if (!isfinite(v))
			v = INFINITY;
		*lo = v < *lo ? v : *lo;
		*hi = v > *hi ? v : *hi;
	}
	return best;
}

/* Refit the curve from the healthy bins of the last three days. */
static void knee_fit(struct svc *s, int64_t cur_bin)
{
	struct knee *kn = &s->knee;
	double lim = s->m.lat_threshold_s;
	double r[KNEE_NBIN], y[KNEE_NBIN];
	size_t n = 0;
	double rmin = INFINITY, rmax = 0;
	uint32_t need = (uint32_t)(knee_bin_steps(s) + 1) / 2;
	kn->ok = 0;
	kn->r_slo = kn->r_lo = kn->r_hi = NAN;
	for (size_t i = 0; i < KNEE_NBIN; i++) {
		const struct knee_bin *b = &kn->bin[i];
		if (b->n < need || b->bin >= cur_bin || b->bin < cur_bin - KNEE_NBIN)
			continue;
		r[n] = b->req / b->n;
		y[n] = b->lat / b->n;
		if (!(r[n] > 0) || !isfinite(y[n]))
			continue;
		rmin = r[n] < rmin ? r[n] : rmin;
		rmax = r[n] > rmax ? r[n] : rmax;
		n++;
	}
	kn->npts = (uint32_t)n;
	kn->r_max = rmax;
	if (!(lim > 0) || n < KNEE_MIN_POINTS || !(rmax >= KNEE_MIN_RANGE * rmin))
		return;
	double lo, hi;
	struct kfit f = knee_search(r, y, n, rmax, lim, &lo, &hi);
	if (!isfinite(f.ss))
		return;
	/* robust: once more without the points beyond 3 robust SDs */
	double res[KNEE_NBIN], ab[KNEE_NBIN];
	for (size_t i = 0; i < n; i++) {
		double x = isfinite(f.c) ? 1.0 / (f.c - r[i]) : r[i];
		res[i] = y[i] - (f.a + f.b * x);
		ab[i] = fabs(res[i]);
	}
	gsl_sort(ab, 1, n);
	double cut = 3 * 1.4826 * gsl_stats_median_from_sorted_data(ab, 1, n);
	size_t m = 0;
	for (size_t i = 0; i < n; i++)
		if (fabs(res[i]) <= cut || !(cut > 0)) {
			r[m] = r[i];
			y[m] = y[i];
			m++;
		}
	if (m >= KNEE_MIN_POINTS && m < n) {
		struct kfit g = knee_search(r, y, m, rmax, lim, &lo, &hi);
		if (isfinite(g.ss))
			f = g;
	}
	double rs = load_at(f.a, f.b, f.c, lim);
	/* at the highest load seen healthy, latency was below the SLO: a knee
	 * at or below it is a bad fit, one far beyond it is not in sight */
	if (!(rs > rmax) || rs > KNEE_MAX_REACH * rmax)
		return;
	kn->ok = 1;
	kn->a = f.a;
	kn->b = f.b;
	kn->c = f.c;
	kn->r_slo = rs;
	kn->r_lo = lo > rmax ? lo : rmax;
	kn->r_hi = hi;
}

void knee_step(struct svc *s, int64_t k, int healthy)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	struct knee *kn = &s->knee;
	size_t g = (size_t)(((k % GROW_N) + GROW_N) % GROW_N);
	kn->grow_k[g] = k;
	kn->grow[g] = p->have_req ? p->req : NAN;
	if (!(m->lat_threshold_s > 0))
		return;
	int64_t bin = floor_div(k * m->step_ms, KNEE_BIN_MS);
	if (bin != kn->cur_bin) {
		if (kn->cur_bin != INT64_MIN || kn->fit_bin == INT64_MIN) {
			knee_fit(s, bin);
			kn->fit_bin = bin;
		}
		kn->cur_bin = bin;
	}
	struct knee_bin *b = &kn->bin[(size_t)(((bin % KNEE_NBIN) + KNEE_NBIN) % KNEE_NBIN)];
	if (b->bin != bin) {
		memset(b, 0, sizeof *b);
		b->bin = bin;
	}
	if (healthy && p->have_req && p->have_lat && isfinite(p->lat2_s)) {
		b->req += p->req;
		b->lat += p->lat2_s;
		b->n++;
	}
}

/* The load's growth over the last window: slope per step, its level at the
 * newest step and its t statistic; -1 when the window is short, has gaps,
 * or the line does not explain it (a corner: ramp then plateau). */
static int growth_fit(const struct svc *s, int64_t k, double *slope, double *level, double *tstat)
{
	const struct knee *kn = &s->knee;
	int64_t w = (GROW_MIN_MS + s->m.step_ms - 1) / s->m.step_ms;
	if (w < GROW_MIN_STEPS)
		w = GROW_MIN_STEPS;
	if (w > GROW_N)
		w = GROW_N;
	double y[GROW_N];
	for (int64_t j = 0; j < w; j++) {
		size_t g = (size_t)((((k - j) % GROW_N) + GROW_N) % GROW_N);
		if (kn->grow_k[g] != k - j || !isfinite(kn->grow[g]))
			return -1;
		y[w - 1 - j] = kn->grow[g];
	}
	double st = 0, sy = 0, stt = 0, sty = 0;
	for (int64_t i = 0; i < w; i++) {
		st += (double)i;
		sy += y[i];
		stt += (double)i * (double)i;
		sty += (double)i * y[i];
	}
	double nw = (double)w, den = nw * stt - st * st;
	double b = (nw * sty - st * sy) / den, a = (sy - b * st) / nw;
	double rss = 0;
	for (int64_t i = 0; i < w; i++) {
		double e = y[i] - a - b * (double)i;
		rss += e * e;
	}
	double resid = rss / (nw - 2);
	double se = sqrt(resid / (stt - st * st / nw));
	/* most steps end here: the load is not growing significantly */
	if (!(b > 0) || (se > 0 && b / se < GROW_MIN_T))
		return -1;
	/* the noise, robustly: second differences at lag 2 (y_i - 2 y_{i-2} +
	 * y_{i-4}, variance 6 sigma^2 for white noise) over the whole ring (up
	 * to GROW_N steps) are 0 on any straight stretch, so their median
	 * absolute value ignores the few corners a ramp or a plateau puts in
	 * it, and a value carried forward over two grid steps is not mistaken
	 * for a quiet series */
	double dd[GROW_N];
	size_t nd = 0;
	for (int64_t j = 0; j + 4 < GROW_N; j++) {
		size_t g0 = (size_t)((((k - j) % GROW_N) + GROW_N) % GROW_N);
		size_t g2 = (size_t)((((k - j - 2) % GROW_N) + GROW_N) % GROW_N);
		size_t g4 = (size_t)((((k - j - 4) % GROW_N) + GROW_N) % GROW_N);
		if (kn->grow_k[g0] != k - j || kn->grow_k[g2] != k - j - 2 ||
		    kn->grow_k[g4] != k - j - 4 || !isfinite(kn->grow[g0]) ||
		    !isfinite(kn->grow[g2]) || !isfinite(kn->grow[g4]))
			continue;
		dd[nd++] = fabs(kn->grow[g0] - 2 * kn->grow[g2] + kn->grow[g4]);
	}
	if (nd < 16)
		return -1;
	gsl_sort(dd, 1, nd);
	double sd = 1.4826 * gsl_stats_median_from_sorted_data(dd, 1, nd) / sqrt(6.0);
	if (resid > GROW_MAX_LOF * sd * sd)
		return -1;
	/* and no bend: the quadratic term (orthogonal to the line on the
	 * centred window) within GROW_MAX_BEND standard errors of 0 — a ramp
	 * starting from or ending in a plateau bends the window */
	double tc = (nw - 1) / 2.0, m2 = 0, sq = 0, sqy = 0;
	for (int64_t i = 0; i < w; i++)
		m2 += ((double)i - tc) * ((double)i - tc);
	m2 /= nw;
	for (int64_t i = 0; i < w; i++) {
		double q = ((double)i - tc) * ((double)i - tc) - m2;
		sq += q * q;
		sqy += q * y[i];
	}
	if (sd > 0 && sq > 0 && fabs(sqy / sq) > GROW_MAX_BEND * sd / sqrt(sq))
		return -1;
	/* ... and that test must be able to see a bend: the same rise made by a
	 * ramp over the first half of the window and a plateau after it (a
	 * campaign's ramp-in) must bend it by GROW_MIN_SEEN standard errors.
	 * With the noise of a few hundred requests per step it cannot, and a
	 * growth the window cannot tell from a plateau is no projection. */
	double sqz = 0;
	for (int64_t i = 0; i < w; i++) {
		double q = ((double)i - tc) * ((double)i - tc) - m2;
		sqz += q * 2 * b * fmin((double)i, tc);
	}
	if (!(sd > 0) || !(sq > 0) || fabs(sqz / sq) < GROW_MIN_SEEN * sd / sqrt(sq))
		return -1;
	/* likewise a ramp over the middle half between two plateaus (no bend,
	 * an S): its departure from the line must be visible to the
	 * lack-of-fit test (variance at least GROW_MAX_LOF noise variances) */
	double zs = 0, zts = 0, zz = 0;
	for (int64_t i = 0; i < w; i++) {
		double z = 2 * b * fmin(fmax((double)i - tc / 2, 0), tc);
		zs += z;
		zts += ((double)i - tc) * z;
	}
	double zb = zts / (stt - st * st / nw), za = zs / nw;
	for (int64_t i = 0; i < w; i++) {
		double z = 2 * b * fmin(fmax((double)i - tc / 2, 0), tc);
		double e = z - za - zb * ((double)i - tc);
		zz += e * e;
	}
	if (zz / (nw - 2) < GROW_MAX_LOF * sd * sd)
		return -1;
	*slope = b;
	*level = a + b * (nw - 1);
	*tstat = se > 0 ? b / se : (b > 0 ? 1e9 : 0);
	return 0;
}

/* Fill the snapshot's knee projection (eta_knee_s and its range, the growth
 * per 10 minutes); returns the risk component: 0.5 for the knee load in
 * eta_warning, rising to 1 as it gets near. */
double knee_component(struct svc *s, int64_t k)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	const struct knee *kn = &s->knee;
	p->knee_req = kn->ok ? kn->r_slo : NAN;
	p->eta_knee_s = p->eta_knee_lo_s = p->eta_knee_hi_s = NAN;
	p->grow_rel_10m = NAN;
	if (!kn->ok || !p->have_req || !p->have_lat)
		return 0;
	/* growth the daily cycle explains is not a surge */
	if (forecast_period_ms(s->fcst + FC_LOAD * s->fc_size) > 0 && !(p->req > p->req_hi))
		return 0;
	double b, lvl, t;
	if (growth_fit(s, k, &b, &lvl, &t) < 0 || !(b > 0) || t < GROW_MIN_T || !(lvl > 0))
		return 0;
	double step_s = (double)m->step_ms / 1000.0;
	p->grow_rel_10m = b * (600.0 / step_s) / lvl;
	double from = lvl < p->req ? lvl : p->req;
	double se = b / t;
	if (from >= kn->r_slo) {
		p->eta_knee_s = p->eta_knee_lo_s = p->eta_knee_hi_s = 0;
	} else {
		p->eta_knee_s = (kn->r_slo - from) / b * step_s;
		p->eta_knee_lo_s = (kn->r_lo - from) / (b + 2 * se) * step_s;
		if (p->eta_knee_lo_s < 0)
			p->eta_knee_lo_s = 0;
		p->eta_knee_hi_s =
			b > 2 * se && isfinite(kn->r_hi) ? (kn->r_hi - from) / (b - 2 * se) * step_s
			                                 : INFINITY;
	}
	return eta_comp(p->eta_knee_s, (double)m->eta_warning_ms / 1000.0);
}
