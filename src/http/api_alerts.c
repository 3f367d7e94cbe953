/* api_alerts.c — the read-side JSON API of alerts and anomalies:
 * GET /api/v1/alerts, /api/v1/alerts/history and /api/v1/anomalies. See
 * docs/api.md.
 */
#include "http/api.h"
#include "http/handlers.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "engine/engine.h"
#include "util/selector.h"
#include "store/store.h"
#include "util/timefmt.h"

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

void api_alerts(struct api_ctx *api, const struct api_request *req,
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

void api_alert_history(struct api_ctx *api, const struct api_request *req,
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
	const char *key = engine_series_key(s);
	obuf_json_str(b, key, strlen(key));
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

void api_anomalies(struct api_ctx *api, const struct api_request *req,
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
