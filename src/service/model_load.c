/* service/model_load.c — loading `kind: service` YAML files into struct
 * svc_model, allocating a service's state, and carrying state over a reload
 * or a restart (services_adopt, services_restore_alert). */
#include "config.h"

#include "service/service.h"
#include "service/internal.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/selector.h"
#include "util/yaml_tree.h"

/* ---- model loading ---------------------------------------------------- */

static const char *const role_key[ROLE__COUNT] = { NULL,      "requests",   "errors", "total",
	                                           "latency", "saturation", "instances",
	                                           "error_ratio" };

static int load_selector(const struct ynode *n, const char *what, struct selector *sel, char *err,
                         size_t errlen)
{
	const char *s;
	if (ynode_string(n, what, &s, err, errlen) < 0)
		return -1;
	char e2[200];
	if (selector_parse(sel, s, e2, sizeof e2) < 0) {
		yerr(err, errlen, n, "invalid selector '%s' for '%s': %s", s, what, e2);
		return -1;
	}
	return 0;
}

static int get_duration(const struct ynode *map, const char *key, int64_t lo, int64_t hi,
                        int64_t *out, char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	int64_t v;
	if (ynode_duration_ms(n, key, &v, err, errlen) < 0)
		return -1;
	if (v < lo || v > hi) {
		yerr(err, errlen, n, "duration '%s' for '%s' out of range", n->scalar, key);
		return -1;
	}
	*out = v;
	return 0;
}

/* "99.9%" or 0.999 */
static int read_objective(const struct ynode *n, double *out, char *err, size_t errlen)
{
	if (!n || n->type != Y_SCALAR) {
		yerr(err, errlen, n, "invalid value for 'objective' (a percentage like 99.9%%)");
		return -1;
	}
	char buf[64];
	snprintf(buf, sizeof buf, "%s", n->scalar);
	size_t len = strlen(buf);
	int pct = len > 0 && buf[len - 1] == '%';
	if (pct)
		buf[len - 1] = 0;
	char *end;
	errno = 0;
	double v = strtod(buf, &end);
	if (end == buf || *end || errno || !isfinite(v)) {
		yerr(err, errlen, n, "invalid objective '%s'", n->scalar);
		return -1;
	}
	if (pct || v > 1)
		v /= 100;
	if (!(v > 0.5 && v < 1)) {
		yerr(err, errlen, n, "objective '%s' out of range (50%% < objective < 100%%)", n->scalar);
		return -1;
	}
	*out = v;
	return 0;
}

static int need_map(const struct ynode *n, const char *what, char *err, size_t errlen)
{
	if (n->type != Y_MAP) {
		yerr(err, errlen, n, "'%s' must be a map", what);
		return -1;
	}
	return 0;
}

static void model_defaults(struct svc_model *m)
{
	m->step_ms = 30 * MS_S;
	m->lag_steps = 1;
	m->stale_ms = 5 * MS_MIN;
	m->latency_scale = 1;
	m->slo_period_ms = 30 * MS_DAY;
	m->burn_min_errors = 5;
	m->lat_percentile = 99;
	m->er_window_ms = 5 * MS_MIN;
	m->er_alpha = 1e-6;
	m->er_min_errors = 5;
	m->er_min_factor = 2;
	m->er_floor = 1e-4;
	m->er_halflife_ms = 6 * MS_HOUR;
	m->util_limit = 0.9;
	m->risk_warning = 0.5;
	m->risk_critical = 0.8;
	m->eta_warning_ms = 30 * MS_MIN;
	m->horizon_ms = MS_HOUR;
	m->peak_horizon_ms = 6 * MS_HOUR;
	m->cap_eta_warning_ms = 20 * MS_MIN;
	m->sat_eta_warning_ms = 2 * MS_HOUR;
	m->reference_ms = MS_HOUR;
	m->trend_halflife_ms = 5 * MS_MIN;
	m->sat_halflife_ms = 30 * MS_MIN;
	/* workbook defaults: (long, short, burn, page?) */
	static const struct burn_window wb[4] = { { MS_HOUR, 5 * MS_MIN, 14.4, 1 },
		                                  { 6 * MS_HOUR, 30 * MS_MIN, 6, 1 },
		                                  { MS_DAY, 2 * MS_HOUR, 3, 0 },
		                                  { 3 * MS_DAY, 6 * MS_HOUR, 1, 0 } };
	m->nwin = 4;
	memcpy(m->win, wb, sizeof wb);
	static const char *const sev[AK__COUNT] = { "warning", "critical", "warning", "warning",
		                                    "critical" };
	for (int i = 0; i < AK__COUNT; i++) {
		snprintf(m->sev[i], sizeof m->sev[i], "%s", sev[i]);
		m->al[i].threshold = 0.5;
		m->al[i].clear_threshold = 0.4;
		m->al[i].for_ms = 2 * MS_MIN;
		m->al[i].resolve_ms = 10 * MS_MIN;
	}
	/* burn-rate alerts: the windows already smooth; fire at once */
	m->al[AK_BURN_PAGE].for_ms = m->al[AK_BURN_TICKET].for_ms = 0;
	/* the warning: held for a minute (the condition true throughout) */
	m->al[AK_RISK_WARNING].for_ms = MS_MIN;
	m->fast_ms = FAST_MS;
}

static int load_signals(struct svc_model *m, const struct ynode *sig, char *err, size_t errlen)
{
	static const char *const keys[] = { "requests",  "errors",    "total",       "latency",
		                            "saturation", "instances", "error_ratio", NULL };
	if (need_map(sig, "signals", err, errlen) < 0 || ymap_check_keys(sig, keys, err, errlen) < 0)
		return -1;
	for (int r = ROLE_REQUESTS; r < ROLE__COUNT; r++) {
		const struct ynode *n = ymap_get(sig, role_key[r]);
		if (!n)
			continue;
		if (r == ROLE_LATENCY && n->type == Y_MAP) {
			static const char *const lk[] = { "selector", "unit", "aggregate", NULL };
			if (ymap_check_keys(n, lk, err, errlen) < 0)
				return -1;
			const struct ynode *s = ymap_get(n, "selector");
			if (!s) {
				yerr(err, errlen, n, "missing 'selector' for 'latency'");
				return -1;
			}
			if (load_selector(s, "latency.selector", &m->sel[r], err, errlen) < 0)
				return -1;
			m->has[r] = 1;
			const struct ynode *u = ymap_get(n, "unit");
			if (u) {
				const char *us;
				if (ynode_string(u, "unit", &us, err, errlen) < 0)
					return -1;
				if (!strcmp(us, "s") || !strcmp(us, "seconds"))
					m->latency_scale = 1;
				else if (!strcmp(us, "ms") || !strcmp(us, "milliseconds"))
					m->latency_scale = 1e-3;
				else if (!strcmp(us, "us") || !strcmp(us, "microseconds"))
					m->latency_scale = 1e-6;
				else {
					yerr(err, errlen, u, "invalid unit '%s' for 'latency' (s, ms, us)", us);
					return -1;
				}
			}
			const struct ynode *a = ymap_get(n, "aggregate");
			if (a) {
				const char *as;
				if (ynode_string(a, "aggregate", &as, err, errlen) < 0)
					return -1;
				if (!strcmp(as, "max"))
					m->latency_mean = 0;
				else if (!strcmp(as, "mean"))
					m->latency_mean = 1;
				else {
					yerr(err, errlen, a, "invalid aggregate '%s' for 'latency' (max, mean)", as);
					return -1;
				}
			}
			continue;
		}
		if (r == ROLE_SATURATION) {
			const struct ynode *items = n;
			size_t cnt = n->type == Y_SEQ ? n->n : 1;
			if (cnt == 0 || cnt > SVC_MAX_SAT) {
				yerr(err, errlen, n, "'saturation' needs 1 to %d signals", SVC_MAX_SAT);
				return -1;
			}
			for (size_t i = 0; i < cnt; i++) {
				const struct ynode *it = n->type == Y_SEQ ? items->items[i] : n;
				struct sat_sig *ss = &m->sat[i];
				ss->limit = 1;
				if (it->type == Y_SCALAR) {
					if (load_selector(it, "saturation", &ss->sel, err, errlen) < 0)
						return -1;
				} else if (it->type == Y_MAP) {
					static const char *const sk[] = { "name", "selector", "limit", NULL };
					if (ymap_check_keys(it, sk, err, errlen) < 0)
						return -1;
					const struct ynode *s = ymap_get(it, "selector");
					if (!s) {
						yerr(err, errlen, it, "missing 'selector' for 'saturation'");
						return -1;
					}
					if (load_selector(s, "saturation.selector", &ss->sel, err, errlen) < 0)
						return -1;
					m->nsat = (int)i + 1; /* so a later error frees it */
					const struct ynode *l = ymap_get(it, "limit");
					if (l) {
						double v;
						int64_t b;
						if (l->type == Y_SCALAR && strpbrk(l->scalar, "KMGTkmgti") &&
						    ynode_bytes(l, "limit", &b, err, errlen) == 0)
							v = (double)b;
						else if (ynode_double(l, "limit", &v, err, errlen) < 0)
							return -1;
						if (!(v > 0)) {
							yerr(err, errlen, l, "limit %g for 'saturation' must be > 0", v);
							return -1;
						}
						ss->limit = v;
					}
					const struct ynode *nm = ymap_get(it, "name");
					if (nm) {
						const char *s2;
						if (ynode_string(nm, "name", &s2, err, errlen) < 0)
							return -1;
						snprintf(ss->name, sizeof ss->name, "%s", s2);
					}
				} else {
					yerr(err, errlen, it, "invalid 'saturation' entry (a selector or a map)");
					return -1;
				}
				if (!ss->name[0])
					snprintf(ss->name, sizeof ss->name, "saturation%zu", i);
				m->nsat = (int)i + 1;
			}
			m->has[r] = 1;
			continue;
		}
		if (load_selector(n, role_key[r], &m->sel[r], err, errlen) < 0)
			return -1;
		m->has[r] = 1;
	}
	if (!m->has[ROLE_REQUESTS]) {
		yerr(err, errlen, sig, "missing 'requests' in 'signals'");
		return -1;
	}
	return 0;
}

static int load_slos(struct svc_model *m, const struct ynode *slos, char *err, size_t errlen)
{
	static const char *const keys[] = { "availability", "latency", NULL };
	if (need_map(slos, "slos", err, errlen) < 0 || ymap_check_keys(slos, keys, err, errlen) < 0)
		return -1;
	const struct ynode *a = ymap_get(slos, "availability");
	if (a) {
		static const char *const ak[] = { "objective", "period", "windows", "min_errors", NULL };
		if (need_map(a, "availability", err, errlen) < 0 || ymap_check_keys(a, ak, err, errlen) < 0)
			return -1;
		const struct ynode *o = ymap_get(a, "objective");
		if (!o) {
			yerr(err, errlen, a, "missing 'objective' for 'availability'");
			return -1;
		}
		if (read_objective(o, &m->objective, err, errlen) < 0)
			return -1;
		if (get_duration(a, "period", MS_HOUR, 366 * MS_DAY, &m->slo_period_ms, err, errlen) < 0 ||
		    ymap_double_range(a, "min_errors", 0, 1e9, &m->burn_min_errors, err, errlen) < 0)
			return -1;
		const struct ynode *w = ymap_get(a, "windows");
		if (w) {
			if (w->type != Y_SEQ || w->n == 0 || w->n > SVC_MAX_WIN) {
				yerr(err, errlen, w, "'windows' must be a list of 1 to %d window pairs",
				     SVC_MAX_WIN);
				return -1;
			}
			for (size_t i = 0; i < w->n; i++) {
				const struct ynode *it = w->items[i];
				static const char *const wk[] = { "long", "short", "burn", "action", NULL };
				if (need_map(it, "windows", err, errlen) < 0 ||
				    ymap_check_keys(it, wk, err, errlen) < 0)
					return -1;
				struct burn_window *bw = &m->win[i];
				memset(bw, 0, sizeof *bw);
				if (!ymap_get(it, "long") || !ymap_get(it, "short") || !ymap_get(it, "burn")) {
					yerr(err, errlen, it, "a window pair needs 'long', 'short' and 'burn'");
					return -1;
				}
				if (get_duration(it, "long", MS_MIN, 30 * MS_DAY, &bw->long_ms, err, errlen) < 0 ||
				    get_duration(it, "short", MS_MIN, 30 * MS_DAY, &bw->short_ms, err, errlen) < 0 ||
				    ymap_double_range(it, "burn", 0.01, 1e6, &bw->factor, err, errlen) < 0)
					return -1;
				if (bw->short_ms > bw->long_ms) {
					yerr(err, errlen, it, "'short' window longer than 'long'");
					return -1;
				}
				bw->page = 1;
				const struct ynode *ac = ymap_get(it, "action");
				if (ac) {
					const char *s;
					if (ynode_string(ac, "action", &s, err, errlen) < 0)
						return -1;
					if (!strcmp(s, "page"))
						bw->page = 1;
					else if (!strcmp(s, "ticket"))
						bw->page = 0;
					else {
						yerr(err, errlen, ac, "invalid action '%s' (page, ticket)", s);
						return -1;
					}
				}
			}
			m->nwin = (int)w->n;
		}
	}
	const struct ynode *l = ymap_get(slos, "latency");
	if (l) {
		static const char *const lk[] = { "threshold", "percentile", NULL };
		if (need_map(l, "latency", err, errlen) < 0 || ymap_check_keys(l, lk, err, errlen) < 0)
			return -1;
		const struct ynode *t = ymap_get(l, "threshold");
		if (!t) {
			yerr(err, errlen, l, "missing 'threshold' for latency SLO");
			return -1;
		}
		int64_t ms;
		if (ynode_duration_ms(t, "threshold", &ms, err, errlen) < 0)
			return -1;
		if (ms <= 0) {
			yerr(err, errlen, t, "latency threshold must be > 0");
			return -1;
		}
		m->lat_threshold_s = (double)ms / 1000.0;
		if (ymap_double_range(l, "percentile", 1, 100, &m->lat_percentile, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int load_capacity(struct svc_model *m, const struct ynode *c, char *err, size_t errlen)
{
	static const char *const keys[] = { "total", "per_instance", "utilization_limit", NULL };
	if (need_map(c, "capacity", err, errlen) < 0 || ymap_check_keys(c, keys, err, errlen) < 0)
		return -1;
	if (ymap_double_range(c, "total", 1e-9, 1e12, &m->cap_total, err, errlen) < 0 ||
	    ymap_double_range(c, "per_instance", 1e-9, 1e12, &m->cap_per_instance, err, errlen) < 0 ||
	    ymap_double_range(c, "utilization_limit", 0.2, 1, &m->util_limit, err, errlen) < 0)
		return -1;
	if (m->cap_total == 0 && m->cap_per_instance == 0) {
		yerr(err, errlen, c, "'capacity' needs 'total' or 'per_instance'");
		return -1;
	}
	return 0;
}

static int load_detectors(struct svc_model *m, const struct ynode *d, char *err, size_t errlen)
{
	static const char *const keys[] = { "error_ratio", "overload", NULL };
	if (need_map(d, "detectors", err, errlen) < 0 || ymap_check_keys(d, keys, err, errlen) < 0)
		return -1;
	const struct ynode *e = ymap_get(d, "error_ratio");
	if (e) {
		static const char *const ek[] = { "window", "alpha", "min_errors", "min_factor",
			                          "floor", "halflife", NULL };
		if (need_map(e, "error_ratio", err, errlen) < 0 || ymap_check_keys(e, ek, err, errlen) < 0 ||
		    get_duration(e, "window", MS_S, 6 * MS_HOUR, &m->er_window_ms, err, errlen) < 0 ||
		    ymap_double_range(e, "alpha", 1e-300, 0.5, &m->er_alpha, err, errlen) < 0 ||
		    ymap_double_range(e, "min_errors", 0, 1e12, &m->er_min_errors, err, errlen) < 0 ||
		    ymap_double_range(e, "min_factor", 1, 1e6, &m->er_min_factor, err, errlen) < 0 ||
		    ymap_double_range(e, "floor", 0, 0.5, &m->er_floor, err, errlen) < 0 ||
		    get_duration(e, "halflife", MS_MIN, 30 * MS_DAY, &m->er_halflife_ms, err, errlen) < 0)
			return -1;
	}
	const struct ynode *o = ymap_get(d, "overload");
	if (o) {
		static const char *const ok[] = { "warning", "critical", "eta_warning", "horizon",
			                          "reference", "trend_halflife", "saturation_halflife", "peak_horizon",
			                          "capacity_eta_warning", "saturation_eta_warning",
			                          NULL };
		if (need_map(o, "overload", err, errlen) < 0 || ymap_check_keys(o, ok, err, errlen) < 0 ||
		    ymap_double_range(o, "warning", 0.01, 1, &m->risk_warning, err, errlen) < 0 ||
		    ymap_double_range(o, "critical", 0.01, 1, &m->risk_critical, err, errlen) < 0 ||
		    get_duration(o, "eta_warning", MS_MIN, MS_DAY, &m->eta_warning_ms, err, errlen) < 0 ||
		    get_duration(o, "horizon", MS_MIN, 7 * MS_DAY, &m->horizon_ms, err, errlen) < 0 ||
		    get_duration(o, "peak_horizon", 0, 7 * MS_DAY, &m->peak_horizon_ms, err, errlen) < 0 ||
		    get_duration(o, "capacity_eta_warning", MS_MIN, MS_DAY, &m->cap_eta_warning_ms, err,
		                 errlen) < 0 ||
		    get_duration(o, "saturation_eta_warning", MS_MIN, MS_DAY, &m->sat_eta_warning_ms, err,
		                 errlen) < 0 ||
		    get_duration(o, "reference", MS_MIN, MS_DAY, &m->reference_ms, err, errlen) < 0 ||
		    get_duration(o, "trend_halflife", MS_MIN, MS_DAY, &m->trend_halflife_ms, err,
		                 errlen) < 0 ||
		    get_duration(o, "saturation_halflife", MS_MIN, 7 * MS_DAY, &m->sat_halflife_ms, err,
		                 errlen) < 0)
			return -1;
		if (m->risk_critical < m->risk_warning) {
			yerr(err, errlen, o, "'critical' (%g) below 'warning' (%g)", m->risk_critical,
			     m->risk_warning);
			return -1;
		}
	}
	return 0;
}

static int load_alerting(struct svc_model *m, const struct ynode *a, char *err, size_t errlen)
{
	static const char *const keys[] = { "for", "resolve", "severities", "separate", "fast", NULL };
	if (need_map(a, "alerting", err, errlen) < 0 || ymap_check_keys(a, keys, err, errlen) < 0)
		return -1;
	const struct ynode *sep = ymap_get(a, "separate");
	if (sep) {
		const char *v;
		if (ynode_string(sep, "separate", &v, err, errlen) < 0)
			return -1;
		if (!strcmp(v, "true"))
			m->separate = 1;
		else if (!strcmp(v, "false"))
			m->separate = 0;
		else {
			yerr(err, errlen, sep, "invalid 'separate' '%s' (true or false)", v);
			return -1;
		}
	}
	if (get_duration(a, "fast", 0, MS_HOUR, &m->fast_ms, err, errlen) < 0)
		return -1;
	int64_t for_ms = -1, res_ms = -1;
	if (get_duration(a, "for", 0, MS_DAY, &for_ms, err, errlen) < 0 ||
	    get_duration(a, "resolve", 0, MS_DAY, &res_ms, err, errlen) < 0)
		return -1;
	for (int i = 0; i < AK__COUNT; i++) {
		if (for_ms >= 0 && i != AK_BURN_PAGE && i != AK_BURN_TICKET)
			m->al[i].for_ms = for_ms;
		if (res_ms >= 0)
			m->al[i].resolve_ms = res_ms;
	}
	const struct ynode *s = ymap_get(a, "severities");
	if (s) {
		static const char *const sk[] = { "error_ratio", "page", "ticket", "warning", "critical",
			                          NULL };
		if (need_map(s, "severities", err, errlen) < 0 || ymap_check_keys(s, sk, err, errlen) < 0)
			return -1;
		for (int i = 0; i < AK__COUNT; i++) {
			const struct ynode *v = ymap_get(s, sk[i]);
			if (!v)
				continue;
			const char *str;
			if (ynode_string(v, sk[i], &str, err, errlen) < 0)
				return -1;
			if (!*str || strlen(str) >= sizeof m->sev[i] || strpbrk(str, "\"\\")) {
				yerr(err, errlen, v, "invalid severity '%s'", str);
				return -1;
			}
			snprintf(m->sev[i], sizeof m->sev[i], "%s", str);
		}
	}
	return 0;
}

static void model_release(struct svc_model *m)
{
	for (int r = 0; r < ROLE__COUNT; r++)
		if (m->has[r] && r != ROLE_SATURATION)
			selector_free(&m->sel[r]);
	for (int i = 0; i < m->nsat; i++)
		selector_free(&m->sat[i].sel);
	if (m->has_scope)
		selector_free(&m->scope);
	free(m->name);
	free(m->file);
	memset(m, 0, sizeof *m);
}

static int valid_service_name(const char *s)
{
	if (!*s || strlen(s) > 100)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      *s == '_' || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

/* Parse one service document into m (defaults first). */
/* Does sel have the matcher name="value"? */
static int has_eq(const struct selector *sel, const struct matcher *q)
{
	for (size_t i = 0; i < sel->n; i++)
		if (sel->m[i].op == MATCH_EQ && !strcmp(sel->m[i].name, q->name) &&
		    !strcmp(sel->m[i].value, q->value))
			return 1;
	return 0;
}

/* The default scope: the name="value" matchers (other than the metric name)
 * that every signal selector has, e.g. {job="checkout"}. None in common: no
 * scope. Returns 0, or -1 out of memory. */
static int default_scope(struct svc_model *m)
{
	const struct selector *all[ROLE__COUNT + SVC_MAX_SAT];
	size_t n = 0;
	for (int r = 0; r < ROLE__COUNT; r++)
		if (m->has[r] && r != ROLE_SATURATION)
			all[n++] = &m->sel[r];
	for (int i = 0; i < m->nsat; i++)
		all[n++] = &m->sat[i].sel;
	if (!n)
		return 0;
	struct matcher *keep = calloc(all[0]->n ? all[0]->n : 1, sizeof *keep);
	if (!keep)
		return -1;
	size_t k = 0;
	for (size_t i = 0; i < all[0]->n; i++) {
		const struct matcher *q = &all[0]->m[i];
		if (q->op != MATCH_EQ || !strcmp(q->name, "__name__") || !*q->value)
			continue;
		int everywhere = 1;
		for (size_t j = 1; j < n && everywhere; j++)
			everywhere = has_eq(all[j], q);
		if (!everywhere)
			continue;
		keep[k].name = strdup(q->name);
		keep[k].value = strdup(q->value);
		keep[k].op = MATCH_EQ;
		if (!keep[k].name || !keep[k].value) {
			free(keep[k].name);
			free(keep[k].value);
			for (size_t j = 0; j < k; j++)
				free(keep[j].name), free(keep[j].value);
			free(keep);
			return -1;
		}
		k++;
	}
	if (!k) {
		free(keep);
		return 0;
	}
	m->scope.n = k;
	m->scope.m = keep;
	m->has_scope = 1;
	return 0;
}

static int model_parse(struct svc_model *m, const struct ynode *root, const char *path, char *err,
                       size_t errlen)
{
	static const char *const keys[] = { "kind", "name", "description", "step", "lag", "stale",
		                            "signals", "slos", "capacity", "detectors", "alerting",
		                            "scope", NULL };
	model_defaults(m);
	m->file = strdup(path);
	if (!m->file) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (need_map(root, "document", err, errlen) < 0 || ymap_check_keys(root, keys, err, errlen) < 0)
		return -1;
	const struct ynode *n = ymap_get(root, "name");
	const char *name;
	if (!n) {
		yerr(err, errlen, root, "missing 'name'");
		return -1;
	}
	if (ynode_string(n, "name", &name, err, errlen) < 0)
		return -1;
	if (!valid_service_name(name)) {
		yerr(err, errlen, n, "invalid service name '%s' (letters, digits, '_', '-', '.')", name);
		return -1;
	}
	m->name = strdup(name);
	if (!m->name) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if (get_duration(root, "step", MS_S, MS_HOUR, &m->step_ms, err, errlen) < 0 ||
	    get_duration(root, "stale", 0, MS_DAY, &m->stale_ms, err, errlen) < 0)
		return -1;
	if (MS_MIN % m->step_ms != 0 && m->step_ms % MS_MIN != 0) {
		yerr(err, errlen, ymap_get(root, "step"),
		     "step must divide a minute or be a whole number of minutes");
		return -1;
	}
	const struct ynode *lg = ymap_get(root, "lag");
	if (lg) {
		int64_t v;
		if (ynode_int(lg, "lag", &v, err, errlen) < 0)
			return -1;
		if (v < 0 || v > SVC_MAX_LAG) {
			yerr(err, errlen, lg, "lag %lld out of range [0, %d] (grid steps)", (long long)v,
			     SVC_MAX_LAG);
			return -1;
		}
		m->lag_steps = (int)v;
	}
	const struct ynode *sig = ymap_get(root, "signals");
	if (!sig) {
		yerr(err, errlen, root, "missing 'signals'");
		return -1;
	}
	if (load_signals(m, sig, err, errlen) < 0)
		return -1;
	const struct ynode *x;
	if ((x = ymap_get(root, "scope"))) {
		if (load_selector(x, "scope", &m->scope, err, errlen) < 0)
			return -1;
		m->has_scope = 1;
	} else if (default_scope(m) < 0) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	if ((x = ymap_get(root, "slos")) && load_slos(m, x, err, errlen) < 0)
		return -1;
	if ((x = ymap_get(root, "capacity")) && load_capacity(m, x, err, errlen) < 0)
		return -1;
	if ((x = ymap_get(root, "detectors")) && load_detectors(m, x, err, errlen) < 0)
		return -1;
	if ((x = ymap_get(root, "alerting")) && load_alerting(m, x, err, errlen) < 0)
		return -1;
	if (m->cap_per_instance > 0 && !m->has[ROLE_INSTANCES] && m->cap_total == 0) {
		yerr(err, errlen, ymap_get(root, "capacity"),
		     "'capacity.per_instance' needs 'signals.instances' (or give 'total')");
		return -1;
	}
	for (int i = 0; i < AK__COUNT; i++)
		m->al[i].severity = m->sev[i];
	m->al[AK_RISK_WARNING].threshold = m->risk_warning;
	m->al[AK_RISK_WARNING].clear_threshold = m->risk_warning * 0.8;
	m->al[AK_RISK_CRITICAL].threshold = m->risk_critical;
	m->al[AK_RISK_CRITICAL].clear_threshold = m->risk_critical * 0.8;
	return 0;
}

/* Allocate the runtime state of a parsed model. */
static int svc_alloc(struct svc *s, char *err, size_t errlen)
{
	const struct svc_model *m = &s->m;
	for (int i = 0; i < FC__COUNT; i++) {
		struct forecast_params *fp = &s->fp[i];
		forecast_params_default(fp);
		fp->min_step_ms = fp->max_step_ms = m->step_ms;
		fp->fit_horizon_ms = m->reference_ms;
		/* request rates scale with the daily cycle; decide it up front so
		 * the forecaster never switches (and relearns) mid-stream */
		fp->mode = i == FC_LOAD ? FORECAST_MODE_MULTIPLICATIVE : FORECAST_MODE_ADDITIVE;
	}
	s->fc_size = (forecast_state_size(&s->fp[0]) + 15) & ~(size_t)15;
	s->fcst = aligned_alloc(16, s->fc_size * FC__COUNT);
	int refok = 1;
	for (int j = 0; j < NREF; j++) {
		s->ref_steps[j] = m->reference_ms * (NREF - j) / NREF / m->step_ms;
		if (s->ref_steps[j] < 1)
			s->ref_steps[j] = 1;
		for (int i = 0; i < FC__COUNT; i++)
			if (!(s->ref[i][j] = calloc((size_t)s->ref_steps[j], sizeof(struct fc_ref))))
				refok = 0;
	}
	s->bb_ms = m->step_ms > MS_MIN ? m->step_ms : MS_MIN;
	int64_t longest = 0;
	for (int i = 0; i < m->nwin; i++)
		if (m->win[i].long_ms > longest)
			longest = m->win[i].long_ms;
	s->bb_n = (size_t)(longest / s->bb_ms + 2);
	s->bb_x = calloc(s->bb_n, sizeof(double));
	s->bb_n_ = calloc(s->bb_n, sizeof(double));
	s->er_steps = (size_t)(m->er_window_ms / m->step_ms);
	if (s->er_steps < 1)
		s->er_steps = 1;
	s->er_x = calloc(s->er_steps, sizeof(double));
	s->er_n = calloc(s->er_steps, sizeof(double));
	if (!s->fcst || !refok || !s->bb_x || !s->bb_n_ || !s->er_x ||
	    !s->er_n) {
		snprintf(err, errlen, "%s: out of memory", m->file);
		return -1;
	}
	for (int i = 0; i < FC__COUNT; i++) {
		forecast_state_init(&s->fp[i], s->fcst + i * s->fc_size);
		for (int j = 0; j < NREF; j++)
			for (int64_t q = 0; q < s->ref_steps[j]; q++)
				s->ref[i][j][q].k = INT64_MIN;
	}
	s->bb_cur = INT64_MIN;
	for (int i = 0; i < m->nwin; i++) {
		int64_t l = (m->win[i].long_ms + s->bb_ms - 1) / s->bb_ms;
		int64_t sh = (m->win[i].short_ms + s->bb_ms - 1) / s->bb_ms;
		s->bwin_len[i][0] = l < 1 ? 1 : l;
		s->bwin_len[i][1] = sh < 1 ? 1 : sh;
	}
	s->disp = 1;
	for (int i = 0; i < NDAYBIN; i++)
		s->day[i].bin = INT64_MIN;
	s->yday_mean = NAN;
	for (int i = 0; i < AK__COUNT; i++)
		alert_fsm_init(&s->fsm[i]);
	return 0;
}

static void svc_release(struct svc *s)
{
	model_release(&s->m);
	free(s->mem);
	free(s->mtab);
	free(s->fcst);
	for (int i = 0; i < FC__COUNT; i++)
		for (int j = 0; j < NREF; j++)
			free(s->ref[i][j]);
	free(s->bb_x);
	free(s->bb_n_);
	free(s->er_x);
	free(s->er_n);
}

void services_free(struct services *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		svc_release(&s->v[i]);
	free(s->v);
	free(s);
}

size_t services_count(const struct services *s)
{
	return s ? s->n : 0;
}

/* Is this document a service model? Returns 1, 0, or -1 (kind not a string). */
static int is_service_doc(const struct ynode *root)
{
	if (!root || root->type != Y_MAP)
		return 0;
	const struct ynode *k = ymap_get(root, "kind");
	return k && k->type == Y_SCALAR && !strcmp(k->scalar, "service");
}

static void fix_severity_pointers(struct svc_model *m);

/* Parse root into a new entry of set (which grows). */
static int add_service(struct services *set, const struct ynode *root, const char *path, char *err,
                       size_t errlen)
{
	struct svc *nv = realloc(set->v, (set->n + 1) * sizeof *nv);
	if (!nv) {
		snprintf(err, errlen, "%s: out of memory", path);
		return -1;
	}
	set->v = nv;
	struct svc *s = &set->v[set->n];
	memset(s, 0, sizeof *s);
	if (model_parse(&s->m, root, path, err, errlen) < 0 || svc_alloc(s, err, errlen) < 0) {
		svc_release(s);
		return -1;
	}
	for (size_t i = 0; i < set->n; i++)
		if (!strcmp(set->v[i].m.name, s->m.name)) {
			yerr(err, errlen, ymap_get(root, "name"),
			     "duplicate service name '%s' (also in %s)", s->m.name, set->v[i].m.file);
			svc_release(s);
			return -1;
		}
	set->n++;
	for (size_t i = 0; i < set->n; i++)
		fix_severity_pointers(&set->v[i].m); /* the array may have moved */
	return 0;
}

struct services *services_load_file(const char *path, char *err, size_t errlen)
{
	struct ynode *root = ytree_load_file(path, err, errlen);
	if (!root)
		return NULL;
	struct services *set = calloc(1, sizeof *set);
	if (!set) {
		ytree_free(root);
		snprintf(err, errlen, "%s: out of memory", path);
		return NULL;
	}
	if (!is_service_doc(root)) {
		yerr(err, errlen, root, "not a service model (needs 'kind: service')");
		goto fail;
	}
	if (add_service(set, root, path, err, errlen) < 0)
		goto fail;
	ytree_free(root);
	return set;
fail:
	ytree_free(root);
	services_free(set);
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

struct services *services_load_dir(const char *dir, char *err, size_t errlen)
{
	struct services *set = calloc(1, sizeof *set);
	if (!set) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	DIR *d = opendir(dir);
	if (!d) {
		snprintf(err, errlen, "unable to open models directory '%s': %s", dir, strerror(errno));
		free(set);
		return NULL;
	}
	char **names = NULL;
	size_t nn = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		if (de->d_name[0] == '.' || l < 5 ||
		    (strcmp(de->d_name + l - 4, ".yml") && strcmp(de->d_name + l - 5, ".yaml")))
			continue;
		if (nn == cap) {
			cap = cap ? cap * 2 : 16;
			char **t = realloc(names, cap * sizeof *t);
			if (!t) {
				rc = -1;
				break;
			}
			names = t;
		}
		if (!(names[nn] = strdup(de->d_name))) {
			rc = -1;
			break;
		}
		nn++;
	}
	closedir(d);
	if (rc < 0)
		snprintf(err, errlen, "out of memory");
	if (nn)
		qsort(names, nn, sizeof *names, cmp_str); /* deterministic order */
	for (size_t i = 0; rc == 0 && i < nn; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		struct ynode *root = ytree_load_file(path, err, errlen);
		if (!root) {
			/* a broken detector model is not ours to judge, but a broken
			 * file might have been a service: refuse it, keep the old set */
			rc = -1;
			break;
		}
		if (is_service_doc(root) && add_service(set, root, path, err, errlen) < 0)
			rc = -1;
		ytree_free(root);
	}
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	if (rc < 0) {
		services_free(set);
		return NULL;
	}
	return set;
}

/* ---- reload and restart ---------------------------------------------------- */

static struct svc *find_service(struct services *set, const char *name, size_t len)
{
	for (size_t i = 0; set && i < set->n; i++)
		if (strlen(set->v[i].m.name) == len && !memcmp(set->v[i].m.name, name, len))
			return &set->v[i];
	return NULL;
}

/* Same grid and windows: the learned state fits the new model. */
static int state_compatible(const struct svc_model *a, const struct svc_model *b)
{
	if (a->step_ms != b->step_ms || a->lag_steps != b->lag_steps ||
	    a->reference_ms != b->reference_ms || a->er_window_ms != b->er_window_ms ||
	    a->nwin != b->nwin || (a->objective > 0) != (b->objective > 0))
		return 0;
	for (int w = 0; w < a->nwin; w++)
		if (a->win[w].long_ms != b->win[w].long_ms || a->win[w].short_ms != b->win[w].short_ms)
			return 0;
	return 1;
}

static void fix_severity_pointers(struct svc_model *m)
{
	for (int i = 0; i < AK__COUNT; i++)
		m->al[i].severity = m->sev[i];
}

void services_adopt(struct services *nw, struct services *old)
{
	for (size_t i = 0; nw && old && i < nw->n; i++) {
		struct svc *n = &nw->v[i];
		struct svc *o = find_service(old, n->m.name, strlen(n->m.name));
		if (!o)
			continue;
		if (state_compatible(&n->m, &o->m)) {
			/* swap everything, then swap the models back: old keeps the
			 * fresh state (freed with it), new runs on what was learned */
			struct svc t = *n;
			*n = *o;
			*o = t;
			struct svc_model tm = n->m;
			n->m = o->m;
			o->m = tm;
			fix_severity_pointers(&n->m);
			fix_severity_pointers(&o->m);
		} else {
			memcpy(n->fsm, o->fsm, sizeof n->fsm);
			memcpy(n->peak, o->peak, sizeof n->peak);
			memcpy(n->peak_score, o->peak_score, sizeof n->peak_score);
		}
		log_msg(LOG_INFO, "event=service_reloaded service=%s state=%s", n->m.name,
		        state_compatible(&n->m, &o->m) ? "kept" : "alerts_only");
	}
}

int services_restore_alert(struct services *set, const char *key, enum alert_state st,
                           int64_t alert_id, int64_t active_at_ms, int64_t firing_at_ms,
                           double score)
{
	if (!set || !key || strncmp(key, "service:", 8))
		return -1;
	const char *name = key + 8;
	const char *colon = strchr(name, ':');
	if (!colon)
		return -1;
	struct svc *s = find_service(set, name, (size_t)(colon - name));
	if (!s)
		return -1;
	for (int a = 0; a < AK__COUNT; a++) {
		char want[96];
		snprintf(want, sizeof want, "%s%s", ak_alertname[a], ak_suffix[a]);
		if (strcmp(colon + 1, want))
			continue;
		if ((a == AK_BURN_PAGE || a == AK_BURN_TICKET) && s->m.objective <= 0)
			return -1;
		if (a != AK_RISK_WARNING && a != AK_RISK_CRITICAL && !s->m.separate)
			return -1; /* no longer its own alert: the caller ends it */
		return alert_fsm_restore(&s->fsm[a], st, alert_id, active_at_ms, firing_at_ms, score);
	}
	return -1;
}
