/* test_lockrank.c — the lock-order check (util/lockrank.h) and the engine
 * and store keeping the order that src/engine/internal.h states. Built with
 * FORESHOCK_LOCK_CHECK and its own copies of the engine, store and lockrank
 * objects (mk/engine.am), so it checks in every build, not only debug ones:
 * first that a lock taken out of order is reported, then that ingest (with
 * counters, histograms, family types, services and alerts), flushes,
 * checkpoints, restore with reconciliation, the readers, a model reload,
 * pruning and the store's health check and WAL maintenance take every lock
 * in rank order; and that the remote_write exporter's lock, which the
 * outputs take under a shard, is ranked (last) and checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <gsl/gsl_errno.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "engine/engine.h"
#include "service/service.h"
#include "store/rwexport.h"
#include "store/store.h"
#include "util/lockrank.h"
#include "util/selfstats.h"

#ifndef FORESHOCK_LOCK_CHECK
#error "test_lockrank must be built with FORESHOCK_LOCK_CHECK"
#endif

#define REF(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static int violations, last_held, last_wanted;

static void record_violation(int held, int wanted)
{
	violations++;
	last_held = held;
	last_wanted = wanted;
}

static void test_out_of_order_is_reported(void **st)
{
	(void)st;
	pthread_mutex_t a = PTHREAD_MUTEX_INITIALIZER, b = PTHREAD_MUTEX_INITIALIZER;
	lockrank_set_handler(record_violation);
	violations = 0;
	/* in order: nothing */
	lockrank_lock(&a, LOCK_RANK_FLUSH);
	lockrank_lock(&b, LOCK_RANK_SHARD + 3);
	assert_int_equal(lockrank_depth(), 2);
	lockrank_unlock(&a); /* released out of stack order */
	lockrank_unlock(&b);
	assert_int_equal(violations, 0);
	assert_int_equal(lockrank_depth(), 0);
	/* a shard, then a lower shard */
	lockrank_lock(&a, LOCK_RANK_SHARD + 3);
	lockrank_lock(&b, LOCK_RANK_SHARD + 2);
	assert_int_equal(violations, 1);
	assert_int_equal(last_held, LOCK_RANK_SHARD + 3);
	assert_int_equal(last_wanted, LOCK_RANK_SHARD + 2);
	lockrank_unlock(&b);
	lockrank_unlock(&a);
	/* the store's write lock under a shard (what the flush must never do) */
	lockrank_lock(&a, LOCK_RANK_SHARD + 0);
	lockrank_lock(&b, LOCK_RANK_STORE_W);
	assert_int_equal(violations, 2);
	lockrank_unlock(&b);
	lockrank_unlock(&a);
	/* equal ranks are out of order too */
	lockrank_lock(&a, LOCK_RANK_SVC);
	lockrank_lock(&b, LOCK_RANK_SVC);
	assert_int_equal(violations, 3);
	lockrank_unlock(&b);
	lockrank_unlock(&a);
	assert_int_equal(lockrank_depth(), 0);
	lockrank_set_handler(NULL);
}

static void test_relock_left_to_the_mutex(void **st)
{
	(void)st;
	pthread_mutexattr_t ma;
	pthread_mutex_t m;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&m, &ma);
	pthread_mutexattr_destroy(&ma);
	lockrank_set_handler(record_violation);
	violations = 0;
	assert_int_equal(lockrank_lock(&m, LOCK_RANK_STORE_W), 0);
	assert_int_equal(lockrank_lock(&m, LOCK_RANK_STORE_W), EDEADLK);
	assert_int_equal(violations, 0);
	assert_int_equal(lockrank_depth(), 1);
	lockrank_unlock(&m);
	assert_int_equal(lockrank_depth(), 0);
	pthread_mutex_destroy(&m);
	lockrank_set_handler(NULL);
}

static const char *service_model =
	"kind: service\n"
	"name: checkout\n"
	"step: 30s\n"
	"signals:\n"
	"  requests: 'foreshock:rate:http_requests_total{job=\"checkout\"}'\n"
	"  errors: 'foreshock:rate:http_requests_total{job=\"checkout\",code=~\"5..\"}'\n"
	"  latency:\n"
	"    selector: 'foreshock:p99:http_request_duration_seconds{job=\"checkout\"}'\n"
	"    unit: s\n"
	"slos:\n"
	"  availability:\n"
	"    objective: 99.9%\n";

static int count_series(void *ctx, const struct series_info *si)
{
	(void)si;
	(*(int *)ctx)++;
	return 0;
}

static int count_history(void *ctx, const struct series_info *si, const struct history_point *p,
                         size_t n)
{
	(void)si;
	(void)p;
	*(size_t *)ctx += n;
	return 0;
}

static int count_forecast(void *ctx, const struct series_info *si, const struct forecast_point *p,
                          size_t n, const struct breach *br, const struct forecast_info *fi)
{
	(void)si;
	(void)p;
	(void)br;
	(void)fi;
	*(size_t *)ctx += n;
	return 0;
}

/* One request's worth of samples at ts: a request counter by code, a
 * latency histogram and a gauge per instance that jumps at spike. */
static void feed(struct engine *e, int64_t ts, int i, int spike)
{
	char err[256];
	struct engine_batch b;
	engine_batch_begin(e, &b);
	engine_batch_set_type(&b, "http_request_duration_seconds", 29, METRIC_HISTOGRAM);
	engine_batch_set_type(&b, "http_requests_total", 19, METRIC_COUNTER);
	struct label_ref ok[3] = { REF("__name__", "http_requests_total"), REF("job", "checkout"),
		                   REF("code", "200") };
	struct label_ref bad[3] = { REF("__name__", "http_requests_total"), REF("job", "checkout"),
		                    REF("code", "500") };
	engine_batch_stage(&b, ok, 3, ts, 1000.0 * i, err, sizeof err);
	engine_batch_stage(&b, bad, 3, ts, (spike ? 400.0 : 1.0) * i, err, sizeof err);
	static const char *const les[] = { "0.1", "0.5", "1", "+Inf" };
	for (int k = 0; k < 4; k++) {
		struct label_ref h[3] = { REF("__name__", "http_request_duration_seconds_bucket"),
			                  REF("job", "checkout"),
			                  { "le", 2, les[k], strlen(les[k]) } };
		engine_batch_stage(&b, h, 3, ts, (double)i * 10 * (k + 1), err, sizeof err);
	}
	for (int inst = 0; inst < 40; inst++) {
		char v[8];
		snprintf(v, sizeof v, "i%d", inst);
		struct label_ref g[3] = { REF("__name__", "temperature"), REF("job", "checkout"),
			                  { "instance", 8, v, strlen(v) } };
		engine_batch_stage(&b, g, 3, ts, spike ? 1000 + inst : 20 + (i % 7) + inst * 0.01, err,
		                   sizeof err);
	}
	assert_int_equal(engine_batch_commit(&b, NULL, NULL), 0);
	assert_int_equal(engine_batch_end(&b), 0);
}

static void test_engine_keeps_the_order(void **st)
{
	(void)st;
	lockrank_set_handler(record_violation);
	violations = 0;
	char dir[] = "/tmp/fs-lockrank-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char db[256], yml[256], err[256];
	snprintf(db, sizeof db, "%s/f.db", dir);
	snprintf(yml, sizeof yml, "%s/checkout.yml", dir);
	FILE *f = fopen(yml, "w");
	assert_non_null(f);
	fputs(service_model, f);
	fclose(f);
	struct store *store = store_open(db, err, sizeof err);
	assert_non_null(store);
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	struct engine *e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);
	struct services *svcs = services_load_file(yml, err, sizeof err);
	assert_non_null(svcs);
	engine_set_services(e, svcs);
	const int64_t t0 = 1767225600000LL;
	for (int i = 1; i <= 400; i++)
		feed(e, t0 + i * 10000LL, i, i >= 380);
	struct engine_stats es;
	engine_get_stats(e, &es);
	assert_true(es.series > 40);
	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	int n = 0;
	assert_int_equal(engine_series_foreach(e, NULL, 0, count_series, &n), 0);
	assert_int_equal((size_t)n, es.series);
	size_t pts = 0;
	assert_int_equal(engine_history(e, NULL, 0, 0, INT64_MAX, count_history, &pts), 0);
	assert_true(pts > 0);
	pts = 0;
	assert_int_equal(engine_forecast(e, NULL, 0, 60000, 10, NAN, 1, count_forecast, &pts), 0);
	assert_int_equal(engine_forecast_at(e, NULL, 0, t0, 60000, 10, count_forecast, &pts), 0);
	engine_set_model(e, model_builtin_default());
	assert_int_equal(engine_set_external_url(e, "http://x"), 0);
	assert_true(engine_prune(e) >= 0);
	char why[128];
	assert_int_equal(store_healthy(store, why, sizeof why), 1);
	assert_int_equal(store_check(store), 1);
	assert_int_equal(store_maintain(store), 0);
	engine_free(e);
	/* restart: restore and reconcile under every shard lock */
	e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);
	svcs = services_load_file(yml, err, sizeof err);
	assert_non_null(svcs);
	engine_set_services(e, svcs);
	assert_true(engine_restore(e, err, sizeof err) > 0);
	feed(e, t0 + 401 * 10000LL, 401, 0);
	engine_free(e);
	store_close(store);
	assert_int_equal(violations, 0);
	assert_int_equal(lockrank_depth(), 0);
	lockrank_set_handler(NULL);
	unlink(db);
	char side[300];
	snprintf(side, sizeof side, "%s-wal", db);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", db);
	unlink(side);
	unlink(yml);
	rmdir(dir);
}

/* the outputs' path (daemon/outputs.c): each scored sample to the exporter,
 * under the series' shard lock */
static void export_series(void *ctx, const struct engine_output *o)
{
	struct label_ref l[1] = { REF("job", "checkout") };
	rwexport_add(ctx, "foreshock_anomaly_score", l, 1, o->ts_ms, o->det->score);
}

static void test_rwexport_is_ranked(void **st)
{
	(void)st;
	lockrank_set_handler(record_violation);
	violations = 0;
	/* an endpoint that never answers, on a port chosen now: nothing is sent
	 * before the stop (flush interval 60 s) and the stop drains for 1 ms */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t sl = sizeof sa;
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	char url[64], err[256];
	snprintf(url, sizeof url, "http://127.0.0.1:%u/api/v1/write", (unsigned)ntohs(sa.sin_port));
	struct rwexport_config c;
	rwexport_config_init(&c);
	assert_int_equal(rwexport_config_set_url(&c, url, err, sizeof err), 0);
	c.flush_ms = 60000;
	c.drain_ms = 1;
	c.timeout_ms = 200;
	struct rwexport *x = rwexport_start(&c, err, sizeof err);
	assert_non_null(x);

	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	struct engine *e = engine_new(&cfg, model_builtin_default(), NULL, &stats, err, sizeof err);
	assert_non_null(e);
	struct engine_outputs out = { .series = export_series, .ctx = x };
	engine_set_outputs(e, &out);
	const int64_t t0 = 1767225600000LL;
	for (int i = 1; i <= 20; i++)
		feed(e, t0 + i * 10000LL, i, 0);
	struct rwexport_stats rs;
	rwexport_get_stats(x, &rs);
	assert_true(rs.samples_in > 0); /* the outputs ran */
	assert_int_equal(violations, 0);

	/* out of order: the exporter's lock under one ranked after it */
	pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	lockrank_lock(&m, LOCK_RANK_RWEXPORT + 1);
	rwexport_flush(x);
	lockrank_unlock(&m);
	assert_int_equal(violations, 1);
	assert_int_equal(last_held, LOCK_RANK_RWEXPORT + 1);
	assert_int_equal(last_wanted, LOCK_RANK_RWEXPORT);
	assert_int_equal(lockrank_depth(), 0);

	engine_free(e);
	rwexport_stop(x);
	rwexport_config_free(&c);
	close(fd);
	assert_int_equal(violations, 1);
	lockrank_set_handler(NULL);
}

int main(void)
{
	gsl_set_error_handler_off(); /* as the daemon does (service.h) */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_out_of_order_is_reported),
		cmocka_unit_test(test_relock_left_to_the_mutex),
		cmocka_unit_test(test_engine_keeps_the_order),
		cmocka_unit_test(test_rwexport_is_ranked),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
