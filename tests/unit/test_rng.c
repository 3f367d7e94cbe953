/* test_rng.c — unit tests of util/rng: splitmix64's reference sequence, and
 * the uniform and normal draws built on it (range, moments, the same
 * numbers for the same seed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "util/rng.h"

/* splitmix64 from state 0 (Steele, Lea and Flood; the reference C code). */
static void test_reference(void **st)
{
	(void)st;
	struct rng r = { 0 };
	assert_true(rng_next(&r) == 0xe220a8397b1dcdafULL);
	assert_true(rng_next(&r) == 0x6e789e6aa1b965f4ULL);
	assert_true(rng_next(&r) == 0x06c45d188009454fULL);
}

static void test_draws(void **st)
{
	(void)st;
	struct rng a = { 42 }, b = { 42 };
	double su = 0, sn = 0, sn2 = 0;
	const int n = 100000;
	for (int i = 0; i < n; i++) {
		double u = rng_unif(&a);
		assert_true(u > 0 && u < 1);
		assert_true(u == rng_unif(&b));
		su += u;
		double z = rng_norm(&a);
		assert_true(isfinite(z));
		assert_true(z == rng_norm(&b));
		sn += z;
		sn2 += z * z;
	}
	assert_true(fabs(su / n - 0.5) < 0.01);
	assert_true(fabs(sn / n) < 0.02);
	assert_true(fabs(sn2 / n - 1) < 0.03);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reference),
		cmocka_unit_test(test_draws),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
