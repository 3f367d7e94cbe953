/* http/api_prom.h — the Prometheus HTTP API subset (api_prom.c, promql.c): instant and range
 * queries over plain series selectors and the virtual score/band families,
 * series, labels, label values, metadata and the status probes that Grafana
 * and promtool use. See docs/api.md ("Prometheus query API").
 *
 * Like every api*.c handler these never see MHD: they read the request
 * (query arguments, and a form-encoded POST body, which they decode
 * themselves without modifying it) and fill resp. They read the engine
 * through engine_series_foreach()/engine_history(), which copy under the
 * engine lock.
 */
#ifndef FORESHOCK_API_PROM_H
#define FORESHOCK_API_PROM_H

#include "http/api.h"

/* /api/v1/query, /api/v1/query_range, /api/v1/labels, /api/v1/label/<name>/values,
 * /api/v1/metadata, /api/v1/status/buildinfo, /api/v1/status/runtimeinfo,
 * /api/v1/query_exemplars, /api/v1/rules: dispatched on req->path. */
void api_prom_handle(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp);
/* /api/v1/series (match[], start, end). server.c has already decoded a
 * form-encoded body into req->args for this route. */
void api_prom_series(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp);
/* 1 if path is /api/v1/label/<name>/values. */
int api_prom_is_label_values(const char *path);

#endif
