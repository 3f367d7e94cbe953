/* engine/derive.c — what the engine derives from the samples it is sent:
 * the type of a metric family (# TYPE lines, remote_write metadata, name
 * suffixes), foreshock:rate: series of counters and foreshock:pNN: quantile
 * series of histogram buckets. Derived samples are handed back to the
 * core (struct derived_batch), which finds their series and runs the
 * detectors on them like on any other sample: nothing here calls back
 * into core.c. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

/* --- metric family types --------------------------------------------- */

uint64_t eng_str_hash(const char *p, size_t n)
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
	for (size_t i = eng_str_hash(name, n) & e->fam_mask;; i = (i + 1) & e->fam_mask) {
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
	lockrank_lock(&e->fam_mu, LOCK_RANK_FAM);
	family_set_locked(e, family, len, type);
	lockrank_unlock(&e->fam_mu);
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
	for (i = eng_str_hash(family, len) & e->fam_mask; e->fam_names[i];
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
			size_t j = eng_str_hash(e->fam_names[k], strlen(e->fam_names[k])) & nmask;
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
		for (i = eng_str_hash(family, len) & e->fam_mask; e->fam_names[i];
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

enum series_kind eng_classify(struct engine *e, const struct labels *l)
{
	lockrank_lock(&e->fam_mu, LOCK_RANK_FAM);
	enum series_kind k = classify_locked(e, l);
	lockrank_unlock(&e->fam_mu);
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

/* Build refs for a derived series: the labels of `l` with __name__ replaced
 * and `drop` (if any) removed. refs must hold l->n + 1 entries. */
size_t eng_derived_refs(const struct labels *l, const char *name, const char *drop,
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

/* Hand one derived sample back to the core: the series named `name` built
 * from l (*cache: its index + 1, once the core has found it). */
static void derived_add(struct derived_batch *out, const struct labels *l, const char *name,
                        uint32_t *cache, int64_t ts_ms, double v)
{
	if (out->n == DERIVED_MAX)
		return; /* cannot happen: one rate, or the quantiles of two scrapes */
	struct derived_sample *d = &out->v[out->n++];
	d->labels = l;
	snprintf(d->name, sizeof d->name, "%s", name);
	d->cache = cache;
	d->ts_ms = ts_ms;
	d->value = v;
}

void eng_counter_sample(struct series *s, int64_t ts_ms, double value, struct derived_batch *out)
{
	if (s->samples > 0 && ts_ms > s->last_ts_ms) {
		double inc = value >= s->last_value ? value - s->last_value : value; /* reset */
		double rate = inc / ((double)(ts_ms - s->last_ts_ms) / 1000.0);
		char name[300];
		snprintf(name, sizeof name, "foreshock:rate:%s", labels_metric_name(&s->labels));
		derived_add(out, &s->labels, name, &s->derived, ts_ms, rate);
	}
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

static void group_finalize(const struct engine *e, struct hgroup *g, struct derived_batch *out)
{
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
			derived_add(out, &g->labels, name, &g->qseries[q], g->cur_ts, v);
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
	size_t n = eng_derived_refs(&s->labels, family, "le", refs);
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

void eng_bucket_sample(const struct engine *e, struct shard *sh, struct series *s, int64_t ts_ms,
                       double value, struct derived_batch *out)
{
	const char *les = labels_get(&s->labels, "le");
	char *end;
	double le = les ? strtod(les, &end) : NAN;
	if (!les || *end || isnan(le))
		return;
	struct hgroup *g = group_for(sh, s);
	if (!g)
		return;
	if (g->cur_ts != ts_ms) {
		group_finalize(e, g, out);
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
		group_finalize(e, g, out); /* +Inf arrives last in a scrape */
}
