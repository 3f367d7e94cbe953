/* api.c — routing and the read-side JSON API: alerts, alert history, series,
 * anomalies, health and readiness; plus the output buffer and the response
 * helpers shared by api_ingest.c and api_metrics.c. See docs/api.md.
 */
#include "api.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "api_prom.h"
#include "engine.h"
#include "selector.h"
#include "store.h"
#include "timefmt.h"

const char *api_format_value(double v, char *buf, size_t len)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return buf;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return buf;
	}
	for (int p = 0; p <= 16; p++) {
		snprintf(buf, len, "%.*e", p, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

/* ------------------------------------------------------------------------ */
/* responses */

void api_send(struct api_response *resp, unsigned status, const char *content_type,
              struct obuf *b)
{
	if (b->failed) {
		obuf_free(b);
		api_error(resp, 500, "internal", "response too large or out of memory");
		return;
	}
	free(resp->body);
	resp->status = status;
	resp->content_type = content_type;
	resp->body = obuf_steal(b, &resp->len);
}

void api_error(struct api_response *resp, unsigned status, const char *type, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, "{\"status\":\"error\",\"errorType\":");
	obuf_json_str(&b, type, strlen(type));
	obuf_puts(&b, ",\"error\":");
	obuf_json_str(&b, msg, strlen(msg));
	obuf_puts(&b, "}\n");
	free(resp->body);
	resp->status = status;
	resp->content_type = "application/json";
	resp->body = b.failed ? NULL : obuf_steal(&b, &resp->len);
	if (!resp->body)
		resp->len = 0;
	obuf_free(&b);
}

void api_add_header(struct api_response *resp, const char *name, const char *fmt, ...)
{
	if (resp->nheaders >= API_MAX_HEADERS)
		return;
	resp->headers[resp->nheaders].name = name;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(resp->headers[resp->nheaders].value, sizeof resp->headers[0].value, fmt, ap);
	va_end(ap);
	resp->nheaders++;
}

static void send_text(struct api_response *resp, unsigned status, const char *text)
{
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, text);
	api_send(resp, status, "text/plain; charset=utf-8", &b);
}

const char *api_arg(const struct api_request *req, const char *key)
{
	for (size_t i = 0; i < req->nargs; i++)
		if (!strcmp(req->args[i].key, key))
			return req->args[i].value;
	return NULL;
}

/* Optional time parameter: 0 if absent (*ms untouched), 1 if set, -1 (and
 * a 400 in resp) if invalid. */
int api_time_arg(const struct api_request *req, const char *key, int64_t *ms,
                 struct api_response *resp)
{
	const char *v = api_arg(req, key);
	if (!v || !*v)
		return 0;
	if (time_parse_param_ms(v, ms)) {
		api_error(resp, 400, "bad_data",
		          "invalid parameter '%s': cannot parse '%.64s' as RFC 3339 or epoch seconds",
		          key, v);
		return -1;
	}
	return 1;
}

/* Parse every argument named key (and alt, if not NULL) as a selector.
 * Returns the count (sel[] filled, caller frees) or -1 with a 400 in resp. */
long api_parse_selectors(const struct api_request *req, const char *key, const char *alt,
                         struct selector **out, struct api_response *resp)
{
	size_t n = 0;
	for (size_t i = 0; i < req->nargs; i++)
		if (!strcmp(req->args[i].key, key) || (alt && !strcmp(req->args[i].key, alt)))
			n++;
	*out = NULL;
	if (n == 0)
		return 0;
	struct selector *sel = calloc(n, sizeof *sel);
	if (!sel) {
		api_error(resp, 500, "internal", "out of memory");
		return -1;
	}
	size_t k = 0;
	for (size_t i = 0; i < req->nargs; i++) {
		if (strcmp(req->args[i].key, key) && (!alt || strcmp(req->args[i].key, alt)))
			continue;
		char err[256];
		if (selector_parse(&sel[k], req->args[i].value, err, sizeof err)) {
			api_error(resp, 400, "bad_data", "invalid parameter '%s': %s", req->args[i].key,
			          err);
			for (size_t j = 0; j < k; j++)
				selector_free(&sel[j]);
			free(sel);
			return -1;
		}
		k++;
	}
	*out = sel;
	return (long)n;
}

void api_free_selectors(struct selector *sel, long n)
{
	for (long i = 0; i < n; i++)
		selector_free(&sel[i]);
	free(sel);
}

void api_json_labels(struct obuf *b, const struct labels *l)
{
	obuf_add(b, "{", 1);
	for (size_t i = 0; i < l->n; i++) {
		if (i)
			obuf_add(b, ",", 1);
		obuf_json_str(b, l->names[i], strlen(l->names[i]));
		obuf_add(b, ":", 1);
		obuf_json_str(b, l->values[i], strlen(l->values[i]));
	}
	obuf_add(b, "}", 1);
}

/* Embed a JSON object given as text (from the store); "{}" if it isn't one. */
static void json_embed_object(struct obuf *b, const char *text)
{
	if (text) {
		json_error_t e;
		json_t *v = json_loads(text, 0, &e);
		int ok = json_is_object(v);
		json_decref(v);
		if (ok) {
			obuf_puts(b, text);
			return;
		}
	}
	obuf_add(b, "{}", 2);
}

/* ------------------------------------------------------------------------ */
/* GET /api/v1/alerts, /api/v1/alerts/history */

struct alerts_ctx {
	struct obuf *b;
	size_t n;
	const char *only_state; /* NULL = all the scan returns */
	int history;
};

static int alert_cb(void *vctx, const struct alert_rec *r)
{
	struct alerts_ctx *c = vctx;
	const char *state = r->state ? r->state : "";
	if (c->only_state && strcmp(c->only_state, state))
		return 0;
	struct obuf *b = c->b;
	char v[40];
	obuf_puts(b, c->n++ ? ",{" : "{");
	obuf_puts(b, "\"labels\":");
	json_embed_object(b, r->labels_json);
	obuf_puts(b, ",\"annotations\":");
	json_embed_object(b, r->annotations_json);
	obuf_puts(b, ",\"state\":");
	obuf_json_str(b, state, strlen(state));
	if (c->history) {
		obuf_puts(b, ",\"at\":");
		obuf_json_time(b, r->event_at_ms);
	}
	if (r->active_at_ms) {
		obuf_puts(b, ",\"activeAt\":");
		obuf_json_time(b, r->active_at_ms);
	}
	if (r->firing_at_ms) {
		obuf_puts(b, ",\"firingAt\":");
		obuf_json_time(b, r->firing_at_ms);
	}
	if (r->resolved_at_ms) {
		obuf_puts(b, ",\"resolvedAt\":");
		obuf_json_time(b, r->resolved_at_ms);
	}
	if (!c->history && r->event_at_ms) {
		obuf_puts(b, ",\"lastEventAt\":");
		obuf_json_time(b, r->event_at_ms);
	}
	api_format_value(r->value, v, sizeof v);
	obuf_puts(b, ",\"value\":");
	obuf_json_str(b, v, strlen(v));
	obuf_puts(b, ",\"score\":");
	obuf_json_num(b, r->score, 0);
	obuf_puts(b, ",\"series\":");
	obuf_json_str(b, r->series_key ? r->series_key : "",
	              r->series_key ? strlen(r->series_key) : 0);
	obuf_printf(b, ",\"id\":%lld}", (long long)r->id);
	return b->failed ? 1 : 0;
}

static void handle_alerts(struct api_ctx *api, const struct api_request *req,
                          struct api_response *resp)
{
	const char *state = api_arg(req, "state");
	struct alerts_ctx c = { 0 };
	int include_ended = 0;
	if (!state || !*state || !strcmp(state, "active")) {
		/* pending and firing: the store's default scan */
	} else if (!strcmp(state, "all")) {
		include_ended = 1;
	} else if (!strcmp(state, "pending") || !strcmp(state, "firing")) {
		c.only_state = state;
	} else if (!strcmp(state, "resolved") || !strcmp(state, "cancelled")) {
		c.only_state = state;
		include_ended = 1;
	} else {
		api_error(resp, 400, "bad_data",
		          "invalid parameter 'state': '%.32s' (use active, all, pending, firing, "
		          "resolved or cancelled)",
		          state);
		return;
	}
	int64_t since = INT64_MIN;
	if (api_time_arg(req, "since", &since, resp) < 0)
		return;
	if (!api->store) {
		api_error(resp, 503, "unavailable", "no alert store");
		return;
	}
	struct obuf b;
	obuf_init(&b, 0);
	c.b = &b;
	obuf_puts(&b, "{\"status\":\"success\",\"data\":{\"alerts\":[");
	int rc = store_alerts_scan(api->store, include_ended, since, alert_cb, &c);
	if (rc < 0) {
		obuf_free(&b);
		api_error(resp, 500, "internal", "cannot read alerts from the store");
		return;
	}
	obuf_puts(&b, "]}}\n");
	api_send(resp, 200, "application/json", &b);
}

static void handle_alert_history(struct api_ctx *api, const struct api_request *req,
                                 struct api_response *resp)
{
	const char *series = api_arg(req, "series");
	int64_t start = INT64_MIN, end = INT64_MAX;
	if (api_time_arg(req, "start", &start, resp) < 0 || api_time_arg(req, "end", &end, resp) < 0)
		return;
	if (start > end) {
		api_error(resp, 400, "bad_data", "invalid parameters: 'end' is before 'start'");
		return;
	}
	size_t limit = 1000;
	const char *ls = api_arg(req, "limit");
	if (ls && *ls) {
		char *endp;
		unsigned long long v = strtoull(ls, &endp, 10);
		if (*endp || ls[0] == '-' || v > 100000) {
			api_error(resp, 400, "bad_data",
			          "invalid parameter 'limit': '%.32s' (0..100000, 0 = no limit)", ls);
			return;
		}
		limit = (size_t)v;
	}
	if (!api->store) {
		api_error(resp, 503, "unavailable", "no alert store");
		return;
	}
	struct obuf b;
	obuf_init(&b, 0);
	struct alerts_ctx c = { .b = &b, .history = 1 };
	obuf_puts(&b, "{\"status\":\"success\",\"data\":{\"events\":[");
	int rc = store_alert_history(api->store, series && *series ? series : NULL, start, end,
	                             limit, alert_cb, &c);
	if (rc < 0) {
		obuf_free(&b);
		api_error(resp, 500, "internal", "cannot read alert history from the store");
		return;
	}
	obuf_puts(&b, "]}}\n");
	api_send(resp, 200, "application/json", &b);
}

/* ------------------------------------------------------------------------ */
/* GET /api/v1/anomalies */

#define DEFAULT_WINDOW_MS (3600 * 1000LL)

struct anom_ctx {
	struct obuf *b;
	size_t n;
	int per_series_window;  /* no start/end given: last hour of each series */
	int with_points;
};

static const char *dir_name(int d)
{
	return d > 0 ? "up" : d < 0 ? "down" : "none";
}

static int anom_cb(void *vctx, const struct series_info *s, const struct history_point *pts,
                   size_t n)
{
	struct anom_ctx *c = vctx;
	struct obuf *b = c->b;
	obuf_puts(b, c->n++ ? ",{\"labels\":" : "{\"labels\":");
	api_json_labels(b, s->labels);
	obuf_puts(b, ",\"series\":");
	obuf_json_str(b, s->key, strlen(s->key));
	obuf_printf(b, ",\"samples\":%llu", (unsigned long long)s->samples);
	obuf_puts(b, ",\"state\":");
	const char *st = alert_state_name((enum alert_state)s->alert_state);
	st = st ? st : "inactive";
	obuf_json_str(b, st, strlen(st));
	if (s->samples) {
		obuf_puts(b, ",\"last\":{\"t\":");
		obuf_json_time(b, s->last_ts_ms);
		obuf_puts(b, ",\"value\":");
		obuf_json_num(b, s->last_value, 0);
		obuf_puts(b, ",\"score\":");
		obuf_json_num(b, s->last.score, 0);
		obuf_puts(b, ",\"expected\":");
		obuf_json_num(b, s->last.expected, 0);
		obuf_puts(b, ",\"lower\":");
		obuf_json_num(b, s->last.lower, 0);
		obuf_puts(b, ",\"upper\":");
		obuf_json_num(b, s->last.upper, 0);
		obuf_puts(b, ",\"direction\":\"");
		obuf_puts(b, dir_name(s->last.direction));
		obuf_puts(b, "\",\"component\":");
		if (s->last.component)
			obuf_json_str(b, s->last.component, strlen(s->last.component));
		else
			obuf_puts(b, "null");
		obuf_add(b, "}", 1);
	}
	if (c->with_points) {
		int64_t from = INT64_MIN;
		if (c->per_series_window && s->last_ts_ms > INT64_MIN + DEFAULT_WINDOW_MS)
			from = s->last_ts_ms - DEFAULT_WINDOW_MS;
		obuf_puts(b, ",\"points\":[");
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			const struct history_point *p = &pts[i];
			if (p->ts_ms < from)
				continue;
			obuf_puts(b, k++ ? ",{\"t\":" : "{\"t\":");
			obuf_json_time(b, p->ts_ms);
			obuf_puts(b, ",\"value\":");
			obuf_json_num(b, p->value, 1);
			obuf_puts(b, ",\"score\":");
			obuf_json_num(b, p->score, 1);
			obuf_puts(b, ",\"expected\":");
			obuf_json_num(b, p->expected, 1);
			obuf_puts(b, ",\"lower\":");
			obuf_json_num(b, p->lower, 1);
			obuf_puts(b, ",\"upper\":");
			obuf_json_num(b, p->upper, 1);
			obuf_puts(b, ",\"direction\":\"");
			obuf_puts(b, dir_name(p->direction));
			obuf_puts(b, "\",\"component\":");
			if (p->component)
				obuf_json_str(b, p->component, strlen(p->component));
			else
				obuf_puts(b, "null");
			obuf_add(b, "}", 1);
		}
		obuf_add(b, "]", 1);
	}
	obuf_add(b, "}", 1);
	return b->failed;
}

static void handle_anomalies(struct api_ctx *api, const struct api_request *req,
                             struct api_response *resp)
{
	int64_t start = INT64_MIN, end = INT64_MAX;
	int has_start = api_time_arg(req, "start", &start, resp);
	if (has_start < 0)
		return;
	int has_end = api_time_arg(req, "end", &end, resp);
	if (has_end < 0)
		return;
	if (!has_start && has_end)
		start = end - DEFAULT_WINDOW_MS;
	if (start > end) {
		api_error(resp, 400, "bad_data", "invalid parameters: 'end' is before 'start'");
		return;
	}
	struct anom_ctx c = { .per_series_window = !has_start && !has_end, .with_points = 1 };
	const char *pts = api_arg(req, "points");
	if (pts && (!strcmp(pts, "0") || !strcmp(pts, "false")))
		c.with_points = 0;
	struct selector *sel;
	long nsel = api_parse_selectors(req, "series", "match[]", &sel, resp);
	if (nsel < 0)
		return;
	struct obuf b;
	obuf_init(&b, 0);
	c.b = &b;
	obuf_puts(&b, "{\"status\":\"success\",\"data\":[");
	engine_history(api->engine, sel, (size_t)nsel, start, end, anom_cb, &c);
	obuf_puts(&b, "]}\n");
	api_free_selectors(sel, nsel);
	api_send(resp, 200, "application/json", &b);
}

/* ------------------------------------------------------------------------ */
/* routing */

struct route {
	const char *path;
	enum http_route route;
	const char *methods;    /* "GET", "POST", "GET,POST" (HEAD goes with GET) */
};

static const struct route routes[] = {
	{ "/write", ROUTE_WRITE, "POST" },
	{ "/api/v2/write", ROUTE_WRITE, "POST" },
	{ "/api/v1/import", ROUTE_IMPORT, "POST" },
	{ "/api/v1/import/prometheus", ROUTE_IMPORT_PROM, "POST" },
	{ "/api/v1/write", ROUTE_REMOTE_WRITE, "POST" },
	{ "/api/v1/alerts", ROUTE_ALERTS, "GET" },
	{ "/api/v1/alerts/history", ROUTE_ALERTS, "GET" },
	{ "/api/v1/series", ROUTE_SERIES, "GET,POST" },
	{ "/api/v1/anomalies", ROUTE_ANOMALIES, "GET" },
	/* Prometheus query API (api_prom.c) */
	{ "/api/v1/query", ROUTE_QUERY, "GET,POST" },
	{ "/api/v1/query_range", ROUTE_QUERY, "GET,POST" },
	{ "/api/v1/labels", ROUTE_QUERY, "GET,POST" },
	{ "/api/v1/label/<name>/values", ROUTE_QUERY, "GET" }, /* matched by prefix */
	{ "/api/v1/metadata", ROUTE_QUERY, "GET" },
	{ "/api/v1/query_exemplars", ROUTE_QUERY, "GET,POST" },
	{ "/api/v1/rules", ROUTE_QUERY, "GET" },
	{ "/api/v1/status/buildinfo", ROUTE_QUERY, "GET" },
	{ "/api/v1/status/runtimeinfo", ROUTE_QUERY, "GET" },
	{ "/api/v1/forecast", ROUTE_FORECAST, "GET" },
	{ "/api/v1/services", ROUTE_FORECAST, "GET" },
	{ "/metrics", ROUTE_METRICS, "GET" },
	{ "/healthz", ROUTE_HEALTH, "GET" },
	{ "/readyz", ROUTE_HEALTH, "GET" },
	{ "/ping", ROUTE_HEALTH, "GET" },
	{ "/", ROUTE_UI, "GET" },
	{ "/index.html", ROUTE_UI, "GET" },
	{ "/ui/dygraph.min.js", ROUTE_UI, "GET" },
	{ "/ui/dygraph.min.css", ROUTE_UI, "GET" },
};

static const struct route *find_route(const char *path)
{
	if (api_prom_is_label_values(path))
		path = "/api/v1/label/<name>/values";
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (!strcmp(routes[i].path, path))
			return &routes[i];
	return NULL;
}

enum http_route api_route(const char *path)
{
	const struct route *r = find_route(path);
	return r ? r->route : ROUTE_OTHER;
}

static int method_allowed(const struct route *r, const char *method)
{
	if (!strcmp(method, "HEAD"))
		method = "GET";
	size_t ml = strlen(method);
	for (const char *p = r->methods; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == ml && !memcmp(p, method, l))
			return 1;
		p += l + (e ? 1 : 0);
	}
	return 0;
}

void api_handle(struct api_ctx *api, const struct api_request *req, struct api_response *resp)
{
	const struct route *r = find_route(req->path);
	if (!r) {
		api_error(resp, 404, "not_found", "unknown path '%.200s'", req->path);
		return;
	}
	if (!method_allowed(r, req->method)) {
		api_error(resp, 405, "method_not_allowed", "method '%.16s' not allowed for '%s' (use %s)",
		          req->method, r->path, r->methods);
		api_add_header(resp, "Allow", "%s%s", r->methods,
		               strstr(r->methods, "GET") ? ",HEAD" : "");
		return;
	}
	const char *p = r->path;
	int is_write = r->route == ROUTE_WRITE || r->route == ROUTE_IMPORT ||
	               r->route == ROUTE_IMPORT_PROM || r->route == ROUTE_REMOTE_WRITE;
	if (is_write && !atomic_load(&api->ready)) {
		/* Samples fed before the checkpoint restore would race with it:
		 * ask the client to retry (remote_write and Telegraf do on 503). */
		api_error(resp, 503, "unavailable", "restoring state: not ready for writes yet");
		api_add_header(resp, "Retry-After", "1");
		return;
	}
	switch (r->route) {
	case ROUTE_WRITE:
		api_write_lp(api, req, resp);
		return;
	case ROUTE_IMPORT:
		api_import_json(api, req, resp);
		return;
	case ROUTE_IMPORT_PROM:
		api_import_prom(api, req, resp);
		return;
	case ROUTE_REMOTE_WRITE:
		api_remote_write(api, req, resp);
		return;
	case ROUTE_ALERTS:
		if (!strcmp(p, "/api/v1/alerts"))
			handle_alerts(api, req, resp);
		else
			handle_alert_history(api, req, resp);
		return;
	case ROUTE_SERIES:
		api_prom_series(api, req, resp);
		return;
	case ROUTE_QUERY:
		api_prom_handle(api, req, resp);
		return;
	case ROUTE_ANOMALIES:
		handle_anomalies(api, req, resp);
		return;
	case ROUTE_METRICS:
		api_metrics(api, req, resp);
		return;
	case ROUTE_FORECAST:
		if (!strcmp(r->path, "/api/v1/services"))
			api_services(api, req, resp);
		else
			api_forecast(api, req, resp);
		return;
	case ROUTE_HEALTH:
		if (!strcmp(p, "/readyz")) {
			if (atomic_load(&api->ready))
				send_text(resp, 200, "ready");
			else
				send_text(resp, 503, "restoring");
		} else if (!strcmp(p, "/ping")) {
			resp->status = 204; /* InfluxDB clients probe this */
			api_add_header(resp, "X-Influxdb-Version", "foreshock-%s",
			               api->version ? api->version : "dev");
		} else {
			send_text(resp, 200, "ok");
		}
		return;
	case ROUTE_UI: {
		size_t len;
		const char *ctype = NULL;
		const char *page = ui_asset(r->path, &len, &ctype);
		if (!page) {
			api_error(resp, 404, "not_found", "unknown path '%.200s'", req->path);
			return;
		}
		struct obuf b;
		obuf_init(&b, len + 1);
		obuf_add(&b, page, len);
		api_send(resp, 200, ctype, &b);
		return;
	}
	default:
		api_error(resp, 404, "not_found", "unknown path '%.200s'", req->path);
		return;
	}
}
