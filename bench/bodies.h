/* bodies.h — the request bodies of the benchmarks, built once and patched
 * in place each round: what bench/loadgen sends and bench/decode_bench
 * decodes. A body holds lines [first, first + n) of a shape (lp_shapes.h:
 * single or multi line protocol) or remote_write series [first, first + n)
 * (prw_series.h, uncompressed: the caller compresses it per request), with
 * the offsets of every timestamp (one per line or series) and of every
 * value (one per sample, in series-id order from first_series).
 * Depends on libc only. */
#ifndef FORESHOCK_BENCH_BODIES_H
#define FORESHOCK_BENCH_BODIES_H

#include <stddef.h>
#include <stdint.h>

enum bench_shape { BENCH_SINGLE, BENCH_MULTI, BENCH_PRW };

struct bench_body {
	enum bench_shape shape;
	char *text;                  /* the body, patched each round */
	size_t len;
	size_t nlines;               /* lines (prw: time series) */
	size_t nsamples;             /* samples: one per value field */
	uint32_t *ts_off;            /* per line: where its timestamp starts */
	uint32_t *val_off;           /* per sample: where its value starts */
	uint32_t first_series;       /* series id of the first sample */
};

/* Lines (prw: time series) it takes to send S series once. */
size_t bench_shape_lines(enum bench_shape sh, size_t S);

/* Build the body of lines [first, first + n) of a shape with S series in
 * all (first + n at most bench_shape_lines(sh, S)); values and timestamps
 * are placeholders until patched. Returns 0, or -1 when out of memory
 * (nothing to free). */
int bench_body_build(struct bench_body *b, enum bench_shape sh, size_t S, size_t first,
                     size_t n);

/* Patch every line's timestamp (ms). Returns 0, or -1 for a remote_write
 * timestamp outside [PRW_TS_MIN, PRW_TS_END) (prw_series.h). */
int bench_body_set_ts(struct bench_body *b, int64_t ts_ms);

/* Patch sample i's value: line protocol writes milli / 1000 as ddd.ddd
 * (milli in [0, 999999]), remote_write the double v. */
void bench_body_set_value(struct bench_body *b, size_t i, uint64_t milli, double v);

void bench_body_free(struct bench_body *b);

#endif
