/* service/persist.c — what a service has learnt, as a versioned blob that the
 * engine checkpoints in the store (services_state_take) and hands back at
 * start-up (services_state_load).
 *
 * Blob layout (native byte order; a checkpoint is read back by the same
 * build on the same machine, and anything else is dropped, never misread):
 *
 *   struct svc_state_head   magic "FSV1", format, steps, layout and model
 *                           hashes, total length
 *   struct svc              the runtime struct with its model and every
 *                           pointer zeroed (plain numbers: grid, counters,
 *                           burn-rate window sums, error baseline, trends,
 *                           daily bins, snapshots, evidence)
 *   fcst                    FC__COUNT forecaster states (fc_size bytes each)
 *   ref[f][j]               the reference-forecast rings
 *   bb_x, bb_n_             the burn-rate bucket rings
 *   er_x, er_n              the error-ratio window rings
 *
 * The layout hash covers the sizes that shape these bytes (sizeof struct
 * svc, ring lengths, SVC_STATE_FORMAT); the model hash the parameters the
 * learned state depends on (grid step, lag, reference horizon, windows,
 * forecaster parameters). A mismatch in either drops the blob. Bump
 * SVC_STATE_FORMAT whenever a field of struct svc changes meaning. */
#include "config.h"

#include "service/service.h"
#include "service/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SVC_STATE_MAGIC 0x31565346u /* "FSV1" */
#define SVC_STATE_FORMAT 4u

struct svc_state_head {
	uint32_t magic;
	uint32_t format;
	uint64_t steps;          /* grid steps evaluated: first, so tools can read it */
	uint64_t layout;         /* hash of the sizes below the header */
	uint64_t model;          /* hash of the model parameters the state depends on */
	uint64_t len;            /* the whole blob */
};

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++) {
		h ^= c[i];
		h *= 1099511628211ULL;
	}
	return h;
}
#define FNV0 14695981039346656037ULL
#define HASH(h, v) ((h) = fnv((h), &(v), sizeof(v)))

static uint64_t layout_hash(const struct svc *s)
{
	uint64_t h = FNV0;
	uint64_t v[] = { SVC_STATE_FORMAT, sizeof(struct svc), sizeof(struct snapshot),
		         sizeof(struct alert_fsm), s->fc_size, s->bb_n, s->er_steps, NDAYBIN,
		         SVC_MAX_WIN, AK__COUNT, FC__COUNT, NREF };
	HASH(h, v);
	for (int j = 0; j < NREF; j++)
		HASH(h, s->ref_steps[j]);
	return h;
}

static uint64_t model_hash(const struct svc *s)
{
	const struct svc_model *m = &s->m;
	uint64_t h = FNV0;
	int obj = m->objective > 0;
	HASH(h, m->step_ms);
	HASH(h, m->lag_steps);
	HASH(h, m->reference_ms);
	HASH(h, m->er_window_ms);
	HASH(h, m->nwin);
	HASH(h, obj);
	HASH(h, s->bb_ms);
	for (int w = 0; w < m->nwin; w++) {
		HASH(h, m->win[w].long_ms);
		HASH(h, m->win[w].short_ms);
	}
	for (int f = 0; f < FC__COUNT; f++) {
		const struct forecast_params *p = &s->fp[f];
		double d[] = { p->alpha, p->beta, p->phi, p->gamma_daily, p->gamma_weekly,
			       p->acf_threshold, p->quantile_rate, p->scale_rate, p->huber_k,
			       p->profile_clip };
		int64_t i[] = { p->fit, p->fit_horizon_ms, p->detect_season, p->mode,
			        p->min_step_ms, p->max_step_ms, p->min_steps, p->median_correct,
			        p->shift_run };
		HASH(h, d);
		HASH(h, i);
	}
	return h;
}

static size_t ring_bytes(const struct svc *s)
{
	size_t n = FC__COUNT * s->fc_size;
	for (int f = 0; f < FC__COUNT; f++)
		for (int j = 0; j < NREF; j++)
			n += (size_t)s->ref_steps[j] * sizeof(struct fc_ref);
	n += 2 * s->bb_n * sizeof(double) + 2 * s->er_steps * sizeof(double);
	return n;
}

static size_t blob_len(const struct svc *s)
{
	return sizeof(struct svc_state_head) + sizeof(struct svc) + ring_bytes(s);
}

static unsigned char *put(unsigned char *p, const void *src, size_t n)
{
	memcpy(p, src, n);
	return p + n;
}

static const unsigned char *get(const unsigned char *p, void *dst, size_t n)
{
	memcpy(dst, p, n);
	return p + n;
}

int services_state_take(struct services *set, uint32_t svc, void **blob, size_t *len)
{
	if (!set || svc >= set->n)
		return 0;
	struct svc *s = &set->v[svc];
	if (!s->steps || s->steps == s->saved_steps)
		return 0;
	size_t n = blob_len(s);
	unsigned char *b = malloc(n);
	if (!b)
		return -1;
	struct svc_state_head h = { .magic = SVC_STATE_MAGIC, .format = SVC_STATE_FORMAT,
		                    .steps = s->steps, .layout = layout_hash(s),
		                    .model = model_hash(s), .len = n };
	/* the struct with its model and every pointer zeroed: numbers only */
	struct svc c = *s;
	memset(&c.m, 0, sizeof c.m);
	c.mem = NULL;
	c.nmem = c.capmem = 0;
	c.mtab = NULL;
	c.mmask = 0;
	c.fcst = NULL;
	memset(c.ref, 0, sizeof c.ref);
	c.bb_x = c.bb_n_ = NULL;
	c.er_x = c.er_n = NULL;
	unsigned char *p = put(b, &h, sizeof h);
	p = put(p, &c, sizeof c);
	p = put(p, s->fcst, FC__COUNT * s->fc_size);
	for (int f = 0; f < FC__COUNT; f++)
		for (int j = 0; j < NREF; j++)
			p = put(p, s->ref[f][j], (size_t)s->ref_steps[j] * sizeof(struct fc_ref));
	p = put(p, s->bb_x, s->bb_n * sizeof(double));
	p = put(p, s->bb_n_, s->bb_n * sizeof(double));
	p = put(p, s->er_x, s->er_steps * sizeof(double));
	put(p, s->er_n, s->er_steps * sizeof(double));
	s->saved_steps = s->steps;
	*blob = b;
	*len = n;
	return 1;
}

void services_state_unsaved(struct services *set, const char *name)
{
	for (size_t i = 0; set && name && i < set->n; i++)
		if (!strcmp(set->v[i].m.name, name))
			set->v[i].saved_steps = 0;
}

int services_state_load(struct services *set, const char *name, const void *blob, size_t len,
                        char *why, size_t whylen)
{
	struct svc *s = NULL;
	for (size_t i = 0; set && name && i < set->n; i++)
		if (!strcmp(set->v[i].m.name, name))
			s = &set->v[i];
	if (!s) {
		snprintf(why, whylen, "no such service");
		return 1;
	}
	struct svc_state_head h;
	if (len < sizeof h) {
		snprintf(why, whylen, "truncated state (%zu bytes)", len);
		return -1;
	}
	memcpy(&h, blob, sizeof h);
	if (h.magic != SVC_STATE_MAGIC || h.format != SVC_STATE_FORMAT) {
		snprintf(why, whylen, "state format %u, this build reads %u", h.format,
		         SVC_STATE_FORMAT);
		return -1;
	}
	if (h.model != model_hash(s)) {
		snprintf(why, whylen, "model changed (grid, windows or forecaster)");
		return -1;
	}
	if (h.layout != layout_hash(s)) {
		snprintf(why, whylen, "state layout of another build");
		return -1;
	}
	if (h.len != len || len != blob_len(s)) {
		snprintf(why, whylen, "truncated state (%zu bytes, %zu expected)", len, blob_len(s));
		return -1;
	}
	const unsigned char *p = (const unsigned char *)blob + sizeof h;
	struct svc c;
	p = get(p, &c, sizeof c);
	for (int a = 0; a < AK__COUNT; a++)
		if (alert_fsm_check(&c.fsm[a]) < 0) {
			snprintf(why, whylen, "implausible alert state");
			return -1;
		}
	/* numbers from the blob; the model, the allocations, the members and
	 * the alert state machines stay (the store's open alerts are the truth
	 * about alerts: services_restore_alert) */
	struct svc keep = *s;
	*s = c;
	s->m = keep.m;
	s->mem = keep.mem;
	s->nmem = keep.nmem;
	s->capmem = keep.capmem;
	s->mtab = keep.mtab;
	s->mmask = keep.mmask;
	memcpy(s->ig, keep.ig, sizeof s->ig); /* the members' instance groups */
	s->nig = keep.nig;
	memcpy(s->fp, keep.fp, sizeof s->fp);
	s->fcst = keep.fcst;
	s->fc_size = keep.fc_size;
	memcpy(s->ref_steps, keep.ref_steps, sizeof s->ref_steps);
	memcpy(s->ref, keep.ref, sizeof s->ref);
	s->bb_ms = keep.bb_ms;
	s->bb_n = keep.bb_n;
	s->bb_x = keep.bb_x;
	s->bb_n_ = keep.bb_n_;
	memcpy(s->bwin_len, keep.bwin_len, sizeof s->bwin_len);
	s->er_steps = keep.er_steps;
	s->er_x = keep.er_x;
	s->er_n = keep.er_n;
	memcpy(s->fsm, keep.fsm, sizeof s->fsm);
	s->ev_key[sizeof s->ev_key - 1] = 0;
	s->steps_taken = s->steps; /* the restored snapshot is not a new step to export */
	s->saved_steps = s->steps;
	p = get(p, s->fcst, FC__COUNT * s->fc_size);
	for (int f = 0; f < FC__COUNT; f++)
		for (int j = 0; j < NREF; j++)
			p = get(p, s->ref[f][j], (size_t)s->ref_steps[j] * sizeof(struct fc_ref));
	p = get(p, s->bb_x, s->bb_n * sizeof(double));
	p = get(p, s->bb_n_, s->bb_n * sizeof(double));
	p = get(p, s->er_x, s->er_steps * sizeof(double));
	get(p, s->er_n, s->er_steps * sizeof(double));
	return 0;
}
