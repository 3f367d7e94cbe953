/* store/store.h — the embedded SQLite store: alerts, their transition history, and
 * per-series and per-service state. Only the files of src/store that implement
 * it (store.c, schema.c, alerts.c, series_state.c, svcstate.c, backup.c)
 * include sqlite3.h.
 *
 * Layer: knows nothing about HTTP, series or detectors; callers hand it plain
 * records. Durability (see docs/storage.md): store_alerts_write() commits with
 * synchronous=FULL in WAL mode, so a transition is on disk when it returns —
 * it survives kill -9 and power loss. Checkpoints are written with
 * synchronous=NORMAL (atomic, survive kill -9, may roll back to the previous
 * checkpoint on power loss).
 *
 * Threads: every function may be called from any thread. Writes are
 * serialized on a write connection, reads (scan/history/ckpt_scan/integrity)
 * use a separate read connection, so readers never wait for a long write and
 * see the last committed state. Callbacks run with the read connection held:
 * they must not call back into the same store (deadlock); copy what they
 * need. Strings handed to callbacks are valid during the call only.
 *
 * Errors: functions that take err/errlen write a lowercase message naming
 * what failed; the others log it (log.h, level error) and return -1.
 */
#ifndef FORESHOCK_STORE_H
#define FORESHOCK_STORE_H

#include <stddef.h>
#include <stdint.h>

struct store;

/* Open (creating if needed) the database at path: quick_check, schema,
 * migrations (schema_version table), WAL, busy_timeout. Refuses a database
 * written by a newer schema, and a damaged one with "database 'PATH' is
 * corrupt: REASON". Returns NULL with a reason in err. */
struct store *store_open(const char *path, char *err, size_t errlen);
/* Final WAL checkpoint (truncate), finalize statements, close. NULL is a no-op.
 * No other call on this store may be running or follow. */
void store_close(struct store *s);

/* One alert transition. All pointers are borrowed from the caller for the
 * duration of the call. */
struct alert_rec {
	int64_t id;                   /* 0 on first write -> assigned by store_alerts_write */
	const char *series_key;       /* canonical label string name{a="b"}; required */
	const char *labels_json;      /* JSON object of the alert's labels; NULL = "{}" */
	const char *annotations_json; /* JSON object; NULL = "{}" */
	const char *state;            /* "pending" | "firing" | "resolved" | "cancelled" */
	int64_t active_at_ms, firing_at_ms, resolved_at_ms; /* 0 = not set */
	int64_t event_at_ms;          /* event time of this transition */
	double value, score;          /* NaN is stored as NULL and read back as NaN */
};

/* One transaction, synchronous=FULL: upsert each alert row (insert when
 * recs[i].id == 0, else update that id; an id no longer present is
 * re-inserted with the same id) and append one row per rec to the
 * alert_events history. Assigns recs[i].id for new alerts (and resets them to
 * 0 again if the transaction fails). Returns 0 or -1 with err. Durable when
 * it returns 0: serve a transition only after this. */
int store_alerts_write(struct store *s, struct alert_rec *recs, size_t n, char *err,
                       size_t errlen);

/* Return nonzero to stop the iteration (the scan then returns that value). */
typedef int (*store_alert_fn)(void *ctx, const struct alert_rec *rec);

/* Current row of each alert whose state is pending/firing, plus (if
 * include_ended) resolved/cancelled ones whose last event_at_ms >= since_ms;
 * ordered by active_at_ms, then id. Returns 0, -1 on error, or the callback's
 * nonzero value. */
int store_alerts_scan(struct store *s, int include_ended, int64_t since_ms, store_alert_fn fn,
                      void *ctx);

/* Transition history, one rec per event (rec.state = the event, event_at_ms,
 * value, score from the event; id, labels, annotations and active/firing/
 * resolved times from the alert's current row). Optionally for one series_key
 * (NULL = all), event time in [start_ms, end_ms], newest first, at most
 * limit rows (0 = no limit). Returns like store_alerts_scan. */
int store_alert_history(struct store *s, const char *series_key, int64_t start_ms, int64_t end_ms,
                        size_t limit, store_alert_fn fn, void *ctx);

/* Retention: delete resolved/cancelled alerts whose last event is before
 * before_ms, with all their events. Open alerts are never pruned. Returns the
 * number of alerts deleted, or -1. */
int store_alerts_prune(struct store *s, int64_t before_ms);

/* Highest alert id ever stored, pruned alerts included (0 if none), into
 * *out. For callers that pre-assign ids (so that several transitions of a new
 * alert can share one batch): start at *out + 1 and ids are never reused.
 * Returns 0 or -1. */
int store_alerts_max_id(struct store *s, int64_t *out);

/* Detector checkpoint of one series. Pointers borrowed for the call. */
struct store_ckpt {
	const char *series_key;  /* canonical label string */
	const char *labels_json; /* NULL = "{}" */
	const char *model;       /* model name */
	uint64_t fingerprint;    /* model_fingerprint(): restore only if it matches */
	int64_t last_ts_ms;      /* event time of the last sample folded into state */
	const void *state;       /* opaque bytes (detector state, alert fsm, ...) */
	size_t state_len;
	int64_t sid;             /* series id (store_state_write; scan: the row's id) */
	int update;              /* store_state_write: 1 = update state only (key, labels unused) */
	int missing;             /* store_state_write sets it: update of a sid that has no row */
};

/* Incremental state: write n series' states in one transaction, keyed by
 * sid (> 0, the caller's persistent series id). update = 0 writes the whole
 * row (insert or replace); update = 1 changes only model, fingerprint,
 * last_ts_ms and state of the existing row, and if there is none sets
 * missing = 1 and writes nothing for it (write it whole next time). Runs
 * with synchronous=NORMAL, like a snapshot: survives kill -9 when it
 * returns, may lose the last writes on power loss. Holds the write lock
 * only for this call: keep n small (a few thousand) so that alert writes
 * never wait long. Returns 0, or -1 with err (nothing written). */
int store_state_write(struct store *s, struct store_ckpt *v, size_t n, char *err, size_t errlen);
/* Highest sid in series_state (0 if none) into *out. Returns 0 or -1. */
int store_state_max_sid(struct store *s, int64_t *out);

/* What one service model has learnt (an opaque blob: service.h
 * services_state_take). Pointers borrowed for the call. */
struct store_svc_state {
	const char *name;        /* the service's name: the row's key */
	uint64_t steps;          /* grid steps evaluated (for tools and tests) */
	const void *state;
	size_t state_len;        /* > 0 */
};
/* Write (insert or replace) n services' states in one transaction, with
 * synchronous=NORMAL like store_state_write. Returns 0, or -1 with err
 * (nothing written). */
int store_service_state_write(struct store *s, const struct store_svc_state *v, size_t n,
                              char *err, size_t errlen);
/* Every stored service state, by name. Returns like store_alerts_scan. */
int store_service_state_scan(struct store *s, int (*fn)(void *ctx, const struct store_svc_state *c),
                             void *ctx);

/* Checkpoint snapshot, one transaction:
 *   store_ckpt_begin(s); store_ckpt_put(s, &c) for every series;
 *   store_ckpt_commit(s);
 * A committed snapshot replaces the previous one entirely (series not put are
 * gone); a crash or rollback leaves the previous one intact. Put each series
 * once per snapshot (no dedup: rows are appended without an index so that 1M
 * series take ~2 s). begin holds the write lock until commit/rollback: on
 * the same thread, store_alerts_write/prune/ckpt_begin fail fast instead of
 * deadlocking; other threads' writes wait (readers do not). put, commit and
 * rollback must be called on the thread that called begin. If any put fails,
 * commit rolls back and returns -1. Each returns 0 or -1. */
int store_ckpt_begin(struct store *s);
int store_ckpt_put(struct store *s, const struct store_ckpt *c);
int store_ckpt_commit(struct store *s);
int store_ckpt_rollback(struct store *s);

/* Every series of the last committed snapshot, in put order. Returns like store_alerts_scan. */
int store_ckpt_scan(struct store *s, int (*fn)(void *ctx, const struct store_ckpt *c), void *ctx);

/* ---- health ----
 * A failed write that is the storage's fault (disk full, read-only file
 * system, I/O error, corruption, lock held elsewhere past busy_timeout) makes
 * the store unhealthy; it logs `event=store_fault file=... op=... code=...
 * error=...` once, and every failed operation logs `event=store_error` with
 * the same keys and counts in store_error_count(). The next write that
 * commits makes it healthy again (`event=store_recovered`). */

/* 1 if healthy, else 0 with the fault ("op: SQLite message") copied into
 * why (may be NULL). Cheap: an atomic load, plus a copy when unhealthy. */
int store_healthy(struct store *s, char *why, size_t len);
/* Failed store operations since open. */
uint64_t store_error_count(struct store *s);
/* Call every second or so from a housekeeping thread (not while holding a
 * checkpoint open). Notices a database file deleted or replaced while open
 * (SQLITE_FCNTL_HAS_MOVED): a deleted file is written back from the open
 * copy (VACUUM INTO) and reopened, so nothing is lost; a replaced one makes
 * every later write fail until restart (it would go to a file no one reads).
 * When unhealthy, tries a tiny durable write to see whether the fault has
 * cleared. Returns 1 if healthy afterwards, else 0. */
int store_check(struct store *s);
/* Passive WAL checkpoint (automatic ones are off so that alert commits never
 * copy the WAL back). Call from a housekeeping thread every few seconds.
 * Returns 0 or -1. */
int store_maintain(struct store *s);
/* The path given to store_open, and the database's identity (meta.store_id,
 * 16 hex digits, kept by backups). Valid until store_close. */
const char *store_path(const struct store *s);
const char *store_id(const struct store *s);

/* ---- backup and restore ---- */

struct store_info {
	int version;            /* schema version */
	char id[40];            /* meta.store_id ("" before version 2) */
	int64_t alerts, open_alerts, events, series;
};
/* Copy the database at src to dst with SQLite's online backup API, as one
 * consistent snapshot even while a daemon writes src (in WAL mode the copy
 * is a reader: it never blocks the daemon). src is checked first
 * (quick_check, a foreshock schema this build knows). The copy is written to
 * dst + ".tmp", fsync'ed and renamed over dst, so dst is either the old file
 * or a complete copy; stale dst-wal/dst-shm files are removed first.
 * standalone = 1 leaves dst as a single file (rollback journal: a backup);
 * 0 keeps WAL mode (a data dir's database). The caller makes sure no process
 * has dst open. info (may be NULL) describes the copy. Returns 0 or -1. */
int store_copy(const char *src, const char *dst, int standalone, struct store_info *info,
               char *err, size_t errlen);

/* PRAGMA integrity_check plus PRAGMA foreign_key_check: 0 if clean, else -1
 * with the first problem in err. */
int store_integrity_check(struct store *s, char *err, size_t errlen);

#endif
