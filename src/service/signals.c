/* service/signals.c — binding series to (service, role), the member table,
 * trends, and the event-time grid the member series are aggregated on
 * (burn-rate ring, error counts, reference levels, day profile). */
#include "config.h"

#include "service/service.h"
#include "service/internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/selector.h"
#include "util/yaml_tree.h"

/* ---- binding ------------------------------------------------------------ */

uint32_t services_bind(const struct services *s, const struct labels *l, uint32_t *svc)
{
	if (!s)
		return 0;
	size_t scoped = SIZE_MAX;
	for (size_t i = 0; i < s->n; i++) {
		const struct svc_model *m = &s->v[i].m;
		uint32_t mask = 0;
		for (int r = ROLE_REQUESTS; r < ROLE__COUNT; r++) {
			if (r == ROLE_SATURATION || r == ROLE_TOTAL)
				continue;
			if (m->has[r] && selector_matches(&m->sel[r], l))
				mask |= 1u << r;
		}
		if (m->has[ROLE_TOTAL] ? selector_matches(&m->sel[ROLE_TOTAL], l)
		                       : (mask & (1u << ROLE_REQUESTS)) != 0)
			mask |= 1u << ROLE_TOTAL;
		for (int k = 0; k < m->nsat; k++)
			if (selector_matches(&m->sat[k].sel, l)) {
				mask |= (1u << ROLE_SATURATION) | ((uint32_t)k << SERVICE_SAT_SHIFT);
				break;
			}
		if (mask) {
			if (svc)
				*svc = (uint32_t)i;
			return mask;
		}
		if (scoped == SIZE_MAX && m->has_scope && selector_matches(&m->scope, l))
			scoped = i;
	}
	if (scoped != SIZE_MAX) {
		if (svc)
			*svc = (uint32_t)scoped;
		return SERVICE_EVIDENCE;
	}
	return 0;
}

/* ---- members -------------------------------------------------------------- */

struct member *member_get(struct svc *s, uint32_t idx, uint32_t roles)
{
	if (s->mtab) {
		for (size_t i = (idx * 2654435761u) & s->mmask; s->mtab[i]; i = (i + 1) & s->mmask) {
			struct member *mb = &s->mem[s->mtab[i] - 1];
			if (mb->series_idx == idx)
				return mb;
		}
	}
	/* new member: grow the array and the table (once per series) */
	if (s->nmem == s->capmem) {
		size_t nc = s->capmem ? s->capmem * 2 : 16;
		struct member *nm = realloc(s->mem, nc * sizeof *nm);
		if (!nm)
			return NULL;
		s->mem = nm;
		s->capmem = nc;
	}
	if (!s->mtab || (s->nmem + 1) * 2 > s->mmask + 1) {
		size_t nc = s->mtab ? (s->mmask + 1) * 2 : 64;
		uint32_t *t = calloc(nc, sizeof *t);
		if (!t)
			return NULL;
		for (size_t k = 0; k < s->nmem; k++) {
			size_t i = (s->mem[k].series_idx * 2654435761u) & (nc - 1);
			while (t[i])
				i = (i + 1) & (nc - 1);
			t[i] = (uint32_t)(k + 1);
		}
		free(s->mtab);
		s->mtab = t;
		s->mmask = nc - 1;
	}
	struct member *mb = &s->mem[s->nmem];
	memset(mb, 0, sizeof *mb);
	mb->series_idx = idx;
	mb->roles = roles;
	mb->grp = -2;
	mb->cf_k = INT64_MIN;
	for (int j = 0; j < SVC_SLOTS; j++)
		mb->slot[j].k = INT64_MIN;
	size_t i = (idx * 2654435761u) & s->mmask;
	while (s->mtab[i])
		i = (i + 1) & s->mmask;
	s->mtab[i] = (uint32_t)(++s->nmem);
	return mb;
}

/* ---- trend ------------------------------------------------------------- */

/* Advance one grid step (all past t shift by -1), decay, add y at t = 0. */
void trend_add(struct trend *t, double decay, double y, int have)
{
	t->s2 = t->s2 - 2 * t->s1 + t->s0;
	t->s1 = t->s1 - t->s0;
	t->sty = t->sty - t->sy;
	t->s0 *= decay;
	t->s1 *= decay;
	t->s2 *= decay;
	t->sy *= decay;
	t->sty *= decay;
	t->syy *= decay;
	if (have && isfinite(y)) {
		t->s0 += 1;
		t->sy += y;
		t->syy += y * y;
		t->n++;
	}
}

/* Slope per step, level at t = 0, and the slope's t statistic. */
int trend_fit(const struct trend *t, double *slope, double *level, double *tstat)
{
	double den = t->s0 * t->s2 - t->s1 * t->s1;
	if (t->n < 6 || t->s0 < 3 || !(den > 1e-9))
		return -1;
	double b = (t->s0 * t->sty - t->s1 * t->sy) / den;
	double a = (t->sy - b * t->s1) / t->s0;
	/* weighted residual sum of squares */
	double rss = t->syy - 2 * a * t->sy - 2 * b * t->sty + a * a * t->s0 + 2 * a * b * t->s1 +
	             b * b * t->s2;
	if (rss < 0)
		rss = 0;
	double sigma2 = rss / (t->s0 - 2 > 1 ? t->s0 - 2 : 1);
	double sxx = t->s2 - t->s1 * t->s1 / t->s0;
	double se = sqrt(sigma2 / sxx);
	*slope = b;
	*level = a;
	*tstat = se > 0 ? b / se : (b != 0 ? copysign(1e9, b) : 0);
	return 0;
}

/* Seconds until the trend reaches limit (going up), or NAN if it does not
 * rise significantly; 0 if already at or above the limit. */
double trend_eta_s(const struct trend *t, double limit, double step_s, double min_t,
                          double cur)
{
	double b, a, ts;
	if (cur >= limit)
		return 0;
	if (trend_fit(t, &b, &a, &ts) < 0 || !(limit > 0) || !(b > 0) || ts < min_t)
		return NAN;
	/* from the fitted level, or from the value itself when the fit lags
	 * behind a fall */
	double from = a < limit ? a : cur;
	return (limit - from) / b * step_s;
}


void qtrend_add(struct qtrend *q, double decay, double y, int have)
{
	double *S = q->s, *Y = q->y;
	double s1 = S[1] - S[0];
	double s2 = S[2] - 2 * S[1] + S[0];
	double s3 = S[3] - 3 * S[2] + 3 * S[1] - S[0];
	double s4 = S[4] - 4 * S[3] + 6 * S[2] - 4 * S[1] + S[0];
	double y1 = Y[1] - Y[0];
	double y2 = Y[2] - 2 * Y[1] + Y[0];
	S[1] = s1, S[2] = s2, S[3] = s3, S[4] = s4, Y[1] = y1, Y[2] = y2;
	for (int k = 0; k < 5; k++)
		S[k] *= decay;
	for (int k = 0; k < 3; k++)
		Y[k] *= decay;
	q->yy *= decay;
	if (have && isfinite(y)) {
		S[0] += 1;
		Y[0] += y;
		q->yy += y * y;
		q->n++;
	}
}

/* Seconds until the fitted parabola reaches limit, when its curvature is
 * positive and significant (t >= min_t); NAN otherwise. */
double qtrend_eta_s(const struct qtrend *q, double limit, double step_s, double min_t)
{
	const double *S = q->s, *Y = q->y;
	if (q->n < 12 || S[0] < 6)
		return NAN;
	/* inverse of the symmetric 3x3 normal matrix by cofactors */
	double m00 = S[0], m01 = S[1], m02 = S[2], m11 = S[2], m12 = S[3], m22 = S[4];
	double c00 = m11 * m22 - m12 * m12, c01 = m02 * m12 - m01 * m22, c02 = m01 * m12 - m02 * m11;
	double c11 = m00 * m22 - m02 * m02, c12 = m01 * m02 - m00 * m12, c22 = m00 * m11 - m01 * m01;
	double det = m00 * c00 + m01 * c01 + m02 * c02;
	if (!(fabs(det) > 1e-9))
		return NAN;
	double a = (c00 * Y[0] + c01 * Y[1] + c02 * Y[2]) / det;
	double b = (c01 * Y[0] + c11 * Y[1] + c12 * Y[2]) / det;
	double c = (c02 * Y[0] + c12 * Y[1] + c22 * Y[2]) / det;
	double rss = q->yy - (a * Y[0] + b * Y[1] + c * Y[2]);
	if (rss < 0)
		rss = 0;
	double sigma2 = rss / (S[0] - 3 > 1 ? S[0] - 3 : 1);
	double var_c = sigma2 * c22 / det;
	if (!(c > 0) || !(var_c > 0) || c / sqrt(var_c) < min_t || a >= limit)
		return NAN;
	double disc = b * b + 4 * c * (limit - a);
	if (disc < 0)
		return NAN;
	double tau = (-b + sqrt(disc)) / (2 * c);
	return tau > 0 ? tau * step_s : NAN;
}

/* ---- grid and evaluation ------------------------------------------------- */

static void burn_advance(struct svc *s, int64_t bk)
{
	const struct svc_model *m = &s->m;
	if (s->bb_cur == INT64_MIN || bk - s->bb_cur >= (int64_t)s->bb_n) {
		/* first bucket, or a gap longer than the ring: start over */
		memset(s->bb_x, 0, s->bb_n * sizeof(double));
		memset(s->bb_n_, 0, s->bb_n * sizeof(double));
		memset(s->bwin_x, 0, sizeof s->bwin_x);
		memset(s->bwin_n, 0, sizeof s->bwin_n);
		s->bb_cur = bk;
		return;
	}
	while (s->bb_cur < bk) {
		/* window (len buckets) = len - 1 complete buckets + the current one.
		 * Bucket c = bb_cur completes: it enters, c - len + 1 leaves
		 * (len = 1: both are c, the sums stay empty). */
		int64_t c = s->bb_cur;
		size_t ci = (size_t)(c % (int64_t)s->bb_n);
		for (int w = 0; w < m->nwin; w++)
			for (int j = 0; j < 2; j++) {
				size_t oi = (size_t)((c - s->bwin_len[w][j] + 1) % (int64_t)s->bb_n);
				s->bwin_x[w][j] += s->bb_x[ci] - s->bb_x[oi];
				s->bwin_n[w][j] += s->bb_n_[ci] - s->bb_n_[oi];
				if (s->bwin_x[w][j] < 0)
					s->bwin_x[w][j] = 0;
				if (s->bwin_n[w][j] < 0)
					s->bwin_n[w][j] = 0;
			}
		s->bb_cur++;
		size_t ni = (size_t)(s->bb_cur % (int64_t)s->bb_n);
		s->bb_x[ni] = 0;
		s->bb_n_[ni] = 0;
	}
}

/* Burn rates of every window after adding (x, n) at grid bucket k. */
void burn_update(struct svc *s, int64_t k, double x, double n)
{
	const struct svc_model *m = &s->m;
	int64_t bk = floor_div(k * m->step_ms, s->bb_ms);
	burn_advance(s, bk);
	size_t ci = (size_t)(s->bb_cur % (int64_t)s->bb_n);
	s->bb_x[ci] += x;
	s->bb_n_[ci] += n;
	double budget = 1 - m->objective;
	double sp = 0, st = 0;
	for (int w = 0; w < m->nwin; w++) {
		double r[2], ex[2];
		for (int j = 0; j < 2; j++) {
			double wx = s->bwin_x[w][j] + s->bb_x[ci];
			double wn = s->bwin_n[w][j] + s->bb_n_[ci];
			ex[j] = wx;
			r[j] = wn > 0 && budget > 0 ? wx / wn / budget : 0;
			s->snap.burn[w][j] = r[j];
		}
		/* 0.5 at the threshold; both windows must be above it */
		double lo = r[0] < r[1] ? r[0] : r[1];
		double sc = clamp01(0.5 * lo / m->win[w].factor);
		if (ex[0] < m->burn_min_errors && sc >= 0.5)
			sc = 0.45; /* too few errors to page anyone */
		if ((double)s->steps * (double)m->step_ms < (double)m->win[w].short_ms)
			sc = 0; /* not even the short window has data yet */
		if (m->win[w].page)
			sp = sc > sp ? sc : sp;
		else
			st = sc > st ? sc : st;
	}
	s->snap.burn_score_page = m->objective > 0 ? sp : 0;
	s->snap.burn_score_ticket = m->objective > 0 ? st : 0;
}

/* Error-ratio detector on the window ending at this step. */
void error_update(struct svc *s, double x, double n)
{
	const struct svc_model *m = &s->m;
	size_t i = (size_t)(s->er_k % (int64_t)s->er_steps);
	s->er_wx += x - s->er_x[i];
	s->er_wn += n - s->er_n[i];
	if (s->er_wx < 0)
		s->er_wx = 0;
	if (s->er_wn < 0)
		s->er_wn = 0;
	s->er_x[i] = x;
	s->er_n[i] = n;
	s->er_k++;
	/* baseline: Jeffreys-like prior of 1000 requests at the floor ratio */
	const double k0 = 1000;
	double p0 = (s->base_x + m->er_floor * k0) / (s->base_n + k0);
	if (p0 < m->er_floor)
		p0 = m->er_floor;
	if (p0 > 0.5)
		p0 = 0.5;
	double wx = s->er_wx, wn = s->er_wn;
	double l10p = wn > 0 ? error_log10p(wx, wn, p0, s->disp) : 0;
	double need = -log10(m->er_alpha);
	double score = clamp01(-l10p / (2 * need));
	double ratio = wn > 0 ? wx / wn : 0;
	if (wx < m->er_min_errors || ratio < m->er_min_factor * p0)
		score = score < 0.3 ? score : 0.3; /* significant or not: not an outage */
	s->snap.er_x = wx;
	s->snap.er_n = wn;
	s->snap.er_ratio = ratio;
	s->snap.er_base = p0;
	s->snap.er_log10p = l10p;
	s->snap.er_score = score;
	/* warm-up: no verdict until the baseline has seen a half-life of data */
	double hl = (double)m->er_halflife_ms / (double)m->step_ms;
	int warm = (double)s->er_k < hl;
	if (warm)
		s->snap.er_score = score = 0;
	/* learn the baseline and the dispersion from normal steps; anomalous
	 * steps count a tenth (a lasting change is absorbed, slowly) */
	if (n > 0) {
		double d = exp2(-1.0 / hl);
		if (score >= 0.3)
			d = exp2(-0.1 / hl), x *= 0.1, n *= 0.1;
		double e = n * p0;
		if (score < 0.3 && e > 0.5 && s->base_n > 100 * e) {
			double z2 = (x - e) * (x - e) / (e * (1 - p0));
			if (z2 > 50)
				z2 = 50;
			s->disp = d * s->disp + (1 - d) * z2;
			if (s->disp < 1)
				s->disp = 1;
			if (s->disp > 100)
				s->disp = 100;
		}
		s->base_x = d * s->base_x + x;
		s->base_n = d * s->base_n + n;
	}
}

/* Reference forecast for bucket k made reference_ms earlier, and the next one. */
static void sort3(double *v)
{
	double t;
	if (v[0] > v[1])
		t = v[0], v[0] = v[1], v[1] = t;
	if (v[1] > v[2])
		t = v[1], v[1] = v[2], v[2] = t;
	if (v[0] > v[1])
		t = v[0], v[0] = v[1], v[1] = t;
}

/* Expected value of bucket k (median of the reference forecasts made for
 * it; NAN unless all of them exist) and its 95% upper bound (median too). */
void ref_update(struct svc *s, int f, int64_t k, double *mean, double *hi)
{
	double mv[NREF], hv[NREF];
	*mean = NAN;
	*hi = NAN;
	for (int j = 0; j < NREF; j++) {
		const struct fc_ref *r = &s->ref[f][j][(size_t)(k % s->ref_steps[j])];
		if (r->k != k)
			return;
		mv[j] = r->mean;
		hv[j] = r->hi95;
	}
	sort3(mv);
	sort3(hv);
	*mean = mv[1];
	*hi = hv[1];
}

/* Issue the reference forecasts made at bucket k (after learning it). */
void ref_issue(struct svc *s, int f, int64_t k)
{
	const void *st = s->fcst + (size_t)f * s->fc_size;
	for (int j = 0; j < NREF; j++) {
		int64_t tk = k + s->ref_steps[j];
		struct forecast_point pt;
		struct fc_ref *r = &s->ref[f][j][(size_t)(tk % s->ref_steps[j])];
		if (forecast_predict(&s->fp[f], st, tk * s->m.step_ms, s->m.step_ms, 1, &pt) == 0) {
			r->k = tk;
			r->mean = pt.mean;
			r->hi95 = pt.hi95;
		} else {
			r->k = INT64_MIN;
		}
	}
}

/* Record the load of bucket k in its 10-minute bin (the slot held the
 * same 10 minutes of yesterday until now) and update today's level against
 * yesterday's: an EWMA (half-life 30 minutes) of load / yesterday's mean. */
void daybin_update(struct svc *s, int64_t k, double req)
{
	int64_t t = k * s->m.step_ms;
	int64_t bin = floor_div(t, DAYBIN_MS);
	struct daybin *d = &s->day[(size_t)(((bin % NDAYBIN) + NDAYBIN) % NDAYBIN)];
	if (d->bin != bin) {
		s->yday_mean = d->bin == bin - NDAYBIN && d->n ? d->sum / d->n : NAN;
		d->bin = bin;
		d->sum = 0;
		d->n = 0;
	}
	d->sum += req;
	d->n++;
	if (isfinite(s->yday_mean) && s->yday_mean > 0) {
		double r = req / s->yday_mean;
		double w = 1 - exp2(-(double)s->m.step_ms / (30.0 * MS_MIN));
		s->level_ratio = s->level_ratio_n ? s->level_ratio + w * (r - s->level_ratio) : r;
		s->level_ratio_n++;
	}
}

/* ETA -> risk component: 0.5 at eta_warning, 1 at 0, 0 at 2 x eta_warning. */
double eta_comp(double eta_s, double eta_warning_s)
{
	if (!isfinite(eta_s))
		return 0;
	return clamp01(1 - 0.5 * eta_s / eta_warning_s);
}
