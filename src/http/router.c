/* router.c — one request to its handler: route lookup, method check
 * (405 with Allow), writes refused (503) until the restore is done, then the
 * handler of the route; health, readiness (503 also while the store is
 * unhealthy) and the UI page are answered here. See router.h.
 */
#include "http/router.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "http/api.h"
#include "http/api_prom.h"
#include "http/handlers.h"
#include "http/route.h"
#include "store/store.h"

static void send_text(struct api_response *resp, unsigned status, const char *text)
{
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, text);
	api_send(resp, status, "text/plain; charset=utf-8", &b);
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
	const struct route *r = route_find(req->path);
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
			api_alerts(api, req, resp);
		else
			api_alert_history(api, req, resp);
		return;
	case ROUTE_SERIES:
		api_prom_series(api, req, resp);
		return;
	case ROUTE_QUERY:
		api_prom_handle(api, req, resp);
		return;
	case ROUTE_ANOMALIES:
		api_anomalies(api, req, resp);
		return;
	case ROUTE_METRICS:
		api_metrics(api, req, resp);
		return;
	case ROUTE_FORECAST:
		api_forecast(api, req, resp);
		return;
	case ROUTE_SERVICES:
		api_services(api, req, resp);
		return;
	case ROUTE_HEALTH:
		if (!strcmp(p, "/readyz")) {
			char why[300];
			if (!atomic_load(&api->ready)) {
				send_text(resp, 503, "restoring");
			} else if (api->store && !store_healthy(api->store, why, sizeof why)) {
				char text[340];
				snprintf(text, sizeof text, "store unhealthy: %s", why);
				send_text(resp, 503, text);
			} else {
				send_text(resp, 200, "ready");
			}
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
		const char *page = ui_asset(p, &len, &ctype);
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
