/* engine/read.c — the readers: every selected series with its last
 * values, its history, or its forecast, shard by shard. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The shard walk every reader uses: each series of each shard in turn, with
 * that shard's lock held while the caller looks at it. The lock is released
 * and retaken every READ_CHUNK series so that a scrape of /metrics or a wide
 * query never stalls ingest for long. Safe because series are never removed
 * and indices are stable; the pointer is re-read from sh->reg.v after
 * reacquiring (a model reload may move it). walk_next() returns NULL at the
 * end with no lock held; a caller that stops early calls walk_stop(). */
#define READ_CHUNK 1024

struct shard_walk {
	struct engine *e;
	unsigned sk;             /* shard being walked */
	unsigned end;            /* one past the last shard to walk */
	size_t i;                /* next series in it */
	struct shard *sh;        /* locked shard, or NULL */
	char key[512];           /* walk_key(): the current series' key */
	char *big;               /* ... when it is longer (freed at the end of the walk) */
	size_t bigcap;
};

static void walk_begin(struct shard_walk *w, struct engine *e)
{
	w->e = e;
	w->sk = 0;
	w->end = ENGINE_SHARDS;
	w->i = 0;
	w->sh = NULL;
	w->big = NULL;
	w->bigcap = 0;
}

/* A walk of shards [k0, k1) only. */
static void walk_begin_range(struct shard_walk *w, struct engine *e, unsigned k0, unsigned k1)
{
	walk_begin(w, e);
	w->sk = k0;
	w->end = k1;
}

static const struct series *walk_next(struct shard_walk *w)
{
	for (;;) {
		if (!w->sh) {
			if (w->sk >= w->end) {
				free(w->big);
				w->big = NULL;
				w->bigcap = 0;
				return NULL;
			}
			w->sh = &w->e->sh[w->sk];
			shard_lock(w->sh);
			w->i = 0;
		}
		if (w->i < w->sh->reg.n) {
			if (w->i > 0 && w->i % READ_CHUNK == 0) {
				shard_unlock(w->sh);
				shard_lock(w->sh);
			}
			return w->sh->reg.v[w->i++];
		}
		shard_unlock(w->sh);
		w->sh = NULL;
		w->sk++;
	}
}

static void walk_stop(struct shard_walk *w)
{
	if (w->sh)
		shard_unlock(w->sh);
	w->sh = NULL;
	free(w->big);
	w->big = NULL;
	w->bigcap = 0;
	w->sk = w->end;
}

static int series_selected(const struct series *s, const struct selector *sel, size_t nsel)
{
	if (nsel == 0)
		return 1;
	for (size_t i = 0; i < nsel; i++)
		if (selector_matches(&sel[i], &s->labels))
			return 1;
	return 0;
}

/* The key of the series walk_next() returned (series_key), valid until the
 * next walk_next(); a key too long for w->key that cannot be given room is
 * cut short (out of memory). Written only when a reader asks for it
 * (engine_series_key): /metrics, for one, never does. */
static const char *walk_key(struct shard_walk *w, const struct series *s)
{
	size_t len = series_key(s, w->key, sizeof w->key);
	if (len < sizeof w->key)
		return w->key;
	if (len >= w->bigcap) {
		char *nb = realloc(w->big, len + 1);
		if (!nb)
			return w->key;
		w->big = nb;
		w->bigcap = len + 1;
	}
	series_key(s, w->big, w->bigcap);
	return w->big;
}

const char *engine_series_key(const struct series_info *si)
{
	return walk_key(si->priv_walk, si->priv_series);
}

static void fill_info(struct shard_walk *w, const struct series *s, struct series_info *si)
{
	const struct shard *sh = w->sh;
	si->labels = &s->labels;
	si->priv_series = s;
	si->priv_walk = w;
	si->samples = s->samples;
	si->first_ts_ms = s->first_ts_ms;
	si->last_ts_ms = s->last_ts_ms;
	si->last_value = s->last_value;
	si->last = (struct det_result){ .score = s->last.score,
		                        .expected = s->last.expected,
		                        .lower = s->last.lower,
		                        .upper = s->last.upper,
		                        .direction = s->last_direction,
		                        .component = s->last_comp && s->last_comp < sh->ncomps ?
		                                             sh->comps[s->last_comp] :
		                                             NULL };
	si->alert_state = s->alert.state;
	si->kind = s->kind;
}

unsigned engine_shard_count(void)
{
	return ENGINE_SHARDS;
}

uint64_t engine_shard_generation(struct engine *e, unsigned k)
{
	if (k >= ENGINE_SHARDS)
		return 0;
	struct shard *sh = &e->sh[k];
	shard_lock(sh);
	uint64_t g = sh->gen;
	shard_unlock(sh);
	return g;
}

/* engine_series_foreach() over shards [k0, k1). */
static int series_shards(struct engine *e, unsigned k0, unsigned k1, const struct selector *sel,
                         size_t nsel, engine_series_fn fn, void *ctx)
{
	int rc = 0;
	struct shard_walk w;
	walk_begin_range(&w, e, k0, k1);
	for (const struct series *s; rc == 0 && (s = walk_next(&w));) {
		if (!series_selected(s, sel, nsel))
			continue;
		struct series_info si;
		fill_info(&w, s, &si);
		rc = fn(ctx, &si);
	}
	walk_stop(&w);
	return rc;
}

int engine_series_foreach(struct engine *e, const struct selector *sel, size_t nsel,
                          engine_series_fn fn, void *ctx)
{
	return series_shards(e, 0, ENGINE_SHARDS, sel, nsel, fn, ctx);
}

int engine_series_foreach_shard(struct engine *e, unsigned k, const struct selector *sel,
                                size_t nsel, engine_series_fn fn, void *ctx)
{
	if (k >= ENGINE_SHARDS)
		return -1;
	return series_shards(e, k, k + 1, sel, nsel, fn, ctx);
}

int engine_history(struct engine *e, const struct selector *sel, size_t nsel, int64_t start_ms,
                   int64_t end_ms, engine_history_fn fn, void *ctx)
{
	int rc = 0;
	size_t cap = e->cfg.history_points;
	struct history_point *pts = malloc((cap ? cap : 1) * sizeof *pts);
	if (!pts)
		return -1;
	struct shard_walk w;
	walk_begin(&w, e);
	for (const struct series *s; rc == 0 && (s = walk_next(&w));) {
		const struct shard *sh = w.sh;
		if (!series_selected(s, sel, nsel))
			continue;
		size_t n = 0;
		for (size_t k = 0; k < s->hist_len; k++) {
			struct hist_point h;
			series_hist_get(s, cap, k, &h);
			if (h.ts_ms < start_ms || h.ts_ms > end_ms)
				continue;
			pts[n++] = (struct history_point){ .ts_ms = h.ts_ms,
				                           .value = (float)h.value,
				                           .score = (float)h.score,
				                           .expected = (float)h.expected,
				                           .lower = (float)h.lower,
				                           .upper = (float)h.upper,
				                           .direction = (int8_t)h.direction,
				                           .component = h.comp && h.comp < sh->ncomps ?
				                                                sh->comps[h.comp] :
				                                                NULL };
		}
		struct series_info si;
		fill_info(&w, s, &si);
		rc = fn(ctx, &si, pts, n);
	}
	walk_stop(&w);
	free(pts);
	return rc;
}

/* Is s a selected gauge or derived series, with forecasting on? */
static int forecastable(const struct engine *e, const struct series *s,
                        const struct selector *sel, size_t nsel)
{
	return e->fc_size && s->kind != SERIES_COUNTER && s->kind != SERIES_BUCKET &&
	       series_selected(s, sel, nsel);
}

/* The forecaster state of the series the walk is at (its shard is locked),
 * made now if it has none (eng_forecaster), and its summary in *info (all
 * zero, not ready, when there is no room for one). NULL = none. */
static const void *walk_forecaster(struct shard_walk *w, struct forecast_info *info)
{
	const void *st = eng_forecaster(w->e, w->sh, w->sh->reg.v[w->i - 1]);
	if (st)
		forecast_info_get(st, info);
	else
		memset(info, 0, sizeof *info);
	return st;
}

/* Bands never extend beyond what the series' unit allows (no negative
 * latency, ratios in [0, 1]; forecast_unit_range() reads the metric name). */
static void clip_to_unit(const char *key, struct forecast_point *pts, size_t n)
{
	double lo, hi;
	if (n && forecast_unit_range(key, &lo, &hi))
		forecast_clip(pts, n, lo, hi);
}

/* engine_forecast() over shards [k0, k1), with the want filter. */
static int forecast_shards(struct engine *e, unsigned k0, unsigned k1, const struct selector *sel,
                           size_t nsel, int64_t step_ms, size_t n, double limit, int above,
                           engine_series_fn want, engine_forecast_fn fn, void *ctx)
{
	if (n == 0 || step_ms <= 0)
		return -1;
	struct forecast_point *pts = malloc(n * sizeof *pts);
	if (!pts)
		return -1;
	int rc = 0;
	struct shard_walk w;
	walk_begin_range(&w, e, k0, k1);
	for (const struct series *s; rc == 0 && (s = walk_next(&w));) {
		if (!forecastable(e, s, sel, nsel))
			continue;
		struct series_info si;
		fill_info(&w, s, &si);
		if (want && !want(ctx, &si))
			continue;
		struct forecast_info info;
		const void *st = walk_forecaster(&w, &info);
		size_t got = 0;
		if (st && forecast_predict(&e->cfg.forecast_params, st, s->last_ts_ms + step_ms,
		                           step_ms, n, pts) == 0)
			got = n;
		clip_to_unit(labels_metric_name(&s->labels), pts, got);
		struct breach br, *brp = NULL;
		if (got && !isnan(limit) &&
		    forecast_time_to_breach(&e->cfg.forecast_params, st, s->last_ts_ms,
		                            (int64_t)n * step_ms, limit, above, &br) == 0)
			brp = &br;
		rc = fn(ctx, &si, pts, got, brp, &info);
	}
	walk_stop(&w);
	free(pts);
	return rc;
}

int engine_forecast(struct engine *e, const struct selector *sel, size_t nsel, int64_t step_ms,
                    size_t n, double limit, int above, engine_forecast_fn fn, void *ctx)
{
	return forecast_shards(e, 0, ENGINE_SHARDS, sel, nsel, step_ms, n, limit, above, NULL, fn,
	                       ctx);
}

int engine_forecast_shard(struct engine *e, unsigned k, const struct selector *sel, size_t nsel,
                          int64_t step_ms, size_t n, engine_series_fn want,
                          engine_forecast_fn fn, void *ctx)
{
	if (k >= ENGINE_SHARDS)
		return -1;
	return forecast_shards(e, k, k + 1, sel, nsel, step_ms, n, NAN, 1, want, fn, ctx);
}

int engine_forecast_at(struct engine *e, const struct selector *sel, size_t nsel, int64_t from_ms,
                       int64_t step_ms, size_t n, engine_forecast_fn fn, void *ctx)
{
	int64_t last_grid;
	if (n == 0 || step_ms <= 0 || n > SIZE_MAX / sizeof(struct forecast_point) ||
	    __builtin_mul_overflow((int64_t)(n - 1), step_ms, &last_grid) ||
	    __builtin_add_overflow(from_ms, last_grid, &last_grid))
		return -1;
	struct forecast_point *pts = malloc(n * sizeof *pts);
	if (!pts)
		return -1;
	int rc = 0;
	struct shard_walk w;
	walk_begin(&w, e);
	for (const struct series *s; rc == 0 && (s = walk_next(&w));) {
		if (!forecastable(e, s, sel, nsel))
			continue;
		struct series_info si;
		fill_info(&w, s, &si);
		struct forecast_info info;
		const void *st = walk_forecaster(&w, &info);
		/* k0: the first grid index strictly after the last sample */
		size_t k0 = 0, got = 0;
		if (s->last_ts_ms >= last_grid)
			k0 = n;
		else if (s->last_ts_ms >= from_ms)
			k0 = (size_t)((s->last_ts_ms - from_ms) / step_ms) + 1;
		if (st && k0 < n &&
		    forecast_predict(&e->cfg.forecast_params, st, from_ms + (int64_t)k0 * step_ms,
		                     step_ms, n - k0, pts) == 0)
			got = n - k0;
		clip_to_unit(labels_metric_name(&s->labels), pts, got);
		rc = fn(ctx, &si, pts, got, NULL, &info);
	}
	walk_stop(&w);
	free(pts);
	return rc;
}
