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
