/* bodies.c — the benchmarks' request bodies (bodies.h). */
#include "bodies.h"

#include <stdlib.h>
#include <string.h>

#include "lp_shapes.h"
#include "prw_series.h"

size_t bench_shape_lines(enum bench_shape sh, size_t S)
{
	return sh == BENCH_PRW ? S : lp_shape_lines(sh == BENCH_MULTI, S);
}

/* Line k's first series id and its number of samples. */
static uint32_t line_series(enum bench_shape sh, size_t S, size_t k, size_t *nf)
{
	if (sh == BENCH_PRW) {
		*nf = 1;
		return (uint32_t)k;
	}
	return lp_shape_line_series(sh == BENCH_MULTI, S, k, nf);
}

int bench_body_build(struct bench_body *b, enum bench_shape sh, size_t S, size_t first,
                     size_t n)
{
	memset(b, 0, sizeof *b);
	b->shape = sh;
	size_t nsamp = 0, nf;
	for (size_t i = 0; i < n; i++) {
		line_series(sh, S, first + i, &nf);
		nsamp += nf;
	}
	/* a remote_write series takes about 100 bytes, PRW_SERIES_MAX at the
	 * most: grown below if a series would not fit */
	size_t line_max = sh == BENCH_PRW ? PRW_SERIES_MAX : LP_LINE_MAX;
	size_t cap = n * (sh == BENCH_PRW ? 200 : LP_LINE_MAX) + line_max;
	b->text = malloc(cap);
	b->ts_off = malloc((n ? n : 1) * sizeof *b->ts_off);
	b->val_off = malloc((nsamp ? nsamp : 1) * sizeof *b->val_off);
	if (!b->text || !b->ts_off || !b->val_off)
		goto oom;
	size_t len = 0, j = 0;
	for (size_t i = 0; i < n; i++) {
		size_t k = first + i;
		uint32_t id = line_series(sh, S, k, &nf);
		if (i == 0)
			b->first_series = id;
		if (len + line_max > cap) {
			char *t = realloc(b->text, cap * 2);
			if (!t)
				goto oom;
			b->text = t;
			cap *= 2;
		}
		if (sh == BENCH_PRW) {
			size_t va, ta;
			size_t sl = prw_put_series(b->text + len, id, 0, PRW_TS_MIN, &va, &ta);
			b->val_off[j++] = (uint32_t)(len + va);
			b->ts_off[i] = (uint32_t)(len + ta);
			len += sl;
			continue;
		}
		uint32_t voff[LP_FIELDS_MAX], toff;
		size_t ll = lp_shape_put_line(b->text + len, sh == BENCH_MULTI, S, k, voff, &toff);
		for (size_t f = 0; f < nf; f++)
			b->val_off[j++] = (uint32_t)len + voff[f];
		b->ts_off[i] = (uint32_t)len + toff;
		len += ll;
	}
	b->len = len;
	b->nlines = n;
	b->nsamples = nsamp;
	return 0;
oom:
	bench_body_free(b);
	return -1;
}

int bench_body_set_ts(struct bench_body *b, int64_t ts_ms)
{
	char ts[16];
	size_t w = LP_TS_W;
	if (b->shape == BENCH_PRW) {
		if (ts_ms < PRW_TS_MIN || ts_ms >= PRW_TS_END)
			return -1;
		w = prw_put_varint(ts, (uint64_t)ts_ms); /* PRW_TS_W bytes in that range */
	} else {
		lp_put_digits(ts, (uint64_t)ts_ms, LP_TS_W);
	}
	for (size_t i = 0; i < b->nlines; i++)
		memcpy(b->text + b->ts_off[i], ts, w);
	return 0;
}

void bench_body_set_value(struct bench_body *b, size_t i, uint64_t milli, double v)
{
	char *p = b->text + b->val_off[i];
	if (b->shape == BENCH_PRW) {
		memcpy(p, &v, 8); /* little-endian, as protobuf */
		return;
	}
	lp_put_digits(p, milli / 1000, 3);
	p[3] = '.';
	lp_put_digits(p + 4, milli % 1000, 3);
}

void bench_body_free(struct bench_body *b)
{
	free(b->text);
	free(b->ts_off);
	free(b->val_off);
	b->text = NULL;
	b->ts_off = b->val_off = NULL;
}
