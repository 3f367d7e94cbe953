/* store/schema.c — the store's schema: the migrations (append only), the
 * version this build writes, bringing a database up to it, and the small
 * SQL helpers that opening and migrating share (store/internal.h). */
#include "config.h"

#include <stdio.h>

#include <sqlite3.h>

#include "store/internal.h"
#include "util/log.h"

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

int store_exec_sql(sqlite3 *db, const char *sql, const char *what, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to %s: %s", what, msg ? msg : sqlite3_errmsg(db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
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
int store_migrate(sqlite3 *db, const char *path, char *err, size_t errlen)
{
	if (store_exec_sql(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
	             "create table 'schema_version'", err, errlen) < 0)
		return -1;
	for (;;) {
		if (store_exec_sql(db, "BEGIN IMMEDIATE", "begin migration", err, errlen) < 0)
			return -1;
		int version = 0;
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st,
		                       NULL) != SQLITE_OK) {
			errbuf_printf(err, errlen, "unable to read 'schema_version': %s", sqlite3_errmsg(db));
			rollback_quiet(db);
			return -1;
		}
		if (sqlite3_step(st) == SQLITE_ROW)
			version = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
		if (version > SCHEMA_VERSION) {
			errbuf_printf(err, errlen, "unsupported schema version %d in '%s' (this build knows "
			        "up to %d): written by a newer foreshock", version, path, SCHEMA_VERSION);
			rollback_quiet(db);
			return -1;
		}
		if (version == SCHEMA_VERSION)
			return store_exec_sql(db, "COMMIT", "commit migration", err, errlen);
		if (version == 0 && store_has_table(db, "alerts")) {
			/* tables without a version: not ours, or the version row is lost */
			errbuf_printf(err, errlen, "database '%s' is corrupt or not foreshock's: table "
			        "'alerts' exists but 'schema_version' has no row", path);
			rollback_quiet(db);
			return -1;
		}
		char what[64];
		snprintf(what, sizeof what, "migrate schema to version %d", version + 1);
		if (store_exec_sql(db, migrations[version], what, err, errlen) < 0) {
			rollback_quiet(db);
			return -1;
		}
		char sql[96];
		snprintf(sql, sizeof sql, "DELETE FROM schema_version; "
		         "INSERT INTO schema_version (version) VALUES (%d)", version + 1);
		if (store_exec_sql(db, sql, what, err, errlen) < 0 ||
		    store_exec_sql(db, "COMMIT", what, err, errlen) < 0) {
			rollback_quiet(db);
			return -1;
		}
		log_msg(LOG_INFO, "event=store_migrated path=%s version=%d", path, version + 1);
	}
}
