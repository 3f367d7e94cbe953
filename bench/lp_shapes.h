/* lp_shapes.h — the line-protocol bodies the benchmarks send (bench/loadgen
 * --shape single|multi) and parse (bench/decode_bench): line k of a body of
 * S series, written with placeholders ('0' digits) for its values and its
 * timestamp, whose offsets are returned so that a round patches them in
 * place.
 *   single  one field per line, series k:
 *           bench_cpu,host=h0001234,dc=dc3,job=node value=ddd.ddd 1700000000000
 *   multi   as Telegraf sends it: per host a cpu line (10 fields), a mem
 *           line (3) and a net line (8), 4 tags each, sorted by key; S counts
 *           fields, so S/21 hosts
 * Values are LP_VAL_W characters (ddd.ddd), timestamps LP_TS_W digits (ms).
 * Depends on libc only. */
#ifndef FORESHOCK_BENCH_LP_SHAPES_H
#define FORESHOCK_BENCH_LP_SHAPES_H

#include <stddef.h>
#include <stdint.h>

#define LP_TS_W 13          /* ms timestamp digits */
#define LP_VAL_W 7          /* value digits: ddd.ddd */
#define LP_LINE_MAX 400     /* bytes lp_shape_put_line writes at the most */
#define LP_FIELDS_MAX 10    /* fields of a line at the most */

/* Lines it takes to send S series once. */
size_t lp_shape_lines(int multi, size_t S);

/* Line k's first series id and its number of samples (*nf). */
uint32_t lp_shape_line_series(int multi, size_t S, size_t k, size_t *nf);

/* Write line k (with its '\n') into p (at least LP_LINE_MAX bytes); val_off
 * (at least LP_FIELDS_MAX) gets the offsets in p of its values, *ts_off that
 * of its timestamp. Returns its length. */
size_t lp_shape_put_line(char *p, int multi, size_t S, size_t k, uint32_t *val_off,
                         uint32_t *ts_off);

/* Write v as w decimal digits (the low w digits). */
void lp_put_digits(char *p, uint64_t v, int w);

#endif
