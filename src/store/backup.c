/* store/backup.c — store_copy(): online backup and restore of a store
 * database with SQLite's backup API (see store.h). */
#include "store/store.h"
#include "store/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

static int64_t count_rows(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t n = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

/* Describe a foreshock database; -1 with err if it is not one this build knows. */
static int describe(sqlite3 *db, const char *path, struct store_info *info, char *err,
                    size_t errlen)
{
	memset(info, 0, sizeof *info);
	if (!store_has_table(db, "schema_version") || !store_has_table(db, "alerts")) {
		errbuf_printf(err, errlen, "'%s' is not a foreshock database (no 'schema_version' or "
		        "'alerts' table)", path);
		return -1;
	}
	info->version = (int)count_rows(db, "SELECT max(version) FROM schema_version");
	if (info->version < 1 || info->version > store_schema_version()) {
		errbuf_printf(err, errlen, "unsupported schema version %d in '%s' (this build knows up "
		        "to %d)", info->version, path, store_schema_version());
		return -1;
	}
	if (store_has_table(db, "meta")) {
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = 'store_id'", -1, &st,
		                       NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
			snprintf(info->id, sizeof info->id, "%s", (sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : ""));
		sqlite3_finalize(st);
	}
	info->alerts = count_rows(db, "SELECT count(*) FROM alerts");
	info->open_alerts = count_rows(db, "SELECT count(*) FROM alerts WHERE state IN "
	                                   "('pending','firing')");
	info->events = count_rows(db, "SELECT count(*) FROM alert_events");
	info->series = count_rows(db, store_has_table(db, "series_state") ?
	                                  "SELECT count(*) FROM series_state" :
	                                  "SELECT count(*) FROM checkpoints");
	return 0;
}

static int fsync_path(const char *path, int dir)
{
	int fd = open(path, dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int store_copy(const char *src, const char *dst, int standalone, struct store_info *info,
               char *err, size_t errlen)
{
	struct store_info tmpinfo;
	if (!info)
		info = &tmpinfo;
	char tmp[4096], side[4200];
	if (snprintf(tmp, sizeof tmp, "%s.tmp", dst) >= (int)sizeof tmp) {
		errbuf_printf(err, errlen, "path too long: '%s'", dst);
		return -1;
	}
	sqlite3 *in = NULL, *out = NULL;
	int ret = -1;
	if (sqlite3_open_v2(src, &in, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to open '%s': %s", src,
		        in ? sqlite3_errmsg(in) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(in, STORE_BUSY_TIMEOUT_MS);
	char qc[256];
	if (store_pragma_text(in, "PRAGMA quick_check(1)", qc, sizeof qc) < 0) {
		int code = sqlite3_errcode(in);
		if (code == SQLITE_NOTADB || code == SQLITE_CORRUPT)
			errbuf_printf(err, errlen, "database '%s' is corrupt: %s", src, sqlite3_errmsg(in));
		else
			errbuf_printf(err, errlen, "unable to read '%s': %s", src, sqlite3_errmsg(in));
		goto out;
	}
	if (strcmp(qc, "ok") != 0) {
		errbuf_printf(err, errlen, "database '%s' is corrupt: %s", src, qc);
		goto out;
	}
	if (describe(in, src, info, err, errlen) < 0)
		goto out;
	/* no stale journal of an earlier attempt (or of a deleted dst) may be
	 * applied to the new file */
	unlink(tmp);
	snprintf(side, sizeof side, "%s-wal", tmp);
	unlink(side);
	snprintf(side, sizeof side, "%s-journal", tmp);
	unlink(side);
	if (sqlite3_open_v2(tmp, &out, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to create '%s': %s", tmp,
		        out ? sqlite3_errmsg(out) : "out of memory");
		goto out;
	}
	/* One step of all pages: one read transaction on src, so the copy is a
	 * single consistent snapshot (stepping in slices would restart whenever
	 * the daemon commits in between). */
	sqlite3_backup *b = sqlite3_backup_init(out, "main", in, "main");
	if (!b) {
		errbuf_printf(err, errlen, "unable to back up '%s': %s", src, sqlite3_errmsg(out));
		goto out;
	}
	int rc;
	while ((rc = sqlite3_backup_step(b, -1)) == SQLITE_BUSY || rc == SQLITE_LOCKED)
		sqlite3_sleep(50);
	sqlite3_backup_finish(b);
	if (rc != SQLITE_DONE) {
		errbuf_printf(err, errlen, "unable to copy '%s' to '%s': %s", src, tmp, sqlite3_errstr(rc));
		goto out;
	}
	char mode[32];
	if (store_pragma_text(out, standalone ? "PRAGMA journal_mode=DELETE" : "PRAGMA journal_mode=WAL",
	                mode, sizeof mode) < 0 || strcmp(mode, standalone ? "delete" : "wal") != 0) {
		errbuf_printf(err, errlen, "unable to set the journal mode of '%s': %s", tmp,
		        sqlite3_errmsg(out));
		goto out;
	}
	if (sqlite3_close(out) != SQLITE_OK) {
		errbuf_printf(err, errlen, "unable to close '%s': %s", tmp, sqlite3_errmsg(out));
		goto out;
	}
	out = NULL;
	snprintf(side, sizeof side, "%s-wal", dst);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", dst);
	unlink(side);
	if (fsync_path(tmp, 0) < 0 || rename(tmp, dst) < 0) {
		errbuf_printf(err, errlen, "unable to write '%s': %s", dst, strerror(errno));
		goto out;
	}
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", dst);
	char *slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	fsync_path(slash ? dir : ".", 1);
	ret = 0;
out:
	sqlite3_close(out);
	sqlite3_close(in);
	if (ret < 0)
		unlink(tmp);
	return ret;
}
