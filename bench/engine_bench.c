/* engine_bench.c — the detector engine alone, in memory, no HTTP, no store.
 *
 *   engine_bench [--model FILE] [--series N] [--samples N] [--seconds S] [--warm K]
 *                [--shuffle] [--prefetch]
 *                [--engine [--direct | --fields K [--per-field]] [--unsorted] [--batch B]
 *                          [--forecasters requested|all|none] [--history P] | --forecast-only]
 *
 * Drives model_update() (src/detect/detector.h) over N series round-robin (states in
 * memory order; --shuffle: in a fixed random order, so that every state is a
 * cache miss; --prefetch: model_prefetch() of the state 4 series ahead, as
 * the engine's commit does), or with
 * --engine the whole engine path as the HTTP handlers drive it (src/engine/engine.h:
 * engine_batch_stage() per sample, engine_batch_commit() per batch; with
 * --direct, engine_batch_add() per sample instead: registry lookup
 * by label hash, out-of-order check, model, history ring, alert state
 * machine) with no store, in batches of B samples (default 5000), the labels
 * in canonical order (--unsorted: host before dc, as bench/loadgen's single
 * shape sends them), with the
 * engine's defaults (engine_config_default: forecasters on request, so none
 * here, 24 history points) unless --forecasters (engine_config.forecast:
 * all = a forecaster on every series, as before forecasters were made on
 * request) or --history P say otherwise; with
 * --fields K, the series are the K fields of N/K line-protocol-like lines
 * (metric bench_f<k>, the line's 3 tags), staged as the /write handler
 * stages a multi-field line: engine_batch_stage_tags() once per line and
 * engine_batch_stage_named() per field (--per-field: engine_batch_stage()
 * per field with every label, as before tag sets); or with
 * --forecast-only forecast_update() (src/detect/forecast.h, default params) alone
 * over N series round-robin, as the engine runs it. With a 10 s spacing the
 * forecaster's grid step is 10 s, so every sample closes a grid bucket; its
 * refit runs every 112 rounds (first at round 49, then 161, 273, ...), so
 * with --warm 160 the first timed round includes one refit of every series. Single thread, so
 * samples/s is per core. Values are a deterministic sine plus noise; every
 * series gets strictly increasing timestamps 10 s apart. Stops after
 * --samples samples or --seconds of CPU time, whichever comes first (both
 * bounded). The first pass over the series (series creation, state init) and
 * --warm K further rounds are not timed: the default model scores 0 without
 * most of its work during its 150-sample warm-up, so steady-state figures
 * need --warm 160 or more. Prints one JSON object: samples, cpu seconds, samples/s, ns per
 * sample, state bytes per series.
 */
#include "config.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gsl/gsl_errno.h>

#include "detect/detector.h"
#include "engine/engine.h"
#include "detect/forecast.h"
#include "util/labels.h"
#include "util/log.h"
#include "util/selfstats.h"
#include "engine/series.h"

#define BATCH 5000 /* default --batch */

static double cpu_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Precomputed values: a table walked with a per-series offset, so value
 * generation costs a load, not a sin(). */
#define VTAB 4096
static void fill_values(double *v)
{
	uint64_t rng = 88172645463325252ull;
	for (int i = 0; i < VTAB; i++)
		v[i] = 500.0 + 150.0 * sin(i * 2 * M_PI / 360.0) +
		       (double)(xorshift(&rng) % 100000) / 1000.0 - 50.0;
}

struct opts {
	const char *model;
	size_t series;
	uint64_t samples;
	double seconds;
	int engine;
	int direct;      /* --engine --direct: engine_batch_add per sample */
	int forecast;    /* --forecast-only */
	uint64_t warm;   /* untimed rounds after the first */
	size_t batch;    /* --engine: samples per engine_batch_commit */
	size_t fields;   /* --engine --fields K: series are fields of lines */
	int per_field;   /* --fields K --per-field: engine_batch_stage per field */
	int unsorted;    /* --engine --unsorted: labels staged host before dc */
	int shuffle;     /* model_update: visit the series in a fixed random order */
	int prefetch;    /* model_update: model_prefetch() the state 4 series ahead */
	int forecasters; /* --engine: engine_config.forecast, -1 = the default */
	int history;     /* --engine: engine_config.history_points, -1 = the default */
};

static struct model *load(const struct opts *o)
{
	char err[512];
	if (!o->model)
		return model_builtin_default();
	struct model *m = model_load_file(o->model, err, sizeof err);
	if (!m)
		fprintf(stderr, "engine_bench: invalid model: %s\n", err);
	return m;
}

static void report(const struct opts *o, const char *mode, const struct model *m, uint64_t n,
                   double cpu, size_t state)
{
	printf("{\"mode\":\"%s\",\"model\":\"%s\",\"model_file\":\"%s\",\"series\":%zu,"
	       "\"warm_rounds\":%llu,\"samples\":%llu,\"cpu_s\":%.3f,\"samples_per_s\":%.0f,"
	       "\"ns_per_sample\":%.1f,\"state_bytes\":%zu,\"hist_entry_bytes\":%zu,\"series_struct_bytes\":%zu}\n",
	       mode, model_name(m), o->model ? o->model : "(builtin default)", o->series,
	       (unsigned long long)o->warm, (unsigned long long)n, cpu, cpu > 0 ? (double)n / cpu : 0,
	       n ? cpu * 1e9 / (double)n : 0, state, sizeof(struct hist_entry),
	       sizeof(struct series));
}

static int bench_model(const struct opts *o)
{
	struct model *m = load(o);
	if (!m)
		return 1;
	size_t ss = model_state_size(m);
	unsigned char *st = malloc(ss * o->series);
	double *vals = malloc(VTAB * sizeof *vals);
	if (!st || !vals) {
		fprintf(stderr, "engine_bench: out of memory (%zu series x %zu bytes)\n", o->series, ss);
		return 1;
	}
	fill_values(vals);
	for (size_t i = 0; i < o->series; i++)
		model_state_init(m, st + i * ss);
	/* visiting order: the states in memory order (the hardware prefetcher
	 * streams them), or --shuffle, a fixed random permutation (every state a
	 * cache miss, as the engine's series blocks are) */
	size_t *perm = malloc(o->series * sizeof *perm);
	if (!perm) {
		fprintf(stderr, "engine_bench: out of memory\n");
		return 1;
	}
	for (size_t i = 0; i < o->series; i++)
		perm[i] = i;
	if (o->shuffle) {
		uint64_t rng = 0x9e3779b97f4a7c15ULL;
		for (size_t i = o->series; i > 1; i--) {
			size_t j = (size_t)(xorshift(&rng) % i);
			size_t t = perm[i - 1];
			perm[i - 1] = perm[j];
			perm[j] = t;
		}
	}
	const int64_t t0 = 1700000000000LL, step = 10000;
	struct det_result r;
	double sink = 0;
	/* untimed: the first pass and the warm-up rounds */
	for (uint64_t round = 0; round <= o->warm; round++)
		for (size_t i = 0; i < o->series; i++) {
			size_t k = perm[i];
			model_update(m, st + k * ss, t0 + (int64_t)round * step,
			             vals[(k + round) % VTAB], &r);
			sink += r.score;
		}
	uint64_t n = 0;
	double c0 = cpu_s(), c1 = c0;
	for (uint64_t round = o->warm + 1; n < o->samples; round++) {
		int64_t ts = t0 + (int64_t)round * step;
		for (size_t i = 0; i < o->series; i++) {
			size_t k = perm[i];
			if (o->prefetch && i + 4 < o->series)
				model_prefetch(m, st + perm[i + 4] * ss, ts);
			model_update(m, st + k * ss, ts, vals[(k + round) % VTAB], &r);
			sink += r.score;
		}
		n += o->series;
		/* reading the CPU clock is a syscall: only every ~64k samples */
		if (n % 65536 < o->series && (c1 = cpu_s()) - c0 >= o->seconds)
			break;
	}
	c1 = cpu_s();
	if (sink == -1)
		puts("");
	report(o, o->shuffle ? (o->prefetch ? "model_update_shuffled_prefetch" : "model_update_shuffled") :
	                       (o->prefetch ? "model_update_prefetch" : "model_update"),
	       m, n, c1 - c0, ss);
	free(perm);
	free(st);
	free(vals);
	model_free(m);
	return 0;
}

static int bench_forecast(const struct opts *o)
{
	struct forecast_params p;
	forecast_params_default(&p);
	size_t ss = (forecast_state_size(&p) + 7) & ~(size_t)7; /* states must be 8-byte aligned */
	unsigned char *st = malloc(ss * o->series);
	double *vals = malloc(VTAB * sizeof *vals);
	if (!st || !vals) {
		fprintf(stderr, "engine_bench: out of memory (%zu series x %zu bytes)\n", o->series, ss);
		return 1;
	}
	gsl_set_error_handler_off();
	fill_values(vals);
	for (size_t i = 0; i < o->series; i++)
		forecast_state_init(&p, st + i * ss);
	const int64_t t0 = 1700000000000LL, step = 10000;
	/* untimed: the first pass and the warm-up rounds */
	for (uint64_t round = 0; round <= o->warm; round++)
		for (size_t i = 0; i < o->series; i++)
			forecast_update(&p, st + i * ss, t0 + (int64_t)round * step,
			                vals[(i + round) % VTAB]);
	uint64_t n = 0;
	double c0 = cpu_s(), c1 = c0;
	for (uint64_t round = o->warm + 1; n < o->samples; round++) {
		int64_t ts = t0 + (int64_t)round * step;
		for (size_t i = 0; i < o->series; i++)
			forecast_update(&p, st + i * ss, ts, vals[(i + round) % VTAB]);
		n += o->series;
		if (n % 65536 < o->series && (c1 = cpu_s()) - c0 >= o->seconds)
			break;
	}
	c1 = cpu_s();
	struct forecast_info info;
	forecast_info_get(st, &info);
	printf("{\"mode\":\"forecast_update\",\"series\":%zu,\"warm_rounds\":%llu,\"samples\":%llu,"
	       "\"cpu_s\":%.3f,\"samples_per_s\":%.0f,\"ns_per_sample\":%.1f,\"state_bytes\":%zu,"
	       "\"step_ms\":%lld,\"steps\":%llu,\"refits\":%llu}\n",
	       o->series, (unsigned long long)o->warm, (unsigned long long)n, c1 - c0,
	       c1 > c0 ? (double)n / (c1 - c0) : 0, n ? (c1 - c0) * 1e9 / (double)n : 0,
	       forecast_state_size(&p), (long long)info.step_ms, (unsigned long long)info.steps,
	       (unsigned long long)info.refits);
	free(st);
	free(vals);
	return 0;
}

static int bench_engine(const struct opts *o)
{
	struct model *m = load(o);
	if (!m)
		return 1;
	size_t ss = model_state_size(m);
	struct engine_config cfg;
	engine_config_default(&cfg);
	if (cfg.max_series < o->series)
		cfg.max_series = o->series;
	if (o->forecasters >= 0)
		cfg.forecast = o->forecasters;
	if (o->history >= 0)
		cfg.history_points = (size_t)o->history;
	struct selfstats stats;
	selfstats_init(&stats);
	char err[512];
	struct engine *e = engine_new(&cfg, m, NULL, &stats, err, sizeof err);
	if (!e) {
		fprintf(stderr, "engine_bench: %s\n", err);
		return 1;
	}
	/* label values: host=h0000000.. dc=dc0..7 job=node, as bench/loadgen sends */
	char *hosts = malloc(o->series * 9);
	double *vals = malloc(VTAB * sizeof *vals);
	if (!hosts || !vals)
		return 1;
	fill_values(vals);
	static const char *const dcs[8] = { "dc0", "dc1", "dc2", "dc3", "dc4", "dc5", "dc6", "dc7" };
	for (size_t i = 0; i < o->series; i++)
		snprintf(hosts + i * 9, 9, "h%07zu", i % 10000000);
	const int64_t t0 = 1700000000000LL, step = 10000;
	/* The labels in canonical (sorted) order, as Prometheus sends them in
	 * remote_write and Telegraf sends its tags; --unsorted: host before dc,
	 * as bench/loadgen's single shape sends them (the registry then takes
	 * its any-order comparison). */
	const int hi = o->unsorted ? 1 : 2, di = o->unsorted ? 2 : 1;
	struct label_ref refs[4] = {
		{ "__name__", 8, "bench_cpu", 9 },
		{ "dc", 2, NULL, 3 },
		{ "host", 4, NULL, 8 },
		{ "job", 3, "node", 4 },
	};
	if (o->unsorted) {
		refs[1] = (struct label_ref){ "host", 4, NULL, 8 };
		refs[2] = (struct label_ref){ "dc", 2, NULL, 3 };
	}
	static const char *const fname[10] = { "bench_f0", "bench_f1", "bench_f2", "bench_f3",
		                               "bench_f4", "bench_f5", "bench_f6", "bench_f7",
		                               "bench_f8", "bench_f9" };
	size_t K = o->fields;
	uint64_t n = 0, rejected = 0;
	double c0 = 0, c1 = 0;
	struct engine_batch b;
	size_t inbatch = 0;
	for (uint64_t round = 0; round <= o->warm || n < o->samples; round++) {
		if (round == o->warm + 1)
			c0 = cpu_s(); /* round 0 creates the series, then warm-up: not timed */
		int64_t ts = t0 + (int64_t)round * step;
		for (size_t i = 0; i < o->series; i++) {
			if (inbatch == 0)
				engine_batch_begin(e, &b);
			size_t line = K > 1 ? i / K : i;
			refs[hi].value = hosts + line * 9;
			refs[di].value = dcs[line % 8];
			if (K > 1) {
				size_t f = i % K;
				refs[0].value = fname[f];
				refs[0].value_len = 8;
				double v = vals[(i + round) % VTAB];
				if (o->per_field) {
					if (engine_batch_stage(&b, refs, 4, ts, v, err, sizeof err))
						rejected++;
				} else {
					/* the same labels in the same order as --per-field */
					if (f == 0 &&
					    engine_batch_stage_tags(&b, refs + 1, 3, err, sizeof err) < 0)
						rejected++;
					if (engine_batch_stage_named(&b, fname[f], 8, ts, v, err, sizeof err))
						rejected++;
				}
			} else if (o->direct) {
				if (engine_batch_add(&b, refs, 4, ts, vals[(i + round) % VTAB], err,
				                     sizeof err))
					rejected++;
			} else if (engine_batch_stage(&b, refs, 4, ts, vals[(i + round) % VTAB], err,
			                              sizeof err)) {
				rejected++;
			}
			/* a batch ends only at a line's end (a request body holds whole lines) */
			if (++inbatch >= o->batch && (K <= 1 || i % K == K - 1)) {
				rejected += engine_batch_commit(&b, NULL, NULL);
				engine_batch_end(&b);
				inbatch = 0;
			}
		}
		if (inbatch) {
			rejected += engine_batch_commit(&b, NULL, NULL);
			engine_batch_end(&b);
			inbatch = 0;
		}
		if (round > o->warm) {
			n += o->series;
			if (n % 65536 < o->series && (c1 = cpu_s()) - c0 >= o->seconds)
				break;
		}
	}
	c1 = cpu_s();
	if (rejected)
		fprintf(stderr, "engine_bench: %llu samples rejected\n", (unsigned long long)rejected);
	struct engine_stats es;
	engine_get_stats(e, &es);
	printf("{\"mode\":\"%s\",\"model\":\"%s\",\"model_file\":\"%s\","
	       "\"series\":%zu,\"warm_rounds\":%llu,\"samples\":%llu,\"rejected\":%llu,\"cpu_s\":%.3f,"
	       "\"samples_per_s\":%.0f,\"ns_per_sample\":%.1f,\"state_bytes\":%zu,"
	       "\"hist_entry_bytes\":%zu,\"history_points\":%zu,\"series_struct_bytes\":%zu,"
	       "\"batch\":%zu,\"fields\":%zu,\"labels\":\"%s\",\"forecasters\":\"%s\","
	       "\"series_memory_bytes\":%zu}\n",
	       o->direct ? "engine_batch_add" : K > 1 && !o->per_field ? "engine_batch_stage_named"
	                                                             : "engine_batch_stage",
	       es.model_name, o->model ? o->model : "(builtin default)", es.series,
	       (unsigned long long)o->warm, (unsigned long long)n, (unsigned long long)rejected, c1 - c0,
	       c1 > c0 ? (double)n / (c1 - c0) : 0, n ? (c1 - c0) * 1e9 / (double)n : 0, ss,
	       sizeof(struct hist_entry), cfg.history_points, sizeof(struct series),
	       o->direct ? (size_t)1 : o->batch, K, o->unsorted ? "unsorted" : "sorted",
	       cfg.forecast == ENGINE_FORECAST_ALL ? "all" : cfg.forecast ? "requested" : "none",
	       es.series_bytes);
	engine_free(e);
	free(hosts);
	free(vals);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .series = 1, .samples = 20000000, .seconds = 3, .batch = BATCH,
		          .forecasters = -1, .history = -1 };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--direct")) {
			o.engine = o.direct = 1;
			continue;
		}
		if (!strcmp(a, "--engine")) {
			o.engine = 1;
			continue;
		}
		if (!strcmp(a, "--forecast-only")) {
			o.forecast = 1;
			continue;
		}
		if (!strcmp(a, "--shuffle")) {
			o.shuffle = 1;
			continue;
		}
		if (!strcmp(a, "--prefetch")) {
			o.prefetch = 1;
			continue;
		}
		if (!strcmp(a, "--per-field")) {
			o.per_field = 1;
			continue;
		}
		if (!strcmp(a, "--unsorted")) {
			o.unsorted = 1;
			continue;
		}
		if (i + 1 >= argc)
			goto usage;
		const char *v = argv[++i];
		if (!strcmp(a, "--model"))
			o.model = v;
		else if (!strcmp(a, "--series"))
			o.series = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--samples"))
			o.samples = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--seconds"))
			o.seconds = atof(v);
		else if (!strcmp(a, "--warm"))
			o.warm = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--batch"))
			o.batch = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--fields"))
			o.fields = strtoull(v, NULL, 10);
		else if (!strcmp(a, "--forecasters") && !strcmp(v, "all"))
			o.forecasters = ENGINE_FORECAST_ALL;
		else if (!strcmp(a, "--forecasters") && !strcmp(v, "requested"))
			o.forecasters = ENGINE_FORECAST_REQUESTED;
		else if (!strcmp(a, "--forecasters") && !strcmp(v, "none"))
			o.forecasters = ENGINE_FORECAST_OFF;
		else if (!strcmp(a, "--history") && atoi(v) >= 0 && atoi(v) <= 100000)
			o.history = atoi(v);
		else
			goto usage;
	}
	if (o.series == 0 || o.series > 10000000 || o.seconds <= 0 || o.seconds > 600 ||
	    o.warm > 100000 || o.batch == 0 || o.batch > 10000000 || (o.engine && o.forecast) ||
	    o.fields > 10 || (o.fields > 1 && (!o.engine || o.direct)) || (o.per_field && o.fields < 2) ||
	    (o.unsorted && !o.engine))
		goto usage;
	log_set_level(LOG_WARN);
	if (o.forecast)
		return bench_forecast(&o);
	return o.engine ? bench_engine(&o) : bench_model(&o);
usage:
	fprintf(stderr, "usage: engine_bench [--model FILE] [--series N] [--samples N] "
	                "[--seconds S] [--warm K] [--shuffle] [--prefetch]\n"
	                "                    [--engine [--direct | --fields K [--per-field]] [--unsorted]\n"
	                "                              [--batch B]\n"
	                "                              [--forecasters requested|all|none] [--history P]"
	                " | --forecast-only]\n");
	return 2;
}
