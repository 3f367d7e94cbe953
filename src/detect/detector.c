/* detect/detector.c — detector models: YAML loading, per-series state layout and the
 * scoring pipeline (components -> anomaly likelihood -> ensemble -> alert
 * suppression). Components live in src/detect/, behind detect/detectors.h.
 *
 * Pipeline for one sample (all O(1), no allocation):
 *   1. sampling-interval estimate and elapsed "steps" (gaps count as time);
 *   2. each component scores the sample (raw >= 0) and learns from it;
 *   3. each raw score goes through its own anomaly-likelihood stage: a short
 *      moving average of log(1 + raw) compared with the long-run Gaussian of
 *      that average; the tail probability Q is log-scaled to [0,1];
 *   4. the ensemble takes the weighted max (or noisy-OR / mean);
 *   5. warm-up forces 0; after a detection (score >= `arm`, by default the
 *      alert threshold) the
 *      score is capped at `hold` for `suppress` samples, so one event gives
 *      one detection while a sustained anomaly still stays above
 *      clear_threshold (see docs/detectors.md).
 */
#include "config.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detector.h"
#include "detect/detectors.h"
#include "util/log.h"
#include "util/yaml_tree.h"

#define MAX_COMPONENTS 6
#define LK_MAX_WINDOW 16
#define STATE_VERSION 5u
#define WARM_MIN_SAMPLES 30 /* a warm-up that ends by event time lasts at least this */

enum combine_mode { COMBINE_MAX, COMBINE_NOISY_OR, COMBINE_MEAN, COMBINE_MIN };

struct comp_inst {
	const struct comp_kind *kind;
	double p[DET_MAX_PARAMS];
	double weight;
	size_t off;    /* offset of the component's own state in the block */
	size_t lk_off; /* offset of its likelihood state */
};

struct model {
	char name[64];
	struct comp_inst comp[MAX_COMPONENTS];
	int ncomp;
	enum combine_mode combine;
	/* likelihood stage */
	int lk_enabled;
	int lk_window;        /* short moving average, samples */
	double lk_halflife;   /* long-run Gaussian, samples */
	double lk_min_std;    /* floor on its standard deviation */
	int lk_instant;       /* also score the single sample (spikes) */
	int lk_exp_tail;      /* exponential instead of Gaussian tail */
	uint32_t lk_min_n;    /* samples learnt before it scores */
	double lk_decades;    /* tail probability 10^-decades scores 1 */
	double lk_qref;       /* calibration level (0: no calibration) */
	double lk_log_qref;   /* log(lk_qref) */
	double lk_alpha;      /* det_alpha(lk_halflife, 1), computed once (model_finish) */
	double lk_clip;       /* Huber clip of the long-run estimates, in sd (0: off) */
	size_t lk_size;       /* bytes of one component's likelihood state (model_finish) */
	size_t lk_cold_off;   /* offset of its struct lk_cold (0: none) */
	double raw_scale;     /* without likelihood: score = raw / (raw + raw_scale) */
	/* post-processing */
	uint32_t warmup;      /* samples scored 0 */
	int64_t warmup_ms;    /* or less: this much event time (0: off) */
	uint32_t suppress;    /* samples capped after a detection */
	int64_t suppress_ms;  /* and/or event time capped after a detection */
	double suppress_frac; /* and/or this fraction of the samples seen so far */
	double suppress_max;  /* cap of the fractional suppression, samples */
	double hold;          /* cap during suppression */
	double refire;        /* re-detect during suppression if evidence grows this much (0: never) */
	double arm;           /* a score >= arm starts a suppression (0: the alert threshold) */
	struct model_alerting alert;
	char severity[32];
	size_t state_size;
	uint64_t fingerprint;
};

/* Per-series header; component and likelihood blocks follow, 8-aligned. */
struct model_hdr {
	int64_t last_ts;
	float interval;      /* typical sampling interval, ms */
	uint32_t n;          /* samples seen */
	uint32_t since_fire; /* samples since the last detection (UINT32_MAX: none) */
	float fire_z;        /* evidence (likelihood z) of the last detection */
	int64_t fire_ts;     /* event time of the last detection */
	int32_t fire_dir;    /* direction of the last detection (+1/-1, 0 unknown) */
	float fire_ref;      /* halfway between the expected value and the band edge that
	                      * was crossed, at the last detection (NAN if unknown) */
};

/* Likelihood state of one component. The fields read and written on every
 * sample come first and are followed by the moving-average ring, sized by
 * the model's window (lk_window floats), so with the default window the
 * whole per-sample part is 44 bytes. The fields of the optional stages
 * (instant scoring, exponential tail) follow the ring, only when the model
 * uses them (struct lk_cold, at model->lk_cold_off). Each component's
 * likelihood state sits right before the component's own state, so the two
 * share cache lines (packing all of them behind the header measured 10%
 * slower at 100k series). */
struct lk_state {
	double mean, var;       /* long-run Gaussian of the moving average */
	float sum;              /* of the ring */
	float rate;             /* observed rate of tail probabilities below lk_qref */
	uint16_t pos, len;
	uint32_t n;
	float ring[];           /* lk_window entries */
};

struct lk_cold {
	double mean1, var1;     /* long-run Gaussian of single samples */
	float ex, px;           /* exponential tail: mean excess over the mean, P(above) */
};

static const struct comp_kind *const kinds[] = { &comp_level, &comp_seasonal, &comp_context,
	                                         &comp_cusum, &comp_volatility, &comp_record, NULL };

/* The built-in default; models/default.yml must say the same (a unit test
 * compares fingerprints). */
static const char builtin_yaml[] =
	"name: default\n"
	"components:\n"
	"  - kind: seasonal\n"
	"    weekday: true\n"
	"  - kind: level\n"
	"    log: true\n"
	"  - kind: cusum\n"
	"    halflife: 512\n"
	"  - kind: record\n"
	"    halflife: 8000\n"
	"combine: max\n"
	"likelihood:\n"
	"  window: 3\n"
	"  halflife: 4000\n"
	"  min_std: 0.05\n"
	"  min_samples: 100\n"
	"  decades: 11.5\n"
	"  calibrate: 0.001\n"
	"warmup: 150\n"
	"suppress: 100\n"
	"suppress_frac: 0.04\n"
	"suppress_max: 1000\n"
	"hold: 0.4\n"
	"refire: 1.5\n"
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
		off += m->lk_size;
		c->off = off;
		off = align8(off + c->kind->state_size(c->p));
		h = fnv(h, c->kind->name, strlen(c->kind->name));
		h = fnv(h, c->p, sizeof c->p);
		h = fnv(h, &c->weight, sizeof c->weight);
	}
	m->state_size = off;
	m->lk_log_qref = m->lk_qref > 0 ? log(m->lk_qref) : 0;
	m->lk_alpha = det_alpha(m->lk_halflife, 1);
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
	h = fnv(h, &m->refire, sizeof m->refire);
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
		yerr(err, errlen, kn, "unknown component kind '%s' (known: level, seasonal, context, cusum, volatility, record)",
		     kname);
		return -1;
	}
	if (m->ncomp >= MAX_COMPONENTS) {
		yerr(err, errlen, n, "too many components (at most %d)", MAX_COMPONENTS);
		return -1;
	}
	const char *allowed[DET_MAX_PARAMS + 3];
	size_t na = 0;
	allowed[na++] = "kind";
	allowed[na++] = "weight";
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

static int parse_model(struct model *m, const struct ynode *root, char *err, size_t errlen)
{
	static const char *const top[] = { "name", "components", "combine", "likelihood", "warmup",
		                           "suppress", "suppress_for", "hold", "refire", "alert",
		                           "suppress_frac", "suppress_max", "arm", "warmup_for", NULL };
	if (root->type != Y_MAP) {
		yerr(err, errlen, root, "a model must be a map");
		return -1;
	}
	if (ymap_check_keys(root, top, err, errlen) < 0)
		return -1;
	const struct ynode *n;
	const char *s;
	double d;

	if ((n = ymap_get(root, "name"))) {
		if (ynode_string(n, "name", &s, err, errlen) < 0)
			return -1;
		if (strlen(s) >= sizeof m->name || !*s) {
			yerr(err, errlen, n, "invalid model name '%s' (1 to %zu characters)", s,
			     sizeof m->name - 1);
			return -1;
		}
		snprintf(m->name, sizeof m->name, "%s", s);
	}
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

	if ((n = ymap_get(root, "combine"))) {
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
	}
	if ((n = ymap_get(root, "likelihood"))) {
		static const char *const lk[] = { "enabled", "window", "halflife", "min_std", "instant",
			                          "raw_scale", "tail", "min_samples", "decades",
			                          "calibrate", "clip", NULL };
		if (n->type != Y_MAP) {
			yerr(err, errlen, n, "'likelihood' must be a map");
			return -1;
		}
		if (ymap_check_keys(n, lk, err, errlen) < 0)
			return -1;
		const struct ynode *v;
		if ((v = ymap_get(n, "enabled")) && ynode_bool(v, "enabled", &m->lk_enabled, err, errlen) < 0)
			return -1;
		if ((v = ymap_get(n, "clip")) &&
		    read_range(v, "clip", 0, 100, &m->lk_clip, err, errlen) < 0)
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
	}
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

	if ((n = ymap_get(root, "alert"))) {
		static const char *const al[] = { "threshold", "clear_threshold", "for", "resolve",
			                          "severity", NULL };
		if (n->type != Y_MAP) {
			yerr(err, errlen, n, "'alert' must be a map");
			return -1;
		}
		if (ymap_check_keys(n, al, err, errlen) < 0)
			return -1;
		const struct ynode *v;
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
	}
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

void model_free(struct model *m)
{
	free(m);
}

const char *model_name(const struct model *m)
{
	return m->name;
}

const struct model_alerting *model_alerting(const struct model *m)
{
	return &m->alert;
}

double model_hold(const struct model *m)
{
	return m->hold;
}

uint64_t model_fingerprint(const struct model *m)
{
	return m->fingerprint;
}

size_t model_state_size(const struct model *m)
{
	return m->state_size;
}

void model_state_init(const struct model *m, void *state)
{
	memset(state, 0, m->state_size);
	struct model_hdr *h = state;
	h->since_fire = UINT32_MAX;
	for (int i = 0; i < m->ncomp; i++)
		m->comp[i].kind->init(m->comp[i].p, (char *)state + m->comp[i].off);
}

/* ---- scoring ------------------------------------------------------------- */

/* Log-scaled tail probability: q = 10^-decades maps to 1, q = 1/2 to ~0.
 * For large z, log q ~ -z^2/2, computed without underflow. */
static double log_tail(double z)
{
	if (z < 30)
		return log(0.5 * erfc(z * M_SQRT1_2));
	return -0.5 * z * z - log(z * sqrt(2 * M_PI));
}

static double tail_score(double z, double decades)
{
	if (z <= 0)
		return 0;
	double lq = log_tail(z);
	double sc = -lq / (decades * M_LN10);
	return sc > 1 ? 1 : sc;
}

/* Gaussian z whose upper tail probability is exp(lq), for lq < log(1/2):
 * inverse of the tail by Newton steps on the log tail (a few iterations). */
static double q_to_z(double lq)
{
	double z = sqrt(-2 * lq); /* good start for small q */
	for (int i = 0; i < 4; i++) {
		double q = 0.5 * erfc(z * M_SQRT1_2);
		if (q <= 0)
			break;
		double pdf = exp(-0.5 * z * z) / sqrt(2 * M_PI);
		/* d log q / dz = -pdf / q */
		z += (log(q) - lq) * q / pdf;
		if (z < 0)
			z = 0;
	}
	return z;
}

/* alpha = det_alpha(halflife, 1), the weight once n reaches halflife */
static void gauss_learn(double *mean, double *var, uint32_t n, double halflife, double alpha,
                        double x, double clip, double min_std)
{
	if (n == 0) {
		*mean = x;
		*var = 0;
		return;
	}
	double a = n < halflife ? 1.0 / (n + 1) : alpha;
	double d = x - *mean;
	if (clip > 0 && n > 30) {
		/* Huber: an extreme value moves the estimate as if it were at
		 * clip standard deviations */
		double sd = sqrt(*var);
		if (sd < min_std)
			sd = min_std;
		if (d > clip * sd)
			d = clip * sd;
		else if (d < -clip * sd)
			d = -clip * sd;
	}
	*mean += a * d;
	*var = (1 - a) * (*var + a * d * d);
}

/* Anomaly likelihood of one component's raw score, in [0,1]; *zout is the
 * evidence in standard deviations of the long-run distribution. */
static double likelihood(const struct model *m, struct lk_state *s, double raw, int learn,
                         double *zout)
{
	/* u is kept as a float, so log1p, which is slow, is not needed: once
	 * raw >= 2^-10, log(1 + raw) is exact to well within float precision
	 * (the rounding of 1 + raw is 2^-53 absolute); below, four terms of the
	 * series are (relative error < raw^4 / 5 < 2^-42). Raw scores are often
	 * exactly 0. */
	float u = raw >= 0x1p-10 ? (float)log(1 + raw) :
	          (float)(raw * (1 - raw * (0.5 - raw * (1.0 / 3 - raw * 0.25))));
	int w = m->lk_window;
	if (s->len < w) {
		s->ring[s->len++] = u;
		s->sum += u;
	} else {
		s->sum += u - s->ring[s->pos];
		s->ring[s->pos] = u;
		s->pos = (uint16_t)((s->pos + 1) % w);
	}
	/* recompute now and then to cancel float drift */
	if (s->pos == 0) {
		float t = 0;
		for (int i = 0; i < s->len; i++)
			t += s->ring[i];
		s->sum = t;
	}
	double avg = (double)s->sum / s->len;
	struct lk_cold *cold = m->lk_cold_off ? (struct lk_cold *)((char *)s + m->lk_cold_off) : NULL;
	double z = 0;
	if (s->n >= m->lk_min_n) {
		double sd = sqrt(s->var);
		if (sd < m->lk_min_std)
			sd = m->lk_min_std;
		z = (avg - s->mean) / sd;
		if (m->lk_exp_tail) {
			/* P(avg > x) ~ px * exp(-(x - mean) / beta), beta = mean excess.
			 * Report it as the Gaussian z with the same tail probability. */
			double beta = cold->px > 0 ? (double)cold->ex / (double)cold->px : 0;
			if (beta < m->lk_min_std)
				beta = m->lk_min_std;
			double d = avg - s->mean;
			double lq = d > 0 ? log(cold->px > 0.01f ? (double)cold->px : 0.01) - d / beta : 0;
			z = lq < -0.7 ? q_to_z(lq) : 0;
		}
		if (m->lk_instant) {
			double sd1 = sqrt(cold->var1);
			if (sd1 < m->lk_min_std)
				sd1 = m->lk_min_std;
			double z1 = (u - cold->mean1) / sd1;
			if (z1 > z)
				z = z1;
		}
	}
	if (learn && m->lk_exp_tail) {
		double a = s->n < m->lk_halflife ? 1.0 / (s->n + 1) : m->lk_alpha;
		double d = avg - s->mean;
		cold->ex += (float)(a * ((d > 0 ? d : 0) - (double)cold->ex));
		cold->px += (float)(a * ((d > 0 ? 1.0 : 0.0) - (double)cold->px));
	}
	if (!learn) {
		*zout = 0;
		return 0;
	}
	gauss_learn(&s->mean, &s->var, s->n, m->lk_halflife, m->lk_alpha, avg, m->lk_clip,
	            m->lk_min_std);
	if (m->lk_instant)
		gauss_learn(&cold->mean1, &cold->var1, s->n, m->lk_halflife, m->lk_alpha, u, m->lk_clip,
		            m->lk_min_std);
	if (s->n < UINT32_MAX)
		s->n++;
	*zout = z;
	if (m->lk_qref > 0) {
		/* Calibrate the Gaussian tail with the observed frequency of tail
		 * events at level qref: if they happen c times more often than the
		 * model says, tail probabilities are c times larger (never smaller). */
		double lq = z > 0 ? log_tail(z) : log(0.5);
		if (s->rate <= 0)
			s->rate = (float)m->lk_qref;
		double c = (double)s->rate / m->lk_qref;
		if (c > 1)
			lq += log(c);
		double a = m->lk_alpha;
		s->rate += (float)(a * ((lq < m->lk_log_qref ? 1.0 : 0.0) - (double)s->rate));
		double sc = -lq / (m->lk_decades * M_LN10);
		return sc < 0 ? 0 : sc > 1 ? 1 : sc;
	}
	return tail_score(z, m->lk_decades);
}

const char *det_drop_name(enum det_drop d)
{
	switch (d) {
	case DET_DROP_NON_FINITE: return "non_finite";
	case DET_DROP_DUPLICATE: return "duplicate";
	case DET_DROP_OUT_OF_ORDER: return "out_of_order";
	default: return "";
	}
}

static void prefetch_range(const void *p, size_t n)
{
	const char *c = p;
	for (size_t off = 0; off < n; off += 64)
		__builtin_prefetch(c + off, 1);
	if (n)
		__builtin_prefetch(c + n - 1, 1);
}

void model_prefetch(const struct model *m, const void *state, int64_t ts_ms)
{
	const char *b = state;
	__builtin_prefetch(b, 1); /* struct model_hdr */
	for (int i = 0; i < m->ncomp; i++) {
		const struct comp_inst *ci = &m->comp[i];
		if (m->lk_enabled)
			prefetch_range(b + ci->lk_off, m->lk_size);
		if (ci->kind->prefetch)
			ci->kind->prefetch(ci->p, b + ci->off, ts_ms);
		else
			prefetch_range(b + ci->off, ci->kind->state_size(ci->p));
	}
}

static void comp_linear(struct comp_out *o)
{
	if (o->mag > 0) {
		o->expected = o->mag * sinh(o->expected);
		o->lower = o->mag * sinh(o->lower);
		o->upper = o->mag * sinh(o->upper);
		o->mag = 0;
	}
}

void model_update(const struct model *m, void *state, int64_t ts_ms, double value,
                  struct det_result *out)
{
	struct model_hdr *h = state;
	struct comp_ctx c;
	c.ts_ms = ts_ms;
	c.value = value;
	c.steps = 1;
	if (h->n > 0) {
		double dt = (double)(ts_ms - h->last_ts);
		if (dt < 1)
			dt = 1;
		if (h->interval <= 0)
			h->interval = (float)dt;
		c.steps = dt / (double)h->interval;
		if (c.steps < 1)
			c.steps = 1;
		else if (c.steps > 64)
			c.steps = 64;
		/* streaming median of the interval, in log space */
		if (dt > (double)h->interval)
			h->interval *= 1.02f;
		else if (dt < (double)h->interval)
			h->interval *= 0.98f;
	}
	h->last_ts = ts_ms;
	if (h->n < UINT32_MAX)
		h->n++;
	c.n = h->n;
	c.interval_ms = h->interval;
	/* Warm-up: `warmup` samples, or on a slow series `warmup_for` of event
	 * time (samples times the typical interval, so gaps do not count), with
	 * at least WARM_MIN_SAMPLES. The likelihood stages learn from halfway. */
	double age = (double)h->n * (double)h->interval;
	int warm = h->n > m->warmup ||
	           (m->warmup_ms > 0 && age >= (double)m->warmup_ms && h->n > WARM_MIN_SAMPLES);
	int learn = h->n > m->warmup / 2 ||
	            (m->warmup_ms > 0 && age >= 0.5 * (double)m->warmup_ms &&
	             h->n > WARM_MIN_SAMPLES / 2);

	double least = 2, bz = 0, best = -1, combined = 0, prod = 1, sum = 0, wsum = 0;
	int bi = 0, base = -1;
	struct comp_out o0 = { 0 }, ob = { 0 };
	for (int i = 0; i < m->ncomp; i++) {
		const struct comp_inst *ci = &m->comp[i];
		struct comp_out o = { 0, NAN, NAN, NAN, 0, 0 };
		ci->kind->update(ci->p, (char *)state + ci->off, &c, &o);
		double sc, z = o.raw;
		if (!isfinite(o.raw))
			sc = z = 0; /* not ready (or beyond float range): no score, no learning */
		else if (m->lk_enabled)
			sc = likelihood(m, (struct lk_state *)((char *)state + ci->lk_off), o.raw,
			                learn, &z);
		else
			sc = o.raw / (o.raw + m->raw_scale);
		sc *= ci->weight;
		if (sc > best) {
			best = sc;
			bz = z;
			bi = i;
			ob = o;
		}
		if (base < 0 && !isnan(o.expected)) {
			base = i;
			o0 = o;
		}
		if (sc < least)
			least = sc;
		prod *= 1 - sc;
		sum += sc;
		wsum += ci->weight;
	}
	/* the band of the outputs used below, back from asinh space */
	comp_linear(&ob);
	comp_linear(&o0);
	switch (m->combine) {
	case COMBINE_MAX:
		combined = best;
		break;
	case COMBINE_NOISY_OR:
		combined = 1 - prod;
		break;
	case COMBINE_MEAN:
		combined = wsum > 0 ? sum / wsum : 0;
		break;
	case COMBINE_MIN:
		combined = least;
		break;
	}
	if (!(combined >= 0))
		combined = 0; /* also NaN */
	if (combined > 1)
		combined = 1;
	if (!warm)
		combined = 0;

	/* one detection per event: cap for `suppress` samples after a detection */
	int dir = ob.direction ? ob.direction : (base >= 0 ? o0.direction : 0);
	/* suppression that grows with the history seen (capped): the longer a
	 * series has been watched, the longer one detection covers */
	double sup_frac = m->suppress_frac * (double)h->n;
	if (sup_frac > m->suppress_max)
		sup_frac = m->suppress_max;
	int in_sup = h->since_fire != UINT32_MAX &&
	             (h->since_fire < m->suppress || ts_ms - h->fire_ts < m->suppress_ms ||
	              (double)h->since_fire < sup_frac);
	if (in_sup &&
	    !(m->refire > 0 && combined >= m->arm && bz > m->refire * (double)h->fire_z)) {
		/* Suppressed: capped at `hold`, and held there while the sample is
		 * still outside the band on the side that fired (hysteresis for a
		 * sustained shift). */
		int persists;
		if (isnan(h->fire_ref))
			persists = dir != 0 && dir == h->fire_dir;
		else
			persists = h->fire_dir > 0 ? value > (double)h->fire_ref :
			           h->fire_dir < 0 ? value < (double)h->fire_ref : 0;
		if (combined > m->hold || persists)
			combined = m->hold;
		h->since_fire++;
	} else if (combined >= m->arm) {
		h->since_fire = 0;
		h->fire_ts = ts_ms;
		h->fire_z = (float)bz;
		h->fire_dir = dir;
		{
			const struct comp_out *f = !isnan(ob.expected) ? &ob : &o0;
			double edge = dir > 0 ? f->upper : f->lower;
			h->fire_ref = (dir != 0 && !isnan(f->expected) && !isnan(edge)) ?
			              (float)(0.5 * (f->expected + edge)) : NAN;
		}
	} else if (h->since_fire != UINT32_MAX) {
		h->since_fire++;
	}

	out->score = combined;
	out->component = m->comp[bi].kind->name;
	if (!isnan(ob.expected))
		o0 = ob;
	else if (base < 0)
		o0 = ob;
	out->expected = o0.expected;
	out->lower = o0.lower;
	out->upper = o0.upper;
	out->direction = dir;
}
