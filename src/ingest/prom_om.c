/* ingest/prom_om.c — prom_om_validate(): strict OpenMetrics 1.0 validation
 * (exact syntax through the strict lexer, "# EOF", metadata placement,
 * family/type rules, ordering; docs/prometheus-formats.md). */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/prom.h"
#include "ingest/prom_int.h"

#define OM_MAX_LABELS 1024 /* strict validator: labels per line */

/* ---- strict OpenMetrics validation ------------------------------------- */

/* Open-addressing u64 -> u64 map; key 0 is stored as 1 (hash collisions are
 * accepted: this is a validator, a 2^-64 false "duplicate" is fine). */
struct u64map {
	uint64_t *keys, *vals;
	size_t cap, n;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}
#define FNV0 UINT64_C(0xcbf29ce484222325)

static int u64map_grow(struct u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	uint64_t *k = calloc(ncap, sizeof *k), *v = calloc(ncap, sizeof *v);
	if (!k || !v) {
		free(k);
		free(v);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = mix64(m->keys[i]) & (ncap - 1);
		while (k[j])
			j = (j + 1) & (ncap - 1);
		k[j] = m->keys[i];
		v[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = k;
	m->vals = v;
	m->cap = ncap;
	return 0;
}

/* Returns a pointer to the value slot (inserting with *created = 1), or NULL on OOM. */
static uint64_t *u64map_slot(struct u64map *m, uint64_t key, int *created)
{
	if (!key)
		key = 1;
	if ((m->n + 1) * 2 > m->cap && u64map_grow(m) != 0)
		return NULL;
	size_t j = mix64(key) & (m->cap - 1);
	while (m->keys[j] && m->keys[j] != key)
		j = (j + 1) & (m->cap - 1);
	*created = !m->keys[j];
	if (*created) {
		m->keys[j] = key;
		m->vals[j] = 0;
		m->n++;
	}
	return &m->vals[j];
}

static void u64map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

static void u64map_clear(struct u64map *m)
{
	if (m->cap > 1024) {
		u64map_free(m);
		return;
	}
	if (m->cap)
		memset(m->keys, 0, m->cap * sizeof *m->keys);
	m->n = 0;
}

/* One metric point of a histogram/gaugehistogram/summary being checked. */
struct om_point {
	size_t nsamples, nbuckets;
	double last_le, last_bucket, inf_val, count, sum;
	int have_inf, neg_bucket, have_count, have_sum;
	int has_ts;
	double ts;
};

struct om_family {
	const char *name;
	size_t len;
	uint64_t id;
	enum prom_type type;
	int has_type, has_help, has_unit, has_samples;
	const char *unit;
	size_t unit_len;
	int in_group;
	uint64_t group;
	struct u64map groups; /* group keys seen (label sets minus le/quantile/state) */
	struct u64map series; /* series key -> last timestamp bits, or NO_TS */
	struct om_point pt;
};

#define NO_TS UINT64_C(0x7ff8dead0000beef)

struct om_state {
	struct lexer lx;
	struct u64map claimed; /* hash(name) -> family id */
	struct om_family fam;
	int have_fam;
	uint64_t next_id;
	char *err;
	size_t errlen;
	int oom;
};

static int om_fail(struct om_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int om_fail(struct om_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->lx.reason, sizeof st->lx.reason, fmt, ap);
	va_end(ap);
	return -1;
}

#define Q(n) (int)((n) > 40 ? 40 : (n))

static const char *const *type_suffixes(enum prom_type t)
{
	static const char *const counter[] = { "_total", "_created", NULL };
	static const char *const plain[] = { "", NULL };
	static const char *const hist[] = { "_bucket", "_count", "_sum", "_created", NULL };
	static const char *const ghist[] = { "_bucket", "_gcount", "_gsum", NULL };
	static const char *const summary[] = { "", "_count", "_sum", "_created", NULL };
	static const char *const info[] = { "_info", NULL };
	switch (t) {
	case PROM_COUNTER: return counter;
	case PROM_HISTOGRAM: return hist;
	case PROM_GAUGE_HISTOGRAM: return ghist;
	case PROM_SUMMARY: return summary;
	case PROM_INFO: return info;
	default: return plain;
	}
}

/* Claim `name+suffix` for the current family; clash if another family has it. */
static int om_claim(struct om_state *st, const char *name, size_t len, const char *suffix)
{
	int created;
	uint64_t h = fnv(fnv(FNV0, name, len), suffix, strlen(suffix));
	uint64_t *slot = u64map_slot(&st->claimed, h, &created);
	if (!slot) {
		st->oom = 1;
		return om_fail(st, "out of memory");
	}
	if (!created && *slot != st->fam.id)
		return om_fail(st, "metric family '%.*s%s' clashes with an earlier family", Q(len), name, suffix);
	*slot = st->fam.id;
	return 0;
}

static int om_point_end(struct om_state *st)
{
	struct om_family *f = &st->fam;
	struct om_point *pt = &f->pt;
	int rc = 0;
	if (!pt->nsamples)
		return 0;
	if (f->type == PROM_HISTOGRAM || f->type == PROM_GAUGE_HISTOGRAM) {
		const char *c = f->type == PROM_HISTOGRAM ? "_count" : "_gcount";
		const char *s = f->type == PROM_HISTOGRAM ? "_sum" : "_gsum";
		if (!pt->have_inf)
			rc = om_fail(st, "histogram '%.*s' has no '+Inf' bucket", Q(f->len), f->name);
		else if (pt->have_sum != pt->have_count)
			rc = om_fail(st, "histogram '%.*s' needs both %s and %s", Q(f->len), f->name, c, s);
		else if (pt->have_count && pt->count != pt->inf_val)
			rc = om_fail(st, "histogram '%.*s' %s does not match the '+Inf' bucket", Q(f->len), f->name, c);
		else if (f->type == PROM_HISTOGRAM && pt->have_sum && pt->neg_bucket)
			rc = om_fail(st, "histogram '%.*s' has negative buckets and a _sum", Q(f->len), f->name);
		else if (pt->have_sum && pt->sum < 0 && !pt->neg_bucket)
			rc = om_fail(st, "histogram '%.*s' has a negative %s", Q(f->len), f->name, s);
	}
	memset(pt, 0, sizeof *pt);
	return rc;
}

static int om_family_end(struct om_state *st)
{
	struct om_family *f = &st->fam;
	if (!st->have_fam)
		return 0;
	if (om_point_end(st) != 0)
		return -1;
	if (f->unit_len) {
		if (f->len < f->unit_len + 1 || f->name[f->len - f->unit_len - 1] != '_' ||
		    memcmp(f->name + f->len - f->unit_len, f->unit, f->unit_len) != 0)
			return om_fail(st, "metric family '%.*s' does not end in its unit '%.*s'",
			               Q(f->len), f->name, Q(f->unit_len), f->unit);
		if (f->type == PROM_INFO || f->type == PROM_STATESET)
			return om_fail(st, "unit not allowed for %s '%.*s'", prom_type_name(f->type), Q(f->len), f->name);
	}
	st->have_fam = 0;
	return 0;
}

static int om_family_begin(struct om_state *st, const char *name, size_t len)
{
	if (om_family_end(st) != 0)
		return -1;
	struct om_family *f = &st->fam;
	struct u64map g = f->groups, s = f->series;
	u64map_clear(&g);
	u64map_clear(&s);
	memset(f, 0, sizeof *f);
	f->groups = g;
	f->series = s;
	f->name = name;
	f->len = len;
	f->id = ++st->next_id;
	f->type = PROM_UNKNOWN;
	st->have_fam = 1;
	return om_claim(st, name, len, "");
}

static int valid_metric_name(const char *s, size_t n)
{
	if (!n || !is_metric_start(s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!is_metric_char(s[i]))
			return 0;
	return 1;
}

/* "# HELP name text", "# TYPE name type", "# UNIT name unit". */
static int om_meta_line(struct om_state *st, const char *p, const char *e)
{
	size_t n = (size_t)(e - p);
	if (bytes_eq(p, n, "# EOF"))
		return 1;
	if (n < 7 || memcmp(p, "# ", 2) != 0 || p[6] != ' ')
		return om_fail(st, "invalid comment line");
	const char *kw = p + 2;
	int kind;
	if (!memcmp(kw, "HELP", 4))
		kind = 0;
	else if (!memcmp(kw, "TYPE", 4))
		kind = 1;
	else if (!memcmp(kw, "UNIT", 4))
		kind = 2;
	else
		return om_fail(st, "invalid comment line '%.*s'", tok_len(p, e, ""), p);
	const char *name = p + 7, *q = name;
	while (q < e && *q != ' ')
		q++;
	size_t nlen = (size_t)(q - name);
	if (!valid_metric_name(name, nlen))
		return om_fail(st, "invalid metric name '%.*s'", Q(nlen), name);
	if (q >= e)
		return om_fail(st, "missing text after '%.*s'", Q(nlen), name);
	const char *rest = q + 1;
	size_t rlen = (size_t)(e - rest);

	struct om_family *f = &st->fam;
	if (!st->have_fam || f->len != nlen || memcmp(f->name, name, nlen) != 0) {
		if (om_family_begin(st, name, nlen) != 0)
			return -1;
	} else if (f->has_samples) {
		return om_fail(st, "metadata for '%.*s' after its samples", Q(nlen), name);
	}
	static const char *const kwn[] = { "HELP", "TYPE", "UNIT" };
	int *seen = kind == 0 ? &f->has_help : kind == 1 ? &f->has_type : &f->has_unit;
	if (*seen)
		return om_fail(st, "repeated %s for '%.*s'", kwn[kind], Q(nlen), name);
	*seen = 1;
	if (kind == 0) {
		if (prom_utf8_count(rest, rlen) == (size_t)-1)
			return om_fail(st, "invalid utf-8 in HELP for '%.*s'", Q(nlen), name);
	} else if (kind == 1) {
		if (bytes_eq(rest, rlen, "untyped") || prom_type_parse(rest, rlen, &f->type) != 0)
			return om_fail(st, "invalid metric type '%.*s' for '%.*s'", Q(rlen), rest, Q(nlen), name);
		for (const char *const *sfx = type_suffixes(f->type); *sfx; sfx++)
			if (om_claim(st, name, nlen, *sfx) != 0)
				return -1;
	} else {
		for (size_t i = 0; i < rlen; i++)
			if (!is_metric_char(rest[i]))
				return om_fail(st, "invalid unit '%.*s' for '%.*s'", Q(rlen), rest, Q(nlen), name);
		f->unit = rest;
		f->unit_len = rlen;
	}
	return 0;
}

/* Order-independent hash of labels refs[1..n), skipping the one named `skip`. */
static uint64_t labels_key(const struct label_ref *refs, size_t n, const char *skip, size_t skip_len)
{
	uint64_t h = 0;
	for (size_t i = 1; i < n; i++) {
		if (skip && refs[i].name_len == skip_len && !memcmp(refs[i].name, skip, skip_len))
			continue;
		uint64_t a = fnv(FNV0, refs[i].name, refs[i].name_len);
		uint64_t b = fnv(FNV0 ^ 0x5bd1e995, refs[i].value, refs[i].value_len);
		h += mix64(a ^ (b << 1 | b >> 63));
	}
	return h;
}

static const struct label_ref *find_label(const struct label_ref *refs, size_t n, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 1; i < n; i++)
		if (refs[i].name_len == l && !memcmp(refs[i].name, name, l))
			return &refs[i];
	return NULL;
}

/* Which family does sample `name` belong to: the current one if the name is
 * family + an allowed suffix for its type; *sfx gets the suffix. */
static int om_in_family(const struct om_family *f, const char *name, size_t len, const char **sfx)
{
	if (len < f->len || memcmp(name, f->name, f->len) != 0)
		return 0;
	for (const char *const *s = type_suffixes(f->type); *s; s++)
		if (bytes_eq(name + f->len, len - f->len, *s)) {
			*sfx = *s;
			return 1;
		}
	return 0;
}

static int om_ts(const char *s, size_t n, double *out)
{
	return prom_num_parse(s, n, 0, out);
}

/* Exemplars: on counter _total and histogram buckets only, labels at most
 * 128 code points, a valid value and timestamp. */
static int om_exemplar_check(struct om_state *st, const struct pline *pl, enum prom_type t,
                             const char *sfx)
{
	const struct label_ref *nm = &st->lx.refs[0];
	const struct label_ref *refs = st->lx.refs;
	size_t n = pl->nlabels;
	double ev, ets;
	int ok = (t == PROM_COUNTER && !strcmp(sfx, "_total")) ||
	         ((t == PROM_HISTOGRAM || t == PROM_GAUGE_HISTOGRAM) && !strcmp(sfx, "_bucket"));
	if (!ok)
		return om_fail(st, "exemplar not allowed on '%.*s'", Q(nm->value_len), nm->value);
	size_t cps = 0;
	for (size_t i = n; i < n + pl->nex; i++)
		cps += prom_utf8_count(refs[i].name, refs[i].name_len) + prom_utf8_count(refs[i].value, refs[i].value_len);
	if (cps > 128)
		return om_fail(st, "exemplar labels too long (%zu code points, limit 128)", cps);
	if (prom_num_parse(pl->ex_val, pl->ex_val_len, 1, &ev) != 0)
		return om_fail(st, "invalid exemplar value '%.*s'", Q(pl->ex_val_len), pl->ex_val);
	if (pl->ex_has_ts && om_ts(pl->ex_ts, pl->ex_ts_len, &ets) != 0)
		return om_fail(st, "invalid exemplar timestamp '%.*s'", Q(pl->ex_ts_len), pl->ex_ts);
	return 0;
}

/* Values per type: counters, buckets, counts and sums not negative or NaN,
 * buckets in order with non-decreasing counts, quantiles in [0, 1], info 1,
 * stateset 0 or 1 with its state label. */
static int om_value_check(struct om_state *st, const struct pline *pl, const char *sfx, double v)
{
	struct om_family *f = &st->fam;
	enum prom_type t = f->type;
	const struct label_ref *refs = st->lx.refs;
	size_t n = pl->nlabels;
	struct om_point *pt = &f->pt;
	int is_nan = isnan(v);
	switch (t) {
	case PROM_COUNTER:
		if (!strcmp(sfx, "_total") && (is_nan || v < 0))
			return om_fail(st, "invalid counter value '%.*s'", Q(pl->val_len), pl->val);
		break;
	case PROM_HISTOGRAM:
	case PROM_GAUGE_HISTOGRAM:
		if (!strcmp(sfx, "_bucket")) {
			const struct label_ref *le = find_label(refs, n, "le");
			double lev;
			if (!le)
				return om_fail(st, "bucket of '%.*s' without 'le'", Q(f->len), f->name);
			int inf = bytes_eq(le->value, le->value_len, "+Inf");
			if (inf)
				lev = INFINITY;
			else if (prom_num_parse(le->value, le->value_len, 0, &lev) != 0)
				return om_fail(st, "invalid 'le' value '%.*s'", Q(le->value_len), le->value);
			if (is_nan || v < 0)
				return om_fail(st, "invalid bucket value '%.*s'", Q(pl->val_len), pl->val);
			if (pt->nbuckets && !(lev > pt->last_le))
				return om_fail(st, "buckets of '%.*s' out of order", Q(f->len), f->name);
			if (pt->nbuckets && v < pt->last_bucket)
				return om_fail(st, "bucket counts of '%.*s' decrease", Q(f->len), f->name);
			pt->nbuckets++;
			pt->last_le = lev;
			pt->last_bucket = v;
			if (lev < 0)
				pt->neg_bucket = 1;
			if (inf) {
				pt->have_inf = 1;
				pt->inf_val = v;
			}
		} else if (!strcmp(sfx, "_count") || !strcmp(sfx, "_gcount")) {
			if (is_nan || v < 0)
				return om_fail(st, "invalid count value '%.*s'", Q(pl->val_len), pl->val);
			pt->have_count = 1;
			pt->count = v;
		} else if (!strcmp(sfx, "_sum") || !strcmp(sfx, "_gsum")) {
			if (is_nan)
				return om_fail(st, "invalid sum value '%.*s'", Q(pl->val_len), pl->val);
			pt->have_sum = 1;
			pt->sum = v;
		}
		break;
	case PROM_SUMMARY:
		if (!*sfx) {
			const struct label_ref *q = find_label(refs, n, "quantile");
			double qv;
			if (!q)
				return om_fail(st, "summary '%.*s' sample without 'quantile'", Q(f->len), f->name);
			if (prom_num_parse(q->value, q->value_len, 0, &qv) != 0 || qv < 0 || qv > 1)
				return om_fail(st, "invalid quantile '%.*s'", Q(q->value_len), q->value);
			if (v < 0)
				return om_fail(st, "invalid quantile value '%.*s'", Q(pl->val_len), pl->val);
		} else if (!strcmp(sfx, "_count") || !strcmp(sfx, "_sum")) {
			if (is_nan || v < 0)
				return om_fail(st, "invalid summary %s value '%.*s'", sfx + 1, Q(pl->val_len), pl->val);
		}
		break;
	case PROM_INFO:
		if (v != 1)
			return om_fail(st, "info value must be 1, not '%.*s'", Q(pl->val_len), pl->val);
		break;
	case PROM_STATESET:
		if (v != 0 && v != 1)
			return om_fail(st, "stateset value must be 0 or 1, not '%.*s'", Q(pl->val_len), pl->val);
		{
			int found = 0;
			for (size_t i = 1; i < n; i++)
				if (refs[i].name_len == f->len && !memcmp(refs[i].name, f->name, f->len))
					found = 1;
			if (!found)
				return om_fail(st, "stateset '%.*s' sample without a '%.*s' label", Q(f->len), f->name, Q(f->len), f->name);
		}
		break;
	default:
		break;
	}
	return 0;
}

static int om_sample_line(struct om_state *st, const char *p, const char *e)
{
	struct lexer *lx = &st->lx;
	struct pline pl;
	double v, ts = 0;
	if (prom_lex_sample(lx, p, e, &pl) != 0)
		return -1;
	const struct label_ref *nm = &lx->refs[0];
	const struct label_ref *refs = lx->refs;
	size_t n = pl.nlabels;
	if (prom_num_parse(pl.val, pl.val_len, 1, &v) != 0)
		return om_fail(st, "invalid value '%.*s'", Q(pl.val_len), pl.val);
	if (pl.has_ts && om_ts(pl.ts, pl.ts_len, &ts) != 0)
		return om_fail(st, "invalid timestamp '%.*s'", Q(pl.ts_len), pl.ts);

	const char *sfx = "";
	struct om_family *f = &st->fam;
	if (!st->have_fam || !om_in_family(f, nm->value, nm->value_len, &sfx)) {
		if (om_family_begin(st, nm->value, nm->value_len) != 0)
			return -1;
		sfx = "";
	}
	f->has_samples = 1;
	enum prom_type t = f->type;

	/* exemplars: counter _total and histogram buckets only */
	if (pl.has_ex && om_exemplar_check(st, &pl, t, sfx) != 0)
		return -1;

	/* grouping: one contiguous run per label set (le/quantile/state excluded) */
	const char *skip = NULL;
	size_t skip_len = 0;
	if ((t == PROM_HISTOGRAM || t == PROM_GAUGE_HISTOGRAM) && !strcmp(sfx, "_bucket"))
		skip = "le", skip_len = 2;
	else if (t == PROM_SUMMARY && !*sfx)
		skip = "quantile", skip_len = 8;
	else if (t == PROM_STATESET)
		skip = f->name, skip_len = f->len;
	uint64_t gkey = labels_key(refs, n, skip, skip_len);
	int created;
	if (!f->in_group || gkey != f->group) {
		if (om_point_end(st) != 0)
			return -1;
		uint64_t *slot = u64map_slot(&f->groups, gkey, &created);
		if (!slot) {
			st->oom = 1;
			return om_fail(st, "out of memory");
		}
		if (!created)
			return om_fail(st, "samples of '%.*s' with the same labels are not together", Q(f->len), f->name);
		f->in_group = 1;
		f->group = gkey;
	}
	/* a new timestamp starts a new point; _created is not part of a point */
	int created_sample = !strcmp(sfx, "_created");
	if (!created_sample) {
		if (f->pt.nsamples && (f->pt.has_ts != pl.has_ts || f->pt.ts != ts))
			if (om_point_end(st) != 0)
				return -1;
		f->pt.has_ts = pl.has_ts;
		f->pt.ts = ts;
		f->pt.nsamples++;
	}

	/* timestamps per series: all or none, never decreasing, no repeats without */
	uint64_t skey = labels_key(refs, n, NULL, 0) + mix64(fnv(FNV0, nm->value, nm->value_len));
	uint64_t *slot = u64map_slot(&f->series, skey, &created);
	if (!slot) {
		st->oom = 1;
		return om_fail(st, "out of memory");
	}
	uint64_t tsbits;
	memcpy(&tsbits, &ts, sizeof tsbits);
	if (!created) {
		double last;
		memcpy(&last, slot, sizeof last);
		if ((*slot == NO_TS) != !pl.has_ts)
			return om_fail(st, "series '%.*s' mixes samples with and without timestamps", Q(nm->value_len), nm->value);
		if (!pl.has_ts)
			return om_fail(st, "duplicate sample for '%.*s'", Q(nm->value_len), nm->value);
		if (ts < last)
			return om_fail(st, "timestamp goes backwards for '%.*s'", Q(nm->value_len), nm->value);
	}
	*slot = pl.has_ts ? tsbits : NO_TS;

	/* values per type */
	return om_value_check(st, &pl, sfx, v);
}

int prom_om_validate(const char *body, size_t len, char *err, size_t errlen, size_t *err_line)
{
	struct om_state st = { 0 };
	const char *p = body, *end = body + len;
	size_t lineno = 0;
	int valid = 0, eof = 0, rc = 0;

	st.lx.strict = 1;
	st.lx.max_labels = OM_MAX_LABELS;
	st.lx.max_name_len = SIZE_MAX;
	st.lx.max_value_len = SIZE_MAX;
	st.lx.cap = 2 * OM_MAX_LABELS + 1; /* sample labels + exemplar labels */
	st.lx.refs = malloc(st.lx.cap * sizeof *st.lx.refs);
	st.lx.scratch = malloc(len + 1);
	if (err_line)
		*err_line = 0;
	if (!st.lx.refs || !st.lx.scratch) {
		om_fail(&st, "out of memory");
		goto out;
	}

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *line = p;
		p = nl ? nl + 1 : end;
		lineno++;
		if (eof) {
			rc = om_fail(&st, "unexpected content after '# EOF'");
			break;
		}
		if (line == le) {
			rc = om_fail(&st, "blank line");
			break;
		}
		if (*line == '#') {
			rc = om_meta_line(&st, line, le);
			if (rc == 1) {
				eof = 1;
				rc = 0;
				if (om_family_end(&st) != 0) {
					rc = -1;
					break;
				}
			}
		} else {
			if (!nl) {
				rc = om_fail(&st, "missing newline at end of line");
				break;
			}
			rc = om_sample_line(&st, line, le);
		}
		if (rc != 0)
			break;
	}
	if (rc == 0 && !eof) {
		lineno++;
		rc = om_fail(&st, "missing '# EOF'");
	}
	valid = rc == 0;
out:
	if (!valid) {
		if (err && errlen)
			snprintf(err, errlen, "%s", st.lx.reason);
		if (err_line)
			*err_line = lineno;
	}
	u64map_free(&st.claimed);
	u64map_free(&st.fam.groups);
	u64map_free(&st.fam.series);
	free(st.lx.refs);
	free(st.lx.scratch);
	return valid;
}
