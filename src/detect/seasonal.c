/* detect/seasonal.c — "seasonal": time-of-period profile around a slow level.
 *
 * The period (default one day) is cut into B buckets keyed by event time
 * (ts mod period), not by row index, so irregular sampling and gaps keep each
 * sample in the right bucket. A slow EWMA level L follows the trend; each
 * bucket keeps an EWMA of the offset x - L and of its absolute deviation.
 * Bucket half-lives are in periods (visits), so a 10 s stream and a 5 min
 * stream forget at the same pace in event time. Expected value: L + offset[b]. Raw score: |x - expected| in robust sigmas of
 * that bucket (pooled with the series-wide deviation so sparse buckets are not
 * over-confident). A bucket scores 0 until it has seen `min_count` samples.
 * It also tests whether the profile is a season at all (its one-step errors
 * against a flat prediction's) and only then tells later components with
 * `deseason` the offset it expects (comp_ctx.season). With `weekday`, the
 * day-of-week offsets count once a weekly season is found by the
 * autocorrelation of six-hour means of what the daily profile leaves
 * (detect/acf.h).
 */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/acf.h"
#include "detect/detectors.h"

#define SEAS_MAX_BUCKETS 168

enum { P_PERIOD, P_BUCKETS, P_HALFLIFE, P_LEVEL_HALFLIFE, P_MIN_COUNT, P_BAND, P_MIN_REL, P_POOL, P_LOG,
       P_WEEKDAY };
/* derived (seas_prepare): the level's weight for one sampling interval, and
 * the length of a bucket in ms (period / buckets) */
enum { A_LEVEL_HALFLIFE = DET_MAX_PARAMS, A_BUCKET_MS };

static const struct param_def params[] = {
	{ "period", PARAM_DURATION, 86400e3, 60e3, 31 * 86400e3 },
	{ "buckets", PARAM_INT, 48, 2, SEAS_MAX_BUCKETS },
	{ "halflife", PARAM_NUMBER, 8, 0.05, 1e4 },      /* periods (visits of a bucket) */
	{ "level_halflife", PARAM_NUMBER, 1000, 1, 1e7 }, /* samples */
	{ "min_count", PARAM_INT, 8, 1, 1000 },
	{ "band", PARAM_NUMBER, 3, 0.5, 100 },
	{ "min_rel_dev", PARAM_NUMBER, 1e-3, 0, 1 },
	{ "bucket_weight", PARAM_NUMBER, 0.5, 0, 1 }, /* bucket vs series-wide deviation */
	{ "log", PARAM_BOOL, 0, 0, 1 }, /* model asinh(x / typical |x|) instead of x */
	{ "weekday", PARAM_BOOL, 0, 0, 1 }, /* and an offset per day of the week (UTC) */
};

#define DAY_MS 86400000LL
#define WEEK_MS (7 * DAY_MS)
/* the weekly season test: a week cut into 28 six-hour stretches, compared
 * with the correlation one day (4 stretches) apart */
static const struct acf_shape week_shape = { WEEK_MS, 28, 4 };

struct seas_state {
	double level;
	float gdev;   /* series-wide deviation of the residual */
	float absmax;
	uint32_t n;
	float mag;    /* typical |x| (log mode) */
	float gain, gain_var; /* EWMA mean and variance of how much smaller the
	                       * profile's one-step error is than the flat one's */
	float off_sum;        /* sum of the offsets of the buckets seen ... */
	uint32_t seen;        /* ... and their number: L + off_sum/seen is the flat
	                       * (season-free) prediction */
	/* followed by B bucket records, then (weekday) struct seas_week */
};

/* 10 bytes, packed: 48 of them are nearly half the detector state. The count
 * saturates at 65535; it only warm-starts the bucket's mean (1/(cnt + 1), far
 * below the EWMA weight of any sampling interval of a second or more by then)
 * and says whether the bucket is ready. */
struct seas_bucket {
	float off, dev;
	uint16_t cnt;
} __attribute__((packed));

static size_t align8(size_t x)
{
	return (x + 7) & ~(size_t)7;
}

/* The day-of-week offsets, compactly: what the daily profile leaves on each
 * UTC day of the week, and how many samples each has learnt from (saturating:
 * the count only warm-starts the mean and says whether the day was seen). */
struct seas_week {
	struct acf_ring acf; /* is there a weekly season? */
	float off[7];
	uint16_t cnt[7];
};

/* Where event time ts_ms falls: the bucket of its phase in the period of
 * nb buckets, its UTC day of the week (0 = Thursday, 1 January 1970) and
 * its stretch of the weekly season test (acf_ring_slot). */
struct seas_when {
	int64_t ts_ms, period, wslot;
	int nb, b, d;
};

/* seas_when of ts_ms, from a per-thread memo of the last one computed (its
 * four 64-bit divisions are then skipped): the engine commits the samples
 * of one timestamp together, and a scrape gives many series one timestamp.
 * A pure function of (ts_ms, period, nb), so a hit gives the same values.
 * Zero-initialised, and a period is never 0: the first call computes. */
static inline const struct seas_when *seas_when_of(int64_t ts_ms, int64_t period, int nb)
{
	static __thread struct seas_when memo;
	struct seas_when *w = &memo;
	if (w->ts_ms == ts_ms && w->period == period && w->nb == nb)
		return w;
	int64_t ph = ts_ms % period;
	if (ph < 0)
		ph += period;
	int64_t day = ts_ms >= 0 ? ts_ms / DAY_MS : (ts_ms - DAY_MS + 1) / DAY_MS;
	*w = (struct seas_when){ ts_ms, period, acf_ring_slot(&week_shape, ts_ms), nb,
		                 (int)(ph * nb / period), (int)(((day % 7) + 7) % 7) };
	return w;
}

/* The buckets of the period, then (weekday) the seven day offsets. */
static size_t seas_size(const double *p)
{
	return sizeof(struct seas_state) + align8((size_t)p[P_BUCKETS] * sizeof(struct seas_bucket)) +
	       (p[P_WEEKDAY] > 0 ? sizeof(struct seas_week) : 0);
}

/* The day-of-week block, 8-aligned after the nb buckets. */
static struct seas_week *seas_week_of(struct seas_bucket *bk, int nb)
{
	return (struct seas_week *)((char *)bk + align8((size_t)nb * sizeof(struct seas_bucket)));
}

static void seas_prepare(double *p)
{
	p[A_LEVEL_HALFLIFE] = det_alpha(p[P_LEVEL_HALFLIFE], 1);
	p[A_BUCKET_MS] = (double)(int64_t)p[P_PERIOD] / (int)p[P_BUCKETS];
}

static void seas_init(const double *p, void *state)
{
	memset(state, 0, seas_size(p));
	if (p[P_WEEKDAY] > 0) {
		struct seas_bucket *bk = (struct seas_bucket *)((struct seas_state *)state + 1);
		acf_ring_init(&seas_week_of(bk, (int)p[P_BUCKETS])->acf);
	}
}

/* The day-of-week offsets count only once every day has been seen and the
 * series has a weekly season: what the daily profile leaves correlates
 * significantly a week apart, and more than a day apart (acf.h). Otherwise
 * they keep learning (what the daily profile leaves, i.e. the whole weekday
 * effect) but do not count, so a series without a weekly pattern is not
 * made noisier by them. */
static int seas_week_counts(const struct seas_week *wk)
{
	/* the season test's answer as of its last learnt mean (acf.h: it
	 * changes only then), not recomputed per sample */
	if (!wk->acf.season)
		return 0;
	int all = 1;
	for (int j = 0; j < 7; j++)
		all &= wk->cnt[j] > 0;
	return all;
}

/* Has the series a season? Learns the gain |x - L - mean o| - |x - L - o_b -
 * w_d| of the profile over a flat prediction (r is the profile's residual),
 * each error measured before the sample is learnt (so the profile pays for
 * its estimation noise), both Huber-clipped at 4 sigma; weight a. */
static inline __attribute__((always_inline)) void
seas_learn_gain(struct seas_state *s, double x, double r, double floor, double a)
{
	double lim = 4 * 1.2533 * ((double)s->gdev > floor ? (double)s->gdev : floor);
	double rf = x - s->level - (s->seen ? (double)s->off_sum / s->seen : 0), rs = r;
	if (s->n > 8) {
		rf = rf > lim ? lim : rf < -lim ? -lim : rf;
		rs = rs > lim ? lim : rs < -lim ? -lim : rs;
	}
	double g = fabs(rf) - fabs(rs), d = g - (double)s->gain;
	s->gain = (float)((double)s->gain + a * d);
	s->gain_var = (float)((1 - a) * ((double)s->gain_var + a * d * d));
}

/* The profile counts as a season once its mean gain is more than three
 * standard errors above 0 (the gain's EWMA weighs about (2 - a)/a samples,
 * a the level's weight), so white noise, where the profile only adds
 * estimation noise, is not deseasonalised by chance. */
static inline __attribute__((always_inline)) int
seas_has_season(const struct seas_state *s, const double *p)
{
	double a = p[A_LEVEL_HALFLIFE];
	if (s->n < p[P_LEVEL_HALFLIFE])
		a = 1.0 / (s->n + 1.0);
	double g = (double)s->gain;
	return g > 0 && g * g > 9 * (double)s->gain_var * a / (2 - a);
}

/* The visits of a bucket per sampling interval's worth of samples, at
 * least 1: a bucket's half-life in samples is `halflife` times this. */
static inline double seas_spv(const double *p, const struct comp_ctx *c)
{
	double spv = p[A_BUCKET_MS] / c->interval_ms;
	return spv >= 1 ? spv : 1;
}

/* the weights of a bucket and of a weekday offset, per thread
 * (det_alpha_at) */
static __thread struct det_alpha_memo seas_memo_b = DET_ALPHA_MEMO_INIT,
                                      seas_memo_w = DET_ALPHA_MEMO_INIT;

/* plain (a constant where it is inlined): no `log`, one sampling interval
 * since the last sample (c->steps 1, so the level's weight is the prepared
 * one), the bucket's and the weekday's weights ab0 and aw0 from the memos
 * (hits) and the sample in the weekly test's current stretch: no call is
 * left on the path, so the function needs no saved registers. */
static inline __attribute__((always_inline)) void
seas_update_k(const double *p, void *state, const struct comp_ctx *c, struct comp_out *o,
              const struct seas_when *when, const int plain, double ab0, double aw0)
{
	struct seas_state *s = state;
	struct seas_bucket *bk = (struct seas_bucket *)(s + 1);
	int nb = (int)p[P_BUCKETS];
	struct seas_bucket *k = &bk[when->b];
	/* the day-of-week offset: 0 until that day has been seen */
	struct seas_week *wk = p[P_WEEKDAY] > 0 ? seas_week_of(bk, nb) : NULL;
	float *wd = NULL;
	uint16_t *wcnt = NULL;
	double wo = 0;
	if (wk) {
		int d = when->d;
		wd = &wk->off[d];
		wcnt = &wk->cnt[d];
		if (seas_week_counts(wk))
			wo = (double)*wd;
	}
	double x = c->value;
	double mag = 1;
	if (!plain && p[P_LOG] > 0) {
		x = det_asinh_scale(&s->mag, s->n, x, &mag);
	}

	if (s->n == 0) {
		s->level = x;
		s->absmax = (float)fabs(x);
	}
	double floor = p[P_MIN_REL] * (double)s->absmax + 1e-12;
	double exp_v = s->level + k->off + wo;
	double wb = p[P_POOL];
	double sig_b = 1.2533 * (wb * (double)k->dev + (1 - wb) * (double)s->gdev);
	if (sig_b < floor)
		sig_b = floor;
	double r = x - exp_v;
	if (k->cnt >= p[P_MIN_COUNT]) {
		o->raw = fabs(r) / sig_b;
		o->expected = exp_v;
		o->lower = exp_v - p[P_BAND] * sig_b;
		o->upper = exp_v + p[P_BAND] * sig_b;
		o->direction = x > o->upper ? 1 : x < o->lower ? -1 : 0;
		if (!plain && p[P_LOG] > 0)
			o->mag = mag; /* mapped back by model_update if reported */
		else if (seas_has_season(s, p))
			o->season = (double)k->off + wo;
	} else {
		o->raw = NAN; /* not ready: the likelihood stage neither scores nor learns */
		o->expected = o->lower = o->upper = NAN;
		o->direction = 0;
	}

	/* learn */
	const double steps = plain ? 1 : c->steps;
	double al = det_warm_alpha1(p[A_LEVEL_HALFLIFE], p[P_LEVEL_HALFLIFE], steps, s->n);
	if (s->n > 0)
		seas_learn_gain(s, x, r, floor, al);
	/* A bucket's half-life is counted in periods, whatever the sampling rate:
	 * one visit of the bucket lasts period/B and holds about that many
	 * sampling intervals. */
	double spv = plain ? 0 : seas_spv(p, c);
	/* warm start: a plain running mean until the EWMA weight takes over */
	double ab = plain ? ab0 : det_alpha_at(&seas_memo_b, p[P_HALFLIFE] * spv, steps);
	if (ab < 1.0 / (k->cnt + 1))
		ab = 1.0 / (k->cnt + 1);
	double lim = 4 * sig_b;
	double rc = r;
	if (k->cnt >= 4) {
		if (rc > lim)
			rc = lim;
		else if (rc < -lim)
			rc = -lim;
	}
	double off = (double)k->off + ab * rc;
	if (k->cnt == 0)
		off = x - s->level - wo;
	if (wk && s->n > 0) {
		/* the weekly test learns what the daily profile leaves, in
		 * series-wide sigmas */
		double sg = 1.2533 * (double)s->gdev > floor ? 1.2533 * (double)s->gdev : floor;
		double zw = (x - s->level - k->off) / sg;
		if (plain)
			acf_ring_add_in(&wk->acf, zw);
		else
			acf_ring_add_at(&wk->acf, &week_shape, when->wslot, zw, p[P_HALFLIFE]);
	}
	if (wd) {
		/* the weekday offset learns what the daily profile leaves, at the
		 * same pace in event time (a day is B buckets), warm-started */
		double aw = plain ? aw0 : det_alpha_at(&seas_memo_w, p[P_HALFLIFE] * spv * nb, steps);
		if (aw < 1.0 / (*wcnt + 1.0))
			aw = 1.0 / (*wcnt + 1.0);
		/* the residual against the expected value with this day's offset,
		 * whether it counts or not */
		double rw = k->cnt >= 4 ? rc + wo - (double)*wd : 0;
		if (rw > lim)
			rw = lim;
		else if (rw < -lim)
			rw = -lim;
		*wd = (float)((double)*wd + aw * rw);
		if (*wcnt < UINT16_MAX && k->cnt >= 4)
			(*wcnt)++;
	}
	k->dev += (float)(ab * (fabs(rc) - (double)k->dev));
	if (k->cnt == 0)
		s->seen++;
	s->off_sum += (float)off - k->off;
	k->off = (float)off;
	if (k->cnt < UINT16_MAX)
		k->cnt++;
	if (s->n > 0 || k->cnt > 1)
		s->gdev += (float)(al * (fabs(rc) - (double)s->gdev));
	/* the level follows the deseasonalised value */
	double des = x - (double)k->off - wo;
	double dl = des - s->level;
	s->level += al * dl;
	if (!plain && p[P_LOG] > 0)
		det_mag_learn(&s->mag, al, c->value);
	float ax = (float)fabs(x);
	s->absmax = ax > s->absmax ? ax : s->absmax + (float)al * (ax - s->absmax);
	if (s->n < UINT32_MAX)
		s->n++;
}

static __attribute__((noinline)) void seas_update_any(const double *p, void *state,
                                                      const struct comp_ctx *c, struct comp_out *o,
                                                      const struct seas_when *when)
{
	seas_update_k(p, state, c, o, when, 0, 0, 0);
}

static void seas_update(const double *p, void *state, const struct comp_ctx *c,
                        struct comp_out *o)
{
	int nb = (int)p[P_BUCKETS];
	const struct seas_when *when = seas_when_of(c->ts_ms, (int64_t)p[P_PERIOD], nb);
	if (c->steps == 1 && !(p[P_LOG] > 0)) {
		/* the memos' weights, if they are hits (det_alpha_at) */
		double hb = p[P_HALFLIFE] * seas_spv(p, c);
		const struct det_alpha_memo *mb = &seas_memo_b, *mw = &seas_memo_w;
		if (mb->halflife == hb && mb->steps == 1) {
			if (!(p[P_WEEKDAY] > 0)) {
				seas_update_k(p, state, c, o, when, 1, mb->a, 0);
				return;
			}
			struct seas_state *s = state;
			const struct seas_week *wk = seas_week_of((struct seas_bucket *)(s + 1), nb);
			if ((s->n == 0 || when->wslot == wk->acf.slot) && mw->halflife == hb * nb &&
			    mw->steps == 1) {
				seas_update_k(p, state, c, o, when, 1, mb->a, mw->a);
				return;
			}
		}
	}
	seas_update_any(p, state, c, o, when);
}

/* A sample touches the header, the bucket of its phase and (weekday) the
 * day-of-week offsets with the weekly test (struct seas_week, about 110
 * bytes); the state is only 16-byte aligned, so each may straddle a line
 * more than its size says. The header and the weekday block lie at fixed
 * offsets (seas_prefetch_fixed: model_prefetch asks for them with the
 * model's other ranges); the hook asks for the bucket. */
static int seas_prefetch_fixed(const double *p, size_t off[2], size_t len[2])
{
	off[0] = 0;
	len[0] = sizeof(struct seas_state);
	if (!(p[P_WEEKDAY] > 0))
		return 1;
	off[1] = sizeof(struct seas_state) + align8((size_t)p[P_BUCKETS] * sizeof(struct seas_bucket));
	len[1] = sizeof(struct seas_week);
	return 2;
}

static void seas_prefetch(const double *p, const void *state, int64_t ts_ms)
{
	const struct seas_state *s = state;
	const struct seas_bucket *bk = (const struct seas_bucket *)(s + 1);
	int nb = (int)p[P_BUCKETS];
	const struct seas_bucket *k = &bk[seas_when_of(ts_ms, (int64_t)p[P_PERIOD], nb)->b];
	__builtin_prefetch(k, 1);
	__builtin_prefetch((const char *)(k + 1) - 1, 1);
}

const struct comp_kind comp_seasonal = {
	.name = "seasonal",
	.params = params,
	.nparams = sizeof params / sizeof params[0],
	.state_size = seas_size,
	.init = seas_init,
	.update = seas_update,
	.prefetch = seas_prefetch,
	.prefetch_fixed = seas_prefetch_fixed,
	.prepare = seas_prepare,
};
