/* test_engine_ingest.c — unit tests of the engine's ingest paths (the
 * shared fixture of engine_fixture.h): derived signals (counter rates,
 * histogram quantiles) and their restore, two threads ingesting while a
 * third reads, and staged ingest (engine_batch_stage/commit, tag sets
 * staged once per line) giving exactly what sample-by-sample ingest gives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/series.h"
#include "engine_fixture.h"
#include "util/labels.h"
#include "util/selector.h"
#include "util/selfstats.h"

struct values_ctx {
	double v[16];
	int64_t t[16];
	size_t n;
	int kind;
};

static int collect_values(void *ctx, const struct series_info *si, const struct history_point *p,
                          size_t n)
{
	struct values_ctx *c = ctx;
	c->kind = si->kind;
	for (size_t i = 0; i < n && c->n < 16; i++) {
		c->v[c->n] = p[i].value;
		c->t[c->n++] = p[i].ts_ms;
	}
	return 0;
}

static void read_series(struct engine *e, const char *sel, struct values_ctx *c)
{
	struct selector s;
	char err[128];
	memset(c, 0, sizeof *c);
	assert_int_equal(selector_parse(&s, sel, err, sizeof err), 0);
	engine_history(e, &s, 1, 0, INT64_MAX, collect_values, c);
	selector_free(&s);
}

static void test_engine_derived(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	struct engine *e = engine_fixture_engine(f, NULL, &f->stats);
	struct engine_batch b;
	engine_batch_begin(e, &b);
	/* counter with a reset: rates 1, 1, 0.5, 1 per second */
	const double cv[] = { 0, 10, 20, 5, 15 };
	for (int i = 0; i < 5; i++) {
		struct label_ref r[2] = { REF("__name__", "req_total"), REF("job", "a") };
		assert_int_equal(engine_batch_add(&b, r, 2, 1000000 + i * 10000, cv[i], err, sizeof err), 0);
	}
	/* a histogram typed by metadata, two scrapes: 100 observations, 50 <= 0.1, 90 <= 0.5 */
	engine_batch_set_type(&b, "lat_seconds", 11, METRIC_HISTOGRAM);
	const char *les[] = { "0.1", "0.5", "+Inf" };
	const double c1[] = { 10, 20, 30 }, c2[] = { 60, 110, 130 };
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 3; i++) {
			struct label_ref r[3] = { REF("__name__", "lat_seconds_bucket"), REF("job", "a"),
				                  { "le", 2, les[i], strlen(les[i]) } };
			assert_int_equal(engine_batch_add(&b, r, 3, 1000000 + k * 15000,
			                                  k ? c2[i] : c1[i], err, sizeof err),
			                 0);
		}
	/* a gauge-typed family keeps its values even with a counter-like name */
	engine_batch_set_type(&b, "temp_total", 10, METRIC_GAUGE);
	struct label_ref g[1] = { REF("__name__", "temp_total") };
	assert_int_equal(engine_batch_add(&b, g, 1, 1000000, 3, err, sizeof err), 0);
	engine_batch_end(&b);

	struct values_ctx c;
	read_series(e, "foreshock:rate:req_total{job=\"a\"}", &c);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.kind, SERIES_DERIVED);
	assert_true(fabs(c.v[0] - 1) < 1e-6 && fabs(c.v[1] - 1) < 1e-6);
	assert_true(fabs(c.v[2] - 0.5) < 1e-6 && fabs(c.v[3] - 1) < 1e-6);
	read_series(e, "req_total", &c);
	assert_int_equal(c.kind, SERIES_COUNTER);
	assert_int_equal(c.n, 5);
	/* increases: 50 <= 0.1, 90 <= 0.5, 100 total. p50 = 0.1 (rank 50 ends bucket 1);
	 * p90 = 0.5; p99 = +Inf bucket -> highest finite bound 0.5 */
	read_series(e, "foreshock:p50:lat_seconds{job=\"a\"}", &c);
	assert_int_equal(c.n, 1);
	assert_true(fabs(c.v[0] - 0.1) < 1e-6);
	assert_int_equal(c.t[0], 1015000);
	read_series(e, "foreshock:p90:lat_seconds", &c);
	assert_int_equal(c.n, 1);
	assert_true(fabs(c.v[0] - 0.5) < 1e-6);
	read_series(e, "foreshock:p99:lat_seconds", &c);
	assert_true(fabs(c.v[0] - 0.5) < 1e-6);
	read_series(e, "temp_total", &c);
	assert_int_equal(c.kind, SERIES_GAUGE);
	engine_free(e);
}

/* Two threads ingest into one engine at once (the engine is sharded
 * internally): gauges, counters and a histogram per thread, while a third
 * thread reads. Every sample must be counted, every derived series made. */
#define CT_ROUNDS 40
#define CT_GAUGES 300
#define CT_COUNTERS 100
#define CT_GROUPS 8

struct ct_arg {
	struct engine *e;
	int t;
	size_t accepted, rejected, created;
};

/* Thread 0 adds sample by sample, thread 1 stages and commits: both paths
 * run side by side. */
static int ct_add(struct ct_arg *a, struct engine_batch *b, const struct label_ref *l, size_t n,
                  int64_t ts, double v, char *err)
{
	return a->t == 0 ? engine_batch_add(b, l, n, ts, v, err, 256)
	                 : engine_batch_stage(b, l, n, ts, v, err, 256);
}

static void *ct_ingest(void *arg)
{
	struct ct_arg *a = arg;
	char tv[8], iv[16], err[256];
	snprintf(tv, sizeof tv, "%d", a->t);
	const char *les[] = { "0.1", "0.5", "+Inf" };
	for (int r = 0; r < CT_ROUNDS; r++) {
		struct engine_batch b;
		engine_batch_begin(a->e, &b);
		engine_batch_set_type(&b, "ct_lat", 6, METRIC_HISTOGRAM);
		int64_t ts = 1767225600000LL + r * 10000LL;
		for (int i = 0; i < CT_GAUGES + CT_COUNTERS; i++) {
			snprintf(iv, sizeof iv, "%d", i);
			const char *name = i < CT_GAUGES ? "ct_gauge" : "ct_req_total";
			struct label_ref l[3] = { { "__name__", 8, name, strlen(name) },
				                  { "t", 1, tv, strlen(tv) },
				                  { "i", 1, iv, strlen(iv) } };
			double v = i < CT_GAUGES ? 50 + (i + r) % 7 : 10.0 * r; /* counters: 1/s */
			if (ct_add(a, &b, l, 3, ts, v, err) != 0)
				fail_msg("rejected: %s", err);
		}
		for (int g = 0; g < CT_GROUPS; g++) {
			snprintf(iv, sizeof iv, "%d", g);
			for (int k = 0; k < 3; k++) {
				struct label_ref l[4] = { REF("__name__", "ct_lat_bucket"),
					                  { "t", 1, tv, strlen(tv) },
					                  { "g", 1, iv, strlen(iv) },
					                  { "le", 2, les[k], strlen(les[k]) } };
				double v = (double)r * (k + 1) * 10;
				if (ct_add(a, &b, l, 4, ts, v, err) != 0)
					fail_msg("rejected: %s", err);
			}
		}
		if (a->t == 1 && engine_batch_commit(&b, NULL, NULL) != 0)
			fail_msg("commit refused samples");
		if (engine_batch_end(&b) != 0)
			fail_msg("batch_end failed");
		a->accepted += b.res.accepted;
		a->created += b.res.series_created;
		for (int k = 0; k < REJ__COUNT; k++)
			a->rejected += b.res.rejected[k];
	}
	return NULL;
}

static volatile int ct_stop;

static int ct_count(void *ctx, const struct series_info *s)
{
	(void)s;
	(*(size_t *)ctx)++;
	return 0;
}

static void *ct_read(void *arg)
{
	struct engine *e = arg;
	while (!__atomic_load_n(&ct_stop, __ATOMIC_RELAXED)) {
		size_t n = 0;
		engine_series_foreach(e, NULL, 0, ct_count, &n);
		struct engine_stats es;
		engine_get_stats(e, &es);
	}
	return NULL;
}

struct ct_check {
	size_t series, rates, quantiles, bad;
};

static int ct_check_cb(void *ctx, const struct series_info *s)
{
	struct ct_check *c = ctx;
	c->series++;
	const char *name = labels_metric_name(s->labels);
	if (!strncmp(name, "foreshock:rate:", 15)) {
		c->rates++;
		if (s->samples != CT_ROUNDS - 1 || fabs(s->last_value - 1.0) > 1e-9)
			c->bad++;
	} else if (!strncmp(name, "foreshock:p", 11)) {
		c->quantiles++;
		if (s->samples != CT_ROUNDS - 1 || strcmp(strchr(name + 11, ':'), ":ct_lat"))
			c->bad++;
	} else if (s->samples != CT_ROUNDS) {
		c->bad++;
	}
	return 0;
}

static void test_engine_concurrent(void **state)
{
	struct engine_fixture *f = *state;
	const struct engine_config *cfg = &f->cfg;
	struct engine *e = engine_fixture_engine(f, NULL, &f->stats);
	struct ct_arg a[2] = { { .e = e, .t = 0 }, { .e = e, .t = 1 } };
	pthread_t th[2], rd;
	ct_stop = 0;
	assert_int_equal(pthread_create(&rd, NULL, ct_read, e), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, ct_ingest, &a[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&ct_stop, 1, __ATOMIC_RELAXED);
	pthread_join(rd, NULL);

	size_t per_thread = (size_t)CT_ROUNDS * (CT_GAUGES + CT_COUNTERS + CT_GROUPS * 3);
	size_t raw = CT_GAUGES + CT_COUNTERS + CT_GROUPS * 3;
	size_t derived = CT_COUNTERS + CT_GROUPS * cfg->nquantiles;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(a[i].accepted, per_thread);
		assert_int_equal(a[i].rejected, 0);
		assert_int_equal(a[i].created, raw + derived);
	}
	assert_int_equal(f->stats.samples_accepted, 2 * per_thread);
	struct ct_check c = { 0 };
	engine_series_foreach(e, NULL, 0, ct_check_cb, &c);
	assert_int_equal(c.series, 2 * (raw + derived));
	assert_int_equal(c.rates, 2 * CT_COUNTERS);
	assert_int_equal(c.quantiles, 2 * CT_GROUPS * cfg->nquantiles);
	assert_int_equal(c.bad, 0);
	struct engine_stats es;
	engine_get_stats(e, &es);
	assert_int_equal(es.series, 2 * (raw + derived));
	assert_int_equal(es.last_sample_ms, 1767225600000LL + (CT_ROUNDS - 1) * 10000LL);
	engine_free(e);
}

/* Staged ingest (engine_batch_stage + engine_batch_commit, what the HTTP
 * handlers use) gives the same result as engine_batch_add sample by sample:
 * same accepted and refused samples with the same reasons, reported at the
 * staging index of the refused sample, and the same detector state (last
 * score, expected value, sample count) in every series, derived ones
 * included. Bodies mix timestamps, unsorted labels, counters and histogram
 * buckets, duplicates, out-of-order samples and bad names. */
#define SG_SERIES 40
#define SG_ROUNDS 400

struct sg_rej {
	size_t idx[4096];
	int rc[4096];
	size_t n;
};

static void sg_on_reject(void *ctx, size_t index, int rc, const char *err)
{
	struct sg_rej *r = ctx;
	assert_non_null(err);
	assert_true(err[0] != 0);
	if (r->n < 4096) {
		r->idx[r->n] = index;
		r->rc[r->n++] = rc;
	}
}

struct sg_state {
	char key[160];
	uint64_t samples;
	double score, expected;
};

struct sg_dump {
	struct sg_state s[512];
	size_t n;
};

static int sg_collect(void *ctx, const struct series_info *si)
{
	struct sg_dump *d = ctx;
	if (d->n < 512) {
		struct sg_state *x = &d->s[d->n++];
		snprintf(x->key, sizeof x->key, "%s", engine_series_key(si));
		x->samples = si->samples;
		x->score = si->last.score;
		x->expected = si->last.expected;
	}
	return 0;
}

static int sg_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sg_state *)a)->key, ((const struct sg_state *)b)->key);
}

/* What two engines fed alike hold: n series each, derived of them named
 * with the prefix given, scored of them with a last score above 0. */
struct sg_same {
	size_t n;
	int derived, scored;
};

/* Checks that ea and eb hold the same series (keys) with the same detector
 * state (sample count, last score, expected value). */
static struct sg_same sg_assert_same(struct engine *ea, struct engine *eb, const char *prefix)
{
	static struct sg_dump da, db;
	memset(&da, 0, sizeof da);
	memset(&db, 0, sizeof db);
	engine_series_foreach(ea, NULL, 0, sg_collect, &da);
	engine_series_foreach(eb, NULL, 0, sg_collect, &db);
	assert_int_equal(da.n, db.n);
	qsort(da.s, da.n, sizeof da.s[0], sg_cmp);
	qsort(db.s, db.n, sizeof db.s[0], sg_cmp);
	struct sg_same same = { .n = da.n };
	for (size_t k = 0; k < da.n; k++) {
		assert_string_equal(da.s[k].key, db.s[k].key);
		assert_int_equal(da.s[k].samples, db.s[k].samples);
		assert_true(da.s[k].score == db.s[k].score);
		assert_true((isnan(da.s[k].expected) && isnan(db.s[k].expected)) ||
		            da.s[k].expected == db.s[k].expected);
		same.derived += strncmp(da.s[k].key, prefix, strlen(prefix)) == 0;
		same.scored += da.s[k].score > 0;
	}
	return same;
}

/* The i-th sample of round r: fills l (labels, deliberately unsorted for odd
 * series) and returns the number of labels; *ts and *v are its time/value. */
static size_t sg_sample(int r, int i, struct label_ref *l, char *iv, int64_t *ts, double *v)
{
	snprintf(iv, 16, "%d", i);
	int64_t base = 1767225600000LL + (int64_t)r * 10000;
	*ts = base + (i % 3) * 1000; /* three timestamps per body: runs of equal time */
	*v = 100 + 20 * sin(r * 0.05 + i) + (r > 300 && i % 5 == 0 ? 80 : 0) + (i % 7);
	size_t n = 0;
	if (i % 10 == 9) { /* a counter: becomes foreshock:rate:sg_req_total */
		l[n++] = (struct label_ref){ "__name__", 8, "sg_req_total", 12 };
		*v = 7.0 * r + i;
	} else if (i % 10 == 8 && i < 30) { /* one histogram group: buckets 8, 18, 28 */
		static const char *les[3] = { "0.1", "1", "+Inf" };
		const char *le = les[i / 10];
		l[n++] = (struct label_ref){ "__name__", 8, "sg_lat_bucket", 13 };
		l[n++] = (struct label_ref){ "le", 2, le, strlen(le) };
		*ts = base;
		*v = (double)r * (i / 10 + 1);
	} else {
		l[n++] = (struct label_ref){ "__name__", 8, "sg_gauge", 8 };
	}
	if (i % 2) { /* unsorted */
		l[n++] = (struct label_ref){ "zone", 4, "b", 1 };
		l[n++] = (struct label_ref){ "i", 1, iv, strlen(iv) };
	} else {
		l[n++] = (struct label_ref){ "i", 1, iv, strlen(iv) };
		l[n++] = (struct label_ref){ "zone", 4, "a", 1 };
	}
	if (i % 10 == 8 && i < 30) { /* the buckets share every label but le */
		snprintf(iv, 16, "g");
		l[n - 2].value = l[n - 1].value = NULL;
		l[n - 2] = (struct label_ref){ "i", 1, iv, 1 };
		l[n - 1] = (struct label_ref){ "zone", 4, "h", 1 };
	}
	return n;
}

static void test_engine_staged(void **state)
{
	struct engine_fixture *f = *state;
	const struct selfstats *sa = &f->stats, *sb = &f->stats2;
	f->cfg.max_series = 200;
	char err[320];
	struct engine *ea = engine_fixture_engine(f, NULL, &f->stats);
	struct engine *eb = engine_fixture_engine(f, NULL, &f->stats2);
	size_t total_refused = 0;
	for (int r = 0; r < SG_ROUNDS; r++) {
		struct engine_batch ba, bb;
		engine_batch_begin(ea, &ba);
		engine_batch_begin(eb, &bb);
		engine_batch_set_type(&ba, "sg_lat", 6, METRIC_HISTOGRAM);
		engine_batch_set_type(&bb, "sg_lat", 6, METRIC_HISTOGRAM);
		struct sg_rej want = { .n = 0 }, got = { .n = 0 };
		size_t staged = 0;
		for (int i = 0; i < SG_SERIES + 4; i++) {
			struct label_ref l[4];
			char iv[16];
			int64_t ts;
			double v;
			size_t n;
			if (i < SG_SERIES) {
				n = sg_sample(r, i, l, iv, &ts, &v);
			} else { /* extras: duplicate, out of order, bad name, over the limit */
				n = sg_sample(r, i - SG_SERIES, l, iv, &ts, &v);
				if (i == SG_SERIES + 1)
					ts -= 20000;
				if (i == SG_SERIES + 2)
					l[0] = (struct label_ref){ "__name__", 8, "9bad", 4 };
				if (i == SG_SERIES + 3 && r % 50 != 7)
					continue; /* a new series now and then, up to max_series */
				if (i == SG_SERIES + 3)
					snprintf(iv, 16, "new%d", r);
			}
			int ra = engine_batch_add(&ba, l, n, ts, v, err, sizeof err);
			if (ra) {
				want.idx[want.n] = staged;
				want.rc[want.n++] = ra;
			}
			int rb = engine_batch_stage(&bb, l, n, ts, v, err, sizeof err);
			assert_int_equal(rb, 0);
			staged++;
			if (i == 5) { /* a non-finite value is refused at once */
				assert_int_equal(engine_batch_add(&ba, l, n, ts, NAN, err, sizeof err),
				                 REJ_NON_FINITE + 1);
				assert_int_equal(engine_batch_stage(&bb, l, n, ts, NAN, err, sizeof err),
				                 REJ_NON_FINITE + 1);
			}
		}
		/* ba's batch holds one of ea's shard locks: end it before bb's
		 * commit takes eb's (one thread, shard locks in rank order:
		 * util/lockrank.h, checked in --enable-debug builds) */
		assert_int_equal(engine_batch_end(&ba), 0);
		size_t refused = engine_batch_commit(&bb, sg_on_reject, &got);
		assert_int_equal(refused, got.n);
		assert_int_equal(want.n, got.n);
		/* commit reports in processing order; compare as sets of (index, rc) */
		for (size_t k = 0; k < want.n; k++) {
			int found = 0;
			for (size_t j = 0; j < got.n; j++)
				found |= got.idx[j] == want.idx[k] && got.rc[j] == want.rc[k];
			if (!found)
				fail_msg("round %d: sample %zu refused (%d) by add, not by commit", r,
				         want.idx[k], want.rc[k]);
		}
		total_refused += refused;
		assert_int_equal(engine_batch_end(&bb), 0);
		assert_int_equal(ba.res.accepted, bb.res.accepted);
		assert_int_equal(ba.res.series_created, bb.res.series_created);
		for (int k = 0; k < REJ__COUNT; k++)
			assert_int_equal(ba.res.rejected[k], bb.res.rejected[k]);
	}
	assert_true(total_refused >= 3 * SG_ROUNDS); /* dup, out of order, bad name each round */
	assert_int_equal(sa->samples_accepted, sb->samples_accepted);
	struct sg_same same = sg_assert_same(ea, eb, "foreshock:");
	assert_true(same.n > SG_SERIES); /* derived series too */
	assert_true(same.derived >= 4 + 3); /* 4 rates, 3 quantiles of the group */
	assert_true(same.scored > 0);
	engine_free(ea);
	engine_free(eb);
}

/* Refusals with their messages, for the tag-set test. */
struct tg_rej {
	size_t idx[1024];
	int rc[1024];
	char msg[1024][96];
	size_t n;
};

static void tg_on_reject(void *ctx, size_t index, int rc, const char *err)
{
	struct tg_rej *r = ctx;
	if (r->n < 1024) {
		r->idx[r->n] = index;
		r->rc[r->n] = rc;
		snprintf(r->msg[r->n++], sizeof r->msg[0], "%s", err);
	}
}

static int tg_find(const struct tg_rej *r, size_t idx, int rc, const char *msg)
{
	for (size_t j = 0; j < r->n; j++)
		if (r->idx[j] == idx && r->rc[j] == rc && !strcmp(r->msg[j], msg))
			return 1;
	return 0;
}

#define TG_LINES 30
#define TG_ROUNDS 320

/* A multi-field line staged the fast way (engine_batch_stage_tags once, then
 * engine_batch_stage_named per field) is the same as every field staged with
 * all its labels (engine_batch_stage): same series, hashes and shards, same
 * refusals with the same messages, same detector results. Lines carry 4 tags
 * (unsorted on odd lines, an empty value on every 7th), 3 fields: two
 * gauges and a counter (a rate series is derived), plus now and then a bad
 * metric name, a duplicate and an out-of-order line. */
static void test_engine_staged_tags(void **state)
{
	struct engine_fixture *fx = *state;
	const struct engine_config *cfg = &fx->cfg;
	const struct selfstats *sa = &fx->stats, *sb = &fx->stats2;
	fx->cfg.max_series = 100; /* 90 series and 30 rates: cardinality refusals too */
	char err[320];
	struct engine *ea = engine_fixture_engine(fx, NULL, &fx->stats);
	struct engine *eb = engine_fixture_engine(fx, NULL, &fx->stats2);
	static const char *const fields[3] = { "tg_cpu_user", "tg_cpu_idle", "tg_bytes_total" };
	size_t total_refused = 0;
	for (int r = 0; r < TG_ROUNDS; r++) {
		struct engine_batch ba, bb;
		engine_batch_begin(ea, &ba);
		engine_batch_begin(eb, &bb);
		static struct tg_rej want, got;
		want.n = got.n = 0;
		size_t staged = 0;
		for (int i = 0; i < TG_LINES + 2; i++) {
			int line = i < TG_LINES ? i : i - TG_LINES; /* extras repeat a line */
			char host[16], rack[16];
			snprintf(host, sizeof host, "h%d", line);
			snprintf(rack, sizeof rack, "r%d", line % 4);
			int64_t ts = 1767225600000LL + (int64_t)r * 10000;
			if (i == TG_LINES + 1)
				ts -= 20000; /* out of order; i == TG_LINES: a duplicate */
			struct label_ref tags[4];
			size_t nt = 0;
			if (line % 2) {
				tags[nt++] = (struct label_ref){ "rack", 4, rack, strlen(rack) };
				tags[nt++] = (struct label_ref){ "host", 4, host, strlen(host) };
				tags[nt++] = (struct label_ref){ "env", 3, "prod", 4 };
				tags[nt++] = (struct label_ref){ "dc", 2, line % 7 ? "dc1" : "", line % 7 ? 3 : 0 };
			} else {
				tags[nt++] = (struct label_ref){ "dc", 2, line % 7 ? "dc2" : "", line % 7 ? 3 : 0 };
				tags[nt++] = (struct label_ref){ "env", 3, "prod", 4 };
				tags[nt++] = (struct label_ref){ "host", 4, host, strlen(host) };
				tags[nt++] = (struct label_ref){ "rack", 4, rack, strlen(rack) };
			}
			assert_int_equal(engine_batch_stage_tags(&bb, tags, nt, err, sizeof err), 0);
			for (int f = 0; f < 3; f++) {
				const char *name = fields[f];
				if (f == 1 && r % 25 == 5 && line == 3)
					name = "9bad"; /* an invalid metric name */
				double v = f == 2 ? 1000.0 * r + line
				                  : 50 + 10 * sin(r * 0.07 + line + f) + (r > 250 && line % 5 == 0 ? 40 : 0);
				struct label_ref l[5];
				l[0] = (struct label_ref){ "__name__", 8, name, strlen(name) };
				memcpy(l + 1, tags, sizeof tags);
				char ea_err[320] = "", eb_err[320] = "";
				int ra = engine_batch_stage(&ba, l, nt + 1, ts, v, ea_err, sizeof ea_err);
				int rb = engine_batch_stage_named(&bb, name, strlen(name), ts, v, eb_err,
				                                  sizeof eb_err);
				assert_int_equal(ra, 0);
				assert_int_equal(rb, 0);
				staged++;
				if (f == 0 && line == 2) { /* non-finite: refused at once, alike */
					ra = engine_batch_stage(&ba, l, nt + 1, ts, NAN, ea_err, sizeof ea_err);
					rb = engine_batch_stage_named(&bb, name, strlen(name), ts, NAN, eb_err,
					                              sizeof eb_err);
					assert_int_equal(ra, REJ_NON_FINITE + 1);
					assert_int_equal(rb, ra);
					assert_string_equal(ea_err, eb_err);
				}
			}
		}
		size_t refused_a = engine_batch_commit(&ba, tg_on_reject, &want);
		/* one batch's shard lock at a time (the lock ranks are per thread) */
		assert_int_equal(engine_batch_end(&ba), 0);
		size_t refused_b = engine_batch_commit(&bb, tg_on_reject, &got);
		assert_int_equal(refused_a, refused_b);
		assert_int_equal(want.n, got.n);
		for (size_t k = 0; k < want.n; k++)
			if (!tg_find(&got, want.idx[k], want.rc[k], want.msg[k]))
				fail_msg("round %d: sample %zu refused (%d, '%s') field by field, not when "
				         "staged with its line's tag set", r, want.idx[k], want.rc[k],
				         want.msg[k]);
		total_refused += refused_b;
		(void)staged;
		/* the tag set does not outlive a commit */
		err[0] = 0;
		assert_int_equal(engine_batch_stage_named(&bb, "tg_x", 4, 1, 1.0, err, sizeof err),
		                 REJ_LABELS + 1);
		assert_non_null(strstr(err, "no tag set"));
		bb.res.rejected[REJ_LABELS]--; /* that misuse is not part of the comparison */
		assert_int_equal(engine_batch_end(&bb), 0);
		assert_int_equal(ba.res.accepted, bb.res.accepted);
		assert_int_equal(ba.res.series_created, bb.res.series_created);
		for (int k = 0; k < REJ__COUNT; k++)
			assert_int_equal(ba.res.rejected[k], bb.res.rejected[k]);
	}
	/* per round: a duplicate and an out-of-order line (3 fields each); bad
	 * names and the cardinality limit now and then */
	assert_true(total_refused >= 6 * TG_ROUNDS);
	assert_int_equal(sa->samples_accepted, sb->samples_accepted);
	assert_true(sa->samples_rejected[REJ_CARDINALITY] > 0);
	/* the series staged with tag sets are the ones every other path finds
	 * (same label hash and shard): the last round again, field by field, is
	 * all duplicates, no new series */
	struct engine_batch bb;
	engine_batch_begin(eb, &bb);
	for (int line = 0; line < TG_LINES; line++) {
		char host[16], rack[16];
		snprintf(host, sizeof host, "h%d", line);
		snprintf(rack, sizeof rack, "r%d", line % 4);
		struct label_ref l[5] = {
			{ "__name__", 8, "tg_cpu_user", 11 },
			{ "dc", 2, line % 7 ? (line % 2 ? "dc1" : "dc2") : "", line % 7 ? 3 : 0 },
			{ "env", 3, "prod", 4 },
			{ "host", 4, host, strlen(host) },
			{ "rack", 4, rack, strlen(rack) },
		};
		int rc = engine_batch_add(&bb, l, 5, 1767225600000LL + (int64_t)(TG_ROUNDS - 1) * 10000,
		                          1.0, err, sizeof err);
		if (rc != REJ_DUPLICATE + 1)
			fail_msg("line %d: %d (%s), not a duplicate", line, rc, err);
	}
	assert_int_equal(bb.res.series_created, 0);
	assert_int_equal(engine_batch_end(&bb), 0);
	/* too many labels for a tag set: refused without counting anything */
	engine_batch_begin(eb, &bb);
	struct label_ref many[40];
	char names[40][8];
	for (int k = 0; k < 40; k++) {
		snprintf(names[k], sizeof names[k], "t%d", k);
		many[k] = (struct label_ref){ names[k], strlen(names[k]), "v", 1 };
	}
	err[0] = 0;
	assert_int_equal(engine_batch_stage_tags(&bb, many, cfg->label_limits.max_labels, err,
	                                         sizeof err), -1);
	assert_non_null(strstr(err, "too many labels"));
	assert_int_equal(engine_batch_stage_tags(&bb, many, cfg->label_limits.max_labels - 1, err,
	                                         sizeof err), 0);
	for (int k = 0; k < REJ__COUNT; k++)
		assert_int_equal(bb.res.rejected[k], 0);
	/* a live batch's time window holds for named samples, with the same message */
	engine_batch_set_clock(&bb, 1767225600000LL);
	assert_int_equal(engine_batch_stage_tags(&bb, many, 2, err, sizeof err), 0);
	char e1[320] = "", e2[320] = "";
	struct label_ref full[3] = { { "__name__", 8, "tg_late", 7 }, many[0], many[1] };
	int r1 = engine_batch_stage(&bb, full, 3, 1767225600000LL + 86400000LL * 30, 1.0, e1,
	                            sizeof e1);
	int r2 = engine_batch_stage_named(&bb, "tg_late", 7, 1767225600000LL + 86400000LL * 30, 1.0,
	                                  e2, sizeof e2);
	assert_int_equal(r1, REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(r2, r1);
	assert_string_equal(e1, e2);
	assert_int_equal(engine_batch_end(&bb), 0);
	struct sg_same same = sg_assert_same(ea, eb, "foreshock:rate:");
	assert_int_equal(same.n, cfg->max_series);
	assert_true(same.derived > 0);
	assert_true(same.scored > 0);
	engine_free(ea);
	engine_free(eb);
}

/* After a restore, derived series are found again where the engine derives
 * them (the parent's shard): no second foreshock:rate:/pNN: series appears
 * and they carry on from their checkpointed state. */
static void test_engine_restore_derived(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	const char *les[] = { "0.1", "0.5", "+Inf" };
	size_t nseries = 0;
	for (int phase = 0; phase < 2; phase++) {
		struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
		if (phase == 1)
			assert_int_equal(engine_restore(e, err, sizeof err), (long)nseries);
		struct engine_batch b;
		engine_batch_begin(e, &b);
		engine_batch_set_type(&b, "rd_lat", 6, METRIC_HISTOGRAM);
		for (int r = phase * 5; r < phase * 5 + 5; r++) {
			int64_t ts = 1767225600000LL + r * 10000LL;
			for (int i = 0; i < 50; i++) {
				char iv[8];
				snprintf(iv, sizeof iv, "%d", i);
				struct label_ref l[2] = { REF("__name__", "rd_req_total"),
					                  { "i", 1, iv, strlen(iv) } };
				assert_int_equal(engine_batch_add(&b, l, 2, ts, 10.0 * r, err, sizeof err), 0);
				for (int k = 0; k < 3; k++) {
					struct label_ref h[3] = { REF("__name__", "rd_lat_bucket"),
						                  { "i", 1, iv, strlen(iv) },
						                  { "le", 2, les[k], strlen(les[k]) } };
					assert_int_equal(engine_batch_add(&b, h, 3, ts, (double)r * (k + 1),
					                                  err, sizeof err), 0);
				}
			}
		}
		assert_int_equal(engine_batch_end(&b), 0);
		if (phase == 1)
			assert_int_equal(b.res.series_created, 0);
		struct ct_check c = { 0 };
		engine_series_foreach(e, NULL, 0, ct_check_cb, &c);
		/* 50 counters + 50 rates + 150 buckets + 50 * 3 quantiles */
		assert_int_equal(c.series, 400);
		assert_int_equal(c.rates, 50);
		assert_int_equal(c.quantiles, 150);
		nseries = c.series;
		assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
		engine_free(e);
	}
}

static int key_collect(void *ctx, const struct series_info *si)
{
	char **keys = ctx;
	for (int i = 0; i < 3; i++)
		if (!keys[i]) {
			keys[i] = strdup(engine_series_key(si));
			break;
		}
	return 0;
}

/* A series keeps its labels, not its key: the key readers get is written
 * from the labels, whatever its length (one longer than the readers' 512
 * bytes). */
static void test_engine_series_key(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	struct engine *e = engine_fixture_engine(f, NULL, &f->stats);
	char longv[700];
	memset(longv, 'v', sizeof longv - 1);
	longv[sizeof longv - 1] = 0;
	longv[10] = '"';
	struct engine_batch b;
	engine_batch_begin(e, &b);
	struct label_ref a[3] = { REF("zz", "1"), REF("__name__", "k"),
		                  { "path", 4, longv, sizeof longv - 1 } };
	struct label_ref c[2] = { REF("__name__", "short"), REF("q", "a\\b") };
	assert_int_equal(engine_batch_add(&b, a, 3, 1767225600000LL, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_add(&b, c, 2, 1767225600000LL, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_end(&b), 0);
	char *keys[3] = { NULL, NULL, NULL };
	assert_int_equal(engine_series_foreach(e, NULL, 0, key_collect, keys), 0);
	assert_non_null(keys[0]);
	assert_non_null(keys[1]);
	assert_null(keys[2]);
	struct labels la, lc;
	assert_int_equal(labels_from_refs(&la, a, 3, NULL, err, sizeof err), 0);
	assert_int_equal(labels_from_refs(&lc, c, 2, NULL, err, sizeof err), 0);
	char *wa = labels_to_string(&la), *wc = labels_to_string(&lc);
	assert_true(strlen(wa) > 700);
	int a0 = !strcmp(keys[0], wa);
	assert_string_equal(keys[a0 ? 0 : 1], wa);
	assert_string_equal(keys[a0 ? 1 : 0], wc);
	assert_string_equal(wc, "short{q=\"a\\\\b\"}");
	free(wa);
	free(wc);
	free(keys[0]);
	free(keys[1]);
	labels_free(&la);
	labels_free(&lc);
	engine_free(e);
}

/* Another batch holding one shard, until the main thread has begun its
 * commit (then 20 ms more: not a timed assertion, the commit waits for the
 * shard either way and a deadlock would hang the test). */
struct busy_arg {
	struct engine *e;
	int64_t ts;
	int holding, go;
};

static void *busy_hold(void *arg)
{
	struct busy_arg *a = arg;
	struct engine_batch b;
	char err[256];
	struct label_ref l[2] = { REF("__name__", "bz_busy"), REF("i", "x") };
	engine_batch_begin(a->e, &b);
	if (engine_batch_add(&b, l, 2, a->ts, 1, err, sizeof err) != 0)
		fail_msg("busy sample rejected: %s", err);
	__atomic_store_n(&a->holding, 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&a->go, __ATOMIC_ACQUIRE))
		sched_yield();
	struct timespec ts = { 0, 20 * 1000000L };
	nanosleep(&ts, NULL);
	if (engine_batch_end(&b) != 0)
		fail_msg("busy batch_end failed");
	return NULL;
}

#define BZ_SERIES 96
#define BZ_ROUNDS 70

/* The commit takes the shard of the run after the current one ahead of the
 * switch, by a trylock, so that its look-ahead runs on across it
 * (commit.c), and carries on without when that shard is busy. Batches of
 * BZ_SERIES series over every shard, at two timestamps each (so the shards
 * come round again: a shard taken ahead may rank below the one held),
 * committed while another thread's batch holds one shard (eb), give the
 * same series, samples and scores as the same samples added one by one
 * with no other batch about (ea). */
static void test_engine_commit_shard_busy(void **state)
{
	struct engine_fixture *f = *state;
	char err[320];
	struct engine *ea = engine_fixture_engine(f, NULL, &f->stats);
	struct engine *eb = engine_fixture_engine(f, NULL, &f->stats2);
	struct label_ref busy[2] = { REF("__name__", "bz_busy"), REF("i", "x") };
	struct engine_batch ba;
	for (int r = 0; r < BZ_ROUNDS; r++) {
		int64_t bts = 1767225600000LL + (int64_t)(2 * r + 1) * 60000;
		struct busy_arg arg = { .e = eb, .ts = bts, .holding = 0, .go = 0 };
		pthread_t th;
		if (r % 2 == 0) { /* every other round with a busy shard (ea: the same sample) */
			engine_batch_begin(ea, &ba);
			assert_int_equal(engine_batch_add(&ba, busy, 2, bts, 1, err, sizeof err), 0);
			assert_int_equal(engine_batch_end(&ba), 0);
			assert_int_equal(pthread_create(&th, NULL, busy_hold, &arg), 0);
			while (!__atomic_load_n(&arg.holding, __ATOMIC_ACQUIRE))
				sched_yield();
		}
		engine_batch_begin(ea, &ba);
		struct engine_batch bb;
		engine_batch_begin(eb, &bb);
		for (int half = 0; half < 2; half++) {
			int64_t ts = 1767225600000LL + (int64_t)(2 * r + half + 1) * 60000;
			for (int i = 0; i < BZ_SERIES; i++) {
				char iv[16];
				snprintf(iv, sizeof iv, "%d", i);
				struct label_ref l[3] = { REF("__name__", "bz_g"), REF("h", "a"),
					                  { "i", 1, iv, strlen(iv) } };
				double v = 50 + 10 * sin(r * 0.3 + i) + (r == BZ_ROUNDS - 1 && half && i % 4 == 0 ? 400 : 0);
				assert_int_equal(engine_batch_add(&ba, l, 3, ts, v, err, sizeof err), 0);
				assert_int_equal(engine_batch_stage(&bb, l, 3, ts, v, err, sizeof err), 0);
			}
		}
		assert_int_equal(engine_batch_end(&ba), 0);
		__atomic_store_n(&arg.go, 1, __ATOMIC_RELEASE);
		assert_int_equal(engine_batch_commit(&bb, NULL, NULL), 0);
		assert_int_equal(engine_batch_end(&bb), 0);
		assert_int_equal(bb.res.accepted, 2 * BZ_SERIES);
		if (r % 2 == 0)
			pthread_join(th, NULL);
	}
	struct sg_same same = sg_assert_same(ea, eb, "bz_busy");
	assert_int_equal(same.n, BZ_SERIES + 1);
	assert_int_equal(same.derived, 1);
	assert_true(same.scored > 0);
	engine_free(ea);
	engine_free(eb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENGINE_FIXTURE_TEST(test_engine_derived),
		ENGINE_FIXTURE_TEST(test_engine_series_key),
		ENGINE_FIXTURE_TEST(test_engine_concurrent),
		ENGINE_FIXTURE_TEST(test_engine_staged),
		ENGINE_FIXTURE_TEST(test_engine_staged_tags),
		ENGINE_FIXTURE_TEST(test_engine_restore_derived),
		ENGINE_FIXTURE_TEST(test_engine_commit_shard_busy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

