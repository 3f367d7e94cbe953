/* test_acf.c — unit tests of the causal season test (src/detect/acf.c): its
 * streaming autocorrelations against GSL's batch correlation of the same
 * stretch means, the decision on series with and without a season (white
 * noise, a slow random walk, a daily cycle seen by the weekly test), and
 * gaps (stretches without samples are never paired); the answer the ring
 * keeps (acf_ring.season) equals the test's after every sample.
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <gsl/gsl_statistics_double.h>

#include "detect/acf.h"
#include "util/rng.h"

#define T0 1396310400000LL /* 2014-04-01 00:00:00, a Tuesday */
#define HOUR 3600000LL
#define DAY (24 * HOUR)

static const struct acf_shape day_shape = { DAY, 24, 12 };
static const struct acf_shape week_shape = { 7 * DAY, 28, 4 };

/* kinds of standardised series, 5-minute samples */
enum kind { WHITE, DAILY, WALK, WEEKEND, DAILY_BIG };

static double sample(enum kind k, int64_t i, struct rng *r, double *walk)
{
	double hour = (double)(i % 288) / 12, noise = rng_norm(r);
	int day = (int)((i / 288) % 7);
	switch (k) {
	case WHITE:
		return noise;
	case DAILY:
		return 0.8 * sin(2 * M_PI * hour / 24) + noise;
	case WALK: /* a slow random walk (drift), no season */
		*walk += 0.05 * rng_norm(r);
		return *walk + noise;
	case WEEKEND: /* days 4 and 5 after T0 are Saturday and Sunday */
		return (day == 4 || day == 5 ? -2 : 0) + sin(2 * M_PI * hour / 24) + noise;
	case DAILY_BIG:
		return 4 * sin(2 * M_PI * hour / 24) + noise;
	}
	return 0;
}

/* Feeds `days` of kind k; returns on how many of the hours after the
 * second period the test said "season", *first: the first such sample. */
static int feed(struct acf_ring *a, const struct acf_shape *sh, enum kind k, int days,
                double halflife, uint64_t seed, int64_t *first)
{
	struct rng r = { seed };
	double walk = 0;
	int yes = 0;
	*first = -1;
	acf_ring_init(a);
	for (int64_t i = 0; i < (int64_t)days * 288; i++) {
		acf_ring_add(a, sh, T0 + i * 300000, sample(k, i, &r, &walk), halflife);
		/* the answer kept in the ring is the test's, after every sample */
		assert_int_equal(a->season, acf_ring_season(a, sh, halflife));
		if (i % 12 == 0 && acf_ring_season(a, sh, halflife)) {
			yes++;
			if (*first < 0)
				*first = i;
		}
	}
	return yes;
}

/* The streaming estimate is the sample autocorrelation of the hourly means:
 * with a half-life far beyond the series (a running mean) it agrees with
 * GSL's batch correlation of the same means at lags 24 and 12. */
static void test_acf_matches_gsl(void **ctx)
{
	(void)ctx;
	enum { DAYS = 40, H = DAYS * 24 };
	struct acf_ring a;
	int64_t first;
	feed(&a, &day_shape, DAILY, DAYS, 1e6, 5, &first);
	/* the same hourly means, by hand */
	struct rng r = { 5 };
	double walk = 0, *h = calloc(H, sizeof *h);
	assert_non_null(h);
	for (int64_t i = 0; i < (int64_t)DAYS * 288; i++)
		h[i / 12] += sample(DAILY, i, &r, &walk) / 12;
	/* the ring pairs hour t with t-24 and t-12 from hour 24 on, and has not
	 * closed the last hour yet */
	int n = H - 1 - 24;
	double full = gsl_stats_correlation(h + 24, 1, h, 1, (size_t)n);
	double half = gsl_stats_correlation(h + 24, 1, h + 12, 1, (size_t)n);
	print_message("acf: lag 24 %.3f (gsl %.3f), lag 12 %.3f (gsl %.3f), %u pairs\n",
	              acf_ring_rho(&a, 1), full, acf_ring_rho(&a, 0), half, a.n);
	assert_int_equal(a.n, n);
	assert_true(fabs(acf_ring_rho(&a, 1) - full) < 0.05);
	assert_true(fabs(acf_ring_rho(&a, 0) - half) < 0.05);
	assert_true(full > 0.5 && half < -0.5);
	free(h);
}

/* A daily cycle of 0.8 sigma is found within a few days; white noise and a
 * slow random walk (which correlates at every lag, most at the shortest)
 * never pass, over 60 days and several seeds. */
static void test_acf_daily(void **ctx)
{
	(void)ctx;
	struct acf_ring a;
	int64_t first;
	int yes = feed(&a, &day_shape, DAILY, 20, 8, 1, &first);
	print_message("acf daily: season on %d of %d hours, from day %.1f\n", yes, 20 * 24,
	              first / 288.0);
	assert_true(first >= 0 && first < 4 * 288);
	assert_true(yes > 15 * 24);
	for (uint64_t seed = 1; seed <= 4; seed++) {
		assert_int_equal(feed(&a, &day_shape, WHITE, 60, 8, seed, &first), 0);
		assert_int_equal(feed(&a, &day_shape, WALK, 60, 8, seed, &first), 0);
	}
}

/* The weekly test (a week in 28 six-hour stretches, against the
 * correlation one day apart) finds a weekend level, and does not take a
 * daily cycle, however large, for a weekly season. */
static void test_acf_weekly(void **ctx)
{
	(void)ctx;
	struct acf_ring a;
	int64_t first;
	int yes = feed(&a, &week_shape, WEEKEND, 42, 8, 3, &first);
	print_message("acf weekly: season on %d of %d hours, from day %.1f\n", yes, 42 * 24,
	              first / 288.0);
	assert_true(first >= 0 && first < 28 * 288);
	for (uint64_t seed = 1; seed <= 3; seed++) {
		assert_int_equal(feed(&a, &week_shape, DAILY_BIG, 42, 8, seed, &first), 0);
		assert_int_equal(feed(&a, &week_shape, WHITE, 42, 8, seed, &first), 0);
	}
}

/* Stretches without samples are missing and never paired: after a gap of
 * more than a period the ring is empty, and the next pair is learnt a
 * period after the data resumes. */
static void test_acf_gap(void **ctx)
{
	(void)ctx;
	struct acf_ring a;
	acf_ring_init(&a);
	struct rng r = { 9 };
	int64_t t = T0;
	for (int i = 0; i < 48; i++, t += HOUR)
		acf_ring_add(&a, &day_shape, t, rng_norm(&r), 8);
	assert_int_equal(a.n, 47 - 24); /* hours 24..46 closed and paired */
	t += 3 * DAY; /* a three-day gap: its first sample closes hour 47 */
	acf_ring_add(&a, &day_shape, t, rng_norm(&r), 8);
	assert_int_equal(a.n, 24);
	t += HOUR;
	for (int i = 0; i < 24; i++, t += HOUR) {
		acf_ring_add(&a, &day_shape, t, rng_norm(&r), 8);
		assert_int_equal(a.n, 24); /* nothing a period back to pair with */
	}
	acf_ring_add(&a, &day_shape, t, rng_norm(&r), 8);
	assert_int_equal(a.n, 25);
	/* a one-hour hole is missing for the pairs that would use it only */
	acf_ring_init(&a);
	t = T0;
	for (int i = 0; i < 30; i++, t += HOUR)
		if (i != 3)
			acf_ring_add(&a, &day_shape, t, rng_norm(&r), 8);
	/* hours 24..28 have closed; hour 27 would pair with 3 (missing), and
	 * hours 24, 25, 26, 28 also need hours 12..16 (present) */
	assert_int_equal(a.n, 4);
	/* non-finite values are not learnt: an hour of them is missing too */
	acf_ring_init(&a);
	t = T0;
	for (int i = 0; i < 30; i++, t += HOUR)
		acf_ring_add(&a, &day_shape, t, i == 3 ? NAN : i == 4 ? INFINITY : rng_norm(&r), 8);
	/* hour 4 (infinity, clamped) counts; hour 3 pairs with nothing */
	assert_int_equal(a.n, 4);
	assert_true(isfinite(acf_ring_rho(&a, 0)) && isfinite(acf_ring_rho(&a, 1)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_acf_matches_gsl),
		cmocka_unit_test(test_acf_daily),
		cmocka_unit_test(test_acf_weekly),
		cmocka_unit_test(test_acf_gap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
