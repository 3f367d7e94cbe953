/* store/series_state.c — per-series detector state in the store: the full
 * checkpoint (store_ckpt_begin/put/commit/rollback, one transaction that
 * replaces the previous snapshot), the incremental writes of changed
 * series (store_state_write) and the scan that restores them.
 * Statements, connections and locks: store/internal.h. */
#include "config.h"

#include <string.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/internal.h"
#include "util/lockrank.h"
#include "util/log.h"

int store_ckpt_begin(struct store *s)
{
	if (store_wlock(s) < 0) {
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
	if (store_refuse_moved(s, err, sizeof err) < 0) {
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
		store_note_err(s, s->w, "ckpt_put");
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
			store_note_ok(s);
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

/* ---- incremental series state ---- */

int store_state_txn_begin(struct store *s, const char *what, char *err, size_t errlen)
{
	if (store_wlock(s) < 0) {
		errbuf_printf(err, errlen, "unable to write %s: checkpoint open on this thread", what);
		return -1;
	}
	if (store_refuse_moved(s, err, errlen) < 0) {
		lockrank_unlock(&s->wmu);
		return -1;
	}
	if (store_exec_sql(s->w, "PRAGMA synchronous=NORMAL", "set synchronous", err, errlen) < 0 ||
	    store_exec_sql(s->w, "BEGIN IMMEDIATE", "begin state transaction", err, errlen) < 0) {
		store_note_err(s, s->w, "state_write");
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
	if (ok == 0 && store_exec_sql(s->w, "COMMIT", "commit state transaction", err, errlen) == 0) {
		ret = 0;
		store_note_ok(s);
	} else {
		if (ok == 0)
			store_note_err(s, s->w, op);
		rollback_quiet(s->w);
	}
	if (sqlite3_exec(s->w, "PRAGMA synchronous=FULL", NULL, NULL, NULL) != SQLITE_OK)
		log_db_err(s->w, "state_restore_synchronous");
	lockrank_unlock(&s->wmu);
	return ret;
}

int store_state_write(struct store *s, struct store_ckpt *v, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i].sid <= 0 || v[i].model == NULL || (v[i].state == NULL && v[i].state_len > 0) ||
		    v[i].state_len > INT32_MAX || (!v[i].update && v[i].series_key == NULL)) {
			errbuf_printf(err, errlen, "invalid series state record %zu (sid %lld)", i,
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
			errbuf_printf(err, errlen, "unable to write the state of '%s': %s",
			        c->series_key ? c->series_key : "?", sqlite3_errmsg(s->w));
			store_note_err(s, s->w, "state_write");
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
