/* detect/context.c — "context": novelty of short discretised patterns.
 *
 * In the spirit of CAD OSE (contextual anomaly detection): the value is
 * quantised into `bins` levels between a running minimum and maximum, and the
 * last three levels form a context. Contexts are counted in a small hashed
 * table (saturating 8-bit counters, all halved every `forget` samples so old
 * habits fade). The raw score is 1 / (1 + count) of the current context
 * before it is counted: 1 for a pattern never seen, small for a habit.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/detectors.h"

#define CTX_TABLE 512

enum { P_BINS, P_FORGET, P_ORDER };

static const struct param_def params[] = {
	{ "bins", PARAM_INT, 12, 2, 64 },
	{ "forget", PARAM_INT, 2048, 64, 1e7 }, /* samples between halvings */
	{ "order", PARAM_INT, 3, 1, 4 },        /* levels per context */
};

struct ctx_state {
	float lo, hi;
	uint32_t n;
	uint8_t hist[4];
	uint8_t tab[CTX_TABLE];
};

static size_t ctx_size(const double *p)
{
	return sizeof(struct ctx_state);
}

static void ctx_init(const double *p, void *state)
{
	memset(state, 0, sizeof(struct ctx_state));
}

static void ctx_update(const double *p, void *state, const struct comp_ctx *c,
                       struct comp_out *o)
{
	struct ctx_state *s = state;
	double x = c->value;
	int nb = (int)p[P_BINS];
	int order = (int)p[P_ORDER];
	/* no band: expected, lower and upper stay NAN, direction 0 (as given) */
	if (s->n == 0) {
		s->lo = s->hi = (float)x;
	}
	if (x < s->lo)
		s->lo = (float)x;
	if (x > s->hi)
		s->hi = (float)x;
	double span = (double)s->hi - (double)s->lo;
	int b = 0;
	if (span > 0) {
		b = (int)((x - s->lo) / span * nb);
		if (b >= nb)
			b = nb - 1;
		if (b < 0)
			b = 0;
	}
	memmove(s->hist + 1, s->hist, 3);
	s->hist[0] = (uint8_t)b;
	uint32_t h = 2166136261u;
	for (int i = 0; i < order; i++) {
		h ^= s->hist[i];
		h *= 16777619u;
	}
	h ^= h >> 15;
	uint8_t *cnt = &s->tab[h % CTX_TABLE];
	o->raw = (s->n >= (uint32_t)order) ? 1.0 / (1.0 + *cnt) : 0.0;
	if (*cnt < 255)
		(*cnt)++;
	s->n++;
	if (s->n % (uint32_t)p[P_FORGET] == 0)
		for (int i = 0; i < CTX_TABLE; i++)
			s->tab[i] >>= 1;
}

const struct comp_kind comp_context = {
	.name = "context",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = ctx_size,
	.init = ctx_init,
	.update = ctx_update,
};
