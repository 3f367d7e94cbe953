/* test_changept.c — unit tests of the `changept` component
 * (src/detect/changept.c, Bayesian online change-point detection over five
 * run-length hypotheses, scored against the largest odds of the last day):
 * a sustained shift on a quiet series is detected within a few samples and
 * nothing before it; a shift of the same size that recurs twice a day stops
 * being detected; after days without one it is detected again; a change
 * across a gap is not scored until it can be dated; the state fits the
 * default model's 1 KiB; the step's usual and general paths write the same
 * state.
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "detect/detector.h"
#include "model_scores.h"
#include "util/rng.h"

#define T0 1396310400000LL /* 2014-04-01 00:00:00 */
#define HOUR 3600000LL

/* changept alone, scored directly as in the default model, no likelihood
 * stage and a one-sample suppression, so every sample's score is its own. */
static const char yaml[] = "components:\n  - kind: changept\n    likelihood: false\n"
                           "    direct: 3\nwarmup: 120\nsuppress: 1\nhold: 0.4\narm: 0.45\n"
                           "alert:\n  threshold: 0.49\n  clear_threshold: 0.35\n";

enum {
	N = 1700,
	SHIFT = 400,       /* level +6 sigma for two days */
	TOGGLE = 700,      /* from here to TOGGLE_END: +6 sigma for 6 h every 12 h */
	TOGGLE_END = 1000,
	LATE = 1300,       /* 12 days later: +6 sigma again */
	GAP = 1500,        /* 5 h without samples, the level +6 sigma after it */
};

static int bumped(int i)
{
	if (i >= SHIFT && i < SHIFT + 48)
		return 1;
	if (i >= TOGGLE && i < TOGGLE_END && (i - TOGGLE) % 12 < 6)
		return 1;
	return (i >= LATE && i < LATE + 48) || i >= GAP;
}

static void series(int64_t *ts, double *v)
{
	struct rng r = { 17 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * HOUR + (i >= GAP ? 5 * HOUR : 0);
		v[i] = 100 + 5 * rng_norm(&r) + (bumped(i) ? 30 : 0);
	}
}

static struct model *load(void)
{
	char err[256];
	struct model *m = model_load_string(yaml, strlen(yaml), "changept.yml", err, sizeof err);
	if (!m)
		fail_msg("%s", err);
	return m;
}

/* the first sample in [from, to) scoring at least thr, or -1 */
static int first_at(const double *s, int from, int to, double thr)
{
	for (int i = from; i < to; i++)
		if (s[i] >= thr)
			return i;
	return -1;
}

static void test_changept_shifts(void **ctx)
{
	(void)ctx;
	struct model *m = load();
	double thr = model_alerting(m)->threshold;
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
	assert_true(ts && v && s);
	series(ts, v);
	model_scores(m, ts, v, N, s);
	int quiet = first_at(s, 120, SHIFT, thr);
	int shift = first_at(s, SHIFT, SHIFT + 48, thr);
	/* detections on the 6-hour bumps, rises only (the falls are changes too) */
	int hits[25] = { 0 }, nb = (TOGGLE_END - TOGGLE) / 12;
	for (int k = 0; k < nb; k++)
		hits[k] = first_at(s, TOGGLE + 12 * k, TOGGLE + 12 * k + 3, thr) >= 0;
	int late = first_at(s, LATE, LATE + 48, thr);
	int gap = first_at(s, GAP, GAP + 3, thr);
	print_message("changept: quiet %d, shift at %d (+%d), toggles hit:", quiet, shift,
	              shift - SHIFT);
	for (int k = 0; k < nb; k++)
		print_message(" %d", hits[k]);
	print_message(", late at %d (+%d), after the gap %d\n", late, late - LATE, gap);
	assert_int_equal(quiet, -1);                      /* nothing on the quiet series */
	assert_true(shift >= SHIFT && shift <= SHIFT + 3); /* a 6-sigma shift at once */
	int later = 0;
	for (int k = 5; k < nb; k++)
		later += hits[k];
	assert_int_equal(later, 0);                      /* a twice-daily bump is no news */
	assert_true(late >= LATE && late <= LATE + 3);   /* days later it is again */
	assert_int_equal(gap, -1);                       /* not dated across a gap */
	free(ts);
	free(v);
	free(s);
	model_free(m);
}

/* The step's two paths compute the same state: a series updated alone
 * takes the usual path (the per-thread memo of the remembered odds' weight
 * hits: SSE2's lanes where built with them), three series of different
 * intervals updated in turn take the general one (the memo misses: the
 * scalar step). Shapes that age the older hypotheses past 253 samples (the
 * ninth bit of cp_powi8's k) and past the table (508), spikes at the z
 * clamp, constant stretches (the deviation's floor) and frequent changes;
 * every state block, byte for byte, after every sample. */
static void test_changept_paths(void **ctx)
{
	(void)ctx;
	enum { NS = 3, NP = 4000 };
	static const int64_t step[NS] = { 60000, 300000, 3600000 };
	struct model *m = load();
	size_t sz = model_state_size(m);
	int64_t *ts = malloc(NS * NP * sizeof *ts);
	double *v = malloc(NS * NP * sizeof *v);
	unsigned char *alone = malloc(NS * NP * sz), *st = malloc(NS * sz);
	assert_true(ts && v && alone && st);
	struct rng r = { 23 };
	for (int k = 0; k < NS; k++)
		for (int i = 0; i < NP; i++) {
			double x = rng_norm(&r);
			ts[k * NP + i] = T0 + (int64_t)i * step[k];
			if (k == 0) /* quiet, a shift every 900 samples */
				x = 100 + x + (i / 900 % 2 ? 8 : 0);
			else if (k == 1) /* a new level every 40, spikes far beyond the clamp */
				x = 10 * (i / 40 % 5) + x + (i % 97 == 50 ? 1e12 : 0) - (i % 89 == 3 ? 1e9 : 0);
			else /* constant stretches, then a noisy random walk */
				x = i < 1500 ? (double)(i / 500) : v[k * NP + i - 1] + x;
			v[k * NP + i] = x;
		}
	for (int k = 0; k < NS; k++) {
		unsigned char *s = st + k * sz;
		model_state_init(m, s);
		for (int i = 0; i < NP; i++) {
			struct det_result res;
			model_update(m, s, ts[k * NP + i], v[k * NP + i], &res);
			memcpy(alone + (k * NP + i) * sz, s, sz);
		}
	}
	for (int k = 0; k < NS; k++)
		model_state_init(m, st + k * sz);
	for (int i = 0; i < NP; i++)
		for (int k = 0; k < NS; k++) {
			struct det_result res;
			model_update(m, st + k * sz, ts[k * NP + i], v[k * NP + i], &res);
			if (memcmp(st + k * sz, alone + (k * NP + i) * sz, sz) != 0)
				fail_msg("series %d, sample %d: the two paths' states differ", k, i);
		}
	free(ts);
	free(v);
	free(alone);
	free(st);
	model_free(m);
}

/* The component's 104 bytes keep the default model within the detector's
 * 1 KiB share of the per-series state. */
static void test_changept_state(void **ctx)
{
	(void)ctx;
	struct model *m = load();
	size_t one = model_state_size(m);
	struct model *d = model_builtin_default();
	print_message("changept model state: %zu bytes, default: %zu\n", one,
	              model_state_size(d));
	assert_true(model_state_size(d) <= 1024);
	model_free(d);
	model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_changept_shifts),
		cmocka_unit_test(test_changept_state),
		cmocka_unit_test(test_changept_paths),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
