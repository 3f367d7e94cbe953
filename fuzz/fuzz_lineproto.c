/* fuzz_lineproto.c — fuzz target for the line-protocol parser: every input is
 * parsed at each precision, with the default limits and with none, and every
 * reported point is checked for the parser's promises (spans inside the input
 * or the scratch buffer, sorted unique tags, at least one field, valid
 * booleans, finite floats). Linked with fuzz/standalone.c, `make check`
 * replays fuzz/corpus/lineproto/. */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/line.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void touch(struct lp_str s, volatile unsigned *sum)
{
	/* read every byte so ASan sees any out-of-bounds span */
	for (size_t i = 0; i < s.len; i++)
		*sum += (unsigned char)s.p[i];
}

static int check_point(void *ctx, const struct lp_point *pt, size_t lineno)
{
	volatile unsigned *sum = ctx;
	if (lineno == 0 || pt->name.len == 0 || pt->nfields == 0)
		abort();
	touch(pt->name, sum);
	for (size_t i = 0; i < pt->ntags; i++) {
		touch(pt->tags[i].key, sum);
		touch(pt->tags[i].value, sum);
		if (pt->tags[i].key.len == 0 || pt->tags[i].value.len == 0)
			abort();
		if (i > 0) {
			const struct lp_str *a = &pt->tags[i - 1].key, *b = &pt->tags[i].key;
			size_t n = a->len < b->len ? a->len : b->len;
			int c = memcmp(a->p, b->p, n);
			if (c > 0 || (c == 0 && a->len >= b->len))
				abort(); /* not sorted, or duplicate */
		}
	}
	for (size_t i = 0; i < pt->nfields; i++) {
		const struct lp_field *f = &pt->fields[i];
		touch(f->key, sum);
		if (f->key.len == 0)
			abort();
		if (f->type == LP_STRING)
			touch(f->v.s, sum);
		if (f->type == LP_BOOL && f->v.b != 0 && f->v.b != 1)
			abort();
		if (f->type == LP_FLOAT && !isfinite(f->v.f))
			abort();
	}
	return (int)(pt->time_ns & 1) && (pt->nfields & 2); /* sometimes reject */
}

static void check_error(void *ctx, size_t lineno, const char *reason)
{
	if (lineno == 0 || !reason || !reason[0] || strlen(reason) > 300)
		abort();
	(void)ctx;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum lp_precision precs[] = { LP_NS, LP_US, LP_MS, LP_S };
	struct lp_limits none = { 0, 0, 0, 0, 0 };
	struct lp_limits tiny = { 32, 2, 2, 8, 8 };
	const struct lp_limits *lims[] = { NULL, &none, &tiny };
	volatile unsigned sum = 0;
	/* copy so that reading past `size` is caught even if the caller's
	 * buffer is larger */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	for (size_t l = 0; l < sizeof lims / sizeof lims[0]; l++) {
		struct lp_parser p;
		if (lp_parser_init(&p, lims[l]) != 0)
			continue;
		for (size_t i = 0; i < sizeof precs / sizeof precs[0]; i++) {
			size_t rej = lp_parse(&p, buf, size, precs[i], 1700000000123456789, check_point, check_error,
			                      (void *)&sum);
			if (rej != p.nrejected)
				abort();
		}
		lp_parser_free(&p);
	}
	free(buf);
	return 0;
}
