/* route.h — the routes of the HTTP API: a path's route (for statistics and
 * dispatch) and the methods it takes. The server counts every response by
 * route in selfstats (an index below SELFSTATS_ROUTES); /metrics names them
 * with http_route_name().
 */
#ifndef FORESHOCK_HTTP_ROUTE_H
#define FORESHOCK_HTTP_ROUTE_H

enum http_route {
	ROUTE_WRITE = 0, ROUTE_IMPORT, ROUTE_REMOTE_WRITE, ROUTE_IMPORT_PROM, ROUTE_ALERTS,
	ROUTE_SERIES, ROUTE_ANOMALIES, ROUTE_METRICS, ROUTE_HEALTH, ROUTE_QUERY, ROUTE_FORECAST,
	ROUTE_SERVICES, ROUTE_UI, ROUTE_OTHER, ROUTE__COUNT
};

struct route {
	const char *path;
	enum http_route route;
	const char *methods;    /* "GET", "POST", "GET,POST" (HEAD goes with GET) */
};

/* The route of path, or NULL (unknown path). */
const struct route *route_find(const char *path);
/* Route of a path, for statistics and dispatch (ROUTE_OTHER if unknown). */
enum http_route api_route(const char *path);
/* "write", "query", ...; "other" out of range. */
const char *http_route_name(enum http_route r);

#endif
