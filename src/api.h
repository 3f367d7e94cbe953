/* api.h — the JSON API handlers behind http.c, and the output buffer they
 * write into.
 *
 * Layering: http.c turns an MHD request into a struct api_request (method,
 * path, decoded query arguments, the buffered body) and sends back the
 * struct api_response; the handlers in api*.c never see MHD, so they can be
 * driven directly by tests. Handlers read the engine, the store and the
 * selfstats through struct api_ctx (http.h) and feed ingest bodies to the
 * engine in one batch per request.
 *
 * Files: api.c (routing, helpers, alerts/series/anomalies/health),
 * api_ingest.c (write, import, remote_write), api_metrics.c (/metrics),
 * ui.c (the status page).
 */
#ifndef FORESHOCK_API_H
#define FORESHOCK_API_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "http.h"
#include "selfstats.h"

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

/* Route of a path, for statistics and dispatch. */
enum http_route api_route(const char *path);
/* Handle one request completely; always fills resp (status, body). */
void api_handle(struct api_ctx *api, const struct api_request *req, struct api_response *resp);

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

/* Handlers in the other api files. */
void api_forecast(struct api_ctx *api, const struct api_request *req, struct api_response *resp);
void api_services(struct api_ctx *api, const struct api_request *req, struct api_response *resp);
void api_write_lp(struct api_ctx *api, const struct api_request *req, struct api_response *resp);
void api_import_json(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp);
void api_import_prom(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp);
void api_remote_write(struct api_ctx *api, const struct api_request *req,
                      struct api_response *resp);
void api_metrics(struct api_ctx *api, const struct api_request *req, struct api_response *resp);
/* The embedded dashboard (static, NUL-terminated). */
const char *ui_page(size_t *len);
/* An embedded file by request path ("/", "/ui/dygraph.min.js", ...), with its
 * content type; NULL when there is none. Static storage. */
const char *ui_asset(const char *path, size_t *len, const char **ctype);

#endif
