/* ingest/prw.c — Prometheus remote_write 1.0 decoder.
 *
 *   body ──snappy block──> WriteRequest bytes ──protobuf-c──> messages in an arena
 *        length header checked              unknown fields kept, ignored
 *        against max_uncompressed           arena capped at max_decoded
 *   ──validate every series──> emit metadata, then samples (all or nothing)
 *
 * The protobuf-c allocator is a bump arena: unpack makes many small
 * allocations that all die together, so "free" is a no-op and the arena is
 * dropped in one sweep. Its cap bounds the protobuf expansion (an empty
 * Label costs 2 bytes on the wire and ~70 bytes unpacked).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "ingest/prom_int.h" /* prom_utf8_count: the text parsers' UTF-8 check */
#include "ingest/prw.h"
#include "proto/remote.pb-c.h"

/* ---- bump arena for protobuf-c ------------------------------------------ */

struct arena_chunk {
	struct arena_chunk *next;
	size_t size, used;
	_Alignas(8) unsigned char mem[];
};

struct arena {
	struct arena_chunk *head;
	size_t total; /* bytes malloc'd for chunks */
	size_t cap;
	int exhausted;
};

static void *arena_alloc(void *data, size_t size)
{
	struct arena *a = data;
	struct arena_chunk *c = a->head;
	if (size > a->cap) {
		a->exhausted = 1;
		return NULL;
	}
	/* 8-byte alignment: protobuf-c structs hold only pointers, size_t,
	 * int64 and double */
	size = (size + 7) & ~(size_t)7;
	if (!size)
		size = 8;
	if (!c || c->size - c->used < size) {
		size_t want = c ? c->size * 2 : 64 * 1024;
		if (want > 4u << 20)
			want = 4u << 20;
		if (want < size)
			want = size;
		if (a->total + want > a->cap) {
			want = size;
			if (a->total + want > a->cap) {
				a->exhausted = 1;
				return NULL;
			}
		}
		c = malloc(sizeof *c + want);
		if (!c)
			return NULL;
		c->size = want;
		c->used = 0;
		c->next = a->head;
		a->head = c;
		a->total += want;
	}
	void *p = c->mem + c->used;
	c->used += size;
	return p;
}

static void arena_free_one(void *data, void *p)
{
	(void)data;
	(void)p; /* everything goes at once in arena_release() */
}

static void arena_release(struct arena *a)
{
	while (a->head) {
		struct arena_chunk *n = a->head->next;
		free(a->head);
		a->head = n;
	}
	a->total = 0;
}

/* ---- validation --------------------------------------------------------- */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int label_name_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return n > 0;
}

static int bin_cmp(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b)
{
	size_t n = a->len < b->len ? a->len : b->len;
	int c = n ? memcmp(a->data, b->data, n) : 0;
	if (c)
		return c;
	return a->len < b->len ? -1 : a->len > b->len;
}

static int is_name_label(const ProtobufCBinaryData *b)
{
	return b->len == 8 && memcmp(b->data, "__name__", 8) == 0;
}

#define QB(b) (int)((b)->len > 40 ? 40 : (b)->len), (const char *)(b)->data

/* Check one series; *name_idx gets the index of its __name__ label. */
static int check_series(const Prometheus__TimeSeries *ts, size_t idx, const struct prom_limits *L,
                        size_t *name_idx, char *err, size_t errlen)
{
	size_t n = ts->n_labels;
	int sorted = 1;
	*name_idx = SIZE_MAX;
	if (n == 0)
		return fail(err, errlen, "series without labels (series %zu)", idx);
	if (n > L->max_labels)
		return fail(err, errlen, "too many labels (%zu, limit %zu) (series %zu)", n, L->max_labels, idx);
	for (size_t i = 0; i < n; i++) {
		const ProtobufCBinaryData *nm = &ts->labels[i]->name, *v = &ts->labels[i]->value;
		if (nm->len == 0)
			return fail(err, errlen, "empty label name (series %zu)", idx);
		if (nm->len > L->max_name_len)
			return fail(err, errlen, "label name too long '%.*s' (limit %zu) (series %zu)", QB(nm), L->max_name_len, idx);
		if (!label_name_ok(nm->data, nm->len))
			return fail(err, errlen, "invalid label name '%.*s' (series %zu)", QB(nm), idx);
		if (is_name_label(nm)) {
			if (v->len == 0)
				return fail(err, errlen, "empty metric name (series %zu)", idx);
			if (v->len > L->max_name_len)
				return fail(err, errlen, "metric name too long '%.*s' (limit %zu) (series %zu)", QB(v), L->max_name_len, idx);
			*name_idx = i;
		} else if (v->len > L->max_value_len) {
			return fail(err, errlen, "label value too long for '%.*s' (%zu bytes, limit %zu) (series %zu)",
			            QB(nm), v->len, L->max_value_len, idx);
		}
		if (prom_utf8_count((const char *)v->data, v->len) == (size_t)-1)
			return fail(err, errlen, "invalid utf-8 in label value for '%.*s' (series %zu)", QB(nm), idx);
		if (i > 0 && bin_cmp(&ts->labels[i - 1]->name, nm) >= 0)
			sorted = 0;
	}
	if (!sorted) /* n <= max_labels: quadratic is fine */
		for (size_t i = 1; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (bin_cmp(&ts->labels[i]->name, &ts->labels[j]->name) == 0)
					return fail(err, errlen, "duplicate label name '%.*s' (series %zu)",
					            QB(&ts->labels[i]->name), idx);
	if (*name_idx == SIZE_MAX)
		return fail(err, errlen, "missing '__name__' label (series %zu)", idx);
	return 0;
}

static enum prom_type meta_type(int t)
{
	switch (t) {
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER: return PROM_COUNTER;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE: return PROM_GAUGE;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM: return PROM_HISTOGRAM;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGEHISTOGRAM: return PROM_GAUGE_HISTOGRAM;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__SUMMARY: return PROM_SUMMARY;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__INFO: return PROM_INFO;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__STATESET: return PROM_STATESET;
	default: return PROM_UNKNOWN;
	}
}

/* ---- decode ------------------------------------------------------------- */

/* The snappy block, its varint length header checked against
 * P->max_uncompressed before anything is allocated. Returns the body (the
 * caller frees it) with its length in *ulen, or NULL with err set. */
static char *uncompress_body(const void *body, size_t len, const struct prw_limits *P,
                             size_t *ulen, char *err, size_t errlen)
{
	if (!body || len == 0) {
		fail(err, errlen, "empty body");
		return NULL;
	}
	if (snappy_uncompressed_length(body, len, ulen) != SNAPPY_OK) {
		fail(err, errlen, "invalid snappy block (bad length header)");
		return NULL;
	}
	if (*ulen > P->max_uncompressed) {
		fail(err, errlen, "uncompressed body too large (%zu bytes, limit %zu)", *ulen,
		     P->max_uncompressed);
		return NULL;
	}
	char *raw = malloc(*ulen ? *ulen : 1);
	if (!raw) {
		fail(err, errlen, "out of memory (%zu bytes)", *ulen);
		return NULL;
	}
	size_t got = *ulen;
	if (snappy_uncompress(body, len, raw, &got) != SNAPPY_OK || got != *ulen) {
		fail(err, errlen, "invalid snappy block");
		free(raw);
		return NULL;
	}
	return raw;
}

/* Every series checked (name_idx[i]: its __name__ label); *max_n: the most
 * labels of one series (at least 1). */
static int check_all_series(const Prometheus__WriteRequest *wr, const struct prom_limits *L,
                            size_t *name_idx, size_t *max_n, char *err, size_t errlen)
{
	*max_n = 1;
	for (size_t i = 0; i < wr->n_timeseries; i++) {
		if (check_series(wr->timeseries[i], i, L, &name_idx[i], err, errlen) != 0)
			return -1;
		if (wr->timeseries[i]->n_labels > *max_n)
			*max_n = wr->timeseries[i]->n_labels;
	}
	return 0;
}

static int check_metadata(const Prometheus__WriteRequest *wr, const struct prom_limits *L,
                          char *err, size_t errlen)
{
	for (size_t i = 0; i < wr->n_metadata; i++) {
		const ProtobufCBinaryData *f = &wr->metadata[i]->metric_family_name;
		if (f->len == 0 || f->len > L->max_name_len ||
		    prom_utf8_count((const char *)f->data, f->len) == (size_t)-1)
			return fail(err, errlen, "invalid metadata family name '%.*s' (metadata %zu)",
			            QB(f), i);
	}
	return 0;
}

/* Hand a checked request to the callbacks: metadata first, as "# TYPE"
 * lines precede samples in text; refs has room for the most labels. */
static void emit_request(const Prometheus__WriteRequest *wr, const size_t *name_idx,
                         struct label_ref *refs, const struct prw_limits *P,
                         prom_sample_fn on_sample, prom_meta_fn on_meta, void *ctx,
                         struct prw_stats *st)
{
	for (size_t i = 0; i < wr->n_metadata && on_meta; i++) {
		const Prometheus__MetricMetadata *m = wr->metadata[i];
		on_meta(ctx, (const char *)m->metric_family_name.data, m->metric_family_name.len,
		        meta_type(m->type));
		st->metadata++;
	}
	for (size_t i = 0; i < wr->n_timeseries; i++) {
		const Prometheus__TimeSeries *ts = wr->timeseries[i];
		size_t n = 1;
		const Prometheus__Label *nl = ts->labels[name_idx[i]];
		refs[0] = (struct label_ref){ "__name__", 8, (const char *)nl->value.data, nl->value.len };
		for (size_t j = 0; j < ts->n_labels; j++) {
			if (j == name_idx[i])
				continue;
			const Prometheus__Label *l = ts->labels[j];
			refs[n++] = (struct label_ref){ (const char *)l->name.data, l->name.len,
			                                (const char *)l->value.data, l->value.len };
		}
		if (ts->n_samples == 0)
			st->ignored++;
		for (size_t j = 0; j < ts->n_samples; j++) {
			const Prometheus__Sample *s = ts->samples[j];
			if (!P->keep_stale && prom_is_stale(s->value)) {
				st->stale++;
				continue;
			}
			if (on_sample(ctx, refs, n, s->value, s->timestamp, 1, 0) != 0)
				st->refused++;
			else
				st->samples++;
		}
	}
}

int prw_decode_ex(const void *body, size_t len, const struct prom_limits *lim,
                  const struct prw_limits *plim, prom_sample_fn on_sample,
                  prom_meta_fn on_meta, void *ctx, struct prw_stats *stats,
                  char *err, size_t errlen)
{
	const struct prom_limits dl = PROM_LIMITS_DEFAULT;
	const struct prw_limits dp = PRW_LIMITS_DEFAULT;
	struct prom_limits L = lim ? *lim : dl;
	struct prw_limits P = plim ? *plim : dp;
	struct prw_stats st = { 0 };
	struct arena arena = { 0 };
	ProtobufCAllocator alloc = { arena_alloc, arena_free_one, &arena };
	Prometheus__WriteRequest *wr = NULL;
	struct label_ref *refs = NULL;
	char *raw = NULL;
	size_t ulen = 0, max_n, *name_idx = NULL;
	int rc = -1;

	if (!L.max_labels)
		L.max_labels = dl.max_labels;
	if (!L.max_name_len)
		L.max_name_len = dl.max_name_len;
	if (!L.max_value_len)
		L.max_value_len = dl.max_value_len;
	if (!P.max_uncompressed)
		P.max_uncompressed = dp.max_uncompressed;
	if (!P.max_decoded)
		P.max_decoded = dp.max_decoded;
	arena.cap = P.max_decoded;
	if (err && errlen)
		err[0] = '\0';

	raw = uncompress_body(body, len, &P, &ulen, err, errlen);
	if (!raw)
		goto out;
	wr = prometheus__write_request__unpack(&alloc, ulen, (const uint8_t *)raw);
	if (!wr) {
		if (arena.exhausted)
			fail(err, errlen, "write request too large to decode (limit %zu bytes)", P.max_decoded);
		else
			fail(err, errlen, "invalid protobuf write request");
		goto out;
	}
	st.series = wr->n_timeseries;

	/* validate everything before emitting anything */
	name_idx = malloc((wr->n_timeseries ? wr->n_timeseries : 1) * sizeof *name_idx);
	if (!name_idx) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	if (check_all_series(wr, &L, name_idx, &max_n, err, errlen) != 0)
		goto out;
	refs = malloc(max_n * sizeof *refs); /* max_n <= max_labels, and bounded by the input */
	if (!refs) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	if (check_metadata(wr, &L, err, errlen) != 0)
		goto out;
	emit_request(wr, name_idx, refs, &P, on_sample, on_meta, ctx, &st);
	rc = 0;
out:
	free(refs);
	free(name_idx);
	/* wr lives in the arena: no prometheus__write_request__free_unpacked() */
	arena_release(&arena);
	free(raw);
	if (stats)
		*stats = st;
	return rc;
}

int prw_decode(const void *body, size_t len, const struct prom_limits *lim,
               prom_sample_fn on_sample, prom_meta_fn on_meta, void *ctx,
               char *err, size_t errlen)
{
	return prw_decode_ex(body, len, lim, NULL, on_sample, on_meta, ctx, NULL, err, errlen);
}
