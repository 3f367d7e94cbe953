/* detect/acf.c — the causal season test of acf.h: a streaming sample
 * autocorrelation at two lags over the means of a ring of downsampled
 * stretches of event time. O(1) per sample (a stretch closes at most once
 * per sample; a gap marks at most the ring's length missing), no
 * allocation.
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/acf.h"
#include "detect/detectors.h"

_Static_assert(sizeof(struct acf_ring) == 64, "struct acf_ring is 64 bytes (acf.h)");

void acf_ring_init(struct acf_ring *a)
{
	memset(a, 0, sizeof *a);
	a->slot = INT64_MIN; /* no sample yet */
	memset(a->ring, (unsigned char)ACF_MISSING, sizeof a->ring);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int ring_at(int64_t slot, int slots)
{
	return (int)(((slot % slots) + slots) % slots);
}

/* Stretch a->slot is complete: pair its mean with the ones `short` and one
 * period earlier, learn, and store it. */
static void close_slot(struct acf_ring *a, const struct acf_shape *sh, double halflife)
{
	double h = (double)a->sum / a->cnt * 4; /* quarter-sigma steps */
	h = h > 127 ? 127 : h < -127 ? -127 : h;
	int8_t q = (int8_t)lrint(h);
	int i = ring_at(a->slot, sh->slots);
	int8_t full = a->ring[i], near = a->ring[ring_at(a->slot - sh->short_lag, sh->slots)];
	a->ring[i] = q;
	if (full == ACF_MISSING || near == ACF_MISSING)
		return;
	double w = det_warm_alpha(halflife * sh->slots, 1, a->n);
	double d = q - (double)a->m, m = (double)a->m + w * d;
	a->m = (float)m;
	a->v = (float)((1 - w) * ((double)a->v + w * d * d));
	a->c_short += (float)(w * ((q - m) * (near - m) - (double)a->c_short));
	a->c_full += (float)(w * ((q - m) * (full - m) - (double)a->c_full));
	if (a->n < UINT16_MAX)
		a->n++;
	/* the test reads only what was just learnt: its answer, until the next */
	a->season = (uint8_t)acf_ring_season(a, sh, halflife);
}

void acf_ring_enter(struct acf_ring *a, const struct acf_shape *sh, int64_t slot,
                    double halflife)
{
	if (a->slot != INT64_MIN) {
		if (a->cnt > 0)
			close_slot(a, sh, halflife);
		else /* only non-finite values in it */
			a->ring[ring_at(a->slot, sh->slots)] = ACF_MISSING;
		/* the stretches skipped by a gap are missing (all of them after
		 * a gap of a period or more) */
		int64_t skip = slot - a->slot - 1;
		if (skip > sh->slots)
			skip = sh->slots;
		for (int64_t k = 1; k <= skip; k++)
			a->ring[ring_at(a->slot + k, sh->slots)] = ACF_MISSING;
		a->cnt = 0;
		a->sum = 0;
	}
	a->slot = slot;
}

void acf_ring_add(struct acf_ring *a, const struct acf_shape *sh, int64_t ts_ms, double z,
                  double halflife)
{
	/* the stretch of the last ts_ms and length, per thread: the engine
	 * commits the samples of one timestamp together (a pure function, so a
	 * hit gives the same value; len is never 0, so the zeroed memo misses) */
	static __thread struct {
		int64_t ts_ms, len, slot;
	} memo;
	int64_t len = sh->period_ms / sh->slots > 0 ? sh->period_ms / sh->slots : 1;
	if (memo.ts_ms != ts_ms || memo.len != len) {
		memo.ts_ms = ts_ms;
		memo.len = len;
		memo.slot = floor_div(ts_ms, len);
	}
	acf_ring_add_at(a, sh, memo.slot, z, halflife);
}

double acf_ring_rho(const struct acf_ring *a, int full)
{
	if (!(a->v > 0))
		return 0;
	return (double)(full ? a->c_full : a->c_short) / (double)a->v;
}

int acf_ring_season(const struct acf_ring *a, const struct acf_shape *sh, double halflife)
{
	if (a->n < 2 * sh->slots)
		return 0;
	static __thread struct det_alpha_memo memo = DET_ALPHA_MEMO_INIT;
	double w = det_alpha_at(&memo, halflife * sh->slots, 1);
	double neff = (2 - w) / w;
	if (neff > a->n)
		neff = a->n;
	double se = 1 / sqrt(neff), full = acf_ring_rho(a, 1);
	return full > 3 * se && full - acf_ring_rho(a, 0) > 3 * se;
}
