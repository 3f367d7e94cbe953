/* test_engine_forecast.c — the engine's forecasters: made on request (the
 * default) or for every series, counted in the memory budget, kept in the
 * checkpoint, and checkpoints of the layout before the forecaster pool
 * ("FSK1": model and forecaster state in one block) read back. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detector.h"
#include "engine/engine.h"
#include "engine_fixture.h"
#include "service/service.h"
#include "store/store.h"
#include "util/selector.h"
#include "util/selfstats.h"

#define T0 1767225600000LL

/* What engine_forecast passed for the one selected series. */
struct fc_got {
	int calls;
	size_t n;
	double mean0;          /* pts[0].mean when n > 0 */
	struct forecast_info info;
};

static int fc_cb(void *ctx, const struct series_info *si, const struct forecast_point *p,
                 size_t n, const struct breach *br, const struct forecast_info *fi)
{
	(void)si;
	(void)br;
	struct fc_got *g = ctx;
	g->calls++;
	g->n = n;
	g->mean0 = n ? p[0].mean : NAN;
	g->info = *fi;
	return 0;
}

static struct fc_got forecast_of(struct engine *e, const char *sel_text)
{
	struct selector sel;
	char err[256];
	assert_int_equal(selector_parse(&sel, sel_text, err, sizeof err), 0);
	struct fc_got g = { 0 };
	assert_int_equal(engine_forecast(e, &sel, 1, 60000, 10, NAN, 1, fc_cb, &g), 0);
	selector_free(&sel);
	return g;
}

/* n samples a minute apart from sample i0 on, of series m{k="v"}: an hourly wave */
static void feed(struct engine *e, const char *name, int i0, int n)
{
	char err[256];
	struct engine_batch b;
	engine_batch_begin(e, &b);
	for (int i = i0; i < i0 + n; i++) {
		struct label_ref r[2] = { { "__name__", 8, name, strlen(name) }, REF("k", "v") };
		double v = 50 + 10 * sin(2 * M_PI * i / 60.0) + ((i * 7919) % 13 - 6) / 12.0;
		assert_int_equal(engine_batch_add(&b, r, 2, T0 + i * 60000LL, v, err, sizeof err), 0);
	}
	assert_int_equal(engine_batch_end(&b), 0);
}

static size_t series_bytes(struct engine *e)
{
	struct engine_stats st;
	engine_get_stats(e, &st);
	return st.series_bytes;
}

/* Requested (the default): a series has no forecaster until its forecast is
 * asked for; the first request makes one (its bytes counted) and answers
 * "not ready, 0 samples"; it learns from then on. */
static void test_on_request(void **state)
{
	struct engine_fixture *f = *state;
	assert_int_equal(f->cfg.forecast, ENGINE_FORECAST_REQUESTED);
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	feed(e, "a", 0, 1);
	feed(e, "b", 0, 1);
	size_t before = series_bytes(e);
	struct fc_got g = forecast_of(e, "a");
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.n, 0);
	assert_int_equal(g.info.ready, 0);
	assert_int_equal(g.info.samples, 0);
	size_t fc_bytes = series_bytes(e) - before;
	assert_true(fc_bytes >= forecast_state_size(&f->cfg.forecast_params));
	assert_true(fc_bytes < forecast_state_size(&f->cfg.forecast_params) + 16);
	/* a second request makes none */
	g = forecast_of(e, "a");
	assert_int_equal(series_bytes(e) - before, fc_bytes);
	feed(e, "a", 1, 600);
	feed(e, "b", 1, 600);
	g = forecast_of(e, "a");
	assert_int_equal(g.n, 10);
	assert_int_equal(g.info.samples, 600);
	assert_true(fabs(g.mean0 - 50) < 15);
	/* b was never asked for: its first request starts from nothing */
	g = forecast_of(e, "b");
	assert_int_equal(g.n, 0);
	assert_int_equal(g.info.samples, 0);
	assert_int_equal(series_bytes(e) - before, 2 * fc_bytes);
	engine_free(e);
}

/* ALL: every gauge has a forecaster from its first sample. */
static void test_all(void **state)
{
	struct engine_fixture *f = *state;
	f->cfg.forecast = ENGINE_FORECAST_ALL;
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	feed(e, "a", 0, 600);
	struct fc_got g = forecast_of(e, "a");
	assert_int_equal(g.n, 10);
	assert_int_equal(g.info.samples, 600);
	engine_free(e);
	/* OFF: no series is passed at all, and nothing is made */
	f->cfg.forecast = ENGINE_FORECAST_OFF;
	e = engine_fixture_engine(f, f->store, &f->stats);
	feed(e, "a", 0, 10);
	size_t before = series_bytes(e);
	g = forecast_of(e, "a");
	assert_int_equal(g.calls, 0);
	assert_int_equal(series_bytes(e), before);
	engine_free(e);
}

/* A series of a service model has a forecaster from its first sample,
 * without a request; one outside every model does not. */
static void test_service_member(void **state)
{
	struct engine_fixture *f = *state;
	char path[200], err[256];
	snprintf(path, sizeof path, "%s/svc.yml", f->dir);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("kind: service\nname: shop\nsignals:\n  requests: 'req'\n", fp);
	fclose(fp);
	struct services *svcs = services_load_file(path, err, sizeof err);
	assert_non_null(svcs);
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	engine_set_services(e, svcs);
	feed(e, "req", 0, 600);
	feed(e, "other", 0, 600);
	struct fc_got g = forecast_of(e, "req");
	assert_int_equal(g.info.samples, 600);
	assert_int_equal(g.n, 10);
	g = forecast_of(e, "other");
	assert_int_equal(g.info.samples, 0);
	assert_int_equal(g.n, 0);
	engine_free(e);
}

/* No forecaster past limits.max_memory: the request answers not ready. */
static void test_memory_budget(void **state)
{
	struct engine_fixture *f = *state;
	/* a budget the one series fills: its forecaster does not fit */
	f->cfg.max_memory = 1;
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	feed(e, "a", 0, 1);
	size_t before = series_bytes(e);
	struct fc_got g = forecast_of(e, "a");
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.n, 0);
	assert_int_equal(series_bytes(e), before);
	feed(e, "a", 1, 600);
	g = forecast_of(e, "a");
	assert_int_equal(g.n, 0);
	assert_int_equal(g.info.samples, 0);
	engine_free(e);
}

/* The on-disk header of a series state (src/engine/checkpoint.c). */
struct ckpt_head {
	uint32_t magic;
	uint32_t state_size;
	uint64_t samples;
	int64_t first_ts_ms;
	double last_value;
	double score, expected, lower, upper;
	int32_t direction;
	uint32_t flags;
};

struct rows {
	size_t n;
	struct store_ckpt v[4];
	unsigned char *blob[4];
};

static int collect(void *ctx, const struct store_ckpt *c)
{
	struct rows *r = ctx;
	assert_true(r->n < 4);
	struct store_ckpt *d = &r->v[r->n];
	*d = *c;
	d->series_key = strdup(c->series_key);
	d->labels_json = strdup(c->labels_json ? c->labels_json : "{}");
	d->model = strdup(c->model);
	r->blob[r->n] = malloc(c->state_len);
	memcpy(r->blob[r->n], c->state, c->state_len);
	d->state = r->blob[r->n];
	r->n++;
	return 0;
}

static void rows_free(struct rows *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free((char *)r->v[i].series_key);
		free((char *)r->v[i].labels_json);
		free((char *)r->v[i].model);
		free(r->blob[i]);
	}
}

/* A series' forecaster is checkpointed with it; a checkpoint written in
 * the FSK1 layout is read back with its forecaster; a blob of neither
 * layout makes the series relearn. */
static void test_checkpoint(void **state)
{
	struct engine_fixture *f = *state;
	char err[256];
	struct engine *e = engine_fixture_engine(f, f->store, &f->stats);
	feed(e, "a", 0, 1);
	feed(e, "b", 0, 1);
	forecast_of(e, "a");
	feed(e, "a", 1, 600);
	feed(e, "b", 1, 600);
	struct fc_got ga = forecast_of(e, "a");
	assert_int_equal(ga.n, 10);
	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	engine_free(e);

	e = engine_fixture_engine(f, f->store, &f->stats);
	assert_int_equal(engine_restore(e, err, sizeof err), 2);
	struct fc_got g = forecast_of(e, "a");
	assert_int_equal(g.n, 10);
	assert_true(g.mean0 == ga.mean0); /* the same state, byte for byte */
	assert_int_equal(g.info.samples, 600);
	g = forecast_of(e, "b"); /* b had none: made now */
	assert_int_equal(g.info.samples, 0);
	engine_free(e);

	/* rewrite a's row in the FSK1 layout as series c, and a row of neither
	 * layout as series d */
	struct rows rows = { 0 };
	assert_int_equal(store_ckpt_scan(f->store, collect, &rows), 0);
	assert_int_equal(rows.n, 2);
	const struct store_ckpt *a = strstr(rows.v[0].series_key, "a{") ? &rows.v[0] : &rows.v[1];
	struct ckpt_head h;
	memcpy(&h, a->state, sizeof h);
	assert_int_equal(h.magic, 0x46534b32u);
	assert_int_equal(h.flags, 1);
	size_t fsm = a->state_len - sizeof h - h.state_size -
	             forecast_state_size(&f->cfg.forecast_params);
	size_t ss = h.state_size, fc_off = (ss + 15) & ~(size_t)15;
	size_t fcs = forecast_state_size(&f->cfg.forecast_params);
	size_t len1 = sizeof h + fsm + fc_off + fcs;
	unsigned char *v1 = calloc(1, len1);
	const unsigned char *src = a->state;
	struct ckpt_head h1 = h;
	h1.magic = 0x46534b31u;
	h1.state_size = (uint32_t)(fc_off + fcs);
	h1.flags = 0;
	memcpy(v1, &h1, sizeof h1);
	memcpy(v1 + sizeof h1, src + sizeof h, fsm + ss);
	memcpy(v1 + sizeof h1 + fsm + fc_off, src + sizeof h + fsm + ss, fcs);
	struct store_ckpt c[2] = { *a, *a };
	c[0].series_key = "c{k=\"v\"}";
	c[0].labels_json = "{\"__name__\":\"c\",\"k\":\"v\"}";
	c[0].sid = 100;
	c[0].update = 0;
	c[0].state = v1;
	c[0].state_len = len1;
	c[1].series_key = "d{k=\"v\"}";
	c[1].labels_json = "{\"__name__\":\"d\",\"k\":\"v\"}";
	c[1].sid = 101;
	c[1].update = 0;
	c[1].state_len = a->state_len - 1;
	assert_int_equal(store_state_write(f->store, c, 2, err, sizeof err), 0);
	free(v1);
	rows_free(&rows);

	e = engine_fixture_engine(f, f->store, &f->stats);
	assert_int_equal(engine_restore(e, err, sizeof err), 4);
	g = forecast_of(e, "c");
	assert_int_equal(g.n, 10);
	assert_true(g.mean0 == ga.mean0);
	assert_int_equal(g.info.samples, 600);
	g = forecast_of(e, "d"); /* relearning: no forecaster restored */
	assert_int_equal(g.n, 0);
	assert_int_equal(g.info.samples, 0);
	/* the restored c takes new samples: its state came back whole */
	char err2[256];
	struct engine_batch b;
	engine_batch_begin(e, &b);
	struct label_ref r[2] = { REF("__name__", "c"), REF("k", "v") };
	assert_int_equal(engine_batch_add(&b, r, 2, T0 + 10 * 60000LL, 1, err2, sizeof err2),
	                 REJ_OUT_OF_ORDER + 1);
	engine_batch_end(&b);
	engine_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		ENGINE_FIXTURE_TEST(test_on_request),
		ENGINE_FIXTURE_TEST(test_all),
		ENGINE_FIXTURE_TEST(test_service_member),
		ENGINE_FIXTURE_TEST(test_memory_budget),
		ENGINE_FIXTURE_TEST(test_checkpoint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
