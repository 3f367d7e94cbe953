/* engine/tagset.c — staged ingest of samples that share their labels but
 * the metric name (the fields of one line-protocol line): the tag set is
 * hashed and copied once, each sample adds its name (engine.h). */
#include "config.h" /* autoconf: _GNU_SOURCE */

#include "engine/engine.h"
#include "engine/internal.h"

#include <stdio.h>
#include <string.h>

int engine_batch_stage_tags(struct engine_batch *b, const struct label_ref *tags, size_t n,
                            char *err, size_t errlen)
{
	b->tag_ok = 0;
	if (n + 1 > b->e->cfg.label_limits.max_labels) {
		snprintf(err, errlen, "too many labels (%zu, limit %zu)", n + 1,
		         b->e->cfg.label_limits.max_labels);
		return -1;
	}
	size_t bytes = 2 * n; /* a NUL after each name and value (eng_copy_refs) */
	for (size_t i = 0; i < n; i++)
		bytes += tags[i].name_len + tags[i].value_len;
	if (n + 1 > UINT16_MAX || b->nsref + STAGE_WORDS(n) > UINT32_MAX ||
	    b->nbytes + bytes > UINT32_MAX ||
	    eng_grow_arr((void **)&b->sref, &b->capsref, b->nsref + STAGE_WORDS(n), sizeof *b->sref) ||
	    eng_grow_arr((void **)&b->sbytes, &b->capbytes, b->nbytes + bytes + 1, 1)) {
		snprintf(err, errlen, "out of memory staging a sample");
		return -1;
	}
	b->tag_ref0 = (uint32_t)b->nsref;
	b->tag_n = (uint16_t)n;
	b->tag_route = 0;
	b->tag_hash = eng_copy_refs(b, tags, n, &b->tag_route);
	b->tag_ok = 1;
	return 0;
}

int engine_batch_stage_named(struct engine_batch *b, const char *name, size_t len,
                             int64_t ts_ms, double value, char *err, size_t errlen)
{
	int rc = eng_admit(b, ts_ms, value, err, errlen);
	if (rc)
		return rc;
	if (!b->tag_ok) {
		snprintf(err, errlen, "no tag set staged for metric '%.*s'", (int)(len < 64 ? len : 64),
		         name);
		return eng_reject(b, REJ_LABELS);
	}
	/* one label's words: { tag set's ref0, its count, name offset, length } */
	struct engine_staged *st = eng_stage_slot(b, 4, (size_t)b->tag_n + 1, len + 1, ts_ms, value,
	                                          err, errlen);
	if (!st)
		return REJ_CARDINALITY + 1;
	/* the name is hashed by the loads that copy it (as eng_copy_refs) */
	uint64_t na, nb, va, vb;
	char *d = b->sbytes + b->nbytes;
	label_str_words("__name__", 8, &na, &nb);
	label_str_words_copy(d, name, len, &va, &vb);
	d[len] = 0; /* as eng_copy_refs: the name NUL-terminated */
	uint64_t ph = len ? label_pair_hash_words(na, nb, 8, va, vb, len) : 0;
	uint64_t acc = b->tag_route + eng_route_of("__name__", 8, name, len, ph);
	st->hash = labels_hash_from_sum(b->tag_hash + ph);
	st->shard = (uint8_t)(eng_route_mix(acc) % ENGINE_SHARDS);
	st->named = 1;
	uint32_t *w = b->sref + b->nsref;
	w[0] = b->tag_ref0;
	w[1] = b->tag_n;
	w[2] = (uint32_t)b->nbytes;
	w[3] = (uint32_t)len;
	b->nbytes += len + 1;
	b->nsref += 4;
	return 0;
}
