/* engine/checkpoint.c — checkpoints of every series' detector and alert
 * state to the store, their restore at start-up and the reconciliation of
 * the restored alert states with the store's open alerts. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"
#include "service/service.h"
#include "store/store.h"

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
	lockrank_lock(&e->flush_mu, LOCK_RANK_FLUSH);
	unsigned char *blob = NULL;
	size_t blob_len = 0, ss = 0;
	int rc = -1;
	struct shard *sh = NULL;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		if (eng_flush_shard(e, &e->sh[k]) < 0) {
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
		shard_lock(sh);
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
			char *lj = eng_labels_json(&s->labels, NULL, NULL);
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
		shard_unlock(sh);
		sh = NULL;
	}
	if (store_ckpt_commit(e->store) < 0) {
		snprintf(err, errlen, "checkpoint commit failed");
		goto out;
	}
	rc = 0;
out:
	if (sh)
		shard_unlock(sh);
	lockrank_unlock(&e->flush_mu);
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
	struct shard *sh = ok ? &e->sh[eng_route_labels(&l) % ENGINE_SHARDS] : NULL;
	if (!ok || registry_find(&sh->reg, &l)) {
		if (ok)
			labels_free(&l);
		rc->failed++;
		return 0;
	}
	enum series_kind kind = eng_classify(e, &l);
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
	eng_state_init(e, s);
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
			size_t i = eng_str_hash(sh->reg.v[k]->key, strlen(sh->reg.v[k]->key)) & mask;
			while (t[i])
				i = (i + 1) & mask;
			t[i] = global_idx(sh, sh->reg.v[k]) + 1;
		}
	}
	struct alert_rec *closing = calloc(oa.n ? oa.n : 1, sizeof *closing);
	size_t nclosing = 0;
	for (size_t a = 0; a < oa.n; a++) {
		struct series *s = NULL;
		for (size_t i = eng_str_hash(oa.v[a].series_key, strlen(oa.v[a].series_key)) & mask;
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
	lockrank_unlock(&e->svc_mu);
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
		lockrank_unlock(&e->svc_mu);
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
	lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
	int r = store_ckpt_scan(e->store, restore_cb, &rc);
	if (r >= 0) {
		reconcile_alerts(e); /* releases the locks */
	} else {
		lockrank_unlock(&e->svc_mu);
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
