/* store/alerts.c — alerts and their history in the store: writing a batch
 * of transitions in one transaction (store_alerts_write), the scans the
 * engine restores from and the API serves, pruning, and the last alert id.
 * Statements, connections and locks: store/internal.h. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "store/store.h"
#include "store/internal.h"
#include "util/lockrank.h"
#include "util/log.h"

static int state_valid(const char *state)
{
	return state && (strcmp(state, "pending") == 0 || strcmp(state, "firing") == 0 ||
	                 strcmp(state, "resolved") == 0 || strcmp(state, "cancelled") == 0);
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
	errbuf_printf(err, errlen, "unable to %s '%s': %s", what, r->series_key, sqlite3_errmsg(s->w));
	return -1;
}

int store_alerts_write(struct store *s, struct alert_rec *recs, size_t n, char *err,
                       size_t errlen)
{
	for (size_t i = 0; i < n; i++) {
		if (recs[i].series_key == NULL || recs[i].series_key[0] == '\0') {
			errbuf_printf(err, errlen, "missing series_key for alert record %zu", i);
			return -1;
		}
		if (!state_valid(recs[i].state)) {
			errbuf_printf(err, errlen, "invalid alert state '%s' for '%s'",
			        recs[i].state ? recs[i].state : "(null)", recs[i].series_key);
			return -1;
		}
		if (recs[i].id < 0) {
			errbuf_printf(err, errlen, "invalid alert id %lld for '%s'", (long long)recs[i].id,
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
		errbuf_printf(err, errlen, "out of memory writing %zu alert records", n);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		was_new[i] = recs[i].id == 0;

	int ret = -1;
	if (store_wlock(s) < 0) {
		errbuf_printf(err, errlen, "unable to write alerts: checkpoint open on this thread");
		goto unlocked;
	}
	if (store_refuse_moved(s, err, errlen) < 0)
		goto out;
	if (store_exec_sql(s->w, "BEGIN IMMEDIATE", "begin alert transaction", err, errlen) < 0) {
		store_note_err(s, s->w, "alerts_write");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (write_one(s, &recs[i], err, errlen) < 0) {
			store_note_err(s, s->w, "alerts_write");
			rollback_quiet(s->w);
			goto out;
		}
	}
	/* synchronous=FULL: COMMIT returns after the WAL is fsync'ed. */
	if (store_exec_sql(s->w, "COMMIT", "commit alert transaction", err, errlen) < 0) {
		store_note_err(s, s->w, "alerts_write");
		rollback_quiet(s->w);
		goto out;
	}
	ret = 0;
	store_note_ok(s);
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
	if (store_wlock(s) < 0) {
		log_msg(LOG_ERROR, "event=store_error op=alerts_prune "
		        "error=\"checkpoint open on this thread\"");
		return -1;
	}
	char err[256];
	if (store_refuse_moved(s, err, sizeof err) < 0) {
		log_msg(LOG_ERROR, "event=store_error file=%s op=alerts_prune error=\"%s\"", s->path, err);
		goto out;
	}
	if (store_exec_sql(s->w, "BEGIN IMMEDIATE", "begin prune", err, sizeof err) < 0) {
		store_note_err(s, s->w, "alerts_prune");
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
	store_note_ok(s);
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
