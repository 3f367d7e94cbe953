/* test_allocfail.c — every allocation of the ingest and commit paths made
 * to fail in turn. The program is linked with -Wl,--wrap for malloc, calloc,
 * realloc, strdup and strndup (mk/engine.am), so every allocation our code
 * makes (libforeshock.a, not SQLite's or jansson's own) goes through the
 * wrappers below; armed with N, the Nth allocation returns NULL.
 *
 * For N = 1, 2, ... until a run makes fewer than N allocations (the path
 * completed with no failure injected): a fresh engine and store, warmed up
 * unarmed; then, armed, one line-protocol write through api_handle() that
 * creates series (a gauge, a counter with its derived rate, a histogram with
 * its derived quantiles), fires an alert (transition queued, annotated and
 * written to the store) and a JSON import and a Prometheus text import of
 * new series. Each must fail cleanly: a status (204, or an error status with
 * a JSON body; an allocation failure must not be reported as a success that
 * lost the request's samples unless they were rejected and counted), no
 * crash, and, in the ASan build, no leak (LeakSanitizer at exit). After the
 * armed run, the same engine must still take a write and answer reads.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <gsl/gsl_errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "http/api.h"
#include "http/router.h"
#include "store/store.h"
#include "util/selfstats.h"

/* ---- the hook ------------------------------------------------------------ */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t m);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

static long armed_at;   /* fail the allocation with this number; 0 = off */
static long allocs;     /* allocations counted since arming */
static int failed;      /* the armed allocation was refused */

static int refuse(void)
{
	if (!armed_at)
		return 0;
	if (++allocs == armed_at) {
		failed = 1;
		return 1;
	}
	return 0;
}

void *__wrap_malloc(size_t n) { return refuse() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t m) { return refuse() ? NULL : __real_calloc(n, m); }
void *__wrap_realloc(void *p, size_t n) { return refuse() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return refuse() ? NULL : __real_strdup(s); }
char *__wrap_strndup(const char *s, size_t n) { return refuse() ? NULL : __real_strndup(s, n); }

static void arm(long n)
{
	allocs = 0;
	failed = 0;
	armed_at = n;
}

static void disarm(void)
{
	armed_at = 0;
}

/* ---- the paths ----------------------------------------------------------- */

#define T0 1700000000LL /* s */

struct fixture {
	char dir[64], db[128];
	struct selfstats stats;
	struct store *store;
	struct engine *e;
	struct api_ctx api;
};

static unsigned post(struct fixture *f, const char *path, const char *query_precision,
                     const char *ctype, const char *text, char **body_out)
{
	struct api_arg arg = { "precision", query_precision };
	char *body = __real_strdup(text);
	struct api_request req = { .method = "POST",
		                   .path = path,
		                   .args = &arg,
		                   .nargs = query_precision ? 1 : 0,
		                   .content_type = ctype,
		                   .body = body,
		                   .body_len = strlen(body),
		                   .now_ms = (T0 + 3600) * 1000 };
	struct api_response resp;
	memset(&resp, 0, sizeof resp);
	api_handle(&f->api, &req, &resp);
	free(body);
	if (body_out)
		*body_out = resp.body;
	else
		free(resp.body);
	return resp.status;
}

static unsigned get(struct fixture *f, const char *path)
{
	struct api_request req = { .method = "GET", .path = path, .now_ms = (T0 + 3600) * 1000 };
	struct api_response resp;
	memset(&resp, 0, sizeof resp);
	api_handle(&f->api, &req, &resp);
	free(resp.body);
	return resp.status;
}

static void open_fixture(struct fixture *f)
{
	memset(f, 0, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/fs-allocfail-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof f->db, "%s/f.db", f->dir);
	char err[256];
	f->store = store_open(f->db, err, sizeof err);
	assert_non_null(f->store);
	selfstats_init(&f->stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	f->e = engine_new(&cfg, model_builtin_default(), f->store, &f->stats, err, sizeof err);
	assert_non_null(f->e);
	f->api.engine = f->e;
	f->api.store = f->store;
	f->api.stats = &f->stats;
	f->api.max_body = 1 << 20;
	f->api.lp_limits = (struct lp_limits)LP_LIMITS_DEFAULT;
	f->api.version = "0";
	atomic_store(&f->api.ready, 1);
	/* warm-up (unarmed): a steady gauge, 300 samples 10 s apart */
	static char lp[16384];
	char *p = lp;
	for (int i = 0; i < 300; i++)
		p += sprintf(p, "latency,job=api value=%d %lld\n", 100 + i % 3, T0 + i * 10LL);
	assert_int_equal(post(f, "/write", "s", "text/plain", lp, NULL), 204);
}

static void close_fixture(struct fixture *f)
{
	engine_free(f->e);
	store_close(f->store);
	char p[160];
	const char *side[] = { "", "-wal", "-shm" };
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof p, "%s%s", f->db, side[i]);
		unlink(p);
	}
	rmdir(f->dir);
}

/* The armed request: new series of every kind and an alert. */
static const char *armed_lp =
	"latency,job=api value=900 1700003000\n"
	"latency,job=api value=905 1700003010\n"
	"disk,host=a,dev=sda free=1,used=2 1700003000\n"
	"reqs_total,code=200 counter=5 1700003000\n"
	"reqs_total,code=200 counter=9 1700003010\n"
	"lat_seconds_bucket,le=0.1 counter=1 1700003000\n"
	"lat_seconds_bucket,le=1 counter=3 1700003000\n"
	"lat_seconds_bucket,le=+Inf counter=4 1700003000\n"
	"lat_seconds_bucket,le=0.1 counter=2 1700003010\n"
	"lat_seconds_bucket,le=1 counter=6 1700003010\n"
	"lat_seconds_bucket,le=+Inf counter=9 1700003010\n";

static const char *armed_json =
	"{\"series\":[{\"labels\":{\"__name__\":\"jobs\",\"queue\":\"q1\"},"
	"\"samples\":[[1700003000000,1],[1700003010000,2]]},"
	"{\"labels\":{\"__name__\":\"jobs\",\"queue\":\"q2\"},\"samples\":[[1700003000000,7]]}]}";

static const char *armed_prom =
	"# TYPE temp gauge\ntemp{room=\"a\"} 21 1700003000000\ntemp{room=\"b\"} 22 1700003000000\n";

struct path {
	const char *name, *route, *precision, *ctype, *body;
};

static const struct path paths[] = {
	{ "line protocol", "/write", "s", "text/plain", NULL /* armed_lp */ },
	{ "json import", "/api/v1/import", NULL, "application/json", NULL /* armed_json */ },
	{ "prometheus import", "/api/v1/import/prometheus", NULL, "text/plain",
	  NULL /* armed_prom */ },
};

static const char *path_body(size_t i)
{
	return i == 0 ? armed_lp : i == 1 ? armed_json : armed_prom;
}

static void test_every_allocation_fails_cleanly(void **state)
{
	(void)state;
	for (size_t pi = 0; pi < sizeof paths / sizeof paths[0]; pi++) {
		const struct path *pa = &paths[pi];
		long n;
		int clean_errors = 0, clean_ok = 0;
		for (n = 1; n < 100000; n++) {
			struct fixture f;
			open_fixture(&f);
			char *body = NULL;
			arm(n);
			unsigned st = post(&f, pa->route, pa->precision, pa->ctype, path_body(pi), &body);
			disarm();
			int injected = failed;
			if (st != 204) {
				if (!(st >= 400 && st < 600) || !body || !strstr(body, "\"status\":\"error\""))
					fail_msg("%s, allocation %ld refused: status %u body %s", pa->name, n,
					         st, body ? body : "(none)");
				clean_errors++;
			} else {
				clean_ok++;
			}
			free(body);
			/* the engine still works: a write and the reads */
			char again[128];
			snprintf(again, sizeof again, "after,n=%ld value=1 1700003600\n", n);
			unsigned st2 = post(&f, "/write", "s", "text/plain", again, NULL);
			if (st2 != 204)
				fail_msg("%s, allocation %ld refused: the next write answered %u", pa->name,
				         n, st2);
			assert_int_equal(get(&f, "/api/v1/alerts"), 200);
			assert_int_equal(get(&f, "/metrics"), 200);
			close_fixture(&f);
			if (!injected)
				break; /* the path made fewer than n allocations: done */
		}
		print_message("%s: %ld allocations, each refused in turn: %d error responses, "
		              "%d successes\n", pa->name, n - 1, clean_errors, clean_ok - 1);
		assert_true(n > 10); /* the hook did see the path's allocations */
	}
}

int main(void)
{
	gsl_set_error_handler_off(); /* as the daemon does */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_allocation_fails_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
