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

/* Is s[0..n) valid UTF-8 as jansson's json_string() checks it (no overlong
 * form, no surrogate, nothing above U+10FFFF)? */
static int json_utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t len;
		uint32_t cp;
		if (c >= 0xC2 && c <= 0xDF) {
			len = 2;
			cp = c & 0x1F;
		} else if (c >= 0xE0 && c <= 0xEF) {
			len = 3;
			cp = c & 0x0F;
		} else if (c >= 0xF0 && c <= 0xF4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i < len)
			return 0;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3F);
		}
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (len == 3 && cp < 0x800) ||
		    (len == 4 && cp < 0x10000))
			return 0;
		i += len;
	}
	return 1;
}

char *eng_json_strings(const char *const *keys, const char *const *vals, size_t n)
{
	struct obuf b;
	obuf_init(&b, 0);
	obuf_add(&b, "{", 1);
	int first = 1;
	for (size_t k = 0; k < n; k++) {
		const char *v = vals[k];
		size_t len = v ? strlen(v) : 0;
		if (!v || !json_utf8_ok((const unsigned char *)v, len))
			continue; /* json_string() refuses it: the member is left out */
		if (!first)
			obuf_add(&b, ",", 1);
		first = 0;
		obuf_add(&b, "\"", 1);
		obuf_puts(&b, keys[k]);
		obuf_add(&b, "\":\"", 3);
		size_t run = 0; /* bytes before i not yet added */
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)v[i];
			if (c >= 0x20 && c != '"' && c != '\\')
				continue;
			obuf_add(&b, v + run, i - run);
			run = i + 1;
			char esc[8];
			switch (c) {
			case '"': obuf_add(&b, "\\\"", 2); break;
			case '\\': obuf_add(&b, "\\\\", 2); break;
			case '\b': obuf_add(&b, "\\b", 2); break;
			case '\f': obuf_add(&b, "\\f", 2); break;
			case '\n': obuf_add(&b, "\\n", 2); break;
			case '\r': obuf_add(&b, "\\r", 2); break;
			case '\t': obuf_add(&b, "\\t", 2); break;
			default:
				snprintf(esc, sizeof esc, "\\u%04X", (unsigned)c);
				obuf_add(&b, esc, 6);
			}
		}
		obuf_add(&b, v + run, len - run);
		obuf_add(&b, "\"", 1);
	}
	obuf_add(&b, "}", 1);
	if (b.failed) {
		obuf_free(&b);
		return NULL;
	}
	return obuf_steal(&b, NULL);
}

/* A label's member of the alert's labels object. */
struct json_member {
	const char *key, *val;
};

char *eng_labels_json(const struct labels *l, const char *alertname, const char *severity)
{
	/* the members jansson's object held (json_object_set_new of each
	 * label, the daemon's own labels kept as exported_<name> unless the
	 * series has a valid one of that name, then alertname and severity),
	 * sorted by name for eng_json_strings */
	struct json_member small[34], *m = l->n + 2 <= 34 ? small : malloc((l->n + 2) * sizeof *m);
	const char **keys = NULL, **vals = NULL;
	char exported[2][24];
	char *out = NULL;
	if (!m)
		return NULL;
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++)
		if (!alertname || !daemon_label(l->names[i]))
			m[n++] = (struct json_member){ l->names[i], l->values[i] };
	if (alertname) {
		size_t nx = 0;
		for (size_t i = 0; i < l->n; i++) {
			if (!daemon_label(l->names[i]))
				continue;
			snprintf(exported[nx], sizeof exported[nx], "exported_%s", l->names[i]);
			int own = 0; /* the series' own exported_x (valid: in the object) wins */
			for (size_t k = 0; k < l->n; k++)
				own |= !strcmp(l->names[k], exported[nx]) &&
				       json_utf8_ok((const unsigned char *)l->values[k], strlen(l->values[k]));
			if (!own)
				m[n++] = (struct json_member){ exported[nx++], l->values[i] };
		}
		m[n++] = (struct json_member){ "alertname", alertname };
		m[n++] = (struct json_member){ "severity", severity ? severity : "warning" };
	}
	for (size_t i = 1; i < n; i++) { /* insertion sort: a few labels */
		struct json_member x = m[i];
		size_t j = i;
		for (; j > 0 && strcmp(m[j - 1].key, x.key) > 0; j--)
			m[j] = m[j - 1];
		m[j] = x;
	}
	keys = malloc((n ? n : 1) * sizeof *keys);
	vals = malloc((n ? n : 1) * sizeof *vals);
	if (keys && vals) {
		for (size_t i = 0; i < n; i++) {
			keys[i] = m[i].key;
			vals[i] = m[i].val;
		}
		out = eng_json_strings(keys, vals, n);
	}
	free(keys);
	free(vals);
	if (m != small)
		free(m);
	return out;
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
	char *url = NULL;
	if (e->external_url &&
	    asprintf(&url, "%s/api/v1/anomalies?series=%s", e->external_url, key) < 0)
		url = NULL;
	/* the members in the order of their names (what json_dumps() with
	 * JSON_SORT_KEYS wrote), a link only with an external URL */
	static const char *const keys[11] = { "component", "description", "direction", "expected",
		                              "link", "lower", "model", "observed", "series",
		                              "summary", "upper" };
	const char *vals[11] = { r->component ? r->component : "", desc, dir, exp, url, lo,
		                 model_name(e->model), val, key, summary, hi };
	char *out = eng_json_strings(keys, vals, 11);
	free(url);
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
