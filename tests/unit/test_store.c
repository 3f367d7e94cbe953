/* test_store.c — unit tests of the SQLite store (src/store/store.c): schema and
 * migrations, alert upsert/scan/history/prune, checkpoints, integrity check,
 * concurrent readers and writers, and a timed bulk checkpoint.
 *
 * This test includes sqlite3.h only to forge a "newer schema" database; the
 * daemon's sources never do (store.c is the only one). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "util/log.h"
#include "store/store.h"

struct fixture {
	char dir[512];
	char path[600];
	struct store *s;
};

static void rm_db_files(const char *path)
{
	char p[700];
	unlink(path);
	if (snprintf(p, sizeof p, "%s-wal", path) < (int)sizeof p)
		unlink(p);
	if (snprintf(p, sizeof p, "%s-shm", path) < (int)sizeof p)
		unlink(p);
}

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof fx->dir, "%s/test_store.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(fx->dir) == NULL) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof fx->path, "%s/foreshock.db", fx->dir);
	char err[256];
	fx->s = store_open(fx->path, err, sizeof err);
	if (fx->s == NULL) {
		fprintf(stderr, "store_open: %s\n", err);
		rmdir(fx->dir);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	store_close(fx->s);
	rm_db_files(fx->path);
	rmdir(fx->dir);
	free(fx);
	return 0;
}

static struct alert_rec rec(const char *key, const char *st, int64_t active, int64_t event)
{
	struct alert_rec r = {
		.series_key = key, .labels_json = "{\"alertname\":\"x\"}",
		.annotations_json = NULL, .state = st, .active_at_ms = active,
		.event_at_ms = event, .value = 1.5, .score = 0.9,
	};
	return r;
}

/* Collects scanned/history rows (copied: strings are valid during the call only). */
struct got {
	size_t n;
	int64_t id[64];
	char key[64][64];
	char state[64][16];
	int64_t event_at[64], active_at[64], firing_at[64], resolved_at[64];
	double value[64], score[64];
	char labels[64][64], ann[64][64];
	int stop_after;
};

static int collect(void *ctx, const struct alert_rec *r)
{
	struct got *g = ctx;
	if (g->n < 64) {
		g->id[g->n] = r->id;
		snprintf(g->key[g->n], 64, "%s", r->series_key);
		snprintf(g->state[g->n], 16, "%s", r->state);
		snprintf(g->labels[g->n], 64, "%s", r->labels_json);
		snprintf(g->ann[g->n], 64, "%s", r->annotations_json);
		g->event_at[g->n] = r->event_at_ms;
		g->active_at[g->n] = r->active_at_ms;
		g->firing_at[g->n] = r->firing_at_ms;
		g->resolved_at[g->n] = r->resolved_at_ms;
		g->value[g->n] = r->value;
		g->score[g->n] = r->score;
	}
	g->n++;
	if (g->stop_after && (int)g->n >= g->stop_after)
		return 42;
	return 0;
}

static void test_open_invalid(void **st)
{
	char err[256] = "";
	assert_null(store_open("", err, sizeof err));
	assert_non_null(strstr(err, "invalid store path"));
	assert_null(store_open(":memory:", err, sizeof err));
	assert_null(store_open("/nonexistent-dir-foreshock/x.db", err, sizeof err));
	assert_non_null(strstr(err, "unable to open '/nonexistent-dir-foreshock/x.db'"));
	store_close(NULL);
}

static void test_open_not_a_database(void **state)
{
	struct fixture *fx = *state;
	char err[256] = "", path[700];
	snprintf(path, sizeof path, "%s/garbage.db", fx->dir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not an sqlite database\n", f);
	fclose(f);
	assert_null(store_open(path, err, sizeof err));
	assert_non_null(strstr(err, path));
	assert_non_null(strstr(err, "not a database"));
	rm_db_files(path);
}

static void test_reopen_and_newer_schema(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	struct alert_rec r = rec("up{job=\"a\"}", "pending", 1000, 1000);
	assert_int_equal(store_alerts_write(fx->s, &r, 1, err, sizeof err), 0);
	store_close(fx->s);
	fx->s = store_open(fx->path, err, sizeof err); /* migrations are idempotent */
	assert_non_null(fx->s);
	struct got g = { 0 };
	assert_int_equal(store_alerts_scan(fx->s, 0, 0, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(store_integrity_check(fx->s, err, sizeof err), 0);
	store_close(fx->s);
	fx->s = NULL;

	/* A database from a newer foreshock is refused, not silently used. */
	sqlite3 *db;
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 99", NULL, NULL,
	                              NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(store_open(fx->path, err, sizeof err));
	assert_non_null(strstr(err, "unsupported schema version 99"));
	assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
	/* ... and one of version 2 (before service_state) is migrated */
	assert_int_equal(sqlite3_exec(db, "UPDATE schema_version SET version = 2; "
	                              "DROP TABLE service_state", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	fx->s = store_open(fx->path, err, sizeof err);
	assert_non_null(fx->s);
	unsigned char blob[3] = { 1, 2, 3 };
	struct store_svc_state v = { "checkout", 7, blob, sizeof blob };
	assert_int_equal(store_service_state_write(fx->s, &v, 1, err, sizeof err), 0);
}

static int collect_svc(void *ctx, const struct store_svc_state *c)
{
	char *out = ctx;
	size_t l = strlen(out);
	snprintf(out + l, 256 - l, "%s:%llu:%zu:%d;", c->name, (unsigned long long)c->steps,
	         c->state_len, ((const unsigned char *)c->state)[c->state_len - 1]);
	return 0;
}

/* Service model state: one row per service, replaced by each write. */
static void test_service_state(void **state)
{
	struct fixture *fx = *state;
	char err[256], got[256] = "";
	unsigned char a[40], b[5];
	memset(a, 1, sizeof a);
	memset(b, 2, sizeof b);
	struct store_svc_state v[2] = { { "web", 10, a, sizeof a }, { "api", 3, b, sizeof b } };
	assert_int_equal(store_service_state_write(fx->s, v, 2, err, sizeof err), 0);
	v[0].steps = 11;
	a[sizeof a - 1] = 9;
	assert_int_equal(store_service_state_write(fx->s, v, 1, err, sizeof err), 0);
	assert_int_equal(store_service_state_scan(fx->s, collect_svc, got), 0);
	assert_string_equal(got, "api:3:5:2;web:11:40:9;");
	struct store_svc_state bad = { "x", 1, NULL, 0 };
	assert_int_equal(store_service_state_write(fx->s, &bad, 1, err, sizeof err), -1);
	assert_non_null(strstr(err, "invalid service state record 0"));
	assert_int_equal(store_service_state_write(fx->s, NULL, 0, err, sizeof err), 0);
}

static void test_write_assigns_ids_and_upserts(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	int64_t max = -1;
	assert_int_equal(store_alerts_max_id(fx->s, &max), 0);
	assert_int_equal(max, 0);
	struct alert_rec r[2] = { rec("cpu{host=\"a\"}", "pending", 1000, 1000),
	                          rec("cpu{host=\"b\"}", "pending", 500, 2000) };
	r[1].annotations_json = "{\"summary\":\"hot\"}";
	assert_int_equal(store_alerts_write(fx->s, r, 2, err, sizeof err), 0);
	assert_true(r[0].id > 0);
	assert_true(r[1].id > r[0].id);
	int64_t ida = r[0].id, idb = r[1].id;

	/* a fires, b is cancelled */
	r[0].state = "firing";
	r[0].firing_at_ms = 61000;
	r[0].event_at_ms = 61000;
	r[0].value = NAN;
	r[1].state = "cancelled";
	r[1].resolved_at_ms = 3000;
	r[1].event_at_ms = 3000;
	assert_int_equal(store_alerts_write(fx->s, r, 2, err, sizeof err), 0);
	assert_int_equal(r[0].id, ida);
	assert_int_equal(r[1].id, idb);

	struct got g = { 0 };
	assert_int_equal(store_alerts_scan(fx->s, 0, 0, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], ida);
	assert_string_equal(g.state[0], "firing");
	assert_int_equal(g.firing_at[0], 61000);
	assert_int_equal(g.active_at[0], 1000);
	assert_true(isnan(g.value[0]));
	assert_true(g.score[0] == 0.9);
	assert_string_equal(g.labels[0], "{\"alertname\":\"x\"}");
	assert_string_equal(g.ann[0], "{}");

	/* include ended, ordered by active_at: b (500) before a (1000) */
	memset(&g, 0, sizeof g);
	assert_int_equal(store_alerts_scan(fx->s, 1, 3000, collect, &g), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.id[0], idb);
	assert_string_equal(g.state[0], "cancelled");
	assert_string_equal(g.ann[0], "{\"summary\":\"hot\"}");
	assert_int_equal(g.resolved_at[0], 3000);
	assert_int_equal(g.id[1], ida);
	/* since after b's last event: b left out */
	memset(&g, 0, sizeof g);
	assert_int_equal(store_alerts_scan(fx->s, 1, 3001, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.id[0], ida);
}

static void test_write_rejects_bad_records(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	struct alert_rec r[2] = { rec("k1", "pending", 1, 1), rec("k2", "bogus", 1, 1) };
	assert_int_equal(store_alerts_write(fx->s, r, 2, err, sizeof err), -1);
	assert_string_equal(err, "invalid alert state 'bogus' for 'k2'");
	assert_int_equal(r[0].id, 0); /* nothing assigned, nothing written */
	r[1] = rec(NULL, "pending", 1, 1);
	assert_int_equal(store_alerts_write(fx->s, r, 2, err, sizeof err), -1);
	assert_string_equal(err, "missing series_key for alert record 1");
	r[1] = rec("k2", "pending", 1, 1);
	r[1].id = -3;
	assert_int_equal(store_alerts_write(fx->s, r, 2, err, sizeof err), -1);
	assert_non_null(strstr(err, "invalid alert id -3"));
	struct got g = { 0 };
	assert_int_equal(store_alerts_scan(fx->s, 1, 0, collect, &g), 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(store_alerts_write(fx->s, NULL, 0, err, sizeof err), 0);
}

static void test_history(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	struct alert_rec a = rec("mem{h=\"1\"}", "pending", 1000, 1000);
	struct alert_rec b = rec("mem{h=\"2\"}", "pending", 1500, 1500);
	assert_int_equal(store_alerts_write(fx->s, &a, 1, err, sizeof err), 0);
	assert_int_equal(store_alerts_write(fx->s, &b, 1, err, sizeof err), 0);
	a.state = "firing"; a.firing_at_ms = a.event_at_ms = 2000; a.score = 0.95;
	assert_int_equal(store_alerts_write(fx->s, &a, 1, err, sizeof err), 0);
	a.state = "resolved"; a.resolved_at_ms = a.event_at_ms = 5000; a.score = 0.1;
	assert_int_equal(store_alerts_write(fx->s, &a, 1, err, sizeof err), 0);

	struct got g = { 0 };
	assert_int_equal(store_alert_history(fx->s, "mem{h=\"1\"}", 0, 10000, 0, collect, &g), 0);
	assert_int_equal(g.n, 3);
	assert_string_equal(g.state[0], "resolved"); /* newest first */
	assert_string_equal(g.state[1], "firing");
	assert_string_equal(g.state[2], "pending");
	assert_int_equal(g.event_at[0], 5000);
	assert_int_equal(g.event_at[1], 2000);
	assert_true(g.score[1] == 0.95);
	assert_true(g.score[0] == 0.1);
	assert_int_equal(g.resolved_at[2], 5000); /* alert's current row */
	for (int i = 0; i < 3; i++)
		assert_int_equal(g.id[i], a.id);

	memset(&g, 0, sizeof g); /* all series, time window, limit */
	assert_int_equal(store_alert_history(fx->s, NULL, 1000, 2000, 0, collect, &g), 0);
	assert_int_equal(g.n, 3);
	assert_int_equal(g.event_at[0], 2000);
	assert_string_equal(g.key[1], "mem{h=\"2\"}");
	assert_int_equal(g.event_at[2], 1000);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_alert_history(fx->s, NULL, 0, INT64_MAX, 2, collect, &g), 0);
	assert_int_equal(g.n, 2);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_alert_history(fx->s, "nope", 0, INT64_MAX, 0, collect, &g), 0);
	assert_int_equal(g.n, 0);
	/* the callback can stop the iteration, and its value is returned */
	memset(&g, 0, sizeof g);
	g.stop_after = 1;
	assert_int_equal(store_alert_history(fx->s, NULL, 0, INT64_MAX, 0, collect, &g), 42);
	assert_int_equal(g.n, 1);
	memset(&g, 0, sizeof g);
	g.stop_after = 1;
	assert_int_equal(store_alerts_scan(fx->s, 1, 0, collect, &g), 42);
}

static void test_prune(void **state)
{
	struct fixture *fx = *state;
	char err[256];
	struct alert_rec old = rec("a", "pending", 100, 100);
	struct alert_rec open = rec("b", "pending", 150, 150);
	struct alert_rec recent = rec("c", "pending", 200, 200);
	assert_int_equal(store_alerts_write(fx->s, &old, 1, err, sizeof err), 0);
	assert_int_equal(store_alerts_write(fx->s, &open, 1, err, sizeof err), 0);
	assert_int_equal(store_alerts_write(fx->s, &recent, 1, err, sizeof err), 0);
	old.state = "resolved"; old.event_at_ms = old.resolved_at_ms = 1000;
	recent.state = "cancelled"; recent.event_at_ms = recent.resolved_at_ms = 5000;
	assert_int_equal(store_alerts_write(fx->s, &old, 1, err, sizeof err), 0);
	assert_int_equal(store_alerts_write(fx->s, &recent, 1, err, sizeof err), 0);

	assert_int_equal(store_alerts_prune(fx->s, 2000), 1); /* only 'old' */
	assert_int_equal(store_alerts_prune(fx->s, 2000), 0);
	struct got g = { 0 };
	assert_int_equal(store_alerts_scan(fx->s, 1, 0, collect, &g), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.key[0], "b");
	assert_string_equal(g.key[1], "c");
	memset(&g, 0, sizeof g);
	assert_int_equal(store_alert_history(fx->s, "a", 0, INT64_MAX, 0, collect, &g), 0);
	assert_int_equal(g.n, 0); /* events went with it */
	assert_int_equal(store_integrity_check(fx->s, err, sizeof err), 0);
	/* open alerts are never pruned, however old */
	assert_int_equal(store_alerts_prune(fx->s, INT64_MAX), 1);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_alerts_scan(fx->s, 1, 0, collect, &g), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.key[0], "b");

	/* the max id covers pruned alerts, so pre-assigned ids are not reused */
	int64_t max = 0;
	assert_int_equal(store_alerts_max_id(fx->s, &max), 0);
	assert_int_equal(max, recent.id);
	struct alert_rec pre = rec("e", "pending", 400, 400);
	pre.id = max + 10; /* caller-assigned id */
	assert_int_equal(store_alerts_write(fx->s, &pre, 1, err, sizeof err), 0);
	assert_int_equal(pre.id, max + 10);
	assert_int_equal(store_alerts_max_id(fx->s, &max), 0);
	assert_int_equal(max, pre.id);

	/* ids are not reused after pruning; a write to a pruned id recreates it */
	struct alert_rec fresh = rec("d", "pending", 300, 300);
	assert_int_equal(store_alerts_write(fx->s, &fresh, 1, err, sizeof err), 0);
	assert_true(fresh.id > pre.id);
	old.state = "firing";
	assert_int_equal(store_alerts_write(fx->s, &old, 1, err, sizeof err), 0);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_alerts_scan(fx->s, 0, 0, collect, &g), 0);
	assert_int_equal(g.n, 4);
	assert_int_equal(g.id[0], old.id);
	assert_string_equal(g.state[0], "firing");
	assert_int_equal(store_integrity_check(fx->s, err, sizeof err), 0);
}

struct ckgot {
	size_t n;
	char key[8][32];
	uint64_t fp[8];
	int64_t ts[8];
	size_t len[8];
	unsigned char first[8];
};

static int ck_collect(void *ctx, const struct store_ckpt *c)
{
	struct ckgot *g = ctx;
	if (g->n < 8) {
		snprintf(g->key[g->n], 32, "%s", c->series_key);
		g->fp[g->n] = c->fingerprint;
		g->ts[g->n] = c->last_ts_ms;
		g->len[g->n] = c->state_len;
		g->first[g->n] = c->state_len ? ((const unsigned char *)c->state)[0] : 0;
	}
	g->n++;
	return 0;
}

static int ck_find(const struct ckgot *g, const char *key)
{
	for (size_t i = 0; i < g->n && i < 8; i++)
		if (strcmp(g->key[i], key) == 0)
			return (int)i;
	return -1;
}

static void test_checkpoints(void **state)
{
	struct fixture *fx = *state;
	unsigned char blob[100];
	memset(blob, 7, sizeof blob);
	struct store_ckpt c = { "s1", NULL, "default", 0xfedcba9876543210ULL, 1000, blob, sizeof blob, 0, 0, 0 };
	assert_int_equal(store_ckpt_begin(fx->s), 0);
	assert_int_equal(store_ckpt_put(fx->s, &c), 0);
	c.series_key = "s2";
	c.state_len = 0; /* empty state is a valid blob */
	assert_int_equal(store_ckpt_put(fx->s, &c), 0);
	assert_int_equal(store_ckpt_commit(fx->s), 0);

	struct ckgot g = { 0 };
	assert_int_equal(store_ckpt_scan(fx->s, ck_collect, &g), 0);
	assert_int_equal(g.n, 2);
	int i = ck_find(&g, "s1");
	assert_true(i >= 0);
	assert_true(g.fp[i] == 0xfedcba9876543210ULL);
	assert_int_equal(g.len[i], 100);
	assert_int_equal(g.first[i], 7);
	assert_int_equal(g.len[ck_find(&g, "s2")], 0);

	/* rollback: the previous snapshot stays */
	assert_int_equal(store_ckpt_begin(fx->s), 0);
	c.series_key = "s1";
	c.last_ts_ms = 2000;
	c.state_len = sizeof blob;
	assert_int_equal(store_ckpt_put(fx->s, &c), 0);
	assert_int_equal(store_ckpt_rollback(fx->s), 0);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_ckpt_scan(fx->s, ck_collect, &g), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.ts[ck_find(&g, "s1")], 1000);

	/* a failed put makes the commit roll back: previous snapshot intact */
	assert_int_equal(store_ckpt_begin(fx->s), 0);
	assert_int_equal(store_ckpt_put(fx->s, &c), 0);
	struct store_ckpt bad = { NULL, NULL, "default", 1, 1, blob, 1, 0, 0, 0 };
	assert_int_equal(store_ckpt_put(fx->s, &bad), -1);
	assert_int_equal(store_ckpt_commit(fx->s), -1);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_ckpt_scan(fx->s, ck_collect, &g), 0);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.ts[ck_find(&g, "s1")], 1000);

	/* an alert write on the checkpointing thread fails instead of deadlocking */
	assert_int_equal(store_ckpt_begin(fx->s), 0);
	assert_int_equal(store_ckpt_begin(fx->s), -1);
	char err[256];
	struct alert_rec r = rec("k", "pending", 1, 1);
	assert_int_equal(store_alerts_write(fx->s, &r, 1, err, sizeof err), -1);
	assert_non_null(strstr(err, "checkpoint open on this thread"));
	assert_int_equal(r.id, 0);
	assert_int_equal(store_alerts_prune(fx->s, 0), -1);
	/* a committed snapshot replaces the previous one entirely */
	c.series_key = "s3";
	assert_int_equal(store_ckpt_put(fx->s, &c), 0);
	c.series_key = "s1";
	c.state_len = 3;
	assert_int_equal(store_ckpt_put(fx->s, &c), 0);
	assert_int_equal(store_ckpt_commit(fx->s), 0);
	memset(&g, 0, sizeof g);
	assert_int_equal(store_ckpt_scan(fx->s, ck_collect, &g), 0);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.key[0], "s3"); /* put order */
	assert_string_equal(g.key[1], "s1");
	assert_int_equal(g.ts[1], 2000);
	assert_int_equal(g.len[1], 3);

	/* put/commit without begin are errors */
	assert_int_equal(store_ckpt_put(fx->s, &c), -1);
	assert_int_equal(store_ckpt_commit(fx->s), -1);
	/* writes work again after the checkpoint */
	assert_int_equal(store_alerts_write(fx->s, &r, 1, err, sizeof err), 0);
	assert_int_equal(store_integrity_check(fx->s, err, sizeof err), 0);
}

/* Concurrent writers and readers on one store: no errors, nothing lost. */
struct thr {
	struct store *s;
	int idx;
	int fails;
};

#define THR_WRITES 200

static void *writer(void *arg)
{
	struct thr *t = arg;
	char key[32], err[256];
	snprintf(key, sizeof key, "w%d", t->idx);
	for (int i = 0; i < THR_WRITES; i++) {
		struct alert_rec r = rec(key, "pending", 1000 + i, 1000 + i);
		if (store_alerts_write(t->s, &r, 1, err, sizeof err) != 0) {
			fprintf(stderr, "writer: %s\n", err);
			t->fails++;
		}
		r.state = "cancelled";
		r.event_at_ms++;
		if (store_alerts_write(t->s, &r, 1, err, sizeof err) != 0)
			t->fails++;
	}
	return NULL;
}

static int count_cb(void *ctx, const struct alert_rec *r)
{
	(*(size_t *)ctx)++;
	return 0;
}

static void *reader(void *arg)
{
	struct thr *t = arg;
	for (int i = 0; i < 100; i++) {
		size_t n = 0;
		if (store_alerts_scan(t->s, 1, 0, count_cb, &n) != 0)
			t->fails++;
		if (store_alert_history(t->s, NULL, 0, INT64_MAX, 50, count_cb, &n) != 0)
			t->fails++;
	}
	return NULL;
}

static void *checkpointer(void *arg)
{
	struct thr *t = arg;
	char key[32];
	unsigned char blob[64] = { 0 };
	for (int i = 0; i < 20; i++) {
		if (store_ckpt_begin(t->s) != 0) {
			t->fails++;
			continue;
		}
		for (int k = 0; k < 200; k++) {
			snprintf(key, sizeof key, "c%d", k);
			struct store_ckpt c = { key, NULL, "m", 1, i, blob, sizeof blob, 0, 0, 0 };
			if (store_ckpt_put(t->s, &c) != 0)
				t->fails++;
		}
		if (store_ckpt_commit(t->s) != 0)
			t->fails++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct fixture *fx = *state;
	pthread_t th[6];
	struct thr t[6];
	for (int i = 0; i < 6; i++) {
		t[i] = (struct thr){ fx->s, i, 0 };
		void *(*fn)(void *) = i < 3 ? writer : i < 5 ? reader : checkpointer;
		assert_int_equal(pthread_create(&th[i], NULL, fn, &t[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].fails, 0);
	}
	size_t n = 0;
	assert_int_equal(store_alert_history(fx->s, NULL, 0, INT64_MAX, 0, count_cb, &n), 0);
	assert_int_equal(n, 3 * THR_WRITES * 2);
	char err[256];
	assert_int_equal(store_integrity_check(fx->s, err, sizeof err), 0);
}

static int ck_count(void *ctx, const struct store_ckpt *c)
{
	(*(size_t *)ctx)++;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Bulk checkpoint speed. FORESHOCK_STORE_BENCH_N overrides the count
 * (default 100000 series, 256-byte states). */
static void test_bulk_checkpoint(void **state)
{
	struct fixture *fx = *state;
	const char *env = getenv("FORESHOCK_STORE_BENCH_N");
	size_t n = env ? strtoul(env, NULL, 10) : 100000;
	unsigned char blob[256];
	memset(blob, 0x5a, sizeof blob);
	char key[96];
	for (int round = 0; round < 2; round++) {
		double t0 = now_s();
		assert_int_equal(store_ckpt_begin(fx->s), 0);
		for (size_t i = 0; i < n; i++) {
			snprintf(key, sizeof key, "http_requests_total{instance=\"host-%zu:9100\",job=\"node\"}",
			         (i * 2654435761u) % 100000007u);
			struct store_ckpt c = { key, NULL, "default", 42, (int64_t)i, blob, sizeof blob, 0, 0, 0 };
			assert_int_equal(store_ckpt_put(fx->s, &c), 0);
		}
		assert_int_equal(store_ckpt_commit(fx->s), 0);
		double t1 = now_s();
		size_t got = 0;
		assert_int_equal(store_ckpt_scan(fx->s, ck_count, &got), 0);
		double t2 = now_s();
		assert_int_equal(got, n);
		fprintf(stderr, "bulk checkpoint round=%d series=%zu write_s=%.2f (%.0f/s) scan_s=%.2f\n",
		        round, n, t1 - t0, n / (t1 - t0 + 1e-9), t2 - t1);
	}
}

int main(void)
{
	/* The error paths under test log at level error; keep the output readable. */
	log_set_level(getenv("STORE_TEST_LOG") ? LOG_DEBUG : LOG_OFF);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_invalid),
		cmocka_unit_test_setup_teardown(test_open_not_a_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_and_newer_schema, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_assigns_ids_and_upserts, setup, teardown),
		cmocka_unit_test_setup_teardown(test_write_rejects_bad_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
		cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
		cmocka_unit_test_setup_teardown(test_service_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_threads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bulk_checkpoint, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
