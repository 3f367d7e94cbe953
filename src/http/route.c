/* route.c — the table of routes: which path is which route (for
 * statistics and dispatch) and which methods it takes. See route.h.
 */
#include "http/route.h"

#include <string.h>

#include "http/api_prom.h"
#include "util/selfstats.h"

_Static_assert(ROUTE__COUNT <= SELFSTATS_ROUTES, "selfstats counts too few routes");

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
	{ "/api/v1/services", ROUTE_SERVICES, "GET" },
	{ "/metrics", ROUTE_METRICS, "GET" },
	{ "/healthz", ROUTE_HEALTH, "GET" },
	{ "/readyz", ROUTE_HEALTH, "GET" },
	{ "/ping", ROUTE_HEALTH, "GET" },
	{ "/", ROUTE_UI, "GET" },
	{ "/index.html", ROUTE_UI, "GET" },
	{ "/ui/dygraph.min.js", ROUTE_UI, "GET" },
	{ "/ui/dygraph.min.css", ROUTE_UI, "GET" },
};

const struct route *route_find(const char *path)
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
	const struct route *r = route_find(path);
	return r ? r->route : ROUTE_OTHER;
}

const char *http_route_name(enum http_route r)
{
	static const char *const names[ROUTE__COUNT] = {
		"write",  "import",    "remote_write", "import_prometheus", "alerts",
		"series", "anomalies", "metrics",      "health",            "query",
		"forecast", "services", "ui",          "other",
	};
	return (unsigned)r < ROUTE__COUNT ? names[r] : "other";
}
