/* detect/forecast_predict.c — reading the forecaster's state (see forecast.c
 * and docs/forecasting.md): point forecast and quantile intervals at a
 * horizon, the probability and time of crossing a limit, and the summary the
 * API shows. Nothing here changes the state. */

#include "config.h"

#include "detect/forecast.h"
#include "detect/forecast_int.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <stdlib.h>

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
