/* engine/internal.h — what the engine's files share (core.c, derive.c,
 * annotate.c, checkpoint.c, read.c); nothing outside src/engine includes it. */
#ifndef FORESHOCK_ENGINE_INTERNAL_H
#define FORESHOCK_ENGINE_INTERNAL_H

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "alert/alert.h"
#include "engine/engine.h"
#include "engine/series.h"
#include "store/store.h"
#include "util/buf.h"
#include "util/lockrank.h"

struct services;
struct service_transition;
struct open_alert;


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
 * Lock order (the one authoritative statement; util/lockrank.h has the
 * ranks and, built with FORESHOCK_LOCK_CHECK, checks them):
 *
 *   persist_mu -> flush_mu -> store wmu -> shard[0] -> ... -> shard[15] -> svc_mu
 *            -> store rmu -> fam_mu -> store fmu (the store's fault text, a leaf)
 *            -> orphan_mu (open alerts awaiting their series, a leaf)
 *            -> rwexport mu (the remote_write exporter's buffer and queue, a leaf)
 *            -> stage mu (the pool of staging buffers, a leaf)
 *
 * A thread only takes a lock ranked after every lock it holds. In practice:
 * - a batch holds one shard at a time (batch_lock), and under it svc_mu
 *   (services) or fam_mu (classify), never both at once; the one exception:
 *   near the end of a run of one shard's samples the commit may take the
 *   next run's shard by a trylock (eng_batch_lock_ahead, whatever its rank:
 *   a trylock never waits, so it cannot close a cycle), holds both until
 *   the switch and then releases the first; it waits for no lock while it
 *   holds two;
 * - eng_flush_shard() runs under flush_mu, takes a shard only to detach its
 *   queue, and writes to the store (wmu) with no shard held;
 * - engine_persist() holds persist_mu, takes one shard at a time to copy a
 *   batch out and releases it before writing the batch (wmu);
 *   engine_checkpoint() flushes under flush_mu, releases it, then persists;
 * - eng_adopt_orphan() takes orphan_mu under the shard creating a series;
 * - engine_restore() takes every shard and svc_mu, then reads the store
 *   (rmu) and classifies restored series (fam_mu) inside that read;
 *   reconcile releases them all before it writes (wmu);
 * - readers (read.c) take one shard at a time and nothing under it;
 * - the outputs (engine_set_outputs; daemon/outputs.c) hand samples to the
 *   exporter under a shard (and svc_mu for services): rwexport_submit()
 *   takes its mu, the one lock ranked last; its sender thread releases it
 *   around encoding and HTTP and takes no other lock while holding it;
 * - a batch takes the stage pool's mu when it begins and after it released
 *   its shard at its end (stage.c), and nothing under it. */
#define ENGINE_SHARDS 16
_Static_assert(LOCK_RANK_SHARD + ENGINE_SHARDS <= LOCK_RANK_SVC, "shard lock ranks overlap");

struct shard {
	pthread_mutex_t mu;
	unsigned id;
	struct series_registry reg;
	struct pending_tr *pend;
	size_t npend, cappend;
	atomic_size_t npend_a;      /* not yet durable: npend + in flight (flush_shard) */
	int64_t last_sample_ms;
	uint64_t gen;               /* bumped whenever its series may change (under mu):
	                             * engine_shard_generation() */
	/* names of detector components seen, for the packed history (static strings) */
	const char *comps[64];
	unsigned ncomps;
	/* histogram label groups feeding foreshock:pNN:<name> */
	struct hgroup **groups;
	size_t ngroups, capgroups;
	uint32_t *gtable;
	size_t gmask;
	/* series whose state changed since it was last written, oldest first:
	 * registry indexes in dirty[dhead .. ndirty) (checkpoint.c) */
	uint32_t *dirty;
	size_t dhead, ndirty, capdirty;
};

/* stage.c: the staging buffers of finished batches, kept for the next */
struct stage_bufs {
	struct engine_staged *st;
	size_t capst;
	uint32_t *sref;
	size_t capsref;
	char *sbytes;
	size_t capbytes;
	struct engine_staged *srt;
	uint32_t *order;
	size_t capsrt;
};
#define STAGE_POOL 8
struct stage_pool {
	pthread_mutex_t mu;       /* LOCK_RANK_STAGE, a leaf */
	size_t n;
	struct stage_bufs v[STAGE_POOL];
};

struct engine {
	struct engine_config cfg;
	char *alertname;
	char *external_url;
	struct model *model;
	uint64_t fingerprint;       /* of the model and the forecaster: checkpoints must match */
	struct model_alerting series_al; /* per-series alerting: eng_series_alerting() of the
	                                  * model and cfg, set with the layout (not per sample) */
	size_t det_size;            /* model state bytes at the start of each state block */
	size_t fc_size;             /* forecaster state bytes (0 = forecasting off) */
	size_t fc_off;              /* its offset in a checkpoint of the layout before the pool */
	struct store *store;
	struct selfstats *stats;
	atomic_int_least64_t next_alert_id;
	atomic_size_t nseries;      /* over all shards (cardinality limit) */
	atomic_size_t series_bytes; /* accounted memory of every series (memory budget) */
	pthread_mutex_t flush_mu;   /* serializes store writes of pending transitions */
	/* incremental state writes (checkpoint.c): one engine_persist at a time */
	pthread_mutex_t persist_mu;
	atomic_int_least64_t next_sid; /* next persistent series id */
	unsigned persist_next;      /* shard the next engine_persist starts with */
	atomic_uint_least64_t state_writes; /* series states written */
	unsigned svc_persist_next;  /* service the next engine_persist starts with */
	atomic_uint_least64_t svc_state_writes; /* service states written */
	/* open alerts whose series was not restored: adopted when it reappears */
	pthread_mutex_t orphan_mu;
	atomic_size_t norphans;
	struct open_alert *orphans;
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
	struct engine_outputs out;  /* exporters (engine_set_outputs); out.series NULL = none */
	struct stage_pool stage;    /* staging buffers between batches (stage.c) */
	struct shard sh[ENGINE_SHARDS];
};

/* Every shard lock goes through these (ranked: util/lockrank.h). */
static inline void shard_lock(struct shard *sh)
{
	lockrank_lock(&sh->mu, LOCK_RANK_SHARD + (int)sh->id);
}

static inline void shard_unlock(struct shard *sh)
{
	lockrank_unlock(&sh->mu);
}

/* Every shard locked, for a change to all of them: their generations move. */
static inline void lock_all(struct engine *e)
{
	for (unsigned i = 0; i < ENGINE_SHARDS; i++) {
		shard_lock(&e->sh[i]);
		e->sh[i].gen++;
	}
}

static inline void unlock_all(struct engine *e)
{
	for (unsigned i = ENGINE_SHARDS; i-- > 0;)
		shard_unlock(&e->sh[i]);
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

/* The id of a series among all shards (services key their members by it). */
static inline uint32_t global_idx(const struct shard *sh, const struct series *s)
{
	return s->idx * ENGINE_SHARDS + sh->id;
}

/* A sample staged by engine_batch_stage() or engine_batch_stage_named()
 * (core.c, tagset.c), waiting for engine_batch_commit(). */
/* The words of n labels staged by eng_copy_refs(): the offset and length of
 * their bytes in b->sbytes (name0 NUL value0 NUL ...: the commit compares
 * them whole, registry_find_packed), then each name's and value's length
 * (the general lookup's refs are rebuilt from them). */
#define STAGE_WORDS(n) (2 + 2 * (size_t)(n))

struct engine_staged {
	int64_t ts_ms;
	double value;
	uint64_t hash;             /* labels_hash_refs() */
	uint32_t ref0;             /* its words in b->sref: STAGE_WORDS(nref) of them,
	                            * { bytes' offset, length, then each label's name
	                            * length and value length } */
	uint16_t nref;             /* labels, __name__ included */
	uint8_t shard;
	uint8_t named;             /* engine_batch_stage_named(): sref[ref0] is
	                            * { tag set's ref0, its count, name offset, length }
	                            * (4 words), the tag set's words as above */
};

/* core.c */
int eng_check_time(struct engine_batch *b, int64_t ts_ms, char *err, size_t errlen);
/* The routing hash of one pair whose label_pair_hash() is ph (0 when the
 * value is empty): 0 for `le` and empty values, the family's pair hash for
 * __name__, else ph (see struct shard). Inline: staging routes every label
 * of every sample. */
static inline uint64_t eng_route_of(const char *name, size_t nl, const char *value, size_t vl,
                                    uint64_t ph)
{
	if (vl == 0 || (nl == 2 && name[0] == 'l' && name[1] == 'e'))
		return 0;
	if (nl == 8 && memcmp(name, "__name__", 8) == 0 && vl > 7) {
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

/* A shard number's source from the sum of a series' routing hashes. */
static inline unsigned eng_route_mix(uint64_t acc)
{
	acc ^= acc >> 33;
	acc *= 0xff51afd7ed558ccdULL;
	acc ^= acc >> 33;
	return (unsigned)(acc >> 8);
}
/* Room for need elements in *p (staging arrays start at 256 and double);
 * the check is inline: staging calls it three times per sample. */
static inline int eng_grow_arr(void **p, size_t *cap, size_t need, size_t elem)
{
	return need <= *cap ? 0 : array_grow(p, cap, need, elem, 256);
}
/* The checks every sample passes before its labels are looked at (added,
 * staged or staged by name): a finite value, a timestamp within the limits
 * and the live window. 0, or the reject reason + 1 (counted) with err.
 * Inline for the usual sample (finite, its timestamp within the batch's
 * [ts_lo, ts_hi]: the limits and the live window together), eng_admit_slow()
 * for the rest (which checks again, and says why). */
int eng_admit_slow(struct engine_batch *b, int64_t ts_ms, double value, char *err,
                   size_t errlen);
static inline int eng_admit(struct engine_batch *b, int64_t ts_ms, double value, char *err,
                            size_t errlen)
{
	if (isfinite(value) && ts_ms >= b->ts_lo && ts_ms <= b->ts_hi)
		return 0;
	return eng_admit_slow(b, ts_ms, value, err, errlen);
}
/* A new staged entry (ts, value, ref0, nref filled; hash, shard, named left
 * to the caller) with room for nlabels more label words (4 each) and bytes
 * more label bytes; NULL when out of memory (counted, err set). Inline when
 * the three buffers have room (they only grow within a batch, so nearly
 * always), eng_stage_slot_grow() otherwise. */
static inline struct engine_staged *eng_stage_fill(struct engine_batch *b, size_t nref,
                                                   int64_t ts_ms, double value)
{
	struct engine_staged *st = &b->st[b->nst++];
	st->ts_ms = ts_ms;
	st->value = value;
	st->ref0 = (uint32_t)b->nsref;
	st->nref = (uint16_t)nref;
	if (nref > b->max_nref)
		b->max_nref = nref;
	return st;
}
struct engine_staged *eng_stage_slot_grow(struct engine_batch *b, size_t nwords, size_t nref,
                                          size_t bytes, int64_t ts_ms, double value, char *err,
                                          size_t errlen);
/* Room for one more staged sample with nwords words and bytes label bytes. */
static inline struct engine_staged *eng_stage_slot(struct engine_batch *b, size_t nwords,
                                                   size_t nref, size_t bytes, int64_t ts_ms,
                                                   double value, char *err, size_t errlen)
{
	size_t words = b->nsref + nwords, end = b->nbytes + bytes;
	if (b->nst < b->capst && words <= b->capsref && end < b->capbytes && nref <= UINT16_MAX &&
	    words <= UINT32_MAX && end <= UINT32_MAX)
		return eng_stage_fill(b, nref, ts_ms, value);
	return eng_stage_slot_grow(b, nwords, nref, bytes, ts_ms, value, err, errlen);
}
uint64_t eng_copy_refs(struct engine_batch *b, const struct label_ref *refs, size_t n,
                       uint64_t *route);
/* stage.c: gives the batch's buffers back to the engine's pool (or frees
 * them); engine_batch_end calls it after releasing its shard. */
void eng_stage_release(struct engine *e, struct engine_batch *b);
void eng_stage_pool_free(struct stage_pool *p);
/* Takes shard k's lock for the batch (releasing the one it held). */
struct shard *eng_batch_lock(struct engine_batch *b, unsigned k);
/* The commit's look-ahead across a switch of shards (commit.c): shard k
 * (not the batch's) taken ahead while the batch still holds its shard, by
 * a trylock (which cannot deadlock, so k may rank below the shard held):
 * NULL when it is busy. eng_batch_hand_over() then releases the batch's
 * shard and makes next (taken so) the batch's. Between the two the thread
 * holds two shards and takes no other shard lock. */
struct shard *eng_batch_lock_ahead(struct engine_batch *b, unsigned k);
void eng_batch_hand_over(struct engine_batch *b, struct shard *next);
/* One sample in its shard (locked by eng_batch_lock): find or create the
 * series, order check, the work of its kind. 0, or reject reason + 1. */
int eng_add_locked(struct engine_batch *b, struct shard *sh, const struct label_ref *refs,
                   size_t n, uint64_t hash, int64_t ts_ms, double value, char *err,
                   size_t errlen);
/* The same for a sample whose series s (in sh, locked) is already found:
 * order check, then the work of its kind. */
int eng_add_series(struct engine_batch *b, struct shard *sh, struct series *s, int64_t ts_ms,
                   double value, char *err, size_t errlen);
/* The model state of a new (or relearning) series; its forecaster, if it
 * has one, is kept. */
void eng_state_init(struct engine *e, struct series *s);
/* The forecaster of s (under its shard's lock), made from the shard's pool
 * if it has none yet and limits.max_memory leaves room for it (its bytes
 * are added to series_bytes). NULL when forecasting is off, s is a raw
 * counter or bucket, or there is no room. */
void *eng_forecaster(struct engine *e, struct shard *sh, struct series *s);
/* the per-series state layout (model, then forecaster) and its fingerprint,
 * from e->model and e->cfg (engine_new, engine_set_model) */
void eng_set_layout(struct engine *e);
int eng_reject(struct engine_batch *b, enum reject_reason r);
unsigned eng_route_labels(const struct labels *l);
struct series *eng_find_or_create(struct engine_batch *b, struct shard *sh,
                                  const struct label_ref *refs, size_t n, uint64_t hash,
                                  int derived, int *rej, char *err, size_t errlen);
int eng_check_order(struct engine_batch *b, struct series *s, int64_t ts_ms, char *err,
                    size_t errlen);
void eng_record(struct shard *sh, struct series *s, int64_t ts_ms, double value,
                const struct det_result *r);
/* The alerting parameters of per-series alerts: the model's, with the
 * engine_config's series_threshold and series_for_ms applied. */
void eng_series_alerting(const struct engine *e, struct model_alerting *out);
/* The score a series' alert machine sees for one sample: the detector's
 * score, or 0 when the value is inside its band, within series_min_factor
 * of its expected, there is no expected value, or it is below its expected
 * value on a series where only a rise is trouble (eng_series_rise_only). */
double eng_series_alert_score(const struct engine *e, struct series *s, double value,
                              const struct det_result *r);
/* 1 if only a rise of this series is trouble: latencies (histogram
 * quantiles, *_seconds, names with latency or duration) and errors (names
 * with error or fail, a code or status label 5xx). */
int eng_series_rise_only(const char *key, const struct labels *l);
/* Hard break (engine_config series_break_*): updates the series' reference
 * with this sample and returns 1 when anomalous samples (score: the alert
 * score) at least series_break_factor times that reference have held for
 * series_break_ms. */
int eng_series_hard_break(const struct engine *e, struct series *s, int64_t ts_ms, double value,
                          double score, const struct det_result *r);
void eng_detect(struct engine *e, struct shard *sh, struct series *s, int64_t ts_ms,
                double value);
int eng_flush_shard(struct engine *e, struct shard *sh);

/* checkpoint.c: incremental state */
void eng_mark_dirty(struct shard *sh, struct series *s);
void eng_adopt_orphan(struct engine *e, struct series *s);
void eng_orphans_free(struct engine *e);

/* derive.c: metric family types, counter rates, histogram quantiles */
uint64_t eng_str_hash(const char *p, size_t n);
enum series_kind eng_classify(struct engine *e, const struct labels *l);
/* A sample derive.c hands back to the core: `value` at ts_ms for the series
 * named `name` with the other labels of *labels; *cache is that series'
 * index + 1 in its shard (0 until the core has found or created it). */
struct derived_sample {
	const struct labels *labels;
	uint32_t *cache;
	int64_t ts_ms;
	double value;
	char name[300];
};
/* one rate, or the quantiles of two histogram scrapes (the previous one,
 * finished by a new timestamp, and this one, finished by its +Inf bucket) */
#define DERIVED_MAX (2 * ENGINE_MAX_QUANTILES)
struct derived_batch {
	size_t n;
	struct derived_sample v[DERIVED_MAX];
};
/* refs of a derived series: l's labels, __name__ replaced by name, drop (if
 * any) removed; refs holds l->n + 1 entries. Returns the count. */
size_t eng_derived_refs(const struct labels *l, const char *name, const char *drop,
                        struct label_ref *refs);
/* A counter sample: appends its rate (foreshock:rate:NAME) to out. */
void eng_counter_sample(struct series *s, int64_t ts_ms, double value, struct derived_batch *out);
/* A histogram bucket sample: appends the quantiles (foreshock:pNN:NAME) of
 * each scrape it completes to out. */
void eng_bucket_sample(const struct engine *e, struct shard *sh, struct series *s, int64_t ts_ms,
                       double value, struct derived_batch *out);

/* annotate.c: alert labels and annotations, the queue of transitions */
char *eng_labels_json(const struct labels *l, const char *alertname, const char *severity);
void eng_queue_rec(struct engine *e, struct shard *sh, struct alert_fsm *f,
                   enum alert_event ev, char *key, char *labels, char *annotations, int64_t ts,
                   double value, double score);
void eng_queue_transition(struct engine *e, struct shard *sh, struct series *s,
                          enum alert_event ev, const struct det_result *r, int64_t ts,
                          double value);

/* What one series counts against limits.max_memory: its block (struct,
 * labels and key, history ring, detector and forecaster state) plus its
 * share of the registry (pointer array and hash slots, at most 48 bytes). */
static inline size_t eng_series_cost(const struct series *s)
{
	return s->block_size + 48;
}

#endif
