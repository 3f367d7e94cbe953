/* test_single.c — unit test of the likelihood stage's short-history path
 * (src/detect/detector.c, `likelihood: single_for` / `single_floor`): while a
 * series has seen at most `single_for` samples, each likelihood stage also
 * scores the single sample against the long-run Gaussian of its moving
 * average (sd floored at `single_floor`), so an isolated spike early in a
 * series' life is detected that the moving average alone dilutes; past
 * `single_for` the scores are those of the model without it, bit for bit;
 * and the built-in default still detects nothing on Gaussian noise.
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
#include "util/rng.h"
#include "model_scores.h"

#define T0 1396310400000LL /* 2014-04-01 00:00:00 */

#define MODEL(extra)                                                                       \
	"components:\n  - kind: level\n"                                                   \
	"likelihood:\n  window: 3\n  halflife: 4000\n  min_samples: 60\n  decades: 11.5\n" \
	"  calibrate: 0.001\n" extra                                                       \
	"warmup: 120\nsuppress: 10\nhold: 0.4\narm: 0.45\n"                                \
	"alert:\n  threshold: 0.49\n  clear_threshold: 0.35\n"

enum { N = 2000, EARLY = 500, LATE = 1500 };

/* 10-s samples, N(100, 1), and one single-sample spike of `size` sigma at
 * EARLY and at LATE */
static void series(int64_t *ts, double *v, double size)
{
	struct rng r = { 11 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 10000;
		v[i] = 100 + rng_norm(&r);
		if (i == EARLY || i == LATE)
			v[i] += size;
	}
}

static void score(const char *yaml, const int64_t *ts, const double *v, double *sc)
{
	char err[256];
	struct model *m = model_load_string(yaml, strlen(yaml), "single.yml", err, sizeof err);
	if (!m)
		fail_msg("%s", err);
	model_scores(m, ts, v, N, sc);
	model_free(m);
}

static void test_single_sample_early(void **ctx)
{
	(void)ctx;
	static const char base[] = MODEL("");
	static const char single[] = MODEL("  single_for: 800\n  single_floor: 0.26\n");
	static const double size = 8;
	int64_t ts[N];
	double v[N], s0[N], s1[N];
	series(ts, v, size);
	score(base, ts, v, s0);
	score(single, ts, v, s1);
	print_message("single: spike of %.0f sigma at %d: %.3f without, %.3f with single_for; "
	              "at %d: %.3f / %.3f\n", size, EARLY, s0[EARLY], s1[EARLY], LATE, s0[LATE],
	              s1[LATE]);
	/* early in the series' life the isolated spike is detected only with it */
	assert_true(s0[EARLY] < 0.49);
	assert_true(s1[EARLY] >= 0.49);
	/* past single_for the model is the model without it */
	for (int i = 801; i < N; i++)
		assert_true(s0[i] == s1[i]);
	/* never lower than without it */
	for (int i = 0; i < N; i++)
		assert_true(s1[i] >= s0[i] || (i > EARLY && i <= EARLY + 10));
}

/* The default model's text with its likelihood settings after `calibrate`
 * replaced by `lk` (tests that the first is the built-in default). */
#define DEFAULT(lk)                                                                        \
	"components:\n  - kind: seasonal\n    weekday: true\n"                                \
	"  - kind: cusum\n    halflife: 512\n  - kind: record\n    halflife: 8000\n"           \
	"  - kind: spike\n    memory: 1d\n    likelihood: false\n    direct: 1\n"            \
	"  - kind: changept\n    likelihood: false\n    direct: 3\n"                         \
	"likelihood:\n  window: 3\n  halflife: 4000\n  min_samples: 60\n  decades: 11.5\n"   \
	"  calibrate: 0.001\n" lk "warmup: 120\nsuppress: 10\nsuppress_frac: 0.04\n"         \
	"suppress_max: 1000\nhold: 0.4\nrefire: 1.5\nrenew: true\narm: 0.45\n"                   \
	"alert:\n  threshold: 0.49\n"                                                        \
	"  clear_threshold: 0.35\n"

/* The default with and without the short-history path on N(100, 2) every
 * 10 s (the daemon tests' quiet baseline), several seeds: the path adds no
 * detection in the short-history part (the sd floor keeps a score that is
 * nearly always 0 from firing on its first small excursion). */
static void test_default_quiet_on_noise(void **ctx)
{
	(void)ctx;
	static const char with[] = DEFAULT("  single_for: 800\n  single_floor: 0.26\n");
	static const char without[] = DEFAULT("");
	char err[256];
	struct model *m[2];
	m[0] = model_load_string(without, sizeof without - 1, "without.yml", err, sizeof err);
	m[1] = model_load_string(with, sizeof with - 1, "with.yml", err, sizeof err);
	assert_true(m[0] && m[1]);
	struct model *d = model_builtin_default();
	assert_true(model_fingerprint(m[1]) == model_fingerprint(d));
	model_free(d);
	int64_t ts[N];
	double v[N], sc[N];
	int count[2] = { 0, 0 };
	double worst[2] = { 0, 0 };
	for (int k = 0; k < 2; k++) {
		void *st = malloc(model_state_size(m[k]));
		assert_non_null(st);
		for (uint64_t seed = 1; seed <= 16; seed++) {
			struct rng r = { seed };
			for (int i = 0; i < N; i++) {
				ts[i] = T0 + (int64_t)i * 10000;
				v[i] = 100 + 2 * rng_norm(&r);
			}
			model_state_init(m[k], st);
			for (int i = 0; i < N; i++) {
				struct det_result res;
				model_update(m[k], st, ts[i], v[i], &res);
				sc[i] = res.score;
				if (i <= 800 && sc[i] >= 0.49)
					count[k]++;
				if (i <= 800 && sc[i] > worst[k])
					worst[k] = sc[i];
			}
		}
		free(st);
		model_free(m[k]);
	}
	print_message("single: noise, first 800 samples of 16 series: %d detections (highest "
	              "score %.3f) without, %d (%.3f) with the short-history path\n",
	              count[0], worst[0], count[1], worst[1]);
	assert_true(count[1] <= count[0]);
}

static void test_single_yaml(void **ctx)
{
	(void)ctx;
	static const char bad[] = MODEL("  single_for: -3\n");
	char err[256];
	struct model *m = model_load_string(bad, sizeof bad - 1, "bad.yml", err, sizeof err);
	assert_null(m);
	print_message("single: %s\n", err);
	assert_non_null(strstr(err, "single_for"));
	assert_non_null(strstr(err, "bad.yml:"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_single_sample_early),
		cmocka_unit_test(test_default_quiet_on_noise),
		cmocka_unit_test(test_single_yaml),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
