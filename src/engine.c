/* engine.c — samples -> series -> detector -> alert state -> store (see engine.h). */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert.h"
#include "log.h"
#include "series.h"
#include "store.h"
#include "timefmt.h"

/* An alert transition waiting to be made durable. Strings are owned. */
struct pending_tr {
	int new_alert;         /* first transition of a new alert: id assigned here */
	struct alert_rec rec;  /* rec.series_key/labels_json/annotations_json owned */
};

struct engine {
	pthread_mutex_t mu;
	struct engine_config cfg;
	char *alertname;
	char *external_url;
	struct model *model;
	uint64_t fingerprint;
	struct series_registry reg;
	struct store *store;
	struct selfstats *stats;
	struct pending_tr *pend;
	size_t npend, cappend;
	int64_t next_alert_id;
	int64_t last_sample_ms;
};

void engine_config_default(struct engine_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_series = 1000000;
	c->history_points = 360;
	c->label_limits = (struct label_limits)LABEL_LIMITS_DEFAULT;
	c->alert_retention_ms = 7LL * 86400 * 1000;
	c->alertname = "ForeshockAnomaly";
	c->external_url = NULL;
}

static int max_id_cb(void *ctx, const struct alert_rec *rec)
{
	int64_t *max = ctx;
	if (rec->id > *max)
		*max = rec->id;
	return 0;
}

struct engine *engine_new(const struct engine_config *cfg, struct model *model,
                          struct store *store, struct selfstats *stats, char *err, size_t errlen)
{
	struct engine *e = calloc(1, sizeof *e);
	if (!e) {
		snprintf(err, errlen, "out of memory");
		model_free(model);
		return NULL;
	}
	pthread_mutex_init(&e->mu, NULL);
	e->cfg = *cfg;
	e->alertname = strdup(cfg->alertname ? cfg->alertname : "ForeshockAnomaly");
	e->external_url = cfg->external_url ? strdup(cfg->external_url) : NULL;
	e->cfg.alertname = e->alertname;
	e->cfg.external_url = e->external_url;
	e->model = model;
	e->fingerprint = model_fingerprint(model);
	e->store = store;
	e->stats = stats;
	if (!e->alertname ||
	    registry_init(&e->reg, cfg->max_series, model_state_size(model), cfg->history_points) < 0) {
		snprintf(err, errlen, "out of memory");
		engine_free(e);
		return NULL;
	}
	int64_t max = 0;
	if (store && store_alerts_scan(store, 1, 0, max_id_cb, &max) < 0) {
		snprintf(err, errlen, "cannot read alerts from the store");
		engine_free(e);
		return NULL;
	}
	e->next_alert_id = max + 1;
	return e;
}

static void pending_free(struct pending_tr *p)
{
	free((char *)p->rec.series_key);
	free((char *)p->rec.labels_json);
	free((char *)p->rec.annotations_json);
}

void engine_free(struct engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->npend; i++)
		pending_free(&e->pend[i]);
	free(e->pend);
	registry_free(&e->reg);
	model_free(e->model);
	free(e->alertname);
	free(e->external_url);
	pthread_mutex_destroy(&e->mu);
	free(e);
}

void engine_batch_begin(struct engine *e, struct engine_batch *b)
{
	memset(b, 0, sizeof *b);
	b->e = e;
	pthread_mutex_lock(&e->mu);
}

static int reject(struct engine_batch *b, enum reject_reason r)
{
	b->res.rejected[r]++;
	atomic_fetch_add_explicit(&b->e->stats->samples_rejected[r], 1, memory_order_relaxed);
	return (int)r + 1;
}

static char *labels_json(const struct labels *l, const char *alertname, const char *severity)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		json_object_set_new(o, l->names[i], json_string(l->values[i]));
	if (alertname) {
		json_object_set_new(o, "alertname", json_string(alertname));
		if (!json_object_get(o, "severity"))
			json_object_set_new(o, "severity", json_string(severity ? severity : "warning"));
	}
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

static void fmt_num(char *buf, size_t len, double v)
{
	if (isnan(v))
		snprintf(buf, len, "unknown");
	else
		snprintf(buf, len, "%.6g", v);
}

static char *annotations_json(const struct engine *e, const struct series *s,
                              const struct det_result *r, double value, enum alert_event ev)
{
	char val[32], exp[32], lo[32], hi[32];
	fmt_num(val, sizeof val, value);
	fmt_num(exp, sizeof exp, r->expected);
	fmt_num(lo, sizeof lo, r->lower);
	fmt_num(hi, sizeof hi, r->upper);
	const char *dir = r->direction > 0 ? "above" : r->direction < 0 ? "below" : "within";
	const struct model_alerting *al = model_alerting(e->model);
	char summary[1024], desc[2048];
	if (ev == AEV_RESOLVED || ev == AEV_CANCELLED) {
		snprintf(summary, sizeof summary,
		         "%s is back to normal: %s, expected %s (band %s to %s)", s->key, val, exp, lo,
		         hi);
		snprintf(desc, sizeof desc,
		         "Model '%s' score fell to %.3f (below %.3f); the highest score of this alert "
		         "was %.3f.",
		         model_name(e->model), r->score, al->clear_threshold, s->alert.peak_score);
	} else {
		snprintf(summary, sizeof summary,
		         "%s is anomalous: %s, %s the expected %s (band %s to %s)", s->key, val, dir, exp,
		         lo, hi);
		snprintf(desc, sizeof desc,
		         "Model '%s' scored %.3f (threshold %.3f); the component that fired most was "
		         "'%s'. Value %s is %s the expected band [%s, %s] around %s.",
		         model_name(e->model), r->score, al->threshold,
		         r->component ? r->component : "unknown", val, dir, lo, hi, exp);
	}
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "summary", json_string(summary));
	json_object_set_new(o, "description", json_string(desc));
	json_object_set_new(o, "series", json_string(s->key));
	json_object_set_new(o, "expected", json_string(exp));
	json_object_set_new(o, "lower", json_string(lo));
	json_object_set_new(o, "upper", json_string(hi));
	json_object_set_new(o, "observed", json_string(val));
	json_object_set_new(o, "component", json_string(r->component ? r->component : ""));
	json_object_set_new(o, "direction", json_string(dir));
	json_object_set_new(o, "model", json_string(model_name(e->model)));
	if (e->external_url) {
		char *url = NULL;
		if (asprintf(&url, "%s/api/v1/anomalies?series=%s", e->external_url, s->key) >= 0) {
			json_object_set_new(o, "link", json_string(url));
			free(url);
		}
	}
	char *out = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return out;
}

static void queue_transition(struct engine *e, struct series *s, enum alert_event ev,
                             const struct det_result *r, int64_t ts, double value)
{
	if (e->npend == e->cappend) {
		size_t ncap = e->cappend ? e->cappend * 2 : 16;
		struct pending_tr *np = realloc(e->pend, ncap * sizeof *np);
		if (!np) {
			log_msg(LOG_ERROR, "event=alert_dropped series=%s reason=oom", s->key);
			return;
		}
		e->pend = np;
		e->cappend = ncap;
	}
	const struct alert_fsm *f = &s->alert;
	struct pending_tr *p = &e->pend[e->npend];
	memset(p, 0, sizeof *p);
	if (ev == AEV_PENDING || (ev == AEV_FIRING && f->active_at_ms == ts && s->alert.alert_id == 0)) {
		p->new_alert = 1;
		s->alert.alert_id = e->next_alert_id++;
	}
	p->rec.id = s->alert.alert_id;
	p->rec.series_key = strdup(s->key);
	p->rec.labels_json = labels_json(&s->labels, e->alertname, model_alerting(e->model)->severity);
	p->rec.annotations_json = annotations_json(e, s, r, value, ev);
	p->rec.state = alert_event_name(ev);
	p->rec.active_at_ms = f->active_at_ms;
	p->rec.firing_at_ms = f->firing_at_ms;
	p->rec.resolved_at_ms = (ev == AEV_RESOLVED || ev == AEV_CANCELLED) ? ts : 0;
	p->rec.event_at_ms = ts;
	p->rec.value = value;
	p->rec.score = r->score;
	if (!p->rec.series_key || !p->rec.labels_json || !p->rec.annotations_json) {
		pending_free(p);
		log_msg(LOG_ERROR, "event=alert_dropped series=%s reason=oom", s->key);
		return;
	}
	e->npend++;
	atomic_fetch_add_explicit(&e->stats->alert_transitions, 1, memory_order_relaxed);
	log_msg(LOG_INFO, "event=alert_%s alert_id=%lld series=%s score=%.3f value=%g",
	        alert_event_name(ev), (long long)p->rec.id, s->key, r->score, value);
}

int engine_batch_add(struct engine_batch *b, const struct label_ref *refs, size_t n, int64_t ts_ms,
                     double value, char *err, size_t errlen)
{
	struct engine *e = b->e;
	if (!isfinite(value)) {
		snprintf(err, errlen, "non-finite value");
		return reject(b, REJ_NON_FINITE);
	}
	uint64_t hash = labels_hash_refs(refs, n);
	struct series *s = registry_find_refs(&e->reg, hash, refs, n);
	if (!s) {
		struct labels l;
		if (labels_from_refs(&l, refs, n, &e->cfg.label_limits, err, errlen) < 0)
			return reject(b, REJ_LABELS);
		const char *name = labels_get(&l, "__name__");
		if (!name || !metric_name_valid(name, strlen(name))) {
			snprintf(err, errlen, "invalid or missing metric name '%s'", name ? name : "");
			labels_free(&l);
			return reject(b, REJ_LABELS);
		}
		if (e->reg.n >= e->reg.max_series) {
			snprintf(err, errlen,
			         "series limit %zu reached: new series of metric '%s' rejected "
			         "(raise limits.max_series or reduce label cardinality)",
			         e->reg.max_series, name);
			labels_free(&l);
			return reject(b, REJ_CARDINALITY);
		}
		s = registry_insert(&e->reg, &l, hash);
		if (!s) {
			snprintf(err, errlen, "out of memory creating a series");
			return reject(b, REJ_CARDINALITY);
		}
		model_state_init(e->model, s->det_state);
		b->res.series_created++;
	}
	if (s->samples > 0 && ts_ms <= s->last_ts_ms) {
		if (ts_ms == s->last_ts_ms) {
			snprintf(err, errlen, "duplicate sample for '%s' at %lld ms", s->key,
			         (long long)ts_ms);
			return reject(b, REJ_DUPLICATE);
		}
		snprintf(err, errlen, "out-of-order sample for '%s': %lld ms is before %lld ms", s->key,
		         (long long)ts_ms, (long long)s->last_ts_ms);
		return reject(b, REJ_OUT_OF_ORDER);
	}
	struct det_result r;
	model_update(e->model, s->det_state, ts_ms, value, &r);
	if (s->samples == 0)
		s->first_ts_ms = ts_ms;
	s->samples++;
	s->last_ts_ms = ts_ms;
	s->last_value = value;
	s->last = r;
	struct hist_entry h = { .ts_ms = ts_ms,
		                .value = (float)value,
		                .score = (float)r.score,
		                .expected = (float)r.expected,
		                .lower = (float)r.lower,
		                .upper = (float)r.upper,
		                .direction = (int8_t)r.direction,
		                .component = r.component };
	series_hist_push(s, e->reg.hist_cap, &h);
	if (ts_ms > e->last_sample_ms)
		e->last_sample_ms = ts_ms;
	enum alert_event ev = alert_fsm_step(&s->alert, model_alerting(e->model), ts_ms, r.score, value);
	if (ev != AEV_NONE)
		queue_transition(e, s, ev, &r, ts_ms, value);
	b->res.accepted++;
	atomic_fetch_add_explicit(&e->stats->samples_accepted, 1, memory_order_relaxed);
	return 0;
}

static int flush_locked(struct engine *e)
{
	if (e->npend == 0 || !e->store)
		return 0;
	struct alert_rec *recs = malloc(e->npend * sizeof *recs);
	if (!recs)
		return -1;
	for (size_t i = 0; i < e->npend; i++)
		recs[i] = e->pend[i].rec;
	char err[256];
	int rc = store_alerts_write(e->store, recs, e->npend, err, sizeof err);
	free(recs);
	if (rc < 0) {
		atomic_fetch_add_explicit(&e->stats->store_errors, 1, memory_order_relaxed);
		log_msg(LOG_ERROR, "event=store_error op=alerts_write pending=%zu error=\"%s\"", e->npend,
		        err);
		return -1;
	}
	for (size_t i = 0; i < e->npend; i++)
		pending_free(&e->pend[i]);
	e->npend = 0;
	return 0;
}

int engine_batch_end(struct engine_batch *b)
{
	struct engine *e = b->e;
	int rc = flush_locked(e);
	pthread_mutex_unlock(&e->mu);
	return rc;
}

static int series_selected(const struct series *s, const struct selector *sel, size_t nsel)
{
	if (nsel == 0)
		return 1;
	for (size_t i = 0; i < nsel; i++)
		if (selector_matches(&sel[i], &s->labels))
			return 1;
	return 0;
}

static void fill_info(const struct series *s, struct series_info *si)
{
	si->labels = &s->labels;
	si->key = s->key;
	si->samples = s->samples;
	si->first_ts_ms = s->first_ts_ms;
	si->last_ts_ms = s->last_ts_ms;
	si->last_value = s->last_value;
	si->last = s->last;
	si->alert_state = s->alert.state;
}

int engine_series_foreach(struct engine *e, const struct selector *sel, size_t nsel,
                          engine_series_fn fn, void *ctx)
{
	int rc = 0;
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->reg.n && rc == 0; i++) {
		const struct series *s = e->reg.v[i];
		if (!series_selected(s, sel, nsel))
			continue;
		struct series_info si;
		fill_info(s, &si);
		rc = fn(ctx, &si);
	}
	pthread_mutex_unlock(&e->mu);
	return rc;
}

int engine_history(struct engine *e, const struct selector *sel, size_t nsel, int64_t start_ms,
                   int64_t end_ms, engine_history_fn fn, void *ctx)
{
	int rc = 0;
	size_t cap = e->cfg.history_points;
	struct history_point *pts = malloc((cap ? cap : 1) * sizeof *pts);
	if (!pts)
		return -1;
	pthread_mutex_lock(&e->mu);
	for (size_t i = 0; i < e->reg.n && rc == 0; i++) {
		const struct series *s = e->reg.v[i];
		if (!series_selected(s, sel, nsel))
			continue;
		size_t n = 0;
		size_t first = (s->hist_head + cap - s->hist_len) % (cap ? cap : 1);
		for (size_t k = 0; k < s->hist_len; k++) {
			const struct hist_entry *h = &s->hist[(first + k) % cap];
			if (h->ts_ms < start_ms || h->ts_ms > end_ms)
				continue;
			pts[n++] = (struct history_point){ .ts_ms = h->ts_ms,
				                           .value = h->value,
				                           .score = h->score,
				                           .expected = h->expected,
				                           .lower = h->lower,
				                           .upper = h->upper,
				                           .direction = h->direction,
				                           .component = h->component };
		}
		struct series_info si;
		fill_info(s, &si);
		rc = fn(ctx, &si, pts, n);
	}
	pthread_mutex_unlock(&e->mu);
	free(pts);
	return rc;
}

int engine_set_external_url(struct engine *e, const char *url)
{
	char *u = url ? strdup(url) : NULL;
	if (url && !u)
		return -1;
	pthread_mutex_lock(&e->mu);
	free(e->external_url);
	e->external_url = u;
	e->cfg.external_url = u;
	pthread_mutex_unlock(&e->mu);
	return 0;
}

void engine_get_stats(struct engine *e, struct engine_stats *st)
{
	pthread_mutex_lock(&e->mu);
	st->series = e->reg.n;
	st->max_series = e->reg.max_series;
	st->pending_transitions = e->npend;
	st->last_sample_ms = e->last_sample_ms;
	st->model_name = model_name(e->model);
	pthread_mutex_unlock(&e->mu);
}

/* Checkpoint blob: header, alert fsm, detector state. */
#define CKPT_MAGIC 0x46534b31u /* "FSK1" */
struct ckpt_head {
	uint32_t magic;
	uint32_t state_size;
	uint64_t samples;
	int64_t first_ts_ms;
	double last_value;
	double score, expected, lower, upper;
	int32_t direction;
	uint32_t pad;
};

int engine_checkpoint(struct engine *e, char *err, size_t errlen)
{
	if (!e->store)
		return 0;
	pthread_mutex_lock(&e->mu);
	size_t ss = e->reg.state_size;
	size_t blob_len = sizeof(struct ckpt_head) + sizeof(struct alert_fsm) + ss;
	unsigned char *blob = malloc(blob_len);
	int rc = -1;
	if (!blob) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (flush_locked(e) < 0) {
		snprintf(err, errlen, "pending alert transitions could not be written");
		goto out;
	}
	if (store_ckpt_begin(e->store) < 0) {
		snprintf(err, errlen, "cannot start checkpoint transaction");
		store_ckpt_rollback(e->store);
		goto out;
	}
	for (size_t i = 0; i < e->reg.n; i++) {
		struct series *s = e->reg.v[i];
		struct ckpt_head h;
		memset(&h, 0, sizeof h);
		h.magic = CKPT_MAGIC;
		h.state_size = (uint32_t)ss;
		h.samples = s->samples;
		h.first_ts_ms = s->first_ts_ms;
		h.last_value = s->last_value;
		h.score = s->last.score;
		h.expected = s->last.expected;
		h.lower = s->last.lower;
		h.upper = s->last.upper;
		h.direction = s->last.direction;
		memcpy(blob, &h, sizeof h);
		memcpy(blob + sizeof h, &s->alert, sizeof s->alert);
		memcpy(blob + sizeof h + sizeof s->alert, s->det_state, ss);
		char *lj = labels_json(&s->labels, NULL, NULL);
		struct store_ckpt c = { .series_key = s->key,
			                .labels_json = lj,
			                .model = model_name(e->model),
			                .fingerprint = e->fingerprint,
			                .last_ts_ms = s->last_ts_ms,
			                .state = blob,
			                .state_len = blob_len };
		int prc = lj ? store_ckpt_put(e->store, &c) : -1;
		free(lj);
		if (prc < 0) {
			snprintf(err, errlen, "cannot write checkpoint of '%s'", s->key);
			store_ckpt_rollback(e->store);
			goto out;
		}
	}
	if (store_ckpt_commit(e->store) < 0) {
		snprintf(err, errlen, "checkpoint commit failed");
		goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&e->mu);
	free(blob);
	return rc;
}

struct restore_ctx {
	struct engine *e;
	long restored, fresh, failed;
};

static int restore_cb(void *ctx, const struct store_ckpt *c)
{
	struct restore_ctx *rc = ctx;
	struct engine *e = rc->e;
	json_error_t jerr;
	json_t *o = json_loads(c->labels_json ? c->labels_json : "{}", 0, &jerr);
	if (!o || !json_is_object(o)) {
		json_decref(o);
		rc->failed++;
		return 0;
	}
	size_t n = json_object_size(o), k = 0;
	struct label_ref *refs = calloc(n ? n : 1, sizeof *refs);
	if (!refs) {
		json_decref(o);
		rc->failed++;
		return 0;
	}
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v)
	{
		if (!json_is_string(v))
			continue;
		refs[k].name = key;
		refs[k].name_len = strlen(key);
		refs[k].value = json_string_value(v);
		refs[k].value_len = json_string_length(v);
		k++;
	}
	struct labels l;
	char err[256];
	int ok = labels_from_refs(&l, refs, k, NULL, err, sizeof err) == 0;
	uint64_t hash = ok ? labels_hash(&l) : 0;
	free(refs);
	json_decref(o);
	if (!ok || registry_find(&e->reg, &l)) {
		if (ok)
			labels_free(&l);
		rc->failed++;
		return 0;
	}
	struct series *s = registry_insert(&e->reg, &l, hash);
	if (!s) {
		rc->failed++;
		return 0;
	}
	size_t ss = e->reg.state_size;
	struct ckpt_head h;
	const unsigned char *blob = c->state;
	if (c->fingerprint == e->fingerprint &&
	    c->state_len == sizeof h + sizeof(struct alert_fsm) + ss) {
		memcpy(&h, blob, sizeof h);
		struct alert_fsm f;
		memcpy(&f, blob + sizeof h, sizeof f);
		if (h.magic == CKPT_MAGIC && h.state_size == ss && alert_fsm_check(&f) == 0) {
			s->samples = h.samples;
			s->first_ts_ms = h.first_ts_ms;
			s->last_ts_ms = c->last_ts_ms;
			s->last_value = h.last_value;
			s->last.score = h.score;
			s->last.expected = h.expected;
			s->last.lower = h.lower;
			s->last.upper = h.upper;
			s->last.direction = h.direction;
			s->last.component = NULL;
			s->alert = f;
			memcpy(s->det_state, blob + sizeof h + sizeof f, ss);
			if (c->last_ts_ms > e->last_sample_ms)
				e->last_sample_ms = c->last_ts_ms;
			if (f.alert_id >= e->next_alert_id)
				e->next_alert_id = f.alert_id + 1;
			rc->restored++;
			return 0;
		}
	}
	/* Model changed: keep the series and its alert, re-learn the detector. */
	model_state_init(e->model, s->det_state);
	s->last_ts_ms = c->last_ts_ms;
	s->samples = c->last_ts_ms > 0 ? 1 : 0;
	s->first_ts_ms = c->last_ts_ms;
	rc->fresh++;
	return 0;
}

long engine_restore(struct engine *e, char *err, size_t errlen)
{
	if (!e->store)
		return 0;
	struct restore_ctx rc = { .e = e };
	pthread_mutex_lock(&e->mu);
	int r = store_ckpt_scan(e->store, restore_cb, &rc);
	pthread_mutex_unlock(&e->mu);
	if (r < 0) {
		snprintf(err, errlen, "cannot read detector checkpoints");
		return -1;
	}
	log_msg(LOG_INFO, "event=restore series=%ld relearning=%ld unreadable=%ld", rc.restored,
	        rc.fresh, rc.failed);
	return rc.restored + rc.fresh;
}

void engine_set_model(struct engine *e, struct model *m)
{
	pthread_mutex_lock(&e->mu);
	uint64_t fp = model_fingerprint(m);
	if (fp != e->fingerprint) {
		if (registry_resize_state(&e->reg, model_state_size(m)) < 0) {
			log_msg(LOG_ERROR, "event=reload_failed reason=oom model=%s", model_name(m));
			pthread_mutex_unlock(&e->mu);
			model_free(m);
			return;
		}
		for (size_t i = 0; i < e->reg.n; i++)
			model_state_init(m, e->reg.v[i]->det_state);
		log_msg(LOG_INFO, "event=model_changed model=%s series_relearning=%zu", model_name(m),
		        e->reg.n);
	} else {
		log_msg(LOG_INFO, "event=model_unchanged model=%s", model_name(m));
	}
	model_free(e->model);
	e->model = m;
	e->fingerprint = fp;
	pthread_mutex_unlock(&e->mu);
}

int engine_prune(struct engine *e)
{
	if (!e->store)
		return 0;
	pthread_mutex_lock(&e->mu);
	int64_t horizon = e->last_sample_ms - e->cfg.alert_retention_ms;
	pthread_mutex_unlock(&e->mu);
	if (horizon <= 0)
		return 0;
	return store_alerts_prune(e->store, horizon);
}
