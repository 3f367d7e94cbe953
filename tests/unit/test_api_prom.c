/* test_api_prom.c — the Prometheus query API (src/http/api_prom.c), driven
 * through api_handle() with hand-built requests against an in-memory engine
 * (no store, no HTTP): response shapes, staleness, steps, limits, virtual
 * families, label/metadata endpoints and the errors for unsupported PromQL,
 * and the forecast families (future only, on the query's grid).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/router.h"
#include "engine/engine.h"
#include "util/selfstats.h"

#define T0 1700000000000LL /* ms */

struct fixture {
	struct selfstats stats;
	struct engine *e;
	struct api_ctx api;
};

static void add(struct engine *e, const char *name, const char *k, const char *v, int64_t ts,
                double val)
{
	struct engine_batch b;
	engine_batch_begin(e, &b);
	struct label_ref refs[2] = { { "__name__", 8, name, strlen(name) },
		                     { k, k ? strlen(k) : 0, v, v ? strlen(v) : 0 } };
	char err[256];
	int rc = engine_batch_add(&b, refs, k ? 2 : 1, ts, val, err, sizeof err);
	engine_batch_end(&b);
	assert_int_equal(rc, 0);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	selfstats_init(&f->stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	char err[256];
	f->e = engine_new(&cfg, model_builtin_default(), NULL, &f->stats, err, sizeof err);
	assert_non_null(f->e);
	f->api.engine = f->e;
	f->api.stats = &f->stats;
	f->api.version = "1.2.3";
	atomic_store(&f->api.ready, 1);
	/* a gauge every 10 s for 100 s, a second series, and a counter */
	for (int i = 0; i < 10; i++) {
		add(f->e, "temp", "room", "a", T0 + i * 10000, 20 + i);
		add(f->e, "temp", "room", "b", T0 + i * 10000, 0.1);
		add(f->e, "reqs_total", "code", "200", T0 + i * 10000, 100.0 * i);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	engine_free(f->e);
	free(f);
	return 0;
}

/* GET path with "k=v" args (NULL-terminated); or POST form when body. */
static json_t *call(struct fixture *f, const char *method, const char *path, const char *body,
                    unsigned want_status, ...)
{
	struct api_arg args[16];
	size_t n = 0;
	va_list ap;
	va_start(ap, want_status);
	for (const char *k; (k = va_arg(ap, const char *)) != NULL && n < 16;)
		args[n++] = (struct api_arg){ k, va_arg(ap, const char *) };
	va_end(ap);
	char *b = body ? strdup(body) : NULL;
	struct api_request req = { .method = method, .path = path, .args = args, .nargs = n,
		                   .content_type = body ? "application/x-www-form-urlencoded" : NULL,
		                   .body = b, .body_len = body ? strlen(body) : 0,
		                   .now_ms = T0 + 95000 };
	struct api_response resp;
	memset(&resp, 0, sizeof resp);
	api_handle(&f->api, &req, &resp);
	free(b);
	if (resp.status != want_status)
		fail_msg("%s %s: status %u, want %u: %.*s", method, path, resp.status, want_status,
		         (int)resp.len, resp.body ? resp.body : "");
	json_error_t je;
	json_t *j = json_loadb(resp.body, resp.len, 0, &je);
	if (!j)
		fail_msg("%s %s: not JSON: %.*s", method, path, (int)resp.len, resp.body);
	free(resp.body);
	return j;
}

static void test_instant_vector(void **state)
{
	struct fixture *f = *state;
	json_t *j = call(f, "GET", "/api/v1/query", NULL, 200, "query", "temp{room=\"a\"}", "time",
	                 "1700000045", NULL);
	assert_string_equal(json_string_value(json_object_get(j, "status")), "success");
	json_t *d = json_object_get(j, "data");
	assert_string_equal(json_string_value(json_object_get(d, "resultType")), "vector");
	json_t *r = json_object_get(d, "result");
	assert_int_equal(json_array_size(r), 1);
	json_t *m = json_object_get(json_array_get(r, 0), "metric");
	assert_string_equal(json_string_value(json_object_get(m, "__name__")), "temp");
	assert_string_equal(json_string_value(json_object_get(m, "room")), "a");
	json_t *v = json_object_get(json_array_get(r, 0), "value");
	/* evaluation time, and the sample at 40 s (value 24) */
	assert_int_equal((long long)json_number_value(json_array_get(v, 0)), 1700000045);
	assert_string_equal(json_string_value(json_array_get(v, 1)), "24");
	json_decref(j);

	/* POST form, default time = now (T0+95s): latest sample 29; 0.1 stays "0.1" */
	j = call(f, "POST", "/api/v1/query", "query=temp&time=1700000095.5", 200, NULL);
	r = json_object_get(json_object_get(j, "data"), "result");
	assert_int_equal(json_array_size(r), 2);
	int seen = 0;
	for (size_t i = 0; i < 2; i++) {
		json_t *x = json_array_get(r, i);
		const char *room = json_string_value(json_object_get(json_object_get(x, "metric"), "room"));
		json_t *val = json_object_get(x, "value");
		assert_true(json_real_value(json_array_get(val, 0)) == 1700000095.5);
		const char *s = json_string_value(json_array_get(val, 1));
		if (!strcmp(room, "a"))
			assert_string_equal(s, "29"), seen |= 1;
		else
			assert_string_equal(s, "0.1"), seen |= 2;
	}
	assert_int_equal(seen, 3);
	json_decref(j);

	/* staleness: 5 minutes after the last sample (90 s) nothing is left */
	j = call(f, "GET", "/api/v1/query", NULL, 200, "query", "temp", "time", "1700000391", NULL);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "data"), "result")), 0);
	json_decref(j);
	j = call(f, "GET", "/api/v1/query", NULL, 200, "query", "temp", "time", "1700000389", NULL);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "data"), "result")), 2);
	json_decref(j);
	/* before the first sample: nothing */
	j = call(f, "GET", "/api/v1/query", NULL, 200, "query", "temp", "time", "1699999999", NULL);
	assert_int_equal(json_array_size(json_object_get(json_object_get(j, "data"), "result")), 0);
	json_decref(j);
}

static void test_range(void **state)
{
	struct fixture *f = *state;
	json_t *j = call(f, "GET", "/api/v1/query_range", NULL, 200, "query", "{__name__=\"temp\",room=~\"a\"}",
	                 "start", "1699999990", "end", "1700000030", "step", "5s", NULL);
	json_t *d = json_object_get(j, "data");
	assert_string_equal(json_string_value(json_object_get(d, "resultType")), "matrix");
	json_t *r = json_object_get(d, "result");
	assert_int_equal(json_array_size(r), 1);
	json_t *vals = json_object_get(json_array_get(r, 0), "values");
	/* steps -10,-5 have no sample yet; 0..30 every 5 s: 7 points */
	assert_int_equal(json_array_size(vals), 7);
	json_t *p = json_array_get(vals, 1); /* t=5 s: latest is the sample at 0 s */
	assert_int_equal((long long)json_number_value(json_array_get(p, 0)), 1700000005);
	assert_string_equal(json_string_value(json_array_get(p, 1)), "20");
	p = json_array_get(vals, 6);
	assert_string_equal(json_string_value(json_array_get(p, 1)), "23");
	json_decref(j);

	/* durations as Prometheus takes them */
	j = call(f, "GET", "/api/v1/query_range", NULL, 200, "query", "temp", "start", "1700000000",
	         "end", "1700000090", "step", "1m", NULL);
	r = json_object_get(json_object_get(j, "data"), "result");
	assert_int_equal(json_array_size(json_object_get(json_array_get(r, 0), "values")), 2);
	json_decref(j);

	/* 11,000 points per series at most */
	j = call(f, "GET", "/api/v1/query_range", NULL, 400, "query", "temp", "start", "0", "end",
	         "11001", "step", "1", NULL);
	assert_string_equal(json_string_value(json_object_get(j, "errorType")), "bad_data");
	assert_non_null(strstr(json_string_value(json_object_get(j, "error")), "11,000 points"));
	json_decref(j);
	j = call(f, "GET", "/api/v1/query_range", NULL, 200, "query", "temp", "start", "0", "end",
	         "11000", "step", "1", NULL);
	json_decref(j);
	j = call(f, "GET", "/api/v1/query_range", NULL, 400, "query", "temp", "start", "10", "end",
	         "0", "step", "1", NULL);
	json_decref(j);
	j = call(f, "GET", "/api/v1/query_range", NULL, 400, "query", "temp", "start", "0", "end",
	         "10", "step", "0", NULL);
	json_decref(j);
}

static void test_scalar_and_unsupported(void **state)
{
	struct fixture *f = *state;
	/* Grafana's "Save & test": 1+1 at time=4 */
	json_t *j = call(f, "POST", "/api/v1/query", "query=1%2B1&time=4", 200, NULL);
	json_t *d = json_object_get(j, "data");
	assert_string_equal(json_string_value(json_object_get(d, "resultType")), "scalar");
	json_t *r = json_object_get(d, "result");
	assert_int_equal((long long)json_number_value(json_array_get(r, 0)), 4);
	assert_string_equal(json_string_value(json_array_get(r, 1)), "2");
	json_decref(j);
	j = call(f, "GET", "/api/v1/query", NULL, 200, "query", "-2^2 * (3 - 1) / 8", NULL);
	r = json_object_get(json_object_get(j, "data"), "result");
	assert_string_equal(json_string_value(json_array_get(r, 1)), "-1");
	json_decref(j);

	static const char *const bad[] = { "rate(reqs_total[5m])", "reqs_total[5m]",
		                               "sum by (code) (reqs_total)", "temp offset 5m",
		                               "temp + 1", "temp @ 100", "-temp", "(temp)",
		                               "temp{room=\"a\"", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		j = call(f, "GET", "/api/v1/query", NULL, 400, "query", bad[i], NULL);
		assert_string_equal(json_string_value(json_object_get(j, "status")), "error");
		assert_string_equal(json_string_value(json_object_get(j, "errorType")), "bad_data");
		json_decref(j);
	}
	j = call(f, "GET", "/api/v1/query", NULL, 400, "query", "rate(reqs_total[5m])", NULL);
	assert_non_null(strstr(json_string_value(json_object_get(j, "error")),
	                       "unsupported PromQL: only series selectors are supported"));
	json_decref(j);
}

static void test_virtual(void **state)
{
	struct fixture *f = *state;
	json_t *j = call(f, "GET", "/api/v1/query", NULL, 200, "query",
	                 "foreshock_anomaly_score{series_name=\"temp\",room=\"a\"}", NULL);
	json_t *r = json_object_get(json_object_get(j, "data"), "result");
	assert_int_equal(json_array_size(r), 1);
	json_t *m = json_object_get(json_array_get(r, 0), "metric");
	assert_string_equal(json_string_value(json_object_get(m, "__name__")), "foreshock_anomaly_score");
	assert_string_equal(json_string_value(json_object_get(m, "series_name")), "temp");
	json_decref(j);
	/* raw counters have no detector: only their derived rate series is scored */
	j = call(f, "GET", "/api/v1/query", NULL, 200, "query", "foreshock_anomaly_score", NULL);
	r = json_object_get(json_object_get(j, "data"), "result");
	for (size_t i = 0; i < json_array_size(r); i++) {
		const char *sn = json_string_value(
			json_object_get(json_object_get(json_array_get(r, i), "metric"), "series_name"));
		assert_string_not_equal(sn, "reqs_total");
	}
	json_decref(j);
	j = call(f, "GET", "/api/v1/series", NULL, 200, "match[]",
	         "foreshock_expected_upper{series_name=~\"foreshock:rate:.*\"}", NULL);
	json_t *d = json_object_get(j, "data");
	assert_int_equal(json_array_size(d), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "series_name")),
	                    "foreshock:rate:reqs_total");
	json_decref(j);
}

static void test_labels_series_metadata(void **state)
{
	struct fixture *f = *state;
	json_t *j = call(f, "GET", "/api/v1/label/__name__/values", NULL, 200, NULL);
	json_t *d = json_object_get(j, "data");
	int temp = 0, rate = 0, score = 0;
	for (size_t i = 0; i < json_array_size(d); i++) {
		const char *s = json_string_value(json_array_get(d, i));
		temp |= !strcmp(s, "temp");
		rate |= !strcmp(s, "foreshock:rate:reqs_total");
		score |= !strcmp(s, "foreshock_anomaly_score");
		if (i)
			assert_true(strcmp(json_string_value(json_array_get(d, i - 1)), s) < 0);
	}
	assert_true(temp && rate && score);
	json_decref(j);
	j = call(f, "GET", "/api/v1/label/room/values", NULL, 200, "match[]", "temp", NULL);
	d = json_object_get(j, "data");
	assert_int_equal(json_array_size(d), 2);
	json_decref(j);
	j = call(f, "POST", "/api/v1/labels", "match%5B%5D=reqs_total", 200, NULL);
	d = json_object_get(j, "data");
	assert_int_equal(json_array_size(d), 2); /* __name__, code */
	json_decref(j);
	j = call(f, "GET", "/api/v1/label/1bad/values", NULL, 400, NULL);
	json_decref(j);

	/* series: start/end select series with samples in the window */
	j = call(f, "GET", "/api/v1/series", NULL, 200, "match[]", "temp", "start", "1700000000",
	         "end", "1700000100", NULL);
	assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
	json_decref(j);
	j = call(f, "GET", "/api/v1/series", NULL, 200, "match[]", "temp", "start", "1700000200",
	         NULL);
	assert_int_equal(json_array_size(json_object_get(j, "data")), 0);
	json_decref(j);

	j = call(f, "GET", "/api/v1/metadata", NULL, 200, NULL);
	d = json_object_get(j, "data");
	json_t *e = json_array_get(json_object_get(d, "reqs_total"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "type")), "counter");
	e = json_array_get(json_object_get(d, "temp"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "type")), "gauge");
	e = json_array_get(json_object_get(d, "foreshock:rate:reqs_total"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "type")), "gauge");
	json_decref(j);

	j = call(f, "GET", "/api/v1/status/buildinfo", NULL, 200, NULL);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "data"), "version")), "1.2.3");
	json_decref(j);
}

/* # TYPE on the text import decides the kind: a counter without a _total
 * suffix is rated, a gauge named *_total is not. */
static void test_type_metadata(void **state)
{
	struct fixture *f = *state;
	for (int i = 0; i < 3; i++) {
		char body[256];
		snprintf(body, sizeof body,
		         "# TYPE jobs_done counter\njobs_done %d %lld\n"
		         "# TYPE queue_total gauge\nqueue_total %d %lld\n",
		         10 * i, (long long)(T0 + 200000 + i * 10000), i, (long long)(T0 + 200000 + i * 10000));
		struct api_request req = { .method = "POST", .path = "/api/v1/import/prometheus",
			                   .content_type = "text/plain", .body = body,
			                   .body_len = strlen(body), .now_ms = T0 + 300000 };
		struct api_response resp;
		memset(&resp, 0, sizeof resp);
		api_handle(&f->api, &req, &resp);
		assert_int_equal(resp.status, 204);
		free(resp.body);
	}
	json_t *j = call(f, "GET", "/api/v1/series", NULL, 200, "match[]",
	                 "{__name__=~\"foreshock:rate:(jobs_done|queue_total)\"}", NULL);
	json_t *d = json_object_get(j, "data");
	assert_int_equal(json_array_size(d), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "__name__")),
	                    "foreshock:rate:jobs_done");
	json_decref(j);
	j = call(f, "GET", "/api/v1/metadata", NULL, 200, "metric", "queue_total", NULL);
	json_t *e = json_array_get(json_object_get(json_object_get(j, "data"), "queue_total"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "type")), "gauge");
	json_decref(j);
}

/* The forecast families: a series with an hourly wave, one sample a minute
 * for 10 hours (the forecaster is ready; the fixture's 10-sample series are
 * not, and the counter has no forecast). */
#define FC_N 600
#define FC_LAST (T0 + (FC_N - 1) * 60000LL)

static void add_wave(struct fixture *f)
{
	for (int i = 0; i < FC_N; i++)
		add(f->e, "load", "host", "x", T0 + i * 60000LL,
		    50 + 10 * sin(2 * M_PI * i / 60.0) + 0.5 * ((i * 7919) % 13 - 6) / 6.0);
}

/* GET path with one query and the given times (seconds relative to FC_LAST, as
 * "start","end","step" or "time"): the result array (borrowed from *j). */
static json_t *fc_query(struct fixture *f, json_t **j, const char *query, int range,
                        long a, long b, long step)
{
	char s1[32], s2[32], s3[32];
	snprintf(s1, sizeof s1, "%lld", (long long)(FC_LAST / 1000 + a));
	snprintf(s2, sizeof s2, "%lld", (long long)(FC_LAST / 1000 + b));
	snprintf(s3, sizeof s3, "%ld", step);
	if (range)
		*j = call(f, "GET", "/api/v1/query_range", NULL, 200, "query", query, "start", s1,
		          "end", s2, "step", s3, NULL);
	else
		*j = call(f, "GET", "/api/v1/query", NULL, 200, "query", query, "time", s1, NULL);
	json_t *d = json_object_get(*j, "data");
	assert_string_equal(json_string_value(json_object_get(d, "resultType")),
	                    range ? "matrix" : "vector");
	return json_object_get(d, "result");
}

static double pt_val(json_t *pt)
{
	return atof(json_string_value(json_array_get(pt, 1)));
}

static long long pt_ts(json_t *pt)
{
	return (long long)json_number_value(json_array_get(pt, 0));
}

static void test_forecast(void **state)
{
	struct fixture *f = *state;
	json_t *jv, *jl, *ju;
	/* forecasters on request (the default): "load" has none until a query
	 * asks for its forecast; that query makes one, which has not seen a
	 * sample yet, so it answers nothing */
	add(f->e, "load", "host", "x", T0 - 60000LL, 50);
	json_t *rv = fc_query(f, &jv, "foreshock_forecast_value{series_name=\"load\"}", 0, 300, 0, 0);
	assert_int_equal(json_array_size(rv), 0);
	json_decref(jv);
	add_wave(f);

	/* [last - 1h, last + 1h] every minute: the 60 grid points after the last
	 * sample, the band around the forecast */
	rv = fc_query(f, &jv, "foreshock_forecast_value{series_name=\"load\"}", 1, -3600, 3600, 60);
	json_t *rl = fc_query(f, &jl, "foreshock_forecast_lower{series_name=\"load\"}", 1, -3600,
	                      3600, 60);
	json_t *ru = fc_query(f, &ju, "foreshock_forecast_upper{series_name=\"load\"}", 1, -3600,
	                      3600, 60);
	assert_int_equal(json_array_size(rv), 1);
	assert_int_equal(json_array_size(rl), 1);
	assert_int_equal(json_array_size(ru), 1);
	json_t *m = json_object_get(json_array_get(rv, 0), "metric");
	assert_string_equal(json_string_value(json_object_get(m, "__name__")),
	                    "foreshock_forecast_value");
	assert_string_equal(json_string_value(json_object_get(m, "series_name")), "load");
	assert_string_equal(json_string_value(json_object_get(m, "host")), "x");
	json_t *v = json_object_get(json_array_get(rv, 0), "values");
	json_t *lo = json_object_get(json_array_get(rl, 0), "values");
	json_t *hi = json_object_get(json_array_get(ru, 0), "values");
	assert_int_equal(json_array_size(v), 60);
	assert_int_equal(json_array_size(lo), 60);
	assert_int_equal(json_array_size(hi), 60);
	for (size_t i = 0; i < 60; i++) {
		long long ts = pt_ts(json_array_get(v, i));
		assert_int_equal(ts, FC_LAST / 1000 + 60 * (long long)(i + 1)); /* on the grid */
		assert_int_equal(pt_ts(json_array_get(lo, i)), ts);
		assert_int_equal(pt_ts(json_array_get(hi, i)), ts);
		double x = pt_val(json_array_get(v, i));
		double l = pt_val(json_array_get(lo, i)), u = pt_val(json_array_get(hi, i));
		assert_true(l <= x && x <= u);
		assert_true(x > 30 && x < 70); /* the wave is 40..60 */
	}
	json_decref(jv);
	json_decref(jl);
	json_decref(ju);

	/* an off-grid start: points stay on the query's grid, 80% band inside 95% */
	rl = fc_query(f, &jl, "foreshock_forecast_lower80{series_name=\"load\"}", 1, -1, 119, 30);
	rv = fc_query(f, &jv, "foreshock_forecast_lower{series_name=\"load\"}", 1, -1, 119, 30);
	lo = json_object_get(json_array_get(rl, 0), "values");
	v = json_object_get(json_array_get(rv, 0), "values");
	assert_int_equal(json_array_size(lo), 4);
	assert_int_equal(pt_ts(json_array_get(lo, 0)), FC_LAST / 1000 + 29);
	for (size_t i = 0; i < 4; i++)
		assert_true(pt_val(json_array_get(v, i)) <= pt_val(json_array_get(lo, i)));
	json_decref(jl);
	json_decref(jv);

	/* instant: no forecast at or before the last sample, the forecast for T after it */
	rv = fc_query(f, &jv, "foreshock_forecast_value{series_name=\"load\"}", 0, -60, 0, 0);
	assert_int_equal(json_array_size(rv), 0);
	json_decref(jv);
	rv = fc_query(f, &jv, "foreshock_forecast_value{series_name=\"load\"}", 0, 0, 0, 0);
	assert_int_equal(json_array_size(rv), 0);
	json_decref(jv);
	rv = fc_query(f, &jv, "foreshock_forecast_upper{host=\"x\"}", 0, 300, 0, 0);
	assert_int_equal(json_array_size(rv), 1);
	json_t *val = json_object_get(json_array_get(rv, 0), "value");
	assert_int_equal(pt_ts(val), FC_LAST / 1000 + 300);
	assert_true(isfinite(pt_val(val)));
	json_decref(jv);

	/* the selector matches on series_name: other names, and the fixture's
	 * series (not ready) and counter (no forecaster), give nothing */
	rv = fc_query(f, &jv, "foreshock_forecast_value{series_name=\"temp\"}", 0, 300, 0, 0);
	assert_int_equal(json_array_size(rv), 0);
	json_decref(jv);
	rv = fc_query(f, &jv, "foreshock_forecast_value{series_name=~\"lo.d\"}", 0, 300, 0, 0);
	assert_int_equal(json_array_size(rv), 1);
	json_decref(jv);
	rv = fc_query(f, &jv, "foreshock_forecast_value", 1, -3600, 3600, 600);
	assert_int_equal(json_array_size(rv), 1);
	json_decref(jv);
	rv = fc_query(f, &jv, "{__name__=\"foreshock_forecast_value\",series_name=\"reqs_total\"}",
	              0, 300, 0, 0);
	assert_int_equal(json_array_size(rv), 0);
	json_decref(jv);

	/* the horizon: 7 days after the last sample, later times are clipped */
	rv = fc_query(f, &jv, "foreshock_forecast_value", 0, 8 * 86400, 0, 0);
	assert_int_equal(json_array_size(rv), 0);
	json_decref(jv);
	rv = fc_query(f, &jv, "foreshock_forecast_value", 1, 0, 10 * 86400, 3600);
	v = json_object_get(json_array_get(rv, 0), "values");
	assert_int_equal(json_array_size(v), 7 * 24);
	assert_int_equal(pt_ts(json_array_get(v, 7 * 24 - 1)), FC_LAST / 1000 + 7 * 86400);
	json_decref(jv);

	/* series, labels and metadata list them like the other virtual families;
	 * a window in the future selects the forecast views only */
	char s1[32], s2[32];
	snprintf(s1, sizeof s1, "%lld", (long long)(FC_LAST / 1000 + 3600));
	snprintf(s2, sizeof s2, "%lld", (long long)(FC_LAST / 1000 + 7200));
	json_t *j = call(f, "GET", "/api/v1/series", NULL, 200, "match[]",
	                 "foreshock_forecast_upper{series_name=\"load\"}", "match[]",
	                 "foreshock_expected_upper{series_name=\"load\"}", "start", s1, "end", s2,
	                 NULL);
	json_t *d = json_object_get(j, "data");
	assert_int_equal(json_array_size(d), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "__name__")),
	                    "foreshock_forecast_upper");
	assert_string_equal(json_string_value(json_object_get(json_array_get(d, 0), "series_name")),
	                    "load");
	json_decref(j);
	j = call(f, "GET", "/api/v1/label/__name__/values", NULL, 200, NULL);
	d = json_object_get(j, "data");
	int seen = 0;
	for (size_t i = 0; i < json_array_size(d); i++) {
		const char *n = json_string_value(json_array_get(d, i));
		seen |= !strcmp(n, "foreshock_forecast_value");
		seen |= !strcmp(n, "foreshock_forecast_lower") << 1;
		seen |= !strcmp(n, "foreshock_forecast_upper80") << 2;
	}
	assert_int_equal(seen, 7);
	json_decref(j);
	j = call(f, "GET", "/api/v1/labels", NULL, 200, "match[]", "foreshock_forecast_lower", NULL);
	d = json_object_get(j, "data");
	seen = 0;
	for (size_t i = 0; i < json_array_size(d); i++) {
		const char *n = json_string_value(json_array_get(d, i));
		seen |= !strcmp(n, "series_name");
		seen |= !strcmp(n, "host") << 1;
	}
	assert_int_equal(seen, 3);
	json_decref(j);
	j = call(f, "GET", "/api/v1/metadata", NULL, 200, "metric", "foreshock_forecast_lower", NULL);
	d = json_object_get(j, "data");
	assert_int_equal(json_object_size(d), 1);
	json_t *e = json_array_get(json_object_get(d, "foreshock_forecast_lower"), 0);
	assert_string_equal(json_string_value(json_object_get(e, "type")), "gauge");
	json_decref(j);
}

static void test_limits(void **state)
{
	struct fixture *f = *state;
	/* times far outside any history are refused rather than overflowing */
	json_t *j = call(f, "GET", "/api/v1/query_range", NULL, 400, "query", "temp", "start",
	                 "-9000000000000000", "end", "9000000000000000", "step", "1y", NULL);
	json_decref(j);
	/* a step longer than the range: one point */
	j = call(f, "GET", "/api/v1/query_range", NULL, 200, "query", "temp{room=\"a\"}", "start",
	         "1700000050", "end", "1700000060", "step", "100000000000", NULL);
	json_t *r = json_object_get(json_object_get(j, "data"), "result");
	assert_int_equal(json_array_size(json_object_get(json_array_get(r, 0), "values")), 1);
	json_decref(j);
	/* lookback_delta: 5 s after a 10-s sample interval leaves gaps */
	j = call(f, "GET", "/api/v1/query_range", NULL, 200, "query", "temp{room=\"a\"}", "start",
	         "1700000000", "end", "1700000009", "step", "1", "lookback_delta", "5s", NULL);
	r = json_object_get(json_object_get(j, "data"), "result");
	assert_int_equal(json_array_size(json_object_get(json_array_get(r, 0), "values")), 6);
	json_decref(j);
	j = call(f, "GET", "/api/v1/query", NULL, 400, "query", "temp", "lookback_delta", "-1s", NULL);
	json_decref(j);
	/* unknown endpoints under the API stay 404, wrong methods 405 */
	j = call(f, "GET", "/api/v1/targets", NULL, 404, NULL);
	json_decref(j);
	j = call(f, "POST", "/api/v1/metadata", "x=1", 405, NULL);
	json_decref(j);
}

/* Patterns RE2 (so Prometheus) refuses are refused with a 400, and so is
 * the 10 KB ".*.*...x" bomb that overflowed glibc regcomp()'s stack; RE2
 * syntax POSIX lacked (\d, (?i)) works. */
static void test_regex_guard(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = {
		"temp{room=~\"a++++++++++++++++++++++++\"}",
		"temp{room!~\"(a*)*+\"}",
		"temp{room=~\"(?=a)a\"}",
		"temp{room=~\"((a{1,100}){1,100})\"}",
		"temp{room=~'a{2}{3}'}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_t *j = call(f, "GET", "/api/v1/query", NULL, 400, "query", bad[i], NULL);
		json_decref(j);
		j = call(f, "GET", "/api/v1/series", NULL, 400, "match[]", bad[i], NULL);
		json_decref(j);
	}
	static const char *const good[] = {
		"temp{room=~\"a+?\"}", "temp{room=~\"[a-z]+\"}", "temp{room=~\"(a|b)+\"}",
		"temp{room=~\"a{1,3}\"}", "{__name__=~\"foreshock:.*\"}", "temp{room=~\"[+*]+\"}",
		"temp{room=~\"\\\\++\"}", "temp{room=\"a++\"}", "temp{room=~`[[:alpha:]]+`}",
		"{__name__=~\"((((((((((a+)+)+)+)+)+)+)+)+)+)\"}", "temp{room=~`\\d*`}",
		"temp{room=~\"(?i)A\"}",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		json_t *j = call(f, "GET", "/api/v1/query", NULL, 200, "query", good[i], NULL);
		json_decref(j);
	}
	size_t n = 5000;
	char *bomb = malloc(2 * n + 32);
	assert_non_null(bomb);
	char *w = bomb + sprintf(bomb, "{__name__=~\"");
	for (size_t i = 0; i < n; i++)
		w += sprintf(w, ".*");
	sprintf(w, "x\"}");
	json_t *j = call(f, "GET", "/api/v1/series", NULL, 400, "match[]", bomb, NULL);
	json_decref(j);
	j = call(f, "POST", "/api/v1/query", NULL, 400, "query", bomb, NULL);
	json_decref(j);
	free(bomb);
}

/* GET /metrics: its per-series lines (those with series_name=), sorted, one
 * string; *reused: foreshock_metrics_shards_reused. */
static char *metrics_series_lines(struct fixture *f, long *reused)
{
	struct api_request req = { .method = "GET", .path = "/metrics", .now_ms = T0 + 95000 };
	struct api_response resp;
	memset(&resp, 0, sizeof resp);
	api_handle(&f->api, &req, &resp);
	assert_int_equal(resp.status, 200);
	char *body = strndup(resp.body, resp.len);
	free(resp.body);
	char *lines[256];
	size_t n = 0, total = 0;
	*reused = -1;
	for (char *save = NULL, *l = strtok_r(body, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(l, "foreshock_metrics_shards_reused ", 32))
			*reused = atol(l + 32);
		if (strstr(l, "series_name=") && n < 256) {
			lines[n++] = l;
			total += strlen(l) + 1;
		}
	}
	for (size_t i = 1; i < n; i++) /* insertion sort: a few lines */
		for (size_t j = i; j > 0 && strcmp(lines[j - 1], lines[j]) > 0; j--) {
			char *t = lines[j];
			lines[j] = lines[j - 1];
			lines[j - 1] = t;
		}
	char *out = calloc(1, total + 1);
	for (size_t i = 0; i < n; i++) {
		strcat(out, lines[i]);
		strcat(out, "\n");
	}
	free(body);
	return out;
}

/* The same per-series lines with the cache as without, and a scrape after
 * nothing changed takes every shard from the cache; a sample rebuilds only
 * its shard. */
static void test_metrics_cache(void **state)
{
	struct fixture *f = *state;
	f->api.metrics_series_limit = 10000;
	long reused;
	char *plain = metrics_series_lines(f, &reused); /* no cache */
	assert_int_equal(reused, 0);
	assert_non_null(strstr(plain, "foreshock_anomaly_score{series_name=\"temp\",room=\"a\"}"));
	f->api.metrics_cache = metrics_cache_new();
	assert_non_null(f->api.metrics_cache);
	char *first = metrics_series_lines(f, &reused);
	assert_int_equal(reused, 0);
	assert_string_equal(first, plain);
	char *second = metrics_series_lines(f, &reused);
	assert_int_equal(reused, (long)engine_shard_count());
	assert_string_equal(second, plain);
	/* a new sample of one gauge: its shard is built again, with the new value */
	add(f->e, "temp", "room", "a", T0 + 100000, 1e6);
	char *third = metrics_series_lines(f, &reused);
	assert_int_equal(reused, (long)engine_shard_count() - 1);
	struct metrics_cache *mc = f->api.metrics_cache;
	f->api.metrics_cache = NULL;
	char *plain3 = metrics_series_lines(f, &reused);
	assert_string_equal(third, plain3);
	assert_string_not_equal(third, plain);
	/* alerting-only mode (more series than the limit): nothing listed, and
	 * the mode change rebuilds every shard */
	f->api.metrics_cache = mc;
	f->api.metrics_series_limit = 1;
	char *alerting = metrics_series_lines(f, &reused);
	assert_int_equal(reused, 0);
	f->api.metrics_cache = NULL;
	char *alerting_plain = metrics_series_lines(f, &reused);
	assert_string_equal(alerting, alerting_plain);
	metrics_cache_free(mc);
	free(plain);
	free(first);
	free(second);
	free(third);
	free(plain3);
	free(alerting);
	free(alerting_plain);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_instant_vector, setup, teardown),
		cmocka_unit_test_setup_teardown(test_range, setup, teardown),
		cmocka_unit_test_setup_teardown(test_scalar_and_unsupported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_virtual, setup, teardown),
		cmocka_unit_test_setup_teardown(test_labels_series_metadata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_metadata, setup, teardown),
		cmocka_unit_test_setup_teardown(test_forecast, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_regex_guard, setup, teardown),
		cmocka_unit_test_setup_teardown(test_metrics_cache, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
