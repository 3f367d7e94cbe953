/* test_api.c — the JSON API handlers (src/http/) driven directly through
 * api_handle(), no network: one table of requests (method, path, query,
 * content type, body) with the status and a piece of the body each must
 * answer, run in order against an engine with a store in a temporary
 * directory (writes first, then the reads that see them). Also: writes are
 * refused with 503 and Retry-After until the restore is done, 405 names the
 * allowed methods, and every route is counted under its own name in
 * /metrics (route="services" included).
 */
#include "config.h" /* _GNU_SOURCE: memmem */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "http/api.h"
#include "http/route.h"
#include "http/router.h"
#include "store/store.h"
#include "util/selfstats.h"

#define T0 1700000000LL /* s */

struct fixture {
	char dir[64], db[128];
	struct selfstats stats;
	struct store *store;
	struct engine *e;
	struct api_ctx api;
};

struct call {
	const char *method, *path;
	const char *query;        /* "k=v&k=v" (no URL encoding needed here) or NULL */
	const char *ctype, *body; /* NULL: none */
	unsigned status;
	const char *want;         /* a piece of the body; NULL: nothing to check */
};

/* Run one call; returns the response (body owned by the caller). */
static struct api_response run(struct fixture *f, const struct call *c)
{
	struct api_arg args[16];
	size_t n = 0;
	char q[512] = "";
	if (c->query)
		snprintf(q, sizeof q, "%s", c->query);
	for (char *save = NULL, *kv = strtok_r(q, "&", &save); kv && n < 16;
	     kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '=');
		if (eq)
			*eq = '\0';
		args[n++] = (struct api_arg){ kv, eq ? eq + 1 : "" };
	}
	char *body = c->body ? strdup(c->body) : NULL;
	struct api_request req = { .method = c->method,
		                   .path = c->path,
		                   .args = args,
		                   .nargs = n,
		                   .content_type = c->ctype,
		                   .body = body,
		                   .body_len = body ? strlen(body) : 0,
		                   .now_ms = (T0 + 600) * 1000 };
	struct api_response resp;
	memset(&resp, 0, sizeof resp);
	api_handle(&f->api, &req, &resp);
	selfstats_observe_request(&f->stats, api_route(c->path), resp.status, 1);
	free(body);
	return resp;
}

static void check(struct fixture *f, const struct call *c)
{
	struct api_response r = run(f, c);
	const char *b = r.body ? r.body : "";
	if (r.status != c->status)
		fail_msg("%s %s?%s: status %u, want %u: %.*s", c->method, c->path,
		         c->query ? c->query : "", r.status, c->status, (int)r.len, b);
	if (c->want && !memmem(b, r.len, c->want, strlen(c->want)))
		fail_msg("%s %s?%s: body has no '%s': %.*s", c->method, c->path,
		         c->query ? c->query : "", c->want, (int)(r.len > 2000 ? 2000 : r.len), b);
	free(r.body);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/fs-api-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof f->db, "%s/f.db", f->dir);
	char err[256];
	f->store = store_open(f->db, err, sizeof err);
	assert_non_null(f->store);
	selfstats_init(&f->stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	/* the table's samples run past the requests' synthetic clock (T0 + 600 s):
	 * no window around it (docs/security.md) */
	cfg.max_sample_future_ms = 0;
	f->e = engine_new(&cfg, model_builtin_default(), f->store, &f->stats, err, sizeof err);
	assert_non_null(f->e);
	f->api.engine = f->e;
	f->api.store = f->store;
	f->api.stats = &f->stats;
	f->api.max_body = 1 << 20;
	f->api.lp_limits = (struct lp_limits)LP_LIMITS_DEFAULT;
	f->api.metrics_series_limit = 1000;
	f->api.version = "9.9.9";
	atomic_store(&f->api.ready, 1);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	engine_free(f->e);
	store_close(f->store);
	char p[160];
	const char *side[] = { "", "-wal", "-shm" };
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", f->db, side[i]);
		unlink(p);
	}
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Before the restore: writes 503 with Retry-After, reads answer. */
static void test_not_ready(void **state)
{
	struct fixture *f = *state;
	atomic_store(&f->api.ready, 0);
	static const struct call calls[] = {
		{ "POST", "/write", NULL, "text/plain", "m v=1 1700000000000000000", 503,
		  "not ready" },
		{ "POST", "/api/v1/import", NULL, "application/json", "{\"series\":[]}", 503,
		  "unavailable" },
		{ "GET", "/readyz", NULL, NULL, NULL, 503, "restoring" },
		{ "GET", "/healthz", NULL, NULL, NULL, 200, "ok" },
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
		check(f, &calls[i]);
	struct api_response r = run(f, &calls[0]);
	int retry = 0;
	for (size_t i = 0; i < r.nheaders; i++)
		retry |= !strcmp(r.headers[i].name, "Retry-After") && !strcmp(r.headers[i].value, "1");
	free(r.body);
	assert_true(retry);
	atomic_store(&f->api.ready, 1);
}

/* The table: writes, then reads of what they wrote, then errors. */
static void test_table(void **state)
{
	struct fixture *f = *state;
	static char lp[32768];
	char *p = lp;
	/* a steady gauge every 10 s for 50 min, then a jump that fires an alert */
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "latency,job=api value=%d %lld\n", 100 + i % 3, (T0 + i * 10) * 1LL);
	for (int i = 300; i < 330; i++)
		p += sprintf(p, "latency,job=api value=%d %lld\n", 900 + i % 3, (T0 + i * 10) * 1LL);
	const struct call calls[] = {
		/* ingest */
		{ "POST", "/write", "precision=s", "text/plain", lp, 204, NULL },
		{ "POST", "/api/v2/write", "precision=s", "text/plain", "temp,room=a value=21 1700000000",
		  204, NULL },
		{ "POST", "/write", "precision=s", "text/plain", "bad line", 400, "\"line\":1,\"error\":\"missing '='" },
		{ "POST", "/write", "precision=s", "text/plain",
		  "temp,room=b value=1 1700000000\ntemp,room=b value=2 1699999990", 204, NULL },
		{ "POST", "/api/v1/import", NULL, "application/json",
		  "{\"series\":[{\"labels\":{\"__name__\":\"jobs\",\"q\":\"x\"},"
		  "\"samples\":[[1700000000000,1],[1700000010000,2]]}]}",
		  204, NULL },
		{ "POST", "/api/v1/import", NULL, "application/json", "{\"series\":[{}", 400,
		  "bad_data" },
		{ "POST", "/api/v1/import/prometheus", NULL, "text/plain",
		  "# TYPE reqs_total counter\nreqs_total{code=\"200\"} 5 1700000000000\n", 204, NULL },
		{ "POST", "/api/v1/write", NULL, "application/x-protobuf", "not snappy", 400, NULL },
		/* reads */
		{ "GET", "/api/v1/alerts", NULL, NULL, NULL, 200, "\"alertname\":\"ForeshockAnomaly\"" },
		{ "GET", "/api/v1/alerts", NULL, NULL, NULL, 200, "latency{job=\\\"api\\\"}" },
		{ "GET", "/api/v1/alerts/history", NULL, NULL, NULL, 200, "\"events\":[" },
		{ "GET", "/api/v1/anomalies", "series=latency&start=0&end=9999999999", NULL, NULL, 200,
		  "\"points\":[" },
		{ "GET", "/api/v1/anomalies", "series=latency{&start=0", NULL, NULL, 400, "bad_data" },
		{ "GET", "/api/v1/anomalies", "series=latency&start=yesterday", NULL, NULL, 400,
		  "'start'" },
		{ "GET", "/api/v1/series", "match[]=temp", NULL, NULL, 200, "\"room\":\"b\"" },
		{ "GET", "/api/v1/forecast", "series=latency", NULL, NULL, 200, "\"status\":\"success\"" },
		{ "GET", "/api/v1/forecast", NULL, NULL, NULL, 400, "bad_data" },
		{ "GET", "/api/v1/services", NULL, NULL, NULL, 200, "[]" },
		{ "GET", "/metrics", NULL, NULL, NULL, 200, "foreshock_samples_accepted_total" },
		{ "GET", "/metrics", NULL, NULL, NULL, 200, "foreshock_anomaly_score{" },
		{ "GET", "/healthz", NULL, NULL, NULL, 200, "ok" },
		{ "GET", "/readyz", NULL, NULL, NULL, 200, "ready" },
		{ "GET", "/ping", NULL, NULL, NULL, 204, NULL },
		{ "HEAD", "/healthz", NULL, NULL, NULL, 200, NULL },
		{ "GET", "/", NULL, NULL, NULL, 200, "<html" },
		/* errors */
		{ "GET", "/nope", NULL, NULL, NULL, 404, "unknown path '/nope'" },
		{ "GET", "/write", NULL, NULL, NULL, 405, "method 'GET' not allowed for '/write'" },
		{ "DELETE", "/api/v1/alerts", NULL, NULL, NULL, 405, "(use GET)" },
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
		check(f, &calls[i]);
	/* every route counted under its own name, /api/v1/services included */
	const struct call metrics = { "GET", "/metrics", NULL, NULL, NULL, 200, NULL };
	struct api_response r = run(f, &metrics);
	static const char *const routes[] = { "write", "import", "remote_write",
		                              "import_prometheus", "alerts", "series",
		                              "anomalies", "metrics", "health", "forecast",
		                              "services", "ui", "other" };
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		char want[64];
		snprintf(want, sizeof want, "route=\"%s\"", routes[i]);
		if (!memmem(r.body, r.len, want, strlen(want)))
			fail_msg("/metrics has no %s", want);
	}
	free(r.body);
	assert_int_equal(api_route("/api/v1/services"), ROUTE_SERVICES);
	assert_string_equal(http_route_name(ROUTE_SERVICES), "services");
	assert_string_equal(http_route_name(ROUTE__COUNT), "other");
}

/* Line-protocol names become Prometheus names: '_' for each byte not
 * allowed, '_' before a leading digit of a measurement or tag key, ':'
 * kept in metric names only; names of up to 16 bytes and longer, inside a
 * body and at its very end (the handler copies short valid names 16 bytes
 * at a time where 16 bytes can be read). */
static void test_write_names(void **state)
{
	struct fixture *f = *state;
	char lp[1024];
	snprintf(lp, sizeof lp,
	         "cpu-load,data.center=eu-1,host=h1 usage.idle=1,usage_user=2,0field=3,value=4,"
	         "abcdefghijklmnop=5,abcdefghijklmnopq=6,x:y=7,t\\ x=8 %lld\n"
	         "9lives,1tag=a,abcdefghijklmnop=b value=1 %lld\n"
	         "m,k:k=v f=1,g=2 %lld",
	         T0, T0, T0);
	const struct call calls[] = {
		{ "POST", "/write", "precision=s", "text/plain", lp, 204, NULL },
		{ "GET", "/api/v1/series", "match[]=cpu_load_usage_idle", NULL, NULL, 200,
		  "\"data_center\":\"eu-1\"" },
		{ "GET", "/api/v1/series", "match[]=cpu_load_usage_user", NULL, NULL, 200,
		  "\"host\":\"h1\"" },
		{ "GET", "/api/v1/series", "match[]=cpu_load_0field", NULL, NULL, 200, "\"h1\"" },
		{ "GET", "/api/v1/series", "match[]=cpu_load", NULL, NULL, 200, "\"h1\"" },
		{ "GET", "/api/v1/series", "match[]=cpu_load_abcdefghijklmnop", NULL, NULL, 200,
		  "\"h1\"" },
		{ "GET", "/api/v1/series", "match[]=cpu_load_abcdefghijklmnopq", NULL, NULL, 200,
		  "\"h1\"" },
		{ "GET", "/api/v1/series", "match[]=cpu_load_x:y", NULL, NULL, 200, "\"h1\"" },
		{ "GET", "/api/v1/series", "match[]=cpu_load_t_x", NULL, NULL, 200, "\"h1\"" },
		{ "GET", "/api/v1/series", "match[]=_9lives", NULL, NULL, 200,
		  "\"_1tag\":\"a\"" },
		{ "GET", "/api/v1/series", "match[]=_9lives", NULL, NULL, 200,
		  "\"abcdefghijklmnop\":\"b\"" },
		{ "GET", "/api/v1/series", "match[]=m_g", NULL, NULL, 200, "\"k_k\":\"v\"" },
		{ "GET", "/api/v1/series", "match[]=m_f", NULL, NULL, 200, "\"k_k\":\"v\"" },
	};
	for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
		check(f, &calls[i]);
}

int main(void)
{
	gsl_set_error_handler_off(); /* as the daemon does */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_not_ready, setup, teardown),
		cmocka_unit_test_setup_teardown(test_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_names, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
