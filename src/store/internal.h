/* store/internal.h — what store.c shares with backup.c and svcstate.c;
 * nothing outside src/store includes it. */
#ifndef FORESHOCK_STORE_INTERNAL_H
#define FORESHOCK_STORE_INTERNAL_H

#include <stddef.h>

#include <sqlite3.h>

#define STORE_BUSY_TIMEOUT_MS 5000

/* The schema version this build writes (the number of migrations). */
int store_schema_version(void);
/* snprintf into err (when err and errlen are set). */
void store_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* The one-row answer of a pragma such as quick_check into buf ("" on
 * error). Returns 0 or -1. */
int store_pragma_text(sqlite3 *db, const char *sql, char *buf, size_t len);
/* 1 if db has a table of that name. */
int store_has_table(sqlite3 *db, const char *name);

struct store;
/* Take the write lock and open a transaction with synchronous=NORMAL (no
 * fsync at COMMIT, see store_ckpt_begin), for a state write. Returns 0, or
 * -1 with err and the lock released. */
int store_state_txn_begin(struct store *s, const char *what, char *err, size_t errlen);
/* Commit (ok == 0) or roll back the transaction of store_state_txn_begin
 * (op names it in the log), set synchronous=FULL again and release the
 * lock. Returns 0 if committed. */
int store_state_txn_end(struct store *s, int ok, const char *op, char *err, size_t errlen);
/* The read-write connection (only between store_state_txn_begin and _end). */
sqlite3 *store_wdb(struct store *s);
/* Log a failed operation and count it (a storage fault makes the store
 * unhealthy), as every store function does. */
void store_note_err(struct store *s, sqlite3 *db, const char *op);
/* Lock the read-only connection and return it; store_read_end unlocks. */
sqlite3 *store_read_begin(struct store *s);
void store_read_end(struct store *s);

#endif
