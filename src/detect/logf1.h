/* detect/logf1.h — private to src/detect/: (float)log(y) (the likelihood
 * stage's log(1 + raw) for raw >= 2^-10, kept as a float), the same float as
 * libm's log rounded to float, without calling it for y >= 1 + 2^-10.
 *
 * log(y) = e log 2 + log(1 / invc) + log1p(r), where y = 2^e m, m in [1, 2),
 * invc is about the inverse of the middle of m's 1/128th of [1, 2) (a table
 * of DET_LOGF1_N rows with log(1 / invc), filled once by
 * det_logf1_prepare()), r = m invc - 1 (exact but for the rounding of the
 * product; |r| <= 2^-8) and log1p(r) five terms of its series (truncation
 * below |r|^6 / 6 < 2^-50.5). Every error counted (the table's log and
 * libm's own, each below 1 ulp; the product; the series; the two
 * additions; e log 2 with log 2 rounded), the sum v (v >= log(1 + 2^-10)
 * > 2^-10.001) lies within 2^-50 (1 + v) of log(y) and of libm's double, that
 * is within 8 + 8 / v < 2^14 of v's ulps (v's ulp >= v 2^-53). The float is
 * taken only when v is more than DET_LOGF1_T = 2^16 of its ulps away from
 * the midpoint between two floats (its 29 low mantissa bits say where it
 * lies between two floats): libm's double is then on the same side of it,
 * so it rounds to the same float (the other midpoints are 2^28 ulps away or
 * more). Otherwise (near y = 1 about once in 2^12 calls, far less often
 * above; and for y < 1 + 2^-10 or not finite) libm is asked.
 */
#ifndef FORESHOCK_DETECT_LOGF1_H
#define FORESHOCK_DETECT_LOGF1_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define DET_LOGF1_BITS 7
#define DET_LOGF1_N (1 << DET_LOGF1_BITS)
#define DET_LOGF1_T 0x10000u /* ulps of v: the margin around a float midpoint */

struct det_logf1_row {
	double invc, logc; /* logc = -log(invc) */
};
extern struct det_logf1_row det_logf1_tab[DET_LOGF1_N];

/* Fills the table (once, thread-safe; model_finish calls it). */
void det_logf1_prepare(void);

/* (float)log(y); needs det_logf1_prepare() first. */
static inline float det_logf1(double y)
{
	uint64_t b;
	memcpy(&b, &y, sizeof b);
	/* y < 1 + 2^-10 (negative: the sign bit), inf or NaN: libm */
	if (b - 0x3ff0040000000000ull >= 0x7ff0000000000000ull - 0x3ff0040000000000ull)
		return (float)log(y);
	unsigned be = (unsigned)(b >> 52); /* the biased exponent (the sign bit is 0) */
	const struct det_logf1_row *t = &det_logf1_tab[(b >> (52 - DET_LOGF1_BITS)) & (DET_LOGF1_N - 1)];
	uint64_t mb = (b & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
	double m;
	memcpy(&m, &mb, sizeof m);
	double r = m * t->invc - 1;
	double p = r * (1 + r * (-0.5 + r * (1.0 / 3 + r * (-0.25 + r * 0.2))));
	double v = ((double)((int)be - 1023) * M_LN2 + t->logc) + p;
	uint64_t vb;
	memcpy(&vb, &v, sizeof vb);
	if ((vb & 0x1fffffffu) - (0x10000000u - DET_LOGF1_T) > 2 * DET_LOGF1_T)
		return (float)v; /* not near a midpoint: libm's double rounds the same */
	return (float)log(y);
}

#endif
