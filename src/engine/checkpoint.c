/* engine/checkpoint.c — every series' detector and alert state, and every
 * service model's learned state, written to the store incrementally (dirty
 * series, a batch at a time; services after each grid step), its restore at
 * start-up and the reconciliation of the restored alert states with the
 * store's open alerts. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/log.h"
#include "service/service.h"
#include "store/store.h"

/* Checkpoint blob: header, alert fsm, model state (state_size bytes), then
 * the forecaster state (engine fc_size bytes) if flags has CKPT_HAS_FC.
 * The layout before the forecaster pool, "FSK1", had one block of
 * state_size = fc_off + fc_size bytes, the forecaster's at fc_off: it is
 * read (migrated) when its fingerprint matches, and written as FSK2. */
#define CKPT_MAGIC 0x46534b32u    /* "FSK2" */
#define CKPT_MAGIC_V1 0x46534b31u /* "FSK1" */
#define CKPT_HAS_FC 1u
struct ckpt_head {
	uint32_t magic;
	uint32_t state_size;
	uint64_t samples;
	int64_t first_ts_ms;
	double last_value;
	double score, expected, lower, upper;
	int32_t direction;
	uint32_t flags;        /* CKPT_HAS_FC; 0 in FSK1 */
};

/* The alert fsm in a blob: struct alert_fsm's fields in the order that
 * struct had when FSK1 and FSK2 were defined (the state byte first, its
 * padding zero), whatever order the struct has in memory (alert.h puts its
 * per-sample fields last), so that the blob's bytes do not change with it. */
struct ckpt_alert {
	uint8_t state;
	uint8_t pad[7];
	int64_t active_at_ms, firing_at_ms, normal_since_ms;
	double value, score, peak_score;
	int64_t alert_id, resolved_at_ms;
};
_Static_assert(sizeof(struct ckpt_alert) == 72, "checkpoint blob layout changed");

static void ckpt_alert_put(unsigned char *p, const struct alert_fsm *f)
{
	struct ckpt_alert a;
	memset(&a, 0, sizeof a);
	a.state = f->state;
	a.active_at_ms = f->active_at_ms;
	a.firing_at_ms = f->firing_at_ms;
	a.normal_since_ms = f->normal_since_ms;
	a.value = f->value;
	a.score = f->score;
	a.peak_score = f->peak_score;
	a.alert_id = f->alert_id;
	a.resolved_at_ms = f->resolved_at_ms;
	memcpy(p, &a, sizeof a);
}

static void ckpt_alert_get(struct alert_fsm *f, const unsigned char *p)
{
	struct ckpt_alert a;
	memcpy(&a, p, sizeof a);
	alert_fsm_init(f);
	f->state = a.state;
	f->active_at_ms = a.active_at_ms;
	f->firing_at_ms = a.firing_at_ms;
	f->normal_since_ms = a.normal_since_ms;
	f->value = a.value;
	f->score = a.score;
	f->peak_score = a.peak_score;
	f->alert_id = a.alert_id;
	f->resolved_at_ms = a.resolved_at_ms;
}

/* Series state is written incrementally: eng_record() puts a series whose
 * state changed on its shard's dirty list (once, until written), and
 * engine_persist() takes the oldest entries a batch at a time: it copies
 * their state out under the shard's lock, releases it, writes the batch in
 * one store transaction, then takes the lock again only to mark what was
 * written. So ingest never waits for SQLite, only for the copy of one batch
 * (PERSIST_BATCH series: well under a millisecond). */
#define PERSIST_BATCH 1000

void eng_mark_dirty(struct shard *sh, struct series *s)
{
	if (s->dirty)
		return;
	if (sh->ndirty == sh->capdirty) {
		if (sh->dhead > 0) { /* reclaim the written prefix */
			memmove(sh->dirty, sh->dirty + sh->dhead,
			        (sh->ndirty - sh->dhead) * sizeof *sh->dirty);
			sh->ndirty -= sh->dhead;
			sh->dhead = 0;
		} else {
			size_t ncap = sh->capdirty ? sh->capdirty * 2 : 256;
			uint32_t *nd = realloc(sh->dirty, ncap * sizeof *nd);
			if (!nd)
				return; /* stays clean for now; the next sample tries again */
			sh->dirty = nd;
			sh->capdirty = ncap;
		}
	}
	sh->dirty[sh->ndirty++] = s->idx;
	s->dirty = 1;
}

/* The state blob of s: header, alert fsm, model state, forecaster state
 * (fcs bytes) if it has one. Returns its length. */
static size_t serialize(const struct series *s, size_t ss, size_t fcs, unsigned char *blob)
{
	struct ckpt_head h;
	memset(&h, 0, sizeof h);
	h.magic = CKPT_MAGIC;
	h.state_size = (uint32_t)ss;
	h.flags = s->fc && fcs ? CKPT_HAS_FC : 0;
	h.samples = s->samples;
	h.first_ts_ms = s->first_ts_ms;
	h.last_value = s->last_value;
	h.score = s->last.score;
	h.expected = s->last.expected;
	h.lower = s->last.lower;
	h.upper = s->last.upper;
	h.direction = s->last_direction;
	memcpy(blob, &h, sizeof h);
	ckpt_alert_put(blob + sizeof h, &s->alert);
	memcpy(blob + sizeof h + sizeof(struct ckpt_alert), s->det_state, ss);
	size_t len = sizeof h + sizeof(struct ckpt_alert) + ss;
	if (h.flags & CKPT_HAS_FC) {
		memcpy(blob + len, s->fc, fcs);
		len += fcs;
	}
	return len;
}

/* One batch of shard sh: copy up to want dirty series out (under the lock),
 * write them (without it), mark the result. Returns the number written (0 if
 * the shard had none dirty) or -1 with err. */
static long persist_batch(struct engine *e, struct shard *sh, size_t want, struct store_ckpt *recs,
                          uint32_t *idx, unsigned char **blobs, size_t *blobs_cap, char *err,
                          size_t errlen)
{
	char mname[128];
	shard_lock(sh);
	size_t m = sh->ndirty - sh->dhead;
	if (m > want)
		m = want;
	if (m == 0) {
		shard_unlock(sh);
		return 0;
	}
	size_t ss = sh->reg.state_size;
	size_t bl = sizeof(struct ckpt_head) + sizeof(struct ckpt_alert) + ss + e->fc_size;
	if (m * bl > *blobs_cap) {
		unsigned char *nb = realloc(*blobs, m * bl);
		if (!nb) {
			shard_unlock(sh);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		*blobs = nb;
		*blobs_cap = m * bl;
	}
	/* the model (and its name) may be swapped once the lock is released */
	snprintf(mname, sizeof mname, "%s", model_name(e->model));
	uint64_t fp = e->fingerprint;
	size_t got = 0;
	for (size_t j = 0; j < m; j++) {
		uint32_t i = sh->dirty[sh->dhead + j];
		struct series *s = sh->reg.v[i];
		struct store_ckpt *c = &recs[got];
		memset(c, 0, sizeof *c);
		if (!s->stored) {
			c->series_key = series_key_dup(s);
			c->labels_json = eng_labels_json(&s->labels, NULL, NULL);
			if (!c->series_key || !c->labels_json) {
				/* out of memory: this one and the rest stay queued */
				free((char *)c->series_key);
				free((char *)c->labels_json);
				c->series_key = c->labels_json = NULL;
				m = j;
				break;
			}
		}
		s->dirty = 0;
		if (s->sid == 0)
			s->sid = atomic_fetch_add(&e->next_sid, 1);
		c->sid = s->sid;
		c->update = s->stored;
		c->model = mname;
		c->fingerprint = fp;
		c->last_ts_ms = s->last_ts_ms;
		c->state_len = serialize(s, ss, e->fc_size, *blobs + got * bl);
		c->state = *blobs + got * bl;
		idx[got++] = i;
	}
	sh->dhead += m;
	if (sh->dhead == sh->ndirty)
		sh->dhead = sh->ndirty = 0;
	shard_unlock(sh);

	int rc = store_state_write(e->store, recs, got, err, errlen);

	shard_lock(sh);
	for (size_t j = 0; j < got; j++) {
		struct series *s = sh->reg.v[idx[j]];
		if (rc < 0 || recs[j].missing) {
			if (recs[j].missing)
				s->stored = 0; /* its row is gone: write it whole next time */
			eng_mark_dirty(sh, s);
		} else if (!recs[j].update) {
			s->stored = 1;
		}
	}
	shard_unlock(sh);
	for (size_t j = 0; j < got; j++) {
		free((char *)recs[j].series_key);
		free((char *)recs[j].labels_json);
	}
	if (rc < 0)
		return -1;
	atomic_fetch_add_explicit(&e->state_writes, got, memory_order_relaxed);
	return (long)m;
}

/* Service models: the state of every service that evaluated a grid step
 * since it was last written, copied out under svc_mu one service at a time
 * (a memcpy of its rings: microseconds), written in transactions of at most
 * PERSIST_SVC_BYTES. Returns the number written or -1 with err. Called with
 * persist_mu held. */
#define PERSIST_SVC_BYTES (4u << 20)
#define PERSIST_SVC_BATCH 64

static long persist_services(struct engine *e, char *err, size_t errlen)
{
	struct store_svc_state v[PERSIST_SVC_BATCH];
	char *names[PERSIST_SVC_BATCH];
	long written = 0;
	lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
	size_t total = services_count(e->svcs);
	lockrank_unlock(&e->svc_mu);
	size_t visited = 0;
	while (visited < total) {
		size_t n = 0, bytes = 0;
		lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
		while (visited < total && n < PERSIST_SVC_BATCH && bytes < PERSIST_SVC_BYTES) {
			uint32_t i = e->svc_persist_next++ % (unsigned)total;
			visited++;
			void *blob;
			size_t len;
			int r = services_state_take(e->svcs, i, &blob, &len);
			if (r == 0)
				continue;
			const char *nm = services_name(e->svcs, i);
			names[n] = r > 0 && nm ? strdup(nm) : NULL;
			if (!names[n]) {
				if (r > 0) {
					free(blob);
					services_state_unsaved(e->svcs, nm);
				}
				continue; /* out of memory: taken again next time */
			}
			v[n] = (struct store_svc_state){ .name = names[n], .state = blob,
				                         .state_len = len };
			memcpy(&v[n].steps, (unsigned char *)blob + 8, sizeof v[n].steps); /* head: magic, format, steps */
			bytes += len;
			n++;
		}
		lockrank_unlock(&e->svc_mu);
		int rc = store_service_state_write(e->store, v, n, err, errlen);
		if (rc < 0) {
			lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
			for (size_t j = 0; j < n; j++)
				services_state_unsaved(e->svcs, names[j]);
			lockrank_unlock(&e->svc_mu);
		}
		for (size_t j = 0; j < n; j++) {
			free(names[j]);
			free((void *)v[j].state);
		}
		if (rc < 0)
			return -1;
		written += (long)n;
	}
	atomic_fetch_add_explicit(&e->svc_state_writes, (uint64_t)written, memory_order_relaxed);
	return written;
}

long engine_persist(struct engine *e, size_t max_series, char *err, size_t errlen)
{
	if (!e->store)
		return 0;
	struct store_ckpt *recs = malloc(PERSIST_BATCH * sizeof *recs);
	uint32_t *idx = malloc(PERSIST_BATCH * sizeof *idx);
	unsigned char *blobs = NULL;
	size_t blobs_cap = 0;
	long written = 0;
	if (!recs || !idx) {
		snprintf(err, errlen, "out of memory");
		written = -1;
		goto out;
	}
	lockrank_lock(&e->persist_mu, LOCK_RANK_PERSIST);
	/* Round robin over the shards, one batch each in turn, starting where
	 * the previous call stopped: with a budget smaller than the dirty
	 * series, every shard still gets its share. */
	unsigned start = e->persist_next, idle = 0;
	for (unsigned k = start; idle < ENGINE_SHARDS; k = (k + 1) % ENGINE_SHARDS) {
		size_t want = PERSIST_BATCH;
		if (max_series) {
			if ((size_t)written >= max_series)
				break;
			if (max_series - (size_t)written < want)
				want = max_series - (size_t)written;
		}
		long n = persist_batch(e, &e->sh[k], want, recs, idx, &blobs, &blobs_cap, err, errlen);
		if (n < 0) {
			written = -1;
			break;
		}
		written += n;
		idle = n ? 0 : idle + 1;
		e->persist_next = (k + 1) % ENGINE_SHARDS;
	}
	if (written >= 0 && persist_services(e, err, errlen) < 0)
		written = -1;
	lockrank_unlock(&e->persist_mu);
out:
	free(recs);
	free(idx);
	free(blobs);
	return written;
}

size_t engine_dirty_series(struct engine *e)
{
	size_t n = 0;
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		shard_lock(&e->sh[k]);
		n += e->sh[k].ndirty - e->sh[k].dhead;
		shard_unlock(&e->sh[k]);
	}
	return n;
}

int engine_checkpoint(struct engine *e, char *err, size_t errlen)
{
	if (!e->store)
		return 0;
	lockrank_lock(&e->flush_mu, LOCK_RANK_FLUSH);
	for (unsigned k = 0; k < ENGINE_SHARDS; k++) {
		if (eng_flush_shard(e, &e->sh[k]) < 0) {
			lockrank_unlock(&e->flush_mu);
			snprintf(err, errlen, "pending alert transitions could not be written");
			return -1;
		}
	}
	lockrank_unlock(&e->flush_mu);
	return engine_persist(e, 0, err, errlen) < 0 ? -1 : 0;
}

struct restore_ctx {
	struct engine *e;
	long restored, fresh, failed;
	long migrated;        /* of them restored: from the FSK1 layout */
	long ahead;           /* of them fresh: last sample ahead of the clock */
	int64_t limit_ms;     /* latest acceptable last_ts_ms (INT64_MAX: none) */
};

/* Is blob[len] a state of this layout (model state ss bytes), or of the
 * FSK1 layout? 0 (this one) or 1 (FSK1) with *fcst at its forecaster
 * state (NULL: none), or -1. */
static int blob_layout(const struct engine *e, size_t ss, const unsigned char *blob, size_t len,
                       const unsigned char **fcst)
{
	struct ckpt_head h;
	memcpy(&h, blob, sizeof h);
	size_t base = sizeof h + sizeof(struct ckpt_alert);
	*fcst = NULL;
	if (h.magic == CKPT_MAGIC && h.state_size == ss) {
		if (!(h.flags & CKPT_HAS_FC) && len == base + ss)
			return 0;
		if ((h.flags & CKPT_HAS_FC) && e->fc_size && len == base + ss + e->fc_size) {
			*fcst = blob + base + ss;
			return 0;
		}
		return -1;
	}
	if (h.magic == CKPT_MAGIC_V1 && h.state_size == e->fc_off + e->fc_size &&
	    e->fc_off >= ss && len == base + h.state_size) {
		if (e->fc_size)
			*fcst = blob + base + e->fc_off;
		return 1;
	}
	return -1;
}

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
	atomic_fetch_add(&e->series_bytes, eng_series_cost(s)); /* restored: never refused */
	s->kind = (uint8_t)kind;
	s->sid = c->sid;
	s->stored = c->sid > 0;
	if (c->sid >= atomic_load(&e->next_sid))
		atomic_store(&e->next_sid, c->sid + 1);
	if (e->svcs)
		s->roles = services_bind(e->svcs, &s->labels, &s->svc);
	size_t ss = sh->reg.state_size;
	struct ckpt_head h;
	const unsigned char *blob = c->state;
	int ahead = c->last_ts_ms > rc->limit_ms;
	const unsigned char *fcst = NULL;
	int layout = -1;
	if (!ahead && c->fingerprint == e->fingerprint &&
	    c->state_len >= sizeof h + sizeof(struct ckpt_alert) &&
	    (layout = blob_layout(e, ss, blob, c->state_len, &fcst)) >= 0) {
		memcpy(&h, blob, sizeof h);
		struct alert_fsm f;
		ckpt_alert_get(&f, blob + sizeof h);
		if (alert_fsm_check(&f) == 0) {
			s->samples = h.samples;
			s->first_ts_ms = h.first_ts_ms;
			s->last_ts_ms = c->last_ts_ms;
			s->last_value = h.last_value;
			s->last.score = h.score;
			s->last.expected = h.expected;
			s->last.lower = h.lower;
			s->last.upper = h.upper;
			s->last_direction = (int8_t)((h.direction > 0) - (h.direction < 0));
			s->last_comp = 0;
			s->alert = f;
			memcpy(s->det_state, blob + sizeof h + sizeof(struct ckpt_alert), ss);
			/* a forecaster that cannot be had (limits.max_memory) relearns
			 * when it is next asked for */
			if (fcst && eng_forecaster(e, sh, s))
				memcpy(s->fc, fcst, e->fc_size);
			rc->migrated += layout == 1;
			if (c->last_ts_ms > sh->last_sample_ms)
				sh->last_sample_ms = c->last_ts_ms;
			if (f.alert_id >= atomic_load(&e->next_alert_id))
				atomic_store(&e->next_alert_id, f.alert_id + 1);
			rc->restored++;
			return 0;
		}
	}
	/* Model changed: keep the series and its alert, re-learn the detector.
	 * A state whose last sample is dated ahead of the clock (written before
	 * timestamps were bounded, e.g. a sample of 2262) would make every later
	 * sample "out of order": it is dropped with its time. */
	eng_state_init(e, s);
	int64_t ts = ahead ? 0 : c->last_ts_ms;
	s->last_ts_ms = ts;
	s->samples = ts > 0 ? 1 : 0;
	s->first_ts_ms = ts;
	rc->ahead += ahead;
	eng_mark_dirty(sh, s); /* its fresh state replaces the stale row */
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

/* The key of s (series_key) into kb, or into a malloc'd copy when it is
 * longer: returns it, NULL when out of memory; *heap says whether to free. */
static const char *key_of(const struct series *s, char *kb, size_t cap, char **heap)
{
	*heap = NULL;
	if (series_key(s, kb, cap) < cap)
		return kb;
	return *heap = series_key_dup(s);
}

/* eng_str_hash() of the series' key. */
static uint64_t series_key_hash(const struct series *s)
{
	char kb[512], *heap;
	const char *k = key_of(s, kb, sizeof kb, &heap);
	uint64_t h = k ? eng_str_hash(k, strlen(k)) : 0;
	free(heap);
	return h;
}

/* Is key the series' key? */
static int series_key_is(const struct series *s, const char *key)
{
	char kb[512], *heap;
	const char *k = key_of(s, kb, sizeof kb, &heap);
	int eq = k && !strcmp(k, key);
	free(heap);
	return eq;
}

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

/* An open alert whose series' state was not written before a crash (it was
 * created moments before) stays open, and the series adopts it when its
 * next sample creates it again (eng_adopt_orphan): the restart closes
 * nothing. Takes a's strings. Service alerts are not kept (their service is
 * gone). Returns 0 if kept. */
static int keep_orphan(struct engine *e, size_t *n, struct open_alert *a)
{
	if (strncmp(a->series_key, "service:", 8) == 0)
		return -1;
	struct open_alert *no = realloc(e->orphans, (*n + 1) * sizeof *no);
	if (!no)
		return -1;
	e->orphans = no;
	e->orphans[(*n)++] = *a;
	a->series_key = a->labels_json = a->annotations_json = NULL;
	return 0;
}

/* Called with every shard and svc_mu locked; returns with them released
 * (the store's write lock is not taken under a shard lock: see eng_flush_shard). */
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
			size_t i = series_key_hash(sh->reg.v[k]) & mask;
			while (t[i])
				i = (i + 1) & mask;
			t[i] = global_idx(sh, sh->reg.v[k]) + 1;
		}
	}
	struct alert_rec *closing = calloc(oa.n ? oa.n : 1, sizeof *closing);
	size_t nclosing = 0;
	size_t orphaned = 0;
	for (size_t a = 0; a < oa.n; a++) {
		struct series *s = NULL;
		struct shard *ssh = NULL;
		for (size_t i = eng_str_hash(oa.v[a].series_key, strlen(oa.v[a].series_key)) & mask;
		     t && t[i]; i = (i + 1) & mask) {
			struct series *c = series_at(e, t[i] - 1);
			if (series_key_is(c, oa.v[a].series_key)) {
				s = c;
				ssh = &e->sh[(t[i] - 1) % ENGINE_SHARDS];
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
				eng_mark_dirty(ssh, s);
				adopted++;
			}
			continue;
		}
		if (keep_orphan(e, &orphaned, &oa.v[a]) == 0)
			continue;
		if (!closing)
			continue;
		/* a service alert whose service is no longer configured */
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
			eng_mark_dirty(&e->sh[g % ENGINE_SHARDS], s);
			reset++;
		}
	}
	atomic_store(&e->norphans, orphaned);
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
	if (adopted || closed || reset || orphaned)
		log_msg(LOG_INFO, "event=alerts_reconciled adopted=%zu kept_open_without_series=%zu "
		        "closed_service_orphans=%zu reset=%zu", adopted, orphaned, closed, reset);
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

void eng_adopt_orphan(struct engine *e, struct series *s)
{
	lockrank_lock(&e->orphan_mu, LOCK_RANK_ORPHAN);
	size_t n = atomic_load(&e->norphans);
	for (size_t a = 0; a < n; a++) {
		struct open_alert *o = &e->orphans[a];
		if (!series_key_is(s, o->series_key))
			continue;
		alert_fsm_restore(&s->alert, (enum alert_state)o->state, o->id, o->active_at_ms,
		                  o->firing_at_ms, o->score);
		log_msg(LOG_INFO, "event=alert_adopted alert_id=%lld series=%s",
		        (long long)o->id, o->series_key);
		free(o->series_key);
		free(o->labels_json);
		free(o->annotations_json);
		e->orphans[a] = e->orphans[n - 1];
		atomic_store(&e->norphans, n - 1);
		break;
	}
	lockrank_unlock(&e->orphan_mu);
}

void eng_orphans_free(struct engine *e)
{
	size_t n = atomic_load(&e->norphans);
	for (size_t a = 0; a < n; a++) {
		free(e->orphans[a].series_key);
		free(e->orphans[a].labels_json);
		free(e->orphans[a].annotations_json);
	}
	free(e->orphans);
	e->orphans = NULL;
	atomic_store(&e->norphans, 0);
}

struct svc_restore_ctx {
	struct services *svcs;
	long restored, dropped;
};

static int svc_restore_cb(void *ctx, const struct store_svc_state *c)
{
	struct svc_restore_ctx *rc = ctx;
	char why[160];
	int r = services_state_load(rc->svcs, c->name, c->state, c->state_len, why, sizeof why);
	if (r == 0) {
		rc->restored++;
		log_msg(LOG_INFO, "event=service_state_restored service=%s steps=%llu", c->name,
		        (unsigned long long)c->steps);
	} else {
		/* incompatible or no longer configured: the service learns afresh */
		rc->dropped++;
		log_msg(r < 0 ? LOG_WARN : LOG_INFO, "event=service_state_dropped service=%s reason=\"%s\"", c->name, why);
	}
	return 0;
}

long engine_restore(struct engine *e, char *err, size_t errlen)
{
	if (!e->store)
		return 0;
	struct restore_ctx rc = { .e = e, .limit_ms = INT64_MAX };
	struct svc_restore_ctx src = { 0 };
	if (e->cfg.max_sample_future_ms) {
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		rc.limit_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 +
		              e->cfg.max_sample_future_ms;
	}
	lock_all(e);
	lockrank_lock(&e->svc_mu, LOCK_RANK_SVC);
	/* service state first: reconcile_alerts then reopens their open alerts */
	src.svcs = e->svcs;
	if (e->svcs && services_count(e->svcs) &&
	    store_service_state_scan(e->store, svc_restore_cb, &src) < 0) {
		lockrank_unlock(&e->svc_mu);
		unlock_all(e);
		snprintf(err, errlen, "cannot read service model state");
		return -1;
	}
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
	log_msg(LOG_INFO, "event=restore series=%ld relearning=%ld unreadable=%ld services=%ld "
	        "services_relearning=%ld ahead_of_clock=%ld migrated=%ld", rc.restored, rc.fresh,
	        rc.failed, src.restored, src.dropped, rc.ahead, rc.migrated);
	return rc.restored + rc.fresh;
}
