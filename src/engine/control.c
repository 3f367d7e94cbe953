/* engine/control.c — what changes in a running engine, and what it reports:
 * the detector model (engine_set_model, every shard locked), the service
 * models (engine_set_services), the external URL of alert links, the stats,
 * the service models' JSON, and the pruning of old alerts from the store. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/buf.h"
#include "util/log.h"
#include "service/service.h"
#include "store/store.h"

void engine_set_services(struct engine *e, struct services *svcs)
{
	lock_all(e);
	lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
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
	lockrank_unlock(&e->svc_mu);
	unlock_all(e);
	log_msg(LOG_INFO, "event=services_loaded services=%zu series_bound=%zu",
	        svcs ? services_count(svcs) : 0, bound);
}

void engine_services_json(struct engine *e, struct obuf *b)
{
	lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
	if (e->svcs)
		services_json(e->svcs, b);
	else
		obuf_puts(b, "[]");
	lockrank_unlock(&e->svc_mu);
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
	st->series_bytes = atomic_load_explicit(&e->series_bytes, memory_order_relaxed);
	st->max_memory = e->cfg.max_memory;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		struct shard *sh = &e->sh[k];
		shard_lock(sh);
		st->series += sh->reg.n;
		st->pending_transitions += atomic_load(&sh->npend_a);
		st->dirty_series += sh->ndirty - sh->dhead;
		if (sh->last_sample_ms > st->last_sample_ms)
			st->last_sample_ms = sh->last_sample_ms;
		if (k == 0)
			st->model_name = model_name(e->model); /* swapped under every shard lock */
		shard_unlock(sh);
	}
	st->state_writes = atomic_load_explicit(&e->state_writes, memory_order_relaxed);
	st->service_state_writes = atomic_load_explicit(&e->svc_state_writes, memory_order_relaxed);
}


void engine_set_model(struct engine *e, struct model *m)
{
	lock_all(e);
	struct model *old = e->model;
	uint64_t old_fp = e->fingerprint;
	size_t old_size = e->det_size;
	e->model = m;
	eng_set_layout(e);
	if (e->fingerprint != old_fp) {
		size_t new_size = e->det_size;
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
			eng_set_layout(e);
			unlock_all(e);
			model_free(m);
			return;
		}
		/* The model's states re-learn; forecasters (not the model's,
		 * in their own pool) keep what they learned. */
		size_t total = 0, bytes = 0;
		for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
			struct shard *sh = &e->sh[k];
			for (size_t i = 0; i < sh->reg.n; i++) {
				eng_state_init(e, sh->reg.v[i]);
				eng_mark_dirty(sh, sh->reg.v[i]);
				bytes += eng_series_cost(sh->reg.v[i]); /* the blocks changed size */
				if (sh->reg.v[i]->fc)
					bytes += sh->reg.fc_size;
			}
			total += sh->reg.n;
		}
		atomic_store(&e->series_bytes, bytes);
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
		shard_lock(&e->sh[k]);
		if (e->sh[k].last_sample_ms > last)
			last = e->sh[k].last_sample_ms;
		shard_unlock(&e->sh[k]);
	}
	/* never past the wall clock: a sample dated in the future (replayed or
	 * event-time ingest has no window) must not make history look old */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	int64_t now = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (last > now)
		last = now;
	int64_t horizon = last - e->cfg.alert_retention_ms;
	if (horizon <= 0)
		return 0;
	return store_alerts_prune(e->store, horizon);
}
