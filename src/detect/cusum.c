/* detect/cusum.c — "cusum": two-sided CUSUM change-point statistic.
 *
 * Standardises each sample against a slow robust EWMA (mean mu, deviation d)
 * and accumulates S+ = max(0, S+ + z - k), S- = max(0, S- - z - k). The raw
 * score is max(S+, S-) / h, so 1 means "a shift of about k sigma has held for
 * about h/k samples". When it passes 1 the statistic re-baselines on the fast
 * mean (the new level) and restarts, so one sustained shift alarms once per
 * `h` worth of evidence instead of forever.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/detectors.h"

enum { P_HALFLIFE, P_K, P_H, P_FAST, P_MIN_REL, P_DEV_HALFLIFE, P_LOG, P_DESEASON };
/* derived (cusum_prepare): the weights of one sampling interval */
enum { A_HALFLIFE = DET_MAX_PARAMS, A_FAST, A_DEV_HALFLIFE };

static const struct param_def params[] = {
	{ "halflife", PARAM_NUMBER, 256, 1, 1e6 },
	{ "k", PARAM_NUMBER, 1.0, 0, 20 },
	{ "h", PARAM_NUMBER, 8, 0.5, 1000 },
	{ "fast_halflife", PARAM_NUMBER, 4, 1, 1e4 },
	{ "min_rel_dev", PARAM_NUMBER, 1e-3, 0, 1 },
	{ "dev_halflife", PARAM_NUMBER, 256, 1, 1e6 },
	{ "log", PARAM_BOOL, 0, 0, 1 }, /* accumulate asinh(x / typical |x|) instead of x */
	{ "deseason", PARAM_BOOL, 0, 0, 1 }, /* accumulate value - the seasonal profile's offset */
};

struct cusum_state {
	double mu;
	float dev, fast, sp, sn, absmax;
	uint32_t n;
	float mag; /* typical |x| (log mode) */
	float pad;
};

static size_t cusum_size(const double *p)
{
	return sizeof(struct cusum_state);
}

static void cusum_prepare(double *p)
{
	p[A_HALFLIFE] = det_alpha(p[P_HALFLIFE], 1);
	p[A_FAST] = det_alpha(p[P_FAST], 1);
	p[A_DEV_HALFLIFE] = det_alpha(p[P_DEV_HALFLIFE], 1);
}

static void cusum_init(const double *p, void *state)
{
	memset(state, 0, sizeof(struct cusum_state));
}

/* plain (a constant where it is inlined): no `log`, and one sampling
 * interval since the last sample (c->steps 1, so the weights are the
 * prepared ones): no call is left on the path, so the function needs no
 * saved registers. */
static inline __attribute__((always_inline)) void
cusum_update_k(const double *p, void *state, const struct comp_ctx *c, struct comp_out *o,
               const int plain)
{
	struct cusum_state *s = state;
	double x = p[P_DESEASON] > 0 ? c->value - c->season : c->value;
	if (!plain && p[P_LOG] > 0) {
		double mag;
		x = det_asinh_scale(&s->mag, s->n, x, &mag);
	}
	/* no band: expected, lower and upper stay NAN, direction 0 (as given) */
	if (s->n == 0) {
		s->mu = x;
		s->fast = (float)x;
		s->absmax = (float)fabs(x);
		s->n = 1;
		o->raw = 0;
		return;
	}
	double floor = p[P_MIN_REL] * (double)s->absmax + 1e-12;
	double sigma = 1.2533 * (double)s->dev;
	if (sigma < floor)
		sigma = floor;
	double z = (x - s->mu) / sigma;
	if (z > 50)
		z = 50;
	else if (z < -50)
		z = -50;
	double sp = (double)s->sp + z - p[P_K];
	double sn = (double)s->sn - z - p[P_K];
	s->sp = (float)(sp > 0 ? sp : 0);
	s->sn = (float)(sn > 0 ? sn : 0);
	double stat = s->sp > s->sn ? s->sp : s->sn;
	o->raw = stat / p[P_H];
	o->direction = s->sp > s->sn ? 1 : s->sn > 0 ? -1 : 0;

	const double steps = plain ? 1 : c->steps;
	double a = det_warm_alpha1(p[A_HALFLIFE], p[P_HALFLIFE], steps, s->n);
	double af = det_alpha1(p[A_FAST], p[P_FAST], steps);
	s->fast += (float)(af * (x - (double)s->fast));
	double r = x - s->mu;
	double lim = 3 * sigma;
	double rc = r > lim ? lim : r < -lim ? -lim : r;
	if (s->n < 8)
		rc = r;
	if (o->raw >= 1.0) {
		s->mu = s->fast;
		s->sp = s->sn = 0;
	} else {
		s->mu += a * rc;
	}
	double ad = det_warm_alpha1(p[A_DEV_HALFLIFE], p[P_DEV_HALFLIFE], steps, s->n);
	s->dev += (float)(ad * (fabs(rc) - (double)s->dev));
	if (!plain && p[P_LOG] > 0)
		det_mag_learn(&s->mag, ad, c->value);
	float ax = (float)fabs(x);
	s->absmax = ax > s->absmax ? ax : s->absmax + (float)a * (ax - s->absmax);
	if (s->n < UINT32_MAX)
		s->n++;
}

static __attribute__((noinline)) void cusum_update_any(const double *p, void *state,
                                                       const struct comp_ctx *c, struct comp_out *o)
{
	cusum_update_k(p, state, c, o, 0);
}

static void cusum_update(const double *p, void *state, const struct comp_ctx *c,
                         struct comp_out *o)
{
	if (c->steps == 1 && !(p[P_LOG] > 0))
		cusum_update_k(p, state, c, o, 1);
	else
		cusum_update_any(p, state, c, o);
}

const struct comp_kind comp_cusum = {
	.name = "cusum",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = cusum_size,
	.init = cusum_init,
	.update = cusum_update,
	.prepare = cusum_prepare,
};
