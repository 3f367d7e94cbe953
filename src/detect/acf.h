/* detect/acf.h — private to src/detect/: a causal test for a season of a
 * given period, from the autocorrelation of a compact downsampled ring.
 *
 * The period P is cut into `slots` (at most ACF_MAX_SLOTS) stretches of
 * event time; the caller feeds standardised samples ((x - level) / sigma)
 * and the ring keeps the mean of each of the last `slots` stretches, in
 * quarter-sigma steps clamped to +-31.75 (so one wild value cannot dominate),
 * keyed by event time: a stretch without samples is missing, a gap of a
 * period or more empties the ring. Each completed mean h_t is paired with
 * h_(t-short) and h_(t-slots) and updates warm-started EWMA estimates of the
 * mean, the variance and the two autocovariances: a streaming sample
 * autocorrelation function at two lags, learnt on the past only.
 *
 * A season of period P shows as rho(P) more than three standard errors
 * above zero *and* above rho(short): a shorter cycle that divides P (a daily
 * cycle inside a week) correlates as much at its own lag, and a slow drift
 * or an autocorrelated noise correlates more at the shorter lag.
 * The test's answer (acf_ring_season) changes only when a mean is learnt,
 * so close_slot stores it then (acf_ring.season) and a caller asking on
 * every sample reads a byte instead of a square root and three divisions.
 * Plain data (no pointers), 64 bytes.
 */
#ifndef FORESHOCK_DETECT_ACF_H
#define FORESHOCK_DETECT_ACF_H

#include <stdint.h>

#define ACF_MAX_SLOTS 28
#define ACF_MISSING INT8_MIN

struct acf_ring {
	int64_t slot;          /* index (ts / slot length) of the stretch being accumulated
	                        * (INT64_MIN: no sample yet) */
	float sum;             /* sum of its standardised samples ... */
	uint16_t cnt;          /* ... and their number */
	uint16_t n;            /* means learnt from (saturating) */
	float m, v;            /* EWMA mean and variance of the means */
	float c_short, c_full; /* EWMA autocovariances at lags `short` and `slots` */
	int8_t ring[ACF_MAX_SLOTS]; /* means in quarter-sigma steps, ring[slot % slots] */
	uint8_t season;        /* acf_ring_season() with the shape and halflife acf_ring_add
	                        * is given, as of the last mean learnt (it changes only then) */
};

/* The shape of the test: P cut into `slots` stretches, compared with lag `short`. */
struct acf_shape {
	int64_t period_ms;
	int slots;    /* 2 .. ACF_MAX_SLOTS */
	int short_lag;/* 1 .. slots - 1 */
};

void acf_ring_init(struct acf_ring *a);
/* Feed one standardised sample at event time ts_ms (strictly increasing; a
 * non-finite z only moves time on); halflife: of the estimates, in periods.
 * Keeps a->season equal to acf_ring_season(a, sh, halflife). */
void acf_ring_add(struct acf_ring *a, const struct acf_shape *sh, int64_t ts_ms, double z,
                  double halflife);
/* The stretch of event time ts_ms: floor(ts_ms / (period_ms / slots)).
 * Inline: seasonal's per-timestamp memo computes it without a call. */
static inline int64_t acf_ring_slot(const struct acf_shape *sh, int64_t ts_ms)
{
	int64_t len = sh->period_ms / sh->slots > 0 ? sh->period_ms / sh->slots : 1;
	return ts_ms >= 0 ? ts_ms / len : -((-ts_ms + len - 1) / len);
}
/* acf_ring_add's move to stretch `slot` (a new one): closes the previous. */
void acf_ring_enter(struct acf_ring *a, const struct acf_shape *sh, int64_t slot,
                    double halflife);
/* acf_ring_add with the sample's stretch already known (acf_ring_slot of its
 * time, which a caller may keep for many samples): the same, inline, and
 * out of line only when the stretch changes. */
/* acf_ring_add_at's add to the stretch being accumulated (a->slot is the
 * sample's) */
static inline void acf_ring_add_in(struct acf_ring *a, double z)
{
	/* a stretch's mean is that of its first 65535 finite samples */
	if (z == z && a->cnt < UINT16_MAX) {
		a->sum += (float)(z > 1e6 ? 1e6 : z < -1e6 ? -1e6 : z);
		a->cnt++;
	}
}
static inline void acf_ring_add_at(struct acf_ring *a, const struct acf_shape *sh, int64_t slot,
                                   double z, double halflife)
{
	if (slot != a->slot)
		acf_ring_enter(a, sh, slot, halflife);
	acf_ring_add_in(a, z);
}
/* The sample autocorrelation at lag `short` (full = 0) or P (full = 1); 0
 * while nothing is learnt. */
double acf_ring_rho(const struct acf_ring *a, int full);
/* 1 if the series has a season of period P: rho(P) and rho(P) - rho(short)
 * both more than three standard errors above 0 (an estimate from n_eff
 * independent pairs has a standard error of about 1/sqrt(n_eff); n_eff is
 * the pairs learnt, at most the EWMA's effective count), after at least two
 * periods of pairs. */
int acf_ring_season(const struct acf_ring *a, const struct acf_shape *sh, double halflife);

#endif
