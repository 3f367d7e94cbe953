/* test_service_knee.c — unit tests of the latency–load projection of
 * service models (src/service/knee.c): a service with no capacity figure
 * whose latency follows a convex curve of its load (not the queueing form
 * the fit uses) learns the curve from three days of its daily cycle; a
 * surge whose load crosses the latency SLO's load at a known time is warned
 * well before it, with a text that gives the growth, the time to the SLO and
 * the load it happens at; a benign hour-long load bump far below the knee,
 * a marketing campaign's 5-minute ramp to a plateau and short bursts raise
 * nothing. */
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
#define DAY 86400000LL
#define HOUR 3600000LL
#define MIN 60000LL

static const char *model =
	"kind: service\n"
	"name: cart\n"
	"step: 30s\n"
	"signals:\n"
	"  requests: 'foreshock:rate:http_requests_total{job=\"cart\"}'\n"
	"  latency: 'foreshock:p99:http_request_duration_seconds{job=\"cart\"}'\n"
	"slos:\n"
	"  latency:\n"
	"    threshold: 1s\n";

#define R_REQ ((1u << ROLE_REQUESTS) | (1u << ROLE_TOTAL))

/* p99 latency of the service at load r: an exponential curve, 0.12 s at no
 * load, 1 s (the SLO) at r = 110 ln(1/0.12) = 233.2 req/s. */
static double latency_at(double r)
{
	return 0.12 * exp(r / 110);
}

#define R_SLO (110 * log(1 / 0.12))

enum scenario { QUIET, SURGE, BENIGN };

/* Four days at 30 s: a daily cycle of 30 to 120 req/s. SURGE: on day 3 at
 * 11:00 the load ramps linearly to 300 req/s over 40 minutes. BENIGN: an
 * hour-long bump of +30% (2-minute ramp) on day 2 at 09:00, a campaign of
 * +35% ramped in over 5 minutes at 15:00 for 45 minutes, and bursts of 1.8x
 * for 2 minutes at 13:00 and 20:00. Returns when the noise-free load
 * crosses R_SLO (0 if never). */
static int64_t run(struct drv *d, enum scenario sc)
{
	char path[256], err[512];
	snprintf(path, sizeof path, "%s/test_knee_%d.yml", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
	         (int)getpid());
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(model, f);
	fclose(f);
	d->s = services_load_file(path, err, sizeof err);
	unlink(path);
	assert_non_null(d->s);
	struct rng rg = { 1 };
	int64_t surge_at = T0 + 3 * DAY + 11 * HOUR, cross = 0;
	int64_t bump_at = T0 + 2 * DAY + 9 * HOUR, camp_at = T0 + 2 * DAY + 15 * HOUR;
	for (int64_t t = T0; t < T0 + 3 * DAY + 14 * HOUR; t += 30000) {
		double day = (double)((t - T0) % DAY) / (double)DAY;
		double r = 75 - 45 * cos(2 * M_PI * (day - 4.0 / 24));
		if (sc == SURGE && t >= surge_at && t < surge_at + 40 * MIN)
			r += (300 - r) * (double)(t - surge_at) / (double)(40 * MIN);
		else if (sc == SURGE && t >= surge_at + 40 * MIN)
			r = 300;
		if (sc == BENIGN && t >= bump_at && t < bump_at + HOUR)
			r *= 1 + 0.3 * fmin(1.0, (double)(t - bump_at) / (2.0 * MIN));
		if (sc == BENIGN && t >= camp_at && t < camp_at + 45 * MIN)
			r *= 1 + 0.35 * fmin(1.0, (double)(t - camp_at) / (5.0 * MIN));
		if (sc == BENIGN && ((t >= T0 + 2 * DAY + 13 * HOUR && t < T0 + 2 * DAY + 13 * HOUR + 2 * MIN) ||
		                     (t >= T0 + 2 * DAY + 20 * HOUR && t < T0 + 2 * DAY + 20 * HOUR + 2 * MIN)))
			r *= 1.8;
		if (!cross && r >= R_SLO)
			cross = t;
		double req = r * (1 + 0.02 * rng_norm(&rg));
		double lat = fmin(latency_at(r), 5.0) * (1 + 0.04 * rng_norm(&rg));
		assert_int_equal(services_observe(d->s, 0, R_REQ, 1, NULL, t, req, NULL, &d->t, &d->n,
		                                  &d->cap), 0);
		assert_int_equal(services_observe(d->s, 0, 1u << ROLE_LATENCY, 2, NULL, t + 100, lat,
		                                  NULL, &d->t, &d->n, &d->cap), 0);
	}
	return cross;
}

/* The knee learnt from history, and the surge warned ahead of it. */
static void test_surge_crosses_knee(void **state)
{
	(void)state;
	struct drv d = { 0 };
	int64_t cross = run(&d, SURGE);
	assert_true(cross > 0);
	const struct knee *kn = &d.s->v[0].knee;
	print_message("knee load %.1f req/s (range %.1f-%.1f; true %.1f), %u points, highest %.1f\n",
	              kn->r_slo, kn->r_lo, kn->r_hi, R_SLO, kn->npts, kn->r_max);
	assert_true(kn->ok);
	const struct service_transition *w = drv_find(&d, "service:cart:OverloadRisk:warning", AEV_FIRING);
	assert_non_null(w);
	double lead = (double)(cross - w->ts_ms) / 60000.0;
	print_message("warned %.1f min before the load crossed %.1f req/s: %.400s\n", lead, R_SLO,
	              w->annotations_json);
	/* not before the surge started, and at least 10 minutes ahead */
	assert_true(w->ts_ms > T0 + 3 * DAY + 11 * HOUR);
	if (!(lead >= 10))
		fail_msg("lead %.1f min", lead);
	assert_non_null(strstr(w->annotations_json, "at the current growth of +"));
	assert_non_null(strstr(w->annotations_json, "p99 latency reaches the 1.00 s SLO in about"));
	assert_non_null(strstr(w->annotations_json, "\"latency_slo_requests_eta_s\":"));
	assert_non_null(strstr(w->annotations_json, "\"risk_latency_load\":"));
	/* the severity follows the time to the breach: critical before it */
	const struct service_transition *c =
		drv_find(&d, "service:cart:OverloadRisk:critical", AEV_FIRING);
	assert_non_null(c);
	assert_true(c->ts_ms < cross);
	drv_free(&d);
}

/* Nothing on the quiet days, and nothing on the benign day: an hour-long
 * bump far below the knee, a campaign's ramp to a plateau, bursts. */
static void test_benign_load_quiet(void **state)
{
	(void)state;
	for (int sc = QUIET; sc <= BENIGN; sc += BENIGN - QUIET) {
		struct drv d = { 0 };
		run(&d, (enum scenario)sc);
		for (size_t i = 0; i < d.n; i++)
			fail_msg("%s: %s %d at %.2f h: %s", sc == QUIET ? "quiet" : "benign", d.t[i].key,
			         (int)d.t[i].ev, (double)(d.t[i].ts_ms - T0) / 3600000.0,
			         d.t[i].annotations_json);
		assert_true(d.s->v[0].knee.ok);
		drv_free(&d);
	}
}

int main(void)
{
	gsl_set_error_handler_off(); /* as the daemon does (service.h) */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_surge_crosses_knee),
		cmocka_unit_test(test_benign_load_quiet),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
