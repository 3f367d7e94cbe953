/* http/api.h — the JSON API handlers behind server.c, and the output buffer they
 * write into.
 *
 * Layering: server.c turns an MHD request into a struct api_request (method,
 * path, decoded query arguments, the buffered body) and sends back the
 * struct api_response; the handlers in api*.c never see MHD, so they can be
 * driven directly by tests. Handlers read the engine, the store and the
 * selfstats through struct api_ctx and feed ingest bodies to the engine in
 * one batch per request.
 *
 * Files: route.c (the route table), router.c (dispatch, health, UI),
 * api.c (these helpers), the handlers (handlers.h): api_alerts.c (alerts,
 * alert history, anomalies), api_ingest.c (write, import, remote_write),
 * api_forecast.c (forecast, services), api_metrics.c (/metrics), ui.c (the
 * status page), api_prom.c (the Prometheus query API, api_prom.h).
 */
#ifndef FORESHOCK_API_H
#define FORESHOCK_API_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "ingest/line.h"
#include "util/buf.h"

struct engine;
struct labels;
struct store;
struct selfstats;
struct rwexport;

struct api_ctx {                /* borrowed pointers, all outlive the server */
	struct engine *engine;
	struct store *store;
	struct selfstats *stats;
	_Atomic int ready;          /* 1 once restore finished: /readyz 200, else 503 */
	size_t max_body;            /* bytes, after decompression too (413 beyond) */
	struct lp_limits lp_limits; /* line-protocol limits */
	size_t metrics_series_limit; /* /metrics: per-series gauges for at most this many
	                             * series (alerting ones first past it); 0 = none */
	const char *version;
	const struct labels *external_labels; /* the daemon's identity (shard, ...); may be NULL */
	struct metrics_cache *metrics_cache; /* /metrics: per-series text kept per engine shard
	                             * between scrapes (owned by whoever set up the ctx);
	                             * NULL: every scrape builds it all */
	struct rwexport *exporter;     /* remote_write exporter (store/rwexport.h); may be NULL */
};

/* The cache of GET /metrics' per-series gauges (api_metrics.c): per engine
 * shard, the text last built and the shard's generation it was built at;
 * a scrape rebuilds only the shards that changed since. Thread-safe. */
struct metrics_cache;
struct metrics_cache *metrics_cache_new(void);
void metrics_cache_free(struct metrics_cache *c);

/* Shortest decimal in Go's strconv 'e' format ("1.25e+01", "NaN", "+Inf"),
 * as Prometheus prints alert values. buf >= 32 bytes. */
const char *api_format_value(double v, char *buf, size_t len);

/* --- requests ------------------------------------------------------------ */
struct api_arg {
	const char *key, *value; /* NUL-terminated, URL-decoded */
};

struct api_request {
	const char *method;           /* "GET", "POST", ... */
	const char *path;             /* without the query string */
	const struct api_arg *args;   /* query arguments in order (repeatable keys) */
	size_t nargs;
	const char *content_type;     /* NULL if absent */
	const char *content_encoding; /* NULL if absent */
	char *body;                   /* POST body (owned by the caller, NUL-terminated;
	                               * handlers may modify it in place) */
	size_t body_len;
	int64_t now_ms;               /* receive time (wall clock) */
	int event_time;               /* 1: the daemon's own replay sender: samples keep their
	                               * event time, no window around now_ms (server.h) */
};

#define API_MAX_HEADERS 4
struct api_response {
	unsigned status;
	const char *content_type;     /* static string */
	char *body;                   /* malloc'd (or NULL); the caller frees it */
	size_t len;
	size_t nheaders;
	struct {
		const char *name;         /* static */
		char value[64];
	} headers[API_MAX_HEADERS];
};

/* First value of query argument key, or NULL. */
const char *api_arg(const struct api_request *req, const char *key);

/* Set resp to a Prometheus-style error:
 * {"status":"error","errorType":TYPE,"error":"..."}. */
void api_error(struct api_response *resp, unsigned status, const char *type, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* Hand a finished buffer to resp (on a failed buffer: 500). */
void api_send(struct api_response *resp, unsigned status, const char *content_type,
              struct obuf *b);
void api_add_header(struct api_response *resp, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Shared parameter helpers. api_time_arg: 0 if the argument is absent (*ms
 * untouched), 1 if set, -1 with a 400 in resp if invalid (RFC 3339 or epoch
 * seconds). api_parse_selectors: every argument named key (or alt) parsed as
 * a series selector; returns the count (caller frees with
 * api_free_selectors) or -1 with a 400 in resp. */
struct selector;
struct labels;
int api_time_arg(const struct api_request *req, const char *key, int64_t *ms,
                 struct api_response *resp);
long api_parse_selectors(const struct api_request *req, const char *key, const char *alt,
                         struct selector **out, struct api_response *resp);
void api_free_selectors(struct selector *sel, long n);
/* A label set as a JSON object. */
void api_json_labels(struct obuf *b, const struct labels *l);

#endif
