/* store/svcstate.c — the service_state table: what each service model has
 * learnt, one opaque blob per service (store.h store_service_state_write and
 * _scan). Written every few seconds at most, so its statements are prepared
 * per call; the transaction frame and the connections come from store.c
 * through store/internal.h. */
#include "store/store.h"
#include "store/internal.h"

#include <stdint.h>

#include <sqlite3.h>

int store_service_state_write(struct store *s, const struct store_svc_state *v, size_t n,
                              char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i].name || !v[i].state || v[i].state_len == 0 || v[i].state_len > INT32_MAX) {
			store_set_err(err, errlen, "invalid service state record %zu", i);
			return -1;
		}
	if (n == 0)
		return 0;
	if (store_state_txn_begin(s, "service state", err, errlen) < 0)
		return -1;
	sqlite3 *db = store_wdb(s);
	sqlite3_stmt *st = NULL;
	int ret = 0;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO service_state (name, steps, state) "
	                           "VALUES (?1, ?2, ?3)", -1, &st, NULL) != SQLITE_OK) {
		store_set_err(err, errlen, "unable to write service state: %s", sqlite3_errmsg(db));
		store_note_err(s, db, "service_state_write");
		ret = -1;
	}
	for (size_t i = 0; i < n && ret == 0; i++) {
		sqlite3_bind_text(st, 1, v[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)v[i].steps);
		sqlite3_bind_blob(st, 3, v[i].state, (int)v[i].state_len, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			store_set_err(err, errlen, "unable to write the state of service '%s': %s",
			              v[i].name, sqlite3_errmsg(db));
			store_note_err(s, db, "service_state_write");
			ret = -1;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	return store_state_txn_end(s, ret, "service_state_write", err, errlen);
}

int store_service_state_scan(struct store *s, int (*fn)(void *ctx, const struct store_svc_state *c),
                             void *ctx)
{
	sqlite3 *db = store_read_begin(s);
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_ERROR, ret = 0;
	if (sqlite3_prepare_v2(db, "SELECT name, steps, state FROM service_state ORDER BY name", -1,
	                       &st, NULL) == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(st, 0);
			struct store_svc_state c = {
				.name = name ? name : "",
				.steps = (uint64_t)sqlite3_column_int64(st, 1),
				.state = sqlite3_column_blob(st, 2),
				.state_len = (size_t)sqlite3_column_bytes(st, 2),
			};
			if ((ret = fn(ctx, &c)) != 0)
				break;
		}
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		store_note_err(s, db, "service_state_scan");
		ret = -1;
	}
	sqlite3_finalize(st);
	store_read_end(s);
	return ret;
}
