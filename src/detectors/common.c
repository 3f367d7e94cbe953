/* detectors/common.c — small numeric helpers shared by the detector components. */
#include "config.h"

#include <math.h>

#include "detectors/detectors.h"

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
