/* engine/series.h — the series registry: label set -> series, and per-series state.
 *
 * An open-addressing table (linear probing, power-of-two size, load <= 0.5)
 * maps the 64-bit label-set hash to a series index; lookups compare the
 * borrowed label refs against the stored set without allocating. Series are
 * never removed while the daemon runs (ids are stable), so readers may keep
 * an index. Growth rehashes the whole table; with load 0.5 that is amortised
 * O(1) per insertion.
 *
 * Each series is one allocation: the struct, its label set (the canonical
 * key name{...} is not kept: series_key() writes it when asked), a ring of the most recent history points and the detector state
 * block (state_size bytes, last), so finding a series and comparing its
 * labels touches one contiguous block. It also holds the alert state
 * machine. A series may also have a forecaster state (fc_size bytes),
 * taken from the registry's pool on request (registry_fc_alloc) and kept
 * until the registry is freed. The
 * registry owns every series and every forecaster state; it is not
 * thread-safe (the engine's lock guards it).
 */
#ifndef FORESHOCK_SERIES_H
#define FORESHOCK_SERIES_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "alert/alert.h"
#include "detect/detector.h"
#include "util/labels.h"

/* One entry of a series' recent history, packed to 20 bytes (memory per
 * series is dominated by this ring): the timestamp as a signed offset from
 * the series' hist_base_ms, value and expected value as float, the score
 * as a 16-bit fraction, the band edges as bfloat16 offsets from the
 * expected value, and the direction and the component (an index into the
 * engine's table of component names) in one byte. */
struct hist_entry {
	int32_t dt_ms;         /* ts - series.hist_base_ms */
	float value;
	float expected;        /* NAN if unknown */
	uint16_t score;        /* score * 65535 */
	uint16_t below;        /* bfloat16 of expected - lower (NAN if unknown) */
	uint16_t above;        /* bfloat16 of upper - expected */
	uint8_t comp_dir;      /* bits 0-5 component index, bits 6-7 direction + 1 */
	uint8_t pad;
};

/* A history entry unpacked. */
struct hist_point {
	int64_t ts_ms;
	double value, score, expected, lower, upper;
	int direction;
	unsigned comp;         /* component index */
};

/* What a series is, which decides what runs on it. */
enum series_kind {
	SERIES_GAUGE = 0,      /* detectors run on the values as they are */
	SERIES_COUNTER = 1,    /* raw counter: no detector; feeds foreshock:rate:<name> */
	SERIES_BUCKET = 2,     /* raw histogram bucket (<name>_bucket{le}): feeds foreshock:pNN:<name> */
	SERIES_DERIVED = 3,    /* a derived signal (rate, quantile): a gauge made by foreshock */
};

/* The detector's result for the last sample, without its component
 * (series.last_comp). */
struct last_result {
	double score, expected, lower, upper;
};

/* 288 bytes (engine_bench prints it), in two parts. A sample of a series
 * in its steady state (no alert open, no hard break under way) reads and
 * writes only the second part (from the alert machine's value on) and the
 * label strings, which follow the struct in its allocation: the fields used
 * on the first sample, in anomalous runs, by readers and checkpoints come
 * first (the label set's pointer arrays too: the lookup takes the count and
 * the strings' length from lab_n and lab_len), and the alert machine ends
 * the cold part with its three per-sample fields last (alert.h), so that
 * what a sample touches of the block is one run of about 195 bytes (3 or 4
 * cache lines, with 4 labels) instead of 275 (5 or 6). */
struct series {
	/* cold */
	int64_t sid;           /* persistent id in the store (series_state.sid); 0 = none yet */
	int64_t first_ts_ms;
	/* per-series alerts (annotate.c): the hard-break reference (kept in
	 * memory only: relearnt for a day after a restart); rise_only below */
	double brk_peak;       /* highest value seen outside anomalous runs (and each run's peak after it) */
	double brk_run_peak;   /* highest value of the current anomalous run */
	int64_t brk_from_ms;   /* first sample of that history; 0 = none yet */
	int64_t brk_since_ms;  /* first sample of the current run of hard breaks; 0 = none */
	uint32_t idx;          /* own index in the registry (stable) */
	uint32_t derived;      /* COUNTER: index + 1 of its rate series; BUCKET: index + 1 of its group; 0 = none yet */
	uint32_t svc;          /* service index (service.h) when roles != 0 */
	uint32_t block_size;   /* bytes of the whole allocation */
	struct labels labels;  /* in the series' allocation (labels.mem is NULL) */
	/* its fields a sample in the steady state writes (value, score, state)
	 * are its last: the first of the hot part */
	struct alert_fsm alert;
	/* hot: every sample */
	uint64_t hash;
	uint64_t samples;
	int64_t last_ts_ms;
	double last_value;
	int64_t hist_base_ms;  /* timestamps of the ring are offsets from this */
	unsigned char *det_state;    /* registry->state_size bytes; in the same allocation, last */
	void *fc;              /* forecaster state (registry->fc_size bytes, from the registry's
	                        * pool), NULL = none yet */
	struct last_result last;
	uint32_t lab_n;        /* labels.n */
	uint32_t lab_len;      /* bytes of the label strings (series_lab_bytes), the last
	                        * value's NUL included */
	uint32_t roles;        /* bit mask of enum service_role this series feeds; 0 = none */
	uint32_t hist_head;    /* next slot to write */
	uint32_t hist_len;
	uint8_t kind;          /* enum series_kind */
	uint8_t dirty;         /* state changed since last written (in its shard's dirty list) */
	int8_t last_direction; /* det_result.direction of the last sample */
	uint8_t last_comp;     /* its component: index in the shard's table, 0 = none */
	uint8_t stored;        /* its row is in the store: later writes update the state only */
	uint8_t rise_only;     /* per-series alerts: 0 not classified yet, 1 either way, 2 only a
	                        * rise (latency, errors) */
};

/* The first byte of the part of s a sample in the steady state touches
 * (its end is that of the label strings: series_lab_end). */
static inline const char *series_hot(const struct series *s)
{
	return (const char *)&s->alert.value;
}

/* The series' canonical key name{...} (labels_to_string()'s text), written
 * into buf as labels_format() does: returns its full length, and it fitted
 * when that is < cap. series_key_dup(): the key in a malloc'd string (NULL
 * when out of memory). */
static inline size_t series_key(const struct series *s, char *buf, size_t cap)
{
	return labels_format(&s->labels, buf, cap);
}
static inline char *series_key_dup(const struct series *s)
{
	return labels_to_string(&s->labels);
}

/* The series' label strings (name0 NUL value0 NUL ..., lab_len bytes): right
 * after the struct in its allocation, before the names and values arrays
 * (registry_insert), so that the commit's comparison of them reads the
 * lines next to the struct's hot part. */
static inline const char *series_lab_bytes(const struct series *s)
{
	return (const char *)(s + 1);
}
/* Just past them (the NUL of the last label value). */
static inline const char *series_lab_end(const struct series *s)
{
	return series_lab_bytes(s) + s->lab_len;
}

/* The history ring: registry->hist_cap entries, just before the detector
 * state in the series' allocation. */

static inline struct hist_entry *series_hist(const struct series *s, size_t cap)
{
	size_t bytes = (cap * sizeof(struct hist_entry) + 15) & ~(size_t)15;
	return (struct hist_entry *)(void *)(s->det_state - bytes);
}

/* A table slot keeps the upper half of the label-set hash next to the index,
 * so probing past other series never touches their memory (a cache miss
 * each): only a slot whose tag matches leads to a label comparison. */
struct reg_slot {
	uint32_t idx1;
	uint32_t tag;          /* hash >> 32 */
};

struct series_registry {
	struct series **v;     /* by index, creation order */
	size_t n, cap;
	struct reg_slot *table; /* open addressing; idx1 = index + 1, 0 = empty */
	size_t table_mask;
	size_t max_series;
	size_t state_size;
	size_t hist_cap;
	/* forecaster states: slabs of REG_FC_SLAB states of fc_size bytes,
	 * handed out in order and freed with the registry */
	size_t fc_size;
	unsigned char **fc_slabs;
	size_t fc_nslabs, fc_capslabs;
	size_t fc_used;        /* states handed out of the last slab */
};

#define REG_FC_SLAB 64

int registry_init(struct series_registry *r, size_t max_series, size_t state_size,
                  size_t hist_cap, size_t fc_size);
void registry_free(struct series_registry *r);
/* Find by hash + labels (refs in any order, empty values ignored). NULL if absent. */
struct series *registry_find_refs(struct series_registry *r, uint64_t hash,
                                  const struct label_ref *refs, size_t n);
struct series *registry_find(struct series_registry *r, const struct labels *l);
/* A label set's bytes as a series keeps them: name0 NUL value0 NUL name1
 * NUL ... in canonical (sorted) order, given in up to 3 pieces. */
struct label_seg {
	const char *p;
	size_t len;
};
/* Find by hash, label count n and those bytes (compared whole: no string
 * lengths, no pointer arrays). NULL if no series has exactly these bytes,
 * which also happens for a set given out of canonical order or with an
 * empty value: the caller then asks registry_find_refs(). A match is
 * exact: the stored bytes hold 2n NULs, so equal bytes split into the same
 * n names and values. */
struct series *registry_find_packed(struct series_registry *r, uint64_t hash, size_t n,
                                    const struct label_seg *seg, size_t nseg);
/* The same for bytes given in one piece (p[0..len), a staged sample's
 * labels: engine/commit.c), without the pieces' loop. */
struct series *registry_find_bytes(struct series_registry *r, uint64_t hash, size_t n,
                                   const char *p, size_t len);
/* Insert a new series, taking ownership of *labels (moved: *labels is zeroed).
 * Returns NULL when the limit is reached or memory runs out (labels freed). */
struct series *registry_insert(struct series_registry *r, struct labels *labels, uint64_t hash);
/* Change the detector state size (model swap): every series' state block is
 * reallocated and left zeroed for the caller to re-initialise. */
int registry_resize_state(struct series_registry *r, size_t state_size);

/* A forecaster state of r->fc_size bytes (16-byte aligned, zeroed) from
 * r's pool, owned by r until registry_free(); NULL when fc_size is 0 or
 * memory runs out. The caller stores it in series.fc and initialises it. */
void *registry_fc_alloc(struct series_registry *r);

/* Append one point (oldest dropped when full); cap is registry->hist_cap. */
void series_hist_push(struct series *s, size_t cap, const struct hist_point *p);
/* The ring's offsets moved so that offset dt (> INT32_MAX) fits: returns
 * it rebased (series_hist_put's rare path). */
int64_t series_hist_rebase(struct series *s, size_t cap, int64_t dt);

/* bfloat16 of f, rounded to nearest even (NaN stays NaN). */
static inline uint16_t series_bf16(float f)
{
	uint32_t u;
	memcpy(&u, &f, sizeof u);
	if ((u & 0x7fffffffu) > 0x7f800000u)
		return 0x7fc0; /* NaN */
	u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
	return (uint16_t)(u >> 16);
}

/* series_hist_push() of a point given field by field, inline (the engine
 * records every sample so: no struct hist_point in between); dir is
 * -1, 0 or 1. */
static inline void series_hist_put(struct series *s, size_t cap, int64_t ts_ms, double value,
                                   double score, double expected, double lower, double upper,
                                   int dir, unsigned comp)
{
	if (cap == 0)
		return;
	if (s->hist_len == 0)
		s->hist_base_ms = ts_ms;
	int64_t dt = ts_ms - s->hist_base_ms;
	if (dt > INT32_MAX)
		dt = series_hist_rebase(s, cap, dt);
	score = score < 0 ? 0 : score > 1 ? 1 : score;
	struct hist_entry e = {
		.dt_ms = (int32_t)dt,
		.value = (float)value,
		.expected = (float)expected,
		.score = (uint16_t)(isnan(score) ? 0 : score * 65535.0 + 0.5),
		.below = series_bf16((float)(expected - lower)),
		.above = series_bf16((float)(upper - expected)),
		.comp_dir = (uint8_t)((comp & 0x3f) | ((unsigned)(dir + 1) << 6)),
	};
	series_hist(s, cap)[s->hist_head] = e;
	s->hist_head = s->hist_head + 1 < cap ? s->hist_head + 1 : 0; /* no division */
	if (s->hist_len < cap)
		s->hist_len++;
}
/* The k-th oldest point of the ring (k < s->hist_len). */
void series_hist_get(const struct series *s, size_t cap, size_t k, struct hist_point *out);

#endif
