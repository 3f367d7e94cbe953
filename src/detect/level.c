/* detect/level.c — "level": robust EWMA baseline of the value.
 *
 * Keeps an exponentially weighted mean mu and mean absolute deviation d of the
 * residual (Huber-clipped, so one outlier barely moves either). The raw score
 * is the absolute residual in robust sigmas, |x - mu| / (1.2533 d), with d
 * floored so that flat series do not divide by zero.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/detectors.h"

enum { P_HALFLIFE, P_DEV_HALFLIFE, P_CLIP, P_BAND, P_MIN_REL, P_LOG };

static const struct param_def params[] = {
	{ "halflife", PARAM_NUMBER, 32, 1, 1e6 },      /* samples, mean */
	{ "dev_halflife", PARAM_NUMBER, 1000, 1, 1e6 }, /* samples, deviation */
	{ "clip", PARAM_NUMBER, 4, 0.5, 100 },         /* Huber clip, sigmas */
	{ "band", PARAM_NUMBER, 3, 0.5, 100 },         /* band half-width, sigmas */
	{ "min_rel_dev", PARAM_NUMBER, 1e-3, 0, 1 },   /* deviation floor relative to |mu| */
	{ "log", PARAM_BOOL, 0, 0, 1 },                /* model asinh(x / typical |x|) instead of x */
};

struct level_state {
	double mu;
	float dev;
	float absmax; /* running scale of |x| for the floor */
	uint32_t n;
	float mag;    /* typical |x| (log mode) */
	float pad;
};

static size_t level_size(const double *p)
{
	return sizeof(struct level_state);
}

static void level_init(const double *p, void *state)
{
	memset(state, 0, sizeof(struct level_state));
}

static void level_update(const double *p, void *state, const struct comp_ctx *c,
                         struct comp_out *o)
{
	struct level_state *s = state;
	double x = c->value;
	double mag = 1;
	if (p[P_LOG] > 0) {
		x = det_asinh_scale(&s->mag, s->n, x, &mag);
	}
	if (s->n == 0) {
		s->mu = x;
		s->dev = 0;
		s->absmax = (float)fabs(x);
		s->n = 1;
		o->raw = 0;
		o->expected = c->value;
		o->lower = o->upper = c->value;
		o->direction = 0;
		return;
	}
	double floor = p[P_MIN_REL] * (double)s->absmax + 1e-12;
	double sigma = 1.2533 * (double)s->dev;
	if (sigma < floor)
		sigma = floor;
	double r = x - s->mu;
	double z = r / sigma;
	o->raw = fabs(z);
	o->expected = s->mu;
	o->lower = s->mu - p[P_BAND] * sigma;
	o->upper = s->mu + p[P_BAND] * sigma;
	o->direction = x > o->upper ? 1 : x < o->lower ? -1 : 0;
	if (p[P_LOG] > 0)
		o->mag = mag; /* mapped back by model_update if reported */

	/* warm start: running means until the EWMA weights take over */
	double a = det_warm_alpha(p[P_HALFLIFE], c->steps, s->n);
	double ad = det_warm_alpha(p[P_DEV_HALFLIFE], c->steps, s->n);
	double lim = p[P_CLIP] * sigma;
	double rc = r;
	if (s->n > 8) {
		if (rc > lim)
			rc = lim;
		else if (rc < -lim)
			rc = -lim;
	}
	s->mu += a * rc;
	s->dev += (float)(ad * (fabs(rc) - (double)s->dev));
	if (p[P_LOG] > 0)
		det_mag_learn(&s->mag, ad, c->value);
	float ax = (float)fabs(x);
	s->absmax = ax > s->absmax ? ax : s->absmax + (float)ad * (ax - s->absmax);
	if (s->n < UINT32_MAX)
		s->n++;
}

const struct comp_kind comp_level = {
	.name = "level",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = level_size,
	.init = level_init,
	.update = level_update,
};
