/* engine/commit.c — the commit step of staged ingest (engine_batch_commit,
 * engine.h): the staged samples in commit order (runs of equal timestamps,
 * grouped by shard), each shard's lock taken once per run, and the memory a
 * sample will touch prefetched a few samples ahead. */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <stdio.h>
#include <stdlib.h>

/* Prefetch distances, in samples, along the commit order: the staged
 * entry's label words and its registry slot first, then (once those are in
 * cache) the label bytes and the slot's entry of the series table (for a
 * sample staged with a line's tag set: its name's bytes and the tag set's
 * words), then the series struct it points to (and the tag set's bytes),
 * then (once the struct is in cache, so that reading its pointers does not
 * stall) the rest of the series block. Each
 * stage reads only what an earlier stage prefetched. */
#define PF_SLOT 12
#define PF_LABELS 8
#define PF_STRUCT 6
#define PF_SERIES 4

/* The series of st if its first probe hits (the usual case), else NULL. */
static const struct series *peek_series(const struct shard *sh, const struct engine_staged *st)
{
	const struct reg_slot *slot = &sh->reg.table[st->hash & sh->reg.table_mask];
	if (slot->idx1 == 0 || slot->tag != (uint32_t)(st->hash >> 32))
		return NULL;
	return sh->reg.v[slot->idx1 - 1];
}

/* What a sample will touch of its series' block (struct, label strings,
 * history ring, detector state: one allocation of about 2 KB) and of its
 * forecaster state if it has one: the label strings the commit compares
 * (not the names/values pointer arrays after them, which it does not
 * read), the history entry it writes (20 bytes, which may straddle two
 * lines), the lines of detector state the model says it needs
 * (model_prefetch: the seasonal component's one bucket, not all 48), and
 * the forecaster's first 128 bytes (all a sample touches unless it closes
 * a grid bucket: one sample in six at a 10 s interval and the 1 min grid).
 * The struct's hot part was prefetched at PF_STRUCT. */
static void prefetch_series(const struct engine *e, const struct shard *sh,
                            const struct series *s, int64_t ts_ms)
{
	const char *lab = series_lab_bytes(s), *end = series_lab_end(s);
	if (end > lab) {
		for (const char *p = lab; p < end; p += 64)
			__builtin_prefetch(p);
		__builtin_prefetch(end - 1);
	}
	if (s->hist_len > 0 || s->hist_head > 0) {
		const struct hist_entry *h = &series_hist(s, sh->reg.hist_cap)[s->hist_head];
		__builtin_prefetch(h, 1);
		__builtin_prefetch((const char *)(h + 1) - 1, 1);
	}
	model_prefetch(e->model, s->det_state, ts_ms);
	if (s->fc) {
		__builtin_prefetch(s->fc, 1);
		__builtin_prefetch((const char *)s->fc + 64, 1);
	}
}

/* The series the PF_STRUCT stage found for the entries ahead, so that the
 * PF_SERIES stage does not probe the table again: ring slot q % 8 holds
 * entry q's series (NULL: its first probe missed) when q[] says so. */
struct pf_ring {
	const struct series *s[8];
	size_t q[8];
};

/* The shards the look-ahead may read at step j: the locked shard sh for
 * the entries before end (the end of its run), and, once the next run's
 * shard has been taken ahead (engine_batch_commit: a trylock, so any shard
 * will do), nsh for the entries of that run, before nend; another shard's
 * table may be growing, so no entry beyond is looked at. */
struct pf_span {
	const struct shard *sh, *nsh;
	size_t end, nend;
};

static inline const struct shard *pf_shard(const struct pf_span *sp, size_t q)
{
	return q < sp->end ? sp->sh : q < sp->nend ? sp->nsh : NULL;
}

/* The look-ahead of the commit loop at step j: each stage looks at its
 * entry in the shard given for it (NULL: not at all; see pf_span). The
 * entries srt[] are in commit order, so reading them ahead is sequential;
 * their label words and bytes are in staging order, so each is a miss
 * unless prefetched. Inline: the usual call gives one shard for all four. */
static inline __attribute__((always_inline)) void
commit_prefetch(const struct engine_batch *b, const struct shard *sh_slot,
                const struct shard *sh_labels, const struct shard *sh_struct,
                const struct shard *sh_series, const struct engine_staged *srt, size_t j,
                struct pf_ring *ring)
{
	const struct engine_staged *st = &srt[j];
	const struct shard *sh;
	if ((sh = sh_slot)) {
		const struct engine_staged *a = &st[PF_SLOT];
		__builtin_prefetch(&sh->reg.table[a->hash & sh->reg.table_mask]);
		/* its words (STAGE_WORDS; a named entry has one 4-word record),
		 * which may straddle two lines */
		const uint32_t *w = b->sref + a->ref0;
		__builtin_prefetch(w);
		__builtin_prefetch(w + (a->named ? 4 : STAGE_WORDS(a->nref)) - 1);
	}
	if ((sh = sh_labels)) {
		const struct engine_staged *a = &st[PF_LABELS];
		const struct reg_slot *slot = &sh->reg.table[a->hash & sh->reg.table_mask];
		if (slot->idx1)
			__builtin_prefetch(&sh->reg.v[slot->idx1 - 1]);
		const uint32_t *w = b->sref + a->ref0;
		if (a->named) {
			/* the name's bytes and the tag set's words (its bytes at
			 * PF_STRUCT, once the words are in cache: reading them
			 * here would wait for them) */
			__builtin_prefetch(b->sbytes + w[2]);
			__builtin_prefetch(b->sref + w[0]);
			__builtin_prefetch(b->sref + w[0] + STAGE_WORDS(w[1]) - 1);
		} else {
			__builtin_prefetch(b->sbytes + w[0]);
		}
	}
	if ((sh = sh_struct)) {
		const struct engine_staged *a = &st[PF_STRUCT];
		const uint32_t *rec = b->sref + a->ref0;
		if (a->named && rec[1] > 0) { /* the tag set's bytes, first and last */
			const uint32_t *w = b->sref + rec[0];
			__builtin_prefetch(b->sbytes + w[0]);
			__builtin_prefetch(b->sbytes + w[0] + w[1] - 1);
		}
		const struct series *ps = peek_series(sh, a);
		ring->s[(j + PF_STRUCT) & 7] = ps;
		ring->q[(j + PF_STRUCT) & 7] = j + PF_STRUCT;
		if (ps) { /* the struct's hot part (series.h), to its end */
			const char *p = series_hot(ps), *stop = (const char *)(ps + 1);
			for (; p < stop; p += 64)
				__builtin_prefetch(p, 1);
			__builtin_prefetch(stop - 1, 1);
		}
	}
	if ((sh = sh_series)) {
		size_t q = j + PF_SERIES;
		const struct series *ps = ring->q[q & 7] == q ? ring->s[q & 7]
		                                              : peek_series(sh, &st[PF_SERIES]);
		if (ps)
			prefetch_series(b->e, sh, ps, st[PF_SERIES].ts_ms);
	}
}

/* The series of staged sample st by its label bytes (staged laid out as a
 * series keeps them: eng_copy_refs), compared whole; NULL when not found
 * so (a new series, labels out of canonical order, an empty value): the
 * caller then takes the general lookup. */
static struct series *commit_find(const struct engine_batch *b, struct shard *sh,
                                  const struct engine_staged *st)
{
	const uint32_t *w = b->sref + st->ref0;
	if (!st->named) /* its bytes in one piece */
		return st->nref ? registry_find_bytes(&sh->reg, st->hash, st->nref, b->sbytes + w[0],
		                                      w[1])
		                : NULL;
	/* {__name__=name}, then the tag set */
	struct label_seg seg[3];
	size_t nseg = 0;
	seg[nseg++] = (struct label_seg){ "__name__", 9 }; /* its NUL included */
	seg[nseg++] = (struct label_seg){ b->sbytes + w[2], (size_t)w[3] + 1 };
	size_t tn = w[1];
	w = b->sref + w[0];
	if (tn > 0)
		seg[nseg++] = (struct label_seg){ b->sbytes + w[0], w[1] };
	return registry_find_packed(&sh->reg, st->hash, st->nref, seg, nseg);
}

/* The commit order: runs of equal timestamps, each grouped by shard
 * (stable), as copies in srt[] with their staging index in order[]: the
 * entries are read once in staging order here, and in commit order after. */
static void commit_order(const struct engine_batch *b, struct engine_staged *srt,
                         uint32_t *order)
{
	size_t n = b->nst;
	for (size_t r0 = 0; r0 < n;) {
		/* the run's end and its count per shard in one pass (a batch's
		 * entries are more than the L1 holds: each pass reads them from
		 * further out) */
		size_t cnt[ENGINE_SHARDS + 1] = { 0 };
		int64_t ts = b->st[r0].ts_ms;
		size_t r1 = r0;
		for (; r1 < n && b->st[r1].ts_ms == ts; r1++)
			cnt[b->st[r1].shard + 1]++;
		for (unsigned k = 1; k <= ENGINE_SHARDS; k++)
			cnt[k] += cnt[k - 1];
		for (size_t i = r0; i < r1; i++) {
			size_t to = r0 + cnt[b->st[i].shard]++;
			srt[to] = b->st[i];
			order[to] = (uint32_t)i;
		}
		r0 = r1;
	}
}

size_t engine_batch_commit(struct engine_batch *b, engine_reject_fn fn, void *ctx)
{
	size_t n = b->nst;
	if (n == 0)
		return 0;
	size_t refused = 0;
	struct label_ref small[64];
	struct label_ref *refs = b->max_nref <= 64 ? small : malloc(b->max_nref * sizeof *refs);
	if (n > b->capsrt) { /* the scratch kept between batches (stage.c) is too small */
		free(b->srt);
		free(b->order);
		b->srt = malloc(n * sizeof *b->srt);
		b->order = malloc(n * sizeof *b->order);
		b->capsrt = n;
		if (!b->srt || !b->order) {
			free(b->srt);
			free(b->order);
			b->srt = NULL;
			b->order = NULL;
			b->capsrt = 0;
		}
	}
	uint32_t *order = b->order;
	struct engine_staged *srt = b->srt;
	char err[320];
	if (!refs || b->capsrt < n) {
		if (refs != small)
			free(refs);
		for (size_t i = 0; i < n; i++) {
			eng_reject(b, REJ_CARDINALITY);
			if (fn)
				fn(ctx, i, REJ_CARDINALITY + 1, "out of memory committing a batch");
		}
		refused = n;
		goto out;
	}
	commit_order(b, srt, order);
	struct pf_ring ring;
	for (unsigned k = 0; k < 8; k++)
		ring.q[k] = SIZE_MAX;
	/* the run of samples of st's shard ends at sp.end; the next run's
	 * shard, when taken ahead, is sp.nsh and its run ends at sp.nend */
	struct pf_span sp = { NULL, NULL, 0, 0 };
	struct shard *sh = NULL, *ahead = NULL;
	int tried = 0; /* the next run's shard was tried for this run */
	for (size_t j = 0; j < n; j++) {
		const struct engine_staged *st = &srt[j];
		if (j == sp.end) {
			tried = 0;
			/* the lock is taken once per run of a shard's samples */
			if (ahead) { /* taken ahead: srt[j] is the first of its run */
				eng_batch_hand_over(b, ahead);
				sh = ahead;
				ahead = NULL;
				sp = (struct pf_span){ sh, NULL, sp.nend, 0 };
			} else {
				sh = eng_batch_lock(b, st->shard);
				size_t end = j + 1;
				while (end < n && srt[end].shard == st->shard)
					end++;
				sp = (struct pf_span){ sh, NULL, end, 0 };
			}
		}
		if (j + PF_SLOT < sp.end) { /* all four stages in this run */
			commit_prefetch(b, sh, sh, sh, sh, srt, j, &ring);
		} else {
			/* the next run's shard, taken ahead of the switch when its
			 * lock is free (a trylock: it cannot deadlock, whatever the
			 * ranks), so that the look-ahead runs on across the switch
			 * instead of starting again at its first sample; when it is
			 * busy the look-ahead stops at the run's end */
			if (!tried && sp.end < n) {
				tried = 1;
				unsigned k = srt[sp.end].shard;
				if ((ahead = eng_batch_lock_ahead(b, k))) {
					for (sp.nend = sp.end + 1; sp.nend < n && srt[sp.nend].shard == k;)
						sp.nend++;
					sp.nsh = ahead;
				}
			}
			commit_prefetch(b, pf_shard(&sp, j + PF_SLOT), pf_shard(&sp, j + PF_LABELS),
			                pf_shard(&sp, j + PF_STRUCT), pf_shard(&sp, j + PF_SERIES), srt,
			                j, &ring);
		}
		err[0] = 0;
		int rc;
		struct series *s = commit_find(b, sh, st);
		if (s) {
			rc = eng_add_series(b, sh, s, st->ts_ms, st->value, err, sizeof err);
		} else {
			const uint32_t *w = b->sref + st->ref0;
			size_t i = 0;
			if (st->named) { /* {__name__=name}, then the tag set */
				refs[i++] = (struct label_ref){ "__name__", 8, b->sbytes + w[2], w[3] };
				w = b->sref + w[0];
			}
			/* the labels' bytes from their lengths (STAGE_WORDS) */
			const char *p = b->sbytes + w[0];
			for (w += 2; i < st->nref; i++, w += 2) {
				refs[i] = (struct label_ref){ p, w[0], p + w[0] + 1, w[1] };
				p += (size_t)w[0] + w[1] + 2;
			}
			rc = eng_add_locked(b, sh, refs, st->nref, st->hash, st->ts_ms, st->value, err,
			                    sizeof err);
		}
		if (rc) {
			refused++;
			if (fn) {
				if (!err[0])
					snprintf(err, sizeof err, "sample rejected (%s)",
					         selfstats_reject_name((enum reject_reason)(rc - 1)));
				fn(ctx, order[j], rc, err);
			}
		}
	}
	if (refs != small)
		free(refs);
out:
	b->nst = b->nsref = b->nbytes = 0;
	b->max_nref = 0;
	b->tag_ok = 0; /* its labels were in the buffers just emptied */
	return refused;
}
