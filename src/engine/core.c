/* engine/core.c — the engine's life cycle, shard routing, batches (add,
 * stage, commit, end), the per-sample path (find or create the series, order
 * check, detector, alert state, the samples derive.c hands back) and the
 * flush of alert transitions to the store (see engine.h). Changes at run
 * time (model, services, external URL), stats and pruning: control.c. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/log.h"
#include "service/service.h"
#include "store/store.h"


void engine_config_default(struct engine_config *c)
{
	memset(c, 0, sizeof *c);
	c->max_series = 1000000;
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	c->max_memory = pages > 0 && psz > 0 ? (size_t)pages / 2 * (size_t)psz : 0;
	c->quantiles[0] = 0.5;
	c->quantiles[1] = 0.9;
	c->quantiles[2] = 0.99;
	c->nquantiles = 3;
	c->history_points = 24;
	c->label_limits = (struct label_limits)LABEL_LIMITS_DEFAULT;
	c->alert_retention_ms = 7LL * 86400 * 1000;
	c->alertname = "ForeshockAnomaly";
	c->series_threshold = 0;
	c->series_min_factor = 0;
	c->series_for_ms = -1;
	c->series_break_factor = 0;
	c->series_break_ms = 60 * 1000;
	c->external_url = NULL;
	c->forecast = ENGINE_FORECAST_REQUESTED;
	c->max_sample_age_ms = 0;
	c->max_sample_future_ms = 10 * 60 * 1000;
	forecast_params_default(&c->forecast_params);
}

void engine_batch_set_clock(struct engine_batch *b, int64_t now_ms)
{
	b->now_ms = now_ms;
	/* [ts_lo, ts_hi]: what eng_check_time() accepts, for eng_admit()'s
	 * inline test (saturated: the limits are far inside int64) */
	const struct engine_config *c = &b->e->cfg;
	int64_t lo = -ENGINE_TS_LIMIT_MS, hi = ENGINE_TS_LIMIT_MS, t;
	if (now_ms && c->max_sample_age_ms && !__builtin_sub_overflow(now_ms, c->max_sample_age_ms, &t) &&
	    t > lo)
		lo = t;
	if (now_ms && c->max_sample_future_ms &&
	    !__builtin_add_overflow(now_ms, c->max_sample_future_ms, &t) && t < hi)
		hi = t;
	b->ts_lo = lo;
	b->ts_hi = hi;
}

/* Is ts_ms acceptable in this batch? Returns 0, or the reject reason + 1
 * with the reason in err. */
int eng_check_time(struct engine_batch *b, int64_t ts_ms, char *err, size_t errlen)
{
	const struct engine_config *c = &b->e->cfg;
	if (ts_ms > ENGINE_TS_LIMIT_MS || ts_ms < -ENGINE_TS_LIMIT_MS) {
		snprintf(err, errlen, "timestamp %lld ms out of range (more than 2,000 years from "
		         "1970)", (long long)ts_ms);
		return eng_reject(b, REJ_OUT_OF_BOUNDS);
	}
	if (!b->now_ms)
		return 0;
	if (c->max_sample_future_ms && ts_ms > b->now_ms + c->max_sample_future_ms) {
		snprintf(err, errlen, "out of bounds: timestamp %lld ms is %.0f s ahead of the "
		         "server's clock (limits.max_sample_future: %lld s)", (long long)ts_ms,
		         (double)(ts_ms - b->now_ms) / 1000.0,
		         (long long)(c->max_sample_future_ms / 1000));
		return eng_reject(b, REJ_OUT_OF_BOUNDS);
	}
	if (c->max_sample_age_ms && ts_ms < b->now_ms - c->max_sample_age_ms) {
		snprintf(err, errlen, "out of bounds: timestamp %lld ms is %.0f s behind the "
		         "server's clock (limits.max_sample_age: %lld s)", (long long)ts_ms,
		         (double)(b->now_ms - ts_ms) / 1000.0,
		         (long long)(c->max_sample_age_ms / 1000));
		return eng_reject(b, REJ_OUT_OF_BOUNDS);
	}
	return 0;
}

/* The per-series state: the model's block (in the series' allocation) and
 * the forecaster's (from the shard's pool, on request), and the
 * fingerprint that guards checkpoints of both. fc_off is where the
 * forecaster state was in a checkpoint of the layout before the pool
 * (model and forecaster in one block): checkpoint.c migrates those. */
void eng_set_layout(struct engine *e)
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
	eng_series_alerting(e, &e->series_al);
}

void eng_state_init(struct engine *e, struct series *s)
{
	model_state_init(e->model, s->det_state);
}

void *eng_forecaster(struct engine *e, struct shard *sh, struct series *s)
{
	if (s->fc || !e->fc_size || s->kind == SERIES_COUNTER || s->kind == SERIES_BUCKET)
		return s->fc;
	size_t used = atomic_load_explicit(&e->series_bytes, memory_order_relaxed);
	if (e->cfg.max_memory && used + sh->reg.fc_size > e->cfg.max_memory)
		return NULL;
	void *st = registry_fc_alloc(&sh->reg);
	if (!st)
		return NULL;
	forecast_state_init(&e->cfg.forecast_params, st);
	s->fc = st;
	atomic_fetch_add_explicit(&e->series_bytes, sh->reg.fc_size, memory_order_relaxed);
	return st;
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
	pthread_mutex_init(&e->persist_mu, NULL);
	pthread_mutex_init(&e->orphan_mu, NULL);
	pthread_mutex_init(&e->stage.mu, NULL);
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
	eng_set_layout(e);
	int ok = e->alertname != NULL;
	for (unsigned i = 0; i < ENGINE_SHARDS && ok; i++)
		ok = registry_init(&e->sh[i].reg, cfg->max_series, e->det_size,
		                   cfg->history_points, e->fc_size) == 0;
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
	max = 0;
	if (store && store_state_max_sid(store, &max) < 0) {
		snprintf(err, errlen, "cannot read series state from the store");
		engine_free(e);
		return NULL;
	}
	atomic_store(&e->next_sid, max + 1);
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
		free(sh->dirty);
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
	eng_orphans_free(e);
	pthread_mutex_destroy(&e->persist_mu);
	pthread_mutex_destroy(&e->orphan_mu);
	eng_stage_pool_free(&e->stage);
	free(e);
}


int eng_reject(struct engine_batch *b, enum reject_reason r)
{
	b->res.rejected[r]++;
	atomic_fetch_add_explicit(&b->e->stats->samples_rejected[r], 1, memory_order_relaxed);
	return (int)r + 1;
}

/* --- series lookup and sample processing -------------------------------- */

/* Shard routing (see struct shard): a hash of the labels, independent of
 * their order, without `le` and empty values, with __name__ reduced to its
 * family: foreshock:rate: and foreshock:p<...>: prefixes, then a _bucket
 * suffix, removed. The same function routes checkpointed series at restore,
 * so derived series come back in their parent's shard. */
/* The routing hash of one pair, and (pair, may be NULL) its
 * label_pair_hash(), 0 for an empty value. */
static inline uint64_t route_pair_ex(const char *name, size_t nl, const char *value, size_t vl,
                                     uint64_t *pair)
{
	uint64_t ph = vl ? label_pair_hash(name, nl, value, vl) : 0;
	if (pair)
		*pair = ph;
	return eng_route_of(name, nl, value, vl, ph);
}

static uint64_t route_pair(const char *name, size_t nl, const char *value, size_t vl)
{
	return route_pair_ex(name, nl, value, vl, NULL);
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
	return eng_route_mix(acc);
}

unsigned eng_route_labels(const struct labels *l)
{
	uint64_t acc = 0;
	for (size_t i = 0; i < l->n; i++)
		acc += route_pair(l->names[i], strlen(l->names[i]), l->values[i], strlen(l->values[i]));
	return eng_route_mix(acc);
}

/* Find or create the series for refs. Returns NULL with *rej set (an enum
 * reject_reason) and a message in err. */
struct series *eng_find_or_create(struct engine_batch *b, struct shard *sh,
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
	size_t used = atomic_load_explicit(&e->series_bytes, memory_order_relaxed);
	if (e->cfg.max_memory && used >= e->cfg.max_memory) {
		atomic_fetch_sub(&e->nseries, 1);
		snprintf(err, errlen,
		         "memory limit %zu bytes reached (%zu bytes in %zu series): new series of "
		         "metric '%s' rejected (raise limits.max_memory or reduce label cardinality)",
		         e->cfg.max_memory, used, atomic_load(&e->nseries), name);
		labels_free(&l);
		*rej = REJ_MEMORY;
		return NULL;
	}
	enum series_kind kind = derived ? SERIES_DERIVED : eng_classify(e, &l);
	s = registry_insert(&sh->reg, &l, hash);
	if (!s) {
		atomic_fetch_sub(&e->nseries, 1);
		snprintf(err, errlen, "out of memory creating a series");
		*rej = REJ_CARDINALITY;
		return NULL;
	}
	s->kind = (uint8_t)kind;
	atomic_fetch_add_explicit(&e->series_bytes, eng_series_cost(s), memory_order_relaxed);
	eng_state_init(e, s);
	if (atomic_load_explicit(&e->norphans, memory_order_relaxed))
		eng_adopt_orphan(e, s);
	if (e->svcs) {
		lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
		s->roles = services_bind(e->svcs, &s->labels, &s->svc);
		lockrank_unlock(&e->svc_mu);
	}
	b->res.series_created++;
	return s;
}

/* Ordering check and bookkeeping shared by every kind. Returns 0 or the
 * reject reason + 1. */
int eng_check_order(struct engine_batch *b, struct series *s, int64_t ts_ms, char *err,
                       size_t errlen)
{
	if (s->samples > 0 && ts_ms <= s->last_ts_ms) {
		char key[256]; /* err holds less than that */
		series_key(s, key, sizeof key);
		if (ts_ms == s->last_ts_ms) {
			snprintf(err, errlen, "duplicate sample for '%s' at %lld ms", key,
			         (long long)ts_ms);
			return eng_reject(b, REJ_DUPLICATE);
		}
		snprintf(err, errlen, "out-of-order sample for '%s': %lld ms is before %lld ms", key,
		         (long long)ts_ms, (long long)s->last_ts_ms);
		return eng_reject(b, REJ_OUT_OF_ORDER);
	}
	return 0;
}

/* Index of a component name in the engine's table (0 = unknown/none). The
 * names are static strings of the detectors: a pass comparing pointers
 * finds them, and only a name not found so is compared by its bytes (a
 * strcmp against every slot before a name's own was 20 instructions a
 * sample). */
static unsigned comp_index(struct shard *sh, const char *name)
{
	if (!name)
		return 0;
	for (unsigned i = 1; i < sh->ncomps; i++)
		if (sh->comps[i] == name)
			return i;
	for (unsigned i = 1; i < sh->ncomps; i++)
		if (!strcmp(sh->comps[i], name))
			return i;
	if (sh->ncomps == 0)
		sh->ncomps = 1; /* slot 0 means none */
	if (sh->ncomps >= 64)
		return 0;
	sh->comps[sh->ncomps] = name;
	return sh->ncomps++;
}

void eng_record(struct shard *sh, struct series *s, int64_t ts_ms, double value,
                   const struct det_result *r)
{
	if (s->samples == 0)
		s->first_ts_ms = ts_ms;
	s->samples++;
	s->last_ts_ms = ts_ms;
	if (!s->dirty)
		eng_mark_dirty(sh, s);
	s->last_value = value;
	s->last = (struct last_result){ r->score, r->expected, r->lower, r->upper };
	int dir = (r->direction > 0) - (r->direction < 0);
	s->last_direction = (int8_t)dir;
	/* the component is most often the last sample's: its slot first */
	unsigned comp = s->last_comp && s->last_comp < sh->ncomps &&
	                        sh->comps[s->last_comp] == r->component
	                        ? s->last_comp
	                        : comp_index(sh, r->component);
	s->last_comp = (uint8_t)comp;
	series_hist_put(s, sh->reg.hist_cap, ts_ms, value, r->score, r->expected, r->lower, r->upper,
	                dir, comp);
	if (ts_ms > sh->last_sample_ms)
		sh->last_sample_ms = ts_ms;
}

/* Hand one scored sample to the exporters (engine_set_outputs). */
static void emit_output(struct engine *e, const struct series *s, int64_t ts_ms, double value,
                        const struct det_result *r)
{
	const struct model_alerting *al = model_alerting(e->model);
	struct forecast_point fp;
	int have_fc = s->fc && e->out.fc_horizon_ms > 0 &&
	              forecast_predict(&e->cfg.forecast_params, s->fc, ts_ms + e->out.fc_horizon_ms,
	                               0, 1, &fp) == 0;
	struct engine_output o = {
		.labels = &s->labels,
		.ts_ms = ts_ms,
		.value = value,
		.det = r,
		.alert_state = s->alert.state,
		.active_at_ms = s->alert.state != ALERT_INACTIVE ? s->alert.active_at_ms : 0,
		.alertname = e->alertname,
		.severity = al && al->severity ? al->severity : "warning",
		.fc = have_fc ? &fp : NULL,
		.service = s->roles && e->svcs ? services_name(e->svcs, s->svc) : NULL,
		.role = s->roles ? services_role_name(s->roles) : NULL,
	};
	e->out.series(e->out.ctx, &o);
}

void engine_set_outputs(struct engine *e, const struct engine_outputs *o)
{
	lock_all(e);
	lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
	if (o)
		e->out = *o;
	else
		memset(&e->out, 0, sizeof e->out);
	lockrank_unlock(&e->svc_mu);
	unlock_all(e);
}

/* A gauge or derived sample: detector, history, alert. */

void eng_detect(struct engine *e, struct shard *sh, struct series *s, int64_t ts_ms,
                   double value)
{
	struct det_result r;
	model_update(e->model, s->det_state, ts_ms, value, &r);
	void *fc = s->fc;
	if (!fc && e->fc_size &&
	    (e->cfg.forecast == ENGINE_FORECAST_ALL || s->roles ||
	     (e->out.series && e->out.fc_horizon_ms > 0)))
		fc = eng_forecaster(e, sh, s);
	if (fc)
		forecast_update(&e->cfg.forecast_params, fc, ts_ms, value);
	eng_record(sh, s, ts_ms, value, &r);
	/* a series of a service model (a signal or in its scope) is evidence in
	 * the service's alert and raises none of its own: its machine sees 0, so
	 * an alert left open from before the model ends normally */
	double sc = s->roles && e->svcs ? 0.0 : eng_series_alert_score(e, s, value, &r);
	const struct model_alerting *alp = &e->series_al;
	struct model_alerting brk;
	if (!(s->roles && e->svcs) && eng_series_hard_break(e, s, ts_ms, value, sc, &r)) {
		brk = e->series_al;
		brk.for_ms = 0; /* an obvious break pages without waiting for `for` */
		alp = &brk;
	}
	enum alert_event ev = alert_fsm_step(&s->alert, alp, ts_ms, sc, value);
	if (ev != AEV_NONE)
		eng_queue_transition(e, sh, s, ev, &r, ts_ms, value);
	if (e->out.series)
		emit_output(e, s, ts_ms, value, &r);
	if (s->roles && e->svcs) {
		lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
		e->nstr = 0;
		/* the key names the service's evidence, which keeps 159 bytes of it */
		char key[256];
		series_key(s, key, sizeof key);
		if (services_observe(e->svcs, s->svc, s->roles, global_idx(sh, s), key, ts_ms, value,
		                     &r, &e->str, &e->nstr, &e->capstr) < 0)
			log_msg(LOG_ERROR, "event=service_observe_failed series=%s reason=oom", key);
		for (size_t i = 0; i < e->nstr; i++) {
			struct service_transition *t = &e->str[i];
			eng_queue_rec(e, sh, t->fsm, t->ev, t->key, t->labels_json, t->annotations_json,
			          t->ts_ms, t->value, t->score);
		}
		e->nstr = 0;
		struct service_output so;
		if (e->out.service && services_take_output(e->svcs, s->svc, &so))
			e->out.service(e->out.ctx, &so);
		lockrank_unlock(&e->svc_mu);
	}
}
/* Counters and buckets are recorded as they come, without a detector. */
static const struct det_result raw_result = { .score = 0, .expected = NAN, .lower = NAN,
	                                      .upper = NAN, .direction = 0, .component = "raw" };

/* The samples derive.c handed back, in order: each into its series (found or
 * created as a derived series), order-checked, then through the detectors. */
static void derived_detect(struct engine_batch *b, struct shard *sh, const struct derived_batch *out)
{
	struct engine *e = b->e;
	for (size_t k = 0; k < out->n; k++) {
		const struct derived_sample *ds = &out->v[k];
		const struct labels *l = ds->labels;
		struct series *d = NULL;
		if (*ds->cache && *ds->cache <= sh->reg.n)
			d = sh->reg.v[*ds->cache - 1];
		if (!d) {
			struct label_ref small[64];
			struct label_ref *refs = l->n + 1 <= 64 ? small : malloc((l->n + 1) * sizeof *refs);
			if (!refs)
				continue;
			size_t n = eng_derived_refs(l, ds->name, NULL, refs);
			char err[256];
			int rej = 0;
			d = eng_find_or_create(b, sh, refs, n, labels_hash_refs(refs, n), 1, &rej, err,
			                       sizeof err);
			if (refs != small)
				free(refs);
			if (!d) {
				b->res.rejected[rej]++;
				atomic_fetch_add_explicit(&e->stats->samples_rejected[rej], 1,
				                          memory_order_relaxed);
				log_msg(LOG_DEBUG, "event=derived_rejected name=%s error=\"%s\"", ds->name,
				        err);
				continue;
			}
			*ds->cache = d->idx + 1;
		}
		char err[256];
		if (!isfinite(ds->value) || eng_check_order(b, d, ds->ts_ms, err, sizeof err) != 0)
			continue;
		eng_detect(e, sh, d, ds->ts_ms, ds->value);
	}
}

/* Takes shard k's lock for the batch (releasing the one it held). */
struct shard *eng_batch_lock(struct engine_batch *b, unsigned k)
{
	struct engine *e = b->e;
	if (b->shard != (int)k) {
		if (b->shard >= 0)
			shard_unlock(&e->sh[b->shard]);
		shard_lock(&e->sh[k]);
		e->sh[k].gen++; /* samples change series: readers' caches of it are stale */
		b->shard = (int)k;
		b->touched |= 1u << k;
	}
	return &e->sh[k];
}

struct shard *eng_batch_lock_ahead(struct engine_batch *b, unsigned k)
{
	struct shard *sh = &b->e->sh[k];
	if (lockrank_trylock(&sh->mu, LOCK_RANK_SHARD + (int)k) != 0)
		return NULL;
	sh->gen++; /* as eng_batch_lock: its series are about to change */
	b->touched |= 1u << k;
	return sh;
}

void eng_batch_hand_over(struct engine_batch *b, struct shard *next)
{
	if (b->shard >= 0)
		shard_unlock(&b->e->sh[b->shard]);
	b->shard = (int)next->id;
}

/* One sample in its shard (locked): find or create the series, order check,
 * then the work of its kind. */
int eng_add_locked(struct engine_batch *b, struct shard *sh, const struct label_ref *refs,
                   size_t n, uint64_t hash, int64_t ts_ms, double value, char *err,
                   size_t errlen)
{
	int rej = 0;
	struct series *s = eng_find_or_create(b, sh, refs, n, hash, 0, &rej, err, errlen);
	if (!s)
		return eng_reject(b, (enum reject_reason)rej);
	return eng_add_series(b, sh, s, ts_ms, value, err, errlen);
}

/* A counter or histogram bucket sample: recorded as it comes, and the
 * samples it derives (a rate, quantiles) through the detectors. Out of
 * line, so that a gauge's sample does not set up the derived batch. */
static __attribute__((noinline)) void add_raw(struct engine_batch *b, struct shard *sh,
                                              struct series *s, int64_t ts_ms, double value)
{
	struct derived_batch out;
	out.n = 0;
	if (s->kind == SERIES_COUNTER) {
		/* the rate is detected before the counter is recorded */
		eng_counter_sample(s, ts_ms, value, &out);
		derived_detect(b, sh, &out);
		eng_record(sh, s, ts_ms, value, &raw_result);
	} else {
		eng_record(sh, s, ts_ms, value, &raw_result);
		eng_bucket_sample(b->e, sh, s, ts_ms, value, &out);
		derived_detect(b, sh, &out);
	}
}

int eng_add_series(struct engine_batch *b, struct shard *sh, struct series *s, int64_t ts_ms,
                   double value, char *err, size_t errlen)
{
	int rc = eng_check_order(b, s, ts_ms, err, errlen);
	if (rc)
		return rc;
	if (s->kind == SERIES_COUNTER || s->kind == SERIES_BUCKET)
		add_raw(b, sh, s, ts_ms, value);
	else
		eng_detect(b->e, sh, s, ts_ms, value);
	b->res.accepted++; /* added to selfstats in engine_batch_end: one shared write per batch */
	return 0;
}

int eng_admit_slow(struct engine_batch *b, int64_t ts_ms, double value, char *err,
                   size_t errlen)
{
	if (!isfinite(value)) {
		snprintf(err, errlen, "non-finite value");
		return eng_reject(b, REJ_NON_FINITE);
	}
	return eng_check_time(b, ts_ms, err, errlen);
}

int engine_batch_add(struct engine_batch *b, const struct label_ref *refs, size_t n, int64_t ts_ms,
                     double value, char *err, size_t errlen)
{
	int rc = eng_admit(b, ts_ms, value, err, errlen);
	if (rc)
		return rc;
	uint64_t hash;
	struct shard *sh = eng_batch_lock(b, route_and_hash(refs, n, &hash) % ENGINE_SHARDS);
	return eng_add_locked(b, sh, refs, n, hash, ts_ms, value, err, errlen);
}

/* --- staged ingest (engine_batch_stage / engine_batch_commit) ------------ */

struct engine_staged *eng_stage_slot_grow(struct engine_batch *b, size_t nwords, size_t nref,
                                          size_t bytes, int64_t ts_ms, double value, char *err,
                                          size_t errlen)
{
	if (nref > UINT16_MAX || b->nsref + nwords > UINT32_MAX ||
	    b->nbytes + bytes > UINT32_MAX ||
	    eng_grow_arr((void **)&b->st, &b->capst, b->nst + 1, sizeof *b->st) ||
	    eng_grow_arr((void **)&b->sref, &b->capsref, b->nsref + nwords, sizeof *b->sref) ||
	    eng_grow_arr((void **)&b->sbytes, &b->capbytes, b->nbytes + bytes + 1, 1)) {
		snprintf(err, errlen, "out of memory staging a sample");
		eng_reject(b, REJ_CARDINALITY);
		return NULL;
	}
	return eng_stage_fill(b, nref, ts_ms, value);
}

/* Appends n labels to the staging buffers (room already made: their bytes
 * and a NUL after each name and value, STAGE_WORDS(n) words: the bytes'
 * offset and length, then each name's and value's length; the commit reads
 * the offset and length only, unless it takes the general lookup). The
 * bytes are laid out as a series
 * keeps its labels (name0 NUL value0 NUL name1 ...: series.h), so the
 * commit finds a sample staged in canonical order by comparing them whole
 * (registry_find_packed). Each string is hashed by the loads that copy it
 * (label_str_words_copy): returns the sum of the pairs' label_pair_hash()
 * (labels_hash_from_sum() of it is labels_hash_refs()), and adds their
 * routing hashes to *route. */
uint64_t eng_copy_refs(struct engine_batch *b, const struct label_ref *refs, size_t n,
                       uint64_t *route)
{
	/* the buffers' bases in locals: a store through d may alias *b */
	char *const base = b->sbytes;
	uint32_t *const w0 = b->sref + b->nsref, *w = w0 + 2;
	char *const d0 = base + b->nbytes;
	char *d = d0;
	uint64_t hacc = 0, racc = 0;
	for (const struct label_ref *r = refs, *end = refs + n; r < end; r++, w += 2) {
		const char *name = r->name, *value = r->value;
		size_t nl = r->name_len, vl = r->value_len;
		uint64_t na, nb, va, vb;
		w[0] = (uint32_t)nl;
		w[1] = (uint32_t)vl;
		label_str_words_copy(d, name, nl, &na, &nb);
		d[nl] = 0;
		d += nl + 1;
		label_str_words_copy(d, value, vl, &va, &vb);
		d[vl] = 0;
		d += vl + 1;
		uint64_t ph = vl ? label_pair_hash_words(na, nb, nl, va, vb, vl) : 0;
		hacc += ph;
		racc += eng_route_of(name, nl, value, vl, ph);
	}
	w0[0] = (uint32_t)b->nbytes;
	w0[1] = (uint32_t)(d - d0);
	b->nbytes = (size_t)(d - base);
	b->nsref += STAGE_WORDS(n);
	*route += racc;
	return hacc;
}

int engine_batch_stage(struct engine_batch *b, const struct label_ref *refs, size_t n,
                       int64_t ts_ms, double value, char *err, size_t errlen)
{
	int rc = eng_admit(b, ts_ms, value, err, errlen);
	if (rc)
		return rc;
	if (n > b->e->cfg.label_limits.max_labels) {
		snprintf(err, errlen, "too many labels (%zu, limit %zu)", n,
		         b->e->cfg.label_limits.max_labels);
		return eng_reject(b, REJ_LABELS);
	}
	size_t bytes = 2 * n; /* a NUL after each name and value */
	for (size_t i = 0; i < n; i++)
		bytes += refs[i].name_len + refs[i].value_len;
	struct engine_staged *st = eng_stage_slot(b, STAGE_WORDS(n), n, bytes, ts_ms, value, err,
	                                          errlen);
	if (!st)
		return REJ_CARDINALITY + 1;
	uint64_t route = 0;
	st->hash = labels_hash_from_sum(eng_copy_refs(b, refs, n, &route));
	st->shard = (uint8_t)(eng_route_mix(route) % ENGINE_SHARDS);
	st->named = 0;
	return 0;
}

/* Writes the pending transitions of one shard to the store. Called with
 * flush_mu held (which keeps the queue's order: transitions are written by
 * one thread at a time, oldest first), takes the shard lock only to detach
 * the queue and, if the write fails, to put it back in front, so the store's
 * write lock is never taken under a shard lock. npend_a counts transitions queued and not yet
 * durable, in flight included: a batch that reads 0 knows its own
 * transitions were written. */
int eng_flush_shard(struct engine *e, struct shard *sh)
{
	shard_lock(sh);
	struct pending_tr *p = sh->pend;
	size_t n = sh->npend, cap = sh->cappend;
	sh->pend = NULL;
	sh->npend = sh->cappend = 0;
	shard_unlock(sh);
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
	shard_lock(sh);
	if (sh->npend > 0) {
		struct pending_tr *np = n + sh->npend <= cap ? p : realloc(p, (n + sh->npend) * sizeof *np);
		if (!np) {
			log_msg(LOG_ERROR, "event=alert_dropped count=%zu reason=oom", n);
			for (size_t i = 0; i < n; i++)
				pending_free(&p[i]);
			free(p);
			atomic_fetch_sub(&sh->npend_a, n);
			shard_unlock(sh);
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
	shard_unlock(sh);
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
	if (b->shard >= 0)
		shard_unlock(&e->sh[b->shard]);
	b->shard = -1;
	eng_stage_release(e, b);
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
	lockrank_lock(&e->flush_mu, LOCK_RANK_FLUSH);
	for (unsigned k = 0; k < ENGINE_SHARDS; k++)
		if ((todo & (1u << k)) && eng_flush_shard(e, &e->sh[k]) < 0)
			rc = -1;
	lockrank_unlock(&e->flush_mu);
	return rc;
}
