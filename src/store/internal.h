/* store/internal.h — what store.c shares with backup.c; nothing outside
 * src/store includes it. */
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

#endif
