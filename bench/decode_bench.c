/* decode_bench.c — the ingest decoders alone, or a request body through its
 * HTTP handler: CPU (or, under a profiler, instructions) per sample, no
 * network.
 *
 *   decode_bench [--shape single|multi|prw] [--series N] [--per-request R]
 *                [--seconds S | --requests K] [--handler [--warm W]]
 *
 * Builds the bodies bench/loadgen sends for the shape (bodies.h: the
 * line-protocol shapes single and multi, R = 5,000 lines per body;
 * remote_write, R = 2,000 series per request, snappy-compressed;
 * N = 100,000 series in all) and runs them round-robin:
 *   - without --handler, the decoder alone with a callback that only reads
 *     the labels (prw_decode_ex(), src/ingest/prw.h) or the tags and fields
 *     (lp_parse(), src/ingest/line.h, precision ms);
 *   - with --handler, api_handle() (src/http/router.h) on POST
 *     /write?precision=ms or /api/v1/write (Content-Encoding: snappy) with an
 *     in-memory engine (default model, no store): decoding, staging and the
 *     engine's commit, as the daemon runs a request once libmicrohttpd has
 *     read its body. Every body pass is a new round: timestamps 10 s later,
 *     new values; --warm W rounds over all series run first, untimed (the
 *     default model does little in its 150-sample warm-up).
 * Each request's body is patched (timestamps, values; prw: compressed again)
 * outside the timed function run_one(): under valgrind, count with
 * `--toggle-collect=run_one` and divide by the samples printed. Stops after
 * K requests (--requests) or S seconds of CPU time (default 3). Single
 * thread, so samples/s is per core. Prints one JSON object.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>
#include <snappy-c.h>

#include "detect/detector.h"
#include "engine/engine.h"
#include "http/api.h"
#include "http/router.h"
#include "ingest/line.h"
#include "ingest/prw.h"
#include "bodies.h"
#include "util/selfstats.h"


struct bench {
	enum bench_shape shape;
	int handler;
	struct bench_body *bodies;
	size_t nbodies;
	char *req;                   /* the request body handed over (compressed for prw) */
	size_t req_cap, req_len;
	struct lp_parser lp;
	struct api_ctx api;
	struct selfstats stats;
	size_t sum;                  /* what the callbacks read */
	char err[256];
};

static const int64_t T0 = INT64_C(1700000000000), STEP = 10000;

static double cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "decode_bench: out of memory\n");
		exit(1);
	}
	return p;
}

/* A deterministic value in [100, 1000): a slow sine-like sawtooth per series
 * plus a little noise, so that the detector sees ordinary data. */
static double value_of(uint32_t id, uint64_t round)
{
	uint64_t h = (id * UINT64_C(2654435761) + round * UINT64_C(40503)) >> 7;
	uint64_t tri = (round + id) % 360;
	tri = tri < 180 ? tri : 360 - tri;
	return 400.0 + (double)tri + (double)(h % 1000) / 1000.0;
}

/* Patch body bi for round r and hand it over as the request body. */
static void prepare(struct bench *B, size_t bi, uint64_t r)
{
	struct bench_body *b = &B->bodies[bi];
	bench_body_set_ts(b, T0 + (int64_t)r * STEP); /* within the prw range */
	for (size_t i = 0; i < b->nsamples; i++) {
		double v = value_of(b->first_series + (uint32_t)i, r);
		bench_body_set_value(b, i, (uint64_t)(v * 1000.0), v);
	}
	if (B->shape == BENCH_PRW) {
		size_t cl = B->req_cap;
		if (snappy_compress(b->text, b->len, B->req, &cl) != SNAPPY_OK) {
			fprintf(stderr, "decode_bench: snappy_compress failed\n");
			exit(1);
		}
		B->req_len = cl;
	} else {
		memcpy(B->req, b->text, b->len); /* handlers may modify a body in place */
		B->req[b->len] = 0;
		B->req_len = b->len;
	}
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

static int on_point(void *ctx, const struct lp_point *pt, size_t lineno)
{
	size_t *sum = ctx;
	*sum += pt->name.len;
	for (size_t i = 0; i < pt->ntags; i++)
		*sum += pt->tags[i].key.len + pt->tags[i].value.len;
	for (size_t i = 0; i < pt->nfields; i++)
		*sum += pt->fields[i].key.len + (pt->fields[i].type == LP_FLOAT);
	(void)lineno;
	return 0;
}

static void on_lp_error(void *ctx, size_t lineno, const char *reason)
{
	(void)ctx;
	fprintf(stderr, "decode_bench: line %zu: %s\n", lineno, reason);
	exit(1);
}

/* One request. Returns the samples it accepted. */
static size_t run_req(struct bench *B, size_t nsamples)
{
	if (B->handler) {
		struct api_arg arg = { "precision", "ms" };
		int prw = B->shape == BENCH_PRW;
		struct api_request req = {
			.method = "POST",
			.path = prw ? "/api/v1/write" : "/write",
			.args = prw ? NULL : &arg,
			.nargs = prw ? 0 : 1,
			.content_type = prw ? "application/x-protobuf" : "text/plain; charset=utf-8",
			.content_encoding = prw ? "snappy" : NULL,
			.body = B->req,
			.body_len = B->req_len,
			.now_ms = T0,
			.event_time = 1,
		};
		struct api_response resp;
		memset(&resp, 0, sizeof resp);
		api_handle(&B->api, &req, &resp);
		if (resp.status != 204) {
			fprintf(stderr, "decode_bench: status %u: %.*s\n", resp.status, (int)resp.len,
			        resp.body ? resp.body : "");
			exit(1);
		}
		free(resp.body);
		return nsamples;
	}
	if (B->shape == BENCH_PRW) {
		struct prw_stats st;
		if (prw_decode_ex(B->req, B->req_len, NULL, NULL, on_sample, NULL, &B->sum, &st,
		                  B->err, sizeof B->err)) {
			fprintf(stderr, "decode_bench: %s\n", B->err);
			exit(1);
		}
		return st.samples;
	}
	lp_parse(&B->lp, B->req, B->req_len, LP_MS, 0, on_point, on_lp_error, &B->sum);
	return nsamples;
}

/* The timed part: run_req() of the timed requests only (the untimed rounds
 * call run_req() directly, so `--toggle-collect=run_one` leaves them out). */
static __attribute__((noinline)) size_t run_one(struct bench *B, size_t nsamples)
{
	return run_req(B, nsamples);
}

static void usage(void)
{
	fprintf(stderr, "usage: decode_bench [--shape single|multi|prw] [--series N] "
	                "[--per-request R] [--seconds S | --requests K] [--handler [--warm W]]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t series = 100000, per = 0, requests = 0, warm = 0;
	double seconds = 3;
	struct bench B;
	memset(&B, 0, sizeof B);
	B.shape = BENCH_PRW;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "--handler")) {
			B.handler = 1;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--shape")) {
			if (!strcmp(v, "single"))
				B.shape = BENCH_SINGLE;
			else if (!strcmp(v, "multi"))
				B.shape = BENCH_MULTI;
			else if (!strcmp(v, "prw"))
				B.shape = BENCH_PRW;
			else
				usage();
		} else if (!strcmp(a, "--series")) {
			series = strtoul(v, NULL, 10);
		} else if (!strcmp(a, "--per-request")) {
			per = strtoul(v, NULL, 10);
		} else if (!strcmp(a, "--seconds")) {
			seconds = strtod(v, NULL);
		} else if (!strcmp(a, "--requests")) {
			requests = strtoul(v, NULL, 10);
		} else if (!strcmp(a, "--warm")) {
			warm = strtoul(v, NULL, 10);
		} else {
			usage();
		}
	}
	if (!per)
		per = B.shape == BENCH_PRW ? 2000 : 5000;
	size_t nlines = bench_shape_lines(B.shape, series);
	if (!series || series > 10000000 || !per || per > 1000000 || seconds <= 0 ||
	    seconds > 600 || warm > 100000 || (warm && !B.handler)) {
		fprintf(stderr, "decode_bench: bad arguments\n");
		return 2;
	}
	B.nbodies = (nlines + per - 1) / per;
	B.bodies = calloc(B.nbodies, sizeof *B.bodies);
	if (!B.bodies)
		return 1;
	size_t raw_total = 0, maxlen = 0, samples_total = 0;
	for (size_t r = 0; r < B.nbodies; r++) {
		size_t n = r + 1 < B.nbodies ? per : nlines - r * per;
		if (bench_body_build(&B.bodies[r], B.shape, series, r * per, n)) {
			fprintf(stderr, "decode_bench: out of memory\n");
			return 1;
		}
		raw_total += B.bodies[r].len;
		samples_total += B.bodies[r].nsamples;
		if (B.bodies[r].len > maxlen)
			maxlen = B.bodies[r].len;
	}
	B.req_cap = snappy_max_compressed_length(maxlen) + 1;
	if (B.req_cap < maxlen + 1)
		B.req_cap = maxlen + 1;
	B.req = xmalloc(B.req_cap);
	struct lp_limits lim = LP_LIMITS_DEFAULT;
	if (lp_parser_init(&B.lp, &lim))
		return 1;
	struct engine *e = NULL;
	if (B.handler) {
		gsl_set_error_handler_off();
		struct engine_config cfg;
		engine_config_default(&cfg);
		if (cfg.max_series < series)
			cfg.max_series = series;
		selfstats_init(&B.stats);
		char err[512];
		e = engine_new(&cfg, model_builtin_default(), NULL, &B.stats, err, sizeof err);
		if (!e) {
			fprintf(stderr, "decode_bench: %s\n", err);
			return 1;
		}
		B.api.engine = e;
		B.api.stats = &B.stats;
		B.api.max_body = (size_t)64 << 20;
		B.api.lp_limits = lim;
		B.api.version = "bench";
		atomic_store(&B.api.ready, 1);
	}
	/* series creation and warm-up: untimed rounds over every body */
	uint64_t round = 0;
	if (B.handler) {
		for (; round < 1 + warm; round++)
			for (size_t bi = 0; bi < B.nbodies; bi++) {
				prepare(&B, bi, round);
				run_req(&B, B.bodies[bi].nsamples);
			}
	}
	size_t z_total = 0;
	for (size_t bi = 0; bi < B.nbodies; bi++) {
		prepare(&B, bi, round);
		z_total += B.req_len;
	}
	size_t samples = 0, reqs = 0;
	double el = 0;
	while (requests ? reqs < requests : el < seconds) {
		size_t bi = reqs % B.nbodies;
		prepare(&B, bi, round + reqs / B.nbodies);
		double t0 = cpu_s();
		samples += run_one(&B, B.bodies[bi].nsamples);
		el += cpu_s() - t0;
		reqs++;
	}
	static const char *const names[] = { "single", "multi", "prw" };
	printf("{\"mode\":\"%s\",\"shape\":\"%s\",\"series\":%zu,\"per_request\":%zu,"
	       "\"warm\":%zu,\"requests\":%zu,\"samples\":%zu,\"cpu_s\":%.3f,"
	       "\"samples_per_s\":%.0f,\"ns_per_sample\":%.1f,\"bytes_per_sample\":%.1f,"
	       "\"request_bytes_per_sample\":%.1f,\"check\":%zu}\n",
	       B.handler ? "handler" : "decode", names[B.shape], series, per, warm, reqs, samples,
	       el, el > 0 ? samples / el : 0, samples ? el * 1e9 / (double)samples : 0,
	       (double)raw_total / (double)samples_total, (double)z_total / (double)samples_total,
	       B.sum % 1000);
	if (e)
		engine_free(e);
	lp_parser_free(&B.lp);
	for (size_t r = 0; r < B.nbodies; r++)
		bench_body_free(&B.bodies[r]);
	free(B.bodies);
	free(B.req);
	return 0;
}
