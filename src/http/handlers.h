/* handlers.h — the handlers the router dispatches to, one per route or
 * path, by file: api_alerts.c, api_forecast.c, api_ingest.c, api_metrics.c
 * and ui.c (the Prometheus API handlers are in api_prom.h). Each fills resp
 * completely. They call the helpers of api.h, never each other or the router.
 */
#ifndef FORESHOCK_HTTP_HANDLERS_H
#define FORESHOCK_HTTP_HANDLERS_H

#include <stddef.h>

#include "http/api.h"

void api_alerts(struct api_ctx *api, const struct api_request *req, struct api_response *resp);
void api_alert_history(struct api_ctx *api, const struct api_request *req,
                       struct api_response *resp);
void api_anomalies(struct api_ctx *api, const struct api_request *req, struct api_response *resp);
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
