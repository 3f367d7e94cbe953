/* http/api_prom.c — the Prometheus HTTP API subset that lets Grafana (as a
 * "Prometheus" data source) and promtool read foreshock: /api/v1/query,
 * /api/v1/query_range, /api/v1/series, /api/v1/labels,
 * /api/v1/label/<name>/values, /api/v1/metadata and the status probes.
 *
 * The query language is deliberately small, and anything outside it is a
 * bad_data error, never a wrong answer:
 *   - a series selector: name, {matchers} or name{matchers};
 *   - the virtual families foreshock_anomaly_score, foreshock_expected_value,
 *     foreshock_expected_lower and foreshock_expected_upper, computed from
 *     each scored series' history. Their labels are the series' own with
 *     its metric name in `series_name` (a label already called series_name
 *     becomes exported_series_name), exactly as /metrics exports them;
 *   - the forecast families foreshock_forecast_value, foreshock_forecast_lower
 *     and foreshock_forecast_upper (95% band), foreshock_forecast_lower80 and
 *     foreshock_forecast_upper80, with the same labels. They exist only in the
 *     future of each series: at grid times strictly after its last sample and
 *     at most FORECAST_HORIZON_MS after it (later times are clipped, not
 *     refused). Past forecasts are not stored, so at or before the last
 *     sample there is no point. No lookback applies to them;
 *   - constant arithmetic on number literals (Grafana's "1+1" health check).
 * Values come from the in-memory history ring (engine_history), with
 * Prometheus's staleness rule: at each evaluation time t, the latest sample
 * in [t - lookback, t] (lookback 5m, or ?lookback_delta=).
 * See docs/api.md, "Prometheus query API".
 */
#include "http/api_prom.h"
#include "http/promql.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine.h"
#include "util/labels.h"
#include "util/selector.h"
#include "engine/series.h"
#include "util/timefmt.h"

/* ------------------------------------------------------------------------ */
/* /api/v1/query and /api/v1/query_range */

struct eval_ctx {
	struct obuf *b;
	const struct pquery *q;
	size_t n;             /* series emitted */
	int64_t t, start, end, step, lookback;
	int range;
	int64_t *ts;          /* scratch: usable points of one series */
	double *val;
	int *isf;
	size_t cap;
};

/* Collect the usable points of one series (virtual: non-NaN fields). */
static size_t usable_points(struct eval_ctx *c, const struct series_info *s,
                            const struct history_point *pts, size_t n)
{
	if (n > c->cap) {
		size_t ncap = n;
		int64_t *ts = realloc(c->ts, ncap * sizeof *ts);
		if (ts)
			c->ts = ts;
		double *val = realloc(c->val, ncap * sizeof *val);
		if (val)
			c->val = val;
		int *isf = realloc(c->isf, ncap * sizeof *isf);
		if (isf)
			c->isf = isf;
		if (!ts || !val || !isf) {
			c->b->failed = 1;
			return 0;
		}
		c->cap = ncap;
	}
	size_t k = 0;
	int fam = c->q->fam;
	for (size_t i = 0; i < n; i++) {
		double v = prom_point_field(&pts[i], fam);
		int isf = 1;
		if (fam == FAM_PLAIN && pts[i].ts_ms == s->last_ts_ms && i == n - 1) {
			v = s->last_value; /* the exact double of the newest sample */
			isf = 0;
		}
		if (fam != FAM_PLAIN && isnan(v))
			continue;
		c->ts[k] = pts[i].ts_ms;
		c->val[k] = v;
		c->isf[k] = isf;
		k++;
	}
	return k;
}

static int eval_cb(void *vctx, const struct series_info *s, const struct history_point *pts,
                   size_t n)
{
	struct eval_ctx *c = vctx;
	if (prom_query_matches(c->q, s) == -2)
		return 0;
	size_t k = usable_points(c, s, pts, n);
	if (c->b->failed)
		return 1;
	if (k == 0)
		return 0;
	struct obuf *b = c->b;
	if (!c->range) {
		/* latest point in [t - lookback, t]: engine_history already cut the window */
		obuf_puts(b, c->n++ ? ",{\"metric\":" : "{\"metric\":");
		prom_json_view_labels(b, s->labels, c->q->fam);
		obuf_puts(b, ",\"value\":");
		prom_json_point(b, c->t, c->val[k - 1], c->isf[k - 1]);
		obuf_add(b, "}", 1);
		return b->failed;
	}
	size_t emitted = 0, j = 0;
	int have = 0;
	int64_t nsteps = (c->end - c->start) / c->step; /* <= 11000, times bounded */
	for (int64_t st = 0; st <= nsteps; st++) {
		int64_t t = c->start + st * c->step;
		while (j < k && c->ts[j] <= t) {
			j++;
			have = 1;
		}
		if (!have || c->ts[j - 1] < t - c->lookback)
			continue;
		if (emitted == 0) {
			obuf_puts(b, c->n++ ? ",{\"metric\":" : "{\"metric\":");
			prom_json_view_labels(b, s->labels, c->q->fam);
			obuf_puts(b, ",\"values\":[");
		} else {
			obuf_add(b, ",", 1);
		}
		prom_json_point(b, t, c->val[j - 1], c->isf[j - 1]);
		emitted++;
	}
	if (emitted)
		obuf_puts(b, "]}");
	return b->failed;
}

/* Forecast families: fn of engine_forecast_at. The grid is the query's
 * (start + k * step, or just t); points later than FORECAST_HORIZON_MS after
 * the series' last sample are clipped. */
static int forecast_cb(void *vctx, const struct series_info *s, const struct forecast_point *pts,
                       size_t n, const struct breach *br, const struct forecast_info *info)
{
	struct eval_ctx *c = vctx;
	(void)br;
	(void)info;
	if (prom_query_matches(c->q, s) == -2)
		return 0;
	struct obuf *b = c->b;
	size_t emitted = 0;
	for (size_t i = 0; i < n; i++) {
		if (pts[i].ts_ms <= s->last_ts_ms || pts[i].ts_ms > prom_horizon_end(s->last_ts_ms))
			break;
		double v = prom_forecast_field(&pts[i], c->q->fam);
		if (!isfinite(v))
			continue;
		if (emitted == 0) {
			obuf_puts(b, c->n++ ? ",{\"metric\":" : "{\"metric\":");
			prom_json_view_labels(b, s->labels, c->q->fam);
			obuf_puts(b, c->range ? ",\"values\":[" : ",\"value\":");
		} else {
			obuf_add(b, ",", 1);
		}
		prom_json_point(b, pts[i].ts_ms, v, 0);
		emitted++;
		if (!c->range)
			break;
	}
	if (emitted)
		obuf_puts(b, c->range ? "]}" : "}");
	return b->failed;
}

struct last_ctx {
	const struct pquery *q;
	int64_t max_last;     /* newest last sample of the matching series */
	int any;
};

static int last_cb(void *vctx, const struct series_info *s)
{
	struct last_ctx *c = vctx;
	if (prom_query_matches(c->q, s) != -2 && s->samples) {
		if (!c->any || s->last_ts_ms > c->max_last)
			c->max_last = s->last_ts_ms;
		c->any = 1;
	}
	return 0;
}

/* The forecast families of handle_query. Returns 0, or -1 (out of memory). */
static int eval_forecast(struct api_ctx *api, struct eval_ctx *c)
{
	if (!c->range) /* one grid point: t itself (empty if t is not in the future) */
		return engine_forecast_at(api->engine, &c->q->sel, 1, c->t, 1, 1, forecast_cb, c) < 0
		               ? -1 : 0;
	/* Only grid points up to the horizon of the newest matching series can
	 * have a value: cut the grid there so that no forecast is computed for
	 * times every series would clip. */
	struct last_ctx lc = { .q = c->q };
	engine_series_foreach(api->engine, &c->q->sel, 1, last_cb, &lc);
	if (!lc.any)
		return 0;
	int64_t nsteps = (c->end - c->start) / c->step; /* <= 11000, times bounded */
	int64_t limit = prom_horizon_end(lc.max_last);
	if (limit < c->start)
		return 0;
	if (limit < c->end)
		nsteps = (limit - c->start) / c->step;
	return engine_forecast_at(api->engine, &c->q->sel, 1, c->start, c->step, (size_t)nsteps + 1,
	                          forecast_cb, c) < 0 ? -1 : 0;
}

static void send_query_error(struct api_response *resp, const char *err)
{
	api_error(resp, 400, "bad_data", "invalid parameter 'query': %s", err);
}

static void handle_query(struct api_ctx *api, const struct api_request *req,
                         struct api_response *resp, int range)
{
	const char *qs = api_arg(req, "query");
	if (!qs) {
		api_error(resp, 400, "bad_data", "invalid parameter 'query': no expression found in input");
		return;
	}
	int64_t lookback;
	if (prom_lookback_param(req, &lookback, resp))
		return;
	int64_t t = req->now_ms, start = 0, end = 0, step = 0;
	if (!range) {
		if (prom_time_param(req, "time", &t, resp) < 0)
			return;
	} else {
		int hs = prom_time_param(req, "start", &start, resp);
		if (hs < 0)
			return;
		int he = prom_time_param(req, "end", &end, resp);
		if (he < 0)
			return;
		if (!hs || !he) {
			api_error(resp, 400, "bad_data", "invalid parameter '%s': missing",
			          !hs ? "start" : "end");
			return;
		}
		if (end < start) {
			api_error(resp, 400, "bad_data",
			          "invalid parameter 'end': end timestamp must not be before start time");
			return;
		}
		const char *ss = api_arg(req, "step");
		if (!ss || !*ss || prom_parse_duration_ms(ss, &step)) {
			api_error(resp, 400, "bad_data",
			          "invalid parameter 'step': cannot parse '%.32s' to a valid duration",
			          ss ? ss : "");
			return;
		}
		if (step <= 0) {
			api_error(resp, 400, "bad_data",
			          "zero or negative query resolution step widths are not accepted. "
			          "Try a positive integer");
			return;
		}
		if ((end - start) / step > MAX_POINTS_PER_SERIES) {
			api_error(resp, 400, "bad_data",
			          "exceeded maximum resolution of 11,000 points per timeseries. Try "
			          "decreasing the query resolution (?step=XX)");
			return;
		}
	}
	struct pquery q;
	char err[512];
	if (prom_parse_query(qs, 0, &q, err, sizeof err)) {
		send_query_error(resp, err);
		return;
	}
	struct obuf b;
	obuf_init(&b, 0);
	if (q.kind == Q_SCALAR) {
		if (!range) {
			obuf_puts(&b, "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":");
			prom_json_point(&b, t, q.scalar, 0);
			obuf_puts(&b, "}}\n");
		} else {
			obuf_puts(&b, "{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\",\"result\":"
			              "[{\"metric\":{},\"values\":[");
			for (int64_t st = 0; st <= (end - start) / step; st++) {
				if (st)
					obuf_add(&b, ",", 1);
				prom_json_point(&b, start + st * step, q.scalar, 0);
			}
			obuf_puts(&b, "]}]}}\n");
		}
		prom_pquery_free(&q);
		api_send(resp, 200, "application/json", &b);
		return;
	}
	struct eval_ctx c = { .b = &b, .q = &q, .t = t, .start = start, .end = end,
		              .step = step, .lookback = lookback, .range = range };
	obuf_printf(&b, "{\"status\":\"success\",\"data\":{\"resultType\":\"%s\",\"result\":[",
	            range ? "matrix" : "vector");
	if (!q.none && prom_is_forecast(q.fam)) {
		if (eval_forecast(api, &c))
			b.failed = 1;
	} else if (!q.none) {
		int64_t from = range ? start : t, to = range ? end : t;
		from = from > INT64_MIN + lookback ? from - lookback : INT64_MIN;
		if (engine_history(api->engine, &q.sel, 1, from, to, eval_cb, &c) < 0)
			b.failed = 1;
	}
	obuf_puts(&b, "]}}\n");
	free(c.ts);
	free(c.val);
	free(c.isf);
	prom_pquery_free(&q);
	api_send(resp, 200, "application/json", &b);
}

/* ------------------------------------------------------------------------ */
/* match[] with start/end: shared by series, labels and label values */

struct matchset {
	struct pquery *q;
	size_t n;
	int64_t start, end;
	int has_window;
};

static void matchset_free(struct matchset *m)
{
	for (size_t i = 0; i < m->n; i++)
		prom_pquery_free(&m->q[i]);
	free(m->q);
	m->q = NULL;
	m->n = 0;
}

/* Returns 0, or -1 with a 400/500 in resp. */
static int matchset_init(struct matchset *m, const struct api_request *req,
                         struct api_response *resp)
{
	memset(m, 0, sizeof *m);
	m->start = INT64_MIN;
	m->end = INT64_MAX;
	int hs = prom_time_param(req, "start", &m->start, resp);
	if (hs < 0)
		return -1;
	int he = prom_time_param(req, "end", &m->end, resp);
	if (he < 0)
		return -1;
	m->has_window = hs || he;
	size_t n = 0;
	for (size_t i = 0; i < req->nargs; i++)
		n += !strcmp(req->args[i].key, "match[]");
	if (!n)
		return 0;
	m->q = calloc(n, sizeof *m->q);
	if (!m->q) {
		api_error(resp, 500, "internal", "out of memory");
		return -1;
	}
	for (size_t i = 0; i < req->nargs; i++) {
		if (strcmp(req->args[i].key, "match[]"))
			continue;
		char err[512];
		if (prom_parse_query(req->args[i].value, 1, &m->q[m->n], err, sizeof err)) {
			api_error(resp, 400, "bad_data", "invalid parameter 'match[]': %s", err);
			matchset_free(m);
			return -1;
		}
		m->n++;
	}
	return 0;
}

/* Bit mask of the views of s selected: bit 0 the series itself, bit f+1
 * virtual family f. No match[]: the series itself, plus (all_virtual) the
 * virtual families of a scored series. */
static unsigned matchset_views(const struct matchset *m, const struct series_info *s,
                               int all_virtual)
{
	unsigned mask = 0;
	if (m->n == 0) {
		mask = 1u | (all_virtual && prom_scored(s) ? ALL_VIRTUAL_MASK : 0u);
	} else {
		for (size_t i = 0; i < m->n; i++) {
			int f = prom_query_matches(&m->q[i], s);
			if (f != -2)
				mask |= 1u << (f + 1);
		}
	}
	if (!m->has_window || !mask)
		return mask;
	if (s->samples == 0)
		return 0;
	/* the window must meet the view's data: the history for the series and
	 * the history families, (last, last + horizon] for the forecasts */
	if (s->last_ts_ms < m->start || s->first_ts_ms > m->end)
		mask &= FORECAST_MASK;
	if (s->last_ts_ms >= m->end || prom_horizon_end(s->last_ts_ms) < m->start)
		mask &= ~FORECAST_MASK;
	return mask;
}

/* ------------------------------------------------------------------------ */
/* string set (labels, label values, metadata) */

struct strset {
	char **slot;
	size_t mask, n;
	int failed;
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

/* Returns the slot index of s (inserted if new), or -1. */
static long strset_add(struct strset *st, const char *s)
{
	if (st->failed)
		return -1;
	if ((st->n + 1) * 2 > (st->slot ? st->mask + 1 : 0)) {
		if (st->n >= MAX_SET_ENTRIES) {
			st->failed = 1;
			return -1;
		}
		size_t ncap = st->slot ? (st->mask + 1) * 2 : 64;
		char **ns = calloc(ncap, sizeof *ns);
		if (!ns) {
			st->failed = 1;
			return -1;
		}
		for (size_t i = 0; st->slot && i <= st->mask; i++) {
			if (!st->slot[i])
				continue;
			size_t j = str_hash(st->slot[i]) & (ncap - 1);
			while (ns[j])
				j = (j + 1) & (ncap - 1);
			ns[j] = st->slot[i];
		}
		free(st->slot);
		st->slot = ns;
		st->mask = ncap - 1;
	}
	size_t i = str_hash(s) & st->mask;
	for (; st->slot[i]; i = (i + 1) & st->mask)
		if (!strcmp(st->slot[i], s))
			return (long)i;
	st->slot[i] = strdup(s);
	if (!st->slot[i]) {
		st->failed = 1;
		return -1;
	}
	st->n++;
	return (long)i;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The members, sorted (borrowed from the set); caller frees the array. */
static char **strset_sorted(const struct strset *st)
{
	char **v = malloc((st->n ? st->n : 1) * sizeof *v);
	if (!v)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; st->slot && i <= st->mask; i++)
		if (st->slot[i])
			v[k++] = st->slot[i];
	qsort(v, k, sizeof *v, cmp_str);
	return v;
}

static void strset_free(struct strset *st)
{
	for (size_t i = 0; st->slot && i <= st->mask; i++)
		free(st->slot[i]);
	free(st->slot);
	memset(st, 0, sizeof *st);
}

static void send_string_list(struct api_response *resp, struct strset *st)
{
	char **v = st->failed ? NULL : strset_sorted(st);
	if (!v) {
		api_error(resp, 500, "internal", "out of memory (or more than %d distinct values)",
		          MAX_SET_ENTRIES);
		return;
	}
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, "{\"status\":\"success\",\"data\":[");
	for (size_t i = 0; i < st->n; i++) {
		if (i)
			obuf_add(&b, ",", 1);
		obuf_json_str(&b, v[i], strlen(v[i]));
	}
	obuf_puts(&b, "]}\n");
	free(v);
	api_send(resp, 200, "application/json", &b);
}

/* ------------------------------------------------------------------------ */
/* /api/v1/series */

struct series_ctx {
	struct obuf *b;
	const struct matchset *m;
	size_t n;
};

static int series_cb(void *vctx, const struct series_info *s)
{
	struct series_ctx *c = vctx;
	unsigned mask = matchset_views(c->m, s, 0);
	for (int f = FAM_PLAIN; f < NFAMILIES; f++) {
		if (!(mask & (1u << (f + 1))))
			continue;
		if (c->n++)
			obuf_add(c->b, ",", 1);
		prom_json_view_labels(c->b, s->labels, f);
	}
	return c->b->failed;
}

void api_prom_series(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp)
{
	struct matchset m;
	if (matchset_init(&m, req, resp))
		return;
	struct obuf b;
	obuf_init(&b, 0);
	struct series_ctx c = { &b, &m, 0 };
	obuf_puts(&b, "{\"status\":\"success\",\"data\":[");
	engine_series_foreach(api->engine, NULL, 0, series_cb, &c);
	obuf_puts(&b, "]}\n");
	matchset_free(&m);
	api_send(resp, 200, "application/json", &b);
}

/* ------------------------------------------------------------------------ */
/* /api/v1/labels and /api/v1/label/<name>/values */

struct labels_ctx {
	const struct matchset *m;
	struct strset set;
	const char *name;     /* label values: the label; NULL: label names */
};

static int labels_cb(void *vctx, const struct series_info *s)
{
	struct labels_ctx *c = vctx;
	unsigned mask = matchset_views(c->m, s, 1);
	for (int f = FAM_PLAIN; f < NFAMILIES; f++) {
		if (!(mask & (1u << (f + 1))))
			continue;
		if (c->name) {
			const char *v = prom_view_label(s->labels, f, c->name);
			if (v && *v)
				strset_add(&c->set, v);
			continue;
		}
		if (f != FAM_PLAIN)
			strset_add(&c->set, "series_name");
		for (size_t i = 0; i < s->labels->n; i++) {
			const char *n = s->labels->names[i];
			if (f != FAM_PLAIN && !strcmp(n, "series_name"))
				n = "exported_series_name";
			strset_add(&c->set, n);
		}
	}
	return c->set.failed;
}

static void handle_labels(struct api_ctx *api, const struct api_request *req,
                          struct api_response *resp, const char *name)
{
	struct matchset m;
	if (matchset_init(&m, req, resp))
		return;
	struct labels_ctx c = { .m = &m, .name = name };
	engine_series_foreach(api->engine, NULL, 0, labels_cb, &c);
	send_string_list(resp, &c.set);
	strset_free(&c.set);
	matchset_free(&m);
}

int api_prom_is_label_values(const char *path)
{
	static const char pre[] = "/api/v1/label/", suf[] = "/values";
	size_t n = strlen(path), lp = sizeof pre - 1, ls = sizeof suf - 1;
	return n > lp + ls && !strncmp(path, pre, lp) && !strcmp(path + n - ls, suf) &&
	       !memchr(path + lp, '/', n - lp - ls);
}

static void handle_label_values(struct api_ctx *api, const struct api_request *req,
                                struct api_response *resp)
{
	const char *p = req->path + strlen("/api/v1/label/");
	size_t n = strlen(p) - strlen("/values");
	char name[256];
	if (n >= sizeof name) {
		api_error(resp, 400, "bad_data", "invalid label name: '%.64s...'", p);
		return;
	}
	memcpy(name, p, n);
	name[n] = 0;
	prom_url_decode(name);
	if (!label_name_valid(name, strlen(name))) {
		api_error(resp, 400, "bad_data", "invalid label name: '%s'", name);
		return;
	}
	handle_labels(api, req, resp, name);
}

/* ------------------------------------------------------------------------ */
/* /api/v1/metadata */

/* Set members are "<family>\x01<type letter>": one family can carry two
 * types (Prometheus answers a list per family), and sorting them sorts by
 * family. */
enum { MT_GAUGE = 'g', MT_COUNTER = 'c', MT_HISTOGRAM = 'h', MT_DERIVED = 'd' };

struct meta_ctx {
	struct strset set;
	int any_scored;
};

static int meta_cb(void *vctx, const struct series_info *s)
{
	struct meta_ctx *c = vctx;
	const char *name = labels_metric_name(s->labels);
	size_t n = strlen(name);
	int t = s->kind == SERIES_BUCKET    ? MT_HISTOGRAM :
	        s->kind == SERIES_COUNTER   ? MT_COUNTER :
	        s->kind == SERIES_DERIVED   ? MT_DERIVED : MT_GAUGE;
	if (t == MT_HISTOGRAM && n > 7)
		n -= 7; /* <family>_bucket */
	if (prom_scored(s))
		c->any_scored = 1;
	char key[300];
	snprintf(key, sizeof key, "%.*s\x01%c", (int)(n > 280 ? 280 : n), name, t);
	strset_add(&c->set, key);
	return c->set.failed;
}

static int has_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n > k && !memcmp(s + n - k, suf, k);
}

static int strset_has(const struct strset *st, const char *s)
{
	if (!st->slot)
		return 0;
	for (size_t i = str_hash(s) & st->mask; st->slot[i]; i = (i + 1) & st->mask)
		if (!strcmp(st->slot[i], s))
			return 1;
	return 0;
}

static void meta_entry(struct obuf *b, int t, const char *help)
{
	static const char *const tname[] = { "gauge", "counter", "histogram" };
	int k = t == MT_COUNTER ? 1 : t == MT_HISTOGRAM ? 2 : 0;
	obuf_printf(b, "{\"type\":\"%s\",\"help\":", tname[k]);
	obuf_json_str(b, help, strlen(help));
	obuf_puts(b, ",\"unit\":\"\"}");
}

static void handle_metadata(struct api_ctx *api, const struct api_request *req,
                            struct api_response *resp)
{
	const char *metric = api_arg(req, "metric");
	const char *ls = api_arg(req, "limit");
	long limit = -1;
	if (ls && *ls) {
		char *end;
		limit = strtol(ls, &end, 10);
		if (*end) {
			api_error(resp, 400, "bad_data", "invalid parameter 'limit': '%.32s'", ls);
			return;
		}
		if (limit == 0)
			limit = -1; /* Prometheus: 0 means no limit */
	}
	struct meta_ctx c;
	memset(&c, 0, sizeof c);
	engine_series_foreach(api->engine, NULL, 0, meta_cb, &c);
	char **v = c.set.failed ? NULL : strset_sorted(&c.set);
	if (!v) {
		strset_free(&c.set);
		api_error(resp, 500, "internal", "out of memory");
		return;
	}
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, "{\"status\":\"success\",\"data\":{");
	long emitted = 0;
	const char *open = NULL; /* family whose list is open */
	size_t open_len = 0;
	for (size_t i = 0; i < c.set.n; i++) {
		const char *sep = strchr(v[i], '\x01');
		size_t n = (size_t)(sep - v[i]);
		int t = (unsigned char)sep[1];
		/* <family>_sum and _count of a histogram family belong to it */
		if (t == MT_COUNTER && (has_suffix(v[i], n, "_sum") || has_suffix(v[i], n, "_count"))) {
			char parent[300];
			size_t k = n - (has_suffix(v[i], n, "_sum") ? 4 : 6);
			snprintf(parent, sizeof parent, "%.*s\x01%c", (int)k, v[i], MT_HISTOGRAM);
			if (strset_has(&c.set, parent))
				continue;
		}
		if (metric && *metric && (strlen(metric) != n || memcmp(metric, v[i], n)))
			continue;
		if (open && open_len == n && !memcmp(open, v[i], n)) {
			obuf_add(&b, ",", 1);
		} else {
			if (limit >= 0 && emitted >= limit)
				break;
			if (open)
				obuf_add(&b, "],", 2);
			obuf_json_str(&b, v[i], n);
			obuf_add(&b, ":[", 2);
			open = v[i];
			open_len = n;
			emitted++;
		}
		meta_entry(&b, t, t == MT_DERIVED ? "Derived by foreshock: the per-second rate of a "
		                                    "counter, or a quantile of a histogram." : "");
	}
	if (open)
		obuf_add(&b, "]", 1);
	for (int f = 0; f < NFAMILIES && c.any_scored && (limit < 0 || emitted < limit); f++) {
		if (metric && *metric && strcmp(metric, fam_name[f]))
			continue;
		obuf_puts(&b, emitted++ ? "," : "");
		obuf_json_str(&b, fam_name[f], strlen(fam_name[f]));
		obuf_add(&b, ":[", 2);
		meta_entry(&b, MT_GAUGE, fam_help[f]);
		obuf_add(&b, "]", 1);
	}
	obuf_puts(&b, "}}\n");
	free(v);
	strset_free(&c.set);
	api_send(resp, 200, "application/json", &b);
}

/* ------------------------------------------------------------------------ */
/* status probes */

static void handle_buildinfo(struct api_ctx *api, struct api_response *resp)
{
	struct obuf b;
	obuf_init(&b, 0);
	const char *v = api->version ? api->version : "unknown";
	obuf_puts(&b, "{\"status\":\"success\",\"data\":{\"version\":");
	obuf_json_str(&b, v, strlen(v));
	/* no "features": Grafana then treats the source as plain Prometheus */
	obuf_puts(&b, ",\"revision\":\"\",\"branch\":\"\",\"buildUser\":\"foreshock\","
	              "\"buildDate\":\"\",\"goVersion\":\"none (foreshock is written in C)\","
	              "\"application\":\"foreshock\"}}\n");
	api_send(resp, 200, "application/json", &b);
}

static void handle_runtimeinfo(struct api_ctx *api, struct api_response *resp)
{
	struct obuf b;
	obuf_init(&b, 0);
	int64_t start = api->stats ? api->stats->start_time_ms : 0;
	obuf_puts(&b, "{\"status\":\"success\",\"data\":{\"startTime\":");
	obuf_json_time(&b, start);
	obuf_puts(&b, ",\"CWD\":\"\",\"reloadConfigSuccess\":true,\"lastConfigTime\":");
	obuf_json_time(&b, start);
	obuf_puts(&b, ",\"corruptionCount\":0,\"goroutineCount\":0,\"GOMAXPROCS\":0,"
	              "\"GOGC\":\"\",\"GODEBUG\":\"\",\"storageRetention\":\"in-memory history\"}}\n");
	api_send(resp, 200, "application/json", &b);
}

static void send_json(struct api_response *resp, const char *text)
{
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, text);
	api_send(resp, 200, "application/json", &b);
}

void api_prom_handle(struct api_ctx *api, const struct api_request *req,
                     struct api_response *resp)
{
	struct pargs a;
	if (prom_pargs_init(&a, req, 1, resp))
		return;
	const char *p = req->path;
	if (!strcmp(p, "/api/v1/query"))
		handle_query(api, &a.r, resp, 0);
	else if (!strcmp(p, "/api/v1/query_range"))
		handle_query(api, &a.r, resp, 1);
	else if (!strcmp(p, "/api/v1/labels"))
		handle_labels(api, &a.r, resp, NULL);
	else if (api_prom_is_label_values(p))
		handle_label_values(api, &a.r, resp);
	else if (!strcmp(p, "/api/v1/metadata"))
		handle_metadata(api, &a.r, resp);
	else if (!strcmp(p, "/api/v1/status/buildinfo"))
		handle_buildinfo(api, resp);
	else if (!strcmp(p, "/api/v1/status/runtimeinfo"))
		handle_runtimeinfo(api, resp);
	else if (!strcmp(p, "/api/v1/query_exemplars"))
		send_json(resp, "{\"status\":\"success\",\"data\":[]}\n");
	else if (!strcmp(p, "/api/v1/rules"))
		send_json(resp, "{\"status\":\"success\",\"data\":{\"groups\":[]}}\n");
	else
		api_error(resp, 404, "not_found", "unknown path '%.200s'", p);
	prom_pargs_free(&a);
}
