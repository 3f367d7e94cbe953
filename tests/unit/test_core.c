/* test_core.c — unit tests of the engine with a real store (the shared
 * fixture of engine_fixture.h): ingest and refusals, alerts made durable,
 * checkpoint and restore, per-series alerting with the model's and the
 * daemon's settings, incremental persistence, the time window and the
 * retention horizon. Derived signals, staged and concurrent ingest are in
 * test_engine_ingest.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "daemon/settings.h"
#include "engine/engine.h"
#include "engine_fixture.h"
#include "store/store.h"

/* A pseudo-random number in [-1, 1): the tests' noise, the same sequence
 * for the same seed. */
static double noise(uint64_t *seed)
{
	*seed = *seed * 6364136223846793005ULL + 1442695040888963407ULL;
	return ((double)(*seed >> 11) / 9007199254740992.0 - 0.5) * 2;
}

/* The per-series alert settings of the daemon (settings.c's defaults) in
 * place of the engine's (the model's own alerting); with the hard break
 * too when with_break. */
static void daemon_series_alerts(struct engine_config *cfg, int with_break)
{
	struct fs_config c;
	config_defaults(&c);
	cfg->series_threshold = c.engine.series_threshold;
	cfg->series_min_factor = c.engine.series_min_factor;
	cfg->series_for_ms = c.engine.series_for_ms;
	if (with_break) {
		cfg->series_break_factor = c.engine.series_break_factor;
		cfg->series_break_ms = c.engine.series_break_ms;
	}
	config_free(&c);
}

struct count_ctx {
	int n;
	int firing;
	int pending;
};

static int count_alerts(void *ctx, const struct alert_rec *r)
{
	struct count_ctx *c = ctx;
	c->n++;
	c->firing += !strcmp(r->state, "firing");
	c->pending += !strcmp(r->state, "pending");
	return 0;
}

static int count_series(void *ctx, const struct series_info *s)
{
	(*(int *)ctx)++;
	assert_true(s->samples > 0);
	return 0;
}

static void test_engine(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	f->cfg.max_series = 2;
	f->cfg.history_points = 16;
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);

	struct engine_batch b;
	engine_batch_begin(e, &b);
	uint64_t seed = 42;
	int64_t t0 = 1767225600000LL;
	for (int i = 0; i < 2000; i++) {
		double v = (i < 1500 ? 100 : 160) + noise(&seed);
		struct label_ref r[2] = { REF("__name__", "lat"), REF("svc", "a") };
		assert_int_equal(engine_batch_add(&b, r, 2, t0 + i * 10000LL, v, err, sizeof err), 0);
	}
	struct label_ref r2[2] = { REF("__name__", "lat"), REF("svc", "a") };
	/* duplicate and out of order */
	assert_int_equal(engine_batch_add(&b, r2, 2, t0, 1, err, sizeof err), REJ_OUT_OF_ORDER + 1);
	assert_non_null(strstr(err, "out-of-order sample for 'lat{svc=\"a\"}'"));
	assert_int_equal(engine_batch_add(&b, r2, 2, t0 + 1999 * 10000LL, 1, err, sizeof err),
	                 REJ_DUPLICATE + 1);
	assert_non_null(strstr(err, "duplicate sample for 'lat{svc=\"a\"}'"));
	assert_int_equal(engine_batch_add(&b, r2, 2, t0 + 3000 * 10000LL, NAN, err, sizeof err),
	                 REJ_NON_FINITE + 1);
	/* cardinality */
	struct label_ref r3[1] = { REF("__name__", "b") };
	struct label_ref r4[1] = { REF("__name__", "c") };
	assert_int_equal(engine_batch_add(&b, r3, 1, t0, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_add(&b, r4, 1, t0, 1, err, sizeof err), REJ_CARDINALITY + 1);
	assert_non_null(strstr(err, "'c'"));
	struct label_ref bad[1] = { REF("__name__", "9bad") };
	assert_int_equal(engine_batch_add(&b, bad, 1, t0, 1, err, sizeof err), REJ_LABELS + 1);
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(b.res.accepted, 2001);
	assert_int_equal(f->stats.samples_accepted, 2001);
	assert_int_equal(f->stats.samples_rejected[REJ_DUPLICATE], 1);

	struct count_ctx cc = { 0 };
	assert_int_equal(store_alerts_scan(f->store, 1, 0, count_alerts, &cc), 0);
	assert_true(cc.n >= 1); /* the level shift raised an alert, durable in the store */
	int ns = 0;
	engine_series_foreach(e, NULL, 0, count_series, &ns);
	assert_int_equal(ns, 2);

	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	engine_free(e);
	/* restore into a fresh engine */
	e = engine_fixture_engine(f, f->store, &f->stats);
	assert_int_equal(engine_restore(e, err, sizeof err), 2);
	struct engine_stats es;
	engine_get_stats(e, &es);
	assert_int_equal(es.series, 2);
	assert_int_equal(es.last_sample_ms, t0 + 1999 * 10000LL);
	engine_batch_begin(e, &b);
	/* the restored series still rejects old samples: state came back */
	assert_int_equal(engine_batch_add(&b, r2, 2, t0 + 5 * 10000LL, 1, err, sizeof err),
	                 REJ_OUT_OF_ORDER + 1);
	engine_batch_end(&b);
	engine_free(e);
}

struct fired {
	const char *key;
	int64_t firing_at_ms;
};

static int find_fired(void *ctx, const struct alert_rec *r)
{
	struct fired *f = ctx;
	if (!strcmp(r->series_key, f->key) && r->firing_at_ms > 0 &&
	    (!f->firing_at_ms || r->firing_at_ms < f->firing_at_ms))
		f->firing_at_ms = r->firing_at_ms;
	return 0;
}

/* Per-series alerts: a 1.6x shift, a 3x spike of 2 minutes and a sustained
 * 3x shift, 10 s apart; the time each first fired, in f[3]. */
static void series_alerts_run(struct engine_fixture *fx, struct fired f[3], int64_t *tev)
{
	char err[256];
	struct engine *e = engine_fixture_engine(fx, fx->store, &fx->stats);
	static const char *const names[] = { "shift16", "spike3", "shift3" };
	const double level[] = { 160, 300, 300 };
	const int len[] = { 120, 12, 120 }; /* samples of 10 s */
	int64_t t0 = 1767225600000LL;
	*tev = t0 + 2000 * 10000LL;
	for (int k = 0; k < 3; k++) {
		struct engine_batch b;
		engine_batch_begin(e, &b);
		uint64_t seed = 7 + (uint64_t)k;
		for (int i = 0; i < 2400; i++) {
			double v = (i >= 2000 && i < 2000 + len[k] ? level[k] : 100) + noise(&seed);
			struct label_ref r[1] = { { "__name__", 8, names[k], strlen(names[k]) } };
			assert_int_equal(engine_batch_add(&b, r, 1, t0 + i * 10000LL, v, err, sizeof err),
			                 0);
		}
		assert_int_equal(engine_batch_end(&b), 0);
	}
	for (int k = 0; k < 3; k++) {
		f[k] = (struct fired){ names[k], 0 };
		assert_int_equal(store_alerts_scan(fx->store, 1, 0, find_fired, &f[k]), 0);
	}
	engine_free(e);
}

/* With the engine's defaults (the model's own alerting) the 1.6x shift and
 * the 3x one fire on the detection. */
static void test_engine_series_alerts_model(void **state)
{
	struct fired f[3];
	int64_t tev;
	series_alerts_run(*state, f, &tev);
	assert_true(f[0].firing_at_ms >= tev && f[0].firing_at_ms <= tev + 60000);
	assert_true(f[2].firing_at_ms >= tev && f[2].firing_at_ms <= tev + 60000);
}

/* With the daemon's defaults (settings.c) they page on a sustained anomaly
 * 2x off its expected value (10 min), not on the 1.6x shift or the spike. */
static void test_engine_series_alerts_daemon(void **state)
{
	struct engine_fixture *fx = *state;
	struct fired f[3];
	int64_t tev;
	daemon_series_alerts(&fx->cfg, 0);
	series_alerts_run(fx, f, &tev);
	assert_int_equal(f[0].firing_at_ms, 0);
	assert_int_equal(f[1].firing_at_ms, 0);
	assert_true(f[2].firing_at_ms >= tev + 10 * 60000);
	assert_true(f[2].firing_at_ms <= tev + 12 * 60000);
}

/* With the daemon's defaults: a latency (or error) series that falls far
 * below its expected value raises nothing (only a rise is trouble there),
 * another series does after `for`; an error series jumping 30x beyond
 * anything it showed in a day fires within a minute or two (hard break),
 * 4x only after `for`, and a 40x blip earlier raises the bar for the next
 * jump. Samples every 60 s, 1.5 days; the event is at 1.25 days. */
static void test_engine_series_direction_and_break(void **state)
{
	struct engine_fixture *fx = *state;
	char err[256];
	daemon_series_alerts(&fx->cfg, 1);
	assert_true(fx->cfg.series_break_factor == 5);
	struct engine *e = engine_fixture_engine(fx, fx->store, &fx->stats);
	static const char *const names[] = { "api_latency_seconds", "queue_depth", "db_errors",
		                             "cache_errors", "disk_errors" };
	const double level[] = { 100.0 / 3, 100.0 / 3, 3000, 400, 3000 };
	const int len[] = { 20, 20, 5, 20, 5 }; /* minutes */
	const int N = 2160, at = 1800;
	int64_t t0 = 1767225600000LL, tev = t0 + at * 60000LL;
	for (int k = 0; k < 5; k++) {
		struct engine_batch b;
		engine_batch_begin(e, &b);
		uint64_t seed = 11 + (uint64_t)k;
		for (int i = 0; i < N; i++) {
			double v = (i >= at && i < at + len[k] ? level[k] : 100) + noise(&seed);
			if (k == 4 && i >= 720 && i < 723) /* a 40x blip at half a day */
				v = 4000;
			struct label_ref r[1] = { { "__name__", 8, names[k], strlen(names[k]) } };
			assert_int_equal(engine_batch_add(&b, r, 1, t0 + i * 60000LL, v, err, sizeof err),
			                 0);
		}
		assert_int_equal(engine_batch_end(&b), 0);
	}
	struct fired f[5];
	for (int k = 0; k < 5; k++) {
		f[k] = (struct fired){ names[k], 0 };
		assert_int_equal(store_alerts_scan(fx->store, 1, 0, find_fired, &f[k]), 0);
	}
	assert_int_equal(f[0].firing_at_ms, 0);                 /* latency falling: fine */
	assert_true(f[1].firing_at_ms >= tev + 10 * 60000);     /* a queue emptying: after `for` */
	assert_true(f[1].firing_at_ms <= tev + 12 * 60000);
	assert_true(f[2].firing_at_ms >= tev + 60000);          /* 30x: a hard break */
	assert_true(f[2].firing_at_ms <= tev + 2 * 60000);
	assert_true(f[3].firing_at_ms >= tev + 10 * 60000);     /* 4x: after `for` */
	assert_true(f[3].firing_at_ms <= tev + 12 * 60000);
	assert_int_equal(f[4].firing_at_ms, 0);                 /* not beyond the blip seen */
	engine_free(e);
}

/* Learned state is written incrementally: only series that changed, at
 * most max_series per call, round robin; ids persist across restarts. */
static void test_engine_persist_incremental(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	f->cfg.history_points = 4;
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	int64_t t0 = 1767225600000LL;
	struct engine_batch b;
	char v[16];
	engine_batch_begin(e, &b);
	for (int i = 0; i < 2500; i++) {
		snprintf(v, sizeof v, "%d", i);
		struct label_ref r[2] = { REF("__name__", "m"), { "i", 1, v, strlen(v) } };
		assert_int_equal(engine_batch_add(&b, r, 2, t0, i, err, sizeof err), 0);
	}
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(engine_dirty_series(e), 2500);
	assert_int_equal(engine_persist(e, 1200, err, sizeof err), 1200); /* bounded */
	assert_int_equal(engine_dirty_series(e), 1300);
	assert_int_equal(engine_persist(e, 0, err, sizeof err), 1300);
	assert_int_equal(engine_dirty_series(e), 0);
	assert_int_equal(engine_persist(e, 0, err, sizeof err), 0); /* nothing changed */
	int64_t max = 0;
	assert_int_equal(store_state_max_sid(f->store, &max), 0);
	assert_int_equal(max, 2500);
	/* ten series learn more: only they are written again (updates) */
	engine_batch_begin(e, &b);
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof v, "%d", i);
		struct label_ref r[2] = { REF("__name__", "m"), { "i", 1, v, strlen(v) } };
		assert_int_equal(engine_batch_add(&b, r, 2, t0 + 10000, i, err, sizeof err), 0);
	}
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(engine_dirty_series(e), 10);
	struct engine_stats es;
	engine_get_stats(e, &es);
	assert_int_equal(es.dirty_series, 10);
	assert_int_equal(es.state_writes, 2500);
	assert_int_equal(engine_persist(e, 0, err, sizeof err), 10);
	engine_free(e); /* as kill -9 would: nothing written at the end */

	e = engine_fixture_engine(f, f->store, &f->stats);
	assert_int_equal(engine_restore(e, err, sizeof err), 2500);
	assert_int_equal(engine_dirty_series(e), 0); /* restored as stored */
	engine_batch_begin(e, &b);
	struct label_ref r0[2] = { REF("__name__", "m"), REF("i", "0") };
	struct label_ref r9[2] = { REF("__name__", "m"), REF("i", "2499") };
	/* series 0 learnt its second sample before the restart, 2499 did not */
	assert_int_equal(engine_batch_add(&b, r0, 2, t0 + 10000, 1, err, sizeof err),
	                 REJ_DUPLICATE + 1);
	assert_int_equal(engine_batch_add(&b, r9, 2, t0 + 10000, 1, err, sizeof err), 0);
	struct label_ref rn[2] = { REF("__name__", "m"), REF("i", "new") };
	assert_int_equal(engine_batch_add(&b, rn, 2, t0, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	assert_int_equal(store_state_max_sid(f->store, &max), 0);
	assert_int_equal(max, 2501); /* ids continue after the restart */
	engine_free(e);
}

/* Timestamps: the window around the clock of a live batch (out_of_bounds,
 * counted, the other samples kept), no window for event-time batches, and
 * INT64_MIN/INT64_MAX refused everywhere (no signed overflow downstream:
 * run under UBSan in the sanitizer build). */
static void test_engine_time_window(void **state)
{
	struct engine_fixture *f = *state;
	f->cfg.max_sample_age_ms = 3600 * 1000;
	char err[320];
	struct engine *e = engine_fixture_engine(f, NULL, &f->stats);
	const int64_t now = 1700000000000;
	struct label_ref l[2] = { { "__name__", 8, "t", 1 }, { "k", 1, "a", 1 } };
	struct engine_batch b;
	engine_batch_begin(e, &b);
	engine_batch_set_clock(&b, now);
	assert_int_equal(engine_batch_add(&b, l, 2, now - 1000, 1, err, sizeof err), 0);
	/* 2262 (the sample) and 11 minutes ahead: out of bounds */
	assert_int_equal(engine_batch_add(&b, l, 2, 9223372036854, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_non_null(strstr(err, "ahead of the server's clock"));
	assert_int_equal(engine_batch_add(&b, l, 2, now + 11 * 60000, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_add(&b, l, 2, now - 2 * 3600000, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_non_null(strstr(err, "behind the server's clock"));
	assert_int_equal(engine_batch_add(&b, l, 2, INT64_MAX, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_add(&b, l, 2, INT64_MIN, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	/* within the window, the series goes on (the far-future one did not poison it) */
	assert_int_equal(engine_batch_add(&b, l, 2, now + 5 * 60000, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_stage(&b, l, 2, INT64_MAX, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_stage(&b, l, 2, now + 6 * 60000, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_commit(&b, NULL, NULL), 0);
	assert_int_equal(b.res.rejected[REJ_OUT_OF_BOUNDS], 6);
	engine_batch_end(&b);
	assert_int_equal(atomic_load(&f->stats.samples_rejected[REJ_OUT_OF_BOUNDS]), 6);
	/* event time (replay, backtest): old data passes, the absolute limit holds */
	struct label_ref l2[2] = { { "__name__", 8, "t", 1 }, { "k", 1, "old", 3 } };
	engine_batch_begin(e, &b);
	assert_int_equal(engine_batch_add(&b, l2, 2, 86400000, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_add(&b, l2, 2, INT64_MAX, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_add(&b, l2, 2, 86400000 + ENGINE_TS_LIMIT_MS, 1, err,
	                                  sizeof err), REJ_OUT_OF_BOUNDS + 1);
	for (int i = 1; i < 50; i++)
		assert_int_equal(engine_batch_add(&b, l2, 2, 86400000 + i * 1000, i % 3, err,
		                                  sizeof err), 0);
	engine_batch_end(&b);
	/* the edges, one new series each, staged (the inline check of the
	 * batch's [ts_lo, ts_hi]) and added (the full check) alike: the window's
	 * ends and the absolute limits are in, one millisecond past them out */
	const int64_t fut = f->cfg.max_sample_future_ms, age = f->cfg.max_sample_age_ms;
	const struct {
		int live;
		int64_t ts;
		int rc;
	} edge[] = {
		{ 1, now + fut, 0 },
		{ 1, now + fut + 1, REJ_OUT_OF_BOUNDS + 1 },
		{ 1, now - age, 0 },
		{ 1, now - age - 1, REJ_OUT_OF_BOUNDS + 1 },
		{ 0, ENGINE_TS_LIMIT_MS, 0 },
		{ 0, ENGINE_TS_LIMIT_MS + 1, REJ_OUT_OF_BOUNDS + 1 },
		{ 0, -ENGINE_TS_LIMIT_MS, 0 },
		{ 0, -ENGINE_TS_LIMIT_MS - 1, REJ_OUT_OF_BOUNDS + 1 },
	};
	for (size_t i = 0; i < sizeof edge / sizeof edge[0]; i++)
		for (int staged = 0; staged < 2; staged++) {
			char v[16];
			snprintf(v, sizeof v, "edge%zu%c", i, staged ? 's' : 'a');
			struct label_ref le[2] = { { "__name__", 8, "t", 1 }, { "k", 1, v, strlen(v) } };
			engine_batch_begin(e, &b);
			if (edge[i].live)
				engine_batch_set_clock(&b, now);
			int rc = staged ? engine_batch_stage(&b, le, 2, edge[i].ts, 1, err, sizeof err)
			                : engine_batch_add(&b, le, 2, edge[i].ts, 1, err, sizeof err);
			if (rc != edge[i].rc)
				fail_msg("edge %zu (%s): %d, want %d", i, staged ? "staged" : "added", rc,
				         edge[i].rc);
			assert_int_equal(engine_batch_commit(&b, NULL, NULL), 0);
			engine_batch_end(&b);
		}
	engine_free(e);
}

/* The retention horizon follows the newest sample but never passes the wall
 * clock: an event-time sample dated 30 days ahead does not prune history. */
static void test_engine_prune_horizon(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	struct timespec tsp;
	clock_gettime(CLOCK_REALTIME, &tsp);
	int64_t now = (int64_t)tsp.tv_sec * 1000;
	struct alert_rec r = { .series_key = "m{a=\"1\"}", .state = "resolved",
		               .active_at_ms = now - 3600000, .resolved_at_ms = now - 1800000,
		               .event_at_ms = now - 1800000 };
	assert_int_equal(store_alerts_write(f->store, &r, 1, err, sizeof err), 0);
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	struct label_ref l[1] = { { "__name__", 8, "f", 1 } };
	struct engine_batch b;
	engine_batch_begin(e, &b); /* event time: no window */
	assert_int_equal(engine_batch_add(&b, l, 1, now + 30LL * 86400000, 1, err, sizeof err), 0);
	engine_batch_end(&b);
	/* without the cap the horizon would be now + 23 days and prune it */
	assert_int_equal(engine_prune(e), 0); /* the 30-minute-old alert stays */
	struct count_ctx cc = { 0 };
	assert_int_equal(store_alerts_scan(f->store, 1, 0, count_alerts, &cc), 0);
	assert_int_equal(cc.n, 1);
	engine_free(e);
}

/* The last alert of a series (the highest id) and the series' own view. */
struct last_alert {
	struct alert_rec r;
	int64_t id;
};

static int last_alert(void *ctx, const struct alert_rec *r)
{
	struct last_alert *a = ctx;
	if (r->id > a->id) {
		a->id = r->id;
		a->r = *r;
		a->r.series_key = a->r.labels_json = a->r.annotations_json = a->r.state = NULL;
	}
	return 0;
}

static int series_of(void *ctx, const struct series_info *s)
{
	*(struct series_info *)ctx = *s;
	return 0;
}

struct blobs {
	size_t n;
	size_t len[2];
	unsigned char v[2][4096];
};

static int copy_blob(void *ctx, const struct store_ckpt *c)
{
	struct blobs *b = ctx;
	assert_true(b->n < 2 && c->state_len <= sizeof b->v[0]);
	memcpy(b->v[b->n], c->state, c->state_len);
	b->len[b->n++] = c->state_len;
	return 0;
}

/* A checkpoint keeps the alert machine in the layout FSK2 was defined with,
 * whatever order struct alert_fsm has in memory: after the 72-byte header,
 * the state byte, 7 zero bytes, active_at, firing_at, normal_since, value,
 * score, peak, alert id, resolved_at (8 bytes each); a restored series
 * writes the same blob again. */
static void test_engine_checkpoint_alert_layout(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	struct engine_batch b;
	engine_batch_begin(e, &b);
	uint64_t seed = 7;
	int64_t t0 = 1767225600000LL;
	int n = 1520; /* a level shift at 1500: its alert open at the end */
	for (int i = 0; i < n; i++) {
		double v = (i < 1500 ? 100 : 160) + noise(&seed);
		struct label_ref r[2] = { REF("__name__", "lat"), REF("svc", "a") };
		assert_int_equal(engine_batch_add(&b, r, 2, t0 + i * 10000LL, v, err, sizeof err), 0);
	}
	assert_int_equal(engine_batch_end(&b), 0);
	struct last_alert la = { .id = 0 };
	assert_int_equal(store_alerts_scan(f->store, 1, 0, last_alert, &la), 0);
	assert_true(la.id > 0);
	struct series_info si;
	memset(&si, 0, sizeof si);
	assert_int_equal(engine_series_foreach(e, NULL, 0, series_of, &si), 0);
	assert_true(si.alert_state == 1 || si.alert_state == 2); /* pending or firing */
	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	engine_free(e);

	struct blobs bl = { 0 };
	assert_int_equal(store_ckpt_scan(f->store, copy_blob, &bl), 0);
	assert_int_equal(bl.n, 1);
	const unsigned char *a = bl.v[0] + 72;
	int64_t i64[9];
	double d[9];
	for (int k = 0; k < 9; k++) {
		memcpy(&i64[k], a + 8 * k, 8);
		memcpy(&d[k], a + 8 * k, 8);
	}
	assert_int_equal(a[0], si.alert_state);
	for (int k = 1; k < 8; k++)
		assert_int_equal(a[k], 0);
	assert_int_equal(i64[1], la.r.active_at_ms);
	assert_int_equal(i64[2], la.r.firing_at_ms);
	assert_true(i64[3] == 0 || i64[3] > i64[2]);      /* normal_since */
	assert_true(d[4] == si.last_value);               /* value */
	assert_true(d[5] >= 0 && d[5] <= 1);              /* score */
	assert_true(d[6] >= d[5] || si.alert_state == 0); /* peak */
	assert_true(d[6] > 0 && d[6] <= 1);
	assert_int_equal(i64[7], la.id);
	assert_int_equal(i64[8], 0); /* not resolved */

	/* restored, one more sample of the shift, written again: the same
	 * alert with its peak (which the store's rows do not hold) carried */
	e = engine_fixture_engine(f, f->store, &f->stats);
	assert_int_equal(engine_restore(e, err, sizeof err), 1);
	engine_batch_begin(e, &b);
	struct label_ref r[2] = { REF("__name__", "lat"), REF("svc", "a") };
	assert_int_equal(engine_batch_add(&b, r, 2, t0 + n * 10000LL, 160.5, err, sizeof err), 0);
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	engine_free(e);
	struct blobs b2 = { 0 };
	assert_int_equal(store_ckpt_scan(f->store, copy_blob, &b2), 0);
	assert_int_equal(b2.n, 1);
	assert_int_equal(b2.len[0], bl.len[0]);
	a = b2.v[0] + 72;
	int64_t j64[9];
	double e64[9];
	for (int k = 0; k < 9; k++) {
		memcpy(&j64[k], a + 8 * k, 8);
		memcpy(&e64[k], a + 8 * k, 8);
	}
	assert_true(a[0] >= si.alert_state);
	assert_int_equal(j64[1], i64[1]);
	assert_int_equal(j64[7], i64[7]);
	assert_true(e64[4] == 160.5);
	assert_true(e64[6] >= d[6]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENGINE_FIXTURE_TEST(test_engine),
		ENGINE_FIXTURE_TEST(test_engine_series_alerts_model),
		ENGINE_FIXTURE_TEST(test_engine_series_alerts_daemon),
		ENGINE_FIXTURE_TEST(test_engine_series_direction_and_break),
		ENGINE_FIXTURE_TEST(test_engine_time_window),
		ENGINE_FIXTURE_TEST(test_engine_prune_horizon),
		ENGINE_FIXTURE_TEST(test_engine_persist_incremental),
		ENGINE_FIXTURE_TEST(test_engine_checkpoint_alert_layout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
