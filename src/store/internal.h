/* store/internal.h — what the files of src/store share; nothing outside
 * src/store includes it. struct store (connections, locks, health, the
 * prepared statements) is opened and closed by store.c; schema.c migrates
 * it; alerts.c, series_state.c and svcstate.c read and write through its
 * statements;
 * backup.c only uses the helpers on a plain sqlite3 handle. */
#ifndef FORESHOCK_STORE_INTERNAL_H
#define FORESHOCK_STORE_INTERNAL_H

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <time.h>

#include <sqlite3.h>

#include "util/buf.h"

#define STORE_BUSY_TIMEOUT_MS 5000

/* The schema version this build writes (the number of migrations). */
int store_schema_version(void);
/* The one-row answer of a pragma such as quick_check into buf ("" on
 * error). Returns 0 or -1. */
int store_pragma_text(sqlite3 *db, const char *sql, char *buf, size_t len);
/* 1 if db has a table of that name. */
int store_has_table(sqlite3 *db, const char *name);
/* sqlite3_exec(sql) with "unable to WHAT: reason" into err. 0 or -1. */
int store_exec_sql(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen);
/* Bring db's schema up to store_schema_version(), one transaction per step
 * (schema.c); path is for messages. 0 or -1 with err set. */
int store_migrate(sqlite3 *db, const char *path, char *err, size_t errlen);

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
	X(svc_put, 'w', "INSERT OR REPLACE INTO service_state (name, steps, state) " \
	  "VALUES (?1, ?2, ?3)") \
	X(svc_scan, 'r', "SELECT name, steps, state FROM service_state ORDER BY name") \
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

/* Count a failed operation on db (call before anything else touches db, so
 * its error code is still the failure's); a storage fault makes the store
 * unhealthy (store.c). */
void store_note_err(struct store *s, sqlite3 *db, const char *op);
/* Log a failure of an operation that has no err parameter. */
#define log_db_err(db, op) store_note_err(s, (db), (op))
/* A write committed: the fault (if any) has cleared, unless the file moved. */
void store_note_ok(struct store *s);
/* -1 with err set (and the error counted) while the file is not the one
 * that was opened: writes are refused. */
int store_refuse_moved(struct store *s, char *err, size_t errlen);
/* Take the write lock; -1 if this thread already holds it (checkpoint open). */
int store_wlock(struct store *s);
/* Take the write lock and open a transaction with synchronous=NORMAL (no
 * fsync at COMMIT, see store_ckpt_begin), for a state write (series_state.c).
 * Returns 0, or -1 with err and the lock released. */
int store_state_txn_begin(struct store *s, const char *what, char *err, size_t errlen);
/* Commit (ok == 0) or roll back the transaction of store_state_txn_begin
 * (op names it in the log), set synchronous=FULL again and release the
 * lock. Returns 0 if committed. */
int store_state_txn_end(struct store *s, int ok, const char *op, char *err, size_t errlen);

/* Roll back if a transaction is still open (ignore the result: after some
 * errors SQLite has already rolled back by itself). */
static inline void rollback_quiet(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db))
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
}

/* Run a bound write statement to completion, then reset and unbind it. */
static inline int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static inline void bind_double(sqlite3_stmt *st, int i, double v)
{
	if (isnan(v))
		sqlite3_bind_null(st, i); /* SQLite would store NaN as NULL anyway */
	else
		sqlite3_bind_double(st, i, v);
}

static inline double column_double(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL ? NAN : sqlite3_column_double(st, i);
}

static inline const char *column_str(sqlite3_stmt *st, int i)
{
	const char *t = (const char *)sqlite3_column_text(st, i);
	return t ? t : "";
}

#endif
