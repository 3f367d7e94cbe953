/* cli/forecast.c — `foreshock forecast-eval`: honest walk-forward evaluation of
 * the forecaster (src/detect/forecast.c) against two baselines, the seasonal naive
 * forecast and a least-squares linear trend (Prometheus predict_linear), on
 * CSV files (timestamp,value) and/or built-in deterministic synthetic series.
 *
 * For every sample (the target, at time T) after the warm-up, each method
 * forecasts it from the origin T - horizon using only samples at or before the
 * origin. Reports MASE and 80%/95% interval coverage per series and overall.
 * Definitions are in `--help` and docs/forecasting.md.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gsl/gsl_cdf.h>
#include <gsl/gsl_errno.h>

#include "cli/cli.h"
#include "detect/forecast.h"
#include "util/rng.h"
#include "util/timefmt.h"

#define MS_MIN 60000LL
#define MS_HOUR 3600000LL
#define MS_DAY 86400000LL

struct series {
	char name[256];
	int64_t *t;              /* owned */
	double *y;               /* owned */
	size_t n, cap;
};

struct eval_opts {
	int64_t horizon_ms;
	int64_t warmup_ms;
	int64_t season_ms;
	int64_t linear_window_ms;
	int verbose;
	struct forecast_params fp;
};

/* Sums for one method on one series. */
struct acc {
	double abs_err;          /* sum |e| */
	double scaled;           /* sum |e| / scale (for pooling across series) */
	size_t in80, in95;
};

struct result {
	size_t n;                /* targets evaluated */
	size_t skipped;          /* targets some method could not forecast */
	double scale;            /* MASE denominator */
	struct acc m[3];         /* foreshock, seasonal naive, linear */
	struct forecast_info info;
};

static const char *method_name[3] = { "foreshock", "snaive", "linear" };

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: foreshock forecast-eval [OPTIONS] [FILE.csv ...]\n"
	        "\n"
	        "Walk-forward forecast evaluation. For each sample after the warm-up (the\n"
	        "target, at time T), every method forecasts it from the origin T - HORIZON\n"
	        "using only samples at or before the origin. Methods:\n"
	        "  foreshock  the streaming forecaster of foreshockd (src/detect/forecast.c)\n"
	        "  snaive     seasonal naive: the sample nearest T - k*SEASON (k = ceil(HORIZON/SEASON),\n"
	        "             within one median sampling interval); interval +-z*sigma*sqrt(k),\n"
	        "             sigma = RMS of the one-season differences seen up to the origin\n"
	        "  linear     least squares over the samples in (origin - WINDOW, origin],\n"
	        "             extrapolated to T (Prometheus predict_linear); OLS prediction\n"
	        "             interval with Student-t quantiles\n"
	        "A target is scored only if all three methods forecast it (others: 'skipped').\n"
	        "\n"
	        "MASE = mean |actual - forecast| over the scored targets, divided by the\n"
	        "in-sample MAE of the one-season naive forecast over the whole series:\n"
	        "mean over samples i with a partner j (nearest to t_i - SEASON, within one\n"
	        "median interval) of |y_i - y_j|. MASE < 1 beats that naive forecast.\n"
	        "Coverage = share of scored targets inside the 80%% / 95%% interval.\n"
	        "Overall rows pool all scored targets (errors scaled per series) and average\n"
	        "the per-series MASE.\n"
	        "\n"
	        "options:\n"
	        "  --horizon DUR        forecast horizon (default 1h)\n"
	        "  --warmup DUR         no targets before first sample + DUR (default 2d)\n"
	        "  --season DUR         seasonal naive period and MASE scaling lag (default 1d)\n"
	        "  --linear-window DUR  linear-trend window (default 1h)\n"
	        "  --synthetic          also evaluate the built-in synthetic service series\n"
	        "  --seed N             seed of the synthetic generator (default 1)\n"
	        "  --dump-synthetic NAME  print a synthetic series (requests|latency|gappy) as CSV\n"
	        "  --no-fit             keep the default smoothing constants (no refit)\n"
	        "  --mode auto|additive|multiplicative   forecaster seasonal mode (default auto)\n"
	        "  --param NAME=VALUE   set a forecast_params field (alpha, beta, phi, gamma_daily,\n"
	        "                       gamma_weekly, fit, fit_horizon_ms, detect_season, ...)\n"
	        "  -v                   print the forecaster's final state summary per series\n"
	        "  -h, --help           this text\n"
	        "DUR is a number with unit s, m, h, d or w (plain numbers are seconds).\n"
	        "Output is deterministic. Exit status: 0 ok, 1 a file could not be read, 2 usage.\n");
}

static int parse_dur(const char *s, int64_t *ms)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || !(v >= 0))
		return -1;
	double mul = 1000;
	if (*end) {
		switch (*end) {
		case 's': mul = 1000; break;
		case 'm': mul = 60000; break;
		case 'h': mul = 3600000; break;
		case 'd': mul = 86400000; break;
		case 'w': mul = 7 * 86400000.0; break;
		default: return -1;
		}
		if (end[1])
			return -1;
	}
	*ms = (int64_t)llround(v * mul);
	return 0;
}

/* --param NAME=VALUE: the numeric forecast_params fields. */
static int set_param(struct forecast_params *p, const char *kv)
{
	const char *eq = strchr(kv, '=');
	if (!eq)
		return -1;
	char *end;
	errno = 0;
	double v = strtod(eq + 1, &end);
	if (errno || end == eq + 1 || *end)
		return -1;
	size_t n = (size_t)(eq - kv);
#define P(field) if (n == strlen(#field) && !strncmp(kv, #field, n)) { p->field = (__typeof__(p->field))v; return 0; }
	P(alpha) P(beta) P(phi) P(gamma_daily) P(gamma_weekly) P(fit) P(fit_horizon_ms)
	P(detect_season) P(acf_threshold) P(min_step_ms) P(max_step_ms) P(min_steps)
	P(quantile_rate) P(scale_rate) P(median_correct) P(huber_k) P(profile_clip) P(shift_run)
#undef P
	return -1;
}

/* ---- series storage ---- */

static int series_push(struct series *s, int64_t t, double y)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		int64_t *nt = realloc(s->t, cap * sizeof(*nt));
		if (!nt)
			return -1;
		s->t = nt;
		double *ny = realloc(s->y, cap * sizeof(*ny));
		if (!ny)
			return -1;
		s->y = ny;
		s->cap = cap;
	}
	s->t[s->n] = t;
	s->y[s->n] = y;
	s->n++;
	return 0;
}

static void series_free(struct series *s)
{
	free(s->t);
	free(s->y);
	memset(s, 0, sizeof(*s));
}

/* Stable order by time (insertion sort on the rare out-of-order samples). */
static void series_sort(struct series *s)
{
	for (size_t i = 1; i < s->n; i++) {
		int64_t t = s->t[i];
		double y = s->y[i];
		size_t j = i;
		while (j > 0 && s->t[j - 1] > t) {
			s->t[j] = s->t[j - 1];
			s->y[j] = s->y[j - 1];
			j--;
		}
		s->t[j] = t;
		s->y[j] = y;
	}
}

static int series_read_csv(struct series *s, const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "foreshock forecast-eval: unable to open '%s': %s\n", path, strerror(errno));
		return -1;
	}
	snprintf(s->name, sizeof(s->name), "%s", path);
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	size_t lineno = 0, bad = 0, first_bad = 0;
	while ((len = getline(&line, &cap, f)) >= 0) {
		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = 0;
		if (len == 0)
			continue;
		char *comma = memchr(line, ',', (size_t)len);
		int64_t t;
		char *end;
		double y = 0;
		int ok = comma && time_parse_ms(line, (size_t)(comma - line), &t) == 0;
		if (ok) {
			errno = 0;
			y = strtod(comma + 1, &end);
			ok = !errno && end != comma + 1 && *end == 0 && isfinite(y);
		}
		if (!ok) {
			if (lineno > 1) { /* line 1 may be a header */
				if (!bad)
					first_bad = lineno;
				bad++;
			}
			continue;
		}
		if (series_push(s, t, y)) {
			fprintf(stderr, "foreshock forecast-eval: out of memory reading '%s'\n", path);
			free(line);
			fclose(f);
			return -1;
		}
	}
	free(line);
	fclose(f);
	if (bad)
		fprintf(stderr, "foreshock forecast-eval: skipped %zu malformed lines in '%s' (first: line %zu)\n",
		        bad, path, first_bad);
	series_sort(s);
	return 0;
}

/* ---- deterministic synthetic service data (util/rng.h) ---- */

/* Request rate with daily and weekly cycles (multiplicative), growth, Poisson-
 * like noise and bursts. gappy: irregular exponential sampling with outages. */
static int synth_requests(struct series *s, uint64_t seed, int gappy)
{
	struct rng r = { seed * 7919 + (gappy ? 17 : 3) };
	const int64_t start = 1700006400000LL; /* 2023-11-15T00:00:00Z (a Wednesday) */
	const int64_t span = 28 * MS_DAY;
	double burst = 1, burst_left = 0;
	snprintf(s->name, sizeof(s->name), gappy ? "synthetic:gappy" : "synthetic:requests");
	for (int64_t t = start; t < start + span;) {
		double day = (double)((t - start) % MS_DAY) / MS_DAY;   /* 0 = midnight */
		int64_t dow = ((t - start) / MS_DAY + 3) % 7;          /* 0 = Sunday */
		double daily = 1 + 0.6 * sin(2 * M_PI * (day - 0.3)) + 0.2 * sin(4 * M_PI * (day - 0.1));
		double weekly = (dow == 0 || dow == 6) ? 0.6 : 1.0;
		double growth = 1 + 0.15 * (double)(t - start) / (7.0 * MS_DAY);
		double rate = 200 * daily * weekly * growth;
		if (burst_left <= 0 && rng_unif(&r) < (gappy ? 0.002 : 0.0007)) {
			burst = 1.5 + 1.5 * rng_unif(&r);
			burst_left = (20 + 40 * rng_unif(&r)) * MS_MIN;
		}
		double lam = rate * (burst_left > 0 ? burst : 1);
		double y = lam * (1 + 0.05 * rng_norm(&r)) + sqrt(lam) * rng_norm(&r);
		if (y < 0)
			y = 0;
		if (series_push(s, t, round(y)))
			return -1;
		int64_t dt;
		if (gappy) {
			dt = (int64_t)(-log(rng_unif(&r)) * 2 * MS_MIN) + 1000;
			if (rng_unif(&r) < 0.0015) /* outage: 2..12 h without samples */
				dt += (int64_t)((2 + 10 * rng_unif(&r)) * MS_HOUR);
		} else {
			dt = MS_MIN + (int64_t)((rng_unif(&r) - 0.5) * 20000);
		}
		burst_left -= (double)dt;
		t += dt;
	}
	return 0;
}

/* Latency: additive daily cycle, slow drift, noise and heavy-tailed spikes,
 * 5-minute jittered sampling. */
static int synth_latency(struct series *s, uint64_t seed)
{
	struct rng r = { seed * 7919 + 5 };
	const int64_t start = 1700006400000LL;
	const int64_t span = 28 * MS_DAY;
	snprintf(s->name, sizeof(s->name), "synthetic:latency");
	double drift = 0;
	for (int64_t t = start; t < start + span;) {
		double day = (double)((t - start) % MS_DAY) / MS_DAY;
		drift += 0.3 * rng_norm(&r);
		drift *= 0.995;
		double y = 120 + 30 * sin(2 * M_PI * (day - 0.35)) + drift + 6 * rng_norm(&r);
		if (rng_unif(&r) < 0.01)
			y += 40 * -log(rng_unif(&r));
		if (series_push(s, t, round(y * 10) / 10))
			return -1;
		t += 5 * MS_MIN + (int64_t)((rng_unif(&r) - 0.5) * 30000);
	}
	return 0;
}

static int synth_make(struct series *s, const char *which, uint64_t seed)
{
	if (!strcmp(which, "requests"))
		return synth_requests(s, seed, 0);
	if (!strcmp(which, "gappy"))
		return synth_requests(s, seed, 1);
	if (!strcmp(which, "latency"))
		return synth_latency(s, seed);
	return -2;
}

/* ---- evaluation ---- */

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

static int64_t median_interval(const struct series *s)
{
	if (s->n < 2)
		return 0;
	int64_t *d = malloc((s->n - 1) * sizeof(*d));
	if (!d)
		return 0;
	for (size_t i = 1; i < s->n; i++)
		d[i - 1] = s->t[i] - s->t[i - 1];
	qsort(d, s->n - 1, sizeof(*d), cmp_i64);
	int64_t m = d[(s->n - 1) / 2];
	free(d);
	return m;
}

/* Index of the sample nearest to time t within tol and at or before `upto`
 * (index bound, exclusive), or -1. */
static long nearest(const struct series *s, int64_t t, int64_t tol, size_t upto)
{
	size_t lo = 0, hi = upto;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (s->t[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	long best = -1;
	int64_t bd = tol + 1;
	if (lo < upto && s->t[lo] - t < bd) {
		best = (long)lo;
		bd = s->t[lo] - t;
	}
	if (lo > 0 && t - s->t[lo - 1] < bd)
		best = (long)lo - 1;
	return best;
}

static void score(struct acc *a, double actual, double f, double lo80, double hi80, double lo95,
                  double hi95, double scale)
{
	double e = fabs(actual - f);
	a->abs_err += e;
	a->scaled += e / scale;
	a->in80 += actual >= lo80 && actual <= hi80;
	a->in95 += actual >= lo95 && actual <= hi95;
}

static int evaluate(const struct eval_opts *o, const struct series *s, struct result *res)
{
	memset(res, 0, sizeof(*res));
	if (s->n < 3)
		return 0;
	int64_t tol = median_interval(s);
	if (tol < 1000)
		tol = 1000;
	const int64_t m = o->season_ms;
	const int64_t H = o->horizon_ms;
	int64_t k = H <= m ? 1 : (H + m - 1) / m;

	/* In-sample one-season naive MAE (the MASE denominator). */
	double sum = 0;
	size_t cnt = 0;
	for (size_t i = 0; i < s->n; i++) {
		long j = nearest(s, s->t[i] - m, tol, i);
		if (j >= 0) {
			sum += fabs(s->y[i] - s->y[j]);
			cnt++;
		}
	}
	if (cnt == 0 || !(sum > 0)) {
		fprintf(stderr, "foreshock forecast-eval: no seasonal naive scale for '%s' (series shorter than a season?)\n",
		        s->name);
		return 0;
	}
	res->scale = sum / cnt;

	size_t ssz = forecast_state_size(&o->fp);
	void *st = aligned_alloc(8, (ssz + 7) / 8 * 8);
	if (!st)
		return -1;
	forecast_state_init(&o->fp, st);

	const double z80 = 1.2815515655446004, z95 = 1.959963984540054;
	size_t fed = 0;               /* samples fed to the forecaster (t <= origin) */
	double sn_sq = 0;             /* seasonal-naive squared differences seen so far */
	size_t sn_n = 0;
	size_t win_lo = 0;            /* first sample in the linear window */
	for (size_t j = 0; j < s->n; j++) {
		int64_t T = s->t[j];
		int64_t O = T - H;
		while (fed < s->n && s->t[fed] <= O) {
			forecast_update(&o->fp, st, s->t[fed], s->y[fed]);
			long q = nearest(s, s->t[fed] - m, tol, fed);
			if (q >= 0) {
				double d = s->y[fed] - s->y[q];
				sn_sq += d * d;
				sn_n++;
			}
			fed++;
		}
		if (T < s->t[0] + o->warmup_ms || fed == 0)
			continue;

		/* foreshock */
		struct forecast_point fp = { 0 }; /* read only when ok_fs */
		int ok_fs = forecast_predict(&o->fp, st, T, 0, 1, &fp) == 0;

		/* seasonal naive */
		long q = nearest(s, T - k * m, tol, fed);
		int ok_sn = q >= 0 && sn_n >= 2;

		/* linear trend over (O - W, O] */
		while (win_lo < fed && s->t[win_lo] <= O - o->linear_window_ms)
			win_lo++;
		size_t nw = fed - win_lo;
		double lin = 0, lin_se = 0, lin_t80 = 0, lin_t95 = 0;
		int ok_lin = nw >= 2;
		if (ok_lin) {
			double mx = 0, my = 0;
			for (size_t i = win_lo; i < fed; i++) {
				mx += (double)(s->t[i] - O);
				my += s->y[i];
			}
			mx /= nw;
			my /= nw;
			double sxx = 0, sxy = 0;
			for (size_t i = win_lo; i < fed; i++) {
				double dx = (double)(s->t[i] - O) - mx;
				sxx += dx * dx;
				sxy += dx * (s->y[i] - my);
			}
			double slope = sxx > 0 ? sxy / sxx : 0;
			double x0 = (double)(T - O);
			lin = my + slope * (x0 - mx);
			double rss = 0;
			for (size_t i = win_lo; i < fed; i++) {
				double r = s->y[i] - (my + slope * ((double)(s->t[i] - O) - mx));
				rss += r * r;
			}
			if (nw > 2 && sxx > 0) {
				double s2 = rss / (double)(nw - 2);
				lin_se = sqrt(s2 * (1 + 1.0 / nw + (x0 - mx) * (x0 - mx) / sxx));
				lin_t80 = gsl_cdf_tdist_Pinv(0.9, (double)(nw - 2));
				lin_t95 = gsl_cdf_tdist_Pinv(0.975, (double)(nw - 2));
			}
		}
		if (!ok_fs || !ok_sn || !ok_lin) {
			res->skipped++;
			continue;
		}
		double y = s->y[j];
		score(&res->m[0], y, fp.mean, fp.lo80, fp.hi80, fp.lo95, fp.hi95, res->scale);
		double sig = sqrt(sn_sq / sn_n * (double)k);
		double f = s->y[q];
		score(&res->m[1], y, f, f - z80 * sig, f + z80 * sig, f - z95 * sig, f + z95 * sig, res->scale);
		score(&res->m[2], y, lin, lin - lin_t80 * lin_se, lin + lin_t80 * lin_se,
		      lin - lin_t95 * lin_se, lin + lin_t95 * lin_se, res->scale);
		res->n++;
	}
	forecast_info_get(st, &res->info);
	free(st);
	return 0;
}

static const char *short_name(const char *path)
{
	const char *p = strrchr(path, '/');
	return p ? p + 1 : path;
}

static void print_header(void)
{
	printf("%-28s %6s %6s | %-23s | %-23s | %-23s | %s\n", "series", "n", "skip",
	       "MASE fshk snaive linear", "cov80 fshk snaive lin", "cov95 fshk snaive lin",
	       "season/mode");
}

static void print_row(const char *name, size_t n, size_t skip, const double mase[3],
                      const double c80[3], const double c95[3], const char *extra)
{
	printf("%-28s %6zu %6zu | %7.3f %7.3f %7.3f | %6.1f%% %6.1f%% %6.1f%% | %6.1f%% %6.1f%% %6.1f%% | %s\n",
	       name, n, skip, mase[0], mase[1], mase[2], 100 * c80[0], 100 * c80[1], 100 * c80[2],
	       100 * c95[0], 100 * c95[1], 100 * c95[2], extra);
}

int cli_forecast_main(int argc, char **argv)
{
	struct eval_opts o = {
		.horizon_ms = MS_HOUR,
		.warmup_ms = 2 * MS_DAY,
		.season_ms = MS_DAY,
		.linear_window_ms = MS_HOUR,
	};
	forecast_params_default(&o.fp);
	gsl_set_error_handler_off();
	int synthetic = 0;
	uint64_t seed = 1;
	const char *dump = NULL;
	int nfiles = 0;
	char **files = calloc((size_t)argc + 1, sizeof(*files));
	if (!files)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		int64_t *dst = NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			free(files);
			return 0;
		} else if (!strcmp(a, "--horizon")) {
			dst = &o.horizon_ms;
		} else if (!strcmp(a, "--warmup")) {
			dst = &o.warmup_ms;
		} else if (!strcmp(a, "--season")) {
			dst = &o.season_ms;
		} else if (!strcmp(a, "--linear-window")) {
			dst = &o.linear_window_ms;
		} else if (!strcmp(a, "--synthetic")) {
			synthetic = 1;
			continue;
		} else if (!strcmp(a, "--no-fit")) {
			o.fp.fit = 0;
			continue;
		} else if (!strcmp(a, "-v")) {
			o.verbose = 1;
			continue;
		} else if (!strcmp(a, "--param")) {
			if (i + 1 >= argc || set_param(&o.fp, argv[i + 1])) {
				fprintf(stderr, "foreshock forecast-eval: invalid parameter '%s'\n",
				        i + 1 < argc ? argv[i + 1] : "");
				free(files);
				return 2;
			}
			i++;
			continue;
		} else if (!strcmp(a, "--seed") || !strcmp(a, "--dump-synthetic") || !strcmp(a, "--mode")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "foreshock forecast-eval: missing value for '%s'\n", a);
				free(files);
				return 2;
			}
			const char *v = argv[++i];
			if (!strcmp(a, "--seed")) {
				char *end;
				seed = strtoull(v, &end, 10);
				if (*end || end == v) {
					fprintf(stderr, "foreshock forecast-eval: invalid seed '%s'\n", v);
					free(files);
					return 2;
				}
			} else if (!strcmp(a, "--mode")) {
				if (!strcmp(v, "auto"))
					o.fp.mode = FORECAST_MODE_AUTO;
				else if (!strcmp(v, "additive"))
					o.fp.mode = FORECAST_MODE_ADDITIVE;
				else if (!strcmp(v, "multiplicative"))
					o.fp.mode = FORECAST_MODE_MULTIPLICATIVE;
				else {
					fprintf(stderr, "foreshock forecast-eval: invalid mode '%s'\n", v);
					free(files);
					return 2;
				}
			} else {
				dump = v;
			}
			continue;
		} else if (a[0] == '-' && a[1]) {
			fprintf(stderr, "foreshock forecast-eval: unknown option '%s'\n", a);
			usage(stderr);
			free(files);
			return 2;
		} else {
			files[nfiles++] = argv[i];
			continue;
		}
		if (i + 1 >= argc || parse_dur(argv[i + 1], dst)) {
			fprintf(stderr, "foreshock forecast-eval: invalid duration '%s' for '%s'\n",
			        i + 1 < argc ? argv[i + 1] : "", a);
			free(files);
			return 2;
		}
		i++;
	}
	if (o.horizon_ms <= 0 || o.season_ms <= 0 || o.linear_window_ms <= 0) {
		fprintf(stderr, "foreshock forecast-eval: horizon, season and window must be positive\n");
		free(files);
		return 2;
	}
	if (dump) {
		struct series s = { 0 };
		int rc = synth_make(&s, dump, seed);
		if (rc == -2)
			fprintf(stderr, "foreshock forecast-eval: unknown synthetic series '%s'\n", dump);
		for (size_t i = 0; rc == 0 && i < s.n; i++) {
			char buf[40];
			printf("%s,%.17g\n", time_format_rfc3339(s.t[i], buf, sizeof(buf)), s.y[i]);
		}
		series_free(&s);
		free(files);
		return rc == 0 ? 0 : rc == -2 ? 2 : 1;
	}
	if (!nfiles && !synthetic) {
		usage(stderr);
		free(files);
		return 2;
	}

	static const char *const synth_names[] = { "requests", "latency", "gappy" };
	int nseries = nfiles + (synthetic ? 3 : 0);
	int status = 0;
	size_t tot_n = 0, tot_skip = 0, nser = 0;
	double pooled[3] = { 0 }, c80[3] = { 0 }, c95[3] = { 0 }, mean_mase[3] = { 0 };
	print_header();
	for (int i = 0; i < nseries; i++) {
		struct series s = { 0 };
		if (i < nfiles) {
			if (series_read_csv(&s, files[i])) {
				status = 1;
				series_free(&s);
				continue;
			}
		} else if (synth_make(&s, synth_names[i - nfiles], seed)) {
			fprintf(stderr, "foreshock forecast-eval: out of memory\n");
			series_free(&s);
			status = 1;
			continue;
		}
		struct result r;
		if (evaluate(&o, &s, &r)) {
			fprintf(stderr, "foreshock forecast-eval: out of memory\n");
			series_free(&s);
			status = 1;
			continue;
		}
		double mase[3], f80[3], f95[3];
		for (int k = 0; k < 3; k++) {
			mase[k] = r.n ? r.m[k].abs_err / r.n / r.scale : NAN;
			f80[k] = r.n ? (double)r.m[k].in80 / r.n : NAN;
			f95[k] = r.n ? (double)r.m[k].in95 / r.n : NAN;
		}
		char extra[96];
		snprintf(extra, sizeof(extra), "%s/%s",
		         r.info.period_ms == 7 * MS_DAY ? "weekly" : r.info.period_ms == MS_DAY ? "daily" : "none",
		         r.info.multiplicative ? "mult" : "add");
		print_row(short_name(s.name), r.n, r.skipped, mase, f80, f95, extra);
		if (o.verbose)
			printf("  state: step=%llds alpha=%.3f beta=%.3f acf_daily=%.2f acf_weekly=%.2f offset=%.3g samples=%llu steps=%llu dropped=%llu refits=%llu scale=%.4g\n",
			       (long long)(r.info.step_ms / 1000), r.info.alpha, r.info.beta, r.info.acf_daily,
			       r.info.acf_weekly, r.info.offset, (unsigned long long)r.info.samples,
			       (unsigned long long)r.info.steps, (unsigned long long)r.info.dropped,
			       (unsigned long long)r.info.refits, r.scale);
		if (r.n) {
			nser++;
			tot_n += r.n;
			for (int k = 0; k < 3; k++) {
				pooled[k] += r.m[k].scaled;
				c80[k] += (double)r.m[k].in80;
				c95[k] += (double)r.m[k].in95;
				mean_mase[k] += mase[k];
			}
		}
		tot_skip += r.skipped;
		series_free(&s);
	}
	if (nser > 1) {
		double a[3], b[3], c[3], d[3];
		for (int k = 0; k < 3; k++) {
			a[k] = pooled[k] / tot_n;
			b[k] = c80[k] / tot_n;
			c[k] = c95[k] / tot_n;
			d[k] = mean_mase[k] / nser;
		}
		print_row("ALL (pooled targets)", tot_n, tot_skip, a, b, c, "");
		printf("%-28s %6zu %6s | %7.3f %7.3f %7.3f |\n", "ALL (mean of series MASE)", nser, "",
		       d[0], d[1], d[2]);
	}
	printf("# horizon=%llds warmup=%llds season=%llds linear_window=%llds methods: %s %s %s\n",
	       (long long)(o.horizon_ms / 1000), (long long)(o.warmup_ms / 1000),
	       (long long)(o.season_ms / 1000), (long long)(o.linear_window_ms / 1000),
	       method_name[0], method_name[1], method_name[2]);
	free(files);
	return status;
}
