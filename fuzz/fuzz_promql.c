/* fuzz_promql.c — the Prometheus query API (src/http/api_prom.c) on arbitrary
 * bytes: the input is split at the first two newlines into a query, a
 * match[] selector and a form-encoded POST body, and sent to /api/v1/query,
 * /api/v1/query_range, /api/v1/series, /api/v1/labels and a label-values path
 * of an engine holding a gauge, a counter and a histogram. Looks for crashes,
 * sanitizer reports and responses that are not JSON-shaped. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/router.h"
#include "engine/engine.h"
#include "util/selfstats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define T0 1700000000000LL

static void feed(struct engine *e, const char *name, const char *k, const char *v, int64_t ts,
                 double val)
{
	struct engine_batch b;
	engine_batch_begin(e, &b);
	struct label_ref refs[2] = { { "__name__", 8, name, strlen(name) },
		                     { k, strlen(k), v, strlen(v) } };
	char err[128];
	engine_batch_add(&b, refs, 2, ts, val, err, sizeof err);
	engine_batch_end(&b);
}

static struct engine *make_engine(struct selfstats *st)
{
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.history_points = 32;
	char err[128];
	struct engine *e = engine_new(&cfg, model_builtin_default(), NULL, st, err, sizeof err);
	if (!e)
		abort();
	static const char *const le[] = { "0.1", "1", "+Inf" };
	for (int i = 0; i < 40; i++) {
		int64_t t = T0 + i * 10000LL;
		feed(e, "temp", "room", i % 2 ? "a" : "b\"\n\\", t, 20 + i % 7);
		feed(e, "reqs_total", "code", "200", t, 10.0 * i);
		for (int k = 0; k < 3; k++)
			feed(e, "lat_bucket", "le", le[k], t, (double)(i * (k + 1)));
	}
	return e;
}

static void call(struct api_ctx *api, const char *method, const char *path,
                 const struct api_arg *args, size_t nargs, char *body)
{
	struct api_request req = { .method = method, .path = path, .args = args, .nargs = nargs,
		                   .content_type = body ? "application/x-www-form-urlencoded" : NULL,
		                   .body = body, .body_len = body ? strlen(body) : 0,
		                   .now_ms = T0 + 200000 };
	struct api_response resp;
	memset(&resp, 0, sizeof resp);
	api_handle(api, &req, &resp);
	if (!resp.status || (resp.body && resp.len && resp.body[0] != '{'))
		abort();
	free(resp.body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct selfstats st;
	static struct engine *e;
	static struct api_ctx api;
	if (!e) {
		selfstats_init(&st);
		e = make_engine(&st);
		api.engine = e;
		api.stats = &st;
		api.version = "fuzz";
		atomic_store(&api.ready, 1);
	}
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	char *q = s, *m = "", *body = NULL;
	char *nl = strchr(s, '\n');
	if (nl) {
		*nl = 0;
		m = nl + 1;
		char *nl2 = strchr(m, '\n');
		if (nl2) {
			*nl2 = 0;
			body = nl2 + 1;
		}
	}
	struct api_arg a[5] = { { "query", q }, { "start", "1700000000" }, { "end", "1700000400" },
		                { "step", "7" }, { "match[]", m } };
	call(&api, "GET", "/api/v1/query", a, 1, NULL);
	call(&api, "GET", "/api/v1/query_range", a, 4, NULL);
	struct api_arg t[2] = { { "query", q }, { "time", m } };
	call(&api, "GET", "/api/v1/query", t, 2, NULL);
	call(&api, "GET", "/api/v1/series", a + 4, 1, NULL);
	call(&api, "GET", "/api/v1/labels", a + 4, 1, NULL);
	char path[600];
	snprintf(path, sizeof path, "/api/v1/label/%.500s/values", q);
	call(&api, "GET", path, a + 4, 1, NULL);
	call(&api, "GET", "/api/v1/label/room/values", a + 4, 1, NULL);
	if (body) {
		char *b1 = strdup(body);
		if (b1) {
			call(&api, "POST", "/api/v1/query_range", NULL, 0, b1);
			free(b1);
		}
		call(&api, "POST", "/api/v1/labels", NULL, 0, body);
	}
	call(&api, "GET", "/api/v1/metadata", NULL, 0, NULL);
	free(s);
	return 0;
}
