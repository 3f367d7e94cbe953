/* engine.c — samples -> series -> detector -> alert state -> store (see engine.h). */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "util/buf.h"
#include "util/log.h"
#include "engine/series.h"
#include "service/service.h"
#include "store/store.h"
#include "util/timefmt.h"

/* An alert transition waiting to be made durable. Strings are owned. */
struct pending_tr {
	int new_alert;         /* first transition of a new alert: id assigned here */
	struct alert_rec rec;  /* rec.series_key/labels_json/annotations_json owned */
};

/* The engine is split into ENGINE_SHARDS shards, each with its own lock,
 * registry, pending transitions, histogram groups and component table, so
 * that ingest requests on different threads run in parallel. A sample goes
 * to the shard of route_and_hash(): a hash of its labels without `le`, and with
 * the metric name reduced to its family (foreshock:rate: / foreshock:pNN:
 * prefixes and a _bucket suffix removed). So every bucket of a histogram
 * group, and every derived series with its parent, share one shard (derived
 * series are created in the current shard's registry directly), and a
 * user-sent foreshock: series lands where the engine would derive it.
 *
 * Lock order: flush_mu -> shard[i] (ascending i when several) -> svc_mu ->
 * fam_mu. The store's own write lock is taken under a shard lock (flushes)
 * or under flush_mu (checkpoints), never the other way round. */
#define ENGINE_SHARDS 16

struct shard {
	pthread_mutex_t mu;
	unsigned id;
	struct series_registry reg;
	struct pending_tr *pend;
	size_t npend, cappend;
	atomic_size_t npend_a;      /* not yet durable: npend + in flight (flush_shard) */
	int64_t last_sample_ms;
	/* names of detector components seen, for the packed history (static strings) */
	const char *comps[64];
	unsigned ncomps;
	/* histogram label groups feeding foreshock:pNN:<name> */
	struct hgroup **groups;
	size_t ngroups, capgroups;
	uint32_t *gtable;
	size_t gmask;
};

struct engine {
	struct engine_config cfg;
	char *alertname;
	char *external_url;
	struct model *model;
	uint64_t fingerprint;       /* of the model and the forecaster: checkpoints must match */
	size_t det_size;            /* model state bytes at the start of each state block */
	size_t fc_off, fc_size;     /* forecaster state within the block (fc_size 0 = off) */
	struct store *store;
	struct selfstats *stats;
	atomic_int_least64_t next_alert_id;
	atomic_size_t nseries;      /* over all shards (cardinality limit) */
	pthread_mutex_t flush_mu;   /* serializes store writes of pending transitions */
	/* metric family -> enum metric_type (from # TYPE / remote_write metadata) */
	pthread_mutex_t fam_mu;
	char **fam_names;
	uint8_t *fam_types;
	size_t fam_mask, fam_n;
	/* service models and the transitions of their alerts (service.h);
	 * svc_mu guards svcs' state and str (swapping svcs also takes every shard) */
	pthread_mutex_t svc_mu;
	struct services *svcs;
	struct service_transition *str;
	size_t nstr, capstr;
	struct shard sh[ENGINE_SHARDS];
};

static void lock_all(struct engine *e)
{
	for (unsigned i = 0; i < ENGINE_SHARDS; i++)
		pthread_mutex_lock(&e->sh[i].mu);
}

static void unlock_all(struct engine *e)
{
	for (unsigned i = ENGINE_SHARDS; i-- > 0;)
		pthread_mutex_unlock(&e->sh[i].mu);
}

#define HGROUP_MAX_BUCKETS 64
#define FAMILY_MAX 65536

/* One histogram: the buckets of one label set (le removed) of one family. */
struct hgroup {
	uint64_t hash;                       /* labels_hash(&labels) */
	struct labels labels;                /* __name__ = family (no _bucket), no le */
	uint32_t nb;                         /* buckets known, sorted by le */
	int finalized;                       /* cur_ts already turned into quantiles */
	int have_prev;
	int64_t cur_ts, prev_ts;
	double le[HGROUP_MAX_BUCKETS];
	double cur[HGROUP_MAX_BUCKETS];      /* cumulative counts at cur_ts; NAN = not seen */
	double prev[HGROUP_MAX_BUCKETS];     /* cumulative counts at prev_ts */
	uint32_t qseries[ENGINE_MAX_QUANTILES]; /* index + 1 of each quantile series */
};

void engine_config_default(struct engine_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_series = 1000000;
	c->quantiles[0] = 0.5;
	c->quantiles[1] = 0.9;
	c->quantiles[2] = 0.99;
	c->nquantiles = 3;
	c->history_points = 32;
	c->label_limits = (struct label_limits)LABEL_LIMITS_DEFAULT;
	c->alert_retention_ms = 7LL * 86400 * 1000;
	c->alertname = "ForeshockAnomaly";
	c->external_url = NULL;
	c->forecast = 1;
	forecast_params_default(&c->forecast_params);
}

/* The per-series state block: [model state][forecaster state], and the
 * fingerprint that guards checkpoints of that layout. */
static void set_layout(struct engine *e)
{
	e->det_size = model_state_size(e->model);
	e->fc_off = (e->det_size + 15) & ~(size_t)15;
	e->fc_size = e->cfg.forecast ? forecast_state_size(&e->cfg.forecast_params) : 0;
	uint64_t fp = model_fingerprint(e->model);
	if (e->fc_size) {
		/* fold the forecaster's parameters into the fingerprint */
		const unsigned char *b = (const unsigned char *)&e->cfg.forecast_params;
		uint64_t h = 0xcbf29ce484222325ULL ^ e->fc_size;
		for (size_t i = 0; i < sizeof e->cfg.forecast_params; i++) {
			h ^= b[i];
			h *= 0x100000001b3ULL;
		}
		fp ^= h;
	}
	e->fingerprint = fp;
}

static void state_init(struct engine *e, struct series *s)
{
	model_state_init(e->model, s->det_state);
	if (e->fc_size)
		forecast_state_init(&e->cfg.forecast_params, s->det_state + e->fc_off);
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
	pthread_mutex_init(&e->flush_mu, NULL);
	pthread_mutex_init(&e->fam_mu, NULL);
	pthread_mutex_init(&e->svc_mu, NULL);
	/* adaptive: a batch holds a shard for one sample at a time, so a
	 * contended lock is usually free again within a few hundred ns:
	 * spin briefly before sleeping in the kernel */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ADAPTIVE_NP);
	for (unsigned i = 0; i < ENGINE_SHARDS; i++) {
		pthread_mutex_init(&e->sh[i].mu, &ma);
		e->sh[i].id = i;
	}
	pthread_mutexattr_destroy(&ma);
	e->cfg = *cfg;
	e->alertname = strdup(cfg->alertname ? cfg->alertname : "ForeshockAnomaly");
	e->external_url = cfg->external_url ? strdup(cfg->external_url) : NULL;
	e->cfg.alertname = e->alertname;
	e->cfg.external_url = e->external_url;
	e->model = model;
	e->store = store;
	e->stats = stats;
	set_layout(e);
	int ok = e->alertname != NULL;
	for (unsigned i = 0; i < ENGINE_SHARDS && ok; i++)
		ok = registry_init(&e->sh[i].reg, cfg->max_series, e->fc_off + e->fc_size,
		                   cfg->history_points) == 0;
	if (!ok) {
		snprintf(err, errlen, "out of memory");
		engine_free(e);
		return NULL;
	}
	int64_t max = 0;
	if (store && store_alerts_max_id(store, &max) < 0) {
		snprintf(err, errlen, "cannot read alerts from the store");
		engine_free(e);
		return NULL;
	}
	atomic_store(&e->next_alert_id, max + 1);
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
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		struct shard *sh = &e->sh[k];
		for (size_t i = 0; i < sh->npend; i++)
			pending_free(&sh->pend[i]);
		free(sh->pend);
		for (size_t i = 0; i < sh->ngroups; i++) {
			labels_free(&sh->groups[i]->labels);
			free(sh->groups[i]);
		}
		free(sh->groups);
		free(sh->gtable);
		registry_free(&sh->reg);
		pthread_mutex_destroy(&sh->mu);
	}
	for (size_t i = 0; i <= e->fam_mask && e->fam_names; i++)
		free(e->fam_names[i]);
	free(e->fam_names);
	free(e->fam_types);
	services_free(e->svcs);
	free(e->str);
	model_free(e->model);
	free(e->alertname);
	free(e->external_url);
	pthread_mutex_destroy(&e->flush_mu);
	pthread_mutex_destroy(&e->fam_mu);
	pthread_mutex_destroy(&e->svc_mu);
	free(e);
}

struct engine_staged {
	int64_t ts_ms;
	double value;
	uint64_t hash;             /* labels_hash_refs() */
	uint32_t ref0;             /* first label in b->sref (4 words per label) */
	uint16_t nref;
	uint8_t shard;
};

/* Staging buffers are kept per thread between batches (an HTTP connection
 * has its own thread, so its next request reuses them): a 5,000-line body
 * stages ~700 KB, and allocating and returning that per request cost page
 * faults on every one (3% of the ingest profile). A thread keeps at most
 * STAGE_KEEP bytes (about 15,000 staged samples), so 1,024 idle keep-alive
 * connections hold at most 2 GiB between requests, and a larger body's
 * buffers are freed after it; they are freed when the thread exits. The
 * cache is thread-local: no thread ever sees another's. */
#define STAGE_KEEP ((size_t)2 << 20)

struct stage_cache {
	struct engine_staged *st;
	size_t capst;
	uint32_t *sref;
	size_t capsref;
	char *sbytes;
	size_t capbytes;
};

static pthread_key_t stage_key;
static pthread_once_t stage_once = PTHREAD_ONCE_INIT;
static int stage_key_ok;

static void stage_cache_free(void *p)
{
	struct stage_cache *c = p;
	free(c->st);
	free(c->sref);
	free(c->sbytes);
	free(c);
}

static void stage_key_init(void)
{
	stage_key_ok = pthread_key_create(&stage_key, stage_cache_free) == 0;
}

void engine_batch_begin(struct engine *e, struct engine_batch *b)
{
	memset(b, 0, sizeof *b);
	b->e = e;
	b->shard = -1;
	pthread_once(&stage_once, stage_key_init);
	struct stage_cache *c = stage_key_ok ? pthread_getspecific(stage_key) : NULL;
	if (c) { /* take the thread's buffers */
		b->st = c->st;
		b->capst = c->capst;
		b->sref = c->sref;
		b->capsref = c->capsref;
		b->sbytes = c->sbytes;
		b->capbytes = c->capbytes;
		memset(c, 0, sizeof *c);
	}
}

/* Give the batch's staging buffers back to the thread, or free them. */
static void stage_release(struct engine_batch *b)
{
	struct stage_cache *c = stage_key_ok ? pthread_getspecific(stage_key) : NULL;
	size_t bytes = b->capst * sizeof *b->st + b->capsref * sizeof *b->sref + b->capbytes;
	if (!c && stage_key_ok && bytes > 0 && bytes <= STAGE_KEEP &&
	    (c = calloc(1, sizeof *c)) && pthread_setspecific(stage_key, c) != 0) {
		free(c);
		c = NULL;
	}
	if (c && !c->st && !c->sref && !c->sbytes && bytes <= STAGE_KEEP) {
		*c = (struct stage_cache){ b->st, b->capst, b->sref, b->capsref, b->sbytes,
			                   b->capbytes };
	} else {
		free(b->st);
		free(b->sref);
		free(b->sbytes);
	}
	b->st = NULL;
	b->sref = NULL;
	b->sbytes = NULL;
	b->capst = b->capsref = b->capbytes = 0;
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

/* Queue one transition of the alert whose state machine is f. Takes
 * ownership of key, labels and annotations (freed on failure). Assigns the
 * alert id when the transition opens a new alert. */
static void queue_rec(struct engine *e, struct shard *sh, struct alert_fsm *f,
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

static void queue_transition(struct engine *e, struct shard *sh, struct series *s,
                             enum alert_event ev, const struct det_result *r, int64_t ts,
                             double value)
{
	queue_rec(e, sh, &s->alert, ev, strdup(s->key),
	          labels_json(&s->labels, e->alertname, model_alerting(e->model)->severity),
	          annotations_json(e, s, r, value, ev), ts, value, r->score);
}

/* --- metric family types --------------------------------------------- */

static uint64_t str_hash(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 0x100000001b3ULL;
	}
	return h ^ (h >> 29);
}

static enum metric_type family_lookup(const struct engine *e, const char *name, size_t n)
{
	if (!e->fam_names)
		return METRIC_UNKNOWN;
	for (size_t i = str_hash(name, n) & e->fam_mask;; i = (i + 1) & e->fam_mask) {
		const char *k = e->fam_names[i];
		if (!k)
			return METRIC_UNKNOWN;
		if (strlen(k) == n && memcmp(k, name, n) == 0)
			return (enum metric_type)e->fam_types[i];
	}
}

static void family_set_locked(struct engine *e, const char *family, size_t len,
                              enum metric_type type);

void engine_batch_set_type(struct engine_batch *b, const char *family, size_t len,
                           enum metric_type type)
{
	struct engine *e = b->e;
	if (len == 0 || len > 256 || type == METRIC_UNKNOWN)
		return;
	pthread_mutex_lock(&e->fam_mu);
	family_set_locked(e, family, len, type);
	pthread_mutex_unlock(&e->fam_mu);
}

static void family_set_locked(struct engine *e, const char *family, size_t len,
                              enum metric_type type)
{
	if (!e->fam_names) {
		e->fam_mask = 255;
		e->fam_names = calloc(e->fam_mask + 1, sizeof *e->fam_names);
		e->fam_types = calloc(e->fam_mask + 1, 1);
		if (!e->fam_names || !e->fam_types) {
			free(e->fam_names);
			free(e->fam_types);
			e->fam_names = NULL;
			e->fam_types = NULL;
			return;
		}
	}
	size_t i;
	for (i = str_hash(family, len) & e->fam_mask; e->fam_names[i];
	     i = (i + 1) & e->fam_mask) {
		if (strlen(e->fam_names[i]) == len && memcmp(e->fam_names[i], family, len) == 0) {
			e->fam_types[i] = (uint8_t)type;
			return;
		}
	}
	if (e->fam_n >= FAMILY_MAX)
		return; /* bounded: further families fall back to the name suffix rules */
	if ((e->fam_n + 1) * 2 > e->fam_mask + 1) {
		size_t nmask = e->fam_mask * 2 + 1;
		char **nn = calloc(nmask + 1, sizeof *nn);
		uint8_t *nt = calloc(nmask + 1, 1);
		if (!nn || !nt) {
			free(nn);
			free(nt);
			return;
		}
		for (size_t k = 0; k <= e->fam_mask; k++) {
			if (!e->fam_names[k])
				continue;
			size_t j = str_hash(e->fam_names[k], strlen(e->fam_names[k])) & nmask;
			while (nn[j])
				j = (j + 1) & nmask;
			nn[j] = e->fam_names[k];
			nt[j] = e->fam_types[k];
		}
		free(e->fam_names);
		free(e->fam_types);
		e->fam_names = nn;
		e->fam_types = nt;
		e->fam_mask = nmask;
		for (i = str_hash(family, len) & e->fam_mask; e->fam_names[i];
		     i = (i + 1) & e->fam_mask)
			;
	}
	e->fam_names[i] = strndup(family, len);
	if (e->fam_names[i]) {
		e->fam_types[i] = (uint8_t)type;
		e->fam_n++;
	}
}

static int has_suffix(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);
	return n > k && memcmp(s + n - k, suf, k) == 0;
}

/* Decide what a new series is: see enum series_kind. */
static enum series_kind classify_locked(const struct engine *e, const struct labels *l);

static enum series_kind classify(struct engine *e, const struct labels *l)
{
	pthread_mutex_lock(&e->fam_mu);
	enum series_kind k = classify_locked(e, l);
	pthread_mutex_unlock(&e->fam_mu);
	return k;
}

static enum series_kind classify_locked(const struct engine *e, const struct labels *l)
{
	const char *name = labels_metric_name(l);
	size_t n = strlen(name);
	if (strncmp(name, "foreshock:", 10) == 0)
		return SERIES_DERIVED;
	enum metric_type t = family_lookup(e, name, n);
	static const char *const sufs[] = { "_bucket", "_count", "_sum", "_total" };
	enum metric_type parent = METRIC_UNKNOWN;
	for (int i = 0; i < 4 && t == METRIC_UNKNOWN && parent == METRIC_UNKNOWN; i++)
		if (has_suffix(name, n, sufs[i]))
			parent = family_lookup(e, name, n - strlen(sufs[i]));
	if (t == METRIC_GAUGE || (t == METRIC_UNKNOWN && parent == METRIC_GAUGE))
		return SERIES_GAUGE;
	if (has_suffix(name, n, "_bucket") && labels_get(l, "le") &&
	    (parent == METRIC_UNKNOWN || parent == METRIC_HISTOGRAM))
		return SERIES_BUCKET;
	if (t == METRIC_COUNTER)
		return SERIES_COUNTER;
	if (has_suffix(name, n, "_total") || has_suffix(name, n, "_count") ||
	    has_suffix(name, n, "_sum") || has_suffix(name, n, "_bucket"))
		return SERIES_COUNTER;
	return SERIES_GAUGE;
}

/* --- series lookup and sample processing -------------------------------- */

/* Shard routing (see struct shard): a hash of the labels, independent of
 * their order, without `le` and empty values, with __name__ reduced to its
 * family: foreshock:rate: and foreshock:p<...>: prefixes, then a _bucket
 * suffix, removed. The same function routes checkpointed series at restore,
 * so derived series come back in their parent's shard. */
/* The routing hash of one pair: 0 for `le` and empty values, the family
 * for __name__, else the pair's label hash. *same (may be NULL) is set when
 * that equals label_pair_hash() of the pair as given, *pair (may be NULL)
 * to label_pair_hash() of the pair as given, so staging hashes each pair
 * once for both. */
static uint64_t route_pair_ex(const char *name, size_t nl, const char *value, size_t vl,
                              uint64_t *pair)
{
	uint64_t ph = vl ? label_pair_hash(name, nl, value, vl) : 0;
	if (pair)
		*pair = ph;
	if (vl == 0 || (nl == 2 && name[0] == 'l' && name[1] == 'e'))
		return 0;
	if (nl == 8 && memcmp(name, "__name__", 8) == 0) {
		size_t ovl = vl;
		if (vl > 15 && memcmp(value, "foreshock:rate:", 15) == 0) {
			value += 15;
			vl -= 15;
		} else if (vl > 11 && memcmp(value, "foreshock:p", 11) == 0) {
			/* up to the next ':' (quantile_name: digits, or e.g. 5e-05) */
			size_t i = 11;
			while (i < vl && value[i] != ':')
				i++;
			if (i > 11 && i < vl) {
				value += i + 1;
				vl -= i + 1;
			}
		}
		if (vl > 7 && memcmp(value + vl - 7, "_bucket", 7) == 0)
			vl -= 7;
		if (vl != ovl)
			return label_pair_hash(name, nl, value, vl);
	}
	return ph;
}

static uint64_t route_pair(const char *name, size_t nl, const char *value, size_t vl)
{
	return route_pair_ex(name, nl, value, vl, NULL);
}

static unsigned route_mix(uint64_t acc)
{
	acc ^= acc >> 33;
	acc *= 0xff51afd7ed558ccdULL;
	acc ^= acc >> 33;
	return (unsigned)(acc >> 8);
}

/* Route and label hash (labels_hash_refs) of refs in one pass. */
static unsigned route_and_hash(const struct label_ref *refs, size_t n, uint64_t *hash)
{
	uint64_t acc = 0, hacc = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t ph;
		acc += route_pair_ex(refs[i].name, refs[i].name_len, refs[i].value, refs[i].value_len,
		                     &ph);
		hacc += ph;
	}
	*hash = labels_hash_from_sum(hacc);
	return route_mix(acc);
}

static unsigned route_labels(const struct labels *l)
{
	uint64_t acc = 0;
	for (size_t i = 0; i < l->n; i++)
		acc += route_pair(l->names[i], strlen(l->names[i]), l->values[i], strlen(l->values[i]));
	return route_mix(acc);
}

/* Find or create the series for refs. Returns NULL with *rej set (an enum
 * reject_reason) and a message in err. */
static struct series *find_or_create(struct engine_batch *b, struct shard *sh,
                                     const struct label_ref *refs, size_t n, uint64_t hash,
                                     int derived, int *rej, char *err, size_t errlen)
{
	struct engine *e = b->e;
	struct series *s = registry_find_refs(&sh->reg, hash, refs, n);
	if (s)
		return s;
	struct labels l;
	if (labels_from_refs(&l, refs, n, &e->cfg.label_limits, err, errlen) < 0) {
		*rej = REJ_LABELS;
		return NULL;
	}
	const char *name = labels_get(&l, "__name__");
	if (!name || !metric_name_valid(name, strlen(name))) {
		snprintf(err, errlen, "invalid or missing metric name '%s'", name ? name : "");
		labels_free(&l);
		*rej = REJ_LABELS;
		return NULL;
	}
	if (atomic_fetch_add(&e->nseries, 1) >= e->cfg.max_series) {
		atomic_fetch_sub(&e->nseries, 1);
		snprintf(err, errlen,
		         "series limit %zu reached: new series of metric '%s' rejected "
		         "(raise limits.max_series or reduce label cardinality)",
		         e->cfg.max_series, name);
		labels_free(&l);
		*rej = REJ_CARDINALITY;
		return NULL;
	}
	enum series_kind kind = derived ? SERIES_DERIVED : classify(e, &l);
	s = registry_insert(&sh->reg, &l, hash);
	if (!s) {
		atomic_fetch_sub(&e->nseries, 1);
		snprintf(err, errlen, "out of memory creating a series");
		*rej = REJ_CARDINALITY;
		return NULL;
	}
	s->kind = (uint8_t)kind;
	state_init(e, s);
	if (e->svcs) {
		pthread_mutex_lock(&e->svc_mu);
		s->roles = services_bind(e->svcs, &s->labels, &s->svc);
		pthread_mutex_unlock(&e->svc_mu);
	}
	b->res.series_created++;
	return s;
}

/* Ordering check and bookkeeping shared by every kind. Returns 0 or the
 * reject reason + 1. */
static int check_order(struct engine_batch *b, struct series *s, int64_t ts_ms, char *err,
                       size_t errlen)
{
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
	return 0;
}

/* Index of a component name in the engine's table (0 = unknown/none). The
 * names are static strings of the detectors, compared by pointer first. */
static unsigned comp_index(struct shard *sh, const char *name)
{
	if (!name)
		return 0;
	for (unsigned i = 1; i < sh->ncomps; i++)
		if (sh->comps[i] == name || !strcmp(sh->comps[i], name))
			return i;
	if (sh->ncomps == 0)
		sh->ncomps = 1; /* slot 0 means none */
	if (sh->ncomps >= 64)
		return 0;
	sh->comps[sh->ncomps] = name;
	return sh->ncomps++;
}

static void record(struct shard *sh, struct series *s, int64_t ts_ms, double value,
                   const struct det_result *r)
{
	if (s->samples == 0)
		s->first_ts_ms = ts_ms;
	s->samples++;
	s->last_ts_ms = ts_ms;
	s->last_value = value;
	s->last = *r;
	struct hist_point h = { .ts_ms = ts_ms,
		                .value = value,
		                .score = r->score,
		                .expected = r->expected,
		                .lower = r->lower,
		                .upper = r->upper,
		                .direction = r->direction,
		                .comp = comp_index(sh, r->component) };
	series_hist_push(s, sh->reg.hist_cap, &h);
	if (ts_ms > sh->last_sample_ms)
		sh->last_sample_ms = ts_ms;
}

/* A gauge or derived sample: detector, history, alert. */
/* The id of a series among all shards (services key their members by it). */
static uint32_t global_idx(const struct shard *sh, const struct series *s)
{
	return s->idx * ENGINE_SHARDS + sh->id;
}

static void detect(struct engine *e, struct shard *sh, struct series *s, int64_t ts_ms,
                   double value)
{
	struct det_result r;
	model_update(e->model, s->det_state, ts_ms, value, &r);
	if (e->fc_size)
		forecast_update(&e->cfg.forecast_params, s->det_state + e->fc_off, ts_ms, value);
	record(sh, s, ts_ms, value, &r);
	enum alert_event ev =
		alert_fsm_step(&s->alert, model_alerting(e->model), ts_ms, r.score, value);
	if (ev != AEV_NONE)
		queue_transition(e, sh, s, ev, &r, ts_ms, value);
	if (s->roles && e->svcs) {
		pthread_mutex_lock(&e->svc_mu);
		e->nstr = 0;
		if (services_observe(e->svcs, s->svc, s->roles, global_idx(sh, s), ts_ms, value, &r,
		                     &e->str, &e->nstr, &e->capstr) < 0)
			log_msg(LOG_ERROR, "event=service_observe_failed series=%s reason=oom", s->key);
		for (size_t i = 0; i < e->nstr; i++) {
			struct service_transition *t = &e->str[i];
			queue_rec(e, sh, t->fsm, t->ev, t->key, t->labels_json, t->annotations_json,
			          t->ts_ms, t->value, t->score);
		}
		e->nstr = 0;
		pthread_mutex_unlock(&e->svc_mu);
	}
}

static const struct det_result raw_result = { .score = 0, .expected = NAN, .lower = NAN,
	                                      .upper = NAN, .direction = 0, .component = "raw" };

/* Build refs for a derived series: the labels of `l` with __name__ replaced
 * and `drop` (if any) removed. refs must hold l->n entries. */
static size_t derived_refs(const struct labels *l, const char *name, const char *drop,
                           struct label_ref *refs)
{
	size_t k = 0;
	refs[k++] = (struct label_ref){ "__name__", 8, name, strlen(name) };
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->names[i], "__name__") || (drop && !strcmp(l->names[i], drop)))
			continue;
		refs[k++] = (struct label_ref){ l->names[i], strlen(l->names[i]), l->values[i],
			                        strlen(l->values[i]) };
	}
	return k;
}

/* Emit one derived sample into the series named `name` built from l. */
static struct series *emit_derived(struct engine_batch *b, struct shard *sh, const struct labels *l,
                                   const char *name, const char *drop, uint32_t *cache,
                                   int64_t ts_ms, double v)
{
	struct engine *e = b->e;
	struct series *d = NULL;
	if (*cache && *cache <= sh->reg.n)
		d = sh->reg.v[*cache - 1];
	if (!d) {
		struct label_ref small[64];
		struct label_ref *refs = l->n + 1 <= 64 ? small : malloc((l->n + 1) * sizeof *refs);
		if (!refs)
			return NULL;
		size_t n = derived_refs(l, name, drop, refs);
		char err[256];
		int rej = 0;
		d = find_or_create(b, sh, refs, n, labels_hash_refs(refs, n), 1, &rej, err, sizeof err);
		if (refs != small)
			free(refs);
		if (!d) {
			b->res.rejected[rej]++;
			atomic_fetch_add_explicit(&e->stats->samples_rejected[rej], 1, memory_order_relaxed);
			log_msg(LOG_DEBUG, "event=derived_rejected name=%s error=\"%s\"", name, err);
			return NULL;
		}
		*cache = d->idx + 1;
	}
	char err[256];
	if (!isfinite(v) || check_order(b, d, ts_ms, err, sizeof err) != 0)
		return d;
	detect(e, sh, d, ts_ms, v);
	return d;
}

static void counter_sample(struct engine_batch *b, struct shard *sh, struct series *s,
                           int64_t ts_ms, double value)
{
	if (s->samples > 0 && ts_ms > s->last_ts_ms) {
		double inc = value >= s->last_value ? value - s->last_value : value; /* reset */
		double rate = inc / ((double)(ts_ms - s->last_ts_ms) / 1000.0);
		char name[300];
		snprintf(name, sizeof name, "foreshock:rate:%s", labels_metric_name(&s->labels));
		emit_derived(b, sh, &s->labels, name, NULL, &s->derived, ts_ms, rate);
	}
	record(sh, s, ts_ms, value, &raw_result);
}

/* Prometheus's histogram_quantile over cumulative counts (last bound +Inf). */
static double bucket_quantile(double q, const double *le, const double *cnt, size_t nb)
{
	if (nb < 2 || !isinf(le[nb - 1]))
		return NAN;
	double total = cnt[nb - 1];
	if (!(total > 0))
		return NAN;
	double rank = q * total;
	size_t b = 0;
	while (b < nb - 1 && cnt[b] < rank)
		b++;
	if (b == nb - 1)
		return le[nb - 2];
	if (b == 0 && le[0] <= 0)
		return le[0];
	double start = 0, end = le[b], count = cnt[b];
	if (b > 0) {
		start = le[b - 1];
		count -= cnt[b - 1];
		rank -= cnt[b - 1];
	}
	if (count <= 0)
		return start;
	return start + (end - start) * (rank / count);
}

static void quantile_name(char *buf, size_t len, double q, const char *family)
{
	char digits[16];
	snprintf(digits, sizeof digits, "%.6g", q);
	const char *d = strchr(digits, '.');
	char frac[16] = "";
	if (d)
		snprintf(frac, sizeof frac, "%s", d + 1);
	if (strlen(frac) < 2)
		strcat(frac, strlen(frac) == 1 ? "0" : "00");
	if (q >= 1)
		snprintf(frac, sizeof frac, "100");
	snprintf(buf, len, "foreshock:p%s:%s", frac, family);
}

static void group_finalize(struct engine_batch *b, struct shard *sh, struct hgroup *g)
{
	struct engine *e = b->e;
	if (g->finalized || g->cur_ts == 0)
		return;
	g->finalized = 1;
	for (uint32_t i = 0; i < g->nb; i++)
		if (isnan(g->cur[i]))
			g->cur[i] = g->have_prev ? g->prev[i] : NAN;
	if (g->have_prev && g->cur_ts > g->prev_ts) {
		double inc[HGROUP_MAX_BUCKETS];
		int ok = 1;
		for (uint32_t i = 0; i < g->nb; i++) {
			if (isnan(g->cur[i]) || isnan(g->prev[i])) {
				ok = 0;
				break;
			}
			inc[i] = g->cur[i] >= g->prev[i] ? g->cur[i] - g->prev[i] : g->cur[i];
			if (i > 0 && inc[i] < inc[i - 1])
				inc[i] = inc[i - 1]; /* keep cumulative counts monotonic */
		}
		for (size_t q = 0; ok && q < e->cfg.nquantiles; q++) {
			double v = bucket_quantile(e->cfg.quantiles[q], g->le, inc, g->nb);
			if (isnan(v))
				continue;
			char name[300];
			quantile_name(name, sizeof name, e->cfg.quantiles[q], labels_metric_name(&g->labels));
			emit_derived(b, sh, &g->labels, name, NULL, &g->qseries[q], g->cur_ts, v);
		}
	}
	memcpy(g->prev, g->cur, sizeof g->cur);
	g->prev_ts = g->cur_ts;
	g->have_prev = 1;
	for (uint32_t i = 0; i < g->nb; i++)
		if (isnan(g->prev[i]))
			g->have_prev = 0;
}

static struct hgroup *group_for(struct shard *sh, struct series *s)
{
	if (s->derived && s->derived <= sh->ngroups)
		return sh->groups[s->derived - 1];
	/* group labels: family name (without _bucket), le removed */
	const char *name = labels_metric_name(&s->labels);
	char family[300];
	snprintf(family, sizeof family, "%.*s", (int)(strlen(name) - 7), name);
	struct label_ref small[64];
	struct label_ref *refs = s->labels.n <= 64 ? small : malloc(s->labels.n * sizeof *refs);
	if (!refs)
		return NULL;
	size_t n = derived_refs(&s->labels, family, "le", refs);
	uint64_t hash = labels_hash_refs(refs, n);
	struct hgroup *g = NULL;
	if (sh->gtable) {
		for (size_t i = hash & sh->gmask; sh->gtable[i]; i = (i + 1) & sh->gmask) {
			struct hgroup *c = sh->groups[sh->gtable[i] - 1];
			if (c->hash != hash)
				continue;
			struct labels tmp;
			char err[64];
			if (labels_from_refs(&tmp, refs, n, NULL, err, sizeof err) == 0) {
				int eq = labels_equal(&tmp, &c->labels);
				labels_free(&tmp);
				if (eq) {
					g = c;
					s->derived = sh->gtable[i];
					break;
				}
			}
		}
	}
	if (!g) {
		if ((sh->ngroups + 1) * 2 > (sh->gtable ? sh->gmask + 1 : 0)) {
			size_t ncap = sh->gtable ? (sh->gmask + 1) * 2 : 256;
			uint32_t *t = calloc(ncap, sizeof *t);
			if (!t)
				goto out;
			for (size_t k = 0; k < sh->ngroups; k++) {
				size_t i = sh->groups[k]->hash & (ncap - 1);
				while (t[i])
					i = (i + 1) & (ncap - 1);
				t[i] = (uint32_t)(k + 1);
			}
			free(sh->gtable);
			sh->gtable = t;
			sh->gmask = ncap - 1;
		}
		if (sh->ngroups == sh->capgroups) {
			size_t ncap = sh->capgroups ? sh->capgroups * 2 : 64;
			struct hgroup **ng = realloc(sh->groups, ncap * sizeof *ng);
			if (!ng)
				goto out;
			sh->groups = ng;
			sh->capgroups = ncap;
		}
		g = calloc(1, sizeof *g);
		char err[64];
		if (!g || labels_from_refs(&g->labels, refs, n, NULL, err, sizeof err) < 0) {
			free(g);
			g = NULL;
			goto out;
		}
		g->hash = hash;
		sh->groups[sh->ngroups++] = g;
		size_t i = hash & sh->gmask;
		while (sh->gtable[i])
			i = (i + 1) & sh->gmask;
		sh->gtable[i] = (uint32_t)sh->ngroups;
		s->derived = (uint32_t)sh->ngroups;
	}
out:
	if (refs != small)
		free(refs);
	return g;
}

static void bucket_sample(struct engine_batch *b, struct shard *sh, struct series *s,
                          int64_t ts_ms, double value)
{
	record(sh, s, ts_ms, value, &raw_result);
	const char *les = labels_get(&s->labels, "le");
	char *end;
	double le = les ? strtod(les, &end) : NAN;
	if (!les || *end || isnan(le))
		return;
	struct hgroup *g = group_for(sh, s);
	if (!g)
		return;
	if (g->cur_ts != ts_ms) {
		group_finalize(b, sh, g);
		g->cur_ts = ts_ms;
		g->finalized = 0;
		for (uint32_t i = 0; i < g->nb; i++)
			g->cur[i] = NAN;
	}
	uint32_t i = 0;
	while (i < g->nb && g->le[i] < le)
		i++;
	if (i == g->nb || g->le[i] != le) {
		if (g->nb == HGROUP_MAX_BUCKETS)
			return;
		memmove(&g->le[i + 1], &g->le[i], (g->nb - i) * sizeof g->le[0]);
		memmove(&g->cur[i + 1], &g->cur[i], (g->nb - i) * sizeof g->cur[0]);
		memmove(&g->prev[i + 1], &g->prev[i], (g->nb - i) * sizeof g->prev[0]);
		g->le[i] = le;
		g->prev[i] = NAN;
		g->have_prev = 0; /* the bucket layout changed */
		g->nb++;
	}
	g->cur[i] = value;
	if (isinf(le) && le > 0)
		group_finalize(b, sh, g); /* +Inf arrives last in a scrape */
}

/* Takes shard k's lock for the batch (releasing the one it held). */
static struct shard *batch_lock(struct engine_batch *b, unsigned k)
{
	struct engine *e = b->e;
	if (b->shard != (int)k) {
		if (b->shard >= 0)
			pthread_mutex_unlock(&e->sh[b->shard].mu);
		pthread_mutex_lock(&e->sh[k].mu);
		b->shard = (int)k;
		b->touched |= 1u << k;
	}
	return &e->sh[k];
}

/* One sample in its shard (locked): find or create the series, order check,
 * then the work of its kind. */
static int add_locked(struct engine_batch *b, struct shard *sh, const struct label_ref *refs,
                      size_t n, uint64_t hash, int64_t ts_ms, double value, char *err,
                      size_t errlen)
{
	int rej = 0;
	struct series *s = find_or_create(b, sh, refs, n, hash, 0, &rej, err, errlen);
	if (!s)
		return reject(b, (enum reject_reason)rej);
	int rc = check_order(b, s, ts_ms, err, errlen);
	if (rc)
		return rc;
	switch (s->kind) {
	case SERIES_COUNTER: counter_sample(b, sh, s, ts_ms, value); break;
	case SERIES_BUCKET: bucket_sample(b, sh, s, ts_ms, value); break;
	default: detect(b->e, sh, s, ts_ms, value); break;
	}
	b->res.accepted++; /* added to selfstats in engine_batch_end: one shared write per batch */
	return 0;
}

int engine_batch_add(struct engine_batch *b, const struct label_ref *refs, size_t n, int64_t ts_ms,
                     double value, char *err, size_t errlen)
{
	if (!isfinite(value)) {
		snprintf(err, errlen, "non-finite value");
		return reject(b, REJ_NON_FINITE);
	}
	uint64_t hash;
	struct shard *sh = batch_lock(b, route_and_hash(refs, n, &hash) % ENGINE_SHARDS);
	return add_locked(b, sh, refs, n, hash, ts_ms, value, err, errlen);
}

/* --- staged ingest (engine_batch_stage / engine_batch_commit) ------------ */


static int grow_arr(void **p, size_t *cap, size_t need, size_t elem)
{
	return array_grow(p, cap, need, elem, 256);
}

int engine_batch_stage(struct engine_batch *b, const struct label_ref *refs, size_t n,
                       int64_t ts_ms, double value, char *err, size_t errlen)
{
	if (!isfinite(value)) {
		snprintf(err, errlen, "non-finite value");
		return reject(b, REJ_NON_FINITE);
	}
	if (n > b->e->cfg.label_limits.max_labels) {
		snprintf(err, errlen, "too many labels (%zu, limit %zu)", n,
		         b->e->cfg.label_limits.max_labels);
		return reject(b, REJ_LABELS);
	}
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += refs[i].name_len + refs[i].value_len;
	if (n > UINT16_MAX || b->nsref + 4 * n > UINT32_MAX || b->nbytes + bytes > UINT32_MAX ||
	    grow_arr((void **)&b->st, &b->capst, b->nst + 1, sizeof *b->st) ||
	    grow_arr((void **)&b->sref, &b->capsref, b->nsref + 4 * n, sizeof *b->sref) ||
	    grow_arr((void **)&b->sbytes, &b->capbytes, b->nbytes + bytes + 1, 1)) {
		snprintf(err, errlen, "out of memory staging a sample");
		return reject(b, REJ_CARDINALITY);
	}
	struct engine_staged *st = &b->st[b->nst++];
	st->ts_ms = ts_ms;
	st->value = value;
	st->shard = (uint8_t)(route_and_hash(refs, n, &st->hash) % ENGINE_SHARDS);
	st->ref0 = (uint32_t)b->nsref;
	st->nref = (uint16_t)n;
	uint32_t *w = b->sref + b->nsref;
	for (size_t i = 0; i < n; i++) {
		w[0] = (uint32_t)b->nbytes;
		w[1] = (uint32_t)refs[i].name_len;
		memcpy(b->sbytes + b->nbytes, refs[i].name, refs[i].name_len);
		b->nbytes += refs[i].name_len;
		w[2] = (uint32_t)b->nbytes;
		w[3] = (uint32_t)refs[i].value_len;
		memcpy(b->sbytes + b->nbytes, refs[i].value, refs[i].value_len);
		b->nbytes += refs[i].value_len;
		w += 4;
	}
	b->nsref += 4 * n;
	if (n > b->max_nref)
		b->max_nref = n;
	return 0;
}

/* Prefetch distances, in samples: the registry slot first, then (once the
 * slot is in cache) the series block it points to. */
#define PF_SLOT 8
#define PF_SERIES 4

static void prefetch_slot(const struct shard *sh, const struct engine_staged *st)
{
	__builtin_prefetch(&sh->reg.table[st->hash & sh->reg.table_mask]);
}

/* The series of st if its first probe hits (the usual case), else NULL. */
static const struct series *peek_series(const struct shard *sh, const struct engine_staged *st)
{
	const struct reg_slot *slot = &sh->reg.table[st->hash & sh->reg.table_mask];
	if (slot->idx1 == 0 || slot->tag != (uint32_t)(st->hash >> 32))
		return NULL;
	return sh->reg.v[slot->idx1 - 1];
}

/* What a sample will touch of its series' block (struct, labels and key,
 * history ring, detector state, forecaster state: one allocation of about
 * 4 KB): the struct with the labels, the history entry it writes, the lines
 * of detector state the model says it needs (model_prefetch: the seasonal
 * component's one bucket, not all 48), and the forecaster's first 128 bytes
 * (all a sample touches unless it closes a grid bucket: one sample in six
 * at a 10 s interval and the 1 min grid). */
static void prefetch_series(const struct engine *e, const struct series *s, int64_t ts_ms)
{
	for (const char *p = (const char *)s; p < (const char *)s->hist; p += 64)
		__builtin_prefetch(p, 1);
	if (s->hist_len > 0 || s->hist_head > 0)
		__builtin_prefetch(&s->hist[s->hist_head], 1);
	model_prefetch(e->model, s->det_state, ts_ms);
	if (e->fc_size) {
		__builtin_prefetch(s->det_state + e->fc_off, 1);
		__builtin_prefetch(s->det_state + e->fc_off + 64, 1);
	}
}

size_t engine_batch_commit(struct engine_batch *b, engine_reject_fn fn, void *ctx)
{
	size_t n = b->nst;
	if (n == 0)
		return 0;
	size_t refused = 0;
	struct label_ref small[64];
	struct label_ref *refs = b->max_nref <= 64 ? small : malloc(b->max_nref * sizeof *refs);
	uint32_t *order = malloc(n * sizeof *order);
	char err[320];
	if (!refs || !order) {
		if (refs != small)
			free(refs);
		free(order);
		for (size_t i = 0; i < n; i++) {
			reject(b, REJ_CARDINALITY);
			if (fn)
				fn(ctx, i, REJ_CARDINALITY + 1, "out of memory committing a batch");
		}
		refused = n;
		goto out;
	}
	/* Order: runs of equal timestamps, each grouped by shard (stable). */
	for (size_t r0 = 0; r0 < n;) {
		size_t r1 = r0 + 1;
		while (r1 < n && b->st[r1].ts_ms == b->st[r0].ts_ms)
			r1++;
		size_t cnt[ENGINE_SHARDS + 1] = { 0 };
		for (size_t i = r0; i < r1; i++)
			cnt[b->st[i].shard + 1]++;
		for (unsigned k = 1; k <= ENGINE_SHARDS; k++)
			cnt[k] += cnt[k - 1];
		for (size_t i = r0; i < r1; i++)
			order[r0 + cnt[b->st[i].shard]++] = (uint32_t)i;
		r0 = r1;
	}
	for (size_t j = 0; j < n; j++) {
		const struct engine_staged *st = &b->st[order[j]];
		struct shard *sh = batch_lock(b, st->shard);
		/* look ahead within the shard whose lock is held */
		if (j + PF_SLOT < n && b->st[order[j + PF_SLOT]].shard == st->shard)
			prefetch_slot(sh, &b->st[order[j + PF_SLOT]]);
		if (j + PF_SERIES < n && b->st[order[j + PF_SERIES]].shard == st->shard) {
			const struct series *ps = peek_series(sh, &b->st[order[j + PF_SERIES]]);
			if (ps)
				prefetch_series(b->e, ps, b->st[order[j + PF_SERIES]].ts_ms);
		}
		const uint32_t *w = b->sref + st->ref0;
		for (size_t i = 0; i < st->nref; i++, w += 4)
			refs[i] = (struct label_ref){ b->sbytes + w[0], w[1], b->sbytes + w[2], w[3] };
		err[0] = 0;
		int rc = add_locked(b, sh, refs, st->nref, st->hash, st->ts_ms, st->value, err,
		                    sizeof err);
		if (rc) {
			refused++;
			if (fn) {
				if (!err[0])
					snprintf(err, sizeof err, "sample rejected (%s)",
					         selfstats_reject_name((enum reject_reason)(rc - 1)));
				fn(ctx, order[j], rc, err);
			}
		}
	}
	if (refs != small)
		free(refs);
	free(order);
out:
	b->nst = b->nsref = b->nbytes = 0;
	b->max_nref = 0;
	return refused;
}

/* Writes the pending transitions of one shard to the store. Called with
 * flush_mu held (which keeps the queue's order: transitions are written by
 * one thread at a time, oldest first), takes the shard lock only to detach
 * the queue and, if the write fails, to put it back in front, so the store's
 * write lock is never taken under a shard lock (engine_checkpoint takes them
 * the other way round). npend_a counts transitions queued and not yet
 * durable, in flight included: a batch that reads 0 knows its own
 * transitions were written. */
static int flush_shard(struct engine *e, struct shard *sh)
{
	pthread_mutex_lock(&sh->mu);
	struct pending_tr *p = sh->pend;
	size_t n = sh->npend, cap = sh->cappend;
	sh->pend = NULL;
	sh->npend = sh->cappend = 0;
	pthread_mutex_unlock(&sh->mu);
	if (n == 0) {
		free(p);
		return 0;
	}
	int rc = 0;
	if (e->store) {
		struct alert_rec *recs = malloc(n * sizeof *recs);
		char err[256] = "out of memory";
		if (recs) {
			for (size_t i = 0; i < n; i++)
				recs[i] = p[i].rec;
			rc = store_alerts_write(e->store, recs, n, err, sizeof err);
			free(recs);
		} else {
			rc = -1;
		}
		if (rc < 0) {
			atomic_fetch_add_explicit(&e->stats->store_errors, 1, memory_order_relaxed);
			log_msg(LOG_ERROR, "event=store_error op=alerts_write pending=%zu error=\"%s\"",
			        n, err);
		}
	} /* else embedded without a store (tests, benchmarks): nothing to keep */
	if (rc == 0) {
		for (size_t i = 0; i < n; i++)
			pending_free(&p[i]);
		free(p);
		atomic_fetch_sub(&sh->npend_a, n);
		return 0;
	}
	/* put them back in front of what was queued meanwhile; retried later */
	pthread_mutex_lock(&sh->mu);
	if (sh->npend > 0) {
		struct pending_tr *np = n + sh->npend <= cap ? p : realloc(p, (n + sh->npend) * sizeof *np);
		if (!np) {
			log_msg(LOG_ERROR, "event=alert_dropped count=%zu reason=oom", n);
			for (size_t i = 0; i < n; i++)
				pending_free(&p[i]);
			free(p);
			atomic_fetch_sub(&sh->npend_a, n);
			pthread_mutex_unlock(&sh->mu);
			return -1;
		}
		p = np;
		if (n + sh->npend > cap)
			cap = n + sh->npend;
		memcpy(p + n, sh->pend, sh->npend * sizeof *p);
		free(sh->pend);
	}
	sh->pend = p;
	sh->npend += n;
	sh->cappend = cap;
	pthread_mutex_unlock(&sh->mu);
	return -1;
}

/* Releases the batch's shard lock, then writes the pending transitions of
 * every shard the batch touched (flush_shard), so they are durable before
 * this returns. A shard's queue may hold other batches' transitions too:
 * they are written in queue order by whichever batch comes first. */
int engine_batch_end(struct engine_batch *b)
{
	struct engine *e = b->e;
	engine_batch_commit(b, NULL, NULL);
	stage_release(b);
	if (b->shard >= 0)
		pthread_mutex_unlock(&e->sh[b->shard].mu);
	b->shard = -1;
	if (b->res.accepted > b->counted) {
		atomic_fetch_add_explicit(&e->stats->samples_accepted, b->res.accepted - b->counted,
		                          memory_order_relaxed);
		b->counted = b->res.accepted;
	}
	unsigned todo = 0;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++)
		if ((b->touched & (1u << k)) && atomic_load(&e->sh[k].npend_a) > 0)
			todo |= 1u << k;
	if (!todo)
		return 0;
	int rc = 0;
	pthread_mutex_lock(&e->flush_mu);
	for (unsigned k = 0; k < ENGINE_SHARDS; k++)
		if ((todo & (1u << k)) && flush_shard(e, &e->sh[k]) < 0)
			rc = -1;
	pthread_mutex_unlock(&e->flush_mu);
	return rc;
}

/* Readers walking every series release the lock every READ_CHUNK series so
 * that a scrape of /metrics or a wide query never stalls ingest for long.
 * Safe because series are never removed and indices are stable; pointers are
 * re-read from sh->reg.v after reacquiring (a model reload may move them). */
#define READ_CHUNK 1024
static void yield_lock(struct shard *sh, size_t i)
{
	if (i > 0 && i % READ_CHUNK == 0) {
		pthread_mutex_unlock(&sh->mu);
		pthread_mutex_lock(&sh->mu);
	}
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
	si->kind = s->kind;
}

int engine_series_foreach(struct engine *e, const struct selector *sel, size_t nsel,
                          engine_series_fn fn, void *ctx)
{
	int rc = 0;
	for (unsigned sk = 0; sk < ENGINE_SHARDS && rc == 0; sk++) {
		struct shard *sh = &e->sh[sk];
		pthread_mutex_lock(&sh->mu);
		for (size_t i = 0; i < sh->reg.n && rc == 0; i++) {
			yield_lock(sh, i);
			const struct series *s = sh->reg.v[i];
			if (!series_selected(s, sel, nsel))
				continue;
			struct series_info si;
			fill_info(s, &si);
			rc = fn(ctx, &si);
		}
		pthread_mutex_unlock(&sh->mu);
	}
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
	for (unsigned sk = 0; sk < ENGINE_SHARDS && rc == 0; sk++) {
		struct shard *sh = &e->sh[sk];
		pthread_mutex_lock(&sh->mu);
		for (size_t i = 0; i < sh->reg.n && rc == 0; i++) {
			yield_lock(sh, i);
			const struct series *s = sh->reg.v[i];
			if (!series_selected(s, sel, nsel))
				continue;
			size_t n = 0;
			for (size_t k = 0; k < s->hist_len; k++) {
				struct hist_point h;
				series_hist_get(s, cap, k, &h);
				if (h.ts_ms < start_ms || h.ts_ms > end_ms)
					continue;
				pts[n++] = (struct history_point){ .ts_ms = h.ts_ms,
					                           .value = (float)h.value,
					                           .score = (float)h.score,
					                           .expected = (float)h.expected,
					                           .lower = (float)h.lower,
					                           .upper = (float)h.upper,
					                           .direction = (int8_t)h.direction,
					                           .component = h.comp && h.comp < sh->ncomps ?
					                                                sh->comps[h.comp] :
					                                                NULL };
			}
			struct series_info si;
			fill_info(s, &si);
			rc = fn(ctx, &si, pts, n);
		}
		pthread_mutex_unlock(&sh->mu);
	}
	free(pts);
	return rc;
}

/* The forecaster state of a selected gauge or derived series, or NULL
 * (forecasting off, a raw counter or bucket, or not selected). */
static const void *forecast_state_of(const struct engine *e, const struct series *s,
                                     const struct selector *sel, size_t nsel)
{
	if (!e->fc_size || s->kind == SERIES_COUNTER || s->kind == SERIES_BUCKET ||
	    !series_selected(s, sel, nsel))
		return NULL;
	return s->det_state + e->fc_off;
}

int engine_forecast(struct engine *e, const struct selector *sel, size_t nsel, int64_t step_ms,
                    size_t n, double limit, int above, engine_forecast_fn fn, void *ctx)
{
	if (n == 0 || step_ms <= 0)
		return -1;
	struct forecast_point *pts = malloc(n * sizeof *pts);
	if (!pts)
		return -1;
	int rc = 0;
	for (unsigned sk = 0; sk < ENGINE_SHARDS && rc == 0; sk++) {
		struct shard *sh = &e->sh[sk];
		pthread_mutex_lock(&sh->mu);
		for (size_t i = 0; i < sh->reg.n && rc == 0; i++) {
			yield_lock(sh, i);
			const struct series *s = sh->reg.v[i];
			const void *st = forecast_state_of(e, s, sel, nsel);
			if (!st)
				continue;
			struct series_info si;
			fill_info(s, &si);
			struct forecast_info info;
			forecast_info_get(st, &info);
			size_t got = 0;
			if (forecast_predict(&e->cfg.forecast_params, st, s->last_ts_ms + step_ms, step_ms, n,
			                     pts) == 0)
				got = n;
			struct breach br, *brp = NULL;
			if (got && !isnan(limit) &&
			    forecast_time_to_breach(&e->cfg.forecast_params, st, s->last_ts_ms,
			                            (int64_t)n * step_ms, limit, above, &br) == 0)
				brp = &br;
			rc = fn(ctx, &si, pts, got, brp, &info);
		}
		pthread_mutex_unlock(&sh->mu);
	}
	free(pts);
	return rc;
}

int engine_forecast_at(struct engine *e, const struct selector *sel, size_t nsel, int64_t from_ms,
                       int64_t step_ms, size_t n, engine_forecast_fn fn, void *ctx)
{
	int64_t last_grid;
	if (n == 0 || step_ms <= 0 || n > SIZE_MAX / sizeof(struct forecast_point) ||
	    __builtin_mul_overflow((int64_t)(n - 1), step_ms, &last_grid) ||
	    __builtin_add_overflow(from_ms, last_grid, &last_grid))
		return -1;
	struct forecast_point *pts = malloc(n * sizeof *pts);
	if (!pts)
		return -1;
	int rc = 0;
	for (unsigned sk = 0; sk < ENGINE_SHARDS && rc == 0; sk++) {
		struct shard *sh = &e->sh[sk];
		pthread_mutex_lock(&sh->mu);
		for (size_t i = 0; i < sh->reg.n && rc == 0; i++) {
			yield_lock(sh, i);
			const struct series *s = sh->reg.v[i];
			const void *st = forecast_state_of(e, s, sel, nsel);
			if (!st)
				continue;
			struct series_info si;
			fill_info(s, &si);
			struct forecast_info info;
			forecast_info_get(st, &info);
			/* k0: the first grid index strictly after the last sample */
			size_t k0 = 0, got = 0;
			if (s->last_ts_ms >= last_grid)
				k0 = n;
			else if (s->last_ts_ms >= from_ms)
				k0 = (size_t)((s->last_ts_ms - from_ms) / step_ms) + 1;
			if (k0 < n &&
			    forecast_predict(&e->cfg.forecast_params, st, from_ms + (int64_t)k0 * step_ms,
			                     step_ms, n - k0, pts) == 0)
				got = n - k0;
			rc = fn(ctx, &si, pts, got, NULL, &info);
		}
		pthread_mutex_unlock(&sh->mu);
	}
	free(pts);
	return rc;
}

void engine_set_services(struct engine *e, struct services *svcs)
{
	lock_all(e);
	pthread_mutex_lock(&e->svc_mu);
	services_adopt(svcs, e->svcs); /* open service alerts and what was learned carry over */
	services_free(e->svcs);
	e->svcs = svcs;
	size_t bound = 0;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		struct shard *sh = &e->sh[k];
		for (size_t i = 0; i < sh->reg.n; i++) {
			struct series *s = sh->reg.v[i];
			s->roles = svcs ? services_bind(svcs, &s->labels, &s->svc) : 0;
			bound += s->roles != 0;
		}
	}
	pthread_mutex_unlock(&e->svc_mu);
	unlock_all(e);
	log_msg(LOG_INFO, "event=services_loaded services=%zu series_bound=%zu",
	        svcs ? services_count(svcs) : 0, bound);
}

void engine_services_json(struct engine *e, struct obuf *b)
{
	pthread_mutex_lock(&e->svc_mu);
	if (e->svcs)
		services_json(e->svcs, b);
	else
		obuf_puts(b, "[]");
	pthread_mutex_unlock(&e->svc_mu);
}

int engine_set_external_url(struct engine *e, const char *url)
{
	char *u = url ? strdup(url) : NULL;
	if (url && !u)
		return -1;
	lock_all(e); /* annotations read it under a shard lock */
	free(e->external_url);
	e->external_url = u;
	e->cfg.external_url = u;
	unlock_all(e);
	return 0;
}

void engine_get_stats(struct engine *e, struct engine_stats *st)
{
	memset(st, 0, sizeof *st);
	st->max_series = e->cfg.max_series;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		struct shard *sh = &e->sh[k];
		pthread_mutex_lock(&sh->mu);
		st->series += sh->reg.n;
		st->pending_transitions += atomic_load(&sh->npend_a);
		if (sh->last_sample_ms > st->last_sample_ms)
			st->last_sample_ms = sh->last_sample_ms;
		if (k == 0)
			st->model_name = model_name(e->model); /* swapped under every shard lock */
		pthread_mutex_unlock(&sh->mu);
	}
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
	/* flush_mu first: no batch can then wait for the store's write lock
	 * (held for the whole checkpoint transaction) while holding a shard. */
	pthread_mutex_lock(&e->flush_mu);
	unsigned char *blob = NULL;
	size_t blob_len = 0, ss = 0;
	int rc = -1;
	struct shard *sh = NULL;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		if (flush_shard(e, &e->sh[k]) < 0) {
			snprintf(err, errlen, "pending alert transitions could not be written");
			goto out;
		}
	}
	if (store_ckpt_begin(e->store) < 0) {
		snprintf(err, errlen, "cannot start checkpoint transaction");
		store_ckpt_rollback(e->store);
		goto out;
	}
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		sh = &e->sh[k];
		pthread_mutex_lock(&sh->mu);
		if (sh->reg.state_size != ss || !blob) { /* a model swap may change it between shards */
			ss = sh->reg.state_size;
			blob_len = sizeof(struct ckpt_head) + sizeof(struct alert_fsm) + ss;
			free(blob);
			blob = malloc(blob_len);
			if (!blob) {
				snprintf(err, errlen, "out of memory");
				store_ckpt_rollback(e->store);
				goto out;
			}
		}
		for (size_t i = 0; i < sh->reg.n; i++) {
			struct series *s = sh->reg.v[i];
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
		pthread_mutex_unlock(&sh->mu);
		sh = NULL;
	}
	if (store_ckpt_commit(e->store) < 0) {
		snprintf(err, errlen, "checkpoint commit failed");
		goto out;
	}
	rc = 0;
out:
	if (sh)
		pthread_mutex_unlock(&sh->mu);
	pthread_mutex_unlock(&e->flush_mu);
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
	struct shard *sh = ok ? &e->sh[route_labels(&l) % ENGINE_SHARDS] : NULL;
	if (!ok || registry_find(&sh->reg, &l)) {
		if (ok)
			labels_free(&l);
		rc->failed++;
		return 0;
	}
	enum series_kind kind = classify(e, &l);
	struct series *s = registry_insert(&sh->reg, &l, hash);
	if (!s) {
		rc->failed++;
		return 0;
	}
	atomic_fetch_add(&e->nseries, 1);
	s->kind = (uint8_t)kind;
	if (e->svcs)
		s->roles = services_bind(e->svcs, &s->labels, &s->svc);
	size_t ss = sh->reg.state_size;
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
			if (c->last_ts_ms > sh->last_sample_ms)
				sh->last_sample_ms = c->last_ts_ms;
			if (f.alert_id >= atomic_load(&e->next_alert_id))
				atomic_store(&e->next_alert_id, f.alert_id + 1);
			rc->restored++;
			return 0;
		}
	}
	/* Model changed: keep the series and its alert, re-learn the detector. */
	state_init(e, s);
	s->last_ts_ms = c->last_ts_ms;
	s->samples = c->last_ts_ms > 0 ? 1 : 0;
	s->first_ts_ms = c->last_ts_ms;
	rc->fresh++;
	return 0;
}

/* Open alerts read back from the store at start-up. */
struct open_alert {
	int64_t id;
	char *series_key;
	char *labels_json;
	char *annotations_json;
	int state;           /* ALERT_PENDING or ALERT_FIRING */
	int64_t active_at_ms, firing_at_ms, event_at_ms;
	double value, score;
};

struct open_alerts {
	struct open_alert *v;
	size_t n, cap;
};

static int collect_open(void *ctx, const struct alert_rec *r)
{
	struct open_alerts *oa = ctx;
	if (oa->n == oa->cap) {
		size_t ncap = oa->cap ? oa->cap * 2 : 16;
		struct open_alert *nv = realloc(oa->v, ncap * sizeof *nv);
		if (!nv)
			return -1;
		oa->v = nv;
		oa->cap = ncap;
	}
	struct open_alert *a = &oa->v[oa->n];
	memset(a, 0, sizeof *a);
	a->id = r->id;
	a->series_key = strdup(r->series_key);
	a->labels_json = strdup(r->labels_json ? r->labels_json : "{}");
	a->annotations_json = strdup(r->annotations_json ? r->annotations_json : "{}");
	a->state = !strcmp(r->state, "firing") ? ALERT_FIRING : ALERT_PENDING;
	a->active_at_ms = r->active_at_ms;
	a->firing_at_ms = r->firing_at_ms;
	a->event_at_ms = r->event_at_ms;
	a->value = r->value;
	a->score = r->score;
	if (!a->series_key || !a->labels_json || !a->annotations_json) {
		free(a->series_key);
		free(a->labels_json);
		free(a->annotations_json);
		return -1;
	}
	oa->n++;
	return 0;
}

/* The store is written synchronously at every transition, checkpoints only
 * periodically: after a crash the store is the newer truth. Bring each
 * series' alert state machine in line with the open alerts of the store, and
 * close alerts whose series did not survive (no checkpoint yet). */
/* The series of a global_idx, or NULL. */
static struct series *series_at(struct engine *e, uint32_t g)
{
	struct shard *sh = &e->sh[g % ENGINE_SHARDS];
	size_t i = g / ENGINE_SHARDS;
	return i < sh->reg.n ? sh->reg.v[i] : NULL;
}

/* Called with every shard and svc_mu locked; returns with them released
 * (the store's write lock is not taken under a shard lock: see flush_shard). */
static void reconcile_alerts(struct engine *e)
{
	int locked = 1;
	struct open_alerts oa = { 0 };
	if (store_alerts_scan(e->store, 0, 0, collect_open, &oa) < 0) {
		log_msg(LOG_ERROR, "event=reconcile_failed reason=\"cannot read open alerts\"");
		goto out;
	}
	size_t adopted = 0, closed = 0, reset = 0;
	/* series keyed by canonical key: temporary table, only when alerts are
	 * open; entries are global_idx + 1 (index * ENGINE_SHARDS + shard) */
	size_t total = 0;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++)
		total += e->sh[k].reg.n;
	size_t mask = 1;
	while (mask < total * 2 + 1)
		mask <<= 1;
	mask--;
	uint32_t *t = oa.n ? calloc(mask + 1, sizeof *t) : NULL;
	if (oa.n && !t)
		goto out;
	for (unsigned sk = 0; t && sk < ENGINE_SHARDS; sk++) {
		struct shard *sh = &e->sh[sk];
		for (size_t k = 0; k < sh->reg.n; k++) {
			size_t i = str_hash(sh->reg.v[k]->key, strlen(sh->reg.v[k]->key)) & mask;
			while (t[i])
				i = (i + 1) & mask;
			t[i] = global_idx(sh, sh->reg.v[k]) + 1;
		}
	}
	struct alert_rec *closing = calloc(oa.n ? oa.n : 1, sizeof *closing);
	size_t nclosing = 0;
	for (size_t a = 0; a < oa.n; a++) {
		struct series *s = NULL;
		for (size_t i = str_hash(oa.v[a].series_key, strlen(oa.v[a].series_key)) & mask;
		     t && t[i]; i = (i + 1) & mask) {
			struct series *c = series_at(e, t[i] - 1);
			if (!strcmp(c->key, oa.v[a].series_key)) {
				s = c;
				break;
			}
		}
		if (!s && strncmp(oa.v[a].series_key, "service:", 8) == 0 && e->svcs &&
		    services_restore_alert(e->svcs, oa.v[a].series_key,
		                           (enum alert_state)oa.v[a].state, oa.v[a].id,
		                           oa.v[a].active_at_ms, oa.v[a].firing_at_ms,
		                           oa.v[a].score) == 0) {
			adopted++;
			continue;
		}
		if (s) {
			if (s->alert.alert_id != oa.v[a].id || s->alert.state != oa.v[a].state) {
				alert_fsm_restore(&s->alert, (enum alert_state)oa.v[a].state, oa.v[a].id,
				                  oa.v[a].active_at_ms, oa.v[a].firing_at_ms, oa.v[a].score);
				adopted++;
			}
			continue;
		}
		if (!closing)
			continue;
		/* the series' state was lost (crash before its first checkpoint) */
		struct alert_rec *r = &closing[nclosing++];
		r->id = oa.v[a].id;
		r->series_key = oa.v[a].series_key;
		r->labels_json = oa.v[a].labels_json;
		r->annotations_json = oa.v[a].annotations_json;
		r->state = oa.v[a].state == ALERT_FIRING ? "resolved" : "cancelled";
		r->active_at_ms = oa.v[a].active_at_ms;
		r->firing_at_ms = oa.v[a].firing_at_ms;
		r->resolved_at_ms = oa.v[a].event_at_ms;
		r->event_at_ms = oa.v[a].event_at_ms;
		r->value = oa.v[a].value;
		r->score = oa.v[a].score;
		closed++;
	}
	/* series whose checkpoint says "open" but the store has it ended */
	for (size_t g = 0; g < total; g++) {
		struct series *s = series_at(e, (uint32_t)g);
		if (!s || s->alert.state == ALERT_INACTIVE)
			continue;
		int open = 0;
		for (size_t a = 0; a < oa.n && !open; a++)
			open = oa.v[a].id == s->alert.alert_id;
		if (!open) {
			int64_t id = s->alert.alert_id;
			alert_fsm_init(&s->alert);
			s->alert.alert_id = id;
			reset++;
		}
	}
	pthread_mutex_unlock(&e->svc_mu);
	unlock_all(e);
	locked = 0;
	if (nclosing) {
		char err[256];
		if (store_alerts_write(e->store, closing, nclosing, err, sizeof err) < 0)
			log_msg(LOG_ERROR, "event=reconcile_failed error=\"%s\"", err);
	}
	free(closing);
	free(t);
	if (adopted || closed || reset)
		log_msg(LOG_INFO, "event=alerts_reconciled adopted=%zu closed_orphans=%zu reset=%zu",
		        adopted, closed, reset);
out:
	if (locked) {
		pthread_mutex_unlock(&e->svc_mu);
		unlock_all(e);
	}
	for (size_t a = 0; a < oa.n; a++) {
		free(oa.v[a].series_key);
		free(oa.v[a].labels_json);
		free(oa.v[a].annotations_json);
	}
	free(oa.v);
}

long engine_restore(struct engine *e, char *err, size_t errlen)
{
	if (!e->store)
		return 0;
	struct restore_ctx rc = { .e = e };
	lock_all(e);
	pthread_mutex_lock(&e->svc_mu);
	int r = store_ckpt_scan(e->store, restore_cb, &rc);
	if (r >= 0) {
		reconcile_alerts(e); /* releases the locks */
	} else {
		pthread_mutex_unlock(&e->svc_mu);
		unlock_all(e);
	}
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
	lock_all(e);
	struct model *old = e->model;
	uint64_t old_fp = e->fingerprint;
	size_t old_size = e->fc_off + e->fc_size;
	e->model = m;
	set_layout(e);
	if (e->fingerprint != old_fp) {
		size_t new_size = e->fc_off + e->fc_size;
		unsigned done = 0;
		while (new_size != old_size && done < ENGINE_SHARDS &&
		       registry_resize_state(&e->sh[done].reg, new_size) == 0)
			done++;
		if (new_size != old_size && done < ENGINE_SHARDS) {
			log_msg(LOG_ERROR, "event=reload_failed reason=oom model=%s", model_name(m));
			/* back to the old layout (shrinking back; the old states are lost
			 * only if even that fails) */
			for (unsigned k = 0; k < done; k++)
				if (registry_resize_state(&e->sh[k].reg, old_size) < 0)
					log_msg(LOG_ERROR, "event=reload_revert_failed shard=%u", k);
			e->model = old;
			set_layout(e);
			unlock_all(e);
			model_free(m);
			return;
		}
		/* The forecaster state could be kept, but its offset may have
		 * moved with the model's state size: re-learn both. */
		size_t total = 0;
		for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
			struct shard *sh = &e->sh[k];
			for (size_t i = 0; i < sh->reg.n; i++)
				state_init(e, sh->reg.v[i]);
			total += sh->reg.n;
		}
		log_msg(LOG_INFO, "event=model_changed model=%s series_relearning=%zu", model_name(m),
		        total);
	} else {
		log_msg(LOG_INFO, "event=model_unchanged model=%s", model_name(m));
	}
	model_free(old);
	unlock_all(e);
}

int engine_prune(struct engine *e)
{
	if (!e->store)
		return 0;
	int64_t last = 0;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		pthread_mutex_lock(&e->sh[k].mu);
		if (e->sh[k].last_sample_ms > last)
			last = e->sh[k].last_sample_ms;
		pthread_mutex_unlock(&e->sh[k].mu);
	}
	int64_t horizon = last - e->cfg.alert_retention_ms;
	if (horizon <= 0)
		return 0;
	return store_alerts_prune(e->store, horizon);
}
