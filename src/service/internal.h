/* service/internal.h — what the files of the service layer share: the
 * parsed model of a service (struct svc_model), its runtime state (struct
 * svc) and the functions one file calls in another. model_load.c loads and
 * carries state over reloads, signals.c binds series and aggregates them on
 * the grid, risk.c runs the detectors (error ratio, burn rate, overload
 * risk), text.c writes the alerts' labels and annotations, json.c the
 * /api/v1/services view. Nothing outside src/service includes it (except
 * tests/unit/test_service.c). The contract is in service.h; the mathematics
 * in docs/outage-prediction.md.
 *
 * Memory: everything a service needs is allocated when the model is loaded,
 * except the member table, which grows when a new member series shows up
 * (once per series, never per sample). The burn-rate counters are a ring of
 * fixed-width time buckets covering the longest window (bounded memory). */
#ifndef FORESHOCK_SERVICE_INTERNAL_H
#define FORESHOCK_SERVICE_INTERNAL_H

#include <math.h>
#include <stdint.h>

#include "service/service.h"
#include "util/buf.h"
#include "util/selector.h"

#define MS_S 1000LL
#define MS_MIN 60000LL
#define MS_HOUR 3600000LL
#define MS_DAY 86400000LL

#define SVC_MAX_SAT 8
#define SVC_SLOTS 8      /* per-member ring of grid buckets (lag + 2 at most) */
#define SVC_MAX_WIN 8    /* burn-rate window pairs */
/* The error-ratio trend ("errors rising toward the SLO"): half-life 2 min,
 * at least 4 steps; a step counts with at least ER_TREND_MIN_N requests. */
#define ER_TREND_HALFLIFE_MS (2 * MS_MIN)
#define ER_TREND_MIN_N 50
/* Errors elevated without a break: each of the last ER_SUS_BLOCKS minutes
 * significantly above the baseline (p <= 10^ER_SUS_LOG10P), together at
 * least a tenth of the error budget and 5x the baseline, the later half not
 * below the earlier: longer than a deploy blip (30-90 s touch three
 * minutes at most) */
#define ER_SUS_BLOCKS 4
#define ER_SUS_LOG10P (-2.0)
/* Errors spread over minutes (the same question for small services, whose
 * minutes hold a handful of errors each): over the last W whole burn-rate
 * buckets (1 min at steps up to 1 min), W from ER_ACC_MIN to ER_ACC_MAX,
 * the errors outside the run of ER_ACC_TRIM consecutive buckets with the
 * most errors (a 30-90 s deploy blip touches three one-minute buckets at
 * most) are significantly above the baseline (p <= 10^ER_ACC_LOG10P), at
 * least the error-ratio test's min_errors and 5x the baseline, the window at
 * least a tenth of the budget, and its newer half not below the older. */
#define ER_ACC_MIN 6
#define ER_ACC_MAX 15
#define ER_ACC_TRIM 3
#define ER_ACC_LOG10P (-3.0)
/* A burst: the errors of the last ER_BURST_W buckets outside their worst
 * run of ER_ACC_TRIM are not elevated (p > 10^ER_BURST_LOG10P, or fewer
 * than min_errors or 5x the baseline): the 5-minute ratio alone then does
 * not warn below the SLO. */
#define ER_BURST_W 5
#define ER_BURST_LOG10P (-2.0)
#define FAST_N 12        /* steps of the fast-path window (60 s at 5 s) */
#define FAST_MS (60 * 1000)
#define EVIDENCE_SCORE 0.49 /* a member's detector score that counts as evidence */
#define EVIDENCE_GAP_MS (15 * 60 * 1000)
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
enum { RC_LOAD, RC_CAPACITY, RC_HEADROOM, RC_LATENCY, RC_ERRORS, RC_SATURATION, RC_LATLOAD,
       RC_CANARY, RC__COUNT };
static const char *const rc_name[RC__COUNT] = { "load", "capacity", "headroom", "latency", "errors",
	                                        "saturation", "latency_load", "instance_errors" };

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
	int64_t sat_eta_warning_ms; /* eta_warning for a resource filling up (a leak) */
	/* alerting */
	struct model_alerting al[AK__COUNT];
	char sev[AK__COUNT][24];
	int separate;            /* 1: ErrorRatio and SLOBurnRate alert on their own too */
	int64_t fast_ms;         /* a hard SLO breach this long pages at once */
	/* scope: series that feed no role but belong to the service (evidence) */
	struct selector scope;
	int has_scope;
};

/* One member series. */
struct member {
	uint32_t series_idx;
	uint32_t roles;
	int grp;                 /* its instance group (canary.c); -1 none, -2 not looked up yet */
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

/* The latency–load curve learnt from healthy history (knee.c): 10-minute
 * means of load and latency over the last three days, the fitted curve and
 * the load at which it reaches the latency SLO; and a ring of the last
 * GROW_N steps' load for the sustained-growth test. */
#define KNEE_BIN_MS (10 * MS_MIN)
#define KNEE_NBIN 432
#define GROW_N 128

struct knee_bin {
	int64_t bin;             /* floor(t / 10 min) */
	double req, lat;         /* sums over the bin's healthy steps */
	uint32_t n;
};

struct knee {
	struct knee_bin bin[KNEE_NBIN];
	int64_t cur_bin, fit_bin;   /* INT64_MIN = none yet */
	int ok;                  /* a knee load was found */
	double a, b, c;          /* latency = a + b / (c - load); c infinite: a + b load */
	double r_slo, r_lo, r_hi; /* the load at which latency reaches the SLO, and its range */
	double r_max;            /* the highest healthy 10-minute load */
	uint32_t npts;           /* points of the last fit */
	int64_t grow_k[GROW_N];
	double grow[GROW_N];
};

/* Errors concentrated on some instances (canary.c): the members grouped by
 * their `instance` label, and per instance a ring of the last IG_W steps'
 * errors and requests. */
#define IG_MAX 16
#define IG_W 18              /* ring length (3 minutes at 10 s) */
#define IG_WIN_MS (3 * MS_MIN) /* the longest window tested */
#define IG_NAME 48

struct inst_grp {
	char name[IG_NAME];      /* the instance label's value */
	int64_t k[IG_W];         /* grid bucket of each slot; INT64_MIN = empty */
	double x[IG_W], n[IG_W]; /* errors and requests of that step */
	int64_t run_ms;          /* start of its current run of erroring steps; INT64_MIN = none */
};

struct fc_ref {
	int64_t k;               /* grid bucket this reference forecast is for */
	double mean, hi95;
};

/* Snapshot of the last evaluated step, for JSON and explanations. */
struct snapshot {
	int64_t ts_ms;
	double req, total, err, lat_s, sat, inst, cap;
	double lat2_s;           /* the second-highest member latency (= lat_s with one member) */
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
	int hard;                /* 1: an SLO is breached hard (errors), 2: (latency) */
	double fast_ratio;       /* error ratio over the fast-path window */
	double lat_rate_10m;     /* latency trend, seconds per 10 minutes (NAN: none) */
	double eta_err_s;        /* errors rising: time for the ratio to reach the error SLO */
	double knee_req;         /* the load at which latency reaches its SLO (knee.c; NAN: none) */
	double eta_knee_s, eta_knee_lo_s, eta_knee_hi_s; /* time to it at the load's growth */
	double grow_rel_10m;     /* the load's sustained growth per 10 minutes, relative */
	/* errors concentrated on some instances (canary.c): how many of how
	 * many instances are above the error SLO, the worst one, its ratio over
	 * the window that showed it, and since when it has been erroring */
	double er_sus_ratio;     /* errors elevated in every minute of ER_SUS_BLOCKS (NAN: not) */
	double er_acc_ratio;     /* errors spread over the last er_acc_min minutes (NAN: not) */
	int er_acc_min;          /* that window, in burn-rate buckets */
	int ig_bad, ig_of;
	double ig_ratio, ig_log10p;
	int64_t ig_since_ms;
	char ig_name[IG_NAME];
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
	uint64_t steps_taken;     /* steps seen by services_take_output() */
	uint64_t saved_steps;     /* steps when services_state_take() last copied the state */
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
	struct trend er_tr;      /* per-step error ratio (steps of ER_TREND_MIN_N requests or more) */
	struct daybin day[NDAYBIN];
	struct knee knee;
	struct inst_grp ig[IG_MAX];
	int nig;
	double level_ratio;      /* EWMA of load / load a day ago (same 10 minutes) */
	double yday_mean;        /* yesterday's mean of the current 10 minutes */
	uint32_t level_ratio_n;
	struct snapshot snap;
	struct snapshot peak[AK__COUNT]; /* evidence at each alert's highest score */
	double peak_score[AK__COUNT];
	struct alert_fsm fsm[AK__COUNT];
	/* fast path: the last FAST_N steps' error counts, and how long each
	 * SLO has been breached without a break */
	double fx[FAST_N], fn[FAST_N];
	int64_t hard_err_ms, hard_lat_ms;
	/* the pre-incident baseline an open incident alert must return near */
	int pre_set;
	double pre_lat, pre_err;
	/* evidence: the most anomalous member or scope series recently */
	char ev_key[160];
	double ev_score;
	int64_t ev_since, ev_last;
	uint32_t ev_n;
};

struct services {
	size_t n;
	struct svc *v;
};


/* ---- small helpers --------------------------------------------------- */

static inline double clamp01(double x)
{
	return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* 0 at a, 1 at b, linear between. */
static inline double ramp(double x, double a, double b)
{
	if (!isfinite(x))
		return 0;
	return clamp01((x - a) / (b - a));
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}


/* risk.c */
double log_binom_upper(double x, double n, double p);
double error_log10p(double x, double n, double p0, double phi);

/* signals.c */
double eta_comp(double eta_s, double eta_warning_s);
double qtrend_eta_s(const struct qtrend *q, double limit, double step_s, double min_t);
double trend_eta_s(const struct trend *t, double limit, double step_s, double min_t, double cur);
int trend_fit(const struct trend *t, double *slope, double *level, double *tstat);
struct member *member_get(struct svc *s, uint32_t idx, uint32_t roles);
void burn_update(struct svc *s, int64_t k, double x, double n);
void daybin_update(struct svc *s, int64_t k, double req);
void error_update(struct svc *s, double x, double n);
void qtrend_add(struct qtrend *q, double decay, double y, int have);
void ref_issue(struct svc *s, int f, int64_t k);
void ref_update(struct svc *s, int f, int64_t k, double *mean, double *hi);
void trend_add(struct trend *t, double decay, double y, int have);

/* canary.c */
int canary_group(struct svc *s, const char *key);
double canary_step(struct svc *s, int64_t k);

/* knee.c */
void knee_step(struct svc *s, int64_t k, int healthy);
double knee_component(struct svc *s, int64_t k);

/* text.c */
char *risk_explanation(const struct svc *s, const struct snapshot *p);
int push_transition(struct svc *s, int ak, enum alert_event ev, int64_t ts, double value, double score, struct service_transition **out, size_t *nout, size_t *capout);
void json_num_field(struct obuf *b, const char *k, double v);

#endif
