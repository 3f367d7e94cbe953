/* detect/record.c — "record": how far a sample breaks the recent range.
 *
 * Keeps a slow robust mean mu and deviation d of the value (on asinh(x/|x|~)
 * with `log`), and a decayed running maximum and minimum that relax towards
 * mu with half-life `halflife` samples. The raw score is how far the sample
 * lies beyond that range, in robust sigmas: 0 inside the range, so the many
 * ordinary bursts of a spiky series that stay below earlier peaks score
 * nothing, while a value beyond anything seen for a while scores high.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/detectors.h"

enum { P_HALFLIFE, P_MEAN_HALFLIFE, P_LOG, P_MIN_REL, P_MARGIN, P_HALFLIFE_T, P_DESEASON };
/* derived (record_prepare): the weights of one sampling interval */
enum { A_HALFLIFE = DET_MAX_PARAMS, A_MEAN_HALFLIFE };

static const struct param_def params[] = {
	{ "halflife", PARAM_NUMBER, 2000, 1, 1e7 },     /* range relaxation, samples */
	{ "mean_halflife", PARAM_NUMBER, 1000, 1, 1e7 },/* mean and deviation, samples */
	{ "log", PARAM_BOOL, 0, 0, 1 },
	{ "min_rel_dev", PARAM_NUMBER, 1e-3, 0, 1 },
	{ "margin", PARAM_NUMBER, 0, 0, 100 },          /* sigmas inside the range that already count */
	{ "halflife_time", PARAM_DURATION, 0, 0, 3650 * 86400e3 }, /* range relaxation in event time (0: use halflife) */
	{ "deseason", PARAM_BOOL, 0, 0, 1 }, /* judge value - the seasonal profile's offset */
};

struct record_state {
	double mu;
	float dev, hi, lo, mag, absmax;
	uint32_t n;
};

/* the event-time relaxation's weight (halflife_time), per thread */
static __thread struct det_alpha_memo record_memo = DET_ALPHA_MEMO_INIT;

static size_t record_size(const double *p)
{
	return sizeof(struct record_state);
}

static void record_prepare(double *p)
{
	p[A_HALFLIFE] = det_alpha(p[P_HALFLIFE], 1);
	p[A_MEAN_HALFLIFE] = det_alpha(p[P_MEAN_HALFLIFE], 1);
}

static void record_init(const double *p, void *state)
{
	memset(state, 0, sizeof(struct record_state));
}

/* plain (a constant where it is inlined): no `log`, no `halflife_time`,
 * and one sampling interval since the last sample (c->steps 1, so the
 * weights are the prepared ones): no call is left on the path, so the
 * function needs no saved registers. */
static inline __attribute__((always_inline)) void
record_update_k(const double *p, void *state, const struct comp_ctx *c, struct comp_out *o,
                const int plain)
{
	struct record_state *s = state;
	/* the range is kept in floats: clamp so that one absurd value cannot
	 * turn it into inf/NaN for good */
	double v = p[P_DESEASON] > 0 ? c->value - c->season : c->value;
	double x = v > 1e30 ? 1e30 : v < -1e30 ? -1e30 : v;
	/* no band: expected, lower and upper stay NAN, direction 0 (as given) */
	double x0 = x;
	if (!plain && p[P_LOG] > 0) {
		double mag;
		x = det_asinh_scale(&s->mag, s->n, x, &mag);
	}
	if (s->n == 0) {
		s->mu = x;
		s->hi = s->lo = (float)x;
		s->absmax = (float)fabs(x);
		s->n = 1;
		o->raw = 0;
		return;
	}
	double floor = p[P_MIN_REL] * (double)s->absmax + 1e-12;
	double sigma = 1.2533 * (double)s->dev;
	if (sigma < floor)
		sigma = floor;
	double up = (x - ((double)s->hi - p[P_MARGIN] * sigma)) / sigma;
	double dn = (((double)s->lo + p[P_MARGIN] * sigma) - x) / sigma;
	o->raw = up > 0 ? up : dn > 0 ? dn : 0;
	o->direction = up > 0 ? 1 : dn > 0 ? -1 : 0;

	const double steps = plain ? 1 : c->steps;
	double a = det_warm_alpha1(p[A_MEAN_HALFLIFE], p[P_MEAN_HALFLIFE], steps, s->n);
	double r = x - s->mu;
	double lim = 4 * sigma;
	double rc = s->n > 8 ? (r > lim ? lim : r < -lim ? -lim : r) : r;
	s->mu += a * rc;
	s->dev += (float)(a * (fabs(rc) - (double)s->dev));
	double ar;
	if (!plain && p[P_HALFLIFE_T] > 0 && c->interval_ms > 0)
		ar = det_alpha_at(&record_memo, p[P_HALFLIFE_T] / c->interval_ms, steps);
	else
		ar = det_alpha1(p[A_HALFLIFE], p[P_HALFLIFE], steps);
	double hi = (double)s->hi - ar * ((double)s->hi - s->mu);
	double lo = (double)s->lo - ar * ((double)s->lo - s->mu);
	s->hi = (float)(x > hi ? x : hi);
	s->lo = (float)(x < lo ? x : lo);
	if (!plain && p[P_LOG] > 0)
		det_mag_learn(&s->mag, a, x0);
	float ax = (float)fabs(x);
	s->absmax = ax > s->absmax ? ax : s->absmax + (float)a * (ax - s->absmax);
	if (s->n < UINT32_MAX)
		s->n++;
}

static __attribute__((noinline)) void record_update_any(const double *p, void *state,
                                                        const struct comp_ctx *c, struct comp_out *o)
{
	record_update_k(p, state, c, o, 0);
}

static void record_update(const double *p, void *state, const struct comp_ctx *c,
                          struct comp_out *o)
{
	if (c->steps == 1 && !(p[P_LOG] > 0) && !(p[P_HALFLIFE_T] > 0))
		record_update_k(p, state, c, o, 1);
	else
		record_update_any(p, state, c, o);
}

const struct comp_kind comp_record = {
	.name = "record",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = record_size,
	.init = record_init,
	.update = record_update,
	.prepare = record_prepare,
};
