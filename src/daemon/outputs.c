/* daemon/outputs.c — the engine's outputs as remote_write series
 * (outputs.h). Every series carries the scored series' labels with its
 * metric name as series_name (a label already called series_name becomes
 * exported_series_name, as on /metrics), plus foreshock_service and
 * foreshock_role when the series feeds a service model.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "daemon/outputs.h"
#include "detect/detector.h"
#include "detect/forecast.h"
#include "engine/engine.h"
#include "service/service.h"
#include "store/rwexport.h"
#include "util/labels.h"

#define MAX_REFS 48
/* le bounds of foreshock_anomaly_score_bucket (scores are in [0,1]) */
#define NBUCKETS 11
static const double score_le[NBUCKETS - 1] = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0 };
static const char *const score_le_txt[NBUCKETS] = { "0.1", "0.2", "0.3", "0.4", "0.5", "0.6",
	                                            "0.7", "0.8", "0.9", "1", "+Inf" };

/* Per service: counters that only grow (exported as *_total / _bucket). */
struct svc_acc {
	char name[64];
	double requests, errors;          /* integrated from the per-second signals */
	double bucket[NBUCKETS];          /* members' scores, cumulative per le */
	double score_sum;
};

struct outputs {
	struct rwexport *x;
	int64_t fc_horizon_ms;
	char horizon[24];
	pthread_mutex_t mu;               /* guards acc */
	struct svc_acc *acc;
	size_t nacc, capacc;
};

static void dur_label(char *buf, size_t len, int64_t ms)
{
	if (ms % 86400000 == 0)
		snprintf(buf, len, "%lldd", (long long)(ms / 86400000));
	else if (ms % 3600000 == 0)
		snprintf(buf, len, "%lldh", (long long)(ms / 3600000));
	else if (ms % 60000 == 0)
		snprintf(buf, len, "%lldm", (long long)(ms / 60000));
	else
		snprintf(buf, len, "%llds", (long long)(ms / 1000));
}

struct outputs *outputs_new(struct rwexport *x, int64_t fc_horizon_ms)
{
	struct outputs *o = calloc(1, sizeof *o);
	if (!o)
		return NULL;
	o->x = x;
	o->fc_horizon_ms = fc_horizon_ms;
	dur_label(o->horizon, sizeof o->horizon, fc_horizon_ms);
	pthread_mutex_init(&o->mu, NULL);
	return o;
}

void outputs_free(struct outputs *o)
{
	if (!o)
		return;
	pthread_mutex_destroy(&o->mu);
	free(o->acc);
	free(o);
}

/* The service's accumulator (created on first use). Under o->mu. */
static struct svc_acc *acc_get(struct outputs *o, const char *name)
{
	for (size_t i = 0; i < o->nacc; i++)
		if (!strcmp(o->acc[i].name, name))
			return &o->acc[i];
	if (o->nacc == o->capacc) {
		size_t cap = o->capacc ? 2 * o->capacc : 8;
		struct svc_acc *a = realloc(o->acc, cap * sizeof *a);
		if (!a)
			return NULL;
		o->acc = a;
		o->capacc = cap;
	}
	struct svc_acc *a = &o->acc[o->nacc++];
	memset(a, 0, sizeof *a);
	snprintf(a->name, sizeof a->name, "%s", name);
	return a;
}

static struct label_ref ref(const char *name, const char *value)
{
	return (struct label_ref){ name, strlen(name), value, value ? strlen(value) : 0 };
}

static void add(struct rwexport_buf *b, const char *name, const struct label_ref *refs, size_t n,
                int64_t ts, double v)
{
	if (isfinite(v))
		rwexport_buf_add(b, name, refs, n, ts, v);
}

/* ---- series ------------------------------------------------------------- */

static void on_series(void *ctx, const struct engine_output *eo)
{
	struct outputs *o = ctx;
	const struct labels *l = eo->labels;
	struct label_ref refs[MAX_REFS + 6];
	size_t n = 0;
	refs[n++] = ref("series_name", labels_metric_name(l));
	for (size_t i = 0; i < l->n && n < MAX_REFS; i++) {
		const char *name = l->names[i];
		if (!strcmp(name, "__name__"))
			continue;
		if (!strcmp(name, "series_name"))
			name = "exported_series_name";
		else if (!strcmp(name, "foreshock_service") || !strcmp(name, "foreshock_role"))
			continue; /* ours */
		refs[n++] = ref(name, l->values[i]);
	}
	if (eo->service) {
		refs[n++] = ref("foreshock_service", eo->service);
		if (eo->role)
			refs[n++] = ref("foreshock_role", eo->role);
	}
	size_t base = n;
	const struct det_result *d = eo->det;
	int64_t ts = eo->ts_ms;
	struct rwexport_buf b = { 0 };
	add(&b, "foreshock_value", refs, n, ts, eo->value);
	add(&b, "foreshock_anomaly_score", refs, n, ts, d->score);
	add(&b, "foreshock_expected_value", refs, n, ts, d->expected);
	add(&b, "foreshock_expected_lower", refs, n, ts, d->lower);
	add(&b, "foreshock_expected_upper", refs, n, ts, d->upper);
	add(&b, "foreshock_alert_state", refs, n, ts, (double)eo->alert_state);
	if (eo->fc) {
		refs[n++] = ref("horizon", o->horizon);
		add(&b, "foreshock_forecast_value", refs, n, ts, eo->fc->mean);
		add(&b, "foreshock_forecast_lower", refs, n, ts, eo->fc->lo95);
		add(&b, "foreshock_forecast_upper", refs, n, ts, eo->fc->hi95);
		add(&b, "foreshock_forecast_lower80", refs, n, ts, eo->fc->lo80);
		add(&b, "foreshock_forecast_upper80", refs, n, ts, eo->fc->hi80);
		n = base;
	}
	if (eo->alert_state == ALERT_PENDING || eo->alert_state == ALERT_FIRING) {
		refs[n++] = ref("alertname", eo->alertname);
		refs[n++] = ref("severity", eo->severity);
		add(&b, "ALERTS_FOR_STATE", refs, n, ts, (double)eo->active_at_ms / 1000.0);
		refs[n++] = ref("alertstate", eo->alert_state == ALERT_FIRING ? "firing" : "pending");
		add(&b, "ALERTS", refs, n, ts, 1);
		n = base;
	}
	rwexport_submit(o->x, &b);
	rwexport_buf_free(&b);
	if (eo->service && isfinite(d->score)) {
		pthread_mutex_lock(&o->mu);
		struct svc_acc *a = acc_get(o, eo->service);
		if (a) {
			for (int i = 0; i < NBUCKETS; i++)
				if (i == NBUCKETS - 1 || d->score <= score_le[i])
					a->bucket[i]++;
			a->score_sum += d->score;
		}
		pthread_mutex_unlock(&o->mu);
	}
}

/* ---- services ----------------------------------------------------------- */

static void on_service(void *ctx, const struct service_output *so)
{
	struct outputs *o = ctx;
	struct rwexport_buf b = { 0 };
	struct label_ref r[8];
	int64_t ts = so->ts_ms;
	r[0] = ref("service", so->name);
	int health = 0;
	for (size_t i = 0; i < so->nalerts; i++) {
		int st = so->alert[i].state;
		if (st == ALERT_FIRING && !strcmp(so->alert[i].severity, "critical"))
			health = 2;
		else if ((st == ALERT_FIRING || st == ALERT_PENDING) && health < 1)
			health = 1;
	}
	add(&b, "foreshock_service_health", r, 1, ts, health);
	add(&b, "foreshock_service_risk", r, 1, ts, so->risk);
	for (size_t c = 0; c < so->ncomp; c++) {
		r[1] = ref("component", so->comp_name[c]);
		add(&b, "foreshock_service_risk_component", r, 2, ts, so->comp[c]);
	}
	static const char *const breach[3] = { "capacity", "latency_slo", "saturation" };
	double eta[3] = { so->eta_capacity_s, so->eta_latency_slo_s, so->eta_saturation_s };
	for (int i = 0; i < 3; i++) {
		r[1] = ref("breach", breach[i]);
		add(&b, "foreshock_service_time_to_breach_seconds", r, 2, ts, eta[i]);
	}
	for (size_t w = 0; w < so->nwin; w++) {
		char lg[24], sh[24], fa[32];
		dur_label(lg, sizeof lg, so->win[w].long_ms);
		dur_label(sh, sizeof sh, so->win[w].short_ms);
		snprintf(fa, sizeof fa, "%g", so->win[w].factor);
		r[1] = ref("long", lg);
		r[2] = ref("short", sh);
		r[3] = ref("factor", fa);
		r[4] = ref("action", so->win[w].action);
		r[5] = ref("window", "long");
		add(&b, "foreshock_service_burn_rate", r, 6, ts, so->win[w].burn_long);
		r[5] = ref("window", "short");
		add(&b, "foreshock_service_burn_rate", r, 6, ts, so->win[w].burn_short);
	}
	add(&b, "foreshock_service_requests_per_second", r, 1, ts, so->requests);
	add(&b, "foreshock_service_errors_per_second", r, 1, ts, so->errors);
	add(&b, "foreshock_service_error_ratio", r, 1, ts, so->error_ratio);
	add(&b, "foreshock_service_latency_seconds", r, 1, ts, so->latency_s);
	add(&b, "foreshock_service_latency_threshold_seconds", r, 1, ts, so->latency_threshold_s);
	add(&b, "foreshock_service_saturation", r, 1, ts, so->saturation);
	add(&b, "foreshock_service_instances", r, 1, ts, so->instances);
	add(&b, "foreshock_service_capacity_per_second", r, 1, ts, so->capacity);
	add(&b, "foreshock_service_requests_expected_per_second", r, 1, ts, so->requests_expected);
	add(&b, "foreshock_service_requests_hi95_per_second", r, 1, ts, so->requests_hi95);
	add(&b, "foreshock_service_latency_expected_seconds", r, 1, ts, so->latency_expected_s);
	add(&b, "foreshock_service_latency_hi95_seconds", r, 1, ts, so->latency_hi95_s);
	for (size_t i = 0; i < so->nalerts; i++) {
		int st = so->alert[i].state;
		if (st != ALERT_PENDING && st != ALERT_FIRING)
			continue;
		r[1] = ref("alertname", so->alert[i].alertname);
		r[2] = ref("severity", so->alert[i].severity);
		add(&b, "ALERTS_FOR_STATE", r, 3, ts, (double)so->alert[i].active_at_ms / 1000.0);
		r[3] = ref("alertstate", st == ALERT_FIRING ? "firing" : "pending");
		add(&b, "ALERTS", r, 4, ts, 1);
	}
	/* counters: requests and errors integrated over the grid step; the
	 * members' score histogram */
	pthread_mutex_lock(&o->mu);
	struct svc_acc *a = acc_get(o, so->name);
	if (a) {
		double step_s = (double)so->step_ms / 1000.0;
		double tot = isfinite(so->total) ? so->total : so->requests;
		if (isfinite(tot))
			a->requests += tot * step_s;
		if (isfinite(so->errors))
			a->errors += so->errors * step_s;
		add(&b, "foreshock_service_requests_total", r, 1, ts, a->requests);
		add(&b, "foreshock_service_errors_total", r, 1, ts, a->errors);
		struct label_ref h[2] = { ref("foreshock_service", so->name), { 0 } };
		for (int i = 0; i < NBUCKETS; i++) {
			h[1] = ref("le", score_le_txt[i]);
			add(&b, "foreshock_anomaly_score_bucket", h, 2, ts, a->bucket[i]);
		}
		add(&b, "foreshock_anomaly_score_count", h, 1, ts, a->bucket[NBUCKETS - 1]);
		add(&b, "foreshock_anomaly_score_sum", h, 1, ts, a->score_sum);
	}
	pthread_mutex_unlock(&o->mu);
	rwexport_submit(o->x, &b);
	rwexport_buf_free(&b);
}

void outputs_attach(struct outputs *o, struct engine *e)
{
	struct engine_outputs eo = { .series = on_series,
		                     .service = on_service,
		                     .ctx = o,
		                     .fc_horizon_ms = o->fc_horizon_ms };
	engine_set_outputs(e, &eo);
}

void outputs_detach(struct outputs *o, struct engine *e)
{
	(void)o;
	engine_set_outputs(e, NULL);
}
