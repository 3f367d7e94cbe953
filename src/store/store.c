/* store/store.c — SQLite (WAL) store for alerts, alert history and detector
 * checkpoints (see store.h for the contract, docs/storage.md for the schema
 * and the durability argument). The only file that includes sqlite3.h.
 *
 * Two connections: `w` (read-write, every write, serialized by wmu) and `r`
 * (read-only, every read, serialized by rmu). In WAL mode the reader sees the
 * last committed transaction and never blocks the writer or is blocked by it.
 * Both are opened SQLITE_OPEN_NOMUTEX because our mutexes already guarantee
 * one thread per connection at a time. Statements are prepared once at open
 * (SQLITE_PREPARE_PERSISTENT) and reset after each use.
 */
#include "store/store.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "util/log.h"

#define STORE_BUSY_TIMEOUT_MS 5000
/* WAL is truncated back to this size after a checkpoint (a 1M-series detector
 * checkpoint makes it large once; no need to keep that on disk). */
#define STORE_JOURNAL_SIZE_LIMIT (64 * 1024 * 1024)

/* Schema migrations: migrations[i] takes the database from version i to i+1.
 * Append only; never edit a released entry. */
static const char *const migrations[] = {
	/* 1: initial schema */
	"CREATE TABLE alerts ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused, even after pruning */
	"  series_key TEXT NOT NULL,"
	"  labels_json TEXT NOT NULL,"
	"  annotations_json TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('pending','firing','resolved','cancelled')),"
	"  active_at_ms INTEGER NOT NULL,"
	"  firing_at_ms INTEGER NOT NULL,"
	"  resolved_at_ms INTEGER NOT NULL,"
	"  event_at_ms INTEGER NOT NULL,"  /* event time of the last transition */
	"  value REAL,"
	"  score REAL"
	");"
	"CREATE INDEX alerts_by_state ON alerts (state, event_at_ms);"
	"CREATE INDEX alerts_by_active ON alerts (active_at_ms);"
	"CREATE INDEX alerts_by_series ON alerts (series_key);"
	"CREATE TABLE alert_events ("
	"  seq INTEGER PRIMARY KEY,"
	"  alert_id INTEGER NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,"
	"  series_key TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('pending','firing','resolved','cancelled')),"
	"  event_at_ms INTEGER NOT NULL,"
	"  value REAL,"
	"  score REAL"
	");"
	"CREATE INDEX alert_events_by_time ON alert_events (event_at_ms);"
	"CREATE INDEX alert_events_by_series ON alert_events (series_key, event_at_ms);"
	"CREATE INDEX alert_events_by_alert ON alert_events (alert_id);"
	/* A checkpoint is a full snapshot, appended in rowid order with no
	 * index: 1M series in ~2 s. (A keyed upsert into a 1M-row B-tree was
	 * 5-9x slower: random inserts spill the page cache.) */
	"CREATE TABLE checkpoints ("
	"  seq INTEGER PRIMARY KEY,"
	"  series_key TEXT NOT NULL,"
	"  labels_json TEXT NOT NULL,"
	"  model TEXT NOT NULL,"
	"  fingerprint INTEGER NOT NULL," /* uint64 stored as its int64 bit pattern */
	"  last_ts_ms INTEGER NOT NULL,"
	"  state BLOB NOT NULL"
	");",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

#define ALERT_COLS "id, series_key, labels_json, annotations_json, state, active_at_ms, " \
	"firing_at_ms, resolved_at_ms, event_at_ms, value, score"

/* Every cached statement: field, connection ('w' or 'r'), SQL. */
#define STORE_STATEMENTS(X) \
	X(ins_alert, 'w', "INSERT INTO alerts (series_key, labels_json, annotations_json, state, " \
	  "active_at_ms, firing_at_ms, resolved_at_ms, event_at_ms, value, score) " \
	  "VALUES (?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)") \
	X(ins_alert_id, 'w', "INSERT INTO alerts (id, series_key, labels_json, annotations_json, " \
	  "state, active_at_ms, firing_at_ms, resolved_at_ms, event_at_ms, value, score) " \
	  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)") \
	X(upd_alert, 'w', "UPDATE alerts SET series_key = ?2, labels_json = ?3, " \
	  "annotations_json = ?4, state = ?5, active_at_ms = ?6, firing_at_ms = ?7, " \
	  "resolved_at_ms = ?8, event_at_ms = ?9, value = ?10, score = ?11 WHERE id = ?1") \
	X(ins_event, 'w', "INSERT INTO alert_events (alert_id, series_key, state, event_at_ms, " \
	  "value, score) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") \
	X(prune_events, 'w', "DELETE FROM alert_events WHERE alert_id IN (SELECT id FROM alerts " \
	  "WHERE state IN ('resolved','cancelled') AND event_at_ms < ?1)") \
	X(prune_alerts, 'w', "DELETE FROM alerts WHERE state IN ('resolved','cancelled') " \
	  "AND event_at_ms < ?1") \
	X(ckpt_put, 'w', "INSERT INTO checkpoints (series_key, labels_json, model, " \
	  "fingerprint, last_ts_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") \
	X(ckpt_clear, 'w', "DELETE FROM checkpoints") \
	X(scan_open, 'r', "SELECT " ALERT_COLS " FROM alerts WHERE state IN ('pending','firing') " \
	  "ORDER BY active_at_ms, id") \
	X(scan_all, 'r', "SELECT " ALERT_COLS " FROM alerts WHERE state IN ('pending','firing') " \
	  "OR (state IN ('resolved','cancelled') AND event_at_ms >= ?1) ORDER BY active_at_ms, id") \
	X(hist_all, 'r', "SELECT a.id, a.series_key, a.labels_json, a.annotations_json, e.state, " \
	  "a.active_at_ms, a.firing_at_ms, a.resolved_at_ms, e.event_at_ms, e.value, e.score " \
	  "FROM alert_events e JOIN alerts a ON a.id = e.alert_id " \
	  "WHERE e.event_at_ms BETWEEN ?2 AND ?3 ORDER BY e.event_at_ms DESC, e.seq DESC LIMIT ?4") \
	X(hist_series, 'r', "SELECT a.id, a.series_key, a.labels_json, a.annotations_json, e.state, " \
	  "a.active_at_ms, a.firing_at_ms, a.resolved_at_ms, e.event_at_ms, e.value, e.score " \
	  "FROM alert_events e JOIN alerts a ON a.id = e.alert_id WHERE e.series_key = ?1 " \
	  "AND e.event_at_ms BETWEEN ?2 AND ?3 ORDER BY e.event_at_ms DESC, e.seq DESC LIMIT ?4") \
	X(max_id, 'r', "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'alerts'), 0), " \
	  "coalesce((SELECT max(id) FROM alerts), 0))") \
	X(ckpt_scan, 'r', "SELECT series_key, labels_json, model, fingerprint, last_ts_ms, state " \
	  "FROM checkpoints ORDER BY seq")

struct store {
	sqlite3 *w;             /* read-write connection; guarded by wmu */
	sqlite3 *r;             /* read-only connection; guarded by rmu */
	pthread_mutex_t wmu;
	pthread_mutex_t rmu;
	int in_ckpt;            /* between store_ckpt_begin and commit/rollback (wmu held) */
	int ckpt_failed;        /* a put or clear failed: commit rolls back */
#define X(name, conn, sql) sqlite3_stmt *name;
	STORE_STATEMENTS(X)
#undef X
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Log a failure of an operation that has no err parameter. */
static void log_db_err(sqlite3 *db, const char *op)
{
	log_msg(LOG_ERROR, "event=store_error op=%s error=\"%s\"", op, sqlite3_errmsg(db));
}

static int exec_sql(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		set_err(err, errlen, "unable to %s: %s", what, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Roll back if a transaction is still open (ignore the result: after some
 * errors SQLite has already rolled back by itself). */
static void rollback_quiet(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

static sqlite3 *open_conn(const char *path, int flags, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		set_err(err, errlen, "unable to open '%s': %s", path,
		        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	return db;
}

/* Bring the schema up to SCHEMA_VERSION, one transaction per step. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	if (exec_sql(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
	             "create table 'schema_version'", err, errlen) < 0)
		return -1;
	for (;;) {
		if (exec_sql(db, "BEGIN IMMEDIATE", "begin migration", err, errlen) < 0)
			return -1;
		int version = 0;
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st,
		                       NULL) != SQLITE_OK) {
			set_err(err, errlen, "unable to read 'schema_version': %s", sqlite3_errmsg(db));
			rollback_quiet(db);
			return -1;
		}
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		if (version > SCHEMA_VERSION) {
			set_err(err, errlen, "unsupported schema version %d in '%s' (this build knows "
			        "up to %d): written by a newer foreshock", version, path, SCHEMA_VERSION);
			rollback_quiet(db);
			return -1;
		}
		if (version == SCHEMA_VERSION)
			return exec_sql(db, "COMMIT", "commit migration", err, errlen);
		char what[64];
		snprintf(what, sizeof what, "migrate schema to version %d", version + 1);
		if (exec_sql(db, migrations[version], what, err, errlen) < 0) {
			rollback_quiet(db);
			return -1;
		}
		char sql[96];
		snprintf(sql, sizeof sql, "DELETE FROM schema_version; "
		         "INSERT INTO schema_version (version) VALUES (%d)", version + 1);
		if (exec_sql(db, sql, what, err, errlen) < 0 ||
		    exec_sql(db, "COMMIT", what, err, errlen) < 0) {
			rollback_quiet(db);
			return -1;
		}
		log_msg(LOG_INFO, "event=store_migrated path=%s version=%d", path, version + 1);
	}
}

static int prepare_all(struct store *s, char *err, size_t errlen)
{
#define X(name, conn, sql) \
	if (sqlite3_prepare_v3((conn) == 'w' ? s->w : s->r, sql, -1, SQLITE_PREPARE_PERSISTENT, \
	                       &s->name, NULL) != SQLITE_OK) { \
		set_err(err, errlen, "unable to prepare statement '%s': %s", #name, \
		        sqlite3_errmsg((conn) == 'w' ? s->w : s->r)); \
		return -1; \
	}
	STORE_STATEMENTS(X)
#undef X
	return 0;
}

static void finalize_all(struct store *s)
{
#define X(name, conn, sql) sqlite3_finalize(s->name); s->name = NULL;
	STORE_STATEMENTS(X)
#undef X
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
	if (path == NULL || *path == '\0' || strcmp(path, ":memory:") == 0) {
		set_err(err, errlen, "invalid store path '%s': need a file", path ? path : "");
		return NULL;
	}
	struct store *s = calloc(1, sizeof *s);
	if (s == NULL) {
		set_err(err, errlen, "out of memory opening store '%s'", path);
		return NULL;
	}
	/* Error-checking: a thread that re-locks wmu (an alert write between its
	 * own ckpt_begin and ckpt_commit) gets EDEADLK instead of hanging. */
	pthread_mutexattr_t ma;
	pthread_mutexattr_init(&ma);
	pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_ERRORCHECK);
	pthread_mutex_init(&s->wmu, &ma);
	pthread_mutexattr_destroy(&ma);
	pthread_mutex_init(&s->rmu, NULL);

	s->w = open_conn(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err, errlen);
	if (s->w == NULL)
		goto fail;
	/* WAL: readers and the writer do not block each other, commits append to
	 * the log, and a torn last frame is ignored at recovery. */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->w, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK) {
		set_err(err, errlen, "unable to set journal_mode for '%s': %s", path,
		        sqlite3_errmsg(s->w));
		goto fail;
	}
	int rc = sqlite3_step(st);
	const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		set_err(err, errlen, "unable to enable WAL for '%s': %s", path,
		        mode ? mode : sqlite3_errmsg(s->w));
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	char pragmas[256];
	snprintf(pragmas, sizeof pragmas,
	         "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384; "
	         "PRAGMA journal_size_limit=%d", STORE_JOURNAL_SIZE_LIMIT);
	if (exec_sql(s->w, pragmas, "set pragmas", err, errlen) < 0)
		goto fail;
	if (migrate(s->w, path, err, errlen) < 0)
		goto fail;

	s->r = open_conn(path, SQLITE_OPEN_READONLY, err, errlen);
	if (s->r == NULL)
		goto fail;
	if (exec_sql(s->r, "PRAGMA query_only=ON", "set pragmas on read connection", err,
	             errlen) < 0)
		goto fail;
	if (prepare_all(s, err, errlen) < 0)
		goto fail;
	return s;
fail:
	finalize_all(s);
	sqlite3_close(s->r);
	sqlite3_close(s->w);
	pthread_mutex_destroy(&s->wmu);
	pthread_mutex_destroy(&s->rmu);
	free(s);
	return NULL;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->in_ckpt) {
		rollback_quiet(s->w);
		pthread_mutex_unlock(&s->wmu);
	}
	finalize_all(s);
	sqlite3_close(s->r);
	/* Fold the WAL into the main file and truncate it, so a clean shutdown
	 * leaves one self-contained database file. */
	int rc = sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc != SQLITE_OK)
		log_db_err(s->w, "final_checkpoint");
	if (sqlite3_close(s->w) != SQLITE_OK)
		log_db_err(s->w, "close");
	pthread_mutex_destroy(&s->wmu);
	pthread_mutex_destroy(&s->rmu);
	free(s);
}

/* Take the write lock; -1 if this thread already holds it (checkpoint open). */
static int wlock(struct store *s)
{
	return pthread_mutex_lock(&s->wmu) == 0 ? 0 : -1;
}

/* ---- alerts ---- */

static int state_valid(const char *state)
{
	return state && (strcmp(state, "pending") == 0 || strcmp(state, "firing") == 0 ||
	                 strcmp(state, "resolved") == 0 || strcmp(state, "cancelled") == 0);
}

static void bind_double(sqlite3_stmt *st, int i, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, i); /* SQLite would store NaN as NULL anyway */
	else
		sqlite3_bind_double(st, i, v);
}

static double column_double(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static const char *column_str(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : "";
}

/* Bind parameters ?1..?11 of ins_alert / ins_alert_id / upd_alert. */
static void bind_alert(sqlite3_stmt *st, const struct alert_rec *r)
{
	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_text(st, 2, r->series_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, r->labels_json ? r->labels_json : "{}", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, r->annotations_json ? r->annotations_json : "{}", -1,
	                  SQLITE_STATIC);
	sqlite3_bind_text(st, 5, r->state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, r->active_at_ms);
	sqlite3_bind_int64(st, 7, r->firing_at_ms);
	sqlite3_bind_int64(st, 8, r->resolved_at_ms);
	sqlite3_bind_int64(st, 9, r->event_at_ms);
	bind_double(st, 10, r->value);
	bind_double(st, 11, r->score);
}

/* Run a bound write statement to completion, then reset and unbind it. */
static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* Write one rec inside the open transaction. */
static int write_one(struct store *s, struct alert_rec *r, char *err, size_t errlen)
{
	const char *what;
	if (r->id == 0) {
		what = "insert alert";
		bind_alert(s->ins_alert, r);
		if (step_done(s->ins_alert) < 0)
			goto fail;
		r->id = sqlite3_last_insert_rowid(s->w);
	} else {
		what = "update alert";
		bind_alert(s->upd_alert, r);
		if (step_done(s->upd_alert) < 0)
			goto fail;
		if (sqlite3_changes(s->w) == 0) {
			/* Row gone (pruned, or a restored checkpoint outlived the
			 * database): recreate it under the id the caller knows. */
			what = "re-insert alert";
			bind_alert(s->ins_alert_id, r);
			if (step_done(s->ins_alert_id) < 0)
				goto fail;
		}
	}
	what = "append alert event";
	sqlite3_stmt *ev = s->ins_event;
	sqlite3_bind_int64(ev, 1, r->id);
	sqlite3_bind_text(ev, 2, r->series_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(ev, 3, r->state, -1, SQLITE_STATIC);
	sqlite3_bind_int64(ev, 4, r->event_at_ms);
	bind_double(ev, 5, r->value);
	bind_double(ev, 6, r->score);
	if (step_done(ev) < 0)
		goto fail;
	return 0;
fail:
	set_err(err, errlen, "unable to %s '%s': %s", what, r->series_key, sqlite3_errmsg(s->w));
	return -1;
}

int store_alerts_write(struct store *s, struct alert_rec *recs, size_t n, char *err,
                       size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (recs[i].series_key == NULL || recs[i].series_key[0] == '\0') {
			set_err(err, errlen, "missing series_key for alert record %zu", i);
			return -1;
		}
		if (!state_valid(recs[i].state)) {
			set_err(err, errlen, "invalid alert state '%s' for '%s'",
			        recs[i].state ? recs[i].state : "(null)", recs[i].series_key);
			return -1;
		}
		if (recs[i].id < 0) {
			set_err(err, errlen, "invalid alert id %lld for '%s'", (long long)recs[i].id,
			        recs[i].series_key);
			return -1;
		}
	}
	if (n == 0)
		return 0;

	/* Remember which ids we assign so a failed transaction can give them back. */
	unsigned char stack_new[64];
	unsigned char *was_new = n <= sizeof stack_new ? stack_new : malloc(n);
	if (was_new == NULL) {
		set_err(err, errlen, "out of memory writing %zu alert records", n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		was_new[i] = recs[i].id == 0;

	int ret = -1;
	if (wlock(s) < 0) {
		set_err(err, errlen, "unable to write alerts: checkpoint open on this thread");
		goto unlocked;
	}
	if (exec_sql(s->w, "BEGIN IMMEDIATE", "begin alert transaction", err, errlen) < 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (write_one(s, &recs[i], err, errlen) < 0) {
			rollback_quiet(s->w);
			goto out;
		}
	}
	/* synchronous=FULL: COMMIT returns after the WAL is fsync'ed. */
	if (exec_sql(s->w, "COMMIT", "commit alert transaction", err, errlen) < 0) {
		rollback_quiet(s->w);
		goto out;
	}
	ret = 0;
out:
	pthread_mutex_unlock(&s->wmu);
unlocked:
	if (ret < 0) {
		for (size_t i = 0; i < n; i++)
			if (was_new[i])
				recs[i].id = 0;
	}
	if (was_new != stack_new)
		free(was_new);
	return ret;
}

/* Step a read statement, handing each row to fn as an alert_rec. Resets st. */
static int emit_alerts(struct store *s, sqlite3_stmt *st, const char *op, store_alert_fn fn,
                       void *ctx)
{
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct alert_rec r = {
			.id = sqlite3_column_int64(st, 0),
			.series_key = column_str(st, 1),
			.labels_json = column_str(st, 2),
			.annotations_json = column_str(st, 3),
			.state = column_str(st, 4),
			.active_at_ms = sqlite3_column_int64(st, 5),
			.firing_at_ms = sqlite3_column_int64(st, 6),
			.resolved_at_ms = sqlite3_column_int64(st, 7),
			.event_at_ms = sqlite3_column_int64(st, 8),
			.value = column_double(st, 9),
			.score = column_double(st, 10),
		};
		ret = fn(ctx, &r);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		log_db_err(s->r, op);
		ret = -1;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return ret;
}

int store_alerts_scan(struct store *s, int include_ended, int64_t since_ms, store_alert_fn fn,
                      void *ctx)
{
	pthread_mutex_lock(&s->rmu);
	sqlite3_stmt *st = include_ended ? s->scan_all : s->scan_open;
	if (include_ended)
		sqlite3_bind_int64(st, 1, since_ms);
	int ret = emit_alerts(s, st, "alerts_scan", fn, ctx);
	pthread_mutex_unlock(&s->rmu);
	return ret;
}

int store_alert_history(struct store *s, const char *series_key, int64_t start_ms, int64_t end_ms,
                        size_t limit, store_alert_fn fn, void *ctx)
{
	pthread_mutex_lock(&s->rmu);
	sqlite3_stmt *st = series_key ? s->hist_series : s->hist_all;
	if (series_key)
		sqlite3_bind_text(st, 1, series_key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, start_ms);
	sqlite3_bind_int64(st, 3, end_ms);
	sqlite3_bind_int64(st, 4, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
	int ret = emit_alerts(s, st, "alert_history", fn, ctx);
	pthread_mutex_unlock(&s->rmu);
	return ret;
}

int store_alerts_prune(struct store *s, int64_t before_ms)
{
	int ret = -1;
	if (wlock(s) < 0) {
		log_msg(LOG_ERROR, "event=store_error op=alerts_prune "
		        "error=\"checkpoint open on this thread\"");
		return -1;
	}
	char err[256];
	if (exec_sql(s->w, "BEGIN IMMEDIATE", "begin prune", err, sizeof err) < 0) {
		log_msg(LOG_ERROR, "event=store_error op=alerts_prune error=\"%s\"", err);
		goto out;
	}
	sqlite3_bind_int64(s->prune_events, 1, before_ms);
	sqlite3_bind_int64(s->prune_alerts, 1, before_ms);
	int deleted = 0;
	if (step_done(s->prune_events) < 0)
		goto fail;
	if (step_done(s->prune_alerts) < 0)
		goto fail;
	deleted = sqlite3_changes(s->w);
	if (sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	ret = deleted;
	goto out;
fail:
	log_db_err(s->w, "alerts_prune");
	rollback_quiet(s->w);
out:
	pthread_mutex_unlock(&s->wmu);
	return ret;
}

int store_alerts_max_id(struct store *s, int64_t *out)
{
	pthread_mutex_lock(&s->rmu);
	int rc = sqlite3_step(s->max_id);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s->max_id, 0);
	else
		log_db_err(s->r, "alerts_max_id");
	sqlite3_reset(s->max_id);
	pthread_mutex_unlock(&s->rmu);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* ---- checkpoints ---- */

int store_ckpt_begin(struct store *s)
{
	if (wlock(s) < 0) {
		log_msg(LOG_ERROR, "event=store_error op=ckpt_begin "
		        "error=\"checkpoint already open on this thread\"");
		return -1;
	}
	/* A checkpoint is redone at the next checkpoint, so it does not need to
	 * survive power loss: NORMAL skips the fsync at COMMIT (the WAL is synced
	 * at the next WAL checkpoint). It is still atomic and survives kill -9,
	 * because the commit has reached the OS page cache when COMMIT returns.
	 * Restored to FULL in commit/rollback before any alert write can run. */
	if (sqlite3_exec(s->w, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		log_db_err(s->w, "ckpt_begin");
		sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		pthread_mutex_unlock(&s->wmu);
		return -1;
	}
	/* The new snapshot replaces the old one; both happen in this one
	 * transaction, so a crash leaves exactly one of them. */
	if (step_done(s->ckpt_clear) < 0) {
		log_db_err(s->w, "ckpt_begin");
		rollback_quiet(s->w);
		sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		pthread_mutex_unlock(&s->wmu);
		return -1;
	}
	s->in_ckpt = 1;
	s->ckpt_failed = 0;
	return 0;
}

int store_ckpt_put(struct store *s, const struct store_ckpt *c)
{
	if (!s->in_ckpt) {
		log_msg(LOG_ERROR, "event=store_error op=ckpt_put error=\"no checkpoint transaction\"");
		return -1;
	}
	if (c->series_key == NULL || c->model == NULL || (c->state == NULL && c->state_len > 0) ||
	    c->state_len > INT32_MAX) {
		log_msg(LOG_ERROR, "event=store_error op=ckpt_put error=\"invalid checkpoint\" series=%s",
		        c->series_key ? c->series_key : "(null)");
		s->ckpt_failed = 1;
		return -1;
	}
	sqlite3_stmt *st = s->ckpt_put;
	sqlite3_bind_text(st, 1, c->series_key, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->labels_json ? c->labels_json : "{}", -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, c->model, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (int64_t)c->fingerprint);
	sqlite3_bind_int64(st, 5, c->last_ts_ms);
	/* zeroblob-free path: a zero-length blob is still a blob, never NULL */
	sqlite3_bind_blob(st, 6, c->state_len ? c->state : "", (int)c->state_len, SQLITE_STATIC);
	if (step_done(st) < 0) {
		log_msg(LOG_ERROR, "event=store_error op=ckpt_put series=%s error=\"%s\"",
		        c->series_key, sqlite3_errmsg(s->w));
		s->ckpt_failed = 1;
		return -1;
	}
	return 0;
}

/* End the checkpoint transaction: commit (if ok and nothing failed) or roll back. */
static int ckpt_end(struct store *s, int commit)
{
	if (!s->in_ckpt) {
		log_msg(LOG_ERROR, "event=store_error op=ckpt_end error=\"no checkpoint transaction\"");
		return -1;
	}
	int ret = -1;
	if (commit && !s->ckpt_failed) {
		if (sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
			ret = 0;
		else
			log_db_err(s->w, "ckpt_commit");
	} else if (commit) {
		log_msg(LOG_ERROR, "event=store_error op=ckpt_commit error=\"a put failed, rolled back\"");
	} else {
		ret = 0;
	}
	rollback_quiet(s->w);
	if (sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
		log_db_err(s->w, "ckpt_restore_synchronous");
	s->in_ckpt = 0;
	s->ckpt_failed = 0;
	pthread_mutex_unlock(&s->wmu);
	return ret;
}

int store_ckpt_commit(struct store *s) { return ckpt_end(s, 1); }
int store_ckpt_rollback(struct store *s) { return ckpt_end(s, 0); }

int store_ckpt_scan(struct store *s, int (*fn)(void *ctx, const struct store_ckpt *c), void *ctx)
{
	pthread_mutex_lock(&s->rmu);
	sqlite3_stmt *st = s->ckpt_scan;
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_ckpt c = {
			.series_key = column_str(st, 0),
			.labels_json = column_str(st, 1),
			.model = column_str(st, 2),
			.fingerprint = (uint64_t)sqlite3_column_int64(st, 3),
			.last_ts_ms = sqlite3_column_int64(st, 4),
			.state = sqlite3_column_blob(st, 5),
			.state_len = (size_t)sqlite3_column_bytes(st, 5),
		};
		ret = fn(ctx, &c);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		log_db_err(s->r, "ckpt_scan");
		ret = -1;
	}
	sqlite3_reset(st);
	pthread_mutex_unlock(&s->rmu);
	return ret;
}

/* ---- maintenance ---- */

int store_integrity_check(struct store *s, char *err, size_t errlen)
{
	int ret = 0;
	pthread_mutex_lock(&s->rmu);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->r, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
		set_err(err, errlen, "unable to run 'integrity_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		set_err(err, errlen, "unable to run 'integrity_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	const char *res = column_str(st, 0);
	if (strcmp(res, "ok") != 0) {
		set_err(err, errlen, "integrity check failed: %s", res);
		ret = -1;
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(s->r, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) {
		set_err(err, errlen, "unable to run 'foreign_key_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		set_err(err, errlen, "foreign key check failed: row %lld of '%s' has no parent in '%s'",
		        (long long)sqlite3_column_int64(st, 1), column_str(st, 0), column_str(st, 2));
		ret = -1;
	} else if (rc != SQLITE_DONE) {
		set_err(err, errlen, "unable to run 'foreign_key_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
	}
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->rmu);
	return ret;
}
