/* prw_series.c — the remote_write series of the benchmarks, encoded by hand
 * (prw_series.h). */
#include "prw_series.h"

#include <stdio.h>
#include <string.h>

static const char *const gauge_names[10] = {
	"node_load1", "node_load5", "node_load15", "node_memory_MemAvailable_bytes",
	"node_memory_MemFree_bytes", "node_memory_Cached_bytes", "node_filesystem_avail_bytes",
	"node_filesystem_free_bytes", "node_procs_running", "node_procs_blocked",
};

size_t prw_put_varint(char *p, uint64_t v)
{
	size_t n = 0;
	while (v >= 0x80) {
		p[n++] = (char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (char)v;
	return n;
}

/* A protobuf length-delimited field: tag, length, bytes. */
static size_t put_lenfield(char *p, unsigned char tag, const char *v, size_t n)
{
	size_t k = 0;
	p[k++] = (char)tag;
	k += prw_put_varint(p + k, n);
	memcpy(p + k, v, n);
	return k + n;
}

size_t prw_put_series(char *p, uint32_t id, double v, int64_t ts_ms, size_t *value_at,
                      size_t *ts_at)
{
	if (ts_ms < PRW_TS_MIN || ts_ms >= PRW_TS_END)
		return 0;
	/* WriteRequest.timeseries (1) { labels (1) { name (1) value (2) } ...,
	 * samples (2) { value (1, double), timestamp (2, varint) } } */
	char lab[5][64], ts[PRW_SERIES_MAX - 8];
	static const char *const names[5] = { "__name__", "dc", "env", "instance", "job" };
	uint32_t host = id / 10;
	snprintf(lab[0], sizeof lab[0], "%s", gauge_names[id % 10]);
	snprintf(lab[1], sizeof lab[1], "dc%u", host % 8);
	snprintf(lab[2], sizeof lab[2], "prod");
	snprintf(lab[3], sizeof lab[3], "h%07u:9100", host);
	snprintf(lab[4], sizeof lab[4], "node");
	size_t tl = 0;
	for (int l = 0; l < 5; l++) {
		char one[160];
		size_t ol = put_lenfield(one, 0x0a, names[l], strlen(names[l]));
		ol += put_lenfield(one + ol, 0x12, lab[l], strlen(lab[l]));
		tl += put_lenfield(ts + tl, 0x0a, one, ol);
	}
	ts[tl++] = 0x12;
	ts[tl++] = 1 + 8 + 1 + PRW_TS_W;
	size_t sample_at = tl;
	ts[tl++] = 0x09;
	memcpy(ts + tl, &v, 8); /* little-endian, as protobuf */
	tl += 8;
	ts[tl++] = 0x10;
	tl += prw_put_varint(ts + tl, (uint64_t)ts_ms);
	size_t len = 0;
	p[len++] = 0x0a;
	len += prw_put_varint(p + len, tl);
	if (value_at)
		*value_at = len + sample_at + 1;
	if (ts_at)
		*ts_at = len + sample_at + 10;
	memcpy(p + len, ts, tl);
	return len + tl;
}
