/* datadir.h — the daemon's data directory: an exclusive lock (one foreshockd
 * per directory, and no restore under a running daemon) and a marker that
 * remembers which database the directory holds, so that a database deleted
 * between two runs is noticed instead of silently starting empty.
 *
 * Files: DIR/foreshock.lock (flock'ed while held), DIR/foreshock.id (the
 * store's meta.store_id, one line). Both are outside the `foreshock.db*`
 * glob on purpose. Layer: plain POSIX; knows nothing about SQLite.
 */
#ifndef FORESHOCK_DATADIR_H
#define FORESHOCK_DATADIR_H

#include <stddef.h>

/* Take DIR/foreshock.lock (created if missing) without waiting. Returns the
 * descriptor to keep open while the lock is needed (close() releases it), or
 * -1 with err ("data dir 'DIR' is in use by another process ..."). */
int datadir_lock(const char *dir, char *err, size_t errlen);

/* Read DIR/foreshock.id into id. Returns 1 if present, 0 if absent, -1 on
 * error (err). */
int datadir_marker_read(const char *dir, char *id, size_t len, char *err, size_t errlen);

/* Write id to DIR/foreshock.id atomically (temporary file, fsync, rename).
 * Returns 0 or -1 with err. */
int datadir_marker_write(const char *dir, const char *id, char *err, size_t errlen);

#endif
