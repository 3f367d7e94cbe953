/* detect/common.c — small numeric helpers shared by the detector components. */
#include "config.h"

#include <float.h>
#include <math.h>

#include "detect/detectors.h"

double det_alpha(double halflife, double steps)
{
	if (halflife <= 0)
		return 1.0;
	/* (1 - a)^halflife = 1/2 per sample; over `steps` samples of elapsed time the
	 * old estimate keeps (1/2)^(steps/halflife) of its weight. */
	/* float precision is ample for a weight, and exp2f is several times
	 * cheaper than exp2 on the per-sample path */
	return 1.0 - (double)exp2f((float)(-steps / halflife));
}

double det_warm_alpha(double halflife, double steps, uint32_t n)
{
	double a = det_alpha(halflife, steps);
	double w = 1.0 / ((double)n + 1.0);
	return a > w ? a : w;
}

double det_asinh_scale(float *mag, uint32_t n, double x, double *scale)
{
	if (n == 0)
		det_mag_learn(mag, 1.0, x);
	double m = (double)*mag > 1e-9 ? (double)*mag : 1e-9;
	*scale = m;
	return asinh(x / m);
}

void det_mag_learn(float *mag, double a, double x)
{
	/* stays finite within float range whatever the input */
	double v = (double)*mag + a * (fabs(x) - (double)*mag);
	if (v >= 0 && v <= FLT_MAX)
		*mag = (float)v;
	else if (v > FLT_MAX)
		*mag = FLT_MAX;
}
