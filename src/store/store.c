/* store/store.c — SQLite (WAL) store for alerts, alert history and
 * per-series state, and its health (see store.h for the contract,
 * docs/storage.md for the schema and the durability argument). With
 * backup.c and svcstate.c, the only files that include sqlite3.h.
 *
 * Two connections: `w` (read-write, every write, serialized by wmu) and `r`
 * (read-only, every read, serialized by rmu). In WAL mode the reader sees the
 * last committed transaction and never blocks the writer or is blocked by it.
 * Both are opened SQLITE_OPEN_NOMUTEX because our mutexes already guarantee
 * one thread per connection at a time. Statements are prepared once at open
 * (SQLITE_PREPARE_PERSISTENT) and reset after each use.
 */
#include "store/store.h"
#include "store/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "util/lockrank.h"
#include "util/log.h"

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
	/* 2: the store's identity (meta.store_id: a data dir remembers it, so a
	 * missing or swapped database is noticed at start-up), and per-series
	 * state keyed by a persistent series id so that it can be written
	 * incrementally, a few dirty series at a time (replaces the snapshot
	 * table; its rows carry over, their seq becoming the id). */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"INSERT INTO meta (key, value) VALUES ('store_id', lower(hex(randomblob(8))));"
	"CREATE TABLE series_state ("
	"  sid INTEGER PRIMARY KEY," /* the engine's persistent series id */
	"  series_key TEXT NOT NULL,"
	"  labels_json TEXT NOT NULL,"
	"  model TEXT NOT NULL,"
	"  fingerprint INTEGER NOT NULL,"
	"  last_ts_ms INTEGER NOT NULL,"
	"  state BLOB NOT NULL"
	");"
	"INSERT INTO series_state (sid, series_key, labels_json, model, fingerprint, last_ts_ms, state) "
	"  SELECT seq, series_key, labels_json, model, fingerprint, last_ts_ms, state FROM checkpoints;"
	"DROP TABLE checkpoints;",
	/* 3: what each service model has learnt (service/service.h
	 * services_state_take), one row per service, rewritten after each of
	 * its grid steps; steps is a copy of the count in the blob's header */
	"CREATE TABLE service_state ("
	"  name TEXT PRIMARY KEY,"
	"  steps INTEGER NOT NULL,"
	"  state BLOB NOT NULL"
	");",
};
#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int store_schema_version(void) { return SCHEMA_VERSION; }

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
	X(ckpt_put, 'w', "INSERT INTO series_state (series_key, labels_json, model, " \
	  "fingerprint, last_ts_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6)") \
	X(ckpt_clear, 'w', "DELETE FROM series_state") \
	X(state_put, 'w', "INSERT OR REPLACE INTO series_state (sid, series_key, labels_json, " \
	  "model, fingerprint, last_ts_ms, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)") \
	X(state_upd, 'w', "UPDATE series_state SET model = ?4, fingerprint = ?5, last_ts_ms = ?6, " \
	  "state = ?7 WHERE sid = ?1") \
	X(state_max, 'r', "SELECT coalesce(max(sid), 0) FROM series_state") \
	X(probe, 'w', "INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?1)") \
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
	X(ckpt_scan, 'r', "SELECT series_key, labels_json, model, fingerprint, last_ts_ms, state, sid " \
	  "FROM series_state ORDER BY sid")

struct store {
	sqlite3 *w;             /* read-write connection; guarded by wmu */
	sqlite3 *r;             /* read-only connection; guarded by rmu */
	pthread_mutex_t wmu;
	pthread_mutex_t rmu;
	int in_ckpt;            /* between store_ckpt_begin and commit/rollback (wmu held) */
	int ckpt_failed;        /* a put or clear failed: commit rolls back */
	char *path;
	char id[40];            /* meta.store_id */
	/* health (see store_healthy): fmu guards fault and since */
	atomic_int healthy;
	atomic_int moved;       /* the file was deleted or replaced under us: writes refused */
	atomic_uint_least64_t errors;
	pthread_mutex_t fmu;
	char fault[320];        /* the fault that made the store unhealthy */
	struct timespec since;  /* when it became unhealthy (CLOCK_MONOTONIC) */
#define X(name, conn, sql) sqlite3_stmt *name;
	STORE_STATEMENTS(X)
#undef X
};

void store_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The symbolic name of an SQLite result code, for logs and metrics. */
static const char *code_name(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK: return "ok";
	case SQLITE_FULL: return "full";
	case SQLITE_READONLY: return "readonly";
	case SQLITE_IOERR: return "ioerr";
	case SQLITE_CORRUPT: return "corrupt";
	case SQLITE_NOTADB: return "notadb";
	case SQLITE_CANTOPEN: return "cantopen";
	case SQLITE_PERM: return "perm";
	case SQLITE_BUSY: return "busy";
	case SQLITE_LOCKED: return "locked";
	case SQLITE_PROTOCOL: return "protocol";
	case SQLITE_NOMEM: return "nomem";
	case SQLITE_CONSTRAINT: return "constraint";
	case SQLITE_MISUSE: return "misuse";
	default: return "error";
	}
}

/* Codes that mean the storage itself failed (as opposed to a bad record or
 * a bug): the store turns unhealthy until a write succeeds again. */
static int is_storage_fault(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL: case SQLITE_READONLY: case SQLITE_IOERR: case SQLITE_CORRUPT:
	case SQLITE_NOTADB: case SQLITE_CANTOPEN: case SQLITE_PERM: case SQLITE_BUSY:
	case SQLITE_LOCKED: case SQLITE_PROTOCOL:
		return 1;
	default:
		return 0;
	}
}

/* Mark the store unhealthy (logging the change once) with a reason. */
static void set_fault(struct store *s, const char *op, int rc, const char *msg)
{
	lockrank_lock(&s->fmu, LOCK_RANK_STORE_FAULT);
	int was = atomic_exchange(&s->healthy, 0);
	snprintf(s->fault, sizeof s->fault, "%s: %s", op, msg);
	if (was)
		clock_gettime(CLOCK_MONOTONIC, &s->since);
	lockrank_unlock(&s->fmu);
	if (was)
		log_msg(LOG_ERROR, "event=store_fault file=%s op=%s code=%s error=\"%s\"", s->path,
		        op, code_name(rc), msg);
}

/* Count a failed operation on db (call before anything else touches db, so
 * its error code is still the failure's): logged with the file, the
 * operation and SQLite's code and message; a storage fault makes the store
 * unhealthy. */
static void note_err(struct store *s, sqlite3 *db, const char *op)
{
	int rc = sqlite3_extended_errcode(db);
	const char *msg = sqlite3_errmsg(db);
	atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
	log_msg(LOG_ERROR, "event=store_error file=%s op=%s code=%s error=\"%s\"", s->path, op,
	        code_name(rc), msg);
	if (is_storage_fault(rc))
		set_fault(s, op, rc, msg);
}

/* A write committed: the fault (if any) has cleared, unless the file moved. */
static void note_ok(struct store *s)
{
	if (atomic_load(&s->healthy) || atomic_load(&s->moved))
		return;
	lockrank_lock(&s->fmu, LOCK_RANK_STORE_FAULT);
	int was = atomic_exchange(&s->healthy, 1);
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	long ms = (long)((now.tv_sec - s->since.tv_sec) * 1000 +
	                 (now.tv_nsec - s->since.tv_nsec) / 1000000);
	s->fault[0] = '\0';
	lockrank_unlock(&s->fmu);
	if (!was)
		log_msg(LOG_INFO, "event=store_recovered file=%s unhealthy_ms=%ld", s->path, ms);
}

/* Writes are refused while the file is not the one we opened. */
static int refuse_moved(struct store *s, char *err, size_t errlen)
{
	if (!atomic_load(&s->moved))
		return 0;
	atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
	store_set_err(err, errlen, "database file '%s' was deleted or replaced while open", s->path);
	return -1;
}

/* Log a failure of an operation that has no err parameter. */
#define log_db_err(db, op) note_err(s, (db), (op))

static const char *column_text0(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : "";
}

static int step_done(sqlite3_stmt *st);

static int exec_sql(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		store_set_err(err, errlen, "unable to %s: %s", what, msg ? msg : sqlite3_errmsg(db));
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
		store_set_err(err, errlen, "unable to open '%s': %s", path,
		        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	return db;
}

int store_has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
	                       -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_finalize(st);
	return found;
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
			store_set_err(err, errlen, "unable to read 'schema_version': %s", sqlite3_errmsg(db));
			rollback_quiet(db);
			return -1;
		}
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		if (version > SCHEMA_VERSION) {
			store_set_err(err, errlen, "unsupported schema version %d in '%s' (this build knows "
			        "up to %d): written by a newer foreshock", version, path, SCHEMA_VERSION);
			rollback_quiet(db);
			return -1;
		}
		if (version == SCHEMA_VERSION)
			return exec_sql(db, "COMMIT", "commit migration", err, errlen);
		if (version == 0 && store_has_table(db, "alerts")) {
			/* tables without a version: not ours, or the version row is lost */
			store_set_err(err, errlen, "database '%s' is corrupt or not foreshock's: table "
			        "'alerts' exists but 'schema_version' has no row", path);
			rollback_quiet(db);
			return -1;
		}
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
		store_set_err(err, errlen, "unable to prepare statement '%s': %s", #name, \
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

/* One-word answer of a pragma like quick_check into buf ("" on error). */
int store_pragma_text(sqlite3 *db, const char *sql, char *buf, size_t len)
{
	sqlite3_stmt *st;
	buf[0] = '\0';
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		snprintf(buf, len, "%s", column_text0(st, 0));
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* Open both connections on s->path and prepare everything. On failure err
 * names the real problem: a corrupt file says so rather than reporting the
 * statement that happened to trip over it. */
static int open_conns(struct store *s, char *err, size_t errlen)
{
	const char *path = s->path;
	s->w = open_conn(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err, errlen);
	if (s->w == NULL)
		return -1;
	/* WAL: readers and the writer do not block each other, commits append to
	 * the log, and a torn last frame is ignored at recovery. */
	char mode[32];
	if (store_pragma_text(s->w, "PRAGMA journal_mode=WAL", mode, sizeof mode) < 0 ||
	    strcmp(mode, "wal") != 0) {
		store_set_err(err, errlen, "unable to enable WAL for '%s': %s", path,
		        mode[0] ? mode : sqlite3_errmsg(s->w));
		return -1;
	}
	/* A damaged file is refused before anything is written to it.
	 * quick_check reads every page once (no index cross-check). */
	char qc[256];
	if (store_pragma_text(s->w, "PRAGMA quick_check(1)", qc, sizeof qc) < 0) {
		store_set_err(err, errlen, "unable to check '%s': %s", path, sqlite3_errmsg(s->w));
		return -1;
	}
	if (strcmp(qc, "ok") != 0) {
		store_set_err(err, errlen, "database '%s' is corrupt: %s (restore a backup with "
		        "'foreshock restore', see docs/operations.md)", path, qc);
		return -2;
	}
	/* Automatic WAL checkpoints are off: the write path must not copy 4 MB
	 * of WAL into the database inside an alert commit. store_maintain()
	 * runs them from a housekeeping thread instead. */
	sqlite3_wal_autocheckpoint(s->w, 0);
	char pragmas[256];
	snprintf(pragmas, sizeof pragmas,
	         "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-16384; "
	         "PRAGMA journal_size_limit=%d", STORE_JOURNAL_SIZE_LIMIT);
	if (exec_sql(s->w, pragmas, "set pragmas", err, errlen) < 0)
		return -1;
	if (migrate(s->w, path, err, errlen) < 0)
		return -1;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->w, "SELECT value FROM meta WHERE key = 'store_id'", -1, &st,
	                       NULL) != SQLITE_OK) {
		store_set_err(err, errlen, "unable to read 'meta' of '%s': %s", path, sqlite3_errmsg(s->w));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(s->id, sizeof s->id, "%s", column_text0(st, 0));
	sqlite3_finalize(st);

	s->r = open_conn(path, SQLITE_OPEN_READONLY, err, errlen);
	if (s->r == NULL)
		return -1;
	if (exec_sql(s->r, "PRAGMA query_only=ON", "set pragmas on read connection", err,
	             errlen) < 0)
		return -1;
	return prepare_all(s, err, errlen);
}

static void close_conns(struct store *s)
{
	finalize_all(s);
	sqlite3_close(s->r);
	sqlite3_close(s->w);
	s->r = s->w = NULL;
}

struct store *store_open(const char *path, char *err, size_t errlen)
{
	if (path == NULL || *path == '\0' || strcmp(path, ":memory:") == 0) {
		store_set_err(err, errlen, "invalid store path '%s': need a file", path ? path : "");
		return NULL;
	}
	struct store *s = calloc(1, sizeof *s);
	if (s == NULL || (s->path = strdup(path)) == NULL) {
		store_set_err(err, errlen, "out of memory opening store '%s'", path);
		free(s);
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
	pthread_mutex_init(&s->fmu, NULL);
	atomic_init(&s->healthy, 1);

	int rc = open_conns(s, err, errlen);
	if (rc == -1) {
		/* whatever tripped over it, a damaged file is named as such */
		int code = s->w ? sqlite3_extended_errcode(s->w) : SQLITE_OK;
		if ((code & 0xff) == SQLITE_CORRUPT || (code & 0xff) == SQLITE_NOTADB) {
			char why[512];
			snprintf(why, sizeof why, "%s", err ? err : "");
			store_set_err(err, errlen, "database '%s' is corrupt: %s (restore a backup with "
			        "'foreshock restore', see docs/operations.md)", path, why);
		}
	}
	if (rc < 0) {
		close_conns(s);
		pthread_mutex_destroy(&s->wmu);
		pthread_mutex_destroy(&s->rmu);
		pthread_mutex_destroy(&s->fmu);
		free(s->path);
		free(s);
		return NULL;
	}
	return s;
}

void store_close(struct store *s)
{
	if (s == NULL)
		return;
	if (s->in_ckpt) {
		rollback_quiet(s->w);
		lockrank_unlock(&s->wmu);
	}
	finalize_all(s);
	sqlite3_close(s->r);
	/* Fold the WAL into the main file and truncate it, so a clean shutdown
	 * leaves one self-contained database file (not into a file that is no
	 * longer the one at our path). */
	if (!atomic_load(&s->moved)) {
		int rc = sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL,
		                                   NULL);
		if (rc != SQLITE_OK)
			log_db_err(s->w, "final_checkpoint");
	}
	if (sqlite3_close(s->w) != SQLITE_OK)
		log_db_err(s->w, "close");
	pthread_mutex_destroy(&s->wmu);
	pthread_mutex_destroy(&s->rmu);
	pthread_mutex_destroy(&s->fmu);
	free(s->path);
	free(s);
}

const char *store_path(const struct store *s) { return s->path; }
const char *store_id(const struct store *s) { return s->id; }

int store_healthy(struct store *s, char *why, size_t len)
{
	int ok = atomic_load(&s->healthy);
	if (why && len) {
		lockrank_lock(&s->fmu, LOCK_RANK_STORE_FAULT);
		snprintf(why, len, "%s", ok ? "" : s->fault);
		lockrank_unlock(&s->fmu);
	}
	return ok;
}

uint64_t store_error_count(struct store *s)
{
	return atomic_load_explicit(&s->errors, memory_order_relaxed);
}

/* The file at s->path is no longer the one we opened. If it is simply gone
 * (deleted), write our open copy back to the path and reopen it there: the
 * store recovers, having lost nothing. If another file took its place, that
 * file is not ours to overwrite: stay unhealthy and refuse writes (they
 * would go to a file no one will read again) until a restart. */
static void file_moved(struct store *s)
{
	struct stat st;
	int gone = stat(s->path, &st) < 0 && errno == ENOENT;
	if (!atomic_exchange(&s->moved, 1)) {
		atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
		char msg[200];
		snprintf(msg, sizeof msg, "database file %s while open",
		         gone ? "was deleted" : "was replaced by another file");
		set_fault(s, "check", SQLITE_CANTOPEN, msg);
	}
	if (!gone)
		return;
	char err[512] = "";
	lockrank_lock(&s->wmu, LOCK_RANK_STORE_W);
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	int ok = 0;
	if (!s->in_ckpt) {
		char *sql = sqlite3_mprintf("VACUUM INTO %Q", s->path);
		ok = sql && sqlite3_exec(s->w, sql, NULL, NULL, NULL) == SQLITE_OK;
		if (!ok)
			snprintf(err, sizeof err, "unable to write '%s' back: %s", s->path,
			         sql ? sqlite3_errmsg(s->w) : "out of memory");
		sqlite3_free(sql);
		if (ok) {
			/* drop the deleted inode's WAL and shm along with it: their
			 * content is in the copy */
			close_conns(s);
			ok = open_conns(s, err, sizeof err) == 0;
			if (!ok)
				close_conns(s);
		}
	}
	if (ok) {
		atomic_store(&s->moved, 0);
		log_msg(LOG_WARN, "event=store_rewritten file=%s reason=\"database file was deleted "
		        "while open; rewritten from the open copy\"", s->path);
	} else if (err[0]) {
		log_msg(LOG_ERROR, "event=store_error file=%s op=rewrite error=\"%s\"", s->path, err);
	}
	lockrank_unlock(&s->rmu);
	lockrank_unlock(&s->wmu);
	if (ok)
		note_ok(s);
}

int store_check(struct store *s)
{
	int moved = 0;
	lockrank_lock(&s->wmu, LOCK_RANK_STORE_W);
	if (s->w && sqlite3_file_control(s->w, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
		moved = 0;
	lockrank_unlock(&s->wmu);
	if (moved || (atomic_load(&s->moved) && s->w == NULL)) {
		file_moved(s);
		return atomic_load(&s->healthy);
	}
	if (atomic_load(&s->healthy))
		return 1;
	/* Unhealthy: try a small durable write. Success means the fault (disk
	 * full, read-only file system, lock held elsewhere) has cleared. */
	if (atomic_load(&s->moved) || lockrank_trylock(&s->wmu, LOCK_RANK_STORE_W) != 0)
		return 0;
	if (s->in_ckpt) {
		lockrank_unlock(&s->wmu);
		return 0;
	}
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	char val[32];
	snprintf(val, sizeof val, "%lld", (long long)now.tv_sec);
	int ok = sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_text(s->probe, 1, val, -1, SQLITE_TRANSIENT);
		ok = step_done(s->probe) == 0 &&
		     sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
	}
	if (!ok) {
		atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
		rollback_quiet(s->w);
	}
	lockrank_unlock(&s->wmu);
	if (ok)
		note_ok(s);
	return ok;
}

int store_maintain(struct store *s)
{
	if (atomic_load(&s->moved))
		return -1;
	/* PASSIVE: copies what no reader still needs, never waits for readers
	 * or blocks writers for long; the WAL restarts from the top once fully
	 * copied and journal_size_limit truncates it. */
	lockrank_lock(&s->wmu, LOCK_RANK_STORE_W);
	int rc = s->in_ckpt ? SQLITE_OK :
	         sqlite3_wal_checkpoint_v2(s->w, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (rc != SQLITE_OK)
		log_db_err(s->w, "wal_checkpoint");
	lockrank_unlock(&s->wmu);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Take the write lock; -1 if this thread already holds it (checkpoint open). */
static int wlock(struct store *s)
{
	return lockrank_lock(&s->wmu, LOCK_RANK_STORE_W) == 0 ? 0 : -1;
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
	store_set_err(err, errlen, "unable to %s '%s': %s", what, r->series_key, sqlite3_errmsg(s->w));
	return -1;
}

int store_alerts_write(struct store *s, struct alert_rec *recs, size_t n, char *err,
                       size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (recs[i].series_key == NULL || recs[i].series_key[0] == '\0') {
			store_set_err(err, errlen, "missing series_key for alert record %zu", i);
			return -1;
		}
		if (!state_valid(recs[i].state)) {
			store_set_err(err, errlen, "invalid alert state '%s' for '%s'",
			        recs[i].state ? recs[i].state : "(null)", recs[i].series_key);
			return -1;
		}
		if (recs[i].id < 0) {
			store_set_err(err, errlen, "invalid alert id %lld for '%s'", (long long)recs[i].id,
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
		store_set_err(err, errlen, "out of memory writing %zu alert records", n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		was_new[i] = recs[i].id == 0;

	int ret = -1;
	if (wlock(s) < 0) {
		store_set_err(err, errlen, "unable to write alerts: checkpoint open on this thread");
		goto unlocked;
	}
	if (refuse_moved(s, err, errlen) < 0)
		goto out;
	if (exec_sql(s->w, "BEGIN IMMEDIATE", "begin alert transaction", err, errlen) < 0) {
		note_err(s, s->w, "alerts_write");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (write_one(s, &recs[i], err, errlen) < 0) {
			note_err(s, s->w, "alerts_write");
			rollback_quiet(s->w);
			goto out;
		}
	}
	/* synchronous=FULL: COMMIT returns after the WAL is fsync'ed. */
	if (exec_sql(s->w, "COMMIT", "commit alert transaction", err, errlen) < 0) {
		note_err(s, s->w, "alerts_write");
		rollback_quiet(s->w);
		goto out;
	}
	ret = 0;
	note_ok(s);
out:
	lockrank_unlock(&s->wmu);
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
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	sqlite3_stmt *st = include_ended ? s->scan_all : s->scan_open;
	if (include_ended)
		sqlite3_bind_int64(st, 1, since_ms);
	int ret = emit_alerts(s, st, "alerts_scan", fn, ctx);
	lockrank_unlock(&s->rmu);
	return ret;
}

int store_alert_history(struct store *s, const char *series_key, int64_t start_ms, int64_t end_ms,
                        size_t limit, store_alert_fn fn, void *ctx)
{
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	sqlite3_stmt *st = series_key ? s->hist_series : s->hist_all;
	if (series_key)
		sqlite3_bind_text(st, 1, series_key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, start_ms);
	sqlite3_bind_int64(st, 3, end_ms);
	sqlite3_bind_int64(st, 4, limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit);
	int ret = emit_alerts(s, st, "alert_history", fn, ctx);
	lockrank_unlock(&s->rmu);
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
	if (refuse_moved(s, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, "event=store_error file=%s op=alerts_prune error=\"%s\"", s->path, err);
		goto out;
	}
	if (exec_sql(s->w, "BEGIN IMMEDIATE", "begin prune", err, sizeof err) < 0) {
		note_err(s, s->w, "alerts_prune");
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
	note_ok(s);
	goto out;
fail:
	log_db_err(s->w, "alerts_prune");
	rollback_quiet(s->w);
out:
	lockrank_unlock(&s->wmu);
	return ret;
}

int store_alerts_max_id(struct store *s, int64_t *out)
{
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	int rc = sqlite3_step(s->max_id);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s->max_id, 0);
	else
		log_db_err(s->r, "alerts_max_id");
	sqlite3_reset(s->max_id);
	lockrank_unlock(&s->rmu);
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
	char err[256];
	if (refuse_moved(s, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, "event=store_error file=%s op=ckpt_begin error=\"%s\"", s->path, err);
		lockrank_unlock(&s->wmu);
		return -1;
	}
	if (sqlite3_exec(s->w, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->w, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		log_db_err(s->w, "ckpt_begin");
		sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		lockrank_unlock(&s->wmu);
		return -1;
	}
	/* The new snapshot replaces the old one; both happen in this one
	 * transaction, so a crash leaves exactly one of them. */
	if (step_done(s->ckpt_clear) < 0) {
		log_db_err(s->w, "ckpt_begin");
		rollback_quiet(s->w);
		sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
		lockrank_unlock(&s->wmu);
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
		note_err(s, s->w, "ckpt_put");
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
		if (sqlite3_exec(s->w, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
			ret = 0;
			note_ok(s);
		} else
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
	lockrank_unlock(&s->wmu);
	return ret;
}

int store_ckpt_commit(struct store *s) { return ckpt_end(s, 1); }
int store_ckpt_rollback(struct store *s) { return ckpt_end(s, 0); }

int store_ckpt_scan(struct store *s, int (*fn)(void *ctx, const struct store_ckpt *c), void *ctx)
{
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
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
			.sid = sqlite3_column_int64(st, 6),
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
	lockrank_unlock(&s->rmu);
	return ret;
}

/* ---- incremental series and service state ---- */

/* For svcstate.c (internal.h): the write transaction of a state write, and
 * the read connection. */
int store_state_txn_begin(struct store *s, const char *what, char *err, size_t errlen)
{
	if (wlock(s) < 0) {
		store_set_err(err, errlen, "unable to write %s: checkpoint open on this thread", what);
		return -1;
	}
	if (refuse_moved(s, err, errlen) < 0) {
		lockrank_unlock(&s->wmu);
		return -1;
	}
	if (exec_sql(s->w, "PRAGMA synchronous=NORMAL", "set synchronous", err, errlen) < 0 ||
	    exec_sql(s->w, "BEGIN IMMEDIATE", "begin state transaction", err, errlen) < 0) {
		note_err(s, s->w, "state_write");
		rollback_quiet(s->w);
		if (sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
			log_db_err(s->w, "state_restore_synchronous");
		lockrank_unlock(&s->wmu);
		return -1;
	}
	return 0;
}

int store_state_txn_end(struct store *s, int ok, const char *op, char *err, size_t errlen)
{
	int ret = -1;
	if (ok == 0 && exec_sql(s->w, "COMMIT", "commit state transaction", err, errlen) == 0) {
		ret = 0;
		note_ok(s);
	} else {
		if (ok == 0)
			note_err(s, s->w, op);
		rollback_quiet(s->w);
	}
	if (sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
		log_db_err(s->w, "state_restore_synchronous");
	lockrank_unlock(&s->wmu);
	return ret;
}

sqlite3 *store_wdb(struct store *s) { return s->w; }
void store_note_err(struct store *s, sqlite3 *db, const char *op) { note_err(s, db, op); }

sqlite3 *store_read_begin(struct store *s)
{
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	return s->r;
}

void store_read_end(struct store *s) { lockrank_unlock(&s->rmu); }

int store_state_write(struct store *s, struct store_ckpt *v, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].sid <= 0 || v[i].model == NULL || (v[i].state == NULL && v[i].state_len > 0) ||
		    v[i].state_len > INT32_MAX || (!v[i].update && v[i].series_key == NULL)) {
			store_set_err(err, errlen, "invalid series state record %zu (sid %lld)", i,
			        (long long)v[i].sid);
			return -1;
		}
	}
	if (n == 0)
		return 0;
	if (store_state_txn_begin(s, "series state", err, errlen) < 0)
		return -1;
	int ret = -1;
	for (size_t i = 0; i < n; i++) {
		struct store_ckpt *c = &v[i];
		sqlite3_stmt *st = c->update ? s->state_upd : s->state_put;
		c->missing = 0;
		sqlite3_bind_int64(st, 1, c->sid);
		if (!c->update) {
			sqlite3_bind_text(st, 2, c->series_key, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, c->labels_json ? c->labels_json : "{}", -1,
			                  SQLITE_STATIC);
		}
		sqlite3_bind_text(st, 4, c->model, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, (int64_t)c->fingerprint);
		sqlite3_bind_int64(st, 6, c->last_ts_ms);
		sqlite3_bind_blob(st, 7, c->state_len ? c->state : "", (int)c->state_len,
		                  SQLITE_STATIC);
		if (step_done(st) < 0) {
			store_set_err(err, errlen, "unable to write the state of '%s': %s",
			        c->series_key ? c->series_key : "?", sqlite3_errmsg(s->w));
			note_err(s, s->w, "state_write");
			goto out;
		}
		if (c->update && sqlite3_changes(s->w) == 0)
			c->missing = 1;
	}
	ret = 0;
out:
	return store_state_txn_end(s, ret, "state_write", err, errlen);
}

int store_state_max_sid(struct store *s, int64_t *out)
{
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	int rc = sqlite3_step(s->state_max);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s->state_max, 0);
	else
		log_db_err(s->r, "state_max_sid");
	sqlite3_reset(s->state_max);
	lockrank_unlock(&s->rmu);
	return rc == SQLITE_ROW ? 0 : -1;
}

/* ---- maintenance ---- */

int store_integrity_check(struct store *s, char *err, size_t errlen)
{
	int ret = 0;
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->r, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
		store_set_err(err, errlen, "unable to run 'integrity_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		store_set_err(err, errlen, "unable to run 'integrity_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	const char *res = column_str(st, 0);
	if (strcmp(res, "ok") != 0) {
		store_set_err(err, errlen, "integrity check failed: %s", res);
		ret = -1;
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(s->r, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) {
		store_set_err(err, errlen, "unable to run 'foreign_key_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		store_set_err(err, errlen, "foreign key check failed: row %lld of '%s' has no parent in '%s'",
		        (long long)sqlite3_column_int64(st, 1), column_str(st, 0), column_str(st, 2));
		ret = -1;
	} else if (rc != SQLITE_DONE) {
		store_set_err(err, errlen, "unable to run 'foreign_key_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
	}
out:
	sqlite3_finalize(st);
	lockrank_unlock(&s->rmu);
	return ret;
}
