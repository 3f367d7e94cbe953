/* http/promql.h — what the Prometheus query API's two files share: the
 * virtual families, the merged request arguments, parameters (times,
 * durations), value formatting and the parsed query (promql.c), used by the
 * evaluation and the handlers (api_prom.c). Nothing else includes it. */
#ifndef FORESHOCK_HTTP_PROMQL_H
#define FORESHOCK_HTTP_PROMQL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "http/api.h"
#include "util/buf.h"
#include "util/labels.h"
#include "util/selector.h"

#define DEFAULT_LOOKBACK_MS (5 * 60 * 1000LL)
#define MAX_POINTS_PER_SERIES 11000
#define MAX_FORM_ARGS 256
#define MAX_SET_ENTRIES 1000000
/* Times beyond about ±36 million years are refused, so that time arithmetic
 * (end - start, t - lookback) cannot overflow. */
#define MAX_ABS_TIME_MS ((int64_t)1 << 60)
/* Forecast families: no point later than this after a series' last sample. */
#define FORECAST_HORIZON_MS (7 * 86400 * 1000LL)

/* ------------------------------------------------------------------------ */
/* virtual families */

/* Families from FAM_FC_VALUE on are forecasts (engine_forecast_at), the
 * others come from the history ring. A view mask has bit f+1 for family f
 * and bit 0 for the series itself. */
#define NFAMILIES 9
enum { FAM_PLAIN = -1, FAM_SCORE = 0, FAM_EXPECTED, FAM_LOWER, FAM_UPPER, FAM_FC_VALUE,
       FAM_FC_LOWER, FAM_FC_UPPER, FAM_FC_LOWER80, FAM_FC_UPPER80 };
#define ALL_VIRTUAL_MASK (((1u << NFAMILIES) - 1u) << 1)
#define FORECAST_MASK (ALL_VIRTUAL_MASK & ~((1u << (FAM_FC_VALUE + 1)) - 1u))
static const char *const fam_name[NFAMILIES] = {
	"foreshock_anomaly_score", "foreshock_expected_value", "foreshock_expected_lower",
	"foreshock_expected_upper", "foreshock_forecast_value", "foreshock_forecast_lower",
	"foreshock_forecast_upper", "foreshock_forecast_lower80", "foreshock_forecast_upper80",
};
static const char *const fam_help[NFAMILIES] = {
	"Anomaly score in [0,1] of each scored series (virtual, from its history).",
	"Expected value of each scored series (the model's baseline; virtual).",
	"Lower edge of the expected band of each scored series (virtual).",
	"Upper edge of the expected band of each scored series (virtual).",
	"Forecast (point forecast) of each scored series, only after its last sample and "
	"at most 7 days ahead (virtual).",
	"Lower edge of the 95% forecast interval of each scored series (virtual, future only).",
	"Upper edge of the 95% forecast interval of each scored series (virtual, future only).",
	"Lower edge of the 80% forecast interval of each scored series (virtual, future only).",
	"Upper edge of the 80% forecast interval of each scored series (virtual, future only).",
};


/* ------------------------------------------------------------------------ */
/* arguments: query string plus a form-encoded POST body */

struct pargs {
	struct api_request r;   /* req with args replaced by the merged list */
	struct api_arg *args;   /* owned */
	char *buf;              /* owned copy of the decoded body */
};

/* ------------------------------------------------------------------------ */
/* query parsing */

enum qkind { Q_SCALAR, Q_VECTOR };

struct pquery {
	enum qkind kind;
	double scalar;
	int fam;                /* FAM_PLAIN or a virtual family */
	int none;               /* the selector can match nothing (virtual name mismatch) */
	struct selector sel;    /* on the underlying series' own labels */
};


#define UNSUPPORTED "unsupported PromQL: only series selectors are supported; "

/* promql.c */
int prom_is_forecast(int fam);
int64_t prom_horizon_end(int64_t last_ms);
double prom_forecast_field(const struct forecast_point *p, int fam);
int prom_scored(const struct series_info *s);
double prom_point_field(const struct history_point *p, int fam);
const char *prom_view_label(const struct labels *l, int fam, const char *name);
void prom_url_decode(char *s);
int prom_pargs_init(struct pargs *a, const struct api_request *req, int decode_body, struct api_response *resp);
void prom_pargs_free(struct pargs *a);
int prom_parse_duration_ms(const char *s, int64_t *ms);
int prom_time_param(const struct api_request *req, const char *key, int64_t *ms, struct api_response *resp);
int prom_lookback_param(const struct api_request *req, int64_t *lb, struct api_response *resp);
void prom_json_point(struct obuf *b, int64_t ts_ms, double v, int is_float);
void prom_json_view_labels(struct obuf *b, const struct labels *l, int fam);
void prom_pquery_free(struct pquery *q);
int prom_parse_query(const char *text, int selector_only, struct pquery *q, char *err, size_t errlen);
int prom_query_matches(const struct pquery *q, const struct series_info *s);

#endif
