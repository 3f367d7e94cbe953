/* service/risk.c — the early-warning detectors: the error-ratio test, the
 * overload risk and the evaluation of a grid bucket (services_observe). */
#include "config.h"

#include "service/service.h"
#include "service/internal.h"

#include <dirent.h>
#include <errno.h>
#include <gsl/gsl_errno.h>
#include <gsl/gsl_sf_gamma.h>
#include <gsl/gsl_sf_hyperg.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/selector.h"
#include "util/yaml_tree.h"

/* ---- error-ratio test -------------------------------------------------- */

/* log of the regularised incomplete beta I_x(a, b) (GSL): log of
 * gsl_sf_beta_inc() where that is a normal double; deep in the tail, where
 * it would underflow, I_x(a,b) = x^a (1-x)^b / (a B(a,b)) *
 * 2F1(a+b, 1; a+1; x) in logs (2F1 >= 1 there). NAN if GSL cannot evaluate
 * it (the caller falls back to a normal tail). GSL errors must be return
 * codes: the programs call gsl_set_error_handler_off() (service.h). */
static double log_ibeta(double a, double b, double x)
{
	double lpre = a * log(x) + b * log1p(-x) - gsl_sf_lnbeta(a, b) - log(a);
	gsl_sf_result r;
	if (lpre > -600) {
		if (gsl_sf_beta_inc_e(a, b, x, &r) != GSL_SUCCESS || !(r.val > 0))
			return NAN;
		return log(r.val);
	}
	if (gsl_sf_hyperg_2F1_e(a + b, 1, a + 1, x, &r) != GSL_SUCCESS || !(r.val > 0))
		return NAN;
	return lpre + log(r.val);
}

/* log P(X >= x) for X ~ Binomial(n, p), continuous in x and n:
 * I_p(x, n - x + 1). Falls back to a normal tail for huge counts. */
double log_binom_upper(double x, double n, double p)
{
	if (x <= 0 || n <= 0)
		return 0;
	if (x > n)
		x = n;
	if (p <= 0)
		return -INFINITY;
	double a = x, b = n - x + 1;
	double lv;
	if (n * p < 5000 && n < 1e7) {
		if (p < (a + 1) / (a + b + 2)) {
			lv = log_ibeta(a, b, p);
		} else {
			double lq = log_ibeta(b, a, 1 - p); /* I_p(a,b) = 1 - I_{1-p}(b,a) */
			lv = isfinite(lq) ? log1p(-exp(lq)) : NAN;
		}
		if (isfinite(lv) || lv == -INFINITY)
			return lv > 0 ? 0 : lv;
	}
	/* normal approximation with continuity correction */
	double sd = sqrt(n * p * (1 - p));
	double z = (x - 0.5 - n * p) / (sd > 0 ? sd : 1e-12);
	if (z < 5)
		return log(0.5 * erfc(z / M_SQRT2));
	return -0.5 * z * z - log(z) - 0.5 * log(2 * M_PI); /* Mills ratio */
}

/* The test on one window: x errors in n requests against baseline p0 with
 * dispersion phi (variance inflation, >= 1). Returns log10 p-value. */
double error_log10p(double x, double n, double p0, double phi)
{
	if (phi < 1)
		phi = 1;
	return log_binom_upper(x / phi, n / phi, p0) / M_LN10;
}

/* Load far above its forecast is not an outage by itself (a benign burst, a
 * marketing mail) — unless latency climbs with it toward the SLO: a surge on
 * its way to saturation (load and latency both rising significantly,
 * latency past 40% of its SLO). ex = load / its expectation. */
static double surge_component(const struct svc *s, double ex)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	double lb, la, lt, rb, ra, rt;
	if (ex >= 1.5 && p->req > p->req_hi && p->have_lat && m->lat_threshold_s > 0 &&
	    p->lat_s >= 0.4 * m->lat_threshold_s &&
	    trend_fit(&s->tr[FC_LOAD], &rb, &ra, &rt) == 0 && rb > 0 && rt >= 4 &&
	    trend_fit(&s->tr[FC_LATENCY], &lb, &la, &lt) == 0 && lb > 0 && lt >= 4)
		return 0.55 + 0.3 * ramp(p->lat_s / m->lat_threshold_s, 0.4, 0.75);
	return 0;
}

/* Errors elevated in every one of the last ER_SUS_BLOCKS minutes (blocks
 * of whole grid steps, from the error window's ring) and not falling: the
 * ratio over them, or NAN. */
static double error_sustained(const struct svc *s)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	if (!(m->objective > 0) || !p->have_total)
		return NAN;
	int64_t bs = (MS_MIN + m->step_ms / 2) / m->step_ms;
	if (bs < 1)
		bs = 1;
	if (bs * ER_SUS_BLOCKS > (int64_t)s->er_steps || s->er_k < bs * ER_SUS_BLOCKS ||
	    (double)s->er_k < (double)m->er_halflife_ms / (double)m->step_ms)
		return NAN; /* too short a window, or the baseline still warming up */
	double bx[ER_SUS_BLOCKS] = { 0 }, bn[ER_SUS_BLOCKS] = { 0 }, tx = 0, tn = 0;
	for (int b = 0; b < ER_SUS_BLOCKS; b++) {
		for (int64_t j = 0; j < bs; j++) {
			int64_t k = s->er_k - 1 - (int64_t)b * bs - j;
			size_t i = (size_t)(k % (int64_t)s->er_steps);
			bx[b] += s->er_x[i];
			bn[b] += s->er_n[i];
		}
		if (!(bn[b] > 0) || bx[b] < 2 ||
		    error_log10p(bx[b], bn[b], p->er_base, s->disp) > ER_SUS_LOG10P)
			return NAN;
		tx += bx[b];
		tn += bn[b];
	}
	double r = tx / tn;
	if (r < 0.1 * (1 - m->objective) || r < 5 * p->er_base)
		return NAN;
	/* blocks 0 and 1 are the newest */
	if ((bx[0] + bx[1]) / (bn[0] + bn[1]) < (bx[2] + bx[3]) / (bn[2] + bn[3]))
		return NAN;
	return r;
}

/* Buckets bx/bn[0..j], newest first: if the run of ER_ACC_TRIM consecutive
 * buckets ending at j (the oldest so far) holds more errors than *sx, it
 * becomes the worst run (its errors *sx and requests *sn). */
static void worst_run(const double *bx, const double *bn, int j, double *sx, double *sn)
{
	double rx = 0, rn = 0;
	for (int q = j; q >= 0 && q > j - ER_ACC_TRIM; q--)
		rx += bx[q], rn += bn[q];
	if (rx > *sx)
		*sx = rx, *sn = rn;
}

/* Errors spread over minutes, not one burst: the smallest window of W whole
 * burn-rate buckets (ER_ACC_MIN..ER_ACC_MAX, the newest complete ones) in
 * which the errors outside its worst ER_ACC_TRIM consecutive buckets (the
 * run with the most errors) are significantly above the baseline
 * (p <= 10^ER_ACC_LOG10P) and at least min_errors and 5x the baseline, the
 * whole window at least a tenth of the error budget, and its newer half not
 * below its older half. A small service (a few hundred requests a minute)
 * shows a slowly failing dependency as one or two errors a minute, which no
 * single minute can show (error_sustained) but several minutes together
 * can; a deploy blip (30-90 s) or a client's retries fall in one run of at
 * most three one-minute buckets and are left out. Sets *win to W; returns
 * the ratio over the whole window, or NAN. */
static double error_accumulated(const struct svc *s, int *win)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	*win = 0;
	if (!(m->objective > 0) || !p->have_total || s->bb_cur == INT64_MIN || !s->bb_n ||
	    (double)s->er_k < (double)m->er_halflife_ms / (double)m->step_ms)
		return NAN; /* no budget, or the baseline still warming up */
	int wmax = ER_ACC_MAX;
	if ((size_t)wmax + 1 > s->bb_n)
		wmax = (int)s->bb_n - 1;
	double slo = 1 - m->objective, base = p->er_base;
	double bx[ER_ACC_MAX], bn[ER_ACC_MAX];
	double tx = 0, tn = 0, sx = 0, sn = 0; /* the window; its worst run */
	for (int j = 0; j < wmax; j++) {
		int64_t c = s->bb_cur - 1 - j;
		if (c < 0)
			return NAN;
		size_t i = (size_t)(c % (int64_t)s->bb_n);
		bx[j] = s->bb_x[i];
		bn[j] = s->bb_n_[i];
		if (!(bn[j] > 0))
			return NAN; /* a gap (or before the first bucket): no verdict */
		tx += bx[j];
		tn += bn[j];
		worst_run(bx, bn, j, &sx, &sn);
		int w = j + 1;
		if (w < ER_ACC_MIN)
			continue;
		double ox = tx - sx, on = tn - sn; /* outside the worst run */
		if (!(on > 0) || ox < m->er_min_errors || ox / on < 5 * base || tx / tn < 0.1 * slo)
			continue;
		/* not falling: the newer half (buckets 0..w/2-1) against the older */
		double nx = 0, nn = 0;
		for (int q = 0; q < w / 2; q++)
			nx += bx[q], nn += bn[q];
		if (nx / nn < (tx - nx) / (tn - nn))
			continue;
		if (error_log10p(ox, on, base, s->disp) > ER_ACC_LOG10P)
			continue;
		*win = w;
		return tx / tn;
	}
	return NAN;
}

/* A burst, not an incident: the errors of the last ER_BURST_W burn-rate
 * buckets (the open one included, about the error-ratio window) outside
 * their worst run of ER_ACC_TRIM consecutive buckets are not elevated (less
 * than min_errors, 5x the baseline, or p > 10^ER_BURST_LOG10P): one deploy
 * blip or a client's retries, however significant in the window. */
static int error_burst(const struct svc *s)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	if (s->bb_cur == INT64_MIN || s->bb_cur < ER_BURST_W - 1 || s->bb_n < ER_BURST_W)
		return 0; /* fewer buckets than the window since the grid's origin */
	double bx[ER_BURST_W], bn[ER_BURST_W], tx = 0, tn = 0, sx = 0, sn = 0;
	for (int j = 0; j < ER_BURST_W; j++) {
		size_t i = (size_t)((s->bb_cur - j) % (int64_t)s->bb_n);
		bx[j] = s->bb_x[i];
		bn[j] = s->bb_n_[i];
		tx += bx[j];
		tn += bn[j];
		worst_run(bx, bn, j, &sx, &sn);
	}
	double ox = tx - sx, on = tn - sn;
	return !(on > 0) || ox < m->er_min_errors || ox / on < 5 * p->er_base ||
	       error_log10p(ox, on, p->er_base, s->disp) > ER_BURST_LOG10P;
}

/* Error onset: the error-ratio detector's evidence, and a page-worthy SLO
 * burn rate (the burn-rate alert is evidence here, not its own page). */
static double error_component(const struct svc *s)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	double c = ramp(p->er_score, 0.45, 0.65);
	if (m->objective > 0) {
		/* significance is not severity: with an availability SLO the
		 * ratio must also be a fair share of the error budget (warning
		 * from 20%, critical from about 56%); a 90-second deploy blip in
		 * a 5-minute window is not */
		double r = p->er_ratio / (1 - m->objective);
		double g = r < 0.2 ? 0.5 * ramp(r, 0.1, 0.2) : 0.5 + 0.5 * ramp(r, 0.2, 0.8);
		c *= g;
		/* errors confined to one run of minutes below the SLO (a deploy
		 * blip): evidence, not a warning */
		if (c > 0.45 && r < 1 && error_burst(s))
			c = 0.45;
	}
	/* elevated for minutes and not falling: a warning even below a fifth
	 * of the budget (a dependency starting to fail, not a blip) */
	if (isfinite(p->er_sus_ratio) && c < 0.55)
		c = 0.55;
	/* the same over a longer window for small counts: errors in most of
	 * the last minutes, not one burst */
	if (isfinite(p->er_acc_ratio) && c < 0.55)
		c = 0.55;
	double cb = ramp(p->burn_score_page, 0.35, 0.5);
	if (cb > c)
		c = cb;
	/* at this rate: errors rising steadily toward the SLO (a dependency
	 * failing slowly, clients starting to retry) warn before the ratio is a
	 * large share of the budget: a warning (0.5 to 0.75) for a breach within
	 * twice eta_warning, critical (0.8) for one within 0.4 x eta_warning */
	double ew = (double)m->eta_warning_ms / 1000.0, eta = p->eta_err_s;
	double ct = eta_comp(eta, ew);
	if (isfinite(eta) && eta <= 2 * ew && 0.5 + 0.25 * (1 - eta / (2 * ew)) > ct)
		ct = 0.5 + 0.25 * (1 - eta / (2 * ew));
	return ct > c ? ct : c;
}

/* When the error ratio reaches the error SLO at its trend: only when the
 * errors are significantly above the baseline (the test's score at least
 * 0.5), at least a tenth of the budget over the window, and rising with
 * t >= 4 on the per-step ratios (a 90-second deploy blip is a step, not a
 * trend: its t stays near 2). NAN otherwise. */
static double error_eta_s(const struct svc *s)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	if (!(m->objective > 0) || !p->have_total || p->er_score < 0.5)
		return NAN;
	double slo = 1 - m->objective;
	if (!(p->er_ratio >= 0.1 * slo))
		return NAN;
	return trend_eta_s(&s->er_tr, slo, (double)m->step_ms / 1000.0, 4, p->er_ratio);
}

/* The headroom's peak: the peak within peak_horizon by a seasonal-naive
 * forecast (yesterday's 10-minute means over the coming hours, scaled by
 * today's level against yesterday's): robust and easy to explain.
 * Recomputed every 10 minutes of event time. */
static void peak_update(struct svc *s, int64_t k)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	p->peak_req = NAN;
	p->peak_in_s = NAN;
	int64_t bin = floor_div(k * m->step_ms, DAYBIN_MS);
	int nb = (int)(m->peak_horizon_ms / DAYBIN_MS);
	if (nb > NDAYBIN - 1)
		nb = NDAYBIN - 1;
	if (s->level_ratio_n < 6)
		return;
	for (int j = 1; j <= nb; j++) {
		int64_t yb = bin + j - NDAYBIN;
		const struct daybin *d = &s->day[(size_t)(((yb % NDAYBIN) + NDAYBIN) % NDAYBIN)];
		if (d->bin != yb || d->n == 0)
			continue;
		double v = d->sum / d->n * s->level_ratio;
		if (!(v <= p->peak_req)) {
			p->peak_req = v;
			p->peak_in_s = (double)(j * DAYBIN_MS) / 1000.0;
		}
	}
}

static void risk_update(struct svc *s, int64_t k)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	double step_s = (double)m->step_ms / 1000.0;
	double ew = (double)m->eta_warning_ms / 1000.0;
	double c[RC__COUNT] = { 0 };
	/* load against the reference forecast */
	if (p->have_req && isfinite(p->req_ref) && p->req_ref > 0 &&
	    forecast_period_ms(s->fcst + FC_LOAD * s->fc_size) > 0) {
		double ex = p->req / p->req_ref;
		/* load alone is not an outage (a benign burst, a marketing
		 * mail): it contributes, it never reaches the warning alone */
		if (p->req > p->req_hi)
			c[RC_LOAD] = 0.45 * ramp(ex, 1.3, 2.0);
		double cs = surge_component(s, ex);
		if (cs > c[RC_LOAD])
			c[RC_LOAD] = cs;
	}
	/* capacity: utilisation, and when the load reaches the knee
	 * (utilization_limit x capacity) at this rate (linear trend) or by the
	 * seasonal forecast (the daily peak still to come) */
	p->util = NAN;
	p->eta_cap_s = NAN;
	if (p->have_req && p->cap > 0) {
		p->util = p->req / p->cap;
		double knee = m->util_limit * p->cap;
		double e1 = trend_eta_s(&s->tr[FC_LOAD], knee, step_s, 4, p->req);

		struct breach br;
		double e2 = NAN;
		if (forecast_period_ms(s->fcst + FC_LOAD * s->fc_size) > 0 &&
		    forecast_time_to_breach(&s->fp[FC_LOAD], s->fcst + FC_LOAD * s->fc_size, k * m->step_ms,
		                            m->horizon_ms, knee, 1, &br) == 0 &&
		    br.mean_crosses)
			e2 = (double)(br.mean_at_ms - k * m->step_ms) / 1000.0;
		double eta = e1;
		if (isfinite(e2) && (!isfinite(eta) || e2 < eta))
			eta = e2;
		if (p->util < 0.5)
			eta = NAN; /* far from capacity: trends are noise */
		p->eta_cap_s = eta;
		double cu = ramp(p->util, m->util_limit - 0.15, m->util_limit + 0.1);
		/* headroom: the forecast peak against the knee */
		if (m->peak_horizon_ms > 0 && k % (DAYBIN_MS / m->step_ms) == 0)
			peak_update(s, k);
		if (isfinite(p->peak_req) && p->peak_req > p->req)
			c[RC_HEADROOM] = 0.7 * ramp(p->peak_req / knee, 0.95, 1.1);
		/* a load projection is less sure than a leak's: a campaign's
		 * ramp-in looks like a surge for its first minutes */
		double ce = eta_comp(eta, (double)m->cap_eta_warning_ms / 1000.0);
		c[RC_CAPACITY] = cu > ce ? cu : ce;
	}
	/* latency: against its reference, against the SLO, and the knee
	 * (latency rising faster than load) */
	p->eta_lat_s = NAN;
	if (p->have_lat) {
		double cl = 0;
		if (isfinite(p->lat_ref) && p->lat_ref > 0 && p->lat_s > p->lat_hi) {
			/* the knee needs two members slow (max aggregation): one
			 * instance's GC pause is not the service bending */
			double lx = (m->latency_mean ? p->lat_s : p->lat2_s) / p->lat_ref;
			double lx_load = p->have_req && isfinite(p->req_ref) && p->req_ref > 0
			                         ? p->req / p->req_ref
			                         : 1;
			if (lx_load < 1)
				lx_load = 1;
			/* the share of the latency excess that load does not explain */
			cl = ramp(log(lx) - 0.5 * log(lx_load), log(1.5), log(3.0));
		}
		if (m->lat_threshold_s > 0) {
			double cs = ramp(p->lat_s / m->lat_threshold_s, 0.75, 1.0);
			double eta = trend_eta_s(&s->tr[FC_LATENCY], m->lat_threshold_s, step_s, 4, p->lat_s);
			double qeta = qtrend_eta_s(&s->qlat, m->lat_threshold_s, step_s, 4);
			if (isfinite(qeta) && (!isfinite(eta) || qeta < eta))
				eta = qeta;
			if (p->lat_s < 0.5 * m->lat_threshold_s)
				eta = NAN;
			p->eta_lat_s = eta;
			double ce = eta_comp(eta, ew);
			cs = cs > ce ? cs : ce;
			cl = cl > cs ? cl : cs;
		}
		c[RC_LATENCY] = cl;
	}
	p->eta_err_s = error_eta_s(s);
	p->er_sus_ratio = error_sustained(s);
	p->er_acc_ratio = error_accumulated(s, &p->er_acc_min);
	c[RC_ERRORS] = error_component(s);
	c[RC_LATLOAD] = knee_component(s, k); /* load growing toward the latency SLO (knee.c) */
	c[RC_CANARY] = canary_step(s, k);     /* errors above the SLO on some instances */
	/* saturation near its limit, or reaching it at this rate */
	p->eta_sat_s = NAN;
	if (p->have_sat) {
		double cs = ramp(p->sat, 0.85, 1.0);
		double eta = p->sat >= 0.5 ? trend_eta_s(&s->tr[FC_SAT], 1.0, step_s, 6, p->sat) : NAN;
		p->eta_sat_s = eta;
		/* a resource fills up slowly and surely (a leak): warn hours ahead */
		double ce = eta_comp(eta, (double)m->sat_eta_warning_ms / 1000.0);
		c[RC_SATURATION] = cs > ce ? cs : ce;
	}
	/* noisy-OR: any one strong signal, or several moderate ones */
	double q = 1;
	for (int i = 0; i < RC__COUNT; i++) {
		p->comp[i] = c[i];
		q *= 1 - c[i];
	}
	p->risk = 1 - q;
}

/* The fast path: an SLO breached hard pages at once, whatever the risk's
 * trends say. Errors: over the last fast_ms (at least one step) at least 10
 * errors and a ratio of at least max(1 - objective, 1%, 20 x the learned
 * baseline). Latency: at or above its SLO on every step for fast_ms. Also the
 * latency trend in SRE words (seconds per 10 minutes). */
static void incident_update(struct svc *s, int64_t k, double x, double n)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	size_t i = (size_t)(((k % FAST_N) + FAST_N) % FAST_N);
	s->fx[i] = x;
	s->fn[i] = n;
	int64_t w = m->fast_ms > 0 ? (m->fast_ms + m->step_ms - 1) / m->step_ms : 1;
	if (w < 1)
		w = 1;
	if (w > FAST_N)
		w = FAST_N;
	double fx = 0, fn = 0;
	for (int64_t j = 0; j < w; j++) {
		size_t q = (size_t)((((k - j) % FAST_N) + FAST_N) % FAST_N);
		fx += s->fx[q];
		fn += s->fn[q];
	}
	p->fast_ratio = fn > 0 ? fx / fn : NAN;
	p->hard = 0;
	if (m->objective > 0 && m->fast_ms > 0 && fn > 0) {
		double thr = 1 - m->objective;
		if (thr < 0.01)
			thr = 0.01;
		if (thr < 20 * p->er_base)
			thr = 20 * p->er_base;
		if (fx >= 10 && fx / fn >= thr)
			p->hard = 1;
	}
	/* 20% over: one slow instance's noisy p99 near the SLO is not a hard breach */
	if (m->lat_threshold_s > 0 && p->have_lat && p->lat_s >= 1.2 * m->lat_threshold_s)
		s->hard_lat_ms += m->step_ms;
	else
		s->hard_lat_ms = 0;
	if (!p->hard && m->fast_ms > 0 && s->hard_lat_ms >= m->fast_ms)
		p->hard = 2;
	if (p->hard)
		p->risk = 1;
	double b, a, ts;
	p->lat_rate_10m = NAN;
	if (p->have_lat && trend_fit(&s->tr[FC_LATENCY], &b, &a, &ts) == 0 && ts >= 4 && b > 0)
		p->lat_rate_10m = b * (double)(10 * MS_MIN) / (double)m->step_ms;
}

/* Is the service back near its pre-incident baseline? An open incident alert
 * does not resolve before it is: latency within 30% (and 20 ms) of what was
 * expected before the alert opened and below 80% of its SLO, the error ratio
 * within 3x (and 0.2 points) of the baseline then, no resource above 85%. */
static int back_near_baseline(const struct svc *s)
{
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	if (p->hard)
		return 0;
	if (p->have_lat && s->pre_set && isfinite(s->pre_lat) && s->pre_lat > 0 &&
	    p->lat_s > 1.3 * s->pre_lat && p->lat_s > s->pre_lat + 0.02)
		return 0;
	if (p->have_lat && m->lat_threshold_s > 0 && p->lat_s >= 0.8 * m->lat_threshold_s)
		return 0;
	if (s->pre_set && p->er_x >= m->er_min_errors && p->er_ratio > 3 * s->pre_err &&
	    p->er_ratio > s->pre_err + 0.002)
		return 0;
	if (p->have_sat && p->sat >= 0.85)
		return 0;
	if (p->ig_bad)
		return 0; /* an instance still above the error SLO */
	return 1;
}

/* Step the alert state machines of bucket ending at ts (the snapshot
 * holds its signals); queue their transitions. */
static int step_alerts(struct svc *s, int64_t ts, struct service_transition **out,
                       size_t *nout, size_t *capout)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	double scores[AK__COUNT] = { p->er_score, p->burn_score_page, p->burn_score_ticket, p->risk,
		                     p->risk };
	double values[AK__COUNT] = { p->er_ratio, 0, 0, p->risk, p->risk };
	if (m->objective > 0) {
		double bp = 0, bt = 0;
		for (int w = 0; w < m->nwin; w++) {
			double v = p->burn[w][1];
			if (m->win[w].page)
				bp = v > bp ? v : bp;
			else
				bt = v > bt ? v : bt;
		}
		values[AK_BURN_PAGE] = bp;
		values[AK_BURN_TICKET] = bt;
	}
	/* the pre-incident baseline: frozen while an incident alert is open */
	if (s->fsm[AK_RISK_WARNING].state == ALERT_INACTIVE &&
	    s->fsm[AK_RISK_CRITICAL].state == ALERT_INACTIVE) {
		s->pre_lat = isfinite(p->lat_ref) && p->lat_ref > 0 ? p->lat_ref : p->lat_s;
		s->pre_err = p->er_base;
		s->pre_set = p->have_lat || p->have_total;
	}
	int back = back_near_baseline(s);
	for (int a = 0; a < AK__COUNT; a++) {
		if ((a == AK_BURN_PAGE || a == AK_BURN_TICKET) && m->objective <= 0)
			continue;
		if (!p->have_total && (a == AK_ERROR_RATIO))
			continue;
		struct model_alerting al = m->al[a];
		int incident = a == AK_RISK_WARNING || a == AK_RISK_CRITICAL;
		if (incident && p->hard)
			al.for_ms = 0; /* a hard SLO breach pages at once */
		/* errors elevated over minutes already held for minutes: the
		 * warning's hold would only repeat it */
		if (a == AK_RISK_WARNING && p->comp[RC_ERRORS] >= al.threshold &&
		    (isfinite(p->er_sus_ratio) || isfinite(p->er_acc_ratio)))
			al.for_ms = 0;
		/* open until the service is back near its pre-incident baseline */
		if (incident && s->fsm[a].state == ALERT_FIRING && !back &&
		    !(scores[a] >= al.clear_threshold))
			scores[a] = al.clear_threshold;
		enum alert_event ev = alert_fsm_step(&s->fsm[a], &al, ts, scores[a], values[a]);
		/* the first step at the alert's highest score */
		if ((ev == AEV_PENDING || (ev == AEV_FIRING && s->fsm[a].active_at_ms == ts)) ||
		    (s->fsm[a].state != ALERT_INACTIVE && scores[a] > s->peak_score[a])) {
			s->peak[a] = *p;
			s->peak_score[a] = scores[a];
		}
		/* without `separate`, ErrorRatio and SLOBurnRate are evidence in
		 * the incident alert: their state is in the API, they send nothing */
		if (!incident && !m->separate)
			continue;
		if (ev != AEV_NONE &&
		    push_transition(s, a, ev, ts, values[a], scores[a], out, nout, capout) < 0)
			return -1;
	}
	return 0;
}

/* Evaluate grid bucket k (all its data are in). */
static int eval_step(struct svc *s, int64_t k, struct service_transition **out, size_t *nout,
                     size_t *capout)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	int64_t stale_steps = m->stale_ms / m->step_ms;
	double req = 0, tot = 0, err = 0, lat = 0, lat2 = 0, sat = 0, inst = 0, eratio = 0;
	int nreq = 0, ntot = 0, nlat = 0, nsat = 0, ninst = 0, satsig = -1, neratio = 0;
	for (size_t i = 0; i < s->nmem; i++) {
		struct member *mb = &s->mem[i];
		int sl = (int)(((k % SVC_SLOTS) + SVC_SLOTS) % SVC_SLOTS);
		if (mb->slot[sl].k == k && mb->slot[sl].n) {
			mb->cf_val = mb->slot[sl].sum / mb->slot[sl].n;
			mb->cf_k = k;
		}
		if (mb->cf_k == INT64_MIN || k - mb->cf_k > stale_steps)
			continue;
		double v = mb->cf_val;
		uint32_t r = mb->roles;
		if (r & (1u << ROLE_REQUESTS))
			req += v, nreq++;
		if (r & (1u << ROLE_TOTAL))
			tot += v, ntot++;
		if (r & (1u << ROLE_ERRORS))
			err += v;
		if (r & (1u << ROLE_LATENCY)) {
			double ls = v * m->latency_scale;
			if (m->latency_mean)
				lat += ls;
			else if (ls > lat)
				lat2 = nlat ? lat : ls, lat = ls;
			else if (ls > lat2 || nlat == 1)
				lat2 = ls;
			nlat++;
		}
		if (r & (1u << ROLE_SATURATION)) {
			int si = (int)((r >> SERVICE_SAT_SHIFT) & 0xff);
			if (si < m->nsat) {
				double f = v / m->sat[si].limit;
				if (f > sat || !nsat) {
					sat = f;
					satsig = si;
				}
				nsat++;
			}
		}
		if (r & (1u << ROLE_INSTANCES))
			inst += v, ninst++;
		if (r & (1u << ROLE_ERROR_RATIO))
			eratio += clamp01(v), neratio++;
	}
	if (m->latency_mean && nlat)
		lat /= nlat;
	/* an error-ratio gauge stands in for error counts: errors/s = ratio x total/s */
	if (!m->has[ROLE_ERRORS] && neratio)
		err = eratio / neratio * tot;
	int64_t ts = (k + 1) * m->step_ms; /* the bucket's end: its data are complete */
	double step_s = (double)m->step_ms / 1000.0;
	s->steps++;
	p->ts_ms = ts;
	p->have_req = nreq > 0;
	p->have_total = ntot > 0;
	p->have_lat = nlat > 0;
	p->have_sat = nsat > 0;
	p->have_inst = ninst > 0;
	p->req = req;
	p->total = tot;
	p->err = err;
	p->lat_s = lat;
	p->lat2_s = nlat > 1 && !m->latency_mean ? lat2 : lat;
	p->sat = sat;
	p->sat_sig = satsig;
	p->inst = inst;
	p->cap = m->cap_total;
	if (m->cap_per_instance > 0 && ninst > 0)
		p->cap = m->cap_per_instance * inst;
	/* counts on this step: rate x step */
	double n = ntot ? tot * step_s : 0, x = ntot ? err * step_s : 0;
	if (x > n)
		x = n;
	if (m->objective > 0)
		burn_update(s, k, x, n);
	error_update(s, x, n);
	{
		double hl = (double)ER_TREND_HALFLIFE_MS / (double)m->step_ms;
		trend_add(&s->er_tr, exp2(-1.0 / (hl > 4 ? hl : 4)), n > 0 ? x / n : NAN,
		          n >= ER_TREND_MIN_N);
	}
	/* forecasts: reference made reference_ms ago, then learn this step */
	ref_update(s, FC_LOAD, k, &p->req_ref, &p->req_hi);
	ref_update(s, FC_LATENCY, k, &p->lat_ref, &p->lat_hi);
	double dmy1, dmy2;
	ref_update(s, FC_SAT, k, &dmy1, &dmy2);
	int64_t t0 = k * m->step_ms;
	if (p->have_req)
		forecast_update(&s->fp[FC_LOAD], s->fcst + FC_LOAD * s->fc_size, t0, req);
	if (p->have_lat)
		forecast_update(&s->fp[FC_LATENCY], s->fcst + FC_LATENCY * s->fc_size, t0, lat);
	if (p->have_sat)
		forecast_update(&s->fp[FC_SAT], s->fcst + FC_SAT * s->fc_size, t0, sat);
	for (int f = 0; f < FC__COUNT; f++)
		ref_issue(s, f, k);
	double hl = (double)m->trend_halflife_ms / (double)m->step_ms;
	double dec = exp2(-1.0 / hl);
	trend_add(&s->tr[FC_LOAD], dec, req, p->have_req);
	trend_add(&s->tr[FC_LATENCY], dec, lat, p->have_lat);
	qtrend_add(&s->qlat, exp2(-0.5 / hl), lat, p->have_lat);
	trend_add(&s->tr[FC_SAT], exp2(-(double)m->step_ms / (double)m->sat_halflife_ms), sat,
	          p->have_sat);
	{
		double b, a, tt;
		p->lat_slope_rel = trend_fit(&s->tr[FC_LATENCY], &b, &a, &tt) == 0 && a > 0 ? b / a : 0;
		p->req_slope_rel = trend_fit(&s->tr[FC_LOAD], &b, &a, &tt) == 0 && a > 0 ? b / a : 0;
	}
	if (p->have_req)
		daybin_update(s, k, req);
	/* the latency–load curve learns from healthy steps only: no incident
	 * alert pending or open, no SLO breach, no significant error excess */
	knee_step(s, k,
	          s->fsm[AK_RISK_WARNING].state == ALERT_INACTIVE &&
	                  s->fsm[AK_RISK_CRITICAL].state == ALERT_INACTIVE && !p->hard &&
	                  !(p->er_score >= 0.5));
	risk_update(s, k);
	incident_update(s, k, x, n);
	return step_alerts(s, ts, out, nout, capout);
}

int services_observe(struct services *set, uint32_t svc, uint32_t roles, uint32_t series_idx,
                     const char *key, int64_t ts_ms, double value, const struct det_result *det,
                     struct service_transition **out, size_t *nout, size_t *capout)
{
	if (!set || svc >= set->n || !isfinite(value))
		return 0;
	struct svc *s = &set->v[svc];
	const struct svc_model *m = &s->m;
	/* evidence: the member or scope series whose own detector found the
	 * strongest anomaly lately (it raises no alert of its own) */
	if (det && key && det->score >= EVIDENCE_SCORE) {
		if (!s->ev_n || ts_ms - s->ev_last > EVIDENCE_GAP_MS) {
			s->ev_n = 0;
			s->ev_since = ts_ms;
			s->ev_score = 0;
		}
		s->ev_n++;
		if (ts_ms > s->ev_last)
			s->ev_last = ts_ms;
		if (det->score > s->ev_score) {
			s->ev_score = det->score;
			snprintf(s->ev_key, sizeof s->ev_key, "%s", key);
		}
	}
	if (roles == SERVICE_EVIDENCE)
		return 0;
	int64_t k = floor_div(ts_ms, m->step_ms);
	if (s->started && k < s->next_close) {
		s->late_dropped++;
		return 0;
	}
	struct member *mb = member_get(s, series_idx, roles);
	if (!mb)
		return -1;
	if (mb->grp == -2)
		mb->grp = canary_group(s, key); /* once per series */
	mb->roles = roles;
	s->samples++;
	int sl = (int)(((k % SVC_SLOTS) + SVC_SLOTS) % SVC_SLOTS);
	if (mb->slot[sl].k != k) {
		mb->slot[sl].k = k;
		mb->slot[sl].sum = 0;
		mb->slot[sl].n = 0;
	}
	mb->slot[sl].sum += value;
	mb->slot[sl].n++;
	if (!s->started) {
		s->started = 1;
		s->next_close = k;
		s->wm_k = k;
	}
	if (k > s->wm_k)
		s->wm_k = k;
	/* close every bucket that can no longer receive data */
	while (s->next_close + m->lag_steps < s->wm_k) {
		/* skip long gaps: jump to the oldest bucket any member still holds */
		int64_t kk = s->next_close;
		int any = 0;
		int64_t stale_steps = m->stale_ms / m->step_ms;
		int64_t oldest = INT64_MAX;
		for (size_t i = 0; i < s->nmem; i++) {
			const struct member *q = &s->mem[i];
			if (q->cf_k != INT64_MIN && kk - q->cf_k <= stale_steps)
				any = 1;
			for (int j = 0; j < SVC_SLOTS; j++)
				if (q->slot[j].k >= kk && q->slot[j].k < oldest)
					oldest = q->slot[j].k;
		}
		if (!any && oldest != INT64_MAX && oldest > kk) {
			s->next_close = oldest;
			continue;
		}
		if (eval_step(s, kk, out, nout, capout) < 0)
			return -1;
		s->next_close = kk + 1;
	}
	return 0;
}
