/* forecast_unit.c — what a series' unit allows, from its metric name, and
 * clipping forecast bands to it (forecast.h). */
#include "config.h"

#include <math.h>
#include <string.h>

#include "detect/forecast.h"

/* ---- bounds of a unit ------------------------------------------------------ */

static int ends_with(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n >= k && memcmp(s + n - k, suf, k) == 0;
}

int forecast_unit_range(const char *name, double *lo, double *hi)
{
	*lo = -INFINITY;
	*hi = INFINITY;
	if (!name)
		return 0;
	size_t n = strcspn(name, "{");
	if (ends_with(name, n, "_ratio")) {
		*lo = 0;
		*hi = 1;
		return 1;
	}
	if (ends_with(name, n, "_percent")) {
		*lo = 0;
		*hi = 100;
		return 1;
	}
	static const char *const nonneg_suffix[] = { "_seconds", "_bytes", "_total", "_count",
		                                     "_bucket", "_seconds_sum", "_bytes_sum" };
	for (size_t i = 0; i < sizeof nonneg_suffix / sizeof nonneg_suffix[0]; i++)
		if (ends_with(name, n, nonneg_suffix[i])) {
			*lo = 0;
			return 1;
		}
	/* derived series: rates of counters, quantiles of histograms */
	if (n >= 15 && !strncmp(name, "foreshock:rate:", 15)) {
		*lo = 0;
		return 1;
	}
	if (n >= 12 && !strncmp(name, "foreshock:p", 11) && strchr(name + 11, ':') &&
	    strchr(name + 11, ':') < name + n) {
		*lo = 0;
		return 1;
	}
	return 0;
}

static double clip1(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void forecast_clip(struct forecast_point *out, size_t n, double lo, double hi)
{
	for (size_t i = 0; i < n; i++) {
		out[i].mean = clip1(out[i].mean, lo, hi);
		out[i].lo80 = clip1(out[i].lo80, lo, hi);
		out[i].hi80 = clip1(out[i].hi80, lo, hi);
		out[i].lo95 = clip1(out[i].lo95, lo, hi);
		out[i].hi95 = clip1(out[i].hi95, lo, hi);
	}
}
