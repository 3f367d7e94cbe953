/* service/text.c — what a service alert says: its labels, annotations and
 * risk explanation; push_transition queues it for the engine. */
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
#include <time.h>

#include "util/buf.h"
#include "util/log.h"
#include "util/selector.h"
#include "util/yaml_tree.h"

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
char *risk_explanation(const struct svc *s, const struct snapshot *p)
{
	const struct svc_model *m = &s->m;
	struct obuf b;
	obuf_init(&b, 4096);
	int n = 0;
	char t1[64], t2[64];
	if (p->hard == 1)
		clause(&b, &n, "the %.4g%% error SLO is breached: %.1f%% of requests failed in the last "
		       "%lld s", 100 * (1 - m->objective), 100 * p->fast_ratio,
		       (long long)(m->fast_ms / 1000));
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
	if (p->comp[RC_LATLOAD] > 0.05 && isfinite(p->eta_knee_s)) {
		char slo[32], now[32];
		fmt_lat(slo, sizeof slo, m->lat_threshold_s);
		fmt_lat(now, sizeof now, p->lat_s);
		fmt_eta(t1, sizeof t1, p->eta_knee_s);
		clause(&b, &n,
		       "at the current growth of %+.0f%%/10 min, p%g latency reaches the %s SLO in about "
		       "%s (at about %.3g req/s, by the latency-load curve of its last days; p%g is %s at "
		       "%.3g req/s now)",
		       100 * p->grow_rel_10m, m->lat_percentile, slo, t1, p->knee_req, m->lat_percentile,
		       now, p->req);
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
		char rate[96] = "";
		if (isfinite(p->lat_rate_10m) && p->lat_rate_10m > 0) {
			fmt_lat(t2, sizeof t2, p->lat_rate_10m);
			snprintf(rate, sizeof rate, ", rising %s per 10 min", t2);
		}
		if (isfinite(p->lat_ref) && p->lat_ref > 0 && p->lat_s > p->lat_ref * 1.2)
			clause(&b, &n, "%s latency is %s, %.1fx its forecast%s%s", pct, t1,
			       p->lat_s / p->lat_ref,
			       p->lat_slope_rel > p->req_slope_rel + 0.001 ? " and bending upward" : "", rate);
		else
			clause(&b, &n, "%s latency is %s%s", pct, t1,
			       rate[0] ? rate : p->lat_slope_rel > 0.001 ? " and rising" : "");
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
	if (p->comp[RC_ERRORS] > 0.05 && p->hard != 1) {
		if (m->objective > 0 && isfinite(p->eta_err_s) && p->eta_err_s > 0) {
			fmt_eta(t1, sizeof t1, p->eta_err_s);
			clause(&b, &n,
			       "errors are %.2f%% of requests vs a %.2f%% baseline and rising: at this rate "
			       "the %.4g%% error SLO is breached in about %s",
			       100 * p->er_ratio, 100 * p->er_base, 100 * (1 - m->objective), t1);
		} else if (m->objective > 0 && isfinite(p->er_sus_ratio))
			clause(&b, &n,
			       "errors have been %.2f%% of requests (%.0fx the %.2f%% baseline) for %d minutes "
			       "without a break and are not falling (SLO %.4g%%)",
			       100 * p->er_sus_ratio, p->er_sus_ratio / p->er_base, 100 * p->er_base,
			       ER_SUS_BLOCKS, 100 * (1 - m->objective));
		else if (m->objective > 0 && isfinite(p->er_acc_ratio))
			clause(&b, &n,
			       "errors have been %.2f%% of requests (%.0fx the %.2f%% baseline) over the last "
			       "%d minutes, spread over the minutes rather than one burst, and are not "
			       "falling (SLO %.4g%%)",
			       100 * p->er_acc_ratio, p->er_acc_ratio / p->er_base, 100 * p->er_base,
			       (int)((int64_t)p->er_acc_min * s->bb_ms / MS_MIN), 100 * (1 - m->objective));
		else if (m->objective > 0)
			clause(&b, &n, "errors are %.2f%% of requests vs a %.2f%% baseline (SLO %.4g%%)",
			       100 * p->er_ratio, 100 * p->er_base, 100 * (1 - m->objective));
		else
			clause(&b, &n, "errors are %.2f%% of requests vs a %.2f%% baseline",
			       100 * p->er_ratio, 100 * p->er_base);
	}
	if (p->comp[RC_CANARY] > 0.05 && p->ig_bad > 0 && m->objective > 0) {
		struct tm tm;
		time_t t = (time_t)(p->ig_since_ms / 1000);
		char since[32] = "";
		if (gmtime_r(&t, &tm))
			strftime(since, sizeof since, " since %H:%M UTC", &tm);
		clause(&b, &n,
		       "errors are %.1f%% of requests on instance \"%s\" (%d of %d instances above the "
		       "SLO)%s; the SLO allows %.4g%%",
		       100 * p->ig_ratio, p->ig_name, p->ig_bad, p->ig_of, since,
		       100 * (1 - m->objective));
	}
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

void json_num_field(struct obuf *b, const char *k, double v)
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
/* For the incident alert's text: since when (the incident's first pending
 * step) and the most anomalous member series lately, if any. */
static void incident_context(const struct svc *s, const struct snapshot *p, char *when,
                             size_t wlen, char *evid, size_t elen)
{
	int64_t since = s->fsm[AK_RISK_WARNING].active_at_ms;
	if (s->fsm[AK_RISK_CRITICAL].active_at_ms > 0 &&
	    (since <= 0 || s->fsm[AK_RISK_CRITICAL].active_at_ms < since))
		since = s->fsm[AK_RISK_CRITICAL].active_at_ms;
	when[0] = evid[0] = 0;
	if (since > 0) {
		time_t tt = (time_t)(since / 1000);
		struct tm tmv;
		gmtime_r(&tt, &tmv);
		strftime(when, wlen, " (since %H:%M UTC)", &tmv);
	}
	if (s->ev_n && p->ts_ms - s->ev_last <= EVIDENCE_GAP_MS)
		snprintf(evid, elen, " Anomalous series: %.160s (score %.2f, %u anomalous samples).",
		         s->ev_key, s->ev_score, s->ev_n);
}

/* The burn-rate alert's summary and description: the window (page or ticket)
 * whose burn is furthest above its factor. */
static void burn_text(const struct svc *s, const struct snapshot *p, int page, int ended,
                      char **sum, char **desc)
{
	const struct svc_model *m = &s->m;
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
		*sum = fmt_dup("%s%s is burning its %.4g%% availability error budget %.1fx too fast",
		               ended ? "resolved; at its peak: " : "", m->name, 100 * m->objective,
		               p->burn[best][1]);
		*desc = fmt_dup("burn rate %.1f over %lldm and %.1f over %lldm (threshold %.1f); at "
		                "this rate the %lld-day budget lasts %.1f days",
		                p->burn[best][0], (long long)(w->long_ms / MS_MIN), p->burn[best][1],
		                (long long)(w->short_ms / MS_MIN), w->factor,
		                (long long)(m->slo_period_ms / MS_DAY),
		                p->burn[best][1] > 0
		                        ? (double)m->slo_period_ms / MS_DAY / p->burn[best][1]
		                        : INFINITY);
	}
}

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
		char when[48], evid[256];
		incident_context(s, p, when, sizeof when, evid, sizeof evid);
		sum = fmt_dup("%s%s %s: %s%s", ended ? "resolved; at its peak: " : "", m->name,
		              p->hard ? "is breaching its SLO" : "is heading for an outage",
		              ex ? ex : "", ended ? "" : when);
		desc = fmt_dup("outage risk %.2f (%s at %.2f)%s. %s.%s", p->risk,
		               ak == AK_RISK_CRITICAL ? "critical" : "warning",
		               ak == AK_RISK_CRITICAL ? m->risk_critical : m->risk_warning,
		               p->hard ? ", SLO breached: paged at once" : "", ex ? ex : "", evid);
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
		burn_text(s, p, ak == AK_BURN_PAGE, ended, &sum, &desc);
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
	json_num_field(&b, "error_slo_eta_s", p->eta_err_s);
	json_num_field(&b, "error_ratio_baseline", p->er_base);
	json_num_field(&b, "error_log10_p", p->er_log10p);
	json_num_field(&b, "saturation", p->have_sat ? p->sat : NAN);
	json_num_field(&b, "saturation_eta_s", p->eta_sat_s);
	json_num_field(&b, "latency_rate_s_per_10m", p->lat_rate_10m);
	json_num_field(&b, "latency_slo_requests_per_s", p->knee_req);
	json_num_field(&b, "latency_slo_requests_eta_s", p->eta_knee_s);
	json_num_field(&b, "requests_growth_per_10m", p->grow_rel_10m);
	json_num_field(&b, "error_ratio_last_minute", p->fast_ratio);
	json_num_field(&b, "error_ratio_sustained", p->er_sus_ratio);
	json_num_field(&b, "error_ratio_spread", p->er_acc_ratio);
	json_num_field(&b, "error_ratio_spread_minutes",
	               isfinite(p->er_acc_ratio) ? (double)((int64_t)p->er_acc_min * s->bb_ms) / MS_MIN : NAN);
	if (p->ig_bad > 0) {
		obuf_puts(&b, ",\"instance_erroring\":");
		obuf_json_str(&b, p->ig_name, strlen(p->ig_name));
		json_num_field(&b, "instance_error_ratio", p->ig_ratio);
		obuf_printf(&b, ",\"instances_erroring\":%d,\"instances_reporting\":%d", p->ig_bad, p->ig_of);
	}
	obuf_printf(&b, ",\"slo_breached\":%s", p->hard ? "true" : "false");
	if (s->ev_n && p->ts_ms - s->ev_last <= EVIDENCE_GAP_MS) {
		obuf_puts(&b, ",\"evidence_series\":");
		obuf_json_str(&b, s->ev_key, strlen(s->ev_key));
		json_num_field(&b, "evidence_score", s->ev_score);
	}
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

int push_transition(struct svc *s, int ak, enum alert_event ev, int64_t ts, double value,
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
