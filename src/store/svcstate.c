/* store/svcstate.c — the service_state table: what each service model has
 * learnt, one opaque blob per service (store.h store_service_state_write and
 * _scan). The transaction frame is the series state's (series_state.c);
 * statements, connections and locks: store/internal.h. */
#include "config.h"

#include <stdint.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/internal.h"
#include "util/lockrank.h"

int store_service_state_write(struct store *s, const struct store_svc_state *v, size_t n,
                              char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (!v[i].name || !v[i].state || v[i].state_len == 0 || v[i].state_len > INT32_MAX) {
			errbuf_printf(err, errlen, "invalid service state record %zu", i);
			return -1;
		}
	if (n == 0)
		return 0;
	if (store_state_txn_begin(s, "service state", err, errlen) < 0)
		return -1;
	int ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		sqlite3_stmt *st = s->svc_put;
		sqlite3_bind_text(st, 1, v[i].name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)v[i].steps);
		sqlite3_bind_blob(st, 3, v[i].state, (int)v[i].state_len, SQLITE_STATIC);
		if (step_done(st) < 0) {
			errbuf_printf(err, errlen, "unable to write the state of service '%s': %s",
			              v[i].name, sqlite3_errmsg(s->w));
			store_note_err(s, s->w, "service_state_write");
			ret = -1;
		}
	}
	return store_state_txn_end(s, ret, "service_state_write", err, errlen);
}

int store_service_state_scan(struct store *s, int (*fn)(void *ctx, const struct store_svc_state *c),
                             void *ctx)
{
	lockrank_lock(&s->rmu, LOCK_RANK_STORE_R);
	sqlite3_stmt *st = s->svc_scan;
	int rc, ret = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_svc_state c = {
			.name = column_str(st, 0),
			.steps = (uint64_t)sqlite3_column_int64(st, 1),
			.state = sqlite3_column_blob(st, 2),
			.state_len = (size_t)sqlite3_column_bytes(st, 2),
		};
		if ((ret = fn(ctx, &c)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		log_db_err(s->r, "service_state_scan");
		ret = -1;
	}
	sqlite3_reset(st);
	lockrank_unlock(&s->rmu);
	return ret;
}
