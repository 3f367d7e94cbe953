/* service.c — service models: loading `kind: service` YAML files, binding
 * series to (service, role), aggregating member series on an event-time grid
 * and running the service-level early-warning detectors (error ratio, SLO
 * burn rate, overload risk) with one alert state machine per alert kind.
 * The contract is in service.h; the mathematics in docs/outage-prediction.md.
 *
 * Memory: everything a service needs is allocated when the model is loaded,
 * except the member table, which grows when a new member series shows up
 * (once per series, never per sample). The burn-rate counters are a ring of
 * fixed-width time buckets covering the longest window (bounded memory).
 */
#include "config.h"

#include "service/service.h"

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

#define MS_S 1000LL
#define MS_MIN 60000LL
#define MS_HOUR 3600000LL
#define MS_DAY 86400000LL

#define SVC_MAX_SAT 8
#define SVC_SLOTS 8      /* per-member ring of grid buckets (lag + 2 at most) */
#define SVC_MAX_WIN 8    /* burn-rate window pairs */
#define SVC_MAX_LAG 6

/* Alert kinds: one alert_fsm each. */
enum { AK_ERROR_RATIO, AK_BURN_PAGE, AK_BURN_TICKET, AK_RISK_WARNING, AK_RISK_CRITICAL, AK__COUNT };
static const char *const ak_alertname[AK__COUNT] = { "ErrorRatio", "SLOBurnRate", "SLOBurnRate",
	                                             "OverloadRisk", "OverloadRisk" };
static const char *const ak_suffix[AK__COUNT] = { "", ":page", ":ticket", ":warning",
	                                          ":critical" };

/* Forecasted signals. */
enum { FC_LOAD, FC_LATENCY, FC_SAT, FC__COUNT };

/* Risk components (order used in explanations and JSON). */
enum { RC_LOAD, RC_CAPACITY, RC_HEADROOM, RC_LATENCY, RC_ERRORS, RC_SATURATION, RC__COUNT };
static const char *const rc_name[RC__COUNT] = { "load", "capacity", "headroom", "latency", "errors",
	                                        "saturation" };

struct sat_sig {
	char name[32];
	struct selector sel;
	double limit;            /* the value at which the resource is full */
};

struct burn_window {
	int64_t long_ms, short_ms;
	double factor;           /* burn rate both windows must reach */
	int page;                /* 1: page, 0: ticket */
};

/* Everything read from the YAML file; immutable after load. */
struct svc_model {
	char *name;
	char *file;
	int64_t step_ms;
	int lag_steps;           /* grid steps a late sample may still arrive */
	int64_t stale_ms;        /* a member without data this long stops counting */
	struct selector sel[ROLE__COUNT];
	int has[ROLE__COUNT];
	int nsat;
	struct sat_sig sat[SVC_MAX_SAT];
	double latency_scale;    /* latency value * scale = seconds */
	int latency_mean;        /* 1: mean over members, 0: max */
	/* SLOs */
	double objective;        /* availability, e.g. 0.999; 0 = none */
	int64_t slo_period_ms;
	int nwin;
	struct burn_window win[SVC_MAX_WIN];
	double burn_min_errors;
	double lat_threshold_s;  /* 0 = no latency SLO */
	double lat_percentile;
	/* capacity */
	double cap_total, cap_per_instance;
	double util_limit;       /* the knee: latency climbs steeply beyond this utilisation */
	/* error-ratio detector */
	int64_t er_window_ms;
	double er_alpha, er_min_errors, er_min_factor, er_floor;
	int64_t er_halflife_ms;
	/* overload risk */
	double risk_warning, risk_critical;
	int64_t eta_warning_ms, horizon_ms, reference_ms, trend_halflife_ms, sat_halflife_ms;
	int64_t peak_horizon_ms;
	int64_t cap_eta_warning_ms; /* eta_warning for the load reaching the knee */
	/* alerting */
	struct model_alerting al[AK__COUNT];
	char sev[AK__COUNT][24];
};

/* One member series. */
struct member {
	uint32_t series_idx;
	uint32_t roles;
	int64_t cf_k;            /* bucket of the carried-forward value; INT64_MIN = none */
	double cf_val;
	struct {
		int64_t k;
		double sum;
		uint32_t n;
	} slot[SVC_SLOTS];
};

/* Exponentially weighted linear regression y ~ a + b t on the grid (t in
 * steps, 0 = the newest step), for "at this rate" projections. */
struct trend {
	double s0, s1, s2, sy, sty, syy;
	uint32_t n;
};

/* Reference forecasts: for each step, the forecasts made reference_ms,
 * 2/3 and 1/3 of it earlier; their median is the expectation (one bad
 * forecast cannot raise an alarm, and a ramp of the last minutes is not yet
 * in the expectation). */
#define NREF 3

/* Exponentially weighted quadratic regression y ~ a + b t + c t^2 (t in
 * steps, 0 = newest): "bending upward" and where the bend leads. */
struct qtrend {
	double s[5];             /* sum w t^k, k = 0..4 */
	double y[3];             /* sum w t^k y, k = 0..2 */
	double yy;
	uint32_t n;
};

/* Seasonal-naive memory for the headroom check: 10-minute means of the
 * load over the last day. */
#define DAYBIN_MS (10 * MS_MIN)
#define NDAYBIN 144

struct daybin {
	int64_t bin;             /* floor(t / 10 min); INT64_MIN = empty */
	double sum;
	uint32_t n;
};

struct fc_ref {
	int64_t k;               /* grid bucket this reference forecast is for */
	double mean, hi95;
};

/* Snapshot of the last evaluated step, for JSON and explanations. */
struct snapshot {
	int64_t ts_ms;
	double req, total, err, lat_s, sat, inst, cap;
	int have_req, have_total, have_lat, have_sat, have_inst;
	int sat_sig;
	double req_ref, req_hi, lat_ref, lat_hi;
	double util, eta_cap_s, eta_lat_s, eta_sat_s, lat_slope_rel, req_slope_rel;
	double peak_req, peak_in_s;  /* forecast peak load within peak_horizon, and when */
	double er_x, er_n, er_ratio, er_base, er_log10p, er_score;
	double burn[SVC_MAX_WIN][2];
	double burn_score_page, burn_score_ticket;
	double comp[RC__COUNT];
	double risk;
};

struct svc {
	struct svc_model m;
	/* members: open addressing table series_idx -> member index + 1 */
	struct member *mem;
	size_t nmem, capmem;
	uint32_t *mtab;
	size_t mmask;
	/* grid */
	int started;
	int64_t next_close, wm_k;
	uint64_t late_dropped, steps, samples;
	/* forecasts */
	struct forecast_params fp[FC__COUNT];
	unsigned char *fcst;     /* FC__COUNT states of fc_size bytes */
	size_t fc_size;
	int64_t ref_steps[NREF];        /* lead of each reference, in steps */
	struct fc_ref *ref[FC__COUNT][NREF]; /* rings of ref_steps[j] */
	/* burn-rate counters */
	int64_t bb_ms;           /* bucket width */
	size_t bb_n;             /* ring length */
	double *bb_x, *bb_n_;    /* errors and requests per bucket */
	int64_t bb_cur;          /* newest bucket index; INT64_MIN = none yet */
	double bwin_x[SVC_MAX_WIN][2], bwin_n[SVC_MAX_WIN][2]; /* complete-bucket sums */
	int64_t bwin_len[SVC_MAX_WIN][2];                        /* in buckets */
	/* error ratio */
	size_t er_steps;
	double *er_x, *er_n;     /* rings of er_steps */
	double er_wx, er_wn;     /* window sums */
	int64_t er_k;            /* steps seen */
	double base_x, base_n, disp;
	/* trends */
	struct trend tr[FC__COUNT];
	struct qtrend qlat;      /* latency, quadratic */
	struct daybin day[NDAYBIN];
	double level_ratio;      /* EWMA of load / load a day ago (same 10 minutes) */
	double yday_mean;        /* yesterday's mean of the current 10 minutes */
	uint32_t level_ratio_n;
	struct snapshot snap;
	struct snapshot peak[AK__COUNT]; /* evidence at each alert's highest score */
	double peak_score[AK__COUNT];
	struct alert_fsm fsm[AK__COUNT];
};

struct services {
	size_t n;
	struct svc *v;
};

/* ---- small helpers --------------------------------------------------- */

static double clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* 0 at a, 1 at b, linear between. */
static double ramp(double x, double a, double b)
{
	if (!isfinite(x))
		return 0;
	return clamp01((x - a) / (b - a));
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* ---- model loading ---------------------------------------------------- */

static const char *const role_key[ROLE__COUNT] = { NULL,      "requests",   "errors", "total",
	                                           "latency", "saturation", "instances" };

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

static int get_double_range(const struct ynode *map, const char *key, double lo, double hi,
                            double *out, char *err, size_t errlen)
{
	const struct ynode *n = ymap_get(map, key);
	if (!n)
		return 0;
	double v;
	if (ynode_double(n, key, &v, err, errlen) < 0)
		return -1;
	if (!(v >= lo && v <= hi)) {
		yerr(err, errlen, n, "value %g for '%s' out of range [%g, %g]", v, key, lo, hi);
		return -1;
	}
	*out = v;
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
}

static int load_signals(struct svc_model *m, const struct ynode *sig, char *err, size_t errlen)
{
	static const char *const keys[] = { "requests", "errors",    "total", "latency",
		                            "saturation", "instances", NULL };
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
		    get_double_range(a, "min_errors", 0, 1e9, &m->burn_min_errors, err, errlen) < 0)
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
				    get_double_range(it, "burn", 0.01, 1e6, &bw->factor, err, errlen) < 0)
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
		if (get_double_range(l, "percentile", 1, 100, &m->lat_percentile, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static int load_capacity(struct svc_model *m, const struct ynode *c, char *err, size_t errlen)
{
	static const char *const keys[] = { "total", "per_instance", "utilization_limit", NULL };
	if (need_map(c, "capacity", err, errlen) < 0 || ymap_check_keys(c, keys, err, errlen) < 0)
		return -1;
	if (get_double_range(c, "total", 1e-9, 1e12, &m->cap_total, err, errlen) < 0 ||
	    get_double_range(c, "per_instance", 1e-9, 1e12, &m->cap_per_instance, err, errlen) < 0 ||
	    get_double_range(c, "utilization_limit", 0.2, 1, &m->util_limit, err, errlen) < 0)
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
		    get_double_range(e, "alpha", 1e-300, 0.5, &m->er_alpha, err, errlen) < 0 ||
		    get_double_range(e, "min_errors", 0, 1e12, &m->er_min_errors, err, errlen) < 0 ||
		    get_double_range(e, "min_factor", 1, 1e6, &m->er_min_factor, err, errlen) < 0 ||
		    get_double_range(e, "floor", 0, 0.5, &m->er_floor, err, errlen) < 0 ||
		    get_duration(e, "halflife", MS_MIN, 30 * MS_DAY, &m->er_halflife_ms, err, errlen) < 0)
			return -1;
	}
	const struct ynode *o = ymap_get(d, "overload");
	if (o) {
		static const char *const ok[] = { "warning", "critical", "eta_warning", "horizon",
			                          "reference", "trend_halflife", "saturation_halflife", "peak_horizon",
			                          "capacity_eta_warning",
			                          NULL };
		if (need_map(o, "overload", err, errlen) < 0 || ymap_check_keys(o, ok, err, errlen) < 0 ||
		    get_double_range(o, "warning", 0.01, 1, &m->risk_warning, err, errlen) < 0 ||
		    get_double_range(o, "critical", 0.01, 1, &m->risk_critical, err, errlen) < 0 ||
		    get_duration(o, "eta_warning", MS_MIN, MS_DAY, &m->eta_warning_ms, err, errlen) < 0 ||
		    get_duration(o, "horizon", MS_MIN, 7 * MS_DAY, &m->horizon_ms, err, errlen) < 0 ||
		    get_duration(o, "peak_horizon", 0, 7 * MS_DAY, &m->peak_horizon_ms, err, errlen) < 0 ||
		    get_duration(o, "capacity_eta_warning", MS_MIN, MS_DAY, &m->cap_eta_warning_ms, err,
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
	static const char *const keys[] = { "for", "resolve", "severities", NULL };
	if (need_map(a, "alerting", err, errlen) < 0 || ymap_check_keys(a, keys, err, errlen) < 0)
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
static int model_parse(struct svc_model *m, const struct ynode *root, const char *path, char *err,
                       size_t errlen)
{
	static const char *const keys[] = { "kind", "name", "description", "step", "lag", "stale",
		                            "signals", "slos", "capacity", "detectors", "alerting",
		                            NULL };
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

/* ---- binding ------------------------------------------------------------ */

uint32_t services_bind(const struct services *s, const struct labels *l, uint32_t *svc)
{
	if (!s)
		return 0;
	for (size_t i = 0; i < s->n; i++) {
		const struct svc_model *m = &s->v[i].m;
		uint32_t mask = 0;
		for (int r = ROLE_REQUESTS; r < ROLE__COUNT; r++) {
			if (r == ROLE_SATURATION || r == ROLE_TOTAL)
				continue;
			if (m->has[r] && selector_matches(&m->sel[r], l))
				mask |= 1u << r;
		}
		if (m->has[ROLE_TOTAL] ? selector_matches(&m->sel[ROLE_TOTAL], l)
		                       : (mask & (1u << ROLE_REQUESTS)) != 0)
			mask |= 1u << ROLE_TOTAL;
		for (int k = 0; k < m->nsat; k++)
			if (selector_matches(&m->sat[k].sel, l)) {
				mask |= (1u << ROLE_SATURATION) | ((uint32_t)k << SERVICE_SAT_SHIFT);
				break;
			}
		if (mask) {
			if (svc)
				*svc = (uint32_t)i;
			return mask;
		}
	}
	return 0;
}

/* ---- members -------------------------------------------------------------- */

static struct member *member_get(struct svc *s, uint32_t idx, uint32_t roles)
{
	if (s->mtab) {
		for (size_t i = (idx * 2654435761u) & s->mmask; s->mtab[i]; i = (i + 1) & s->mmask) {
			struct member *mb = &s->mem[s->mtab[i] - 1];
			if (mb->series_idx == idx)
				return mb;
		}
	}
	/* new member: grow the array and the table (once per series) */
	if (s->nmem == s->capmem) {
		size_t nc = s->capmem ? s->capmem * 2 : 16;
		struct member *nm = realloc(s->mem, nc * sizeof *nm);
		if (!nm)
			return NULL;
		s->mem = nm;
		s->capmem = nc;
	}
	if (!s->mtab || (s->nmem + 1) * 2 > s->mmask + 1) {
		size_t nc = s->mtab ? (s->mmask + 1) * 2 : 64;
		uint32_t *t = calloc(nc, sizeof *t);
		if (!t)
			return NULL;
		for (size_t k = 0; k < s->nmem; k++) {
			size_t i = (s->mem[k].series_idx * 2654435761u) & (nc - 1);
			while (t[i])
				i = (i + 1) & (nc - 1);
			t[i] = (uint32_t)(k + 1);
		}
		free(s->mtab);
		s->mtab = t;
		s->mmask = nc - 1;
	}
	struct member *mb = &s->mem[s->nmem];
	memset(mb, 0, sizeof *mb);
	mb->series_idx = idx;
	mb->roles = roles;
	mb->cf_k = INT64_MIN;
	for (int j = 0; j < SVC_SLOTS; j++)
		mb->slot[j].k = INT64_MIN;
	size_t i = (idx * 2654435761u) & s->mmask;
	while (s->mtab[i])
		i = (i + 1) & s->mmask;
	s->mtab[i] = (uint32_t)(++s->nmem);
	return mb;
}

/* ---- trend ------------------------------------------------------------- */

/* Advance one grid step (all past t shift by -1), decay, add y at t = 0. */
static void trend_add(struct trend *t, double decay, double y, int have)
{
	t->s2 = t->s2 - 2 * t->s1 + t->s0;
	t->s1 = t->s1 - t->s0;
	t->sty = t->sty - t->sy;
	t->s0 *= decay;
	t->s1 *= decay;
	t->s2 *= decay;
	t->sy *= decay;
	t->sty *= decay;
	t->syy *= decay;
	if (have && isfinite(y)) {
		t->s0 += 1;
		t->sy += y;
		t->syy += y * y;
		t->n++;
	}
}

/* Slope per step, level at t = 0, and the slope's t statistic. */
static int trend_fit(const struct trend *t, double *slope, double *level, double *tstat)
{
	double den = t->s0 * t->s2 - t->s1 * t->s1;
	if (t->n < 6 || t->s0 < 3 || !(den > 1e-9))
		return -1;
	double b = (t->s0 * t->sty - t->s1 * t->sy) / den;
	double a = (t->sy - b * t->s1) / t->s0;
	/* weighted residual sum of squares */
	double rss = t->syy - 2 * a * t->sy - 2 * b * t->sty + a * a * t->s0 + 2 * a * b * t->s1 +
	             b * b * t->s2;
	if (rss < 0)
		rss = 0;
	double sigma2 = rss / (t->s0 - 2 > 1 ? t->s0 - 2 : 1);
	double sxx = t->s2 - t->s1 * t->s1 / t->s0;
	double se = sqrt(sigma2 / sxx);
	*slope = b;
	*level = a;
	*tstat = se > 0 ? b / se : (b != 0 ? copysign(1e9, b) : 0);
	return 0;
}

/* Seconds until the trend reaches limit (going up), or NAN if it does not
 * rise significantly; 0 if already at or above the limit. */
static double trend_eta_s(const struct trend *t, double limit, double step_s, double min_t,
                          double cur)
{
	double b, a, ts;
	if (cur >= limit)
		return 0;
	if (trend_fit(t, &b, &a, &ts) < 0 || !(limit > 0) || !(b > 0) || ts < min_t)
		return NAN;
	/* from the fitted level, or from the value itself when the fit lags
	 * behind a fall */
	double from = a < limit ? a : cur;
	return (limit - from) / b * step_s;
}


static void qtrend_add(struct qtrend *q, double decay, double y, int have)
{
	double *S = q->s, *Y = q->y;
	double s1 = S[1] - S[0];
	double s2 = S[2] - 2 * S[1] + S[0];
	double s3 = S[3] - 3 * S[2] + 3 * S[1] - S[0];
	double s4 = S[4] - 4 * S[3] + 6 * S[2] - 4 * S[1] + S[0];
	double y1 = Y[1] - Y[0];
	double y2 = Y[2] - 2 * Y[1] + Y[0];
	S[1] = s1, S[2] = s2, S[3] = s3, S[4] = s4, Y[1] = y1, Y[2] = y2;
	for (int k = 0; k < 5; k++)
		S[k] *= decay;
	for (int k = 0; k < 3; k++)
		Y[k] *= decay;
	q->yy *= decay;
	if (have && isfinite(y)) {
		S[0] += 1;
		Y[0] += y;
		q->yy += y * y;
		q->n++;
	}
}

/* Seconds until the fitted parabola reaches limit, when its curvature is
 * positive and significant (t >= min_t); NAN otherwise. */
static double qtrend_eta_s(const struct qtrend *q, double limit, double step_s, double min_t)
{
	const double *S = q->s, *Y = q->y;
	if (q->n < 12 || S[0] < 6)
		return NAN;
	/* inverse of the symmetric 3x3 normal matrix by cofactors */
	double m00 = S[0], m01 = S[1], m02 = S[2], m11 = S[2], m12 = S[3], m22 = S[4];
	double c00 = m11 * m22 - m12 * m12, c01 = m02 * m12 - m01 * m22, c02 = m01 * m12 - m02 * m11;
	double c11 = m00 * m22 - m02 * m02, c12 = m01 * m02 - m00 * m12, c22 = m00 * m11 - m01 * m01;
	double det = m00 * c00 + m01 * c01 + m02 * c02;
	if (!(fabs(det) > 1e-9))
		return NAN;
	double a = (c00 * Y[0] + c01 * Y[1] + c02 * Y[2]) / det;
	double b = (c01 * Y[0] + c11 * Y[1] + c12 * Y[2]) / det;
	double c = (c02 * Y[0] + c12 * Y[1] + c22 * Y[2]) / det;
	double rss = q->yy - (a * Y[0] + b * Y[1] + c * Y[2]);
	if (rss < 0)
		rss = 0;
	double sigma2 = rss / (S[0] - 3 > 1 ? S[0] - 3 : 1);
	double var_c = sigma2 * c22 / det;
	if (!(c > 0) || !(var_c > 0) || c / sqrt(var_c) < min_t || a >= limit)
		return NAN;
	double disc = b * b + 4 * c * (limit - a);
	if (disc < 0)
		return NAN;
	double tau = (-b + sqrt(disc)) / (2 * c);
	return tau > 0 ? tau * step_s : NAN;
}

/* ---- error-ratio test -------------------------------------------------- */

/* log of the regularised incomplete beta I_x(a, b) by Lentz's continued
 * fraction (valid for x < (a+1)/(a+b+2)); NAN if it does not converge. */
static double log_ibeta_cf(double a, double b, double x)
{
	const double tiny = 1e-300;
	double qab = a + b, qap = a + 1, qam = a - 1;
	double c = 1, d = 1 - qab * x / qap;
	if (fabs(d) < tiny)
		d = tiny;
	d = 1 / d;
	double h = d;
	int m;
	for (m = 1; m <= 2000; m++) {
		int m2 = 2 * m;
		double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
		d = 1 + aa * d;
		if (fabs(d) < tiny)
			d = tiny;
		c = 1 + aa / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1 / d;
		h *= d * c;
		aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
		d = 1 + aa * d;
		if (fabs(d) < tiny)
			d = tiny;
		c = 1 + aa / c;
		if (fabs(c) < tiny)
			c = tiny;
		d = 1 / d;
		double del = d * c;
		h *= del;
		if (fabs(del - 1) < 1e-12)
			break;
	}
	if (m > 2000)
		return NAN;
	double lfront = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
	return lfront + log(h) - log(a);
}

/* log P(X >= x) for X ~ Binomial(n, p), continuous in x and n:
 * I_p(x, n - x + 1). Falls back to a normal tail for huge counts. */
static double log_binom_upper(double x, double n, double p)
{
	if (x <= 0 || n <= 0)
		return 0;
	if (x > n)
		x = n;
	if (p <= 0)
		return -INFINITY;
	double a = x, b = n - x + 1;
	double lv;
	if (n * p < 5000 && n < 1e7) {
		if (p < (a + 1) / (a + b + 2)) {
			lv = log_ibeta_cf(a, b, p);
		} else {
			double lq = log_ibeta_cf(b, a, 1 - p); /* I_p(a,b) = 1 - I_{1-p}(b,a) */
			lv = isfinite(lq) ? log1p(-exp(lq)) : NAN;
		}
		if (isfinite(lv) || lv == -INFINITY)
			return lv > 0 ? 0 : lv;
	}
	/* normal approximation with continuity correction */
	double sd = sqrt(n * p * (1 - p));
	double z = (x - 0.5 - n * p) / (sd > 0 ? sd : 1e-12);
	if (z < 5)
		return log(0.5 * erfc(z / M_SQRT2));
	return -0.5 * z * z - log(z) - 0.5 * log(2 * M_PI); /* Mills ratio */
}

/* The test on one window: x errors in n requests against baseline p0 with
 * dispersion phi (variance inflation, >= 1). Returns log10 p-value. */
static double error_log10p(double x, double n, double p0, double phi)
{
	if (phi < 1)
		phi = 1;
	return log_binom_upper(x / phi, n / phi, p0) / M_LN10;
}

/* ---- grid and evaluation ------------------------------------------------- */

static void burn_advance(struct svc *s, int64_t bk)
{
	const struct svc_model *m = &s->m;
	if (s->bb_cur == INT64_MIN || bk - s->bb_cur >= (int64_t)s->bb_n) {
		/* first bucket, or a gap longer than the ring: start over */
		memset(s->bb_x, 0, s->bb_n * sizeof(double));
		memset(s->bb_n_, 0, s->bb_n * sizeof(double));
		memset(s->bwin_x, 0, sizeof s->bwin_x);
		memset(s->bwin_n, 0, sizeof s->bwin_n);
		s->bb_cur = bk;
		return;
	}
	while (s->bb_cur < bk) {
		/* window (len buckets) = len - 1 complete buckets + the current one.
		 * Bucket c = bb_cur completes: it enters, c - len + 1 leaves
		 * (len = 1: both are c, the sums stay empty). */
		int64_t c = s->bb_cur;
		size_t ci = (size_t)(c % (int64_t)s->bb_n);
		for (int w = 0; w < m->nwin; w++)
			for (int j = 0; j < 2; j++) {
				size_t oi = (size_t)((c - s->bwin_len[w][j] + 1) % (int64_t)s->bb_n);
				s->bwin_x[w][j] += s->bb_x[ci] - s->bb_x[oi];
				s->bwin_n[w][j] += s->bb_n_[ci] - s->bb_n_[oi];
				if (s->bwin_x[w][j] < 0)
					s->bwin_x[w][j] = 0;
				if (s->bwin_n[w][j] < 0)
					s->bwin_n[w][j] = 0;
			}
		s->bb_cur++;
		size_t ni = (size_t)(s->bb_cur % (int64_t)s->bb_n);
		s->bb_x[ni] = 0;
		s->bb_n_[ni] = 0;
	}
}

/* Burn rates of every window after adding (x, n) at grid bucket k. */
static void burn_update(struct svc *s, int64_t k, double x, double n)
{
	const struct svc_model *m = &s->m;
	int64_t bk = floor_div(k * m->step_ms, s->bb_ms);
	burn_advance(s, bk);
	size_t ci = (size_t)(s->bb_cur % (int64_t)s->bb_n);
	s->bb_x[ci] += x;
	s->bb_n_[ci] += n;
	double budget = 1 - m->objective;
	double sp = 0, st = 0;
	for (int w = 0; w < m->nwin; w++) {
		double r[2], ex[2];
		for (int j = 0; j < 2; j++) {
			double wx = s->bwin_x[w][j] + s->bb_x[ci];
			double wn = s->bwin_n[w][j] + s->bb_n_[ci];
			ex[j] = wx;
			r[j] = wn > 0 && budget > 0 ? wx / wn / budget : 0;
			s->snap.burn[w][j] = r[j];
		}
		/* 0.5 at the threshold; both windows must be above it */
		double lo = r[0] < r[1] ? r[0] : r[1];
		double sc = clamp01(0.5 * lo / m->win[w].factor);
		if (ex[0] < m->burn_min_errors && sc >= 0.5)
			sc = 0.45; /* too few errors to page anyone */
		if ((double)s->steps * (double)m->step_ms < (double)m->win[w].short_ms)
			sc = 0; /* not even the short window has data yet */
		if (m->win[w].page)
			sp = sc > sp ? sc : sp;
		else
			st = sc > st ? sc : st;
	}
	s->snap.burn_score_page = m->objective > 0 ? sp : 0;
	s->snap.burn_score_ticket = m->objective > 0 ? st : 0;
}

/* Error-ratio detector on the window ending at this step. */
static void error_update(struct svc *s, double x, double n)
{
	const struct svc_model *m = &s->m;
	size_t i = (size_t)(s->er_k % (int64_t)s->er_steps);
	s->er_wx += x - s->er_x[i];
	s->er_wn += n - s->er_n[i];
	if (s->er_wx < 0)
		s->er_wx = 0;
	if (s->er_wn < 0)
		s->er_wn = 0;
	s->er_x[i] = x;
	s->er_n[i] = n;
	s->er_k++;
	/* baseline: Jeffreys-like prior of 1000 requests at the floor ratio */
	const double k0 = 1000;
	double p0 = (s->base_x + m->er_floor * k0) / (s->base_n + k0);
	if (p0 < m->er_floor)
		p0 = m->er_floor;
	if (p0 > 0.5)
		p0 = 0.5;
	double wx = s->er_wx, wn = s->er_wn;
	double l10p = wn > 0 ? error_log10p(wx, wn, p0, s->disp) : 0;
	double need = -log10(m->er_alpha);
	double score = clamp01(-l10p / (2 * need));
	double ratio = wn > 0 ? wx / wn : 0;
	if (wx < m->er_min_errors || ratio < m->er_min_factor * p0)
		score = score < 0.3 ? score : 0.3; /* significant or not: not an outage */
	s->snap.er_x = wx;
	s->snap.er_n = wn;
	s->snap.er_ratio = ratio;
	s->snap.er_base = p0;
	s->snap.er_log10p = l10p;
	s->snap.er_score = score;
	/* warm-up: no verdict until the baseline has seen a half-life of data */
	double hl = (double)m->er_halflife_ms / (double)m->step_ms;
	int warm = (double)s->er_k < hl;
	if (warm)
		s->snap.er_score = score = 0;
	/* learn the baseline and the dispersion from normal steps; anomalous
	 * steps count a tenth (a lasting change is absorbed, slowly) */
	if (n > 0) {
		double d = exp2(-1.0 / hl);
		if (score >= 0.3)
			d = exp2(-0.1 / hl), x *= 0.1, n *= 0.1;
		double e = n * p0;
		if (score < 0.3 && e > 0.5 && s->base_n > 100 * e) {
			double z2 = (x - e) * (x - e) / (e * (1 - p0));
			if (z2 > 50)
				z2 = 50;
			s->disp = d * s->disp + (1 - d) * z2;
			if (s->disp < 1)
				s->disp = 1;
			if (s->disp > 100)
				s->disp = 100;
		}
		s->base_x = d * s->base_x + x;
		s->base_n = d * s->base_n + n;
	}
}

/* Reference forecast for bucket k made reference_ms earlier, and the next one. */
static void sort3(double *v)
{
	double t;
	if (v[0] > v[1])
		t = v[0], v[0] = v[1], v[1] = t;
	if (v[1] > v[2])
		t = v[1], v[1] = v[2], v[2] = t;
	if (v[0] > v[1])
		t = v[0], v[0] = v[1], v[1] = t;
}

/* Expected value of bucket k (median of the reference forecasts made for
 * it; NAN unless all of them exist) and its 95% upper bound (median too). */
static void ref_update(struct svc *s, int f, int64_t k, double *mean, double *hi)
{
	double mv[NREF], hv[NREF];
	*mean = NAN;
	*hi = NAN;
	for (int j = 0; j < NREF; j++) {
		const struct fc_ref *r = &s->ref[f][j][(size_t)(k % s->ref_steps[j])];
		if (r->k != k)
			return;
		mv[j] = r->mean;
		hv[j] = r->hi95;
	}
	sort3(mv);
	sort3(hv);
	*mean = mv[1];
	*hi = hv[1];
}

/* Issue the reference forecasts made at bucket k (after learning it). */
static void ref_issue(struct svc *s, int f, int64_t k)
{
	const void *st = s->fcst + (size_t)f * s->fc_size;
	for (int j = 0; j < NREF; j++) {
		int64_t tk = k + s->ref_steps[j];
		struct forecast_point pt;
		struct fc_ref *r = &s->ref[f][j][(size_t)(tk % s->ref_steps[j])];
		if (forecast_predict(&s->fp[f], st, tk * s->m.step_ms, s->m.step_ms, 1, &pt) == 0) {
			r->k = tk;
			r->mean = pt.mean;
			r->hi95 = pt.hi95;
		} else {
			r->k = INT64_MIN;
		}
	}
}

/* Record the load of bucket k in its 10-minute bin (the slot held the
 * same 10 minutes of yesterday until now) and update today's level against
 * yesterday's: an EWMA (half-life 30 minutes) of load / yesterday's mean. */
static void daybin_update(struct svc *s, int64_t k, double req)
{
	int64_t t = k * s->m.step_ms;
	int64_t bin = floor_div(t, DAYBIN_MS);
	struct daybin *d = &s->day[(size_t)(((bin % NDAYBIN) + NDAYBIN) % NDAYBIN)];
	if (d->bin != bin) {
		s->yday_mean = d->bin == bin - NDAYBIN && d->n ? d->sum / d->n : NAN;
		d->bin = bin;
		d->sum = 0;
		d->n = 0;
	}
	d->sum += req;
	d->n++;
	if (isfinite(s->yday_mean) && s->yday_mean > 0) {
		double r = req / s->yday_mean;
		double w = 1 - exp2(-(double)s->m.step_ms / (30.0 * MS_MIN));
		s->level_ratio = s->level_ratio_n ? s->level_ratio + w * (r - s->level_ratio) : r;
		s->level_ratio_n++;
	}
}

/* ETA -> risk component: 0.5 at eta_warning, 1 at 0, 0 at 2 x eta_warning. */
static double eta_comp(double eta_s, double eta_warning_s)
{
	if (!isfinite(eta_s))
		return 0;
	return clamp01(1 - 0.5 * eta_s / eta_warning_s);
}

static void risk_update(struct svc *s, int64_t k)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	double step_s = (double)m->step_ms / 1000.0;
	double ew = (double)m->eta_warning_ms / 1000.0;
	double c[RC__COUNT] = { 0 };
	/* load against the reference forecast */
	if (p->have_req && isfinite(p->req_ref) && p->req_ref > 0 &&
	    forecast_period_ms(s->fcst + FC_LOAD * s->fc_size) > 0) {
		double ex = p->req / p->req_ref;
		/* load alone is not an outage (a benign burst, a marketing
		 * mail): it contributes, it never reaches the warning alone */
		if (p->req > p->req_hi)
			c[RC_LOAD] = 0.45 * ramp(ex, 1.3, 2.0);
	}
	/* capacity: utilisation, and when the load reaches the knee
	 * (utilization_limit x capacity) at this rate (linear trend) or by the
	 * seasonal forecast (the daily peak still to come) */
	p->util = NAN;
	p->eta_cap_s = NAN;
	if (p->have_req && p->cap > 0) {
		p->util = p->req / p->cap;
		double knee = m->util_limit * p->cap;
		double e1 = trend_eta_s(&s->tr[FC_LOAD], knee, step_s, 4, p->req);

		struct breach br;
		double e2 = NAN;
		if (forecast_period_ms(s->fcst + FC_LOAD * s->fc_size) > 0 &&
		    forecast_time_to_breach(&s->fp[FC_LOAD], s->fcst + FC_LOAD * s->fc_size, k * m->step_ms,
		                            m->horizon_ms, knee, 1, &br) == 0 &&
		    br.mean_crosses)
			e2 = (double)(br.mean_at_ms - k * m->step_ms) / 1000.0;
		double eta = e1;
		if (isfinite(e2) && (!isfinite(eta) || e2 < eta))
			eta = e2;
		if (p->util < 0.5)
			eta = NAN; /* far from capacity: trends are noise */
		p->eta_cap_s = eta;
		double cu = ramp(p->util, m->util_limit - 0.15, m->util_limit + 0.1);
		/* headroom: the peak within peak_horizon by a seasonal-naive
		 * forecast (yesterday's 10-minute means over the coming hours,
		 * scaled by today's level against yesterday's): robust and easy
		 * to explain. Recomputed every 10 minutes of event time. */
		if (m->peak_horizon_ms > 0 && k % (DAYBIN_MS / m->step_ms) == 0) {
			p->peak_req = NAN;
			p->peak_in_s = NAN;
			int64_t bin = floor_div(k * m->step_ms, DAYBIN_MS);
			int nb = (int)(m->peak_horizon_ms / DAYBIN_MS);
			if (nb > NDAYBIN - 1)
				nb = NDAYBIN - 1;
			if (s->level_ratio_n >= 6)
				for (int j = 1; j <= nb; j++) {
					int64_t yb = bin + j - NDAYBIN;
					const struct daybin *d =
						&s->day[(size_t)(((yb % NDAYBIN) + NDAYBIN) % NDAYBIN)];
					if (d->bin != yb || d->n == 0)
						continue;
					double v = d->sum / d->n * s->level_ratio;
					if (!(v <= p->peak_req)) {
						p->peak_req = v;
						p->peak_in_s = (double)(j * DAYBIN_MS) / 1000.0;
					}
				}
		}
		if (isfinite(p->peak_req) && p->peak_req > p->req)
			c[RC_HEADROOM] = 0.7 * ramp(p->peak_req / knee, 0.95, 1.1);
		/* a load projection is less sure than a leak's: a campaign's
		 * ramp-in looks like a surge for its first minutes */
		double ce = eta_comp(eta, (double)m->cap_eta_warning_ms / 1000.0);
		c[RC_CAPACITY] = cu > ce ? cu : ce;
	}
	/* latency: against its reference, against the SLO, and the knee
	 * (latency rising faster than load) */
	p->eta_lat_s = NAN;
	if (p->have_lat) {
		double cl = 0;
		if (isfinite(p->lat_ref) && p->lat_ref > 0 && p->lat_s > p->lat_hi) {
			double lx = p->lat_s / p->lat_ref;
			double lx_load = p->have_req && isfinite(p->req_ref) && p->req_ref > 0
			                         ? p->req / p->req_ref
			                         : 1;
			if (lx_load < 1)
				lx_load = 1;
			/* the share of the latency excess that load does not explain */
			cl = ramp(log(lx) - 0.5 * log(lx_load), log(1.5), log(3.0));
		}
		if (m->lat_threshold_s > 0) {
			double cs = ramp(p->lat_s / m->lat_threshold_s, 0.75, 1.0);
			double eta = trend_eta_s(&s->tr[FC_LATENCY], m->lat_threshold_s, step_s, 4, p->lat_s);
			double qeta = qtrend_eta_s(&s->qlat, m->lat_threshold_s, step_s, 4);
			if (isfinite(qeta) && (!isfinite(eta) || qeta < eta))
				eta = qeta;
			if (p->lat_s < 0.5 * m->lat_threshold_s)
				eta = NAN;
			p->eta_lat_s = eta;
			double ce = eta_comp(eta, ew);
			cs = cs > ce ? cs : ce;
			cl = cl > cs ? cl : cs;
		}
		c[RC_LATENCY] = cl;
	}
	/* error onset: the error-ratio detector's evidence */
	c[RC_ERRORS] = ramp(p->er_score, 0.45, 0.65);
	/* saturation near its limit, or reaching it at this rate */
	p->eta_sat_s = NAN;
	if (p->have_sat) {
		double cs = ramp(p->sat, 0.85, 1.0);
		double eta = p->sat >= 0.5 ? trend_eta_s(&s->tr[FC_SAT], 1.0, step_s, 6, p->sat) : NAN;
		p->eta_sat_s = eta;
		double ce = eta_comp(eta, ew);
		c[RC_SATURATION] = cs > ce ? cs : ce;
	}
	/* noisy-OR: any one strong signal, or several moderate ones */
	double q = 1;
	for (int i = 0; i < RC__COUNT; i++) {
		p->comp[i] = c[i];
		q *= 1 - c[i];
	}
	p->risk = 1 - q;
}

/* ---- transitions ---------------------------------------------------------- */

static char *fmt_dup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_dup(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static void fmt_eta(char *buf, size_t len, double s)
{
	if (s < 90)
		snprintf(buf, len, "%.0f seconds", s);
	else if (s < 5400)
		snprintf(buf, len, "%.0f minutes", s / 60);
	else
		snprintf(buf, len, "%.1f hours", s / 3600);
}

static void fmt_lat(char *buf, size_t len, double sec)
{
	if (sec < 1)
		snprintf(buf, len, "%.0f ms", sec * 1000);
	else
		snprintf(buf, len, "%.2f s", sec);
}

/* Append one clause to the explanation. */
static void clause(struct obuf *b, int *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void clause(struct obuf *b, int *n, const char *fmt, ...)
{
	char tmp[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	obuf_puts(b, *n ? ", " : "");
	obuf_puts(b, tmp);
	(*n)++;
}

/* Human explanation of the risk: which signals moved, by how much against
 * their forecast, and what is projected. Returns a malloc'd string. */
static char *risk_explanation(const struct svc *s, const struct snapshot *p)
{
	const struct svc_model *m = &s->m;
	struct obuf b;
	obuf_init(&b, 4096);
	int n = 0;
	char t1[64], t2[64];
	if (p->comp[RC_LOAD] > 0.05 || (p->have_req && isfinite(p->req_ref) && p->req_ref > 0 &&
	                                p->req / p->req_ref >= 1.3))
		clause(&b, &n, "requests are %.1fx the seasonal forecast (%.3g/s vs %.3g/s expected)",
		       p->req / p->req_ref, p->req, p->req_ref);
	if (p->comp[RC_CAPACITY] > 0.05) {
		if (isfinite(p->eta_cap_s) && p->eta_cap_s > 0)
			fmt_eta(t1, sizeof t1, p->eta_cap_s), clause(&b, &n,
			       "load is at %.0f%% of capacity (%.3g/s) and reaches %.0f%% in about %s",
			       100 * p->util, p->cap, 100 * m->util_limit, t1);
		else
			clause(&b, &n, "load is at %.0f%% of capacity (%.3g/s)", 100 * p->util, p->cap);
	}
	if (p->comp[RC_HEADROOM] > 0.05) {
		char inst[48] = "";
		if (p->have_inst)
			snprintf(inst, sizeof inst, " with %.0f instances up", p->inst);
		fmt_eta(t1, sizeof t1, p->peak_in_s);
		clause(&b, &n, "the forecast peak of %.3g/s in about %s is %.0f%% of capacity (%.3g/s%s)",
		       p->peak_req, t1, 100 * p->peak_req / p->cap, p->cap, inst);
	}
	if (p->comp[RC_LATENCY] > 0.05) {
		fmt_lat(t1, sizeof t1, p->lat_s);
		char pct[16];
		snprintf(pct, sizeof pct, "p%g", m->lat_percentile);
		if (isfinite(p->lat_ref) && p->lat_ref > 0 && p->lat_s > p->lat_ref * 1.2)
			clause(&b, &n, "%s latency is %s, %.1fx its forecast%s", pct, t1, p->lat_s / p->lat_ref,
			       p->lat_slope_rel > p->req_slope_rel + 0.001 ? " and bending upward" : "");
		else
			clause(&b, &n, "%s latency is %s%s", pct, t1,
			       p->lat_slope_rel > 0.001 ? " and rising" : "");
		if (m->lat_threshold_s > 0) {
			fmt_lat(t2, sizeof t2, m->lat_threshold_s);
			if (p->lat_s >= m->lat_threshold_s)
				clause(&b, &n, "the %s SLO is breached", t2);
			else if (isfinite(p->eta_lat_s)) {
				fmt_eta(t1, sizeof t1, p->eta_lat_s);
				clause(&b, &n, "at this rate the %s SLO is breached in about %s", t2, t1);
			}
		}
	}
	if (p->comp[RC_ERRORS] > 0.05)
		clause(&b, &n, "errors are %.2f%% of requests vs a %.2f%% baseline", 100 * p->er_ratio,
		       100 * p->er_base);
	if (p->comp[RC_SATURATION] > 0.05) {
		const char *nm = p->sat_sig >= 0 && p->sat_sig < m->nsat ? m->sat[p->sat_sig].name
		                                                          : "saturation";
		if (isfinite(p->eta_sat_s) && p->eta_sat_s > 0) {
			fmt_eta(t1, sizeof t1, p->eta_sat_s);
			clause(&b, &n, "%s is at %.0f%% of its limit and full in about %s at this rate", nm,
			       100 * p->sat, t1);
		} else {
			clause(&b, &n, "%s is at %.0f%% of its limit", nm, 100 * p->sat);
		}
	}
	if (!n)
		clause(&b, &n, "risk %.2f", p->risk);
	size_t len;
	char *out = obuf_steal(&b, &len);
	obuf_free(&b);
	return out;
}

static void json_num_field(struct obuf *b, const char *k, double v)
{
	obuf_printf(b, ",\"%s\":", k);
	obuf_json_num(b, v, 0);
}

static char *labels_for(const struct svc *s, int ak)
{
	struct obuf b;
	obuf_init(&b, 0);
	obuf_puts(&b, "{\"alertname\":");
	obuf_json_str(&b, ak_alertname[ak], strlen(ak_alertname[ak]));
	obuf_puts(&b, ",\"service\":");
	obuf_json_str(&b, s->m.name, strlen(s->m.name));
	obuf_puts(&b, ",\"severity\":");
	obuf_json_str(&b, s->m.sev[ak], strlen(s->m.sev[ak]));
	if (ak == AK_BURN_PAGE || ak == AK_BURN_TICKET)
		obuf_puts(&b, ak == AK_BURN_PAGE ? ",\"action\":\"page\"" : ",\"action\":\"ticket\"");
	obuf_puts(&b, "}");
	size_t len;
	char *out = b.failed ? NULL : obuf_steal(&b, &len);
	obuf_free(&b);
	return out;
}

/* Annotations of a transition. An alert that ended keeps the evidence of its
 * peak (the snapshot of the step with its highest score), so the store's row
 * of a resolved alert still says what happened. */
static char *annotations_for(const struct svc *s, int ak, enum alert_event ev)
{
	const struct svc_model *m = &s->m;
	int ended = ev == AEV_RESOLVED || ev == AEV_CANCELLED;
	const struct snapshot *p = ended && s->peak[ak].ts_ms > 0 ? &s->peak[ak] : &s->snap;
	struct obuf b;
	obuf_init(&b, 0);
	char *sum = NULL, *desc = NULL;
	if (ak == AK_RISK_WARNING || ak == AK_RISK_CRITICAL) {
		char *ex = risk_explanation(s, p);
		sum = fmt_dup("%s%s is heading for an outage: %s", ended ? "resolved; at its peak: " : "",
		              m->name, ex ? ex : "");
		desc = fmt_dup("overload risk %.2f (%s at %.2f). %s", p->risk,
		               ak == AK_RISK_CRITICAL ? "critical" : "warning",
		               ak == AK_RISK_CRITICAL ? m->risk_critical : m->risk_warning,
		               ex ? ex : "");
		free(ex);
	} else if (ak == AK_ERROR_RATIO) {
		sum = fmt_dup("%s%s errors are %.2f%% of requests vs a %.2f%% baseline",
		              ended ? "resolved; at its peak: " : "", m->name, 100 * p->er_ratio,
		              100 * p->er_base);
		desc = fmt_dup("%.0f errors in %.0f requests over the last %lld s; p-value 1e%.1f "
		               "under the learned baseline (dispersion %.2f)",
		               p->er_x, p->er_n, (long long)(m->er_window_ms / 1000), p->er_log10p,
		               s->disp);
	} else {
		int page = ak == AK_BURN_PAGE;
		int best = -1;
		double bs = -1;
		for (int w = 0; w < m->nwin; w++) {
			if (m->win[w].page != page)
				continue;
			double lo = p->burn[w][0] < p->burn[w][1] ? p->burn[w][0] : p->burn[w][1];
			if (lo / m->win[w].factor > bs) {
				bs = lo / m->win[w].factor;
				best = w;
			}
		}
		if (best >= 0) {
			const struct burn_window *w = &m->win[best];
			sum = fmt_dup("%s%s is burning its %.4g%% availability error budget %.1fx too fast",
			              ended ? "resolved; at its peak: " : "", m->name, 100 * m->objective,
			              p->burn[best][1]);
			desc = fmt_dup("burn rate %.1f over %lldm and %.1f over %lldm (threshold %.1f); at "
			               "this rate the %lld-day budget lasts %.1f days",
			               p->burn[best][0], (long long)(w->long_ms / MS_MIN), p->burn[best][1],
			               (long long)(w->short_ms / MS_MIN), w->factor,
			               (long long)(m->slo_period_ms / MS_DAY),
			               p->burn[best][1] > 0
			                       ? (double)m->slo_period_ms / MS_DAY / p->burn[best][1]
			                       : INFINITY);
		}
	}
	obuf_puts(&b, "{\"summary\":");
	obuf_json_str(&b, sum ? sum : "", sum ? strlen(sum) : 0);
	obuf_puts(&b, ",\"description\":");
	obuf_json_str(&b, desc ? desc : "", desc ? strlen(desc) : 0);
	free(sum);
	free(desc);
	obuf_puts(&b, ",\"evidence_at\":");
	obuf_json_time(&b, p->ts_ms);
	json_num_field(&b, "risk", p->risk);
	for (int i = 0; i < RC__COUNT; i++) {
		char k[40];
		snprintf(k, sizeof k, "risk_%s", rc_name[i]);
		json_num_field(&b, k, p->comp[i]);
	}
	json_num_field(&b, "requests_per_s", p->have_req ? p->req : NAN);
	json_num_field(&b, "requests_expected_per_s", p->req_ref);
	json_num_field(&b, "load_vs_forecast",
	               p->have_req && p->req_ref > 0 ? p->req / p->req_ref : NAN);
	json_num_field(&b, "capacity_per_s", p->cap > 0 ? p->cap : NAN);
	json_num_field(&b, "capacity_utilization", p->util);
	json_num_field(&b, "capacity_eta_s", p->eta_cap_s);
	json_num_field(&b, "peak_requests_per_s", p->peak_req);
	json_num_field(&b, "peak_in_s", p->peak_in_s);
	json_num_field(&b, "latency_s", p->have_lat ? p->lat_s : NAN);
	json_num_field(&b, "latency_expected_s", p->lat_ref);
	json_num_field(&b, "latency_slo_s", m->lat_threshold_s > 0 ? m->lat_threshold_s : NAN);
	json_num_field(&b, "latency_slo_eta_s", p->eta_lat_s);
	json_num_field(&b, "error_ratio", p->er_ratio);
	json_num_field(&b, "error_ratio_baseline", p->er_base);
	json_num_field(&b, "error_log10_p", p->er_log10p);
	json_num_field(&b, "saturation", p->have_sat ? p->sat : NAN);
	json_num_field(&b, "saturation_eta_s", p->eta_sat_s);
	if (m->objective > 0) {
		obuf_puts(&b, ",\"burn_rates\":[");
		for (int w = 0; w < m->nwin; w++) {
			obuf_printf(&b, "%s{\"long_s\":%lld,\"short_s\":%lld,\"factor\":", w ? "," : "",
			            (long long)(m->win[w].long_ms / 1000),
			            (long long)(m->win[w].short_ms / 1000));
			obuf_json_num(&b, m->win[w].factor, 0);
			json_num_field(&b, "long", p->burn[w][0]);
			json_num_field(&b, "short", p->burn[w][1]);
			obuf_puts(&b, "}");
		}
		obuf_puts(&b, "]");
	}
	obuf_puts(&b, "}");
	size_t len;
	char *out = b.failed ? NULL : obuf_steal(&b, &len);
	obuf_free(&b);
	return out;
}

static int push_transition(struct svc *s, int ak, enum alert_event ev, int64_t ts, double value,
                           double score, struct service_transition **out, size_t *nout,
                           size_t *capout)
{
	if (*nout == *capout) {
		size_t nc = *capout ? *capout * 2 : 8;
		struct service_transition *t = realloc(*out, nc * sizeof *t);
		if (!t)
			return -1;
		*out = t;
		*capout = nc;
	}
	struct service_transition *t = &(*out)[*nout];
	memset(t, 0, sizeof *t);
	t->fsm = &s->fsm[ak];
	t->ev = ev;
	t->key = fmt_dup("service:%s:%s%s", s->m.name, ak_alertname[ak], ak_suffix[ak]);
	t->labels_json = labels_for(s, ak);
	t->annotations_json = annotations_for(s, ak, ev);
	t->ts_ms = ts;
	t->value = value;
	t->score = score;
	if (!t->key || !t->labels_json || !t->annotations_json) {
		free(t->key);
		free(t->labels_json);
		free(t->annotations_json);
		return -1;
	}
	(*nout)++;
	return 0;
}

/* Evaluate grid bucket k (all its data are in). */
static int eval_step(struct svc *s, int64_t k, struct service_transition **out, size_t *nout,
                     size_t *capout)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	int64_t stale_steps = m->stale_ms / m->step_ms;
	double req = 0, tot = 0, err = 0, lat = 0, sat = 0, inst = 0;
	int nreq = 0, ntot = 0, nlat = 0, nsat = 0, ninst = 0, satsig = -1;
	for (size_t i = 0; i < s->nmem; i++) {
		struct member *mb = &s->mem[i];
		int sl = (int)(((k % SVC_SLOTS) + SVC_SLOTS) % SVC_SLOTS);
		if (mb->slot[sl].k == k && mb->slot[sl].n) {
			mb->cf_val = mb->slot[sl].sum / mb->slot[sl].n;
			mb->cf_k = k;
		}
		if (mb->cf_k == INT64_MIN || k - mb->cf_k > stale_steps)
			continue;
		double v = mb->cf_val;
		uint32_t r = mb->roles;
		if (r & (1u << ROLE_REQUESTS))
			req += v, nreq++;
		if (r & (1u << ROLE_TOTAL))
			tot += v, ntot++;
		if (r & (1u << ROLE_ERRORS))
			err += v;
		if (r & (1u << ROLE_LATENCY)) {
			double ls = v * m->latency_scale;
			if (m->latency_mean)
				lat += ls;
			else if (ls > lat)
				lat = ls;
			nlat++;
		}
		if (r & (1u << ROLE_SATURATION)) {
			int si = (int)((r >> SERVICE_SAT_SHIFT) & 0xff);
			if (si < m->nsat) {
				double f = v / m->sat[si].limit;
				if (f > sat || !nsat) {
					sat = f;
					satsig = si;
				}
				nsat++;
			}
		}
		if (r & (1u << ROLE_INSTANCES))
			inst += v, ninst++;
	}
	if (m->latency_mean && nlat)
		lat /= nlat;
	int64_t ts = (k + 1) * m->step_ms; /* the bucket's end: its data are complete */
	double step_s = (double)m->step_ms / 1000.0;
	s->steps++;
	p->ts_ms = ts;
	p->have_req = nreq > 0;
	p->have_total = ntot > 0;
	p->have_lat = nlat > 0;
	p->have_sat = nsat > 0;
	p->have_inst = ninst > 0;
	p->req = req;
	p->total = tot;
	p->err = err;
	p->lat_s = lat;
	p->sat = sat;
	p->sat_sig = satsig;
	p->inst = inst;
	p->cap = m->cap_total;
	if (m->cap_per_instance > 0 && ninst > 0)
		p->cap = m->cap_per_instance * inst;
	/* counts on this step: rate x step */
	double n = ntot ? tot * step_s : 0, x = ntot ? err * step_s : 0;
	if (x > n)
		x = n;
	if (m->objective > 0)
		burn_update(s, k, x, n);
	error_update(s, x, n);
	/* forecasts: reference made reference_ms ago, then learn this step */
	ref_update(s, FC_LOAD, k, &p->req_ref, &p->req_hi);
	ref_update(s, FC_LATENCY, k, &p->lat_ref, &p->lat_hi);
	double dmy1, dmy2;
	ref_update(s, FC_SAT, k, &dmy1, &dmy2);
	int64_t t0 = k * m->step_ms;
	if (p->have_req)
		forecast_update(&s->fp[FC_LOAD], s->fcst + FC_LOAD * s->fc_size, t0, req);
	if (p->have_lat)
		forecast_update(&s->fp[FC_LATENCY], s->fcst + FC_LATENCY * s->fc_size, t0, lat);
	if (p->have_sat)
		forecast_update(&s->fp[FC_SAT], s->fcst + FC_SAT * s->fc_size, t0, sat);
	for (int f = 0; f < FC__COUNT; f++)
		ref_issue(s, f, k);
	double hl = (double)m->trend_halflife_ms / (double)m->step_ms;
	double dec = exp2(-1.0 / hl);
	trend_add(&s->tr[FC_LOAD], dec, req, p->have_req);
	trend_add(&s->tr[FC_LATENCY], dec, lat, p->have_lat);
	qtrend_add(&s->qlat, exp2(-0.5 / hl), lat, p->have_lat);
	trend_add(&s->tr[FC_SAT], exp2(-(double)m->step_ms / (double)m->sat_halflife_ms), sat,
	          p->have_sat);
	{
		double b, a, tt;
		p->lat_slope_rel = trend_fit(&s->tr[FC_LATENCY], &b, &a, &tt) == 0 && a > 0 ? b / a : 0;
		p->req_slope_rel = trend_fit(&s->tr[FC_LOAD], &b, &a, &tt) == 0 && a > 0 ? b / a : 0;
	}
	if (p->have_req)
		daybin_update(s, k, req);
	risk_update(s, k);
	/* alert state machines */
	double scores[AK__COUNT] = { p->er_score, p->burn_score_page, p->burn_score_ticket, p->risk,
		                     p->risk };
	double values[AK__COUNT] = { p->er_ratio, 0, 0, p->risk, p->risk };
	if (m->objective > 0) {
		double bp = 0, bt = 0;
		for (int w = 0; w < m->nwin; w++) {
			double v = p->burn[w][1];
			if (m->win[w].page)
				bp = v > bp ? v : bp;
			else
				bt = v > bt ? v : bt;
		}
		values[AK_BURN_PAGE] = bp;
		values[AK_BURN_TICKET] = bt;
	}
	for (int a = 0; a < AK__COUNT; a++) {
		if ((a == AK_BURN_PAGE || a == AK_BURN_TICKET) && m->objective <= 0)
			continue;
		if (!p->have_total && (a == AK_ERROR_RATIO))
			continue;
		enum alert_event ev = alert_fsm_step(&s->fsm[a], &m->al[a], ts, scores[a], values[a]);
		/* the first step at the alert's highest score */
		if ((ev == AEV_PENDING || (ev == AEV_FIRING && s->fsm[a].active_at_ms == ts)) ||
		    (s->fsm[a].state != ALERT_INACTIVE && scores[a] > s->peak_score[a])) {
			s->peak[a] = *p;
			s->peak_score[a] = scores[a];
		}
		if (ev != AEV_NONE &&
		    push_transition(s, a, ev, ts, values[a], scores[a], out, nout, capout) < 0)
			return -1;
	}
	return 0;
}

int services_observe(struct services *set, uint32_t svc, uint32_t roles, uint32_t series_idx,
                     int64_t ts_ms, double value, const struct det_result *det,
                     struct service_transition **out, size_t *nout, size_t *capout)
{
	(void)det;
	if (!set || svc >= set->n || !isfinite(value))
		return 0;
	struct svc *s = &set->v[svc];
	const struct svc_model *m = &s->m;
	int64_t k = floor_div(ts_ms, m->step_ms);
	if (s->started && k < s->next_close) {
		s->late_dropped++;
		return 0;
	}
	struct member *mb = member_get(s, series_idx, roles);
	if (!mb)
		return -1;
	mb->roles = roles;
	s->samples++;
	int sl = (int)(((k % SVC_SLOTS) + SVC_SLOTS) % SVC_SLOTS);
	if (mb->slot[sl].k != k) {
		mb->slot[sl].k = k;
		mb->slot[sl].sum = 0;
		mb->slot[sl].n = 0;
	}
	mb->slot[sl].sum += value;
	mb->slot[sl].n++;
	if (!s->started) {
		s->started = 1;
		s->next_close = k;
		s->wm_k = k;
	}
	if (k > s->wm_k)
		s->wm_k = k;
	/* close every bucket that can no longer receive data */
	while (s->next_close + m->lag_steps < s->wm_k) {
		/* skip long gaps: jump to the oldest bucket any member still holds */
		int64_t kk = s->next_close;
		int any = 0;
		int64_t stale_steps = m->stale_ms / m->step_ms;
		int64_t oldest = INT64_MAX;
		for (size_t i = 0; i < s->nmem; i++) {
			const struct member *q = &s->mem[i];
			if (q->cf_k != INT64_MIN && kk - q->cf_k <= stale_steps)
				any = 1;
			for (int j = 0; j < SVC_SLOTS; j++)
				if (q->slot[j].k >= kk && q->slot[j].k < oldest)
					oldest = q->slot[j].k;
		}
		if (!any && oldest != INT64_MAX && oldest > kk) {
			s->next_close = oldest;
			continue;
		}
		if (eval_step(s, kk, out, nout, capout) < 0)
			return -1;
		s->next_close = kk + 1;
	}
	return 0;
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
		return alert_fsm_restore(&s->fsm[a], st, alert_id, active_at_ms, firing_at_ms, score);
	}
	return -1;
}

/* ---- JSON --------------------------------------------------------------- */

void services_json(const struct services *set, struct obuf *b)
{
	obuf_puts(b, "[");
	for (size_t i = 0; set && i < set->n; i++) {
		const struct svc *s = &set->v[i];
		const struct svc_model *m = &s->m;
		const struct snapshot *p = &s->snap;
		obuf_puts(b, i ? ",{\"name\":" : "{\"name\":");
		obuf_json_str(b, m->name, strlen(m->name));
		obuf_puts(b, ",\"file\":");
		obuf_json_str(b, m->file, strlen(m->file));
		obuf_printf(b, ",\"step_s\":%lld,\"members\":%zu,\"samples\":%llu,\"steps\":%llu,"
		               "\"late_dropped\":%llu",
		            (long long)(m->step_ms / 1000), s->nmem, (unsigned long long)s->samples,
		            (unsigned long long)s->steps, (unsigned long long)s->late_dropped);
		obuf_puts(b, ",\"evaluated_at\":");
		if (p->ts_ms > 0)
			obuf_json_time(b, p->ts_ms);
		else
			obuf_puts(b, "null");
		obuf_puts(b, ",\"signals\":{");
		obuf_puts(b, "\"requests_per_s\":");
		obuf_json_num(b, p->have_req ? p->req : NAN, 0);
		json_num_field(b, "total_per_s", p->have_total ? p->total : NAN);
		json_num_field(b, "errors_per_s", p->have_total ? p->err : NAN);
		json_num_field(b, "latency_s", p->have_lat ? p->lat_s : NAN);
		json_num_field(b, "saturation", p->have_sat ? p->sat : NAN);
		json_num_field(b, "instances", p->have_inst ? p->inst : NAN);
		json_num_field(b, "capacity_per_s", p->cap > 0 ? p->cap : NAN);
		obuf_puts(b, "},\"forecast\":{");
		obuf_puts(b, "\"requests_expected_per_s\":");
		obuf_json_num(b, p->req_ref, 0);
		json_num_field(b, "requests_hi95_per_s", p->req_hi);
		json_num_field(b, "latency_expected_s", p->lat_ref);
		json_num_field(b, "latency_hi95_s", p->lat_hi);
		json_num_field(b, "capacity_eta_s", p->eta_cap_s);
		json_num_field(b, "latency_slo_eta_s", p->eta_lat_s);
		json_num_field(b, "saturation_eta_s", p->eta_sat_s);
		json_num_field(b, "peak_requests_per_s", p->peak_req);
		json_num_field(b, "peak_in_s", p->peak_in_s);
		obuf_puts(b, "},\"error_ratio\":{\"ratio\":");
		obuf_json_num(b, p->er_ratio, 0);
		json_num_field(b, "baseline", p->er_base);
		json_num_field(b, "errors", p->er_x);
		json_num_field(b, "requests", p->er_n);
		json_num_field(b, "log10_p", p->er_log10p);
		json_num_field(b, "dispersion", s->disp);
		json_num_field(b, "score", p->er_score);
		obuf_puts(b, "},\"slo\":{\"objective\":");
		obuf_json_num(b, m->objective > 0 ? m->objective : NAN, 0);
		json_num_field(b, "latency_threshold_s", m->lat_threshold_s > 0 ? m->lat_threshold_s : NAN);
		obuf_puts(b, ",\"burn_rates\":[");
		for (int w = 0; m->objective > 0 && w < m->nwin; w++) {
			obuf_printf(b, "%s{\"long_s\":%lld,\"short_s\":%lld,\"factor\":", w ? "," : "",
			            (long long)(m->win[w].long_ms / 1000), (long long)(m->win[w].short_ms / 1000));
			obuf_json_num(b, m->win[w].factor, 0);
			obuf_printf(b, ",\"action\":\"%s\",\"long\":", m->win[w].page ? "page" : "ticket");
			obuf_json_num(b, p->burn[w][0], 0);
			json_num_field(b, "short", p->burn[w][1]);
			obuf_puts(b, "}");
		}
		obuf_puts(b, "]},\"risk\":{\"score\":");
		obuf_json_num(b, p->risk, 0);
		obuf_puts(b, ",\"components\":{");
		for (int c = 0; c < RC__COUNT; c++) {
			obuf_printf(b, "%s\"%s\":", c ? "," : "", rc_name[c]);
			obuf_json_num(b, p->comp[c], 0);
		}
		obuf_puts(b, "},\"explanation\":");
		char *ex = s->steps ? risk_explanation(s, &s->snap) : NULL;
		obuf_json_str(b, ex ? ex : "", ex ? strlen(ex) : 0);
		free(ex);
		obuf_puts(b, "},\"alerts\":[");
		for (int a = 0; a < AK__COUNT; a++) {
			const struct alert_fsm *f = &s->fsm[a];
			obuf_puts(b, a ? ",{\"alertname\":" : "{\"alertname\":");
			obuf_json_str(b, ak_alertname[a], strlen(ak_alertname[a]));
			obuf_puts(b, ",\"severity\":");
			obuf_json_str(b, m->sev[a], strlen(m->sev[a]));
			obuf_printf(b, ",\"state\":\"%s\",\"score\":",
			            alert_state_name((enum alert_state)f->state));
			obuf_json_num(b, f->score, 0);
			obuf_puts(b, ",\"active_at\":");
			if (f->state != ALERT_INACTIVE && f->active_at_ms > 0)
				obuf_json_time(b, f->active_at_ms);
			else
				obuf_puts(b, "null");
			obuf_puts(b, "}");
		}
		obuf_puts(b, "]}");
	}
	obuf_puts(b, "]");
}
