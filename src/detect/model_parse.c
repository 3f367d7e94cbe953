/* detect/model_parse.c — detector models from YAML (docs/detectors.md): the keys,
 * their ranges and error messages, the built-in default, and model_finish(),
 * which lays out the per-series state and computes the model's fingerprint.
 * Scoring is in detect/detector.c. */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detector.h"
#include "detect/logf1.h"
#include "detect/model_int.h"
#include "util/log.h"
#include "util/yaml_tree.h"

static const struct comp_kind *const kinds[] = { &comp_level, &comp_seasonal, &comp_context,
	                                         &comp_cusum, &comp_volatility, &comp_record, &comp_spike,
	                                         &comp_changept, NULL };

/* The built-in default; models/default.yml must say the same (a unit test
 * compares fingerprints). */
static const char builtin_yaml[] =
	"name: default\n"
	"components:\n"
	"  - kind: seasonal\n"
	"    weekday: true\n"
	"  - kind: cusum\n"
	"    halflife: 512\n"
	"  - kind: record\n"
	"    halflife: 8000\n"
	"  - kind: spike\n"
	"    memory: 1d\n"
	"    likelihood: false\n"
	"    direct: 1\n"
	"  - kind: changept\n"
	"    likelihood: false\n"
	"    direct: 3\n"
	"combine: max\n"
	"likelihood:\n"
	"  window: 3\n"
	"  halflife: 4000\n"
	"  min_std: 0.05\n"
	"  min_samples: 60\n"
	"  decades: 11.5\n"
	"  calibrate: 0.001\n"
	"  single_for: 800\n"
	"  single_floor: 0.26\n"
	"warmup: 120\n"
	"suppress: 10\n"
	"suppress_frac: 0.04\n"
	"suppress_max: 1000\n"
	"hold: 0.4\n"
	"refire: 1.5\n"
	"renew: true\n"
	"arm: 0.45\n"
	"alert:\n"
	"  threshold: 0.49\n"
	"  clear_threshold: 0.35\n"
	"  for: 0s\n"
	"  resolve: 5m\n"
	"  severity: warning\n";

static size_t align8(size_t x)
{
	return (x + 7) & ~(size_t)7;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ull;
	}
	return h;
}

/* a range for model_prefetch, merged with the last one if they touch */
static void pf_add(struct model *m, size_t off, size_t len)
{
	if (m->npf > 0 && off <= (size_t)m->pf[m->npf - 1].off + m->pf[m->npf - 1].len) {
		size_t end = off + len, last = (size_t)m->pf[m->npf - 1].off + m->pf[m->npf - 1].len;
		if (end > last)
			m->pf[m->npf - 1].len = (uint32_t)(end - m->pf[m->npf - 1].off);
		return;
	}
	m->pf[m->npf].off = (uint32_t)off;
	m->pf[m->npf].len = (uint32_t)len;
	m->npf++;
}

/* What model_prefetch asks for, in state order: the header, each
 * component's likelihood state (if the stage is on) and its own state
 * whole, or its fixed parts and through its prefetch hook the rest. */
static void model_prefetch_plan(struct model *m)
{
	m->npf = 0;
	m->npf_hook = 0;
	pf_add(m, 0, sizeof(struct model_hdr));
	for (int i = 0; i < m->ncomp; i++) {
		const struct comp_inst *c = &m->comp[i];
		if (m->lk_enabled && !c->no_lk)
			pf_add(m, c->lk_off, m->lk_size);
		if (c->kind->prefetch) {
			m->pf_hook[m->npf_hook++] = i;
			size_t off[2], len[2];
			int nf = c->kind->prefetch_fixed ? c->kind->prefetch_fixed(c->p, off, len) : 0;
			for (int k = 0; k < nf; k++)
				pf_add(m, c->off + off[k], len[k]);
		} else
			pf_add(m, c->off, c->kind->state_size(c->p));
	}
	/* the ranges' lines, per position of the state in its first line;
	 * listed last line first, so model_prefetch (which asks for them from
	 * the end of its list) goes from the first line up, as the ranges do */
	m->pf_lines = 1;
	for (int j = 0; j < 8 && m->pf_lines; j++) {
		uint64_t lines = 0;
		for (int i = 0; i < m->npf; i++) {
			if (m->pf[i].len == 0)
				continue;
			size_t first = (8 * (size_t)j + m->pf[i].off) / 64,
			       last = (8 * (size_t)j + m->pf[i].off + m->pf[i].len - 1) / 64;
			if (last >= PF_MAX_LINES) {
				m->pf_lines = 0;
				break;
			}
			for (size_t l = first; l <= last; l++)
				lines |= 1ull << l;
		}
		int n = 0;
		for (int l = PF_MAX_LINES - 1; l >= 0; l--)
			if (lines >> l & 1)
				m->pf_line[j][n++] = (int16_t)(64 * l - 8 * j);
		m->pf_nline[j] = (uint8_t)n;
	}
	/* Every position asks for as many lines, the longest list's count: a
	 * shorter list is padded with its first line (asked for again, first:
	 * the second request finds the line on its way), so model_prefetch's
	 * jump into its unrolled prefetches goes to the same place for every
	 * series of the model, and is predicted, instead of one of two or three
	 * places by where the series' state lies in its line. */
	int nmax = 0;
	for (int j = 0; m->pf_lines && j < 8; j++)
		if (m->pf_nline[j] > nmax)
			nmax = m->pf_nline[j];
	for (int j = 0; m->pf_lines && j < 8; j++) {
		int n = m->pf_nline[j];
		for (int k = n; k < nmax; k++)
			m->pf_line[j][k] = m->pf_line[j][n - 1];
		m->pf_nline[j] = (uint8_t)nmax;
	}
}

static void model_finish(struct model *m)
{
	size_t off = align8(sizeof(struct model_hdr));
	uint64_t h = 14695981039346656037ull;
	uint32_t v = STATE_VERSION;
	h = fnv(h, &v, sizeof v);
	/* [header][likelihood 0][component 0][likelihood 1][component 1]... */
	m->lk_size = align8(sizeof(struct lk_state) + (size_t)m->lk_window * sizeof(float));
	m->lk_cold_off = 0;
	if (m->lk_instant || m->lk_exp_tail) {
		m->lk_cold_off = m->lk_size;
		m->lk_size += align8(sizeof(struct lk_cold));
	}
	for (int i = 0; i < m->ncomp; i++) {
		struct comp_inst *c = &m->comp[i];
		c->lk_off = off;
		if (!c->no_lk)
			off += m->lk_size;
		c->off = off;
		if (c->kind->prepare)
			c->kind->prepare(c->p);
		off = align8(off + c->kind->state_size(c->p));
		h = fnv(h, c->kind->name, strlen(c->kind->name));
		h = fnv(h, c->p, DET_MAX_PARAMS * sizeof c->p[0]); /* not the derived ones */
		h = fnv(h, &c->weight, sizeof c->weight);
		if (c->direct > 0) { /* models without it keep their fingerprint */
			h = fnv(h, &c->direct, sizeof c->direct);
			h = fnv(h, &c->no_lk, sizeof c->no_lk);
		}
	}
	m->state_size = off;
	model_prefetch_plan(m);
	m->lk_log_qref = m->lk_qref > 0 ? log(m->lk_qref) : 0;
	m->lk_z_rate = m->lk_qref > 0 ? lk_rate_z(m->lk_log_qref) : 0;
	m->lk_alpha = det_alpha(m->lk_halflife, 1);
	m->lk_halflife_n = (uint32_t)ceil(m->lk_halflife); /* halflife <= 1e7 */
	m->lk_dln10 = m->lk_decades * M_LN10;
	det_logf1_prepare(); /* the likelihood stage's log(1 + raw) */
	m->fast = m->combine == COMBINE_MAX && m->lk_enabled && !m->lk_instant && !m->lk_exp_tail &&
	          m->lk_qref > 0 && !(m->lk_clip > 0);
	h = fnv(h, &m->combine, sizeof m->combine);
	h = fnv(h, &m->lk_enabled, sizeof m->lk_enabled);
	h = fnv(h, &m->lk_window, sizeof m->lk_window);
	h = fnv(h, &m->lk_halflife, sizeof m->lk_halflife);
	h = fnv(h, &m->lk_min_std, sizeof m->lk_min_std);
	h = fnv(h, &m->lk_instant, sizeof m->lk_instant);
	h = fnv(h, &m->raw_scale, sizeof m->raw_scale);
	h = fnv(h, &m->lk_exp_tail, sizeof m->lk_exp_tail);
	h = fnv(h, &m->lk_min_n, sizeof m->lk_min_n);
	h = fnv(h, &m->lk_decades, sizeof m->lk_decades);
	h = fnv(h, &m->lk_qref, sizeof m->lk_qref);
	h = fnv(h, &m->lk_clip, sizeof m->lk_clip);
	if (m->lk_single_for > 0) { /* models without it keep their fingerprint */
		h = fnv(h, &m->lk_single_for, sizeof m->lk_single_for);
		h = fnv(h, &m->lk_single_floor, sizeof m->lk_single_floor);
	}
	h = fnv(h, &m->refire, sizeof m->refire);
	if (m->renew) /* models without it keep their fingerprint */
		h = fnv(h, &m->renew, sizeof m->renew);
	h = fnv(h, &m->warmup, sizeof m->warmup);
	if (m->warmup_ms > 0) /* models without it keep their fingerprint */
		h = fnv(h, &m->warmup_ms, sizeof m->warmup_ms);
	h = fnv(h, &m->suppress, sizeof m->suppress);
	h = fnv(h, &m->suppress_ms, sizeof m->suppress_ms);
	h = fnv(h, &m->suppress_frac, sizeof m->suppress_frac);
	h = fnv(h, &m->suppress_max, sizeof m->suppress_max);
	h = fnv(h, &m->hold, sizeof m->hold);
	h = fnv(h, &m->alert.threshold, sizeof m->alert.threshold);
	h = fnv(h, &m->arm, sizeof m->arm);
	m->fingerprint = h;
	m->alert.severity = m->severity;
}

/* ---- YAML ---------------------------------------------------------------- */

static int read_range(const struct ynode *n, const char *what, double lo, double hi, double *out,
                      char *err, size_t errlen)
{
	if (ynode_double(n, what, out, err, errlen) < 0)
		return -1;
	if (*out < lo || *out > hi) {
		yerr(err, errlen, n, "value '%s' for '%s' out of range [%g, %g]", n->scalar, what, lo,
		     hi);
		return -1;
	}
	return 0;
}

static int read_param(const struct param_def *d, const struct ynode *n, double *out, char *err,
                      size_t errlen)
{
	switch (d->type) {
	case PARAM_NUMBER:
		return read_range(n, d->name, d->min, d->max, out, err, errlen);
	case PARAM_INT: {
		int64_t v;
		if (ynode_int(n, d->name, &v, err, errlen) < 0)
			return -1;
		if ((double)v < d->min || (double)v > d->max) {
			yerr(err, errlen, n, "value '%s' for '%s' out of range [%g, %g]", n->scalar,
			     d->name, d->min, d->max);
			return -1;
		}
		*out = (double)v;
		return 0;
	}
	case PARAM_DURATION: {
		int64_t v;
		if (ynode_duration_ms(n, d->name, &v, err, errlen) < 0)
			return -1;
		if ((double)v < d->min || (double)v > d->max) {
			yerr(err, errlen, n, "duration '%s' for '%s' out of range [%gs, %gs]", n->scalar,
			     d->name, d->min / 1000, d->max / 1000);
			return -1;
		}
		*out = (double)v;
		return 0;
	}
	case PARAM_BOOL: {
		int v;
		if (ynode_bool(n, d->name, &v, err, errlen) < 0)
			return -1;
		*out = v;
		return 0;
	}
	}
	return -1;
}

static int parse_component(struct model *m, const struct ynode *n, char *err, size_t errlen)
{
	if (n->type != Y_MAP) {
		yerr(err, errlen, n, "a component must be a map with 'kind:'");
		return -1;
	}
	const struct ynode *kn = ymap_get(n, "kind");
	if (!kn) {
		yerr(err, errlen, n, "missing 'kind' in component");
		return -1;
	}
	const char *kname;
	if (ynode_string(kn, "kind", &kname, err, errlen) < 0)
		return -1;
	const struct comp_kind *kind = NULL;
	for (int i = 0; kinds[i]; i++)
		if (!strcmp(kinds[i]->name, kname))
			kind = kinds[i];
	if (!kind) {
		yerr(err, errlen, kn, "unknown component kind '%s' (known: level, seasonal, context, cusum, volatility, record, spike)",
		     kname);
		return -1;
	}
	if (m->ncomp >= MAX_COMPONENTS) {
		yerr(err, errlen, n, "too many components (at most %d)", MAX_COMPONENTS);
		return -1;
	}
	const char *allowed[DET_MAX_PARAMS + 5];
	size_t na = 0;
	allowed[na++] = "kind";
	allowed[na++] = "weight";
	allowed[na++] = "direct";
	allowed[na++] = "likelihood";
	for (size_t i = 0; i < kind->nparams; i++)
		allowed[na++] = kind->params[i].name;
	allowed[na] = NULL;
	if (ymap_check_keys(n, allowed, err, errlen) < 0)
		return -1;
	struct comp_inst *c = &m->comp[m->ncomp];
	memset(c, 0, sizeof *c);
	c->kind = kind;
	c->weight = 1.0;
	const struct ynode *w = ymap_get(n, "weight");
	if (w && read_range(w, "weight", 0, 1, &c->weight, err, errlen) < 0)
		return -1;
	const struct ynode *dn = ymap_get(n, "direct");
	if (dn && read_range(dn, "direct", 0, 1e6, &c->direct, err, errlen) < 0)
		return -1;
	int lk = 1;
	const struct ynode *ln = ymap_get(n, "likelihood");
	if (ln && ynode_bool(ln, "likelihood", &lk, err, errlen) < 0)
		return -1;
	if (!lk && !(c->direct > 0)) {
		yerr(err, errlen, ln, "'likelihood: false' needs 'direct' (the component would never score)");
		return -1;
	}
	c->no_lk = !lk;
	for (size_t i = 0; i < kind->nparams; i++) {
		const struct param_def *d = &kind->params[i];
		c->p[i] = d->def;
		const struct ynode *pn = ymap_get(n, d->name);
		if (pn && read_param(d, pn, &c->p[i], err, errlen) < 0)
			return -1;
	}
	m->ncomp++;
	return 0;
}

static int parse_duration_key(const struct ynode *map, const char *key, int64_t *out, char *err,
                              size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	if (ynode_duration_ms(n, key, out, err, errlen) < 0)
		return -1;
	return 0;
}

/* 'name': 1 to sizeof m->name - 1 characters */
static int parse_name(struct model *m, const struct ynode *n, char *err, size_t errlen)
{
	const char *s;
	if (ynode_string(n, "name", &s, err, errlen) < 0)
		return -1;
	if (strlen(s) >= sizeof m->name || !*s) {
		yerr(err, errlen, n, "invalid model name '%s' (1 to %zu characters)", s,
		     sizeof m->name - 1);
		return -1;
	}
	snprintf(m->name, sizeof m->name, "%s", s);
	return 0;
}

static int parse_combine(struct model *m, const struct ynode *n, char *err, size_t errlen)
{
	const char *s;
	if (ynode_string(n, "combine", &s, err, errlen) < 0)
		return -1;
	if (!strcmp(s, "max"))
		m->combine = COMBINE_MAX;
	else if (!strcmp(s, "noisy_or"))
		m->combine = COMBINE_NOISY_OR;
	else if (!strcmp(s, "mean"))
		m->combine = COMBINE_MEAN;
	else if (!strcmp(s, "min"))
		m->combine = COMBINE_MIN;
	else {
		yerr(err, errlen, n, "invalid value '%s' for 'combine' (max, noisy_or, mean, min)", s);
		return -1;
	}
	return 0;
}

/* the 'likelihood' map (model.md) */
static int parse_likelihood(struct model *m, const struct ynode *n, char *err, size_t errlen)
{
	static const char *const lk[] = { "enabled", "window", "halflife", "min_std", "instant",
		                          "raw_scale", "tail", "min_samples", "decades",
		                          "calibrate", "clip", "single_for", "single_floor", NULL };
	if (n->type != Y_MAP) {
		yerr(err, errlen, n, "'likelihood' must be a map");
		return -1;
	}
	if (ymap_check_keys(n, lk, err, errlen) < 0)
		return -1;
	const struct ynode *v;
	const char *s;
	double d;
	if ((v = ymap_get(n, "enabled")) && ynode_bool(v, "enabled", &m->lk_enabled, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "clip")) &&
	    read_range(v, "clip", 0, 100, &m->lk_clip, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "single_for"))) {
		if (read_range(v, "single_for", 0, 1e9, &d, err, errlen) < 0)
			return -1;
		m->lk_single_for = (uint32_t)d;
	}
	if ((v = ymap_get(n, "single_floor")) &&
	    read_range(v, "single_floor", 0, 100, &m->lk_single_floor, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "calibrate")) &&
	    read_range(v, "calibrate", 0, 0.5, &m->lk_qref, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "decades")) &&
	    read_range(v, "decades", 1, 300, &m->lk_decades, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "min_samples"))) {
		if (read_range(v, "min_samples", 1, 1e6, &d, err, errlen) < 0)
			return -1;
		m->lk_min_n = (uint32_t)d;
	}
	if ((v = ymap_get(n, "tail"))) {
		if (ynode_string(v, "tail", &s, err, errlen) < 0)
			return -1;
		if (!strcmp(s, "gaussian"))
			m->lk_exp_tail = 0;
		else if (!strcmp(s, "exponential"))
			m->lk_exp_tail = 1;
		else {
			yerr(err, errlen, v, "invalid value '%s' for 'tail' (gaussian, exponential)", s);
			return -1;
		}
	}
	if ((v = ymap_get(n, "raw_scale")) &&
	    read_range(v, "raw_scale", 1e-6, 1e6, &m->raw_scale, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "instant")) && ynode_bool(v, "instant", &m->lk_instant, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "window"))) {
		if (read_range(v, "window", 1, LK_MAX_WINDOW, &d, err, errlen) < 0)
			return -1;
		m->lk_window = (int)d;
	}
	if ((v = ymap_get(n, "halflife")) &&
	    read_range(v, "halflife", 10, 1e7, &m->lk_halflife, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "min_std")) &&
	    read_range(v, "min_std", 1e-6, 10, &m->lk_min_std, err, errlen) < 0)
		return -1;
	return 0;
}

/* warmup, suppression and hysteresis keys at the top level */
static int parse_gating(struct model *m, const struct ynode *root, char *err, size_t errlen)
{
	const struct ynode *n;
	double d;
	if ((n = ymap_get(root, "warmup"))) {
		if (read_range(n, "warmup", 0, 1e7, &d, err, errlen) < 0)
			return -1;
		m->warmup = (uint32_t)d;
	}
	if (parse_duration_key(root, "warmup_for", &m->warmup_ms, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "suppress"))) {
		if (read_range(n, "suppress", 0, 1e7, &d, err, errlen) < 0)
			return -1;
		m->suppress = (uint32_t)d;
	}
	if (parse_duration_key(root, "suppress_for", &m->suppress_ms, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "suppress_frac")) &&
	    read_range(n, "suppress_frac", 0, 1, &m->suppress_frac, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "suppress_max")) &&
	    read_range(n, "suppress_max", 0, 1e7, &m->suppress_max, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "hold")) && read_range(n, "hold", 0, 1, &m->hold, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "arm")) && read_range(n, "arm", 0, 1, &m->arm, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "refire")) &&
	    read_range(n, "refire", 0, 100, &m->refire, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "renew")) && ynode_bool(n, "renew", &m->renew, err, errlen) < 0)
		return -1;
	return 0;
}

/* the 'alert' map: thresholds, for/resolve durations, severity */
static int parse_alert(struct model *m, const struct ynode *n, char *err, size_t errlen)
{
	static const char *const al[] = { "threshold", "clear_threshold", "for", "resolve",
		                          "severity", NULL };
	if (n->type != Y_MAP) {
		yerr(err, errlen, n, "'alert' must be a map");
		return -1;
	}
	if (ymap_check_keys(n, al, err, errlen) < 0)
		return -1;
	const struct ynode *v;
	const char *s;
	if ((v = ymap_get(n, "threshold")) &&
	    read_range(v, "threshold", 0, 1, &m->alert.threshold, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "clear_threshold")) &&
	    read_range(v, "clear_threshold", 0, 1, &m->alert.clear_threshold, err, errlen) < 0)
		return -1;
	if (m->alert.clear_threshold > m->alert.threshold) {
		yerr(err, errlen, v ? v : n, "'clear_threshold' %g is above 'threshold' %g",
		     m->alert.clear_threshold, m->alert.threshold);
		return -1;
	}
	if (parse_duration_key(n, "for", &m->alert.for_ms, err, errlen) < 0 ||
	    parse_duration_key(n, "resolve", &m->alert.resolve_ms, err, errlen) < 0)
		return -1;
	if ((v = ymap_get(n, "severity"))) {
		if (ynode_string(v, "severity", &s, err, errlen) < 0)
			return -1;
		if (!*s || strlen(s) >= sizeof m->severity) {
			yerr(err, errlen, v, "invalid severity '%s' (1 to %zu characters)", s,
			     sizeof m->severity - 1);
			return -1;
		}
		snprintf(m->severity, sizeof m->severity, "%s", s);
	}
	return 0;
}

/* the keys are read in this order, so the first error reported stays the same */
static int parse_model(struct model *m, const struct ynode *root, char *err, size_t errlen)
{
	static const char *const top[] = { "name", "components", "combine", "likelihood", "warmup",
		                           "suppress", "suppress_for", "hold", "refire", "alert",
		                           "suppress_frac", "suppress_max", "arm", "warmup_for", "renew",
		                           NULL };
	if (root->type != Y_MAP) {
		yerr(err, errlen, root, "a model must be a map");
		return -1;
	}
	if (ymap_check_keys(root, top, err, errlen) < 0)
		return -1;
	const struct ynode *n;
	if ((n = ymap_get(root, "name")) && parse_name(m, n, err, errlen) < 0)
		return -1;
	n = ymap_get(root, "components");
	if (!n) {
		yerr(err, errlen, root, "missing 'components'");
		return -1;
	}
	if (n->type != Y_SEQ || n->n == 0) {
		yerr(err, errlen, n, "'components' must be a non-empty list");
		return -1;
	}
	for (size_t i = 0; i < n->n; i++)
		if (parse_component(m, n->items[i], err, errlen) < 0)
			return -1;
	if ((n = ymap_get(root, "combine")) && parse_combine(m, n, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "likelihood")) && parse_likelihood(m, n, err, errlen) < 0)
		return -1;
	if (parse_gating(m, root, err, errlen) < 0)
		return -1;
	if ((n = ymap_get(root, "alert")) && parse_alert(m, n, err, errlen) < 0)
		return -1;
	return 0;
}

static void model_defaults(struct model *m)
{
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "unnamed");
	m->combine = COMBINE_MAX;
	m->lk_enabled = 1;
	m->lk_window = 10;
	m->lk_halflife = 2000;
	m->lk_min_std = 0.05;
	m->raw_scale = 6;
	m->lk_min_n = 1;
	m->lk_decades = 10;
	m->warmup = 150;
	m->suppress = 200;
	m->hold = 0.45;
	m->suppress_max = 1e7;
	m->alert.threshold = 0.5;
	m->alert.clear_threshold = 0.4;
	m->alert.for_ms = 0; /* the detection fires; the hold keeps it open (alert.h) */
	m->alert.resolve_ms = 300000;
	snprintf(m->severity, sizeof m->severity, "warning");
}

static struct model *model_from_tree(const struct ynode *root, char *err, size_t errlen)
{
	struct model *m = malloc(sizeof *m);
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	model_defaults(m);
	if (parse_model(m, root, err, errlen) < 0) {
		free(m);
		return NULL;
	}
	if (m->arm > m->alert.threshold) {
		yerr(err, errlen, ymap_get(root, "arm"),
		     "'arm' %g must not be above the alert threshold %g", m->arm, m->alert.threshold);
		free(m);
		return NULL;
	}
	if (m->arm <= 0)
		m->arm = m->alert.threshold;
	if (m->hold >= m->arm && m->suppress > 0) {
		yerr(err, errlen, ymap_get(root, "hold") ? ymap_get(root, "hold") : root,
		     "'hold' %g must be below the alert threshold and 'arm' %g", m->hold, m->arm);
		free(m);
		return NULL;
	}
	model_finish(m);
	return m;
}

struct model *model_load_string(const char *yaml, size_t len, const char *name, char *err,
                                size_t errlen)
{
	struct ynode *root = ytree_load_string(yaml, len, name, err, errlen);
	if (!root)
		return NULL;
	struct model *m = model_from_tree(root, err, errlen);
	ytree_free(root);
	return m;
}

struct model *model_load_file(const char *path, char *err, size_t errlen)
{
	struct ynode *root = ytree_load_file(path, err, errlen);
	if (!root)
		return NULL;
	struct model *m = model_from_tree(root, err, errlen);
	ytree_free(root);
	return m;
}

struct model *model_builtin_default(void)
{
	char err[256];
	struct model *m = model_load_string(builtin_yaml, sizeof builtin_yaml - 1, "<builtin>", err,
	                                    sizeof err);
	if (!m) {
		/* The embedded text is tested; this is a programming error. */
		log_msg(LOG_ERROR, "event=builtin_model_invalid error=\"%s\"", err);
		abort();
	}
	return m;
}
