/* detect/volatility.c — "volatility": change in the size of sample-to-sample moves.
 *
 * Tracks the mean absolute step |x_t - x_{t-1}| with a short EWMA s and a
 * long EWMA L (both warm-started). The raw score is |log((s + e) / (L + e))|,
 * e a small floor relative to L: large when a series that used to move
 * becomes flat (a stuck sensor, a dead feed) or a quiet series starts to
 * thrash, whatever its level. Direction: +1 noisier, -1 calmer. No expected
 * value (it does not model the level).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/detectors.h"

enum { P_SHORT, P_LONG, P_FLOOR };

static const struct param_def params[] = {
	{ "short_halflife", PARAM_NUMBER, 6, 1, 1e5 },  /* samples */
	{ "long_halflife", PARAM_NUMBER, 600, 2, 1e7 }, /* samples */
	{ "floor", PARAM_NUMBER, 0.05, 1e-6, 1 },       /* relative to the long mean step */
};

struct vol_state {
	double prev;
	float s, l;
	uint32_t n;
	uint32_t pad;
};

static size_t vol_size(const double *p)
{
	return sizeof(struct vol_state);
}

static void vol_init(const double *p, void *state)
{
	memset(state, 0, sizeof(struct vol_state));
}

static void vol_update(const double *p, void *state, const struct comp_ctx *c,
                       struct comp_out *o)
{
	struct vol_state *s = state;
	/* no band: expected, lower and upper stay NAN, direction 0 (as given) */
	if (s->n == 0) {
		s->prev = c->value;
		s->n = 1;
		o->raw = NAN;
		return;
	}
	double d = fabs(c->value - s->prev);
	s->prev = c->value;
	double as = det_warm_alpha(p[P_SHORT], c->steps, s->n - 1);
	double al = det_warm_alpha(p[P_LONG], c->steps, s->n - 1);
	s->s += (float)(as * (d - (double)s->s));
	if (s->n < 2 * (uint32_t)p[P_SHORT]) {
		s->l += (float)(al * (d - (double)s->l));
		s->n++;
		o->raw = NAN; /* not ready */
		return;
	}
	double e = p[P_FLOOR] * (double)s->l + 1e-12;
	double r = log(((double)s->s + e) / ((double)s->l + e));
	o->raw = fabs(r);
	o->direction = r > 0 ? 1 : r < 0 ? -1 : 0;
	s->l += (float)(al * (d - (double)s->l));
	if (s->n < UINT32_MAX)
		s->n++;
}

const struct comp_kind comp_volatility = {
	.name = "volatility",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = vol_size,
	.init = vol_init,
	.update = vol_update,
};
