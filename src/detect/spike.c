/* detect/spike.c — "spike": a sample far beyond the series' recent extremes.
 *
 * A robust baseline (EWMA mean and mean absolute deviation of Huber-clipped
 * residuals, so an outlier moves neither by more than `clip` sigmas and an
 * incident's level is not learnt as normal quickly) gives each sample its
 * robust z. The component also remembers the largest |z| of the recent past
 * (a running maximum that decays towards 0 with half-life `memory`, in event
 * time), floored at 3 (about the largest |z| of Gaussian noise over a few
 * hundred samples). The raw score is how many times |z| exceeds that
 * remembered extreme, minus one: an isolated spike on a quiet series scores
 * about z/3, while spikes that recur (a load balancer's periodic bursts, a
 * busy feed) keep the remembered extreme at their own size and score
 * nothing, whatever their scale. Meant to be scored directly
 * (`direct:` in the model), beside the likelihood stages, which learn
 * frequent spikes as normal by design.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/detectors.h"

#define Z_FLOOR 3.0 /* the remembered extreme never counts as less than this */

enum { P_HALFLIFE, P_DEV_HALFLIFE, P_CLIP, P_MEMORY, P_MIN_REL, P_LOG };
/* derived (spike_prepare): the weights of one sampling interval */
enum { A_HALFLIFE = DET_MAX_PARAMS, A_DEV_HALFLIFE };

static const struct param_def params[] = {
	{ "halflife", PARAM_NUMBER, 32, 1, 1e6 },       /* mean, samples */
	{ "dev_halflife", PARAM_NUMBER, 256, 1, 1e6 },  /* deviation, samples */
	{ "clip", PARAM_NUMBER, 3, 0.5, 100 },          /* Huber clip of the updates, sigmas */
	{ "memory", PARAM_DURATION, 86400e3, 1e3, 3650 * 86400e3 }, /* half-life of the remembered extreme */
	{ "min_rel_dev", PARAM_NUMBER, 1e-3, 0, 1 },    /* deviation floor relative to |x| */
	{ "log", PARAM_BOOL, 0, 0, 1 },                 /* asinh(x / typical |x|) instead of x */
};

struct spike_state {
	double mu;
	float dev, zmax, mag, absmax;
	uint32_t n;
	float pad;
};

/* the remembered extreme's weight, per thread (det_alpha_at) */
static __thread struct det_alpha_memo spike_memo = DET_ALPHA_MEMO_INIT;

/* the remembered extreme decays by event time: `memory` in intervals */
static inline double spike_hl(const double *p, const struct comp_ctx *c)
{
	return c->interval_ms > 0 ? p[P_MEMORY] / c->interval_ms : 1;
}

static size_t spike_size(const double *p)
{
	return sizeof(struct spike_state);
}

static void spike_prepare(double *p)
{
	p[A_HALFLIFE] = det_alpha(p[P_HALFLIFE], 1);
	p[A_DEV_HALFLIFE] = det_alpha(p[P_DEV_HALFLIFE], 1);
}

static void spike_init(const double *p, void *state)
{
	memset(state, 0, sizeof(struct spike_state));
}

/* plain (a constant where it is inlined): no `log`, one sampling interval
 * since the last sample (c->steps 1, so the weights are the prepared ones)
 * and the memory's weight am from the memo (a hit): no call is left on the
 * path, so the function needs no saved registers. */
static inline __attribute__((always_inline)) void
spike_update_k(const double *p, void *state, const struct comp_ctx *c, struct comp_out *o,
               const int plain, double am)
{
	struct spike_state *s = state;
	double x = c->value > 1e30 ? 1e30 : c->value < -1e30 ? -1e30 : c->value;
	double x0 = x, mag = 0;
	if (!plain && p[P_LOG] > 0)
		x = det_asinh_scale(&s->mag, s->n, x, &mag);
	if (s->n == 0) {
		s->mu = x;
		s->absmax = (float)fabs(x);
		s->n = 1;
		o->raw = 0;
		return;
	}
	double floor = p[P_MIN_REL] * (double)s->absmax + 1e-12;
	double sigma = 1.2533 * (double)s->dev;
	if (sigma < floor)
		sigma = floor;
	double r = x - s->mu;
	double az = fabs(r) / sigma;
	if (az > 1e30)
		az = 1e30; /* stored as a float */
	/* the remembered extreme decays by event time (am: plain's caller
	 * took it from the memo) */
	const double steps = plain ? 1 : c->steps;
	if (!plain)
		am = det_alpha_at(&spike_memo, spike_hl(p, c), steps);
	double zmax = (double)s->zmax * (1 - am);
	double ref = zmax > Z_FLOOR ? zmax : Z_FLOOR;
	o->raw = az > ref ? az / ref - 1 : 0;
	o->direction = o->raw > 0 ? (r > 0 ? 1 : -1) : 0;
	s->zmax = (float)(az > zmax ? az : zmax);

	double a = det_warm_alpha1(p[A_HALFLIFE], p[P_HALFLIFE], steps, s->n);
	double ad = det_warm_alpha1(p[A_DEV_HALFLIFE], p[P_DEV_HALFLIFE], steps, s->n);
	double lim = p[P_CLIP] * sigma;
	double rc = s->n > 8 ? (r > lim ? lim : r < -lim ? -lim : r) : r;
	s->mu += a * rc;
	s->dev += (float)(ad * (fabs(rc) - (double)s->dev));
	if (!plain && p[P_LOG] > 0)
		det_mag_learn(&s->mag, ad, x0);
	float ax = (float)fabs(x);
	s->absmax = ax > s->absmax ? ax : s->absmax + (float)ad * (ax - s->absmax);
	if (s->n < UINT32_MAX)
		s->n++;
}

static __attribute__((noinline)) void spike_update_any(const double *p, void *state,
                                                       const struct comp_ctx *c, struct comp_out *o)
{
	spike_update_k(p, state, c, o, 0, 0);
}

static void spike_update(const double *p, void *state, const struct comp_ctx *c,
                         struct comp_out *o)
{
	const struct det_alpha_memo *m = &spike_memo;
	if (c->steps == 1 && !(p[P_LOG] > 0) && m->steps == 1 && m->halflife == spike_hl(p, c))
		spike_update_k(p, state, c, o, 1, m->a);
	else
		spike_update_any(p, state, c, o);
}

const struct comp_kind comp_spike = {
	.name = "spike",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = spike_size,
	.init = spike_init,
	.update = spike_update,
	.prepare = spike_prepare,
};
