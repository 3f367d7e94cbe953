/* engine/annotate.c — the parameters and score of per-series alerts, and an
 * alert transition as the store and the notifier
 * see it: labels and annotations JSON, and the per-shard queue of
 * transitions waiting to be written (eng_flush_shard in core.c). */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/log.h"

/* Labels the daemon sets on its anomaly alerts. A series label of the same
 * name cannot override them: it is kept as exported_<name>, as Prometheus
 * does with scraped labels that collide with its own (honor_labels: false). */
static int daemon_label(const char *name)
{
	return !strcmp(name, "alertname") || !strcmp(name, "severity");
}

char *eng_labels_json(const struct labels *l, const char *alertname, const char *severity)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		if (!alertname || !daemon_label(l->names[i]))
			json_object_set_new(o, l->names[i], json_string(l->values[i]));
	if (alertname) {
		for (size_t i = 0; i < l->n; i++) {
			if (!daemon_label(l->names[i]))
				continue;
			char key[64];
			snprintf(key, sizeof key, "exported_%s", l->names[i]);
			if (!json_object_get(o, key)) /* the series' own exported_x wins */
				json_object_set_new(o, key, json_string(l->values[i]));
		}
		json_object_set_new(o, "alertname", json_string(alertname));
		json_object_set_new(o, "severity", json_string(severity ? severity : "warning"));
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

void eng_series_alerting(const struct engine *e, struct model_alerting *out)
{
	*out = *model_alerting(e->model);
	double thr = e->cfg.series_threshold;
	if (thr == 0) {
		thr = out->threshold;
	} else if (thr < 0) {
		/* the hold: a detection whose sample stays beyond its band keeps it;
		 * a model without a hold above its clear threshold alerts on detections */
		double hold = model_hold(e->model);
		thr = hold > out->clear_threshold ? hold : out->threshold;
	}
	out->threshold = thr;
	if (out->clear_threshold > thr)
		out->clear_threshold = thr;
	if (e->cfg.series_for_ms >= 0)
		out->for_ms = e->cfg.series_for_ms;
}

static int has_word(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);
	for (size_t i = 0; i + wl <= n; i++)
		if (!strncasecmp(s + i, w, wl))
			return 1;
	return 0;
}

int eng_series_rise_only(const char *key, const struct labels *l)
{
	size_t n = strcspn(key, "{");
	/* a quantile of a histogram (foreshock:pNN:<name>) is a latency or a size:
	 * in a monitoring stack almost always a duration */
	if (n > 12 && !strncmp(key, "foreshock:p", 11) && key[11] >= '0' && key[11] <= '9')
		return 1;
	if (has_word(key, n, "latency") || has_word(key, n, "duration") ||
	    has_word(key, n, "error") || has_word(key, n, "fail"))
		return 1;
	if (n >= 8 && !strncmp(key + n - 8, "_seconds", 8) && strncmp(key, "foreshock:rate:", 15))
		return 1;
	for (size_t i = 0; l && i < l->n; i++)
		if ((!strcmp(l->names[i], "code") || !strcmp(l->names[i], "status") ||
		     !strcmp(l->names[i], "status_code")) &&
		    l->values[i][0] == '5')
			return 1;
	return 0;
}

int eng_series_hard_break(const struct engine *e, struct series *s, int64_t ts_ms, double value,
                          double score, const struct det_result *r)
{
	double f = e->cfg.series_break_factor;
	if (!(f > 1) || s->rise_only != 2)
		return 0;
	if (!s->brk_from_ms)
		s->brk_from_ms = ts_ms;
	int anomalous = score > 0 && score >= e->series_al.threshold;
	/* a day of history: the reference has seen a daily cycle */
	int armed = ts_ms - s->brk_from_ms >= 86400000LL && s->brk_peak > 0;
	int hard = anomalous && armed && r->direction > 0 && value >= f * s->brk_peak;
	if (anomalous) {
		if (value > s->brk_run_peak)
			s->brk_run_peak = value;
	} else {
		/* a run's peak counts once it is over: a deploy blip raises the
		 * bar for the next one, an incident's own samples do not */
		double v = value > s->brk_run_peak ? value : s->brk_run_peak;
		if (isfinite(v) && v > s->brk_peak)
			s->brk_peak = v;
		s->brk_run_peak = 0;
	}
	if (!hard) {
		s->brk_since_ms = 0;
		return 0;
	}
	if (!s->brk_since_ms)
		s->brk_since_ms = ts_ms;
	return ts_ms - s->brk_since_ms >= e->cfg.series_break_ms;
}

double eng_series_alert_score(const struct engine *e, struct series *s, double value,
                              const struct det_result *r)
{
	double f = e->cfg.series_min_factor, x = r->expected;
	if (!(f > 1))
		return r->score;
	if (!s->rise_only)
		s->rise_only = eng_series_rise_only(labels_metric_name(&s->labels), &s->labels) ? 2 : 1;
	/* a p99 falling back after an incident, errors reading 0 at night */
	if (s->rise_only == 2 && r->direction < 0)
		return 0.0;
	/* outside its band: a ratio of a handful of requests that reads 0 against
	 * an expected 0.0004 (band 0 to 0.003) is no anomaly, however far below */
	if (!isfinite(x) || r->direction == 0) /* no expected value (yet): nothing to be off */
		return 0.0;
	int far;
	if (x > 0 && value >= 0)
		far = value >= f * x || value * f <= x;
	else /* around or below zero: the deviation against the expected's size */
		far = fabs(value - x) >= (f - 1) * fabs(x) && value != x;
	return far ? r->score : 0.0;
}

static void fmt_num(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%.6g", v);
}

static char *annotations_json(const struct engine *e, const struct series *s, const char *key,
                              const struct det_result *r, double value, enum alert_event ev)
{
	char val[32], exp[32], lo[32], hi[32];
	fmt_num(val, sizeof val, value);
	fmt_num(exp, sizeof exp, r->expected);
	/* the band as the unit allows it (no negative latency, ratios in [0, 1]) */
	double ulo, uhi, blo = r->lower, bhi = r->upper;
	if (forecast_unit_range(key, &ulo, &uhi)) {
		blo = blo < ulo ? ulo : blo > uhi ? uhi : blo;
		bhi = bhi > uhi ? uhi : bhi < ulo ? ulo : bhi;
	}
	fmt_num(lo, sizeof lo, blo);
	fmt_num(hi, sizeof hi, bhi);
	const char *dir = r->direction > 0 ? "above" : r->direction < 0 ? "below" : "within";
	const struct model_alerting *al = &e->series_al;
	char summary[1024], desc[2048];
	if (ev == AEV_RESOLVED || ev == AEV_CANCELLED) {
		snprintf(summary, sizeof summary,
		         "%s is back to normal: %s, expected %s (band %s to %s)", key, val, exp, lo,
		         hi);
		/* a pending alert ends below the threshold (`for` holds throughout),
		 * a firing one below the clear threshold */
		snprintf(desc, sizeof desc,
		         "Model '%s' score fell to %.3f (below %.3f); the highest score of this alert "
		         "was %.3f.",
		         model_name(e->model), r->score,
		         ev == AEV_CANCELLED ? al->threshold : al->clear_threshold, s->alert.peak_score);
	} else {
		snprintf(summary, sizeof summary,
		         "%s is anomalous: %s, %s the expected %s (band %s to %s)", key, val, dir, exp,
		         lo, hi);
		char held[160] = "";
		if (al->for_ms > 0 || e->cfg.series_min_factor > 1)
			snprintf(held, sizeof held, " It has been at least %.3g times off its expected "
			         "value with a score of at least %.3f for %lld s.",
			         e->cfg.series_min_factor > 1 ? e->cfg.series_min_factor : 1.0,
			         al->threshold, (long long)(al->for_ms / 1000));
		snprintf(desc, sizeof desc,
		         "Model '%s' scored %.3f (threshold %.3f); the component that fired most was "
		         "'%s'. Value %s is %s the expected band [%s, %s] around %s.%s",
		         model_name(e->model), r->score, al->threshold,
		         r->component ? r->component : "unknown", val, dir, lo, hi, exp, held);
	}
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "summary", json_string(summary));
	json_object_set_new(o, "description", json_string(desc));
	json_object_set_new(o, "series", json_string(key));
	json_object_set_new(o, "expected", json_string(exp));
	json_object_set_new(o, "lower", json_string(lo));
	json_object_set_new(o, "upper", json_string(hi));
	json_object_set_new(o, "observed", json_string(val));
	json_object_set_new(o, "component", json_string(r->component ? r->component : ""));
	json_object_set_new(o, "direction", json_string(dir));
	json_object_set_new(o, "model", json_string(model_name(e->model)));
	if (e->external_url) {
		char *url = NULL;
		if (asprintf(&url, "%s/api/v1/anomalies?series=%s", e->external_url, key) >= 0) {
			json_object_set_new(o, "link", json_string(url));
			free(url);
		}
	}
	char *out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return out;
}

/* Queue one transition of the alert whose state machine is f. Takes
 * ownership of key, labels and annotations (freed on failure). Assigns the
 * alert id when the transition opens a new alert. */
void eng_queue_rec(struct engine *e, struct shard *sh, struct alert_fsm *f,
                      enum alert_event ev, char *key, char *labels, char *annotations, int64_t ts,
                      double value, double score)
{
	if (!key || !labels || !annotations)
		goto oom;
	if (sh->npend == sh->cappend) {
		size_t ncap = sh->cappend ? sh->cappend * 2 : 16;
		struct pending_tr *np = realloc(sh->pend, ncap * sizeof *np);
		if (!np)
			goto oom;
		sh->pend = np;
		sh->cappend = ncap;
	}
	struct pending_tr *p = &sh->pend[sh->npend];
	memset(p, 0, sizeof *p);
	if (ev == AEV_PENDING || (ev == AEV_FIRING && f->active_at_ms == ts && f->alert_id == 0)) {
		p->new_alert = 1;
		f->alert_id = atomic_fetch_add(&e->next_alert_id, 1);
	}
	p->rec.id = f->alert_id;
	p->rec.series_key = key;
	p->rec.labels_json = labels;
	p->rec.annotations_json = annotations;
	p->rec.state = alert_event_name(ev);
	p->rec.active_at_ms = f->active_at_ms;
	p->rec.firing_at_ms = f->firing_at_ms;
	p->rec.resolved_at_ms = (ev == AEV_RESOLVED || ev == AEV_CANCELLED) ? ts : 0;
	p->rec.event_at_ms = ts;
	p->rec.value = value;
	p->rec.score = score;
	sh->npend++;
	atomic_fetch_add(&sh->npend_a, 1);
	atomic_fetch_add_explicit(&e->stats->alert_transitions, 1, memory_order_relaxed);
	log_msg(LOG_INFO, "event=alert_%s alert_id=%lld series=%s score=%.3f value=%g",
	        alert_event_name(ev), (long long)p->rec.id, key, score, value);
	return;
oom:
	log_msg(LOG_ERROR, "event=alert_dropped series=%s reason=oom", key ? key : "?");
	free(key);
	free(labels);
	free(annotations);
}

void eng_queue_transition(struct engine *e, struct shard *sh, struct series *s,
                             enum alert_event ev, const struct det_result *r, int64_t ts,
                             double value)
{
	char *key = series_key_dup(s);
	eng_queue_rec(e, sh, &s->alert, ev, key,
	          eng_labels_json(&s->labels, e->alertname, model_alerting(e->model)->severity),
	          key ? annotations_json(e, s, key, r, value, ev) : NULL, ts, value, r->score);
}
