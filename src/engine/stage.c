/* engine/stage.c — the staging buffers of staged ingest (engine_batch_stage,
 * engine_batch_commit: engine.h), kept in the engine between batches.
 *
 * A batch's buffers (the staged entries, their label words and bytes, and
 * the commit's ordered copy of the entries) are taken from the engine's pool
 * when the batch begins and given back when it ends, so the next request
 * reuses memory that is already mapped: a 5,000-line body of Telegraf-style
 * lines stages about 35,000 samples, 4 MB with the commit's copy, and
 * allocating and returning that per request cost page faults on every one.
 * The pool keeps at most STAGE_POOL sets (the default number of concurrent
 * writes) of at most STAGE_KEEP bytes each, 64 MiB in all whatever the number
 * of connections; a larger batch's buffers are freed when it ends. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

#include "util/lockrank.h"

#define STAGE_KEEP ((size_t)8 << 20)

static size_t set_bytes(const struct stage_bufs *v)
{
	return v->capst * sizeof *v->st + v->capsref * sizeof *v->sref + v->capbytes +
	       v->capsrt * (sizeof *v->srt + sizeof *v->order);
}

static void set_free(struct stage_bufs *v)
{
	free(v->st);
	free(v->sref);
	free(v->sbytes);
	free(v->srt);
	free(v->order);
	memset(v, 0, sizeof *v);
}

void engine_batch_begin(struct engine *e, struct engine_batch *b)
{
	memset(b, 0, sizeof *b);
	b->e = e;
	b->shard = -1;
	b->ts_lo = -ENGINE_TS_LIMIT_MS; /* no clock: the limits alone (engine_batch_set_clock) */
	b->ts_hi = ENGINE_TS_LIMIT_MS;
	struct stage_bufs v = { 0 };
	lockrank_lock(&e->stage.mu, LOCK_RANK_STAGE);
	if (e->stage.n > 0) /* the set given back last: the likeliest in cache */
		v = e->stage.v[--e->stage.n];
	lockrank_unlock(&e->stage.mu);
	b->st = v.st;
	b->capst = v.capst;
	b->sref = v.sref;
	b->capsref = v.capsref;
	b->sbytes = v.sbytes;
	b->capbytes = v.capbytes;
	b->srt = v.srt;
	b->order = v.order;
	b->capsrt = v.capsrt;
}

void eng_stage_release(struct engine *e, struct engine_batch *b)
{
	struct stage_bufs v = { b->st, b->capst, b->sref, b->capsref, b->sbytes, b->capbytes,
		                b->srt, b->order, b->capsrt };
	b->st = b->srt = NULL;
	b->sref = b->order = NULL;
	b->sbytes = NULL;
	b->capst = b->capsref = b->capbytes = b->capsrt = 0;
	size_t bytes = set_bytes(&v);
	int kept = 0;
	if (bytes > 0 && bytes <= STAGE_KEEP) {
		lockrank_lock(&e->stage.mu, LOCK_RANK_STAGE);
		if (e->stage.n < STAGE_POOL) {
			e->stage.v[e->stage.n++] = v;
			kept = 1;
		}
		lockrank_unlock(&e->stage.mu);
	}
	if (!kept)
		set_free(&v);
}

void eng_stage_pool_free(struct stage_pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		set_free(&p->v[i]);
	p->n = 0;
	pthread_mutex_destroy(&p->mu);
}
