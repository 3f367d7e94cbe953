/* service/json.c — the services as /api/v1/services shows them. */
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
		json_num_field(b, "error_slo_eta_s", p->eta_err_s);
		json_num_field(b, "saturation_eta_s", p->eta_sat_s);
		json_num_field(b, "peak_requests_per_s", p->peak_req);
		json_num_field(b, "peak_in_s", p->peak_in_s);
		obuf_puts(b, "},\"latency_load\":{\"points\":");
		obuf_printf(b, "%u", s->knee.npts);
		json_num_field(b, "highest_healthy_requests_per_s", s->knee.npts ? s->knee.r_max : NAN);
		json_num_field(b, "slo_requests_per_s", s->knee.ok ? s->knee.r_slo : NAN);
		json_num_field(b, "slo_requests_low_per_s", s->knee.ok ? s->knee.r_lo : NAN);
		json_num_field(b, "slo_requests_high_per_s", s->knee.ok ? s->knee.r_hi : NAN);
		json_num_field(b, "growth_per_10m", p->grow_rel_10m);
		json_num_field(b, "slo_eta_s", p->eta_knee_s);
		json_num_field(b, "slo_eta_low_s", p->eta_knee_lo_s);
		json_num_field(b, "slo_eta_high_s", p->eta_knee_hi_s);
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

int services_take_output(struct services *set, uint32_t svc, struct service_output *o)
{
	if (!set || svc >= set->n)
		return 0;
	struct svc *s = &set->v[svc];
	if (s->steps == s->steps_taken || s->snap.ts_ms <= 0)
		return 0;
	s->steps_taken = s->steps;
	const struct svc_model *m = &s->m;
	const struct snapshot *p = &s->snap;
	memset(o, 0, sizeof *o);
	o->name = m->name;
	o->ts_ms = p->ts_ms;
	o->step_ms = m->step_ms;
	o->requests = p->have_req ? p->req : NAN;
	o->total = p->have_total ? p->total : NAN;
	o->errors = p->have_total ? p->err : NAN;
	o->latency_s = p->have_lat ? p->lat_s : NAN;
	o->saturation = p->have_sat ? p->sat : NAN;
	o->instances = p->have_inst ? p->inst : NAN;
	o->capacity = p->cap > 0 ? p->cap : NAN;
	o->requests_expected = p->req_ref;
	o->requests_hi95 = p->req_hi;
	o->latency_expected_s = p->lat_ref;
	o->latency_hi95_s = p->lat_hi;
	o->eta_capacity_s = p->eta_cap_s;
	o->eta_latency_slo_s = p->eta_lat_s;
	o->eta_saturation_s = p->eta_sat_s;
	o->error_ratio = p->er_ratio;
	o->latency_threshold_s = m->lat_threshold_s > 0 ? m->lat_threshold_s : NAN;
	o->risk = p->risk;
	for (int c = 0; c < RC__COUNT && c < SERVICE_OUT_COMPONENTS; c++) {
		o->comp_name[c] = rc_name[c];
		o->comp[c] = p->comp[c];
		o->ncomp++;
	}
	for (int w = 0; m->objective > 0 && w < m->nwin && w < SERVICE_OUT_WINDOWS; w++) {
		o->win[w].long_ms = m->win[w].long_ms;
		o->win[w].short_ms = m->win[w].short_ms;
		o->win[w].factor = m->win[w].factor;
		o->win[w].burn_long = p->burn[w][0];
		o->win[w].burn_short = p->burn[w][1];
		o->win[w].action = m->win[w].page ? "page" : "ticket";
		o->nwin++;
	}
	for (int a = 0; a < AK__COUNT && a < SERVICE_OUT_ALERTS; a++) {
		const struct alert_fsm *f = &s->fsm[a];
		o->alert[a].alertname = ak_alertname[a];
		o->alert[a].severity = m->sev[a];
		o->alert[a].state = f->state;
		o->alert[a].active_at_ms = f->state != ALERT_INACTIVE ? f->active_at_ms : 0;
		o->nalerts++;
	}
	return 1;
}

const char *services_name(const struct services *set, uint32_t svc)
{
	return set && svc < set->n ? set->v[svc].m.name : NULL;
}

const char *services_role_name(uint32_t roles)
{
	static const struct {
		int role;
		const char *name;
	} order[] = { { ROLE_LATENCY, "latency" },       { ROLE_ERRORS, "errors" },
		      { ROLE_REQUESTS, "requests" },     { ROLE_SATURATION, "saturation" },
		      { ROLE_INSTANCES, "instances" },   { ROLE_TOTAL, "total" } };
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		if (roles & (1u << order[i].role))
			return order[i].name;
	return NULL;
}
