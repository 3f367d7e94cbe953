/* detect/detector.c — the scoring pipeline of detector models (components ->
 * anomaly likelihood -> ensemble -> alert suppression) over the per-series
 * state laid out in detect/model_int.h. Loading models from YAML is in
 * detect/model_parse.c; components live in src/detect/, behind
 * detect/detectors.h.
 *
 * Pipeline for one sample (all O(1), no allocation):
 *   1. sampling-interval estimate and elapsed "steps" (gaps count as time);
 *   2. each component scores the sample (raw >= 0) and learns from it;
 *   3. each raw score goes through its own anomaly-likelihood stage: a short
 *      moving average of log(1 + raw) compared with the long-run Gaussian of
 *      that average (and, while the series is young, `single_for`, the single
 *      sample too); the tail probability Q is log-scaled to [0,1];
 *   4. the ensemble takes the weighted max (or noisy-OR / mean / min);
 *   5. warm-up forces 0; after a detection (score >= `arm`, by default the
 *      alert threshold) the
 *      score is capped at `hold` for `suppress` samples, so one event gives
 *      one detection while a sustained anomaly still stays above
 *      clear_threshold (see docs/detectors.md).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detector.h"
#include "detect/logf1.h"
#include "detect/model_int.h"

void model_free(struct model *m)
{
	free(m);
}

const char *model_name(const struct model *m)
{
	return m->name;
}

const struct model_alerting *model_alerting(const struct model *m)
{
	return &m->alert;
}

double model_hold(const struct model *m)
{
	return m->hold;
}

uint64_t model_fingerprint(const struct model *m)
{
	return m->fingerprint;
}

size_t model_state_size(const struct model *m)
{
	return m->state_size;
}

void model_state_init(const struct model *m, void *state)
{
	memset(state, 0, m->state_size);
	struct model_hdr *h = state;
	h->since_fire = UINT32_MAX;
	for (int i = 0; i < m->ncomp; i++)
		m->comp[i].kind->init(m->comp[i].p, (char *)state + m->comp[i].off);
}

/* ---- scoring ------------------------------------------------------------- */

/* Log-scaled tail probability: q = 10^-decades maps to 1, q = 1/2 to ~0.
 * For large z, log q ~ -z^2/2, computed without underflow. */
static double log_tail(double z)
{
	if (z < 30)
		return log(0.5 * erfc(z * M_SQRT1_2));
	return -0.5 * z * z - log(z * sqrt(2 * M_PI));
}

/* How far apart two z must be for their log tails to be ordered whatever
 * libm's rounding: log_tail falls by at least 0.79 per unit of z (the
 * Gaussian's hazard is at least phi(0) / Q(0) = 0.798; past 30 its slope is
 * -(z + 1/z), and the asymptotic form there lies above the true tail by
 * less than 1/z^2 = 0.0012), so 1/64 apart they differ by more than 0.012,
 * against errors of erfc, log and the sums below 1e-12. */
#define LK_TAIL_GAP (1.0 / 64)

double lk_rate_z(double log_qref)
{
	/* bisection on log_tail itself: lo stays where log_tail > log_qref */
	double lo = 0, hi = 40;
	if (!(log_tail(1e-9) > log_qref))
		return 0;
	for (int i = 0; i < 200 && hi - lo > 1e-12; i++) {
		double mid = 0.5 * (lo + hi);
		if (log_tail(mid) > log_qref)
			lo = mid;
		else
			hi = mid;
	}
	return lo > LK_TAIL_GAP ? lo - LK_TAIL_GAP : 0;
}

static double tail_score(double z, double decades)
{
	if (z <= 0)
		return 0;
	double lq = log_tail(z);
	double sc = -lq / (decades * M_LN10);
	return sc > 1 ? 1 : sc;
}

/* Gaussian z whose upper tail probability is exp(lq), for lq < log(1/2):
 * inverse of the tail by Newton steps on the log tail (a few iterations). */
static double q_to_z(double lq)
{
	double z = sqrt(-2 * lq); /* good start for small q */
	for (int i = 0; i < 4; i++) {
		double q = 0.5 * erfc(z * M_SQRT1_2);
		if (q <= 0)
			break;
		double pdf = exp(-0.5 * z * z) / sqrt(2 * M_PI);
		/* d log q / dz = -pdf / q */
		z += (log(q) - lq) * q / pdf;
		if (z < 0)
			z = 0;
	}
	return z;
}

/* alpha = det_alpha(halflife, 1), the weight once n reaches halflife
 * (halflife_n: ceil(halflife), model->lk_halflife_n) */
static inline __attribute__((always_inline)) void
gauss_learn(double *mean, double *var, uint32_t n, uint32_t halflife_n, double alpha, double x,
            double clip, double min_std)
{
	if (n == 0) {
		*mean = x;
		*var = 0;
		return;
	}
	double a = n < halflife_n ? 1.0 / (n + 1) : alpha;
	double d = x - *mean;
	if (clip > 0 && n > 30) {
		/* Huber: an extreme value moves the estimate as if it were at
		 * clip standard deviations */
		double sd = sqrt(*var);
		if (sd < min_std)
			sd = min_std;
		if (d > clip * sd)
			d = clip * sd;
		else if (d < -clip * sd)
			d = -clip * sd;
	}
	*mean += a * d;
	*var = (1 - a) * (*var + a * d * d);
}

/* Anomaly likelihood of one component's raw score, in [0,1]; *zout is the
 * evidence in standard deviations of the long-run distribution. n is the
 * number of samples the series has seen (for `single_for`). plain (a
 * constant where it is inlined): the model has neither the instant nor the
 * exponential-tail stage (no struct lk_cold), does not clip (lk_clip 0) and
 * calibrates (lk_qref > 0), as the default does: the same arithmetic
 * without the tests of those settings per sample. */
static inline __attribute__((always_inline)) double
likelihood(const struct model *m, struct lk_state *s, double raw, int learn, uint32_t n,
           double *zout, const int plain)
{
	/* u is kept as a float, so log1p, which is slow, is not needed: once
	 * raw >= 2^-10, log(1 + raw) is exact to well within float precision
	 * (the rounding of 1 + raw is 2^-53 absolute); below, four terms of the
	 * series are (relative error < raw^4 / 5 < 2^-42). Raw scores are often
	 * exactly 0. */
	float u = raw >= 0x1p-10 ? det_logf1(1 + raw) :
	          raw == 0 ? (float)raw : /* often: the series' arithmetic gives raw (+-0) */
	          (float)(raw * (1 - raw * (0.5 - raw * (1.0 / 3 - raw * 0.25))));
	int w = m->lk_window;
	if (s->len < w) {
		s->ring[s->len++] = u;
		s->sum += u;
	} else {
		s->sum += u - s->ring[s->pos];
		s->ring[s->pos] = u;
		s->pos = (uint16_t)(s->pos + 1 == w ? 0 : s->pos + 1); /* pos < w: no division */
	}
	/* recompute now and then to cancel float drift */
	if (s->pos == 0) {
		float t = 0;
		for (int i = 0; i < s->len; i++)
			t += s->ring[i];
		s->sum = t;
	}
	double avg = (double)s->sum / s->len;
	struct lk_cold *cold = !plain && m->lk_cold_off ?
	                       (struct lk_cold *)((char *)s + m->lk_cold_off) : NULL;
	const int exp_tail = !plain && m->lk_exp_tail, instant = !plain && m->lk_instant;
	double z = 0, z1 = 0;
	if (s->n >= m->lk_min_n) {
		double sd = sqrt(s->var);
		if (sd < m->lk_min_std)
			sd = m->lk_min_std;
		z = (avg - s->mean) / sd;
		if (exp_tail) {
			/* P(avg > x) ~ px * exp(-(x - mean) / beta), beta = mean excess.
			 * Report it as the Gaussian z with the same tail probability. */
			double beta = cold->px > 0 ? (double)cold->ex / (double)cold->px : 0;
			if (beta < m->lk_min_std)
				beta = m->lk_min_std;
			double d = avg - s->mean;
			double lq = d > 0 ? log(cold->px > 0.01f ? (double)cold->px : 0.01) - d / beta : 0;
			z = lq < -0.7 ? q_to_z(lq) : 0;
		}
		/* Short history: the single sample against the long-run Gaussian
		 * of the moving average, its sd floored at `single_floor` (a
		 * score that is nearly always 0 has a tiny sd), scored on its own
		 * below; no extra state. */
		if (n <= m->lk_single_for)
			z1 = (u - s->mean) / (sd > m->lk_single_floor ? sd : m->lk_single_floor);
		if (instant) {
			double sd1 = sqrt(cold->var1);
			if (sd1 < m->lk_min_std)
				sd1 = m->lk_min_std;
			double zi = (u - cold->mean1) / sd1;
			if (zi > z)
				z = zi;
		}
	}
	if (learn && exp_tail) {
		double a = s->n < m->lk_halflife ? 1.0 / (s->n + 1) : m->lk_alpha;
		double d = avg - s->mean;
		cold->ex += (float)(a * ((d > 0 ? d : 0) - (double)cold->ex));
		cold->px += (float)(a * ((d > 0 ? 1.0 : 0.0) - (double)cold->px));
	}
	if (!learn) {
		*zout = 0;
		return 0;
	}
	gauss_learn(&s->mean, &s->var, s->n, m->lk_halflife_n, m->lk_alpha, avg,
	            plain ? 0 : m->lk_clip, m->lk_min_std);
	if (instant)
		gauss_learn(&cold->mean1, &cold->var1, s->n, m->lk_halflife_n, m->lk_alpha, u, m->lk_clip,
		            m->lk_min_std);
	if (s->n < UINT32_MAX)
		s->n++;
	*zout = z;
	if (plain || m->lk_qref > 0) {
		/* Calibrate the Gaussian tail with the observed frequency of tail
		 * events at level qref: if they happen c times more often than the
		 * model says, tail probabilities are c times larger (never smaller). */
		if (s->rate <= 0)
			s->rate = (float)m->lk_qref;
		double c = (double)s->rate / m->lk_qref;
		double lc = c > 1 ? log(c) : 0; /* once for both tails */
		double a = m->lk_alpha, sc;
		/* The single sample's tail (the sample's own z1, with the same
		 * calibration factor; the rate learns from the moving average
		 * only) replaces the average's if its score is higher. Its
		 * erfc and log are not formed when it cannot be (z1 at least
		 * LK_TAIL_GAP below z: its log tail is the larger, so is its
		 * sum with lc, and its score not the higher), and the
		 * average's are not when z1 is that far above (its score is
		 * surely the lower) and z below lk_z_rate (its tail surely
		 * no tail event for the rate): the same doubles as forming
		 * both and comparing. */
		int tail1 = z1 > 0 && !(z1 <= z - LK_TAIL_GAP);
		if (tail1 && z > 0 && z < m->lk_z_rate && z1 >= z + LK_TAIL_GAP) {
			s->rate += (float)(a * (0.0 - (double)s->rate));
			sc = -(log_tail(z1) + lc) / m->lk_dln10;
			*zout = z1;
		} else {
			double lq = z > 0 ? log_tail(z) : log(0.5);
			if (c > 1)
				lq += lc;
			s->rate += (float)(a * ((lq < m->lk_log_qref ? 1.0 : 0.0) - (double)s->rate));
			sc = -lq / m->lk_dln10;
			if (tail1) {
				double lq1 = log_tail(z1) + lc;
				double sc1 = -lq1 / m->lk_dln10;
				if (sc1 > sc) {
					sc = sc1;
					*zout = z1;
				}
			}
		}
		return sc < 0 ? 0 : sc > 1 ? 1 : sc;
	}
	if (z1 > z) {
		*zout = z1;
		z = z1;
	}
	return tail_score(z, m->lk_decades);
}

/* A component scored directly (`direct: D`): raw / (raw + D), without the
 * likelihood stage, so a series' frequent spikes are not learnt as normal.
 * *lqout is the log tail probability of that score; direct_z() turns it
 * into the Gaussian z whose log-scaled tail gives the same score, so a
 * detection from this path compares with the likelihood stages' evidence
 * (refire). That z is only needed when a detection is armed, so it is
 * computed then (q_to_z costs a dozen libm calls), not per sample. */
static inline double direct_score(double raw, double d)
{
	return raw / (raw + d);
}

/* the log tail probability of direct score sc */
static inline double direct_lq(const struct model *m, double sc)
{
	return -sc * m->lk_decades * M_LN10;
}

static double direct_z(double lq)
{
	return lq < -0.7 ? q_to_z(lq) : 0;
}

const char *det_drop_name(enum det_drop d)
{
	switch (d) {
	case DET_DROP_NON_FINITE: return "non_finite";
	case DET_DROP_DUPLICATE: return "duplicate";
	case DET_DROP_OUT_OF_ORDER: return "out_of_order";
	default: return "";
	}
}

static void prefetch_range(const void *p, size_t n)
{
	const char *c = p;
	for (size_t off = 0; off < n; off += 64)
		__builtin_prefetch(c + off, 1);
	if (n)
		__builtin_prefetch(c + n - 1, 1);
}

/* One prefetch per line of the plan, unrolled: b + line[k] for k = n - 1
 * down to 0 (the first line of the state first). Inlined always: as a
 * function of its own, GCC finds it free of side effects (a prefetch has
 * none it models) and drops the call. */
#define PF_LINE(k)                                       \
	case (k) + 1:                                        \
		__builtin_prefetch(b + line[k], 1);              \
		__attribute__((fallthrough))
static inline __attribute__((always_inline)) void
prefetch_lines(const char *b, const int16_t *line, int n)
{
	switch (n) {
	PF_LINE(31); PF_LINE(30); PF_LINE(29); PF_LINE(28); PF_LINE(27); PF_LINE(26);
	PF_LINE(25); PF_LINE(24); PF_LINE(23); PF_LINE(22); PF_LINE(21); PF_LINE(20);
	PF_LINE(19); PF_LINE(18); PF_LINE(17); PF_LINE(16); PF_LINE(15); PF_LINE(14);
	PF_LINE(13); PF_LINE(12); PF_LINE(11); PF_LINE(10); PF_LINE(9); PF_LINE(8);
	PF_LINE(7); PF_LINE(6); PF_LINE(5); PF_LINE(4); PF_LINE(3); PF_LINE(2);
	PF_LINE(1); PF_LINE(0);
	default:
		break;
	}
}
#undef PF_LINE

static __attribute__((noinline)) void prefetch_hooks(const struct model *m, const char *b,
                                                     int64_t ts_ms)
{
	for (int i = 0; i < m->npf_hook; i++) {
		const struct comp_inst *ci = &m->comp[m->pf_hook[i]];
		ci->kind->prefetch(ci->p, b + ci->off, ts_ms);
	}
}

/* The header, the likelihood states and the components' states whole, as
 * ranges merged once (model_finish), then the components that prefetch
 * only the part a sample at ts_ms touches. The ranges are asked for as the
 * lines they cover (pf_line: each line once, without a loop per range)
 * when the state is 8-aligned, as the engine's are. */
void model_prefetch(const struct model *m, const void *state, int64_t ts_ms)
{
	const char *b = state;
	uintptr_t a = (uintptr_t)b;
	if (m->pf_lines && !(a & 7)) {
		unsigned j = (unsigned)(a >> 3) & 7;
		prefetch_lines(b, m->pf_line[j], m->pf_nline[j]);
	} else {
		for (int i = 0; i < m->npf; i++)
			prefetch_range(b + m->pf[i].off, m->pf[i].len);
	}
	/* the hooks: one (as in the default model) by a tail call, more
	 * through prefetch_hooks, so that this function calls nothing
	 * itself and saves no registers */
	if (m->npf_hook == 1) {
		const struct comp_inst *ci = &m->comp[m->pf_hook[0]];
		ci->kind->prefetch(ci->p, b + ci->off, ts_ms);
	} else if (m->npf_hook > 1)
		prefetch_hooks(m, b, ts_ms);
}

static inline void comp_linear(struct comp_out *o)
{
	if (o->mag > 0) {
		o->expected = o->mag * sinh(o->expected);
		o->lower = o->mag * sinh(o->lower);
		o->upper = o->mag * sinh(o->upper);
		o->mag = 0;
	}
}

/* Advances the series clock: the typical interval (a streaming median in log
 * space) and the steps since the previous sample, in c->steps (1 to 64). */
static inline void clock_advance(struct model_hdr *h, int64_t ts_ms, struct comp_ctx *c)
{
	c->ts_ms = ts_ms;
	c->steps = 1;
	if (h->n > 0) {
		double dt = (double)(ts_ms - h->last_ts);
		if (dt < 1)
			dt = 1;
		if (h->interval <= 0)
			h->interval = (float)dt;
		c->steps = dt / (double)h->interval;
		if (c->steps < 1)
			c->steps = 1;
		else if (c->steps > 64)
			c->steps = 64;
		/* streaming median of the interval, in log space */
		if (dt > (double)h->interval)
			h->interval *= 1.02f;
		else if (dt < (double)h->interval)
			h->interval *= 0.98f;
	}
	h->last_ts = ts_ms;
	if (h->n < UINT32_MAX)
		h->n++;
	c->n = h->n;
	c->interval_ms = h->interval;
}

/* What one pass over the components leaves for the combination: the best
 * (weighted) score with its evidence, component and outputs, the first
 * component with a baseline, and the sums each combine rule needs. Each
 * component's outputs stay in o[] (ob and o0 point there, or at zero
 * outputs when there is no such component), not copied. */
struct comp_scan {
	double least, bz, best, prod, sum, wsum;
	double bsd;  /* bz_direct: the best's direct score (bz is direct_z of its lq) */
	int bz_direct;
	int bi, base;
	struct comp_out *ob, *o0;
	struct comp_out none; /* zero outputs */
	struct comp_out o[MAX_COMPONENTS];
};

/* fast (a constant where it is inlined): the model combines by max, with
 * the plain likelihood stage (likelihood()), as the default does
 * (model->fast, set by model_finish): the sums only the other combine
 * rules read are not kept. */
static inline __attribute__((always_inline)) void
components_run(const struct model *m, void *state, struct comp_ctx *c, int learn,
               struct comp_scan *r, const int fast)
{
	r->least = 2;
	r->bz = 0;
	r->bsd = 0;
	r->bz_direct = 0;
	r->best = -1;
	r->prod = 1;
	r->sum = 0;
	r->wsum = 0;
	r->bi = 0;
	r->base = -1;
	r->none = (struct comp_out){ 0 };
	r->ob = r->o0 = &r->none;
	for (int i = 0; i < m->ncomp; i++) {
		const struct comp_inst *ci = &m->comp[i];
		struct comp_out *o = &r->o[i];
		*o = (struct comp_out){ 0, NAN, NAN, NAN, 0, 0, 0 };
		ci->kind->update(ci->p, (char *)state + ci->off, c, o);
		if (o->season != 0 && isfinite(o->season))
			c->season = o->season;
		double sc, z = o->raw, sd = 0;
		int direct = 0; /* sc is the direct score sd: z is direct_z of its lq, if needed */
		if (!isfinite(o->raw))
			sc = z = 0; /* not ready (or beyond float range): no score, no learning */
		else {
			if (ci->no_lk)
				sc = z = 0;
			else if (fast)
				sc = likelihood(m, (struct lk_state *)((char *)state + ci->lk_off),
				                o->raw, learn, c->n, &z, 1);
			else if (m->lk_enabled)
				sc = likelihood(m, (struct lk_state *)((char *)state + ci->lk_off),
				                o->raw, learn, c->n, &z, 0);
			else
				sc = o->raw / (o->raw + m->raw_scale);
			sd = ci->direct > 0 ? direct_score(o->raw, ci->direct) : 0;
			if (sd > sc) {
				sc = sd;
				direct = 1;
			}
		}
		sc *= ci->weight;
		if (sc > r->best) {
			r->best = sc;
			r->bz = direct ? 0 : z;
			r->bsd = direct ? sd : 0;
			r->bz_direct = direct;
			r->bi = i;
			r->ob = o;
		}
		if (r->base < 0 && !isnan(o->expected)) {
			r->base = i;
			r->o0 = o;
		}
		if (!fast) {
			if (sc < r->least)
				r->least = sc;
			r->prod *= 1 - sc;
			r->sum += sc;
			r->wsum += ci->weight;
		}
	}
}

/* the model's combine rule over the scan, clamped to [0,1] (NaN -> 0) */
static inline __attribute__((always_inline)) double
components_combine(const struct model *m, const struct comp_scan *r, const int fast)
{
	double combined = 0;
	switch (fast ? COMBINE_MAX : m->combine) {
	case COMBINE_MAX:
		combined = r->best;
		break;
	case COMBINE_NOISY_OR:
		combined = 1 - r->prod;
		break;
	case COMBINE_MEAN:
		combined = r->wsum > 0 ? r->sum / r->wsum : 0;
		break;
	case COMBINE_MIN:
		combined = r->least;
		break;
	}
	if (!(combined >= 0))
		combined = 0; /* also NaN */
	if (combined > 1)
		combined = 1;
	return combined;
}

/* The evidence (z) of the best component of the scan. */
static inline double scan_bz(const struct model *m, const struct comp_scan *r)
{
	return r->bz_direct ? direct_z(direct_lq(m, r->bsd)) : r->bz;
}

/* One detection per event: caps the score for `suppress` samples (or
 * `suppress_for` of event time, or a share of the history) after a
 * detection, and records a new detection. Returns the score to report. */
static inline __attribute__((always_inline)) double
suppress_gate(const struct model *m, struct model_hdr *h, int64_t ts_ms, double value,
              double combined, int dir, const struct comp_scan *r)
{
	/* suppression that grows with the history seen (capped): the longer a
	 * series has been watched, the longer one detection covers */
	int in_sup = 0;
	if (h->since_fire != UINT32_MAX) { /* only after a detection */
		double sup_frac = m->suppress_frac * (double)h->n;
		if (sup_frac > m->suppress_max)
			sup_frac = m->suppress_max;
		in_sup = h->since_fire < m->suppress || ts_ms - h->fire_ts < m->suppress_ms ||
		         (double)h->since_fire < sup_frac;
	}
	/* A refire is a new incident: its evidence is `refire` times that of the
	 * detection, and the episode that detection started is over (the score
	 * fell below `hold` since), so a rise that merely keeps growing after
	 * its first crossing does not detect twice. */
	/* Renew: a score at its ceiling (tail probability 10^-decades or less)
	 * after the series went back to its normal side of the detection's
	 * reference and stayed there, from the end of that detection's episode
	 * on, for the likelihood window (so the stage's moving average no longer
	 * holds the first event), is a new, separate event whatever its evidence
	 * compared with the first: a bursty series whose bursts run into each
	 * other, or that keeps returning beyond the reference, stays held. */
	int renew = m->renew && in_sup &&
	            (h->fire_dip & (FIRE_DIP | FIRE_STIR)) == FIRE_DIP &&
	            (unsigned)(h->fire_dip / FIRE_CALM1) >= (unsigned)m->lk_window && combined >= 1;
	if (in_sup && !renew &&
	    !(m->refire > 0 && (h->fire_dip & FIRE_DIP) && combined >= m->arm &&
	      scan_bz(m, r) > m->refire * (double)h->fire_z)) {
		/* Suppressed: capped at `hold`, and held there while the sample is
		 * still outside the band on the side that fired (hysteresis for a
		 * sustained shift). */
		int persists;
		if (isnan(h->fire_ref))
			persists = dir != 0 && dir == h->fire_dir;
		else
			persists = h->fire_dir > 0 ? value > (double)h->fire_ref :
			           h->fire_dir < 0 ? value < (double)h->fire_ref : 0;
		if (h->fire_dip & FIRE_DIP) {
			/* after the episode: count the samples, note a return
			 * beyond the reference */
			if (persists)
				h->fire_dip |= FIRE_STIR;
			if (h->fire_dip / FIRE_CALM1 < FIRE_CALM_MAX)
				h->fire_dip = (uint16_t)(h->fire_dip + FIRE_CALM1);
		} else if (combined < m->hold)
			h->fire_dip = FIRE_DIP; /* the episode of the detection is over */
		if (combined > m->hold || persists)
			combined = m->hold;
		h->since_fire++;
	} else if (combined >= m->arm) {
		h->since_fire = 0;
		h->fire_ts = ts_ms;
		h->fire_z = (float)scan_bz(m, r);
		/* While the history is short (the single-sample path of the
		 * likelihood stage is on: at most `single_for` samples), the
		 * long-run scale a detection's z is measured against has been
		 * learnt from a few hundred samples and is often near its floor,
		 * so the size of that z says little beyond "it crossed the
		 * threshold": the bar it sets for a second detection counts it
		 * at most as the alert threshold's own z (refire then needs
		 * `refire` times that). With a longer history the detection's
		 * own z stands. */
		if (m->lk_enabled && h->n <= m->lk_single_for) {
			double zt = q_to_z(-m->alert.threshold * m->lk_decades * M_LN10);
			if ((double)h->fire_z > zt)
				h->fire_z = (float)zt;
		}
		h->fire_dir = (int16_t)dir;
		h->fire_dip = 0;
		const struct comp_out *f = !isnan(r->ob->expected) ? r->ob : r->o0;
		double edge = dir > 0 ? f->upper : f->lower;
		h->fire_ref = (dir != 0 && !isnan(f->expected) && !isnan(edge)) ?
		              (float)(0.5 * (f->expected + edge)) : NAN;
	} else if (h->since_fire != UINT32_MAX) {
		h->since_fire++;
	}
	return combined;
}

static inline __attribute__((always_inline)) void
model_update_k(const struct model *m, void *state, int64_t ts_ms, double value,
               struct det_result *out, const int fast)
{
	struct model_hdr *h = state;
	struct comp_ctx c;
	c.value = value;
	c.season = 0;
	clock_advance(h, ts_ms, &c);
	/* Warm-up: `warmup` samples, or on a slow series `warmup_for` of event
	 * time (samples times the typical interval, so gaps do not count), with
	 * at least WARM_MIN_SAMPLES. The likelihood stages learn from halfway. */
	int warm = 1, learn = 1;
	if (h->n <= m->warmup) { /* the series' age only matters until then */
		double age = (double)h->n * (double)h->interval;
		warm = m->warmup_ms > 0 && age >= (double)m->warmup_ms && h->n > WARM_MIN_SAMPLES;
		learn = h->n > m->warmup / 2 ||
		        (m->warmup_ms > 0 && age >= 0.5 * (double)m->warmup_ms &&
		         h->n > WARM_MIN_SAMPLES / 2);
	}

	struct comp_scan r;
	components_run(m, state, &c, learn, &r, fast);
	/* the band of the outputs used below, back from asinh space (once:
	 * ob and o0 may be the same component's) */
	comp_linear(r.ob);
	if (r.o0 != r.ob)
		comp_linear(r.o0);
	double combined = components_combine(m, &r, fast);
	if (!warm)
		combined = 0;
	int dir = r.ob->direction ? r.ob->direction : (r.base >= 0 ? r.o0->direction : 0);
	combined = suppress_gate(m, h, ts_ms, value, combined, dir, &r);

	out->score = combined;
	out->component = m->comp[r.bi].kind->name;
	const struct comp_out *o = r.o0;
	if (!isnan(r.ob->expected) || r.base < 0)
		o = r.ob;
	out->expected = o->expected;
	out->lower = o->lower;
	out->upper = o->upper;
	out->direction = dir;
}

void model_update(const struct model *m, void *state, int64_t ts_ms, double value,
                  struct det_result *out)
{
	if (m->fast)
		model_update_k(m, state, ts_ms, value, out, 1);
	else
		model_update_k(m, state, ts_ms, value, out, 0);
}
