/* store/store.c — the SQLite (WAL) store's connections, opening and
 * closing, and its health (see store.h for the contract, docs/storage.md
 * for the schema and the durability argument). The schema and migrations
 * are in schema.c, alerts and their history in alerts.c, per-series state
 * in series_state.c, the service models' state in svcstate.c, backup and
 * restore in backup.c: the only files, with
 * this one, that include sqlite3.h (they share store/internal.h).
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
void store_note_err(struct store *s, sqlite3 *db, const char *op)
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
void store_note_ok(struct store *s)
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
int store_refuse_moved(struct store *s, char *err, size_t errlen)
{
	if (!atomic_load(&s->moved))
		return 0;
	atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
	errbuf_printf(err, errlen, "database file '%s' was deleted or replaced while open", s->path);
	return -1;
}

static sqlite3 *open_conn(const char *path, int flags, char *err, size_t errlen)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to open '%s': %s", path,
		        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	return db;
}

static int prepare_all(struct store *s, char *err, size_t errlen)
{
#define X(name, conn, sql) \
	if (sqlite3_prepare_v3((conn) == 'w' ? s->w : s->r, sql, -1, SQLITE_PREPARE_PERSISTENT, \
	                       &s->name, NULL) != SQLITE_OK) { \
		errbuf_printf(err, errlen, "unable to prepare statement '%s': %s", #name, \
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
		snprintf(buf, len, "%s", column_str(st, 0));
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
		errbuf_printf(err, errlen, "unable to enable WAL for '%s': %s", path,
		        mode[0] ? mode : sqlite3_errmsg(s->w));
		return -1;
	}
	/* A damaged file is refused before anything is written to it.
	 * quick_check reads every page once (no index cross-check). */
	char qc[256];
	if (store_pragma_text(s->w, "PRAGMA quick_check(1)", qc, sizeof qc) < 0) {
		errbuf_printf(err, errlen, "unable to check '%s': %s", path, sqlite3_errmsg(s->w));
		return -1;
	}
	if (strcmp(qc, "ok") != 0) {
		errbuf_printf(err, errlen, "database '%s' is corrupt: %s (restore a backup with "
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
	if (store_exec_sql(s->w, pragmas, "set pragmas", err, errlen) < 0)
		return -1;
	if (store_migrate(s->w, path, err, errlen) < 0)
		return -1;
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->w, "SELECT value FROM meta WHERE key = 'store_id'", -1, &st,
	                       NULL) != SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to read 'meta' of '%s': %s", path, sqlite3_errmsg(s->w));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		snprintf(s->id, sizeof s->id, "%s", column_str(st, 0));
	sqlite3_finalize(st);

	s->r = open_conn(path, SQLITE_OPEN_READONLY, err, errlen);
	if (s->r == NULL)
		return -1;
	if (store_exec_sql(s->r, "PRAGMA query_only=ON", "set pragmas on read connection", err,
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
		errbuf_printf(err, errlen, "invalid store path '%s': need a file", path ? path : "");
		return NULL;
	}
	struct store *s = calloc(1, sizeof *s);
	if (s == NULL || (s->path = strdup(path)) == NULL) {
		errbuf_printf(err, errlen, "out of memory opening store '%s'", path);
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
			errbuf_printf(err, errlen, "database '%s' is corrupt: %s (restore a backup with "
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
		store_note_ok(s);
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
		store_note_ok(s);
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
int store_wlock(struct store *s)
{
	return lockrank_lock(&s->wmu, LOCK_RANK_STORE_W) == 0 ? 0 : -1;
}

/* ---- maintenance ---- */

int store_integrity_check(struct store *s, char *err, size_t errlen)
{
	int ret = 0;
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(s->r, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to run 'integrity_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		errbuf_printf(err, errlen, "unable to run 'integrity_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	const char *res = column_str(st, 0);
	if (strcmp(res, "ok") != 0) {
		errbuf_printf(err, errlen, "integrity check failed: %s", res);
		ret = -1;
		goto out;
	}
	sqlite3_finalize(st);
	if (sqlite3_prepare_v2(s->r, "PRAGMA foreign_key_check", -1, &st, NULL) != SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to run 'foreign_key_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
		goto out;
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		errbuf_printf(err, errlen, "foreign key check failed: row %lld of '%s' has no parent in '%s'",
		        (long long)sqlite3_column_int64(st, 1), column_str(st, 0), column_str(st, 2));
		ret = -1;
	} else if (rc != SQLITE_DONE) {
		errbuf_printf(err, errlen, "unable to run 'foreign_key_check': %s", sqlite3_errmsg(s->r));
		ret = -1;
	}
out:
	sqlite3_finalize(st);
	lockrank_unlock(&s->rmu);
	return ret;
}
