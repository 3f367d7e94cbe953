/* test_refire.c — unit tests of the refire rule of the detector's suppression
 * (src/detect/detector.c, suppress_gate): during a suppression a sample is
 * detected again only if its evidence is `refire` times that of the detection
 * AND the episode that detection started is over (the score fell below `hold`
 * since). A rise that keeps growing after its first crossing is one detection;
 * a distinct, stronger event later in the suppression is a second one.
 * And the renew rule: a score of 1 during a suppression is a new detection
 * once the series has been back on its normal side of the detection's
 * reference for the likelihood window since that detection's episode ended;
 * not while the first event goes on, nor if the series went beyond the
 * reference again in between.
 * While the series' history is short (at most the likelihood stage's
 * `single_for` samples), the bar a detection sets counts its evidence at
 * most as the alert threshold's own z (test_refire_cap_short_history).
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

#define T0 1396310400000LL /* 2014-04-01 00:00:00 */

/* xorshift64 + Box-Muller: the same noise on every run */
static double noise(uint64_t *s)
{
	double u[2];
	for (int k = 0; k < 2; k++) {
		*s ^= *s << 13;
		*s ^= *s >> 7;
		*s ^= *s << 17;
		u[k] = ((double)(*s >> 11) + 0.5) / 9007199254740992.0;
	}
	return sqrt(-2 * log(u[0])) * cos(2 * M_PI * u[1]);
}

/* A plain z-score (no likelihood stage: the evidence is the |z| itself),
 * a suppression of 300 samples, refire at 1.5x. */
static const char yaml[] =
	"components:\n  - kind: level\n"
	"likelihood:\n  enabled: false\n  raw_scale: 6\n"
	"warmup: 100\nsuppress: 300\nhold: 0.4\nrefire: 1.5\narm: 0.45\n"
	"alert:\n  threshold: 0.49\n  clear_threshold: 0.35\n";

enum { N = 2000, RAMP = 1000, RAMP_LEN = 20, SPIKE = 1150 };

/* 10-s samples, N(100, 1); from RAMP the value climbs 2 (two sigma) per
 * sample for RAMP_LEN samples (to 40 sigma), then drops back; a +100 spike
 * at SPIKE (inside the suppression the ramp's detection started). */
static void series(int64_t *ts, double *v, int spike)
{
	uint64_t s = 7;
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 10000;
		v[i] = 100 + noise(&s);
		if (i >= RAMP && i < RAMP + RAMP_LEN)
			v[i] += 2.0 * (i - RAMP + 1);
		if (spike && i == SPIKE)
			v[i] += 100;
	}
}

static void score(const struct model *m, const int64_t *ts, const double *v, double *sc)
{
	model_scores(m, ts, v, N, sc);
}

static void test_refire_needs_new_episode(void **ctx)
{
	(void)ctx;
	char err[256];
	struct model *m = model_load_string(yaml, sizeof yaml - 1, "refire.yml", err, sizeof err);
	assert_non_null(m);
	double thr = model_alerting(m)->threshold;
	int64_t ts[N];
	double v[N], sc[N];
	for (int spike = 0; spike < 2; spike++) {
		series(ts, v, spike);
		score(m, ts, v, sc);
		int first = -1, in_ramp = 0, before = 0, max_hold = 1;
		for (int i = 0; i < N; i++) {
			if (sc[i] < thr)
				continue;
			if (i < RAMP)
				before++;
			else if (i < RAMP + RAMP_LEN) {
				in_ramp++;
				if (first < 0)
					first = i;
			}
		}
		/* the rest of the ramp (evidence up to 7x that of its first
		 * crossing) is held below the threshold, at `hold` at most */
		for (int i = first + 1; i < RAMP + RAMP_LEN; i++)
			if (sc[i] > model_hold(m) + 1e-12)
				max_hold = 0;
		print_message("refire: spike %d: first detection at %d, %d in the ramp, spike "
		              "score %.3f\n", spike, first, in_ramp, sc[SPIKE]);
		assert_int_equal(before, 0);
		assert_true(first >= RAMP && first < RAMP + 10);
		assert_int_equal(in_ramp, 1);
		assert_true(max_hold);
		if (spike)
			assert_true(sc[SPIKE] >= thr); /* a new, stronger episode: detected */
		else
			for (int i = RAMP + RAMP_LEN; i < N; i++)
				assert_true(sc[i] < thr);
	}
	model_free(m);
}

/* The renew rule: a likelihood stage (so a far outlier scores 1), a
 * suppression of 300 samples, refire at 1.5x, with or without renew. */
#define RENEW_YAML(on)                                                                  \
	"components:\n  - kind: level\n"                                                  \
	"likelihood:\n  window: 3\n  halflife: 4000\n  min_std: 0.05\n  min_samples: 60\n" \
	"  decades: 11.5\n"                                                                \
	"warmup: 100\nsuppress: 300\nhold: 0.4\nrefire: 1.5\narm: 0.45\nrenew: " on "\n"     \
	"alert:\n  threshold: 0.49\n  clear_threshold: 0.35\n"

enum { FIRST = 1000 };

/* N(100, 1) 10-s samples; +5000 at FIRST and at `second`, exactly 100 (the
 * series' normal value) in between; with `stir`, one sample halfway
 * between them at +2.5 (beyond the halfway point between the expected value
 * and the band edge that was crossed, about +1.5: the hold's own test of an
 * anomaly that persists) */
static void renew_series(int64_t *ts, double *v, int second, int stir)
{
	uint64_t s = 11;
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 10000;
		v[i] = 100 + noise(&s);
	}
	v[FIRST] += 5000;
	v[second] += 5000;
	for (int i = FIRST + 1; i < second; i++)
		v[i] = 100;
	if (stir)
		v[(FIRST + second) / 2] = 102.5;
}

static int detections(const double *sc, double thr, int from, int to)
{
	int k = 0;
	for (int i = from; i < to; i++)
		k += sc[i] >= thr;
	return k;
}

static void test_renew(void **ctx)
{
	(void)ctx;
	static const char on[] = RENEW_YAML("true"), off[] = RENEW_YAML("false");
	char err[256];
	struct model *mon = model_load_string(on, sizeof on - 1, "renew.yml", err, sizeof err);
	struct model *moff = model_load_string(off, sizeof off - 1, "renew.yml", err, sizeof err);
	assert_non_null(mon);
	assert_non_null(moff);
	assert_true(model_fingerprint(mon) != model_fingerprint(moff));
	double thr = model_alerting(mon)->threshold;
	int64_t ts[N];
	double v[N], son[N], soff[N];
	/* second outlier 20 samples later, the series normal in between: a
	 * new event with renew, held (at `hold`) without */
	renew_series(ts, v, FIRST + 20, 0);
	model_scores(mon, ts, v, N, son);
	model_scores(moff, ts, v, N, soff);
	print_message("renew: first %.3f / %.3f, second %.3f / %.3f (on / off)\n", son[FIRST],
	              soff[FIRST], son[FIRST + 20], soff[FIRST + 20]);
	assert_true(son[FIRST] >= thr && soff[FIRST] >= thr);
	assert_int_equal(detections(son, thr, 0, FIRST), 0);
	assert_true(son[FIRST + 20] >= 1);
	assert_int_equal(detections(son, thr, FIRST, N), 2);
	assert_true(soff[FIRST + 20] <= model_hold(moff) + 1e-12);
	assert_int_equal(detections(soff, thr, FIRST, N), 1);
	/* the second outlier two samples after the first, while the moving
	 * average still holds the first (the episode goes on), or five after
	 * it (the episode ended at FIRST + 3, when the first left the
	 * window of 3; normal for one sample since): one event */
	for (int gap = 2; gap <= 5; gap += 3) {
		renew_series(ts, v, FIRST + gap, 0);
		model_scores(mon, ts, v, N, son);
		assert_true(son[FIRST + gap] <= model_hold(mon) + 1e-12);
		assert_int_equal(detections(son, thr, FIRST, N), 1);
	}
	/* eight after it (normal for the window's three samples since the
	 * episode ended): two */
	renew_series(ts, v, FIRST + 8, 0);
	model_scores(mon, ts, v, N, son);
	assert_true(son[FIRST + 8] >= 1);
	assert_int_equal(detections(son, thr, FIRST, N), 2);
	/* the series went beyond the reference again in between: held */
	renew_series(ts, v, FIRST + 20, 1);
	model_scores(mon, ts, v, N, son);
	print_message("renew: after a return beyond the reference, second %.3f\n",
	              son[FIRST + 20]);
	assert_int_equal(detections(son, thr, FIRST, N), 1);
	assert_true(son[FIRST + 20] <= model_hold(mon) + 1e-12);
	model_free(mon);
	model_free(moff);
}

/* A robust z through the likelihood stage, whose short-history path scores
 * the single sample (z1 = (log(1 + raw) - mean) / max(sd, single_floor))
 * for the first SINGLE_FOR samples (0: never, and no cap either). */
static const char yaml_cap[] =
	"components:\n  - kind: level\n"
	"likelihood:\n  decades: 11.5\n  single_for: %d\n  single_floor: 0.26\n"
	"warmup: 100\nsuppress: 300\nhold: 0.4\nrefire: 1.5\narm: 0.45\nrenew: false\n"
	"alert:\n  threshold: 0.49\n  clear_threshold: 0.35\n";

enum { SINGLE_FOR = 800, GAP = 100 };

/* N(100, 1) with a +100 spike at `at` (evidence z1 about 16: a bar of about
 * 24 without the cap) and a +20 spike GAP samples later (z1 about 10, inside
 * the suppression the first started; with the cap the bar is 1.5 x 4.58 =
 * 6.87). */
static void two_spikes(int64_t *ts, double *v, int at, double a1, double a2)
{
	uint64_t s = 11;
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 10000;
		v[i] = 100 + noise(&s);
	}
	v[at] += a1;
	v[at + GAP] += a2;
}

static int detections_in(const double *sc, int from, int to, double thr)
{
	int k = 0;
	for (int i = from; i < to; i++)
		k += sc[i] >= thr;
	return k;
}

static void test_refire_cap_short_history(void **ctx)
{
	(void)ctx;
	int64_t ts[N];
	double v[N], sc[N];
	for (int single_for = 0; single_for <= SINGLE_FOR; single_for += SINGLE_FOR) {
		char y[sizeof yaml_cap + 16], err[256];
		int len = snprintf(y, sizeof y, yaml_cap, single_for);
		struct model *m = model_load_string(y, (size_t)len, "cap.yml", err, sizeof err);
		assert_non_null(m);
		double thr = model_alerting(m)->threshold;
		/* young series: both spikes within the first SINGLE_FOR samples */
		two_spikes(ts, v, 300, 100, 20);
		score(m, ts, v, sc);
		print_message("refire cap (single_for %d): young series: %.3f, %.3f\n", single_for,
		              sc[300], sc[300 + GAP]);
		assert_true(sc[300] >= thr);
		assert_int_equal(detections_in(sc, 0, 300, thr), 0);
		assert_int_equal(detections_in(sc, 301, 300 + GAP, thr), 0);
		if (single_for)
			assert_true(sc[300 + GAP] > 0.95); /* the bar was capped: a second detection */
		else
			assert_true(sc[300 + GAP] <= model_hold(m) + 1e-12); /* no cap: held */
		/* the same two spikes after SINGLE_FOR samples: the detection's own
		 * evidence sets the bar, the second spike is held either way */
		two_spikes(ts, v, SINGLE_FOR + 200, 1000, 3000);
		score(m, ts, v, sc);
		print_message("refire cap (single_for %d): older series: %.3f, %.3f\n", single_for,
		              sc[SINGLE_FOR + 200], sc[SINGLE_FOR + 200 + GAP]);
		assert_true(sc[SINGLE_FOR + 200] >= thr);
		assert_true(sc[SINGLE_FOR + 200 + GAP] <= model_hold(m) + 1e-12);
		model_free(m);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refire_needs_new_episode),
		cmocka_unit_test(test_renew),
		cmocka_unit_test(test_refire_cap_short_history),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
