/* service/canary.c — errors concentrated on some instances: a canary
 * deploy, one bad host. The service's error ratio dilutes them (one
 * instance of three at 10% errors is 3.3% for the service, and a 5-minute
 * window takes minutes to show even that), so each member series is also
 * grouped by its `instance` label, and per instance the error ratio of the
 * last steps is tested against the error SLO. The mathematics and the
 * measurements are in docs/outage-prediction.md ("Errors on some
 * instances"). */
#include "config.h"

#include "service/service.h"
#include "service/internal.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* An instance counts as erroring when, over its last j steps for some j
 * from 1 to IG_WIN_MS, it had at least IG_MIN_ERRORS errors, a ratio at
 * least the error SLO (and 3x the service's baseline), and the ratio is
 * significantly above half the SLO: P(X >= x) <= 10^IG_LOG10P for X ~
 * Binomial(n, SLO/2). */
#define IG_MIN_ERRORS 5
#define IG_LOG10P (-6.0)

/* The value of label `instance` in a series key name{k="v",...}; 0 if
 * absent (or longer than the buffer). */
static int key_instance(const char *key, char *out, size_t cap)
{
	static const char pat[] = "instance=\"";
	const char *b = key ? strchr(key, '{') : NULL;
	for (const char *p = b; p && (p = strstr(p, pat)) != NULL; p++) {
		if (p[-1] != '{' && p[-1] != ',')
			continue;
		const char *v = p + sizeof pat - 1;
		size_t n = 0;
		while (*v && *v != '"') {
			if (*v == '\\' && v[1])
				v++;
			if (n + 1 >= cap)
				return 0;
			out[n++] = *v++;
		}
		if (*v != '"')
			return 0;
		out[n] = 0;
		return 1;
	}
	return 0;
}

/* The instance group of a new member series (once per series): its index,
 * or -1 when the key has no `instance` label or the table is full. */
int canary_group(struct svc *s, const char *key)
{
	char name[IG_NAME];
	if (!key_instance(key, name, sizeof name))
		return -1;
	for (int g = 0; g < s->nig; g++)
		if (!strcmp(s->ig[g].name, name))
			return g;
	if (s->nig >= IG_MAX)
		return -1;
	struct inst_grp *q = &s->ig[s->nig];
	memset(q, 0, sizeof *q);
	memcpy(q->name, name, strlen(name) + 1);
	for (int j = 0; j < IG_W; j++)
		q->k[j] = INT64_MIN;
	q->run_ms = INT64_MIN;
	return s->nig++;
}

/* Is instance q erroring, on the windows of 1..w steps ending at k? Fills
 * its ratio and log10 p-value on the first window that shows it. */
static int grp_erroring(const struct inst_grp *q, int64_t k, int w, double thr, double p_ref,
                        double *ratio, double *l10p)
{
	double sx = 0, sn = 0;
	for (int j = 0; j < w; j++) {
		size_t sl = (size_t)((((k - j) % IG_W) + IG_W) % IG_W);
		if (q->k[sl] != k - j)
			break;
		sx += q->x[sl];
		sn += q->n[sl];
		if (!(sn > 0) || sx < IG_MIN_ERRORS || sx / sn < thr)
			continue;
		double l = log_binom_upper(sx, sn, p_ref) / M_LN10;
		if (l <= IG_LOG10P) {
			*ratio = sx / sn;
			*l10p = l;
			return 1;
		}
	}
	return 0;
}

/* Aggregate the members per instance for grid bucket k (their carried
 * values are those of this step), test each instance, fill the snapshot's
 * ig_* fields and return the risk component: 0, or a warning (0.55 to
 * 0.75 by how far the worst instance is above the SLO) while some
 * instance's errors are above the error SLO. Never critical on its own: the
 * service as a whole is not yet breaching its SLO. */
double canary_step(struct svc *s, int64_t k)
{
	const struct svc_model *m = &s->m;
	struct snapshot *p = &s->snap;
	p->ig_bad = p->ig_of = 0;
	p->ig_ratio = NAN;
	p->ig_log10p = 0;
	p->ig_since_ms = 0;
	p->ig_name[0] = 0;
	if (!(m->objective > 0) || s->nig < 2)
		return 0;
	double tot[IG_MAX] = { 0 }, err[IG_MAX] = { 0 }, rat[IG_MAX] = { 0 };
	int nt[IG_MAX] = { 0 }, nr[IG_MAX] = { 0 };
	int64_t stale_steps = m->stale_ms / m->step_ms;
	for (size_t i = 0; i < s->nmem; i++) {
		const struct member *mb = &s->mem[i];
		int g = mb->grp;
		if (g < 0 || g >= s->nig || mb->cf_k == INT64_MIN || k - mb->cf_k > stale_steps)
			continue;
		if (mb->roles & (1u << ROLE_TOTAL))
			tot[g] += mb->cf_val, nt[g]++;
		if (mb->roles & (1u << ROLE_ERRORS))
			err[g] += mb->cf_val;
		if (mb->roles & (1u << ROLE_ERROR_RATIO))
			rat[g] += clamp01(mb->cf_val), nr[g]++;
	}
	double step_s = (double)m->step_ms / 1000.0, slo = 1 - m->objective;
	double thr = slo > 3 * p->er_base ? slo : 3 * p->er_base;
	int w = (int)(IG_WIN_MS / m->step_ms);
	w = w < 1 ? 1 : w > IG_W ? IG_W : w;
	int worst = -1;
	for (int g = 0; g < s->nig; g++) {
		struct inst_grp *q = &s->ig[g];
		double e = m->has[ROLE_ERRORS] ? err[g] : nr[g] ? rat[g] / nr[g] * tot[g] : NAN;
		if (!nt[g] || !isfinite(e)) {
			q->run_ms = INT64_MIN;
			continue;
		}
		double n = tot[g] * step_s, x = e * step_s;
		size_t sl = (size_t)(((k % IG_W) + IG_W) % IG_W);
		q->k[sl] = k;
		q->n[sl] = n;
		q->x[sl] = x < n ? x : n;
		p->ig_of++;
		/* since when: the first step of its current run at half the
		 * threshold or more (a step without requests does not break it) */
		if (n > 0 && q->x[sl] >= 0.5 * thr * n) {
			if (q->run_ms == INT64_MIN)
				q->run_ms = k * m->step_ms;
		} else if (n > 0) {
			q->run_ms = INT64_MIN;
		}
		double r, l;
		if (!grp_erroring(q, k, w, thr, 0.5 * slo, &r, &l))
			continue;
		p->ig_bad++;
		if (worst < 0 || r > p->ig_ratio) {
			worst = g;
			p->ig_ratio = r;
			p->ig_log10p = l;
			p->ig_since_ms = q->run_ms != INT64_MIN ? q->run_ms : k * m->step_ms;
		}
	}
	if (worst < 0)
		return 0;
	memcpy(p->ig_name, s->ig[worst].name, sizeof p->ig_name);
	return 0.55 + 0.2 * ramp(p->ig_ratio / slo, 1, 3);
}
