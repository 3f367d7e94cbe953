/* decode_bench.c — the remote_write decoder alone: CPU per sample of
 * prw_decode_ex() (src/ingest/prw.h), no HTTP, no engine.
 *
 *   decode_bench [--series N] [--per-request R] [--seconds S]
 *
 * Builds the requests bench/loadgen sends with --shape prw (prw_series.h: one
 * sample per TimeSeries, 5 labels: __name__ out of 10 node_exporter gauge
 * names, dc, env, instance, job, sorted; R = 2,000 series per request,
 * N = 100,000 series in all), snappy-compressed once, and decodes them round-robin with
 * a callback that only reads the labels, until S seconds of CPU time
 * (default 3). Single thread, so samples/s is per core. Prints one JSON
 * object. Run it linked with two builds' libforeshock.a to compare decoders.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <snappy-c.h>

#include "ingest/prw.h"
#include "prw_series.h"

static double cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One uncompressed WriteRequest with series [first, first + n). */
static char *build(uint32_t first, size_t n, size_t *len)
{
	char *b = malloc(n * PRW_SERIES_MAX);
	if (!b)
		return NULL;
	size_t bl = 0;
	for (uint32_t id = first; id < first + n; id++)
		bl += prw_put_series(b + bl, id, 512.25 + id % 97, INT64_C(1700000000000), NULL, NULL);
	*len = bl;
	return b;
}

static int on_sample(void *ctx, const struct label_ref *l, size_t n, double v, int64_t ts,
                     int has_ts, size_t lineno)
{
	size_t *sum = ctx;
	for (size_t i = 0; i < n; i++)
		*sum += l[i].name_len + l[i].value_len;
	(void)v, (void)ts, (void)has_ts, (void)lineno;
	return 0;
}

int main(int argc, char **argv)
{
	size_t series = 100000, per = 2000;
	double seconds = 3;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--series") && i + 1 < argc)
			series = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--per-request") && i + 1 < argc)
			per = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = strtod(argv[++i], NULL);
		else {
			fprintf(stderr, "usage: decode_bench [--series N] [--per-request R] [--seconds S]\n");
			return 2;
		}
	}
	if (!per || series < per || seconds <= 0 || seconds > 600) {
		fprintf(stderr, "decode_bench: bad arguments\n");
		return 2;
	}
	size_t nreq = series / per;
	char **z = calloc(nreq, sizeof *z);
	size_t *zl = calloc(nreq, sizeof *zl), raw_total = 0, z_total = 0;
	if (!z || !zl)
		return 1;
	for (size_t r = 0; r < nreq; r++) {
		size_t len;
		char *raw = build((uint32_t)(r * per), per, &len);
		if (!raw)
			return 1;
		size_t cl = snappy_max_compressed_length(len);
		z[r] = malloc(cl);
		if (!z[r] || snappy_compress(raw, len, z[r], &cl) != SNAPPY_OK)
			return 1;
		zl[r] = cl;
		raw_total += len;
		z_total += cl;
		free(raw);
	}
	size_t sum = 0, samples = 0, reqs = 0;
	char err[256];
	double t0 = cpu_s(), t = t0;
	while (t - t0 < seconds) {
		struct prw_stats st;
		size_t r = reqs++ % nreq;
		if (prw_decode_ex(z[r], zl[r], NULL, NULL, on_sample, NULL, &sum, &st, err, sizeof err)) {
			fprintf(stderr, "decode_bench: %s\n", err);
			return 1;
		}
		samples += st.samples;
		t = cpu_s();
	}
	double el = t - t0;
	printf("{\"mode\":\"prw_decode\",\"series\":%zu,\"per_request\":%zu,\"requests\":%zu,"
	       "\"samples\":%zu,\"cpu_s\":%.3f,\"samples_per_s\":%.0f,\"ns_per_sample\":%.1f,"
	       "\"bytes_per_sample\":%.1f,\"compressed_bytes_per_sample\":%.1f,\"check\":%zu}\n",
	       series, per, reqs, samples, el, samples / el, el * 1e9 / (double)samples,
	       (double)raw_total / (double)(nreq * per), (double)z_total / (double)(nreq * per),
	       sum % 1000);
	for (size_t r = 0; r < nreq; r++)
		free(z[r]);
	free(z);
	free(zl);
	return 0;
}
