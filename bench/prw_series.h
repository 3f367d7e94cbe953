/* prw_series.h — the remote_write series the benchmarks send (bench/loadgen
 * --shape prw) and decode (bench/decode_bench): series id's TimeSeries of a
 * WriteRequest, protobuf-encoded by hand (the wire format is small and the
 * generator must stay cheap). Five labels, sorted: __name__ (one of 10
 * node_exporter gauge names, id % 10), dc (dc<host % 8>), env (prod),
 * instance (h<host, 7 digits>:9100), job (node), where host = id / 10; one
 * sample. Depends on libc only. */
#ifndef FORESHOCK_BENCH_PRW_SERIES_H
#define FORESHOCK_BENCH_PRW_SERIES_H

#include <stddef.h>
#include <stdint.h>

/* A ms timestamp in [PRW_TS_MIN, PRW_TS_END) (1971-2109) is a varint of
 * PRW_TS_W bytes: a sample's timestamp can be patched in place. */
#define PRW_TS_W 6
#define PRW_TS_MIN ((int64_t)1 << 35)
#define PRW_TS_END ((int64_t)1 << 42)
/* Bytes prw_put_series writes at the most. */
#define PRW_SERIES_MAX 512

/* Write a varint into p; returns its length (at most 10). */
size_t prw_put_varint(char *p, uint64_t v);

/* Write the WriteRequest.timeseries field (1) of series id into p (at least
 * PRW_SERIES_MAX bytes) with one sample (value v, timestamp ts_ms, which
 * must be in [PRW_TS_MIN, PRW_TS_END)); returns its length, or 0 if ts_ms is
 * not. When
 * value_at and ts_at are not NULL they get the offsets in p of the sample's
 * 8-byte value (a little-endian double) and PRW_TS_W-byte timestamp. */
size_t prw_put_series(char *p, uint32_t id, double v, int64_t ts_ms, size_t *value_at,
                      size_t *ts_at);

#endif
