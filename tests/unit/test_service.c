/* test_service.c — unit tests of service models and their early-warning
 * detectors (src/service/): model parsing (good and bad files, with line
 * numbers), binding series to roles, the event-time grid, burn-rate
 * arithmetic on known inputs, the count-aware error-ratio test (2 errors in 3
 * requests at night vs 0.5% at 10k req/s), overload risk on a synthetic
 * surge, determinism and the persisted state (taken, restored, refused
 * when incompatible). It reaches the service state and the
 * error-ratio helpers through service/internal.h. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <gsl/gsl_errno.h>

#include "service/internal.h"
#include "util/rng.h"

#include "service_driver.h"

#define T0 1700006400000LL /* 2023-11-15T00:00:00Z */

static const char *good_model =
	"kind: service\n"
	"name: checkout\n"
	"step: 30s\n"
	"signals:\n"
	"  requests: 'foreshock:rate:http_requests_total{job=\"checkout\"}'\n"
	"  errors: 'foreshock:rate:http_requests_total{job=\"checkout\",code=~\"5..\"}'\n"
	"  latency:\n"
	"    selector: 'foreshock:p99:http_request_duration_seconds{job=\"checkout\"}'\n"
	"    unit: s\n"
	"  saturation:\n"
	"    - name: cpu\n"
	"      selector: 'foreshock:rate:process_cpu_seconds_total{job=\"checkout\"}'\n"
	"      limit: 2\n"
	"    - name: memory\n"
	"      selector: 'process_resident_memory_bytes{job=\"checkout\"}'\n"
	"      limit: 1GiB\n"
	"  instances: 'up{job=\"checkout\"}'\n"
	"slos:\n"
	"  availability:\n"
	"    objective: 99.9%\n"
	"  latency:\n"
	"    threshold: 500ms\n"
	"    percentile: 99\n"
	"capacity:\n"
	"  per_instance: 100\n";

/* Write text to a temp file; returns its path (static buffer per call site). */
static void write_tmp(char *path, size_t len, const char *name, const char *text)
{
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(path, len, "%s/test_service_%d_%s", dir, (int)getpid(), name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static struct services *load_text(const char *text, char *err, size_t errlen)
{
	char path[512];
	write_tmp(path, sizeof path, "m.yml", text);
	struct services *s = services_load_file(path, err, errlen);
	unlink(path);
	return s;
}

static struct labels mk_labels(const char *name, ...)
{
	struct label_ref refs[16];
	size_t n = 0;
	refs[n++] = (struct label_ref){ "__name__", 8, name, strlen(name) };
	va_list ap;
	va_start(ap, name);
	const char *k;
	while ((k = va_arg(ap, const char *))) {
		const char *v = va_arg(ap, const char *);
		refs[n++] = (struct label_ref){ k, strlen(k), v, strlen(v) };
	}
	va_end(ap);
	struct labels l;
	char err[128];
	assert_int_equal(labels_from_refs(&l, refs, n, NULL, err, sizeof err), 0);
	return l;
}

/* ---- parsing ------------------------------------------------------------ */

static void test_parse_good(void **state)
{
	(void)state;
	char err[512] = "";
	struct services *s = load_text(good_model, err, sizeof err);
	assert_non_null(s);
	assert_int_equal(services_count(s), 1);
	const struct svc_model *m = &s->v[0].m;
	assert_string_equal(m->name, "checkout");
	assert_int_equal(m->step_ms, 30000);
	assert_true(fabs(m->objective - 0.999) < 1e-12);
	assert_true(fabs(m->lat_threshold_s - 0.5) < 1e-12);
	assert_int_equal(m->nsat, 2);
	assert_true(m->sat[1].limit == 1073741824.0);
	assert_string_equal(m->sat[0].name, "cpu");
	assert_int_equal(m->nwin, 4);
	assert_true(m->win[0].factor == 14.4 && m->win[0].long_ms == 3600000 &&
	            m->win[0].short_ms == 300000 && m->win[0].page);
	assert_true(m->win[3].factor == 1 && !m->win[3].page);
	services_free(s);
}

static void test_parse_shipped_example(void **state)
{
	(void)state;
	const char *src = getenv("FORESHOCK_SRCDIR");
	char path[1024];
	snprintf(path, sizeof path, "%s/models/http-service.yml", src ? src : ".");
	if (access(path, R_OK) != 0)
		skip();
	char err[512] = "";
	struct services *s = services_load_file(path, err, sizeof err);
	if (!s)
		fail_msg("%s", err);
	assert_int_equal(services_count(s), 1);
	services_free(s);
	/* the directory loader skips detector models (kind absent) */
	snprintf(path, sizeof path, "%s/models", src ? src : ".");
	s = services_load_dir(path, err, sizeof err);
	if (!s)
		fail_msg("%s", err);
	assert_true(services_count(s) >= 1);
	services_free(s);
}

struct bad_case {
	const char *text;
	const char *want; /* substring of the error, including ":LINE:" */
};

static void test_parse_bad(void **state)
{
	(void)state;
	static const struct bad_case cases[] = {
		{ "kind: service\nname: a\nsignals:\n  requests: 'x{a=\"b\"}'\n  bogus: 1\n",
		  ":5: unknown key 'bogus'" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x{a=~\"(\"}'\n", ":4: invalid selector" },
		{ "kind: service\nname: a\nsignals:\n  requests: '{}'\n", ":4: invalid selector" },
		{ "kind: service\nname: a\nsignals:\n  errors: 'x'\n", ":4: missing 'requests'" },
		{ "kind: service\nsignals:\n  requests: 'x'\n", ":1: missing 'name'" },
		{ "kind: service\nname: 'a b'\nsignals:\n  requests: 'x'\n", ":2: invalid service name" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\nslos:\n  availability:\n"
		  "    objective: 101%\n",
		  ":7: objective '101%' out of range" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\nslos:\n  latency:\n"
		  "    threshold: fast\n",
		  ":7:" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\ncapacity:\n  per_instance: 10\n",
		  ":6: 'capacity.per_instance' needs 'signals.instances'" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\ncapacity:\n  total: -3\n",
		  ":6: value -3 for 'total' out of range" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\n  saturation:\n"
		  "    - selector: 'y'\n      limit: 0\n",
		  ":7: limit 0 for 'saturation' must be > 0" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\n  latency:\n    selector: 'y'\n"
		  "    unit: parsecs\n",
		  ":7: invalid unit 'parsecs'" },
		{ "kind: service\nname: a\nstep: 7s\nsignals:\n  requests: 'x'\n",
		  ":3: step must divide a minute" },
		{ "kind: service\nname: a\nlag: 9\nsignals:\n  requests: 'x'\n", ":3: lag 9 out of range" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\nslos:\n  availability:\n"
		  "    objective: 99%\n    windows:\n      - {long: 5m, short: 1h, burn: 2}\n",
		  ":9: 'short' window longer than 'long'" },
		{ "kind: service\nname: a\nsignals:\n  requests: 'x'\ndetectors:\n  overload:\n"
		  "    warning: 0.9\n    critical: 0.5\n",
		  ":7: 'critical' (0.5) below 'warning' (0.9)" },
		{ "name: a\nsignals:\n  requests: 'x'\n", "not a service model" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[512] = "";
		struct services *s = load_text(cases[i].text, err, sizeof err);
		if (s || !strstr(err, cases[i].want))
			fail_msg("case %zu: want '%s', got '%s'", i, cases[i].want, s ? "(loaded)" : err);
		assert_non_null(strstr(err, "test_service_")); /* names the file */
	}
}

/* ---- binding ------------------------------------------------------------ */

static void test_bind(void **state)
{
	(void)state;
	char err[512];
	struct services *s = load_text(good_model, err, sizeof err);
	assert_non_null(s);
	uint32_t svc = 99;
	struct labels l = mk_labels("foreshock:rate:http_requests_total", "job", "checkout", "code",
	                            "500", "instance", "a", NULL);
	uint32_t m = services_bind(s, &l, &svc);
	assert_int_equal(svc, 0);
	assert_int_equal(m, (1u << ROLE_REQUESTS) | (1u << ROLE_ERRORS) | (1u << ROLE_TOTAL));
	labels_free(&l);
	l = mk_labels("foreshock:rate:http_requests_total", "job", "checkout", "code", "200", NULL);
	assert_int_equal(services_bind(s, &l, &svc), (1u << ROLE_REQUESTS) | (1u << ROLE_TOTAL));
	labels_free(&l);
	l = mk_labels("foreshock:p99:http_request_duration_seconds", "job", "checkout", NULL);
	assert_int_equal(services_bind(s, &l, &svc), 1u << ROLE_LATENCY);
	labels_free(&l);
	l = mk_labels("process_resident_memory_bytes", "job", "checkout", "instance", "b", NULL);
	assert_int_equal(services_bind(s, &l, &svc),
	                 (1u << ROLE_SATURATION) | (1u << SERVICE_SAT_SHIFT));
	labels_free(&l);
	l = mk_labels("up", "job", "checkout", NULL);
	assert_int_equal(services_bind(s, &l, &svc), 1u << ROLE_INSTANCES);
	labels_free(&l);
	l = mk_labels("foreshock:rate:http_requests_total", "job", "search", NULL);
	assert_int_equal(services_bind(s, &l, &svc), 0);
	labels_free(&l);
	/* the raw counter, other quantiles: in the service's default scope
	 * (job="checkout", shared by all its selectors), evidence only */
	l = mk_labels("http_requests_total", "job", "checkout", NULL);
	assert_int_equal(services_bind(s, &l, &svc), SERVICE_EVIDENCE);
	labels_free(&l);
	l = mk_labels("foreshock:p50:http_request_duration_seconds", "job", "checkout", NULL);
	svc = 99;
	assert_int_equal(services_bind(s, &l, &svc), SERVICE_EVIDENCE);
	assert_int_equal(svc, 0);
	labels_free(&l);
	l = mk_labels("foreshock:p50:http_request_duration_seconds", "job", "search", NULL);
	assert_int_equal(services_bind(s, &l, &svc), 0);
	labels_free(&l);
	services_free(s);
}

static void test_scope_and_error_ratio_gauge(void **state)
{
	(void)state;
	char err[512];
	/* selectors without a label in common: no default scope */
	struct services *s = load_text("kind: service\nname: a\nsignals:\n"
	                               "  requests: 'r{job=\"a\"}'\n  latency: 'lat'\n",
	                               err, sizeof err);
	assert_non_null(s);
	uint32_t svc;
	struct labels l = mk_labels("other", "job", "a", NULL);
	assert_int_equal(services_bind(s, &l, &svc), 0);
	labels_free(&l);
	services_free(s);
	/* an explicit scope; an error-ratio gauge as the error signal */
	s = load_text("kind: service\nname: a\nscope: '{team=\"x\"}'\nsignals:\n"
	              "  requests: 'r{job=\"a\"}'\n  error_ratio: 'err_ratio{job=\"a\"}'\n",
	              err, sizeof err);
	assert_non_null(s);
	l = mk_labels("other", "team", "x", NULL);
	assert_int_equal(services_bind(s, &l, &svc), SERVICE_EVIDENCE);
	labels_free(&l);
	l = mk_labels("err_ratio", "job", "a", "instance", "1", NULL);
	assert_int_equal(services_bind(s, &l, &svc), 1u << ROLE_ERROR_RATIO);
	labels_free(&l);
	services_free(s);
	assert_null(load_text("kind: service\nname: a\nscope: '{}'\nsignals:\n  requests: 'r'\n",
	                      err, sizeof err));
	assert_non_null(strstr(err, ":3: invalid selector"));
	assert_null(load_text("kind: service\nname: a\nsignals:\n  requests: 'r'\n"
	                      "alerting:\n  separate: maybe\n", err, sizeof err));
	assert_non_null(strstr(err, ":6: invalid 'separate' 'maybe'"));
}

/* ---- the driver (service_driver.h): feed samples, collect transitions --- */

#define R_REQ ((1u << ROLE_REQUESTS) | (1u << ROLE_TOTAL))
#define R_ERR ((1u << ROLE_REQUESTS) | (1u << ROLE_ERRORS) | (1u << ROLE_TOTAL))

/* ---- the grid ------------------------------------------------------------ */

static void test_grid(void **state)
{
	(void)state;
	char err[512];
	struct drv d = { 0 };
	d.s = load_text(good_model, err, sizeof err);
	assert_non_null(d.s);
	struct svc *s = &d.s->v[0];
	/* two instances at slightly different times in each 30 s bucket */
	for (int i = 0; i < 10; i++) {
		drv_feed(&d, R_REQ, 1, T0 + i * 30000 + 29900, 10);
		drv_feed(&d, R_REQ, 2, T0 + i * 30000 + 30100 - 30000 + 100, 5);
	}
	/* buckets close with one step of lag: 10 buckets of data, 8 closed */
	assert_int_equal(s->steps, 8);
	assert_true(fabs(s->snap.req - 15) < 1e-9);
	/* a sample for a closed bucket is late and dropped */
	drv_feed(&d, R_REQ, 2, T0 + 30000, 5);
	assert_int_equal(s->late_dropped, 1);
	/* a member that stops reporting drops out after `stale` (5 min) */
	for (int i = 10; i < 30; i++)
		drv_feed(&d, R_REQ, 1, T0 + i * 30000 + 29900, 10);
	assert_true(fabs(s->snap.req - 10) < 1e-9);
	drv_free(&d);
}

/* ---- burn rate ------------------------------------------------------------ */

static const char *burn_model = "kind: service\n"
                                "name: b\n"
                                "step: 60s\n"
                                "alerting:\n"
                                "  separate: true\n"
                                "signals:\n"
                                "  requests: 'r'\n"
                                "  errors: 'r{code=\"500\"}'\n"
                                "slos:\n"
                                "  availability:\n"
                                "    objective: 99.9%\n"
                                "detectors:\n"
                                "  error_ratio: {min_errors: 1e12}\n";

static void test_burn_rate(void **state)
{
	(void)state;
	char err[512];
	struct drv d = { 0 };
	d.s = load_text(burn_model, err, sizeof err);
	assert_non_null(d.s);
	struct svc *s = &d.s->v[0];
	/* 100 req/s, 0.1% errors for 4 days: burn rate exactly 1 on every window */
	int64_t t = T0;
	for (int i = 0; i < 4 * 1440; i++, t += 60000) {
		drv_feed(&d, R_REQ, 1, t, 99.9);
		drv_feed(&d, R_ERR, 2, t, 0.1);
	}
	for (int w = 0; w < 4; w++)
		for (int j = 0; j < 2; j++)
			assert_true(fabs(s->snap.burn[w][j] - 1.0) < 1e-6);
	assert_null(drv_find(&d, "service:b:SLOBurnRate:page", AEV_FIRING));
	/* the 3d/6h ticket pair is at its threshold (1x): score 0.5 */
	assert_true(fabs(s->snap.burn_score_ticket - 0.5) < 1e-6);
	/* now 2% errors: burn 20. After 5 minutes the 5m window is at 20 and the
	 * 1h window at (5*20 + 55*1)/60 = 2.58: no page yet. */
	for (int i = 0; i < 5; i++, t += 60000) {
		drv_feed(&d, R_REQ, 1, t, 98);
		drv_feed(&d, R_ERR, 2, t, 2);
	}
	/* bucket k closes when bucket k + 2 arrives (lag 1): 3 of the 5 count */
	double short5 = s->snap.burn[0][1], long1h = s->snap.burn[0][0];
	print_message("burn 5m %.6f 1h %.6f\n", short5, long1h);
	assert_true(fabs(short5 - (3 * 20 + 2 * 1) / 5.0) < 1e-6);
	assert_true(fabs(long1h - (3 * 20 + 57 * 1) / 60.0) < 1e-6);
	assert_null(drv_find(&d, "service:b:SLOBurnRate:page", AEV_FIRING));
	/* the 1h window reaches 14.4 when 20k + (60-k) >= 864, k >= 42.3 */
	int fired_at = -1;
	for (int i = 5; i < 60; i++, t += 60000) {
		drv_feed(&d, R_REQ, 1, t, 98);
		drv_feed(&d, R_ERR, 2, t, 2);
		if (fired_at < 0 && drv_find(&d, "service:b:SLOBurnRate:page", AEV_FIRING))
			fired_at = i;
	}
	/* step i closes bucket i-1 (i buckets of 2% counted: need 43) */
	assert_int_equal(fired_at, 44);
	const struct service_transition *tr = drv_find(&d, "service:b:SLOBurnRate:page", AEV_FIRING);
	assert_non_null(strstr(tr->labels_json, "\"severity\":\"critical\""));
	assert_non_null(strstr(tr->annotations_json, "burning its 99.9% availability error budget"));
	drv_free(&d);
}

/* ---- error ratio ---------------------------------------------------------- */

static void test_error_ratio_math(void **state)
{
	(void)state;
	/* exact binomial tail: P(X >= 2 | n = 3, p = 0.001) = 3p^2 - 2p^3 */
	double l = log_binom_upper(2, 3, 0.001);
	assert_true(fabs(exp(l) - (3e-6 - 2e-9)) < 1e-12);
	/* P(X >= 1 | n, p) = 1 - (1-p)^n */
	l = log_binom_upper(1, 50, 0.01);
	assert_true(fabs(exp(l) - (1 - pow(0.99, 50))) < 1e-9);
	/* 2 errors in 3 requests at night, baseline 0.1%: p = 3e-6, not below
	 * alpha = 1e-6, and fewer than min_errors anyway */
	double night = error_log10p(2, 3, 0.001, 1);
	assert_true(night > -6 && night < -5);
	/* 0.5% of 10k req/s over 5 minutes against 0.1%: overwhelming */
	double busy = error_log10p(0.005 * 3e6, 3e6, 0.001, 1);
	assert_true(busy < -100);
	/* even with a dispersion of 10 (errors cluster 10x more than binomial) */
	assert_true(error_log10p(0.005 * 3e6, 3e6, 0.001, 10) < -100);
	/* 0.12% at 10k req/s is statistically real (z = 11) but is not an
	 * outage: the detector's min_factor gate handles that, not the test */
	assert_true(error_log10p(0.0012 * 3e6, 3e6, 0.001, 1) < -6);
}

static const char *er_model = "kind: service\n"
                              "name: e\n"
                              "alerting:\n"
                              "  separate: true\n"
                              "signals:\n"
                              "  requests: 'r'\n"
                              "  errors: 'r{code=\"500\"}'\n";

/* Run a service for two days at `rate` req/s with 0.1% errors, then one
 * 5-minute window at `err_ratio`; return the last error score. */
static double er_scenario(double rate, double err_ratio, double err_count_override, int *fired)
{
	char err[512];
	struct drv d = { 0 };
	d.s = load_text(er_model, err, sizeof err);
	assert_non_null(d.s);
	struct svc *s = &d.s->v[0];
	int64_t t = T0;
	for (int i = 0; i < 2 * 2880; i++, t += 30000) {
		drv_feed(&d, R_REQ, 1, t, rate * 0.999);
		drv_feed(&d, R_ERR, 2, t, rate * 0.001);
	}
	double maxs = 0;
	for (int i = 0; i < 10; i++, t += 30000) {
		double e = err_count_override >= 0 ? (i == 0 ? err_count_override / 30 : 0)
		                                   : rate * err_ratio;
		drv_feed(&d, R_REQ, 1, t, rate - e);
		drv_feed(&d, R_ERR, 2, t, e);
		if (s->snap.er_score > maxs)
			maxs = s->snap.er_score;
	}
	*fired = drv_find(&d, "service:e:ErrorRatio", AEV_PENDING) != NULL;
	drv_free(&d);
	return maxs;
}

/* log P(X >= x), X ~ Binomial(n, p), by GSL (log_binom_upper) against
 * exact values: the upper tail summed term by term at 40 significant digits
 * with mpmath 1.3.0, then its natural log (values of magnitude below 1e-30
 * are left out: 40 digits do not resolve log(1 - tiny)). Cases where the
 * incomplete beta underflows (-921, -1148.9, -1449, -39125) take the
 * hypergeometric path. The hand-written continued fraction this replaced
 * agreed with the same table to 2.1e-11 at worst. */
static void test_error_ratio_gsl_table(void **state)
{
	(void)state;
	static const struct {
		double n, p, x, want;
	} t[] = {
		{ 3, 1e-4, 1, -8.1118280849747396606 },
		{ 3, 0.05, 1, -1.9475364707998972884 },
		{ 10, 1e-4, 9, -80.590568258841841526 },
		{ 10, 0.2, 3, -1.1325813383458677564 },
		{ 50, 0.01, 1, -0.92888487404084368401 },
		{ 50, 0.2, 25, -13.076026288360683329 },
		{ 100, 1e-4, 100, -921.03403719761826882 },
		{ 100, 0.05, 30, -34.694683723385777263 },
		{ 100, 0.2, 90, -116.57075431689764475 },
		{ 1000, 0.05, 1, -5.2918227477450321e-23 },
		{ 1000, 0.01, 10, -0.6111996890777196 },
		{ 1000, 0.2, 900, -1148.8670587542499838 },
		{ 10000, 1e-4, 1, -0.45864604576262447 },
		{ 10000, 0.01, 30, -4.5650134780062628e-17 },
		{ 10000, 0.01, 100, -0.66650666788764612 },
		{ 10000, 0.01, 1000, -1449.0184957052800549 },
		{ 10000, 1e-4, 5000, -39125.560965826761581 },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		double got = log_binom_upper(t[i].x, t[i].n, t[i].p);
		double rel = fabs(got - t[i].want) / fabs(t[i].want);
		if (!(rel < 1e-12))
			fail_msg("n=%g p=%g x=%g: %.17g, want %.17g (rel %.3g)", t[i].n, t[i].p, t[i].x,
			         got, t[i].want, rel);
	}
}

static void test_error_ratio_detector(void **state)
{
	(void)state;
	int fired;
	/* night: 0.1 req/s (3 requests per step), 2 of 3 fail once */
	double sn = er_scenario(0.1, 0, 2, &fired);
	assert_true(sn < 0.5);
	assert_false(fired);
	/* day: 10k req/s with 0.5% errors */
	double sd = er_scenario(10000, 0.005, -1, &fired);
	assert_true(sd >= 0.99);
	assert_true(fired);
	/* day: 10k req/s with 0.11% errors: noise */
	sd = er_scenario(10000, 0.0011, -1, &fired);
	assert_true(sd < 0.5);
	assert_false(fired);
}

/* ---- overload risk on a synthetic surge ------------------------------------ */

static const char *surge_model = "kind: service\n"
                                 "name: shop\n"
                                 "signals:\n"
                                 "  requests: 'r'\n"
                                 "  errors: 'r{code=\"500\"}'\n"
                                 "  latency: 'p99'\n"
                                 "  instances: 'up'\n"
                                 "slos:\n"
                                 "  availability: {objective: 99.9%}\n"
                                 "  latency: {threshold: 500ms}\n"
                                 "capacity:\n"
                                 "  per_instance: 100\n";

/* 3 days of seasonal traffic (peak 150 req/s against a capacity of 300),
 * then on day 4 at 10:00 a surge ramping to 2.5x over an hour. Latency
 * follows an M/M/1-like curve 0.1 s / (1 - utilisation). Returns the
 * transitions in d (caller frees) and the time load reached capacity. */
#define SURGE_END (T0 + 3 * 86400000LL + 13 * 3600000LL)

/* Feed [from, to) of the scenario of run_surge() into d->s. */
static int64_t feed_surge(struct drv *d, struct rng *rp, int64_t from, int64_t to, int surge)
{
	struct rng r = *rp;
	int64_t surge_at = T0 + 3 * 86400000LL + 10 * 3600000LL, breach = 0;
	for (int64_t t = from; t < to; t += 30000) {
		double day = (double)((t - T0) % 86400000LL) / 86400000.0;
		double base = 90 + 60 * sin(2 * M_PI * (day - 0.25));
		double f = 1;
		if (surge == 1 && t >= surge_at)
			f = 1 + 1.5 * fmin(1.0, (double)(t - surge_at) / 3600000.0);
		if (surge == 2)
			f = 1.3;
		double inst = surge == 2 && t >= T0 + 3 * 86400000LL + 6 * 3600000LL ? 2 : 3;
		double rate = base * f * (1 + 0.03 * rng_norm(&r));
		double u = rate / (100 * inst);
		if (u >= 1 && !breach)
			breach = t;
		double lat = 0.1 / fmax(0.05, 1 - u) * (1 + 0.05 * rng_norm(&r));
		drv_feed(d, R_REQ, 1, t, rate * 0.9995);
		drv_feed(d, R_ERR, 2, t, rate * 0.0005);
		drv_feed(d, 1u << ROLE_LATENCY, 3, t, lat);
		drv_feed(d, 1u << ROLE_INSTANCES, 4, t, inst);
		if (getenv("SVC_DEBUG") && (t % 1800000 == 0 || (t > T0 + 82 * 3600000LL && t < T0 + 83 * 3600000LL && t % 120000 == 0)))
			fprintf(stderr, "t=%.2fh req=%.1f ref=%.1f hi=%.1f lat=%.3f lref=%.3f risk=%.2f etacap=%.0f etalat=%.0f c=%.2f/%.2f/%.2f\n",
			        (double)(t - T0) / 3600000.0, d->s->v[0].snap.req, d->s->v[0].snap.req_ref,
			        d->s->v[0].snap.req_hi, d->s->v[0].snap.lat_s, d->s->v[0].snap.lat_ref,
			        d->s->v[0].snap.risk, d->s->v[0].snap.eta_cap_s, d->s->v[0].snap.eta_lat_s,
			        d->s->v[0].snap.comp[0], d->s->v[0].snap.comp[1], d->s->v[0].snap.comp[2]);
	}
	*rp = r;
	return breach;
}

static int64_t run_surge(struct drv *d, int surge)
{
	/* surge: 0 quiet, 1 surge, 2 traffic 1.3x and one of three instances
	 * lost at 06:00 on day 4 */
	char err[512];
	d->s = load_text(surge_model, err, sizeof err);
	assert_non_null(d->s);
	struct rng r = { 42 };
	return feed_surge(d, &r, T0, SURGE_END, surge);
}

/* The incident alert: a sudden failure pages at once (the fast path), the
 * alert stays open while latency is still well above its pre-incident level
 * although the risk has dropped, and resolves `resolve` after the service is
 * back; ErrorRatio and SLOBurnRate send nothing without `separate`. */
static const char *incident_model = "kind: service\n"
                                    "name: inc\n"
                                    "signals:\n"
                                    "  requests: 'r'\n"
                                    "  errors: 'r{code=\"500\"}'\n"
                                    "  latency: 'p99'\n"
                                    "slos:\n"
                                    "  availability: {objective: 95%}\n"
                                    "  latency: {threshold: 1s}\n";

static void test_incident_alert(void **state)
{
	(void)state;
	char err[512];
	struct drv d = { 0 };
	d.s = load_text(incident_model, err, sizeof err);
	assert_non_null(d.s);
	struct rng r = { 7 };
	const int64_t fail_at = T0 + 8 * 3600000LL, errors_end = fail_at + 10 * 60000LL,
	              lat_end = fail_at + 50 * 60000LL;
	for (int64_t t = T0; t < fail_at + 90 * 60000LL; t += 30000) {
		double rate = 100 * (1 + 0.02 * rng_norm(&r));
		double e = t >= fail_at && t < errors_end ? 0.3 : 0.0005;
		double lat = (t >= fail_at && t < lat_end ? 0.36 : 0.2) * (1 + 0.02 * rng_norm(&r));
		drv_feed(&d, R_REQ, 1, t, rate * (1 - e));
		drv_feed(&d, R_ERR, 2, t, rate * e);
		drv_feed(&d, 1u << ROLE_LATENCY, 3, t, lat);
		if (t == errors_end + 20 * 60000LL) {
			/* the errors are over, latency is still 1.8x its level */
			assert_true(d.s->v[0].snap.risk < 0.5);
			assert_int_equal(d.s->v[0].fsm[AK_RISK_CRITICAL].state, ALERT_FIRING);
		}
	}
	const struct service_transition *c = drv_find(&d, "service:inc:OverloadRisk:critical",
	                                              AEV_FIRING);
	assert_non_null(c);
	/* paged within a minute and a half of event time (one step of lag) */
	assert_true(c->ts_ms > fail_at && c->ts_ms <= fail_at + 90000);
	assert_non_null(strstr(c->annotations_json, "is breaching its SLO"));
	assert_non_null(strstr(c->annotations_json, "error SLO is breached"));
	assert_non_null(strstr(c->annotations_json, "\"slo_breached\":true"));
	assert_non_null(drv_find(&d, "service:inc:OverloadRisk:warning", AEV_FIRING));
	/* open until latency is back near its pre-incident level, then resolve */
	const struct service_transition *res =
		drv_find(&d, "service:inc:OverloadRisk:critical", AEV_RESOLVED);
	assert_non_null(res);
	assert_true(res->ts_ms >= lat_end + 10 * 60000LL);
	assert_true(res->ts_ms <= lat_end + 12 * 60000LL);
	/* one incident: fired once, no second alert on the recovery */
	int fired = 0;
	for (size_t i = 0; i < d.n; i++) {
		if (d.t[i].ev == AEV_FIRING && strstr(d.t[i].key, "critical"))
			fired++;
		assert_null(strstr(d.t[i].key, "ErrorRatio"));
		assert_null(strstr(d.t[i].key, "SLOBurnRate"));
	}
	assert_int_equal(fired, 1);
	drv_free(&d);
}

/* Errors rising steadily toward the SLO (a dependency failing slowly:
 * 0.3% to 4% over 20 minutes) warn while the ratio is still a small share of
 * the budget, with the time to the breach in the text; a 90-second deploy
 * blip of 3% earlier that day does not. */
static void test_error_trend(void **state)
{
	(void)state;
	char err[512];
	struct drv d = { 0 };
	d.s = load_text(incident_model, err, sizeof err);
	assert_non_null(d.s);
	struct rng r = { 9 };
	const int64_t blip_at = T0 + 7 * 3600000LL, ramp_at = T0 + 9 * 3600000LL;
	for (int64_t t = T0; t < ramp_at + 20 * 60000LL; t += 30000) {
		double rate = 100 * (1 + 0.02 * rng_norm(&r));
		double e = 0.0005;
		if (t >= blip_at && t < blip_at + 90000)
			e = 0.03;
		if (t >= ramp_at)
			e = 0.003 + 0.037 * (double)(t - ramp_at) / (20 * 60000.0);
		e *= 1 + 0.1 * rng_norm(&r);
		drv_feed(&d, R_REQ, 1, t, rate * (1 - e));
		drv_feed(&d, R_ERR, 2, t, rate * e);
		drv_feed(&d, 1u << ROLE_LATENCY, 3, t, 0.2 * (1 + 0.02 * rng_norm(&r)));
	}
	const struct service_transition *w = drv_find(&d, "service:inc:OverloadRisk:warning",
	                                              AEV_FIRING);
	assert_non_null(w);
	assert_true(w->ts_ms > ramp_at);
	/* 4.5 min by the errors elevated for four minutes without a break (6 by
	 * the trend alone, 8 without either: once the window's ratio is 1%) */
	assert_true(w->ts_ms <= ramp_at + 5 * 60000LL + 30000);
	assert_true(strstr(w->annotations_json, "rising: at this rate the 5% error SLO is breached") ||
	            strstr(w->annotations_json, "without a break and are not falling"));
	assert_non_null(strstr(w->annotations_json, "\"error_slo_eta_s\":"));
	for (size_t i = 0; i < d.n; i++)
		assert_false(d.t[i].ts_ms < ramp_at); /* nothing on the blip */
	drv_free(&d);
}

static void test_overload_surge(void **state)
{
	(void)state;
	struct drv d = { 0 };
	int64_t breach = run_surge(&d, 1);
	assert_true(breach > 0);
	const struct service_transition *w =
		drv_find(&d, "service:shop:OverloadRisk:warning", AEV_FIRING);
	assert_non_null(w);
	/* warned at least 10 minutes before load reached capacity */
	if (!(w->ts_ms <= breach - 10 * 60000))
		fail_msg("warning at %lld, breach at %lld (lead %.1f min)", (long long)w->ts_ms,
		         (long long)breach, (double)(breach - w->ts_ms) / 60000);
	print_message("lead %.1f min: %.300s\n", (double)(breach - w->ts_ms) / 60000,
	              w->annotations_json);
	assert_non_null(strstr(w->annotations_json, "shop is heading for an outage"));
	/* by the load against its forecast, or (earlier) by the load's growth
	 * toward where the service's own latency-load curve crosses the SLO */
	assert_true(strstr(w->annotations_json, "the seasonal forecast") ||
	            strstr(w->annotations_json, "at the current growth of"));
	assert_non_null(strstr(w->labels_json, "\"alertname\":\"OverloadRisk\""));
	assert_non_null(drv_find(&d, "service:shop:OverloadRisk:critical", AEV_FIRING));
	/* an alert that ended keeps the evidence of its peak */
	const struct service_transition *res =
		drv_find(&d, "service:shop:OverloadRisk:warning", AEV_RESOLVED);
	if (res)
		assert_non_null(strstr(res->annotations_json, "resolved; at its peak: shop is heading"));
	/* and no risk alert in the three quiet days before */
	for (size_t i = 0; i < d.n; i++)
		if (strstr(d.t[i].key, "OverloadRisk") && d.t[i].ev == AEV_PENDING &&
		    d.t[i].ts_ms < T0 + 3 * 86400000LL + 10 * 3600000LL)
			fail_msg("early %s at %.2f h: %s", d.t[i].key,
			         (double)(d.t[i].ts_ms - T0) / 3600000.0, d.t[i].annotations_json);
	drv_free(&d);
	/* the same days without the surge: no alert at all */
	struct drv q = { 0 };
	run_surge(&q, 0);
	for (size_t i = 0; i < q.n; i++)
		if (q.t[i].ev == AEV_FIRING)
			fail_msg("quiet run fired %s at %lld: %s", q.t[i].key, (long long)q.t[i].ts_ms,
			         q.t[i].annotations_json);
	drv_free(&q);
}

static void test_overload_instance_loss(void **state)
{
	(void)state;
	struct drv d = { 0 };
	run_surge(&d, 2);
	/* at 06:00 the load is ~40% of the remaining capacity, but yesterday's
	 * peak (195/s) does not fit under 90% of 200/s: warn within minutes */
	int64_t lost = T0 + 3 * 86400000LL + 6 * 3600000LL;
	const struct service_transition *w =
		drv_find(&d, "service:shop:OverloadRisk:warning", AEV_FIRING);
	assert_non_null(w);
	if (!(w->ts_ms >= lost && w->ts_ms <= lost + 15 * 60000))
		fail_msg("warning at %+.1f min from the loss: %s", (double)(w->ts_ms - lost) / 60000,
		         w->annotations_json);
	assert_non_null(strstr(w->annotations_json, "the forecast peak of"));
	assert_non_null(strstr(w->annotations_json, "with 2 instances up"));
	drv_free(&d);
}

/* A memory leak: saturation creeping from 40% to its limit over 6 hours on
 * an otherwise steady service; the warning must say when it is full. */
static void test_overload_leak(void **state)
{
	(void)state;
	char err[512];
	struct drv d = { 0 };
	d.s = load_text(good_model, err, sizeof err);
	assert_non_null(d.s);
	struct rng r = { 7 };
	int64_t start = T0 + 86400000LL, full = start + 6 * 3600000LL;
	uint32_t mem_roles = (1u << ROLE_SATURATION) | (1u << SERVICE_SAT_SHIFT); /* memory */
	for (int64_t t = T0; t < full; t += 30000) {
		double used = 0.4 + (t > start ? 0.6 * (double)(t - start) / (double)(full - start) : 0);
		double gib = 1073741824.0;
		drv_feed(&d, R_REQ, 1, t, 50 * (1 + 0.02 * rng_norm(&r)));
		drv_feed(&d, mem_roles, 2, t, used * gib * (1 + 0.005 * rng_norm(&r)));
		drv_feed(&d, 1u << ROLE_INSTANCES, 3, t, 1);
	}
	const struct service_transition *w =
		drv_find(&d, "service:checkout:OverloadRisk:warning", AEV_FIRING);
	assert_non_null(w);
	if (!(w->ts_ms <= full - 20 * 60000 && w->ts_ms >= start + 3 * 3600000LL))
		fail_msg("warning %.1f min before the limit: %s", (double)(full - w->ts_ms) / 60000,
		         w->annotations_json);
	assert_non_null(strstr(w->annotations_json, "memory is at"));
	assert_non_null(strstr(w->annotations_json, "full in about"));
	drv_free(&d);
}

static void test_determinism(void **state)
{
	(void)state;
	struct drv a = { 0 }, b = { 0 };
	run_surge(&a, 1);
	run_surge(&b, 1);
	assert_int_equal(a.n, b.n);
	assert_true(a.n > 0);
	for (size_t i = 0; i < a.n; i++) {
		assert_string_equal(a.t[i].key, b.t[i].key);
		assert_int_equal(a.t[i].ev, b.t[i].ev);
		assert_int_equal(a.t[i].ts_ms, b.t[i].ts_ms);
		assert_string_equal(a.t[i].annotations_json, b.t[i].annotations_json);
	}
	/* JSON state renders */
	struct obuf o;
	obuf_init(&o, 0);
	services_json(a.s, &o);
	assert_false(o.failed);
	assert_non_null(strstr(o.p, "\"name\":\"shop\""));
	assert_non_null(strstr(o.p, "\"burn_rates\":["));
	obuf_free(&o);
	drv_free(&a);
	drv_free(&b);
}

static void test_reload_and_restore(void **state)
{
	(void)state;
	struct drv a = { 0 };
	run_surge(&a, 1);
	struct svc *o = &a.s->v[0];
	assert_int_equal(o->fsm[AK_RISK_WARNING].state, ALERT_FIRING);
	o->fsm[AK_RISK_WARNING].alert_id = 77;
	uint64_t steps = o->steps;
	/* same model reloaded: everything learned carries over */
	char err[512];
	struct services *nw = load_text(surge_model, err, sizeof err);
	assert_non_null(nw);
	services_adopt(nw, a.s);
	assert_int_equal(nw->v[0].steps, steps);
	assert_int_equal(nw->v[0].fsm[AK_RISK_WARNING].alert_id, 77);
	assert_true(nw->v[0].m.al[AK_RISK_WARNING].severity == nw->v[0].m.sev[AK_RISK_WARNING]);
	services_free(nw);
	drv_free(&a);
	memset(&a, 0, sizeof a);
	run_surge(&a, 1);
	a.s->v[0].fsm[AK_RISK_WARNING].alert_id = 77;
	/* a different step: only the alerts carry over */
	char *changed = malloc(strlen(surge_model) + 16);
	sprintf(changed, "step: 60s\n%s", surge_model);
	nw = load_text(changed, err, sizeof err);
	free(changed);
	assert_non_null(nw);
	services_adopt(nw, a.s);
	assert_int_equal(nw->v[0].steps, 0);
	assert_int_equal(nw->v[0].fsm[AK_RISK_WARNING].alert_id, 77);
	assert_int_equal(nw->v[0].fsm[AK_RISK_WARNING].state, ALERT_FIRING);
	/* restart: an open alert read back from the store */
	struct services *fresh = load_text(surge_model, err, sizeof err);
	assert_int_equal(services_restore_alert(fresh, "service:shop:OverloadRisk:critical",
	                                        ALERT_FIRING, 5, T0, T0 + 60000, 0.9),
	                 0);
	assert_int_equal(fresh->v[0].fsm[AK_RISK_CRITICAL].state, ALERT_FIRING);
	assert_int_equal(fresh->v[0].fsm[AK_RISK_CRITICAL].alert_id, 5);
	assert_int_equal(services_restore_alert(fresh, "service:shop:Nope", ALERT_FIRING, 5, T0,
	                                        T0, 0.9),
	                 -1);
	assert_int_equal(services_restore_alert(fresh, "service:other:ErrorRatio", ALERT_FIRING, 5,
	                                        T0, T0, 0.9),
	                 -1);
	assert_int_equal(services_restore_alert(fresh, "cpu{a=\"b\"}", ALERT_FIRING, 5, T0, T0, 0.9),
	                 -1);
	services_free(fresh);
	services_free(nw);
	drv_free(&a);
}

/* Persistence: the state taken from a service after three days comes back
 * in a fresh set (a restart) with everything learned; the restarted service
 * then sees the surge like the one that never stopped, and a blob of another
 * format, of a changed model or cut short is refused. */
static void test_state_persist(void **state)
{
	(void)state;
	char err[512], why[160];
	struct drv a = { 0 }, b = { 0 };
	a.s = load_text(surge_model, err, sizeof err);
	assert_non_null(a.s);
	struct rng r = { 42 };
	int64_t split = T0 + 3 * 86400000LL;
	feed_surge(&a, &r, T0, split, 1);
	void *blob;
	size_t len;
	assert_int_equal(services_state_take(a.s, 0, &blob, &len), 1);
	assert_int_equal(services_state_take(a.s, 0, &blob, &len), 0); /* unchanged since */
	assert_int_equal(services_state_take(a.s, 1, &blob, &len), 0); /* out of range */
	services_state_unsaved(a.s, "shop");
	void *blob2;
	size_t len2;
	assert_int_equal(services_state_take(a.s, 0, &blob2, &len2), 1);
	assert_int_equal(len2, len);
	assert_memory_equal(blob, blob2, len);
	free(blob2);
	/* restart: a fresh set, the blob loaded back */
	b.s = load_text(surge_model, err, sizeof err);
	assert_non_null(b.s);
	assert_int_equal(services_state_load(b.s, "shop", blob, len, why, sizeof why), 0);
	const struct svc *sa = &a.s->v[0], *sb = &b.s->v[0];
	assert_int_equal(sb->steps, sa->steps);
	assert_true(sb->steps > 8000);
	assert_int_equal(sb->next_close, sa->next_close);
	assert_true(sb->base_n == sa->base_n && sb->disp == sa->disp && sb->er_k == sa->er_k);
	assert_true(sb->level_ratio == sa->level_ratio);
	assert_memory_equal(sb->fcst, sa->fcst, FC__COUNT * sa->fc_size);
	assert_memory_equal(sb->day, sa->day, sizeof sa->day);
	assert_memory_equal(sb->bb_x, sa->bb_x, sa->bb_n * sizeof(double));
	assert_memory_equal(sb->er_n, sa->er_n, sa->er_steps * sizeof(double));
	assert_memory_equal(sb->ref[FC_LOAD][0], sa->ref[FC_LOAD][0],
	                    (size_t)sa->ref_steps[0] * sizeof(struct fc_ref));
	assert_int_equal(sb->nmem, 0); /* members come back with their samples */
	assert_int_equal(sb->fsm[AK_RISK_WARNING].state, ALERT_INACTIVE); /* the store's job */
	/* both run on through the surge: the restored one warns like the other */
	struct rng rb = r;
	feed_surge(&a, &r, split, SURGE_END, 1);
	feed_surge(&b, &rb, split, SURGE_END, 1);
	const struct service_transition *wa = drv_find(&a, "service:shop:OverloadRisk:warning",
	                                               AEV_FIRING);
	const struct service_transition *wb = drv_find(&b, "service:shop:OverloadRisk:warning",
	                                               AEV_FIRING);
	assert_non_null(wa);
	assert_non_null(wb);
	assert_true(llabs(wa->ts_ms - wb->ts_ms) <= 5 * 60000);
	assert_true(fabs(sb->snap.req_ref - sa->snap.req_ref) < 0.01 * sa->snap.req_ref);
	/* refused: unknown service, other format, changed model, cut short */
	struct services *c = load_text(surge_model, err, sizeof err);
	assert_int_equal(services_state_load(c, "nope", blob, len, why, sizeof why), 1);
	unsigned char *bad = malloc(len);
	memcpy(bad, blob, len);
	bad[4]++; /* the format field */
	assert_int_equal(services_state_load(c, "shop", bad, len, why, sizeof why), -1);
	assert_non_null(strstr(why, "state format"));
	assert_int_equal(services_state_load(c, "shop", blob, len - 8, why, sizeof why), -1);
	assert_non_null(strstr(why, "truncated"));
	assert_int_equal(services_state_load(c, "shop", blob, 10, why, sizeof why), -1);
	assert_int_equal(c->v[0].steps, 0);
	services_free(c);
	char *changed = malloc(strlen(surge_model) + 16);
	sprintf(changed, "step: 60s\n%s", surge_model);
	c = load_text(changed, err, sizeof err);
	free(changed);
	assert_non_null(c);
	assert_int_equal(services_state_load(c, "shop", blob, len, why, sizeof why), -1);
	assert_non_null(strstr(why, "model changed"));
	assert_int_equal(c->v[0].steps, 0);
	services_free(c);
	free(bad);
	free(blob);
	drv_free(&a);
	drv_free(&b);
}

int main(void)
{
	gsl_set_error_handler_off(); /* as the daemon does (service.h) */
	if (getenv("SVC_DEBUG")) {
		struct drv d = { 0 };
		run_surge(&d, 1);
		drv_free(&d);
		return 0;
	}
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_shipped_example),
		cmocka_unit_test(test_parse_bad),
		cmocka_unit_test(test_bind),
		cmocka_unit_test(test_scope_and_error_ratio_gauge),
		cmocka_unit_test(test_grid),
		cmocka_unit_test(test_burn_rate),
		cmocka_unit_test(test_error_ratio_math),
		cmocka_unit_test(test_error_ratio_gsl_table),
		cmocka_unit_test(test_error_ratio_detector),
		cmocka_unit_test(test_incident_alert),
		cmocka_unit_test(test_error_trend),
		cmocka_unit_test(test_overload_surge),
		cmocka_unit_test(test_overload_instance_loss),
		cmocka_unit_test(test_overload_leak),
		cmocka_unit_test(test_determinism),
		cmocka_unit_test(test_reload_and_restore),
		cmocka_unit_test(test_state_persist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
