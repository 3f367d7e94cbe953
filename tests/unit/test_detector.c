/* test_detector.c — unit tests of the detector models (src/detect/detector.c and the
 * components in src/detect/): streaming contract (determinism, prefix
 * invariance, state snapshots), detection behaviour on synthetic series,
 * irregular timestamps, YAML validation with line numbers and the size of the
 * per-series state; a model with every component kind, and volatility alone
 * on a feed that gets stuck. With $FORESHOCK_SHARED_DATA set, prefix invariance is also
 * checked on NAB files.
 */
#include "config.h"

#include <float.h>
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
#include "detect/logf1.h"
#include "detect/model_int.h"
#include "util/timefmt.h"

/* ---- deterministic synthetic data ---------------------------------------- */

struct rng {
	uint64_t s;
};

static double rng_uniform(struct rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return ((double)(r->s >> 11) + 0.5) / 9007199254740992.0;
}

static double rng_normal(struct rng *r)
{
	double u = rng_uniform(r), v = rng_uniform(r);
	return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

#define T0 1396310400000LL /* 2014-04-01 00:00:00 */

/* Score n samples (ts[i], v[i]) from a fresh state into score[]. */
static void run(const struct model *m, const int64_t *ts, const double *v, size_t n, double *score,
                struct det_result *res)
{
	void *st = malloc(model_state_size(m));
	assert_non_null(st);
	model_state_init(m, st);
	for (size_t i = 0; i < n; i++) {
		struct det_result r;
		model_update(m, st, ts[i], v[i], &r);
		score[i] = r.score;
		if (res)
			res[i] = r;
	}
	free(st);
}

/* A daily-seasonal noisy series sampled every `step_ms`. */
static void make_series(int64_t *ts, double *v, size_t n, int64_t step_ms, uint64_t seed)
{
	struct rng r = { seed };
	for (size_t i = 0; i < n; i++) {
		ts[i] = T0 + (int64_t)i * step_ms;
		double ph = (double)(ts[i] % 86400000) / 86400000.0;
		v[i] = 50 + 10 * sin(2 * M_PI * ph) + rng_normal(&r);
	}
}

/* ---- streaming contract -------------------------------------------------- */

/* Series at different intervals (one jittered), updated in turn, score as
 * each does alone: the components' per-thread memos (det_alpha_at, the
 * seasonal bucket and the weekly stretch of the last timestamp) only skip
 * work, they never carry one series' result into another's. */
static void test_interleaved_series(void **ctx)
{
	(void)ctx;
	enum { NS = 3, N = 3000 };
	static const int64_t step[NS] = { 60000, 300000, 3600000 };
	struct model *m = model_builtin_default();
	int64_t *ts = malloc(NS * N * sizeof *ts);
	double *v = malloc(NS * N * sizeof *v), *alone = malloc(NS * N * sizeof *alone);
	struct det_result *ra = malloc(NS * N * sizeof *ra);
	void *st[NS];
	assert_true(m && ts && v && alone && ra);
	for (int k = 0; k < NS; k++) {
		make_series(ts + k * N, v + k * N, N, step[k], 7 + (uint64_t)k);
		for (int i = k == 1 ? 1 : N; i < N; i++) /* series 1: jitter, a gap */
			ts[k * N + i] += (i % 7) * 1000 + (i > N / 2 ? 86400000 : 0);
		run(m, ts + k * N, v + k * N, N, alone + k * N, ra + k * N);
		assert_non_null(st[k] = malloc(model_state_size(m)));
		model_state_init(m, st[k]);
	}
	for (int i = 0; i < N; i++)
		for (int k = 0; k < NS; k++) {
			struct det_result r;
			model_update(m, st[k], ts[k * N + i], v[k * N + i], &r);
			const struct det_result *a = &ra[k * N + i];
			assert_memory_equal(&r.score, &a->score, sizeof r.score);
			assert_memory_equal(&r.expected, &a->expected, sizeof r.expected);
			assert_memory_equal(&r.lower, &a->lower, sizeof r.lower);
			assert_memory_equal(&r.upper, &a->upper, sizeof r.upper);
			assert_int_equal(r.direction, a->direction);
		}
	for (int k = 0; k < NS; k++)
		free(st[k]);
	free(ts), free(v), free(alone), free(ra);
	model_free(m);
}

static void test_determinism_and_prefix(void **ctx)
{
	struct model *m = model_builtin_default();
	enum { N = 20000 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
	make_series(ts, v, N, 300000, 42);
	for (int i = 9000; i < 9050; i++)
		v[i] += 25; /* an anomaly, so the scores are not all 0 */
	run(m, ts, v, N, a, NULL);
	run(m, ts, v, N, b, NULL);
	assert_memory_equal(a, b, N * sizeof *a);
	/* prefix invariance: cutting the input at k does not change rows < k */
	static const size_t cuts[] = { 1, 151, 1000, 9010, 15000 };
	for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
		run(m, ts, v, cuts[c], b, NULL);
		assert_memory_equal(a, b, cuts[c] * sizeof *a);
	}
	/* a state block is plain data: a byte copy taken mid-stream continues identically */
	void *st = malloc(model_state_size(m)), *cp = malloc(model_state_size(m));
	model_state_init(m, st);
	struct det_result r;
	for (int i = 0; i < 9005; i++)
		model_update(m, st, ts[i], v[i], &r);
	memcpy(cp, st, model_state_size(m));
	memset(st, 0xAB, model_state_size(m));
	for (int i = 9005; i < N; i++) {
		model_update(m, cp, ts[i], v[i], &r);
		assert_true(r.score == a[i]);
	}
	int fired = 0;
	for (int i = 9000; i < 9010; i++)
		fired |= a[i] >= model_alerting(m)->threshold;
	assert_true(fired);
	free(st);
	free(cp);
	free(ts);
	free(v);
	free(a);
	free(b);
	model_free(m);
}

static int load_csv(const char *path, int64_t **ts, double **v, size_t *n)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	char line[256];
	size_t cap = 1024;
	*ts = malloc(cap * sizeof **ts);
	*v = malloc(cap * sizeof **v);
	*n = 0;
	if (!fgets(line, sizeof line, f)) {
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof line, f)) {
		char *comma = strchr(line, ',');
		if (!comma)
			continue;
		if (*n == cap) {
			cap *= 2;
			*ts = realloc(*ts, cap * sizeof **ts);
			*v = realloc(*v, cap * sizeof **v);
		}
		if (time_parse_ms(line, (size_t)(comma - line), &(*ts)[*n]) < 0)
			continue;
		(*v)[*n] = strtod(comma + 1, NULL);
		(*n)++;
	}
	fclose(f);
	return 0;
}

static void test_prefix_nab(void **ctx)
{
	const char *dir = getenv("FORESHOCK_SHARED_DATA");
	if (!dir)
		skip();
	static const char *const files[] = {
		"nab/data/realTweets/Twitter_volume_AAPL.csv",
		"nab/data/realAdExchange/exchange-2_cpc_results.csv",
		"nab/data/artificialWithAnomaly/art_daily_jumpsup.csv",
		"nab/data/realTraffic/speed_7578.csv",
	};
	struct model *m = model_builtin_default();
	int done = 0;
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		char path[1024];
		snprintf(path, sizeof path, "%s/%s", dir, files[f]);
		int64_t *ts;
		double *v;
		size_t n;
		if (load_csv(path, &ts, &v, &n) < 0)
			continue;
		double *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
		run(m, ts, v, n, a, NULL);
		for (size_t i = 0; i < n; i++)
			assert_true(a[i] >= 0 && a[i] <= 1);
		size_t cuts[] = { n / 7, n / 3, n / 2 + 1, n - 1 };
		for (size_t c = 0; c < 4; c++) {
			run(m, ts, v, cuts[c], b, NULL);
			assert_memory_equal(a, b, cuts[c] * sizeof *a);
		}
		free(a);
		free(b);
		free(ts);
		free(v);
		done++;
	}
	model_free(m);
	if (!done)
		skip();
}

/* ---- behaviour ------------------------------------------------------------ */

/* Daemon-like stream: 10 s samples, noise sigma 1, then a 5 sigma level shift
 * that stays. The score must cross the threshold within a few samples and
 * stay above clear_threshold for at least 3 minutes (the alert's `for`). */
static void test_step_change(void **ctx)
{
	struct model *m = model_builtin_default();
	const struct model_alerting *al = model_alerting(m);
	enum { N = 4000, ONSET = 3000 };
	int64_t ts[N];
	double v[N], s[N];
	struct rng r = { 7 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 10000;
		v[i] = 100 + rng_normal(&r) + (i >= ONSET ? 5 : 0);
	}
	run(m, ts, v, N, s, NULL);
	int first = -1;
	for (int i = ONSET; i < N && first < 0; i++)
		if (s[i] >= al->threshold)
			first = i;
	assert_true(first >= ONSET && first <= ONSET + 5);
	for (int i = first; i < first + 18; i++) /* 3 minutes */
		assert_true(s[i] >= al->clear_threshold);
	model_free(m);
}

static void test_spikes_and_quiet(void **ctx)
{
	struct model *m = model_builtin_default();
	const struct model_alerting *al = model_alerting(m);
	enum { N = 12000 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
	make_series(ts, v, N, 300000, 99);
	run(m, ts, v, N, s, NULL);
	int noisy = 0;
	for (int i = 0; i < N; i++)
		noisy += s[i] >= al->threshold;
	/* a stationary noisy series stays mostly quiet */
	assert_true(noisy <= N / 500);
	/* isolated large spikes are detected within a sample or two (the
	 * likelihood stage averages 3 samples, so small single spikes are not) */
	static const int at[] = { 5000, 8000, 11000 };
	for (int k = 0; k < 3; k++)
		v[at[k]] += 50;
	run(m, ts, v, N, s, NULL);
	for (int k = 0; k < 3; k++) {
		double best = 0;
		for (int i = at[k]; i < at[k] + 3; i++)
			best = s[i] > best ? s[i] : best;
		assert_true(best >= al->threshold);
	}
	free(ts);
	free(v);
	free(s);
	model_free(m);
}

/* Irregular sampling with long gaps: scores stay in [0,1], the seasonal
 * profile still works (keyed by time of day), and a shift after a gap is
 * detected. */
static void test_gappy_timestamps(void **ctx)
{
	struct model *m = model_builtin_default();
	const struct model_alerting *al = model_alerting(m);
	enum { N = 8000 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
	struct det_result *res = malloc(N * sizeof *res);
	struct rng r = { 3 };
	int64_t t = T0;
	for (int i = 0; i < N; i++) {
		t += 60000 + (int64_t)(rng_uniform(&r) * 240000); /* 1..5 min, jittered */
		if (i % 1000 == 999)
			t += 6 * 3600000; /* a 6 hour gap */
		ts[i] = t;
		double ph = (double)(t % 86400000) / 86400000.0;
		v[i] = 20 + 8 * sin(2 * M_PI * ph) + 0.5 * rng_normal(&r) + (i >= 7000 ? 6 : 0);
	}
	run(m, ts, v, N, s, res);
	int fired = 0, before = 0;
	for (int i = 0; i < N; i++) {
		assert_true(s[i] >= 0 && s[i] <= 1);
		assert_non_null(res[i].component);
		if (i >= 7000 && i < 7010)
			fired |= s[i] >= al->threshold;
		if (i >= 1500 && i < 6990)
			before += s[i] >= al->threshold;
	}
	assert_true(fired);
	assert_true(before <= 25);
	/* after learning, the expected value follows the daily cycle */
	assert_false(isnan(res[6500].expected));
	assert_true(fabs(res[6500].expected - v[6500]) < 4);
	free(ts);
	free(v);
	free(s);
	free(res);
	model_free(m);
}

static void expect_error(const char *yaml, const char *want);

/* The record component: a noisy series with recurring bursts of the same
 * size. The bursts stay inside the range seen before, so a record-only model
 * learns them; a burst beyond anything seen is detected at once. */
static void test_record(void **ctx)
{
	const char *y = "components:\n  - kind: record\n    halflife: 8000\n"
	                "likelihood:\n  window: 3\n  halflife: 4000\n  min_samples: 100\n"
	                "  decades: 11.5\n  calibrate: 0.001\nsuppress: 100\nhold: 0.4\n"
	                "alert:\n  threshold: 0.45\n  clear_threshold: 0.35\n";
	char err[256];
	struct model *m = model_load_string(y, strlen(y), "rec.yml", err, sizeof err);
	assert_non_null(m);
	const struct model_alerting *al = model_alerting(m);
	enum { N = 6000, BIG = 5200 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
	struct rng r = { 5 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 300000;
		v[i] = 10 + rng_normal(&r);
		if (i % 300 == 150)
			v[i] += 8; /* a burst every 300 samples, always the same size */
	}
	v[BIG] += 20;
	run(m, ts, v, N, s, NULL);
	int repeats = 0;
	for (int i = 1500; i < BIG; i++)
		repeats += s[i] >= al->threshold;
	assert_true(repeats <= 2);
	double best = 0;
	for (int i = BIG; i < BIG + 3; i++)
		best = s[i] > best ? s[i] : best;
	assert_true(best >= al->threshold);
	free(ts);
	free(v);
	free(s);
	model_free(m);
}

/* volatility alone: a noisy series whose feed gets stuck (the value stops
 * moving) is flagged soon after, as calmer (direction -1), with few alarms
 * while it is noisy. */
static void test_volatility_stuck(void **ctx)
{
	const char *y = "components:\n  - kind: volatility\n"
	                "likelihood:\n  window: 3\n  halflife: 4000\n  min_samples: 100\n"
	                "  decades: 11.5\n  calibrate: 0.001\nsuppress: 100\nhold: 0.4\n"
	                "alert:\n  threshold: 0.45\n  clear_threshold: 0.35\n";
	char err[256];
	struct model *m = model_load_string(y, strlen(y), "vol.yml", err, sizeof err);
	assert_non_null(m);
	const struct model_alerting *al = model_alerting(m);
	enum { N = 6000, STUCK = 5000 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
	struct det_result *res = malloc(N * sizeof *res);
	struct rng r = { 11 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 60000;
		v[i] = i < STUCK ? 10 + rng_normal(&r) : v[STUCK - 1];
	}
	run(m, ts, v, N, s, res);
	int early = 0;
	for (int i = 1500; i < STUCK; i++)
		early += s[i] >= al->threshold;
	print_message("volatility: %d alarms while noisy\n", early);
	assert_true(early <= 2);
	int first = -1;
	for (int i = STUCK; i < N && first < 0; i++)
		if (s[i] >= al->threshold)
			first = i;
	print_message("volatility: stuck at %d, flagged at %d\n", STUCK, first);
	assert_true(first >= STUCK && first <= STUCK + 30);
	assert_string_equal(res[first].component, "volatility");
	assert_int_equal(res[first].direction, -1);
	free(ts);
	free(v);
	free(s);
	free(res);
	model_free(m);
}

/* spike, scored directly: an isolated spike on a quiet hourly series is
 * detected; the same spike recurring every 12 hours stops being detected
 * after the first ones (the remembered extreme decays with a half-life of a
 * day); once the recurrences stop, the extreme is forgotten and a spike of
 * the same size 12 days later is detected again. A model without `direct`
 * rejects `likelihood: false`. */
static void test_spike(void **ctx)
{
	(void)ctx;
	const char *y = "components:\n  - kind: spike\n    memory: 1d\n    likelihood: false\n"
	                "    direct: 1.25\nwarmup: 120\nsuppress: 10\nhold: 0.4\narm: 0.45\n"
	                "alert:\n  threshold: 0.49\n  clear_threshold: 0.35\n";
	char err[256];
	struct model *m = model_load_string(y, strlen(y), "spike.yml", err, sizeof err);
	if (!m)
		fail_msg("%s", err);
	const struct model_alerting *al = model_alerting(m);
	enum { N = 1400, FIRST = 300, EVERY = 12, LAST = 700, LATE = 1000 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
	struct det_result *res = malloc(N * sizeof *res);
	struct rng r = { 5 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 3600000;
		v[i] = 10 + rng_normal(&r);
		if (i >= FIRST && i <= LAST && (i - FIRST) % EVERY == 0)
			v[i] += 40;
	}
	v[LATE] += 40;
	run(m, ts, v, N, s, res);
	int quiet = 0, recurring = 0;
	for (int i = 121; i < FIRST; i++)
		quiet += s[i] >= al->threshold;
	for (int i = FIRST + 4 * EVERY; i <= LAST; i++)
		recurring += s[i] >= al->threshold;
	print_message("spike: first %.3f, %d alarms before, %d on recurrences 5+, late %.3f\n",
	              s[FIRST], quiet, recurring, s[LATE]);
	assert_int_equal(quiet, 0);
	assert_true(s[FIRST] >= al->threshold);
	assert_string_equal(res[FIRST].component, "spike");
	assert_int_equal(res[FIRST].direction, 1);
	assert_int_equal(recurring, 0);
	assert_true(s[LATE] >= al->threshold);
	model_free(m);
	const char *bad = "components:\n  - kind: spike\n    likelihood: false\n";
	m = model_load_string(bad, strlen(bad), "bad.yml", err, sizeof err);
	assert_null(m);
	print_message("%s\n", err);
	free(ts);
	free(v);
	free(s);
	free(res);
}

/* One model with every component kind (the default uses only some): scores
 * stay in [0, 1], two runs agree, a level shift is caught, and every kind
 * contributes the top component at least once. */
static void test_every_component(void **ctx)
{
	const char *y = "components:\n  - kind: level\n  - kind: seasonal\n  - kind: context\n"
	                "  - kind: cusum\n  - kind: volatility\n  - kind: record\n";
	char err[256];
	struct model *m = model_load_string(y, strlen(y), "all.yml", err, sizeof err);
	if (!m)
		fail_msg("%s", err);
	const struct model_alerting *al = model_alerting(m);
	enum { N = 8000, SHIFT = 7000 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s), *s2 = malloc(N * sizeof *s2);
	struct det_result *res = malloc(N * sizeof *res);
	make_series(ts, v, N, 300000, 3);
	for (int i = SHIFT; i < N; i++)
		v[i] += 15;
	for (int i = 6000; i < 6050; i++)
		v[i] = v[5999]; /* a stuck stretch */
	run(m, ts, v, N, s, res);
	run(m, ts, v, N, s2, NULL);
	assert_memory_equal(s, s2, N * sizeof *s);
	static const char *const kinds[] = { "level", "seasonal", "context", "cusum", "volatility",
		                             "record" };
	int seen[6] = { 0 };
	for (int i = 0; i < N; i++) {
		assert_true(s[i] >= 0 && s[i] <= 1);
		for (int k = 0; k < 6; k++)
			if (res[i].component && !strcmp(res[i].component, kinds[k]))
				seen[k]++;
	}
	for (int k = 0; k < 6; k++) {
		print_message("%s: top component of %d samples\n", kinds[k], seen[k]);
		assert_true(seen[k] > 0);
	}
	int caught = 0;
	for (int i = SHIFT; i < SHIFT + 10; i++)
		caught |= s[i] >= al->threshold;
	assert_true(caught);
	free(ts);
	free(v);
	free(s);
	free(s2);
	free(res);
	model_free(m);
}

/* suppress_frac: after a detection, scores stay capped for that fraction of
 * the samples seen so far (at most suppress_max), then detections resume. */
static void test_suppress_frac(void **ctx)
{
	const char *y = "components:\n  - kind: level\nsuppress: 10\nsuppress_frac: 0.1\n"
	                "suppress_max: 300\nhold: 0.4\nalert:\n  threshold: 0.45\n"
	                "  clear_threshold: 0.35\n";
	char err[256];
	struct model *m = model_load_string(y, strlen(y), "sf.yml", err, sizeof err);
	assert_non_null(m);
	const struct model_alerting *al = model_alerting(m);
	enum { N = 5000 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s = malloc(N * sizeof *s);
	struct rng r = { 9 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 10000;
		v[i] = 100 + rng_normal(&r);
		if (i >= 2000 && i % 50 == 0)
			v[i] += 60; /* a large spike every 50 samples from sample 2000 */
	}
	run(m, ts, v, N, s, NULL);
	int first = -1, last = -1, count = 0;
	for (int i = 2000; i < N; i++)
		if (s[i] >= al->threshold) {
			if (first < 0)
				first = i;
			else
				assert_true(i - last >= 200); /* 10% of >= 2000 samples */
			last = i;
			count++;
		}
	assert_true(first >= 2000 && first <= 2002);
	assert_true(count >= 2); /* suppression ends: later spikes are detected again */
	expect_error("components:\n  - kind: level\nsuppress_frac: 2\n",
	             "m.yml:3: value '2' for 'suppress_frac' out of range");
	free(ts);
	free(v);
	free(s);
	model_free(m);
}

/* ---- YAML ------------------------------------------------------------------ */

static void expect_error(const char *yaml, const char *want)
{
	char err[512] = "";
	struct model *m = model_load_string(yaml, strlen(yaml), "m.yml", err, sizeof err);
	if (m || !strstr(err, want)) {
		fprintf(stderr, "yaml:\n%s\nwant '%s', got '%s'\n", yaml, want, err);
		model_free(m);
		fail();
	}
}

static void test_yaml_errors(void **ctx)
{
	expect_error("name: x\ncomponents:\n  - kind: level\n    halflif: 3\n",
	             "m.yml:4: unknown key 'halflif'");
	expect_error("name: x\ncomponents:\n  - kind: level\n    halflife: 0\n",
	             "m.yml:4: value '0' for 'halflife' out of range");
	expect_error("name: x\ncomponents:\n  - kind: nope\n", "m.yml:3: unknown component kind 'nope'");
	expect_error("name: x\n", "missing 'components'");
	expect_error("components:\n  - kind: seasonal\n    buckets: 1000\n",
	             "m.yml:3: value '1000' for 'buckets' out of range");
	expect_error("components:\n  - kind: seasonal\n    period: 5x\n", "m.yml:3: invalid duration");
	expect_error("components:\n  - kind: level\nbogus: 1\n", "m.yml:3: unknown key 'bogus'");
	expect_error("components:\n  - kind: level\nalert:\n  threshold: 0.5\n  clear_threshold: 0.7\n",
	             "m.yml:5: 'clear_threshold' 0.7 is above 'threshold' 0.5");
	expect_error("components:\n  - kind: level\nalert:\n  threshold: 2\n",
	             "m.yml:4: value '2' for 'threshold' out of range");
	expect_error("components:\n  - kind: level\ncombine: avg\n", "m.yml:3: invalid value 'avg'");
	expect_error("components:\n  - kind: level\nlikelihood:\n  window: abc\n",
	             "m.yml:4: invalid number 'abc'");
	expect_error("components: [\n", "m.yml:");
	expect_error("components:\n  - kind: record\n    halflife: 0\n",
	             "m.yml:3: value '0' for 'halflife' out of range");
	expect_error("components:\n  - kind: level\n    log: maybe\n", "m.yml:3:");
	expect_error("components:\n  - kind: level\narm: 0.6\nalert:\n  threshold: 0.5\n",
	             "m.yml:3: 'arm' 0.6 must not be above the alert threshold 0.5");
	expect_error("components:\n  - kind: level\narm: 0.3\nhold: 0.35\n",
	             "'hold' 0.35 must be below the alert threshold and 'arm' 0.3");

	const char *ok = "name: custom\ncomponents:\n  - kind: level\n    halflife: 10\n"
	                 "  - kind: cusum\n    weight: 0.5\n  - kind: context\ncombine: noisy_or\n"
	                 "alert:\n  threshold: 0.6\n  clear_threshold: 0.3\n  for: 2m\n  resolve: 10m\n"
	                 "  severity: critical\n";
	char err[256];
	struct model *m = model_load_string(ok, strlen(ok), "ok.yml", err, sizeof err);
	assert_non_null(m);
	assert_string_equal(model_name(m), "custom");
	const struct model_alerting *al = model_alerting(m);
	assert_true(al->threshold == 0.6 && al->clear_threshold == 0.3);
	assert_int_equal(al->for_ms, 120000);
	assert_int_equal(al->resolve_ms, 600000);
	assert_string_equal(al->severity, "critical");
	struct model *d = model_builtin_default();
	assert_true(model_fingerprint(m) != model_fingerprint(d));
	model_free(d);
	model_free(m);
}

static void test_default_file_matches_builtin(void **ctx)
{
	const char *src = getenv("FORESHOCK_SRCDIR");
	if (!src)
		skip();
	char path[1024], err[512];
	snprintf(path, sizeof path, "%s/models/default.yml", src);
	struct model *f = model_load_file(path, err, sizeof err);
	if (!f)
		fprintf(stderr, "%s\n", err);
	assert_non_null(f);
	struct model *d = model_builtin_default();
	assert_true(model_fingerprint(f) == model_fingerprint(d));
	assert_string_equal(model_name(f), model_name(d));
	const struct model_alerting *a = model_alerting(f), *b = model_alerting(d);
	assert_true(a->threshold == b->threshold && a->clear_threshold == b->clear_threshold);
	assert_true(a->for_ms == b->for_ms && a->resolve_ms == b->resolve_ms);
	assert_string_equal(a->severity, b->severity);
	model_free(f);
	model_free(d);
}

/* Extreme values (beyond float range, huge jumps) never produce NaN scores. */
static void test_extreme_values(void **ctx)
{
	struct model *m = model_builtin_default();
	void *st = malloc(model_state_size(m));
	model_state_init(m, st);
	struct rng r = { 11 };
	struct det_result res;
	for (int i = 0; i < 3000; i++) {
		double v = rng_normal(&r);
		if (i == 1000)
			v = 1e300;
		if (i == 1500)
			v = -1e300;
		if (i == 2000)
			v = 1e-300;
		model_update(m, st, T0 + (int64_t)i * 1000, v, &res);
		assert_true(res.score >= 0 && res.score <= 1);
		assert_non_null(res.component);
	}
	free(st);
	model_free(m);
}

static void test_state_size(void **ctx)
{
	struct model *m = model_builtin_default();
	assert_true(model_state_size(m) <= 1024); /* the detector's share of the 2 KiB per series */
	print_message("default model state: %zu bytes\n", model_state_size(m));
	assert_true(model_state_size(m) % 8 == 0);
	model_free(m);
	/* the largest allowed seasonal profile still fits the 4 KiB series budget */
	const char *y = "components:\n  - kind: seasonal\n    buckets: 168\n  - kind: level\n";
	char err[256];
	m = model_load_string(y, strlen(y), "big.yml", err, sizeof err);
	assert_non_null(m);
	assert_true(model_state_size(m) <= 4096);
	model_free(m);
}

/* The optional likelihood stages (instant scoring, exponential tail) keep
 * their fields after the ring, only in models that use them; the widest
 * window fills the whole ring. Under ASan this also checks the layout. */
static void test_optional_likelihood_stages(void **ctx)
{
	(void)ctx;
	const char *base = "components:\n  - kind: level\n  - kind: cusum\n"
	                   "likelihood:\n  window: 16\n  min_samples: 50\n"
	                   "warmup: 100\nsuppress: 50\n";
	const char *opt = "components:\n  - kind: level\n  - kind: cusum\n"
	                  "likelihood:\n  window: 16\n  min_samples: 50\n  instant: true\n"
	                  "  tail: exponential\nwarmup: 100\nsuppress: 50\n";
	char err[256];
	struct model *mb = model_load_string(base, strlen(base), "base.yml", err, sizeof err);
	struct model *mo = model_load_string(opt, strlen(opt), "opt.yml", err, sizeof err);
	assert_non_null(mb);
	assert_non_null(mo);
	/* two components, each with the optional fields (two doubles, two floats) */
	assert_int_equal(model_state_size(mo), model_state_size(mb) + 2 * 24);
	assert_true(model_fingerprint(mo) != model_fingerprint(mb));
	enum { N = 3000, SPIKE = 2500 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *s1 = malloc(N * sizeof *s1), *s2 = malloc(N * sizeof *s2);
	struct rng r = { 11 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 60000;
		v[i] = 100 + rng_normal(&r);
	}
	v[SPIKE] += 40;
	const struct model_alerting *al = model_alerting(mo);
	run(mo, ts, v, N, s1, NULL);
	run(mo, ts, v, N, s2, NULL);
	assert_memory_equal(s1, s2, N * sizeof *s1); /* no uninitialised state */
	assert_true(s1[SPIKE] >= al->threshold);
	int quiet = 0;
	for (int i = 1000; i < SPIKE; i++)
		quiet += s1[i] >= al->threshold;
	assert_true(quiet <= 3);
	free(ts);
	free(v);
	free(s1);
	free(s2);
	model_free(mb);
	model_free(mo);
}

/* seasonal with weekday: true learns a weekend level (an offset per day of
 * the week, on top of the daily profile, used once the series is found to
 * have a weekly season: detect/acf.h), so in the fifth week a weekend
 * sample is expected near the weekend level and scores low; without it the
 * daily profile expects the weekday level there. The state grows by 7
 * offsets (float) and 7 counts (uint16) and the weekly test's ring (64
 * bytes), 8-aligned. */
static void test_weekday(void **ctx)
{
	(void)ctx;
	static const char *const yaml[2] = {
		"components:\n  - kind: seasonal\nlikelihood:\n  enabled: false\nwarmup: 10\n",
		"components:\n  - kind: seasonal\n    weekday: true\nlikelihood:\n  enabled: false\nwarmup: 10\n",
	};
	char err[256];
	struct model *m[2];
	for (int k = 0; k < 2; k++) {
		m[k] = model_load_string(yaml[k], strlen(yaml[k]), "wd", err, sizeof err);
		assert_non_null(m[k]);
	}
	size_t grow = model_state_size(m[1]) - model_state_size(m[0]);
	assert_true(grow >= 64 + 7 * 6 && grow <= 64 + 7 * 6 + 7); /* ring, 7 floats, 7 counts */
	/* hourly, 5 weeks; 2014-04-05 and -06 (T0 + 4 and 5 days) are a weekend */
	enum { N = 5 * 7 * 24 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *sc = malloc(N * sizeof *sc);
	struct det_result *res = malloc(N * sizeof *res);
	assert_true(ts && v && sc && res);
	struct rng r = { 99 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 3600000;
		int day = (i / 24) % 7;
		int weekend = day == 4 || day == 5;
		v[i] = (weekend ? 50 : 100) + 10 * sin(2 * M_PI * (i % 24) / 24.0) + rng_normal(&r);
	}
	double err_exp[2], raw_score[2];
	for (int k = 0; k < 2; k++) {
		run(m[k], ts, v, N, sc, res);
		/* the last weekend: days 32 and 33 */
		double e = 0, s = 0;
		int cnt = 0;
		for (int i = 32 * 24 + 6; i < 34 * 24; i++) {
			e += fabs(res[i].expected - v[i]);
			s += sc[i];
			cnt++;
		}
		err_exp[k] = e / cnt;
		raw_score[k] = s / cnt;
		print_message("weekday %d: mean |expected - value| %.2f, mean score %.3f on the last weekend\n",
		              k, err_exp[k], raw_score[k]);
	}
	assert_true(err_exp[1] < 5);
	assert_true(err_exp[0] > 15);
	assert_true(raw_score[1] < raw_score[0]);
	/* without a weekly pattern the weekly test never passes and the
	 * offsets do not count: the scores are those of the daily profile alone
	 * (also with a much larger daily cycle, which correlates a day apart as
	 * much as a week apart) */
	double *sc0 = malloc(N * sizeof *sc0);
	assert_non_null(sc0);
	for (int amp = 10; amp <= 100; amp += 90) {
		for (int i = 0; i < N; i++)
			v[i] = 200 + amp * sin(2 * M_PI * (i % 24) / 24.0) + rng_normal(&r);
		run(m[0], ts, v, N, sc0, NULL);
		run(m[1], ts, v, N, sc, NULL);
		assert_memory_equal(sc0, sc, N * sizeof *sc);
	}
	free(sc0);
	free(ts);
	free(v);
	free(sc);
	free(res);
	model_free(m[0]);
	model_free(m[1]);
}

/* The default model's settings, with or without `deseason` on cusum. */
#define DS_MODEL(extra)                                                                   \
	"components:\n  - kind: seasonal\n    weekday: true\n"                                  \
	"  - kind: cusum\n    halflife: 512\n" extra "  - kind: record\n    halflife: 8000\n"   \
	"  - kind: spike\n    memory: 1d\n    likelihood: false\n    direct: 1\n"           \
	"  - kind: changept\n    likelihood: false\n    direct: 3\n"                          \
	"likelihood:\n  window: 3\n  halflife: 4000\n  min_samples: 60\n  decades: 11.5\n"     \
	"  calibrate: 0.001\n  single_for: 800\n  single_floor: 0.26\nwarmup: 120\n"          \
	"suppress: 10\nsuppress_frac: 0.04\n"                                                   \
	"suppress_max: 1000\nhold: 0.4\nrefire: 1.5\nrenew: true\narm: 0.45\n"                   \
	"alert:\n  threshold: 0.49\n"                                                          \
	"  clear_threshold: 0.35\n"

/* 5-minute samples of a volatile series with a daily cycle (level 100,
 * +-20%, noise 15%); from day 21 the level slides (kind 1: to half over one
 * day) or crashes (kind 2: to 40 at once); kind 0: no season, no change. */
static void ds_series(int64_t *ts, double *v, int n, int kind, uint64_t seed)
{
	struct rng r = { seed };
	for (int i = 0; i < n; i++) {
		ts[i] = T0 + (int64_t)i * 300000;
		double lvl = 100, t = i - 21 * 288;
		if (kind == 1 && t >= 0)
			lvl = 100 - 50 * (t < 288 ? t / 288 : 1);
		else if (kind == 2 && t >= 0)
			lvl = 40;
		double season = kind ? 0.2 * sin(2 * M_PI * (i % 288) / 288.0) : 0;
		v[i] = lvl * (1 + season) + 0.15 * lvl * rng_normal(&r);
	}
}

/* cusum with `deseason` accumulates the value minus what the daily profile
 * expects, once the profile is found to be a season: on a volatile daily
 * series a one-day slide to half the level is detected within hours (the
 * cusum on raw values alarms on the daily cycle itself, so its likelihood
 * stage has learnt to ignore it: the plain default misses this slide), a
 * crash to 40% at once (as without the option); on a series without a
 * season the scores are bit-identical to those without the option. */
static void test_deseason(void **ctx)
{
	(void)ctx;
	static const char y0[] = DS_MODEL(""), y1[] = DS_MODEL("    deseason: true\n");
	char err[256];
	struct model *m0 = model_load_string(y0, strlen(y0), "ds0", err, sizeof err);
	struct model *m1 = model_load_string(y1, strlen(y1), "ds1", err, sizeof err);
	assert_non_null(m0);
	assert_non_null(m1);
	struct model *d = model_builtin_default();
	assert_true(model_fingerprint(m0) == model_fingerprint(d)); /* m0 is the default */
	model_free(d);
	enum { N = 28 * 288, START = 21 * 288 };
	int64_t *ts = malloc(N * sizeof *ts);
	double *v = malloc(N * sizeof *v), *sc = malloc(N * sizeof *sc), *sc0 = malloc(N * sizeof *sc0);
	assert_true(ts && v && sc && sc0);
	int first[3][2], count[3][2];
	for (int kind = 0; kind < 3; kind++) {
		ds_series(ts, v, N, kind, 11 + (uint64_t)kind);
		for (int k = 0; k < 2; k++) {
			run(k ? m1 : m0, ts, v, N, k ? sc : sc0, NULL);
			if (k && kind == 0) /* no season found: not a bit changes */
				assert_memory_equal(sc0, sc, N * sizeof *sc);
			first[kind][k] = -1;
			count[kind][k] = 0;
			for (int i = 5 * 288; i < N; i++) {
				if ((k ? sc : sc0)[i] < 0.49)
					continue;
				if (i < START || kind == 0)
					count[kind][k]++;
				else if (first[kind][k] < 0)
					first[kind][k] = i - START;
			}
		}
		print_message("deseason: series %d: detections before day 21 %d / %d, first after "
		              "it at sample %d / %d (without / with)\n", kind, count[kind][0],
		              count[kind][1], first[kind][0], first[kind][1]);
	}
	/* the slide within its day, the crash within 3 samples */
	assert_true(first[1][1] >= 0 && first[1][1] < 288);
	assert_true(first[2][1] >= 0 && first[2][1] < 3);
	/* few false detections on the seasonal series (21 days) */
	assert_true(count[1][1] <= 2 && count[2][1] <= 2);
	free(sc0);
	free(ts);
	free(v);
	free(sc);
	model_free(m0);
	model_free(m1);
}

/* record with `deseason` judges the value minus the daily profile's offset:
 * a value far above the usual trough of a daily cycle but inside the day's
 * range breaks the range of the deseasonalised series, not that of the raw
 * one. seasonal has weight 0, so the score is record's. */
static void test_deseason_record(void **ctx)
{
	(void)ctx;
	static const char *const yaml[2] = {
		"components:\n  - kind: seasonal\n    weight: 0\n  - kind: record\n"
		"likelihood:\n  enabled: false\nwarmup: 10\n",
		"components:\n  - kind: seasonal\n    weight: 0\n  - kind: record\n    deseason: true\n"
		"likelihood:\n  enabled: false\nwarmup: 10\n",
	};
	/* hourly, 4 weeks, a daily cycle 50..150; day 21 at 18:00 (the trough,
	 * expected 50) reads 140 */
	enum { N = 4 * 7 * 24, ANOM = 21 * 24 + 18 };
	int64_t ts[N];
	double v[N], sc[2][N];
	struct rng r = { 5 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 3600000;
		v[i] = 100 + 50 * sin(2 * M_PI * (i % 24) / 24.0) + rng_normal(&r);
	}
	v[ANOM] = 140;
	for (int k = 0; k < 2; k++) {
		char err[256];
		struct model *m = model_load_string(yaml[k], strlen(yaml[k]), "dsr", err, sizeof err);
		assert_non_null(m);
		run(m, ts, v, N, sc[k], NULL);
		model_free(m);
	}
	print_message("deseason: record score of the trough anomaly %.3f without, %.3f with\n",
	              sc[0][ANOM], sc[1][ANOM]);
	assert_true(sc[0][ANOM] == 0);
	assert_true(sc[1][ANOM] > 0.2);
}

/* warmup_for ends the warm-up of a slow series by event time: hourly samples
 * with `warmup: 150` and `warmup_for: 1d` score from the 31st sample (at
 * least 30 samples), not the 151st; without it, from the 151st. */
static void test_warmup_for(void **ctx)
{
	(void)ctx;
	static const char *const yaml[2] = {
		"components:\n  - kind: level\nlikelihood:\n  enabled: false\nwarmup: 150\n",
		"components:\n  - kind: level\nlikelihood:\n  enabled: false\nwarmup: 150\nwarmup_for: 1d\n",
	};
	enum { N = 200 };
	int64_t ts[N];
	double v[N], sc[N];
	struct rng r = { 7 };
	for (int i = 0; i < N; i++) {
		ts[i] = T0 + (int64_t)i * 3600000;
		v[i] = 10 + rng_normal(&r);
	}
	int first[2];
	for (int k = 0; k < 2; k++) {
		char err[256];
		struct model *m = model_load_string(yaml[k], strlen(yaml[k]), "wf", err, sizeof err);
		assert_non_null(m);
		run(m, ts, v, N, sc, NULL);
		first[k] = -1;
		for (int i = 0; i < N && first[k] < 0; i++)
			if (sc[i] > 0)
				first[k] = i;
		model_free(m);
	}
	assert_int_equal(first[0], 150);
	assert_int_equal(first[1], 30);
}

/* det_logf1 (the likelihood stage's log(1 + raw) as a float) gives the float
 * libm's log rounded to float gives, bit for bit: raw scores of every scale,
 * y at the edges of the table's rows, and y whose log lies next to the
 * midpoint between two floats (where a less careful shortcut rounds the
 * other way; there it must ask libm). */
static void test_logf1_matches_libm(void **ctx)
{
	(void)ctx;
	det_logf1_prepare();
	struct rng r = { 0x9e3779b97f4a7c15ull };
	long bad = 0;
	for (long i = 0; i < 3000000; i++) {
		double raw;
		switch (i % 5) {
		case 0: /* the likelihood stage's smallest: 2^-10 and up (and below: libm) */
			raw = i % 10 ? 0x1p-10 + rng_uniform(&r) * 0.05 : rng_uniform(&r) * 0x1p-9;
			break;
		case 1: /* 1e-3 .. 1e19 */
			raw = exp(rng_uniform(&r) * 51 - 7);
			break;
		case 2: { /* log(1 + raw) next to the midpoint of two floats */
			float f = (float)(0.001 + rng_uniform(&r) * 40);
			double mid = ((double)f + (double)nextafterf(f, 100)) / 2;
			raw = exp(mid) - 1;
			if (raw < 0x1p-10)
				raw = 0.5;
			break;
		}
		case 3: { /* at the edges of the table's rows, any exponent */
			int k = (int)(rng_uniform(&r) * DET_LOGF1_N), e = (int)(rng_uniform(&r) * 1000);
			raw = ldexp(1 + k / (double)DET_LOGF1_N, e) * (1 + (rng_uniform(&r) - 0.5) * 1e-13) - 1;
			if (raw < 0x1p-10)
				raw = 0.25;
			break;
		}
		default: /* any bits of a finite double >= 2^-10 */
			raw = ldexp(1 + rng_uniform(&r), (int)(rng_uniform(&r) * 1033) - 10);
			break;
		}
		double y = 1 + raw;
		float a = det_logf1(y), b = (float)log(y);
		if (memcmp(&a, &b, sizeof a) != 0 && bad++ < 5)
			fprintf(stderr, "det_logf1(%a) = %a, libm %a\n", y, (double)a, (double)b);
	}
	assert_int_equal(bad, 0);
	const double edge[] = { 1 + 0x1p-10, 1 + 0x1p-11, 1, 0.5, 2, 2 - 0x1p-52, 1e300, DBL_MAX,
		                INFINITY };
	for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++) {
		float a = det_logf1(edge[i]), b = (float)log(edge[i]);
		assert_memory_equal(&a, &b, sizeof a);
	}
}

/* lk_rate_z: below the z it returns, the likelihood stage skips the
 * average's tail when the single sample's wins, sure that the tail is no
 * tail event at level qref: the z lies 1/64 below the crossing Q(z) = qref,
 * found to well within that margin; 0 when the crossing is at 0 (1/2). */
static void test_lk_rate_z(void **ctx)
{
	(void)ctx;
	const double q[] = { 1e-9, 1e-4, 0.001, 0.01, 0.1, 0.3, 0.45 };
	for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
		double z = lk_rate_z(log(q[i]));
		assert_true(z > 0);
		/* the crossing, from the other side: Q(z + 1/64) is still above
		 * qref, Q(z + 1/64 + 1e-9) no longer */
		assert_true(0.5 * erfc((z + 1.0 / 64 - 1e-9) * M_SQRT1_2) > q[i]);
		assert_true(0.5 * erfc((z + 1.0 / 64 + 1e-9) * M_SQRT1_2) < q[i]);
	}
	assert_true(lk_rate_z(log(0.5)) == 0);
	assert_true(lk_rate_z(log(0.499)) == 0); /* crossing at 0.0025 < 1/64 */
}

/* model_prefetch's lines: for each way an 8-aligned state can sit in a
 * cache line, the plan lists each line that holds a byte of one of the
 * ranges, from the first line up (the list is read from its end), and no
 * other line: the lines prefetch_range asked for range by range; each
 * once, but for the first line, repeated so that every position's list
 * has the same count. A state larger than the lists falls back to the
 * ranges. */
static void test_prefetch_lines(void **ctx)
{
	(void)ctx;
	const char *y[] = {
		NULL, /* the built-in default */
		"components:\n  - kind: level\n  - kind: seasonal\n  - kind: context\n"
		"  - kind: cusum\n  - kind: volatility\n  - kind: record\n",
		"components:\n  - kind: seasonal\n    weekday: true\n  - kind: spike\n"
		"    likelihood: false\n    direct: 1\n",
		"components:\n  - kind: seasonal\n    buckets: 168\n    weekday: true\n"
		"  - kind: context\n    bins: 64\n",
	};
	int fell_back = 0;
	for (size_t k = 0; k < sizeof y / sizeof y[0]; k++) {
		char err[256];
		struct model *m = y[k] ? model_load_string(y[k], strlen(y[k]), "pf", err, sizeof err) :
		                         model_builtin_default();
		if (!m)
			fail_msg("%s", err);
		assert_true(m->npf > 0);
		if (!m->pf_lines) {
			/* only when some alignment needs more lines than the lists hold */
			size_t end = 0;
			for (int i = 0; i < m->npf; i++)
				if (m->pf[i].off + m->pf[i].len > end)
					end = m->pf[i].off + m->pf[i].len;
			assert_true((56 + end - 1) / 64 >= PF_MAX_LINES);
			assert_true(model_state_size(m) > 1024);
			fell_back++;
			model_free(m);
			continue;
		}
		for (int j = 0; j < 8; j++) {
			/* the lines of a state 8 * j bytes into line 0 */
			unsigned char want[PF_MAX_LINES + 2] = { 0 }, got[PF_MAX_LINES + 2] = { 0 };
			for (int i = 0; i < m->npf; i++) {
				size_t o = 8 * (size_t)j + m->pf[i].off;
				for (size_t off = 0; off < m->pf[i].len; off += 64)
					want[(o + off) / 64] = 1;
				if (m->pf[i].len)
					want[(o + m->pf[i].len - 1) / 64] = 1;
			}
			int n = m->pf_nline[j], prev = -1, first = 8 * j + m->pf_line[j][n - 1];
			assert_true(n > 0 && n <= PF_MAX_LINES);
			assert_int_equal(n, m->pf_nline[0]); /* one count for every position */
			for (int i = n - 1; i >= 0; i--) {
				int at = 8 * j + m->pf_line[j][i];
				assert_true(at >= 0 && at % 64 == 0);
				int line = at / 64;
				/* first line first (repeated at the start), then each once */
				assert_true(line > prev || (line == prev && at == first));
				prev = line;
				got[line] = 1;
			}
			assert_memory_equal(want, got, sizeof want);
		}
		model_free(m);
	}
	assert_int_equal(fell_back, 1); /* the 168-bucket model's state */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_determinism_and_prefix),
		cmocka_unit_test(test_interleaved_series),
		cmocka_unit_test(test_prefix_nab),
		cmocka_unit_test(test_step_change),
		cmocka_unit_test(test_spikes_and_quiet),
		cmocka_unit_test(test_gappy_timestamps),
		cmocka_unit_test(test_record),
		cmocka_unit_test(test_volatility_stuck),
		cmocka_unit_test(test_every_component),
		cmocka_unit_test(test_spike),
		cmocka_unit_test(test_suppress_frac),
		cmocka_unit_test(test_yaml_errors),
		cmocka_unit_test(test_default_file_matches_builtin),
		cmocka_unit_test(test_extreme_values),
		cmocka_unit_test(test_state_size),
		cmocka_unit_test(test_optional_likelihood_stages),
		cmocka_unit_test(test_weekday),
		cmocka_unit_test(test_warmup_for),
		cmocka_unit_test(test_deseason),
		cmocka_unit_test(test_deseason_record),
		cmocka_unit_test(test_logf1_matches_libm),
		cmocka_unit_test(test_lk_rate_z),
		cmocka_unit_test(test_prefetch_lines),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
