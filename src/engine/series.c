/* engine/series.c — the series registry (see series.h). */
#include "engine/series.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

int registry_init(struct series_registry *r, size_t max_series, size_t state_size,
                  size_t hist_cap, size_t fc_size)
{
	memset(r, 0, sizeof *r);
	r->max_series = max_series;
	r->state_size = state_size;
	r->hist_cap = hist_cap;
	r->fc_size = (fc_size + 15) & ~(size_t)15;
	r->table_mask = 1023;
	r->table = calloc(r->table_mask + 1, sizeof *r->table);
	return r->table ? 0 : -1;
}

/* The label set lives in the series' own allocation (see
 * registry_insert): one free releases everything. */
static void series_free(struct series *s)
{
	free(s);
}

void registry_free(struct series_registry *r)
{
	for (size_t i = 0; i < r->n; i++)
		series_free(r->v[i]);
	for (size_t i = 0; i < r->fc_nslabs; i++)
		free(r->fc_slabs[i]);
	free(r->fc_slabs);
	free(r->v);
	free(r->table);
	memset(r, 0, sizeof *r);
}

/* Lengths of a stored label name or value, from the layout registry_insert
 * gives every series: name0 NUL value0 NUL name1 NUL ... valueN-1 NUL,
 * consecutive in the series' allocation. No strlen, no read past a string. */
static inline size_t stored_name_len(const struct series *s, size_t k)
{
	return (size_t)(s->labels.values[k] - s->labels.names[k]) - 1;
}

static inline size_t stored_value_len(const struct series *s, size_t k)
{
	const char *end = k + 1 < s->labels.n ? s->labels.names[k + 1] : series_lab_end(s);
	return (size_t)(end - s->labels.values[k]) - 1;
}

/* a[0..len) == b[0..len)? Label names and values are mostly short: up to
 * 16 bytes, two overlapping loads from each end (8, 4 or 2 bytes), inline
 * (a call to memcmp per string was 8% of the engine path, a loop per byte
 * under 4 bytes 9% of the lookup's instructions); reads stay within
 * [0, len). */
static inline int bytes_eq(const char *a, const char *b, size_t len)
{
	uint64_t x, y, u, v;
	if (len >= 8 && len <= 16) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		memcpy(&u, a + len - 8, 8);
		memcpy(&v, b + len - 8, 8);
		return ((x ^ y) | (u ^ v)) == 0;
	}
	if (len >= 4 && len < 8) {
		uint32_t x4, y4, u4, v4;
		memcpy(&x4, a, 4);
		memcpy(&y4, b, 4);
		memcpy(&u4, a + len - 4, 4);
		memcpy(&v4, b + len - 4, 4);
		return ((x4 ^ y4) | (u4 ^ v4)) == 0;
	}
	if (len >= 2 && len < 4) {
		uint16_t x2, y2, u2, v2;
		memcpy(&x2, a, 2);
		memcpy(&y2, b, 2);
		memcpy(&u2, a + len - 2, 2);
		memcpy(&v2, b + len - 2, 2);
		return ((x2 ^ y2) | (u2 ^ v2)) == 0;
	}
	if (len < 2)
		return len == 0 || a[0] == b[0];
	return memcmp(a, b, len) == 0;
}

static inline int name_is(const struct series *s, size_t k, const char *p, size_t len)
{
	return stored_name_len(s, k) == len && bytes_eq(s->labels.names[k], p, len);
}

static inline int value_is(const struct series *s, size_t k, const char *p, size_t len)
{
	return stored_value_len(s, k) == len && bytes_eq(s->labels.values[k], p, len);
}

/* Does the series' label set equal the refs (any order, empty values
 * dropped)? Every string compared lives in the series' own allocation, next
 * to the struct, so a hit costs no cache miss beyond the series itself. */
static int labels_equal_refs(const struct series *s, const struct label_ref *refs, size_t n)
{
	size_t ln = s->labels.n;
	/* fast path: refs in canonical (sorted) order, none empty; the refs
	 * before the first that differs (i0) need no second look below */
	size_t i0 = 0;
	if (n == ln) {
		while (i0 < n && refs[i0].value_len &&
		       name_is(s, i0, refs[i0].name, refs[i0].name_len) &&
		       value_is(s, i0, refs[i0].value, refs[i0].value_len))
			i0++;
		if (i0 == n)
			return 1;
	}
	size_t nonempty = i0;
	for (size_t i = i0; i < n; i++) {
		if (refs[i].value_len == 0)
			continue;
		nonempty++;
		/* label sets are small: a linear scan, the same position first */
		size_t k = i < ln ? i : 0, tried = 0;
		for (; tried < ln; tried++, k = k + 1 == ln ? 0 : k + 1)
			if (name_is(s, k, refs[i].name, refs[i].name_len))
				break;
		if (tried == ln || !value_is(s, k, refs[i].value, refs[i].value_len))
			return 0;
	}
	return nonempty == ln;
}

/* The open-addressing probe both lookups share: from slot *i on, the next
 * series whose slot tag (the hash's high 32 bits) and full hash match, or
 * NULL at the first empty slot. *i is left one past the slot returned. */
static inline struct series *probe_next(const struct series_registry *r, size_t *i,
                                        uint64_t hash)
{
	uint32_t tag = (uint32_t)(hash >> 32);
	for (;; *i = (*i + 1) & r->table_mask) {
		const struct reg_slot *slot = &r->table[*i];
		if (slot->idx1 == 0)
			return NULL;
		if (slot->tag != tag)
			continue;
		struct series *s = r->v[slot->idx1 - 1];
		if (s->hash == hash) {
			*i = (*i + 1) & r->table_mask;
			return s;
		}
	}
}

struct series *registry_find_refs(struct series_registry *r, uint64_t hash,
                                  const struct label_ref *refs, size_t n)
{
	size_t i = hash & r->table_mask;
	struct series *s;
	while ((s = probe_next(r, &i, hash)))
		if (labels_equal_refs(s, refs, n))
			return s;
	return NULL;
}

/* a[0..len) == b[0..len) for any length: 16 bytes at a time (SSE2, which
 * every x86-64 has; 8 without it), the last block overlapping (reads stay
 * within [0, len)). A sample's packed labels are about 50 bytes: four
 * blocks, where the 8-byte loop took seven rounds. */
static inline int bytes_eq_long(const char *a, const char *b, size_t len)
{
	if (len <= 16)
		return bytes_eq(a, b, len);
#ifdef __SSE2__
	__m128i diff = _mm_setzero_si128();
	for (size_t i = 0; i + 16 < len; i += 16)
		diff = _mm_or_si128(diff, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + i)),
		                                        _mm_loadu_si128((const __m128i *)(b + i))));
	diff = _mm_or_si128(diff, _mm_xor_si128(_mm_loadu_si128((const __m128i *)(a + len - 16)),
	                                        _mm_loadu_si128((const __m128i *)(b + len - 16))));
	return _mm_movemask_epi8(_mm_cmpeq_epi8(diff, _mm_setzero_si128())) == 0xffff;
#else
	uint64_t diff = 0, x, y;
	size_t i = 0;
	for (; i + 8 < len; i += 8) {
		memcpy(&x, a + i, 8);
		memcpy(&y, b + i, 8);
		diff |= x ^ y;
	}
	memcpy(&x, a + len - 8, 8);
	memcpy(&y, b + len - 8, 8);
	return (diff | (x ^ y)) == 0;
#endif
}

struct series *registry_find_packed(struct series_registry *r, uint64_t hash, size_t n,
                                    const struct label_seg *seg, size_t nseg)
{
	size_t len = 0;
	for (size_t k = 0; k < nseg; k++)
		len += seg[k].len;
	size_t i = hash & r->table_mask;
	struct series *s;
	while ((s = probe_next(r, &i, hash))) {
		if (s->lab_n != n || s->lab_len != len)
			continue;
		const char *p = series_lab_bytes(s);
		size_t k = 0;
		for (; k < nseg && bytes_eq_long(p, seg[k].p, seg[k].len); k++)
			p += seg[k].len;
		if (k == nseg)
			return s;
	}
	return NULL;
}

struct series *registry_find_bytes(struct series_registry *r, uint64_t hash, size_t n,
                                   const char *p, size_t len)
{
	size_t i = hash & r->table_mask;
	struct series *s;
	while ((s = probe_next(r, &i, hash)))
		if (s->lab_n == n && s->lab_len == len && bytes_eq_long(series_lab_bytes(s), p, len))
			return s;
	return NULL;
}

struct series *registry_find(struct series_registry *r, const struct labels *l)
{
	struct label_ref small[64] = { { 0 } };
	struct label_ref *refs = l->n <= 64 ? small : malloc(l->n * sizeof *refs);
	if (!refs)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		refs[i] = (struct label_ref){ l->names[i], strlen(l->names[i]), l->values[i],
			                      strlen(l->values[i]) };
	struct series *s = registry_find_refs(r, labels_hash(l), refs, l->n);
	if (refs != small)
		free(refs);
	return s;
}

static int grow_table(struct series_registry *r)
{
	size_t ncap = (r->table_mask + 1) * 2;
	struct reg_slot *t = calloc(ncap, sizeof *t);
	if (!t)
		return -1;
	size_t mask = ncap - 1;
	for (size_t k = 0; k < r->n; k++) {
		size_t i = r->v[k]->hash & mask;
		while (t[i].idx1)
			i = (i + 1) & mask;
		t[i] = (struct reg_slot){ (uint32_t)(k + 1), (uint32_t)(r->v[k]->hash >> 32) };
	}
	free(r->table);
	r->table = t;
	r->table_mask = mask;
	return 0;
}

static size_t align16(size_t n) { return (n + 15) & ~(size_t)15; }

struct series *registry_insert(struct series_registry *r, struct labels *labels, uint64_t hash)
{
	if (r->n >= r->max_series || r->n >= UINT32_MAX - 1)
		goto fail;
	if ((r->n + 1) * 2 > r->table_mask + 1 && grow_table(r) < 0)
		goto fail;
	if (r->n == r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 1024;
		struct series **v = realloc(r->v, ncap * sizeof *v);
		if (!v)
			goto fail;
		r->v = v;
		r->cap = ncap;
	}
	/* One allocation per series: the struct, its label set (the strings,
	 * then the pointer arrays), the history ring, the detector state. The
	 * strings are consecutive (name0 NUL value0 NUL ...) and right after
	 * the struct (series_lab_bytes): the lookup
	 * (stored_name_len, stored_value_len) takes their lengths from that. The
	 * canonical key is not stored (series_key() writes it): it would repeat
	 * every name and value. */
	size_t strbytes = 0;
	for (size_t k = 0; k < labels->n; k++)
		strbytes += strlen(labels->names[k]) + strlen(labels->values[k]) + 2;
	size_t head = sizeof(struct series);
	size_t arrays = (head + strbytes + 7) & ~(size_t)7;
	size_t lab = align16(arrays + 2 * labels->n * sizeof(char *)) - head;
	size_t hist = align16(r->hist_cap * sizeof(struct hist_entry));
	if (head + lab + hist + r->state_size > UINT32_MAX)
		goto fail;
	struct series *s = calloc(1, head + lab + hist + r->state_size);
	if (!s)
		goto fail;
	const char **names = (const char **)(void *)((char *)s + arrays);
	const char **values = names + labels->n;
	char *p = (char *)s + head;
	for (size_t k = 0; k < labels->n; k++) {
		size_t nl = strlen(labels->names[k]) + 1, vl = strlen(labels->values[k]) + 1;
		memcpy(p, labels->names[k], nl);
		names[k] = p;
		p += nl;
		memcpy(p, labels->values[k], vl);
		values[k] = p;
		p += vl;
	}
	s->lab_len = (uint32_t)strbytes;
	s->lab_n = (uint32_t)labels->n;
	s->labels = (struct labels){ .n = labels->n, .names = names, .values = values, .mem = NULL };
	labels_free(labels);
	s->hash = hash;
	s->det_state = (unsigned char *)s + head + lab + hist;
	s->block_size = (uint32_t)(head + lab + hist + r->state_size);
	alert_fsm_init(&s->alert);
	size_t i = hash & r->table_mask;
	while (r->table[i].idx1)
		i = (i + 1) & r->table_mask;
	s->idx = (uint32_t)r->n;
	r->v[r->n] = s;
	r->table[i] = (struct reg_slot){ (uint32_t)(r->n + 1), (uint32_t)(hash >> 32) };
	r->n++;
	return s;
fail:
	labels_free(labels);
	return NULL;
}

int registry_resize_state(struct series_registry *r, size_t state_size)
{
	if (state_size == r->state_size) {
		for (size_t k = 0; k < r->n; k++)
			memset(r->v[k]->det_state, 0, state_size);
		return 0;
	}
	for (size_t k = 0; k < r->n; k++) {
		struct series *s = r->v[k];
		/* the state block is last; everything before it moves with the
		 * allocation, so pointers into it are rebased by offset */
		uintptr_t old = (uintptr_t)s;
		size_t state_off = (size_t)(s->det_state - (unsigned char *)s);
		struct series *ns = realloc(s, state_off + state_size);
		if (!ns)
			return -1;
		char *base = (char *)ns;
#define REBASE(ptr) ((void *)(base + ((uintptr_t)(ptr) - old)))
		ns->labels.names = REBASE(ns->labels.names);
		ns->labels.values = REBASE(ns->labels.values);
		for (size_t i = 0; i < ns->labels.n; i++) {
			ns->labels.names[i] = REBASE(ns->labels.names[i]);
			ns->labels.values[i] = REBASE(ns->labels.values[i]);
		}
#undef REBASE
		ns->det_state = (unsigned char *)base + state_off;
		ns->block_size = (uint32_t)(state_off + state_size);
		memset(ns->det_state, 0, state_size);
		r->v[k] = ns;
	}
	r->state_size = state_size;
	return 0;
}

void *registry_fc_alloc(struct series_registry *r)
{
	if (r->fc_size == 0)
		return NULL;
	if (r->fc_nslabs == 0 || r->fc_used == REG_FC_SLAB) {
		if (r->fc_nslabs == r->fc_capslabs) {
			size_t ncap = r->fc_capslabs ? r->fc_capslabs * 2 : 16;
			unsigned char **v = realloc(r->fc_slabs, ncap * sizeof *v);
			if (!v)
				return NULL;
			r->fc_slabs = v;
			r->fc_capslabs = ncap;
		}
		unsigned char *slab = aligned_alloc(16, REG_FC_SLAB * r->fc_size);
		if (!slab)
			return NULL;
		r->fc_slabs[r->fc_nslabs++] = slab;
		r->fc_used = 0;
	}
	unsigned char *st = r->fc_slabs[r->fc_nslabs - 1] + r->fc_used++ * r->fc_size;
	memset(st, 0, r->fc_size);
	return st;
}

static float from_bf16(uint16_t h)
{
	uint32_t u = (uint32_t)h << 16;
	float f;
	memcpy(&f, &u, sizeof f);
	return f;
}

int64_t series_hist_rebase(struct series *s, size_t cap, int64_t dt)
{
	/* move the base up; entries that fall off the int32 range (older than
	 * ~24 days before the newest) are dropped */
	int64_t shift = dt - (INT32_MAX / 2);
	size_t first = (s->hist_head + cap - s->hist_len) % cap;
	size_t keep = 0;
	for (size_t k = 0; k < s->hist_len; k++) {
		struct hist_entry *h = &series_hist(s, cap)[(first + k) % cap];
		if ((int64_t)h->dt_ms - shift >= INT32_MIN) {
			h->dt_ms = (int32_t)((int64_t)h->dt_ms - shift);
			keep++;
		}
	}
	/* dropped entries are the oldest: shrink from the front */
	s->hist_len = (uint32_t)keep;
	s->hist_base_ms += shift;
	return dt - shift;
}

void series_hist_push(struct series *s, size_t cap, const struct hist_point *p)
{
	series_hist_put(s, cap, p->ts_ms, p->value, p->score, p->expected, p->lower, p->upper,
	                (p->direction > 0) - (p->direction < 0), p->comp);
}

void series_hist_get(const struct series *s, size_t cap, size_t k, struct hist_point *out)
{
	size_t first = (s->hist_head + cap - s->hist_len) % cap;
	const struct hist_entry *h = &series_hist(s, cap)[(first + k) % cap];
	out->ts_ms = s->hist_base_ms + h->dt_ms;
	out->value = h->value;
	out->expected = h->expected;
	out->score = h->score / 65535.0;
	out->lower = h->expected - from_bf16(h->below);
	out->upper = h->expected + from_bf16(h->above);
	out->direction = (int)(h->comp_dir >> 6) - 1;
	out->comp = h->comp_dir & 0x3f;
}

#if UINTPTR_MAX == UINT64_MAX
_Static_assert(sizeof(struct series) <= 288, "struct series grew: see series.h");
#endif
