/* http/api_forecast.c — the prediction endpoints. GET /api/v1/forecast:
 * per-series forecasts with 80% and 95% prediction intervals, and the
 * time-to-breach of an optional limit; GET /api/v1/services: the service
 * models' state (signals, burn rates, overload risk).
 *
 *   /api/v1/forecast?series=SEL[&horizon=1h][&step=1m][&limit=X][&direction=above|below]
 *
 * The forecast starts one step after each series' last sample (event time).
 */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "http/api.h"
#include "http/handlers.h"
#include "engine/engine.h"
#include "util/selector.h"
#include "util/yaml_tree.h"

#define FORECAST_MAX_POINTS 2000

struct fc_ctx {
	struct obuf *b;
	size_t n;
	double limit;
	int above;
	int64_t horizon_ms, step_ms;
};

static void put_crossing(struct obuf *b, const char *name, int crosses, int64_t at_ms,
                         int64_t from_ms)
{
	obuf_printf(b, ",\"%s\":{\"crosses\":%s", name, crosses ? "true" : "false");
	if (crosses) {
		obuf_puts(b, ",\"at\":");
		obuf_json_time(b, at_ms);
		obuf_printf(b, ",\"in_seconds\":%.3f", (double)(at_ms - from_ms) / 1000.0);
	}
	obuf_add(b, "}", 1);
}

static int fc_cb(void *vctx, const struct series_info *s, const struct forecast_point *pts,
                 size_t n, const struct breach *br, const struct forecast_info *info)
{
	struct fc_ctx *c = vctx;
	struct obuf *b = c->b;
	obuf_puts(b, c->n++ ? ",{\"labels\":" : "{\"labels\":");
	api_json_labels(b, s->labels);
	obuf_puts(b, ",\"series\":");
	const char *key = engine_series_key(s);
	obuf_json_str(b, key, strlen(key));
	obuf_printf(b, ",\"ready\":%s", n ? "true" : "false");
	obuf_puts(b, ",\"from\":");
	obuf_json_time(b, s->last_ts_ms);
	obuf_printf(b, ",\"step_seconds\":%.3f,\"model\":{\"grid_step_seconds\":%.3f,"
	               "\"period_seconds\":%.0f,\"multiplicative\":%s,\"samples\":%llu}",
	            (double)c->step_ms / 1000.0, (double)info->step_ms / 1000.0,
	            (double)info->period_ms / 1000.0, info->multiplicative ? "true" : "false",
	            (unsigned long long)info->samples);
	obuf_puts(b, ",\"points\":[");
	for (size_t i = 0; i < n; i++) {
		obuf_puts(b, i ? ",{\"t\":" : "{\"t\":");
		obuf_json_time(b, pts[i].ts_ms);
		obuf_puts(b, ",\"mean\":");
		obuf_json_num(b, pts[i].mean, 1);
		obuf_puts(b, ",\"lower80\":");
		obuf_json_num(b, pts[i].lo80, 1);
		obuf_puts(b, ",\"upper80\":");
		obuf_json_num(b, pts[i].hi80, 1);
		obuf_puts(b, ",\"lower95\":");
		obuf_json_num(b, pts[i].lo95, 1);
		obuf_puts(b, ",\"upper95\":");
		obuf_json_num(b, pts[i].hi95, 1);
		obuf_add(b, "}", 1);
	}
	obuf_add(b, "]", 1);
	if (!isnan(c->limit)) {
		obuf_puts(b, ",\"breach\":{\"limit\":");
		obuf_json_num(b, c->limit, 1);
		obuf_printf(b, ",\"direction\":\"%s\",\"horizon_seconds\":%.3f", c->above ? "above" : "below",
		            (double)c->horizon_ms / 1000.0);
		if (br) {
			put_crossing(b, "mean", br->mean_crosses, br->mean_at_ms, s->last_ts_ms);
			put_crossing(b, "bound95", br->upper_crosses, br->upper_at_ms, s->last_ts_ms);
			obuf_puts(b, ",\"probability\":");
			obuf_json_num(b, br->probability, 1);
		} else {
			obuf_puts(b, ",\"mean\":null,\"bound95\":null,\"probability\":null");
		}
		obuf_add(b, "}", 1);
	}
	obuf_add(b, "}", 1);
	return b->failed;
}

void api_forecast(struct api_ctx *api, const struct api_request *req, struct api_response *resp)
{
	struct fc_ctx c = { .limit = NAN, .above = 1, .horizon_ms = 3600 * 1000 };
	const char *v;
	if ((v = api_arg(req, "horizon")) && parse_duration_ms(v, &c.horizon_ms)) {
		api_error(resp, 400, "bad_data", "invalid parameter 'horizon': '%.32s' (e.g. 30m, 1h)", v);
		return;
	}
	c.step_ms = c.horizon_ms / 60;
	if ((v = api_arg(req, "step")) && parse_duration_ms(v, &c.step_ms)) {
		api_error(resp, 400, "bad_data", "invalid parameter 'step': '%.32s' (e.g. 1m)", v);
		return;
	}
	if (c.horizon_ms <= 0 || c.step_ms <= 0 || c.step_ms > c.horizon_ms) {
		api_error(resp, 400, "bad_data", "'horizon' and 'step' must be positive, step <= horizon");
		return;
	}
	int64_t n = c.horizon_ms / c.step_ms;
	if (n > FORECAST_MAX_POINTS) {
		api_error(resp, 400, "bad_data",
		          "horizon/step gives %lld points per series (limit %d): use a larger step",
		          (long long)n, FORECAST_MAX_POINTS);
		return;
	}
	if ((v = api_arg(req, "limit"))) {
		char *end;
		c.limit = strtod(v, &end);
		if (end == v || *end || !isfinite(c.limit)) {
			api_error(resp, 400, "bad_data", "invalid parameter 'limit': '%.32s'", v);
			return;
		}
	}
	if ((v = api_arg(req, "direction"))) {
		if (!strcmp(v, "above"))
			c.above = 1;
		else if (!strcmp(v, "below"))
			c.above = 0;
		else {
			api_error(resp, 400, "bad_data", "invalid parameter 'direction': use above or below");
			return;
		}
	}
	struct selector *sel;
	long nsel = api_parse_selectors(req, "series", "match[]", &sel, resp);
	if (nsel < 0)
		return;
	if (nsel == 0) {
		api_error(resp, 400, "bad_data", "missing parameter 'series' (a series selector)");
		return;
	}
	struct obuf b;
	obuf_init(&b, 0);
	c.b = &b;
	obuf_puts(&b, "{\"status\":\"success\",\"data\":[");
	engine_forecast(api->engine, sel, (size_t)nsel, c.step_ms, (size_t)n, c.limit, c.above, fc_cb,
	                &c);
	obuf_puts(&b, "]}\n");
	api_free_selectors(sel, nsel);
	api_send(resp, 200, "application/json", &b);
}

/* GET /api/v1/services: every service model's current state (service.h). */
void api_services(struct api_ctx *api, const struct api_request *req, struct api_response *resp)
{
	(void)req;
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, "{\"status\":\"success\",\"data\":");
	engine_services_json(api->engine, &b);
	obuf_puts(&b, "}\n");
	api_send(resp, 200, "application/json", &b);
}
