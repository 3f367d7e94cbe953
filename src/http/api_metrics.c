/* http/api_metrics.c — GET /metrics: the daemon's own counters and one gauge per
 * series and result field (score, expected value, band) in the Prometheus
 * text format 0.0.4. Streamed into growable buffers, one per metric family
 * (the format wants each family's lines together), never a JSON tree.
 *
 * Per-series gauges carry the series' own labels, with its metric name moved
 * to the label `series_name` (a label already called series_name is renamed
 * exported_series_name, the way Prometheus renames conflicting labels),
 * then the daemon's external labels (shard, …) that the series lacks, so the
 * gauges of a whole fleet can sit in one TSDB.
 */
#include "http/api.h"
#include "http/handlers.h"
#include "http/route.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "engine/engine.h"
#include "store/rwexport.h"
#include "util/labels.h"
#include "util/selector.h"
#include "store/store.h"

static void prom_value(struct obuf *b, double v)
{
	if (isnan(v)) {
		obuf_puts(b, "NaN");
		return;
	}
	if (isinf(v)) {
		obuf_puts(b, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	char tmp[40];
	for (int p = 15; p <= 17; p++) {
		snprintf(tmp, sizeof tmp, "%.*g", p, v);
		if (strtod(tmp, NULL) == v)
			break;
	}
	obuf_puts(b, tmp);
}

/* Label value escaping of the text format: \\, \" and \n. */
static void prom_label_value(struct obuf *b, const char *s)
{
	obuf_add(b, "\"", 1);
	const char *run = s;
	for (; *s; s++) {
		const char *esc = *s == '\\' ? "\\\\" : *s == '"' ? "\\\"" : *s == '\n' ? "\\n" : NULL;
		if (!esc)
			continue;
		obuf_add(b, run, (size_t)(s - run));
		obuf_puts(b, esc);
		run = s + 1;
	}
	obuf_add(b, run, (size_t)(s - run));
	obuf_add(b, "\"", 1);
}

static void header(struct obuf *b, const char *name, const char *type, const char *help)
{
	obuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(struct obuf *b, const char *name, const char *help, uint64_t v)
{
	header(b, name, "counter", help);
	obuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static uint64_t ld(_Atomic uint64_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

#define SERIES_FAMILIES 5
static const char *const family_name[SERIES_FAMILIES] = {
	"foreshock_anomaly_score", "foreshock_expected_value", "foreshock_expected_lower",
	"foreshock_expected_upper", "foreshock_alert_state",
};
static const char *const family_help[SERIES_FAMILIES] = {
	"Anomaly score in [0,1] of the series' last sample.",
	"Expected value of the series' last sample (the model's baseline).",
	"Lower edge of the expected band at the series' last sample.",
	"Upper edge of the expected band at the series' last sample.",
	"Alert state of the series: 0 inactive, 1 pending, 2 firing.",
};

/* Which series get per-series gauges (see api_metrics). */
struct pick {
	size_t limit;          /* at most this many series */
	int alerting_only;     /* only series with a pending or firing alert */
	size_t exported, omitted;
};

/* Does s get gauges? Counts what it leaves out. */
static int pick_series(struct pick *p, const struct series_info *s)
{
	if (p->alerting_only && s->alert_state == ALERT_INACTIVE) {
		p->omitted++;
		return 0;
	}
	if (p->exported >= p->limit) {
		p->omitted++;
		return 0;
	}
	p->exported++;
	return 1;
}

struct fam_ctx {
	struct obuf fam[SERIES_FAMILIES];
	struct pick pick;
	const struct labels *ext; /* the daemon's external labels, may be NULL */
};

/* The label block of a series' gauges: {series_name="…",<its labels>EXTRA},
 * then each external label (shard, …) the series does not have itself. */
static void series_label_block(struct obuf *lb, const struct labels *l, const char *extra,
                               const struct labels *ext)
{
	obuf_puts(lb, "{series_name=");
	prom_label_value(lb, labels_metric_name(l));
	for (size_t i = 0; i < l->n; i++) {
		const char *n = l->names[i];
		if (!strcmp(n, "__name__"))
			continue;
		obuf_printf(lb, ",%s%s=", strcmp(n, "series_name") ? "" : "exported_", n);
		prom_label_value(lb, l->values[i]);
	}
	if (extra)
		obuf_puts(lb, extra);
	for (size_t i = 0; ext && i < ext->n; i++) {
		const char *n = ext->names[i];
		if (labels_get(l, n) || !strcmp(n, "series_name") || (extra && !strcmp(n, "horizon")))
			continue;
		obuf_printf(lb, ",%s=", n);
		prom_label_value(lb, ext->values[i]);
	}
	obuf_puts(lb, "} ");
}

/* Forecast gauges: the forecast FORECAST_METRIC_HORIZON after each series'
 * last sample, with its 95% interval. */
#define FORECAST_FAMILIES 3
#define FORECAST_METRIC_HORIZON_MS (15 * 60 * 1000)
static const char *const fc_name[FORECAST_FAMILIES] = {
	"foreshock_forecast_value", "foreshock_forecast_lower", "foreshock_forecast_upper",
};
static const char *const fc_help[FORECAST_FAMILIES] = {
	"Forecast of the series 15 minutes after its last sample (point forecast).",
	"Lower edge of the 95% prediction interval of that forecast.",
	"Upper edge of the 95% prediction interval of that forecast.",
};

struct fc_ctx {
	struct obuf fam[FORECAST_FAMILIES];
	struct pick pick;
	const struct labels *ext;
};

static int forecast_metrics_cb(void *vctx, const struct series_info *s,
                               const struct forecast_point *pts, size_t n,
                               const struct breach *br, const struct forecast_info *info)
{
	struct fc_ctx *c = vctx;
	(void)br;
	(void)info;
	if (n == 0 || !pick_series(&c->pick, s))
		return 0;
	struct obuf lb;
	obuf_init(&lb, 0);
	series_label_block(&lb, s->labels, ",horizon=\"15m\"", c->ext);
	double v[FORECAST_FAMILIES] = { pts[0].mean, pts[0].lo95, pts[0].hi95 };
	int failed = lb.failed;
	for (int f = 0; f < FORECAST_FAMILIES && !failed; f++) {
		obuf_puts(&c->fam[f], fc_name[f]);
		obuf_add(&c->fam[f], lb.p, lb.len);
		prom_value(&c->fam[f], v[f]);
		obuf_add(&c->fam[f], "\n", 1);
		failed |= c->fam[f].failed;
	}
	obuf_free(&lb);
	return failed;
}

static int series_metrics_cb(void *vctx, const struct series_info *s)
{
	struct fam_ctx *c = vctx;
	if (!pick_series(&c->pick, s))
		return 0;
	/* label block, shared by the families */
	struct obuf lb;
	obuf_init(&lb, 0);
	series_label_block(&lb, s->labels, NULL, c->ext);
	if (lb.failed) {
		obuf_free(&lb);
		return 1;
	}
	double v[SERIES_FAMILIES] = { s->last.score, s->last.expected, s->last.lower,
		                          s->last.upper, (double)s->alert_state };
	if (s->samples == 0)
		v[0] = v[1] = v[2] = v[3] = NAN;
	int failed = 0;
	for (int f = 0; f < SERIES_FAMILIES; f++) {
		obuf_puts(&c->fam[f], family_name[f]);
		obuf_add(&c->fam[f], lb.p, lb.len);
		prom_value(&c->fam[f], v[f]);
		obuf_add(&c->fam[f], "\n", 1);
		failed |= c->fam[f].failed;
	}
	obuf_free(&lb);
	return failed;
}

/* Forecasts are computed only for series that will get gauges. */
static int forecast_want(void *vctx, const struct series_info *s)
{
	const struct fc_ctx *c = vctx;
	if (c->pick.alerting_only && s->alert_state == ALERT_INACTIVE)
		return 0;
	return c->pick.exported < c->pick.limit;
}

#define CACHED_FAMILIES (SERIES_FAMILIES + FORECAST_FAMILIES)

/* The per-series gauges of one engine shard: the text of each family, what
 * the picks counted, and what they depended on (the generation of the
 * shard, the mode, how many series the earlier shards left to export). */
struct shard_text {
	int valid;
	uint64_t gen;
	int alerting_only;
	size_t budget, fc_budget;
	size_t exported, omitted, fc_exported;
	char *text[CACHED_FAMILIES];
	size_t len[CACHED_FAMILIES];
};

struct metrics_cache {
	pthread_mutex_t mu;        /* held for a whole scrape's per-series part */
	const struct engine *engine; /* what the text was built from */
	const struct labels *ext;
	unsigned n;
	struct shard_text *sh;
};

struct metrics_cache *metrics_cache_new(void)
{
	struct metrics_cache *c = calloc(1, sizeof *c);
	if (!c)
		return NULL;
	c->n = engine_shard_count();
	c->sh = calloc(c->n, sizeof *c->sh);
	if (!c->sh || pthread_mutex_init(&c->mu, NULL) != 0) {
		free(c->sh);
		free(c);
		return NULL;
	}
	return c;
}

static void shard_text_clear(struct shard_text *t)
{
	for (int f = 0; f < CACHED_FAMILIES; f++)
		free(t->text[f]);
	memset(t, 0, sizeof *t);
}

void metrics_cache_free(struct metrics_cache *c)
{
	if (!c)
		return;
	for (unsigned k = 0; k < c->n; k++)
		shard_text_clear(&c->sh[k]);
	free(c->sh);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* Builds shard k's per-series gauges into t (its picks: at most budget and
 * fc_budget series). Returns 0, or -1 out of memory. */
static int build_shard(struct engine *e, const struct labels *ext, unsigned k,
                       const struct selector *sel, size_t nsel, int alerting_only, size_t budget,
                       size_t fc_budget, struct shard_text *t)
{
	struct fam_ctx c;
	c.pick = (struct pick){ .limit = budget, .alerting_only = alerting_only };
	c.ext = ext;
	for (int f = 0; f < SERIES_FAMILIES; f++)
		obuf_init(&c.fam[f], 0);
	struct fc_ctx fc;
	fc.pick = (struct pick){ .limit = fc_budget, .alerting_only = alerting_only };
	fc.ext = ext;
	for (int f = 0; f < FORECAST_FAMILIES; f++)
		obuf_init(&fc.fam[f], 0);
	engine_series_foreach_shard(e, k, sel, nsel, series_metrics_cb, &c);
	engine_forecast_shard(e, k, sel, nsel, FORECAST_METRIC_HORIZON_MS, 1, forecast_want,
	                      forecast_metrics_cb, &fc);
	int failed = 0;
	for (int f = 0; f < CACHED_FAMILIES; f++) {
		struct obuf *b = f < SERIES_FAMILIES ? &c.fam[f] : &fc.fam[f - SERIES_FAMILIES];
		failed |= b->failed;
		size_t len = 0;
		t->text[f] = b->failed ? NULL : obuf_steal(b, &len);
		t->len[f] = t->text[f] ? len : 0;
		obuf_free(b);
	}
	t->alerting_only = alerting_only;
	t->budget = budget;
	t->fc_budget = fc_budget;
	t->exported = c.pick.exported;
	t->omitted = c.pick.omitted;
	t->fc_exported = fc.pick.exported;
	return failed ? -1 : 0;
}

/* The per-series gauges of every shard into fam[] (one buffer per family),
 * from the cache where a shard has not changed (no selectors). Counts into
 * *pick; *reused is the number of shards taken from the cache. */
static int series_gauges(struct api_ctx *api, const struct selector *sel, size_t nsel,
                         struct pick *pick, struct obuf *fam, unsigned *reused)
{
	struct metrics_cache *mc = nsel == 0 ? api->metrics_cache : NULL;
	unsigned nsh = engine_shard_count();
	size_t fc_exported = 0;
	int rc = 0;
	*reused = 0;
	if (mc) {
		pthread_mutex_lock(&mc->mu);
		if (mc->engine != api->engine || mc->ext != api->external_labels || mc->n != nsh) {
			for (unsigned k = 0; k < mc->n; k++) /* another engine: start over */
				shard_text_clear(&mc->sh[k]);
			mc->engine = api->engine;
			mc->ext = api->external_labels;
			if (mc->n != nsh)
				mc = NULL;
		}
	}
	for (unsigned k = 0; k < nsh && rc == 0; k++) {
		size_t budget = pick->limit - pick->exported;
		size_t fc_budget = pick->limit - fc_exported;
		struct shard_text tmp, *t = mc ? &mc->sh[k] : &tmp;
		uint64_t gen = mc ? engine_shard_generation(api->engine, k) : 0; /* before the walk */
		if (mc && t->valid && t->gen == gen && t->alerting_only == pick->alerting_only &&
		    t->budget == budget && t->fc_budget == fc_budget) {
			(*reused)++;
		} else {
			if (mc)
				shard_text_clear(t);
			else
				memset(&tmp, 0, sizeof tmp);
			rc = build_shard(api->engine, api->external_labels, k, sel, nsel,
			                 pick->alerting_only, budget, fc_budget, t);
			t->gen = gen;
			t->valid = rc == 0;
		}
		for (int f = 0; f < CACHED_FAMILIES; f++)
			obuf_add(&fam[f], t->text[f] ? t->text[f] : "", t->len[f]);
		pick->exported += t->exported;
		pick->omitted += t->omitted;
		fc_exported += t->fc_exported;
		if (!mc)
			shard_text_clear(&tmp);
	}
	if (mc)
		pthread_mutex_unlock(&mc->mu);
	return rc;
}

/* The daemon's own counters (selfstats). */
static void self_metrics(struct obuf *b, struct selfstats *st, struct api_ctx *api)
{
	counter(b, "foreshock_samples_accepted_total", "Samples accepted by the engine.",
	        ld(&st->samples_accepted));
	header(b, "foreshock_samples_rejected_total", "counter",
	       "Samples (or lines) not stored, by reason.");
	for (int r = 0; r < REJ__COUNT; r++)
		obuf_printf(b, "foreshock_samples_rejected_total{reason=\"%s\"} %llu\n",
		            selfstats_reject_name((enum reject_reason)r),
		            (unsigned long long)ld(&st->samples_rejected[r]));
	counter(b, "foreshock_fields_ignored_total",
	        "Line-protocol string and boolean fields ignored (not series).",
	        ld(&st->fields_ignored));
	counter(b, "foreshock_bodies_too_large_total",
	        "Request bodies refused with 413 (over the body limit).",
	        ld(&st->bodies_too_large));
	counter(b, "foreshock_writes_shed_total",
	        "Write requests answered 503: too many in flight and the wait queue full "
	        "or its timeout passed (overload).",
	        ld(&st->writes_shed));
	counter(b, "foreshock_writes_queued_total",
	        "Write requests that waited for a slot before their body was read.",
	        ld(&st->writes_queued));
	header(b, "foreshock_write_queue_seconds_total", "counter",
	       "Total time write requests waited for a slot.");
	obuf_printf(b, "foreshock_write_queue_seconds_total %.6f\n",
	            (double)ld(&st->write_queue_us) / 1e6);
	counter(b, "foreshock_reads_shed_total",
	        "API reads answered 503: every read slot busy and the wait queue full or "
	        "its timeout passed.", ld(&st->reads_shed));
	counter(b, "foreshock_http_unauthorized_total",
	        "Requests answered 401: a token is required and none or an unknown one "
	        "was sent.", ld(&st->http_unauthorized));
	counter(b, "foreshock_http_forbidden_total",
	        "Requests answered 403: token of the other scope, foreign Host or "
	        "cross-origin browser request.", ld(&st->http_forbidden));
	counter(b, "foreshock_http_timeouts_total",
	        "Connections closed because request headers or body did not arrive in "
	        "time.", ld(&st->http_timeouts));
	counter(b, "foreshock_responses_too_large_total",
	        "Responses replaced by a 422 because they passed http.max_response.",
	        ld(&st->responses_too_large));
	counter(b, "foreshock_alert_transitions_total",
	        "Alert state transitions written to the store.", ld(&st->alert_transitions));
	counter(b, "foreshock_store_errors_total", "Failed store operations.",
	        api->store ? store_error_count(api->store) : ld(&st->store_errors));
	counter(b, "foreshock_notifications_sent_total", "Alert notifications delivered.",
	        ld(&st->notifications_sent));
	counter(b, "foreshock_notifications_failed_total", "Alert notifications that failed.",
	        ld(&st->notifications_failed));

	header(b, "foreshock_http_requests_total", "counter",
	       "HTTP requests by route and status class.");
	static const char *const cls[6] = { "other", "1xx", "2xx", "3xx", "4xx", "5xx" };
	for (int r = 0; r < ROUTE__COUNT; r++)
		for (int k = 0; k < 6; k++) {
			uint64_t n = ld(&st->requests[r][k]);
			if (n)
				obuf_printf(b,
				            "foreshock_http_requests_total{route=\"%s\",code=\"%s\"} %llu\n",
				            http_route_name((enum http_route)r), cls[k],
				            (unsigned long long)n);
		}
	header(b, "foreshock_http_request_duration_seconds", "histogram",
	       "HTTP request latency by route.");
	for (int r = 0; r < ROUTE__COUNT; r++) {
		uint64_t total = 0;
		for (int k = 0; k <= SELFSTATS_LATENCY_BUCKETS; k++)
			total += ld(&st->latency_bucket[r][k]);
		if (!total)
			continue;
		const char *rn = http_route_name((enum http_route)r);
		uint64_t cum = 0;
		for (int k = 0; k < SELFSTATS_LATENCY_BUCKETS; k++) {
			cum += ld(&st->latency_bucket[r][k]);
			obuf_printf(b,
			            "foreshock_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} "
			            "%llu\n",
			            rn, selfstats_latency_bounds[k], (unsigned long long)cum);
		}
		obuf_printf(b,
		            "foreshock_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
		            "%llu\n",
		            rn, (unsigned long long)total);
		obuf_printf(b, "foreshock_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
		            rn, (double)ld(&st->latency_sum_us[r]) / 1e6);
		obuf_printf(b, "foreshock_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
		            rn, (unsigned long long)total);
	}
	header(b, "process_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch in seconds.");
	obuf_printf(b, "process_start_time_seconds %.3f\n", (double)st->start_time_ms / 1e3);
}

/* The engine's and the store's state, build and identity. */
/* The remote_write exporter (store/rwexport.h), when configured. */
static void export_metrics(struct obuf *b, struct rwexport *x)
{
	struct rwexport_stats xs;
	rwexport_get_stats(x, &xs);
	counter(b, "foreshock_export_samples_total",
	        "Output samples handed to the remote_write exporter.", xs.samples_in);
	counter(b, "foreshock_export_samples_sent_total", "Output samples the TSDB acknowledged.",
	        xs.samples_sent);
	counter(b, "foreshock_export_samples_dropped_total",
	        "Output samples lost: a queue bound hit, refused by the TSDB (4xx), or unsent at stop.",
	        xs.samples_dropped);
	counter(b, "foreshock_export_samples_rejected_total",
	        "Of the dropped samples, those the TSDB refused with a 4xx.", xs.samples_rejected);
	counter(b, "foreshock_export_requests_total", "remote_write requests acknowledged.",
	        xs.requests_sent);
	counter(b, "foreshock_export_requests_failed_total",
	        "remote_write attempts that failed (each retry counted).", xs.requests_failed);
	header(b, "foreshock_export_queue_samples", "gauge",
	       "Output samples waiting to be sent (pending, being encoded or queued).");
	obuf_printf(b, "foreshock_export_queue_samples %llu\n", (unsigned long long)xs.queue_samples);
	header(b, "foreshock_export_queue_bytes", "gauge",
	       "Bytes of those samples (compressed requests and pending records).");
	obuf_printf(b, "foreshock_export_queue_bytes %llu\n", (unsigned long long)xs.queue_bytes);
	header(b, "foreshock_export_last_success_timestamp_seconds", "gauge",
	       "Wall-clock time of the last acknowledged request (0: never).");
	obuf_printf(b, "foreshock_export_last_success_timestamp_seconds %.3f\n",
	            (double)xs.last_success_ms / 1000.0);
}

static void engine_metrics(struct obuf *b, struct api_ctx *api, struct engine_stats *es_out)
{
	struct engine_stats es;
	memset(&es, 0, sizeof es);
	if (api->engine)
		engine_get_stats(api->engine, &es);
	header(b, "foreshock_series", "gauge", "Series in the registry.");
	obuf_printf(b, "foreshock_series %zu\n", es.series);
	header(b, "foreshock_series_limit", "gauge", "Cardinality limit (max series).");
	obuf_printf(b, "foreshock_series_limit %zu\n", es.max_series);
	header(b, "foreshock_series_memory_bytes", "gauge",
	       "Accounted memory of all series (state, labels, history, registry slots).");
	obuf_printf(b, "foreshock_series_memory_bytes %zu\n", es.series_bytes);
	header(b, "foreshock_series_memory_limit_bytes", "gauge",
	       "limits.max_memory: new series are rejected past it (0: no limit).");
	obuf_printf(b, "foreshock_series_memory_limit_bytes %zu\n", es.max_memory);
	header(b, "foreshock_pending_transitions", "gauge",
	       "Alert transitions not yet durable (store failing).");
	obuf_printf(b, "foreshock_pending_transitions %zu\n", es.pending_transitions);
	header(b, "foreshock_state_dirty_series", "gauge",
	       "Series whose learned state changed since it was last written to the store.");
	obuf_printf(b, "foreshock_state_dirty_series %zu\n", es.dirty_series);
	header(b, "foreshock_state_writes_total", "counter",
	       "Series states written to the store (incremental checkpoints).");
	obuf_printf(b, "foreshock_state_writes_total %llu\n", (unsigned long long)es.state_writes);
	header(b, "foreshock_service_state_writes_total", "counter",
	       "Service model states written to the store (after their grid steps).");
	obuf_printf(b, "foreshock_service_state_writes_total %llu\n",
	            (unsigned long long)es.service_state_writes);
	header(b, "foreshock_last_sample_timestamp_seconds", "gauge",
	       "Newest event time seen, in seconds since the epoch.");
	obuf_printf(b, "foreshock_last_sample_timestamp_seconds %.3f\n",
	            (double)es.last_sample_ms / 1e3);
	if (api->store) {
		header(b, "foreshock_store_healthy", "gauge",
		       "1 while the store accepts writes; 0 after a storage fault (disk full, "
		       "read-only, database deleted, replaced or corrupt) until it clears.");
		obuf_printf(b, "foreshock_store_healthy %d\n", store_healthy(api->store, NULL, 0));
	}
	header(b, "foreshock_ready", "gauge", "1 once state restore finished.");
	obuf_printf(b, "foreshock_ready %d\n", atomic_load(&api->ready) ? 1 : 0);
	header(b, "foreshock_build_info", "gauge", "Build information (always 1).");
	obuf_puts(b, "foreshock_build_info{version=");
	prom_label_value(b, api->version ? api->version : "unknown");
	obuf_puts(b, ",model=");
	prom_label_value(b, es.model_name ? es.model_name : "");
	obuf_puts(b, "} 1\n");
	header(b, "foreshock_shard_info", "gauge",
	       "The daemon's external labels (shard=... from --shard or external_labels); always 1.");
	obuf_puts(b, "foreshock_shard_info");
	const struct labels *xl = api->external_labels;
	for (size_t i = 0; xl && i < xl->n; i++) {
		obuf_puts(b, i ? "," : "{");
		obuf_puts(b, xl->names[i]);
		obuf_puts(b, "=");
		prom_label_value(b, xl->values[i]);
	}
	obuf_puts(b, xl && xl->n ? "} 1\n" : " 1\n");
	*es_out = es;
}

/* Per-series gauges: every series while there are at most
 * metrics_series_limit of them; beyond, only the series with an open
 * alert (up to the limit), so that a scrape stays small at 1M series.
 * match[] selectors (as Prometheus' /federate takes them) pick the
 * series instead, still up to the limit. -1 (b freed, resp set) on a bad
 * selector or no memory. */
static int series_metrics(struct obuf *b, struct api_ctx *api, const struct api_request *req,
                          struct api_response *resp, const struct engine_stats *es)
{
	struct selector *sel = NULL;
	size_t nsel = 0;
	for (size_t i = 0; i < req->nargs; i++)
		nsel += !strcmp(req->args[i].key, "match[]");
	if (nsel && !(sel = calloc(nsel, sizeof *sel))) {
		obuf_free(b);
		api_error(resp, 500, "internal", "out of memory");
		return -1;
	}
	for (size_t i = 0, k = 0; i < req->nargs; i++) {
		if (strcmp(req->args[i].key, "match[]"))
			continue;
		char err[256];
		if (selector_parse(&sel[k], req->args[i].value, err, sizeof err) < 0) {
			for (size_t j = 0; j < k; j++)
				selector_free(&sel[j]);
			free(sel);
			obuf_free(b);
			api_error(resp, 400, "bad_data", "invalid parameter 'match[]': %s", err);
			return -1;
		}
		k++;
	}
	struct pick pick = { .limit = api->metrics_series_limit,
		             .alerting_only = nsel == 0 && es->series > api->metrics_series_limit };
	struct obuf fam[CACHED_FAMILIES];
	for (int f = 0; f < CACHED_FAMILIES; f++)
		obuf_init(&fam[f], 0);
	unsigned reused = 0;
	if (series_gauges(api, sel, nsel, &pick, fam, &reused) < 0)
		b->failed = 1;
	for (int f = 0; f < CACHED_FAMILIES; f++) {
		if (f < SERIES_FAMILIES)
			header(b, family_name[f], "gauge", family_help[f]);
		else
			header(b, fc_name[f - SERIES_FAMILIES], "gauge", fc_help[f - SERIES_FAMILIES]);
		if (fam[f].failed)
			b->failed = 1;
		obuf_add(b, fam[f].p ? fam[f].p : "", fam[f].len);
		obuf_free(&fam[f]);
	}
	header(b, "foreshock_metrics_series_exported", "gauge",
	       "Series with per-series gauges in this scrape.");
	obuf_printf(b, "foreshock_metrics_series_exported %zu\n", pick.exported);
	header(b, "foreshock_metrics_series_omitted", "gauge",
	       "Series left out of this scrape's per-series gauges (over metrics.series_limit, "
	       "or no open alert once there are more series than that).");
	obuf_printf(b, "foreshock_metrics_series_omitted %zu\n", pick.omitted);
	header(b, "foreshock_metrics_shards_reused", "gauge",
	       "Engine shards whose per-series gauges this scrape took unchanged from the "
	       "previous scrape (none of their series changed since).");
	obuf_printf(b, "foreshock_metrics_shards_reused %u\n", reused);
	for (size_t j = 0; j < nsel; j++)
		selector_free(&sel[j]);
	free(sel);
	return 0;
}

void api_metrics(struct api_ctx *api, const struct api_request *req, struct api_response *resp)
{
	struct obuf b;
	obuf_init(&b, 0);
	if (api->stats)
		self_metrics(&b, api->stats, api);
	if (api->exporter)
		export_metrics(&b, api->exporter);
	struct engine_stats es;
	engine_metrics(&b, api, &es);
	if (api->engine && api->metrics_series_limit > 0 && series_metrics(&b, api, req, resp, &es) < 0)
		return;
	api_send(resp, 200, "text/plain; version=0.0.4; charset=utf-8", &b);
}
