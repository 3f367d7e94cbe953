/* test_forecast.c — unit tests of the streaming forecaster (src/detect/forecast.c):
 * learning a daily sinusoid, season detection, interval coverage on noisy
 * data, time-to-breach on a ramp, gappy timestamps, determinism, outputs
 * pinned to the values before the speed-ups, and the state-size / plain-data
 * (checkpoint by memcpy) contract. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gsl/gsl_errno.h>

#include "detect/forecast.h"
#include "util/rng.h"

#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
#define T0 1700006400000LL /* 2023-11-15T00:00:00Z */

static double sinus(int64_t t)
{
	return 100 + 20 * sin(2 * M_PI * (double)(t % DAY_MS) / DAY_MS);
}

struct fc {
	struct forecast_params p;
	_Alignas(8) unsigned char st[FORECAST_STATE_MAX];
};

static void fc_init(struct fc *f)
{
	forecast_params_default(&f->p);
	forecast_state_init(&f->p, f->st);
}

static void feed_sinus(struct fc *f, int days, int64_t step, double noise, uint64_t seed)
{
	struct rng r = { seed };
	for (int64_t t = T0; t < T0 + days * DAY_MS; t += step)
		forecast_update(&f->p, f->st, t, sinus(t) + noise * rng_norm(&r));
}

static void test_state_size(void **unused)
{
	struct forecast_params p;
	forecast_params_default(&p);
	assert_true(forecast_state_size(&p) <= FORECAST_STATE_MAX);
	assert_true(forecast_state_size(&p) <= 1536);
}

static void test_not_enough_history(void **unused)
{
	struct fc f;
	fc_init(&f);
	struct forecast_point pt;
	assert_int_equal(forecast_predict(&f.p, f.st, T0, 0, 1, &pt), -1);
	for (int i = 0; i < 10; i++)
		forecast_update(&f.p, f.st, T0 + i * 5 * MIN_MS, 1.0);
	assert_int_equal(forecast_predict(&f.p, f.st, T0, 0, 1, &pt), -1);
	struct breach b;
	assert_int_equal(forecast_time_to_breach(&f.p, f.st, T0, HOUR_MS, 2, 1, &b), -1);
	assert_int_equal(forecast_period_ms(f.st), 0);
}

/* A clean daily sinusoid: period found, next day forecast within tolerance. */
static void test_sinusoid(void **unused)
{
	struct fc f;
	fc_init(&f);
	feed_sinus(&f, 10, 5 * MIN_MS, 0.5, 1);
	assert_int_equal(forecast_period_ms(f.st), DAY_MS);
	struct forecast_point pts[48];
	int64_t now = T0 + 10 * DAY_MS;
	assert_int_equal(forecast_predict(&f.p, f.st, now, 30 * MIN_MS, 48, pts), 0);
	double maxerr = 0;
	for (int i = 0; i < 48; i++) {
		double e = fabs(pts[i].mean - sinus(pts[i].ts_ms));
		if (e > maxerr)
			maxerr = e;
		assert_true(pts[i].lo95 <= pts[i].lo80 && pts[i].lo80 <= pts[i].mean);
		assert_true(pts[i].mean <= pts[i].hi80 && pts[i].hi80 <= pts[i].hi95);
	}
	print_message("sinusoid: max error over the next day %.3f\n", maxerr);
	assert_true(maxerr < 3.0); /* amplitude 20, noise sd 0.5 */
}

/* Period detection: white noise has none; weekday/weekend pattern is weekly. */
static void test_period_detection(void **unused)
{
	struct fc f;
	fc_init(&f);
	struct rng r = { 7 };
	for (int64_t t = T0; t < T0 + 16 * DAY_MS; t += 5 * MIN_MS)
		forecast_update(&f.p, f.st, t, 50 + 5 * rng_norm(&r));
	assert_int_equal(forecast_period_ms(f.st), 0);

	fc_init(&f);
	for (int64_t t = T0; t < T0 + 16 * DAY_MS; t += 5 * MIN_MS) {
		int64_t dow = ((t - T0) / DAY_MS + 3) % 7; /* T0 is a Wednesday; 0 = Sunday */
		double wk = (dow == 0 || dow == 6) ? 0.4 : 1.0;
		forecast_update(&f.p, f.st, t, wk * sinus(t) + 2 * rng_norm(&r));
	}
	assert_int_equal(forecast_period_ms(f.st), 7 * DAY_MS);
}

/* Walk forward on noisy seasonal data (heavy-ish tails): 1 h ahead intervals
 * must cover about what they claim. */
static void test_coverage(void **unused)
{
	struct fc f;
	fc_init(&f);
	struct rng r = { 11 };
	const int64_t step = 5 * MIN_MS, H = HOUR_MS;
	int n = (int)(20 * DAY_MS / step);
	double *y = malloc(sizeof(double) * n);
	assert_non_null(y);
	for (int i = 0; i < n; i++) {
		double e = rng_norm(&r) * (rng_unif(&r) < 0.1 ? 3 : 1);
		y[i] = sinus(T0 + i * step) * (1 + 0.002 * i / 288.0) + 4 * e;
	}
	int lag = (int)(H / step), in80 = 0, in95 = 0, cnt = 0;
	for (int i = 0; i + lag < n; i++) {
		forecast_update(&f.p, f.st, T0 + i * step, y[i]);
		if (i < 3 * 288)
			continue;
		struct forecast_point pt;
		assert_int_equal(forecast_predict(&f.p, f.st, T0 + (i + lag) * step, 0, 1, &pt), 0);
		double a = y[i + lag];
		in80 += a >= pt.lo80 && a <= pt.hi80;
		in95 += a >= pt.lo95 && a <= pt.hi95;
		cnt++;
	}
	free(y);
	double c80 = (double)in80 / cnt, c95 = (double)in95 / cnt;
	print_message("coverage80=%.3f coverage95=%.3f n=%d\n", c80, c95, cnt);
	assert_true(c80 > 0.72 && c80 < 0.88);
	assert_true(c95 > 0.90 && c95 < 0.98);
}

/* Additive or multiplicative by the data: day levels vary 4x; the daily swing
 * is proportional to the level in one series and constant in the other. */
static void test_mode_choice(void **unused)
{
	static const double day_level[8] = { 50, 200, 80, 150, 60, 220, 100, 70 };
	for (int mult = 0; mult <= 1; mult++) {
		struct fc f;
		fc_init(&f);
		struct rng r = { 17 };
		for (int64_t t = T0; t < T0 + 8 * DAY_MS; t += 5 * MIN_MS) {
			double lv = day_level[(t - T0) / DAY_MS];
			double cyc = sin(2 * M_PI * (double)(t % DAY_MS) / DAY_MS);
			double y = mult ? lv * (1 + 0.6 * cyc) : lv + 30 * cyc;
			forecast_update(&f.p, f.st, t, y + 0.5 * rng_norm(&r));
		}
		struct forecast_info info;
		forecast_info_get(f.st, &info);
		print_message("mode: generated %s, chosen %s (offset %.2f)\n",
		              mult ? "multiplicative" : "additive",
		              info.multiplicative ? "multiplicative" : "additive", info.offset);
		assert_int_equal(info.multiplicative, mult);
	}
}

/* A linear ramp of 1 per minute: a limit 60 above the current value is
 * crossed in about an hour (phi = 1: no damping). */
static void test_breach_ramp(void **unused)
{
	struct fc f;
	fc_init(&f);
	f.p.phi = 1.0;
	f.p.detect_season = 0;
	forecast_state_init(&f.p, f.st);
	struct rng r = { 3 };
	int64_t t;
	for (t = T0; t < T0 + DAY_MS; t += MIN_MS)
		forecast_update(&f.p, f.st, t, (double)(t - T0) / MIN_MS + 0.2 * rng_norm(&r));
	int64_t now = t - MIN_MS;
	double cur = (double)(now - T0) / MIN_MS;
	struct breach b;
	assert_int_equal(forecast_time_to_breach(&f.p, f.st, now, 3 * HOUR_MS, cur + 60, 1, &b), 0);
	assert_true(b.mean_crosses);
	double mins = (double)(b.mean_at_ms - now) / MIN_MS;
	print_message("ramp: mean crosses after %.1f min (analytic 60), upper after %.1f min, p=%.3f\n",
	              mins, (double)(b.upper_at_ms - now) / MIN_MS, b.probability);
	assert_true(fabs(mins - 60) < 6);
	assert_true(b.upper_crosses && b.upper_at_ms <= b.mean_at_ms);
	assert_true(b.probability > 0.9);

	/* not within the horizon */
	assert_int_equal(forecast_time_to_breach(&f.p, f.st, now, 30 * MIN_MS, cur + 60, 1, &b), 0);
	assert_false(b.mean_crosses);
	assert_int_equal(b.mean_at_ms, 0);
	assert_true(b.probability < 0.5);

	/* below: already breached now */
	assert_int_equal(forecast_time_to_breach(&f.p, f.st, now, HOUR_MS, cur + 10, 0, &b), 0);
	assert_true(b.mean_crosses);
	assert_int_equal(b.mean_at_ms, now);
}

/* Irregular timestamps with long gaps and an out-of-order sample. */
static void test_gappy(void **unused)
{
	struct fc f;
	fc_init(&f);
	struct rng r = { 5 };
	int64_t t = T0;
	while (t < T0 + 12 * DAY_MS) {
		forecast_update(&f.p, f.st, t, sinus(t) + 0.5 * rng_norm(&r));
		t += (int64_t)(-log(rng_unif(&r)) * 5 * MIN_MS) + 1000;
		if (rng_unif(&r) < 0.003)
			t += 6 * HOUR_MS;
	}
	struct forecast_info info;
	forecast_info_get(f.st, &info);
	uint64_t dropped = info.dropped;
	forecast_update(&f.p, f.st, t - DAY_MS, 1e6); /* far in the past: dropped */
	forecast_info_get(f.st, &info);
	assert_int_equal(info.dropped, dropped + 1);
	assert_int_equal(forecast_period_ms(f.st), DAY_MS);
	struct forecast_point pts[24];
	assert_int_equal(forecast_predict(&f.p, f.st, t, HOUR_MS, 24, pts), 0);
	double maxerr = 0;
	for (int i = 0; i < 24; i++)
		maxerr = fmax(maxerr, fabs(pts[i].mean - sinus(pts[i].ts_ms)));
	print_message("gappy: max error over the next day %.3f\n", maxerr);
	assert_true(maxerr < 4.0);
}

/* Same input, same bytes; a memcpy'd state (checkpoint) continues identically. */
static void test_determinism(void **unused)
{
	struct fc a, b;
	fc_init(&a);
	fc_init(&b);
	feed_sinus(&a, 5, 5 * MIN_MS, 3, 9);
	feed_sinus(&b, 5, 5 * MIN_MS, 3, 9);
	assert_memory_equal(a.st, b.st, forecast_state_size(&a.p));

	struct fc c;
	c.p = a.p;
	memcpy(c.st, a.st, sizeof(a.st));
	for (int64_t t = T0 + 5 * DAY_MS; t < T0 + 7 * DAY_MS; t += 5 * MIN_MS) {
		forecast_update(&a.p, a.st, t, sinus(t));
		forecast_update(&c.p, c.st, t, sinus(t));
	}
	struct forecast_point pa[10], pc[10];
	assert_int_equal(forecast_predict(&a.p, a.st, T0 + 7 * DAY_MS, HOUR_MS, 10, pa), 0);
	assert_int_equal(forecast_predict(&c.p, c.st, T0 + 7 * DAY_MS, HOUR_MS, 10, pc), 0);
	assert_memory_equal(pa, pc, sizeof(pa));
}

/* Pinned outputs: a trending noisy daily sinusoid at 5 min with a gap of 7
 * steps every 97 samples (gaps exercise the m > 1 paths of the smoothing step
 * and of the refit), with the grid refit (fit=1) and with Nelder-Mead (fit=2).
 * The expected values were produced by the forecaster before its speed-ups
 * (commit 093a6bf); the code paths were changed for speed only, so the
 * forecasts must stay the same. The tolerance allows a different libm. */
static void test_pinned_outputs(void **unused)
{
	static const double want[2][4][3] = {
		{ { 103.95591674250667, 97.628499469866242, 111.03117507320506 },
		  { 124.20522725583793, 117.36892083234611, 129.9228753487514 },
		  { 103.64989351342084, 89.537194359813753, 117.75963574950406 },
		  { 83.667287632273485, 61.680845196654033, 108.90562594247825 } },
		{ { 104.15177580561193, 97.996439848413559, 110.74768810026202 },
		  { 124.38118515975474, 118.44581502068658, 129.40565941496152 },
		  { 103.92005134141517, 90.883582721923105, 116.97186651101551 },
		  { 84.064901040786793, 62.67108302706346, 108.42665281445078 } },
	};
	for (int fit = 1; fit <= 2; fit++) {
		struct fc f;
		fc_init(&f);
		f.p.fit = fit;
		forecast_state_init(&f.p, f.st);
		struct rng r = { 21 };
		int64_t t = T0;
		for (int i = 0; t < T0 + 9 * DAY_MS; i++) {
			forecast_update(&f.p, f.st, t,
			                sinus(t) + 0.02 * (double)(t - T0) / HOUR_MS + 2 * rng_norm(&r));
			t += 5 * MIN_MS;
			if (i % 97 == 50)
				t += 35 * MIN_MS;
		}
		struct forecast_info info;
		forecast_info_get(f.st, &info);
		assert_int_equal(info.refits, 22);
		struct forecast_point pt[4];
		assert_int_equal(forecast_predict(&f.p, f.st, t, 6 * HOUR_MS, 4, pt), 0);
		for (int i = 0; i < 4; i++) {
			const double got[3] = { pt[i].mean, pt[i].lo95, pt[i].hi95 };
			for (int j = 0; j < 3; j++) {
				double w = want[fit - 1][i][j];
				if (!(fabs(got[j] - w) <= 1e-6 * fabs(w)))
					fail_msg("fit=%d point %d value %d: %.17g, want %.17g", fit, i, j, got[j], w);
			}
		}
	}
}

/* Hostile input: random jumps back and forth in time, NaN, huge values,
 * bursts of identical timestamps. Must not crash (run under the sanitizers)
 * and must give finite, ordered intervals or -1. */
static void test_garbage(void **unused)
{
	struct fc f;
	fc_init(&f);
	struct rng r = { 13 };
	int64_t t = T0;
	for (int i = 0; i < 200000; i++) {
		double u = rng_unif(&r);
		if (u < 0.01)
			t -= (int64_t)(rng_unif(&r) * DAY_MS);
		else if (u < 0.02)
			t += (int64_t)(rng_unif(&r) * 30 * DAY_MS);
		else if (u > 0.3)
			t += (int64_t)(rng_unif(&r) * 10 * MIN_MS);
		double v = 100 * rng_norm(&r);
		double w = rng_unif(&r);
		if (w < 0.01)
			v = NAN;
		else if (w < 0.02)
			v = (rng_unif(&r) < 0.5 ? -1 : 1) * 1e29;
		else if (w < 0.03)
			v = INFINITY;
		forecast_update(&f.p, f.st, t, v);
		if (i % 997 == 0) {
			struct forecast_point pts[4];
			if (forecast_predict(&f.p, f.st, t, HOUR_MS, 4, pts) == 0)
				for (int j = 0; j < 4; j++) {
					assert_false(isnan(pts[j].mean));
					assert_true(pts[j].lo95 <= pts[j].hi95);
				}
			struct breach b;
			forecast_time_to_breach(&f.p, f.st, t, 7 * DAY_MS, 50, i % 2, &b);
			assert_true(b.probability >= 0 && b.probability <= 1);
		}
	}
	forecast_update(&f.p, f.st, INT64_MAX, 1);
	forecast_update(&f.p, f.st, INT64_MIN, 1);
}

static void test_unit_range_and_clip(void **st)
{
	(void)st;
	double lo, hi;
	assert_int_equal(forecast_unit_range("http_request_error_ratio{job=\"a\"}", &lo, &hi), 1);
	assert_true(lo == 0 && hi == 1);
	assert_int_equal(forecast_unit_range("cpu_percent", &lo, &hi), 1);
	assert_true(lo == 0 && hi == 100);
	assert_int_equal(forecast_unit_range("foreshock:p99:http_request_duration_seconds{x=\"1\"}",
	                                     &lo, &hi), 1);
	assert_true(lo == 0 && isinf(hi));
	assert_int_equal(forecast_unit_range("foreshock:rate:http_requests_total", &lo, &hi), 1);
	assert_true(lo == 0);
	assert_int_equal(forecast_unit_range("process_resident_memory_bytes", &lo, &hi), 1);
	assert_true(lo == 0);
	assert_int_equal(forecast_unit_range("foreshock:p50:latency_ms", &lo, &hi), 1);
	/* no unit in the name: no bound; a suffix inside the labels does not count */
	assert_int_equal(forecast_unit_range("temperature_celsius", &lo, &hi), 0);
	assert_true(isinf(lo) && lo < 0 && isinf(hi));
	assert_int_equal(forecast_unit_range("x{name=\"a_ratio\"}", &lo, &hi), 0);
	assert_int_equal(forecast_unit_range("foreshock:pool", &lo, &hi), 0);
	assert_int_equal(forecast_unit_range(NULL, &lo, &hi), 0);
	struct forecast_point p[2] = { { 1, 0.1, -0.05, 0.3, -0.16, 0.5 },
		                       { 2, 0.9, 0.7, 1.1, 0.6, 1.3 } };
	forecast_clip(p, 2, 0, 1);
	assert_true(p[0].mean == 0.1 && p[0].lo80 == 0 && p[0].lo95 == 0 && p[0].hi95 == 0.5);
	assert_true(p[1].hi80 == 1 && p[1].hi95 == 1 && p[1].lo95 == 0.6);
	assert_int_equal(p[1].ts_ms, 2);
}

int main(void)
{
	gsl_set_error_handler_off();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_size),
		cmocka_unit_test(test_not_enough_history),
		cmocka_unit_test(test_sinusoid),
		cmocka_unit_test(test_period_detection),
		cmocka_unit_test(test_coverage),
		cmocka_unit_test(test_mode_choice),
		cmocka_unit_test(test_breach_ramp),
		cmocka_unit_test(test_gappy),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_pinned_outputs),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_unit_range_and_clip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
