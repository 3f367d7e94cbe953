/* alert/notify.h — push alerts to Prometheus Alertmanager (API v2) and to generic
 * JSON webhooks.
 *
 * The notifier is a background thread that reads the store (store.h): it
 * never touches the ingest path. Every poll it scans the store's current
 * alert rows, notices what changed, and delivers:
 *   - Alertmanager: every active alert again each resend interval (and at
 *     once on a change), endsAt = now + 4 × resend interval while firing,
 *     the resolved time once resolved (kept for resolved_resend); all alerts
 *     of one target in one POST /api/v2/alerts (at most 1000 per request).
 *   - webhook: one JSON document in Alertmanager's webhook format per change
 *     (new firing, resolved), at least once.
 * Failures are retried per target with jittered exponential backoff up to
 * max_backoff. Because the state is in the store, nothing is lost while a
 * receiver is down: whatever is firing or recently resolved is sent when it
 * comes back. See docs/integrations.md.
 *
 * Layer: depends on store, selfstats, yaml_tree, timefmt, log; libcurl and
 * jansson stay inside notify.c. Only the configured URLs are contacted
 * (http/https, no redirects, no proxy from the environment).
 */
#ifndef FORESHOCK_NOTIFY_H
#define FORESHOCK_NOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "util/labels.h"

struct ynode;
struct selfstats;

enum notify_kind { NOTIFY_ALERTMANAGER = 1, NOTIFY_WEBHOOK = 2 };

struct notify_target {
	char *url;               /* Alertmanager base URL (http://127.0.0.1:9093; /api/v2/alerts
	                          * appended unless present) or the full webhook URL; owned */
	int kind;                /* enum notify_kind */
	int64_t timeout_ms;      /* whole request; default 10 s */
	char *bearer_token_file; /* optional; read at start, sent as Authorization: Bearer; owned */
	char **headers;          /* optional extra "Name: value" lines, nheaders of them; owned */
	size_t nheaders;
};

struct notify_config {
	struct notify_target *targets; /* owned array */
	size_t ntargets;
	int64_t resend_interval_ms;    /* 1 m: Alertmanager resend period; endsAt = now + 4 × this */
	int64_t resolved_resend_ms;    /* 15 m: keep sending a resolved alert this long (wall clock) */
	int64_t poll_ms;               /* 1 s: store scan period */
	int64_t max_backoff_ms;        /* 1 m: retry delay cap */
	int send_pending;              /* 0: pending alerts are not sent (as in Prometheus) */
	char *external_url;            /* base of generatorURL; NULL = the daemon's external_url; owned */
	struct labels external_labels; /* added to every alert's labels unless it has that label
	                                * (the daemon's external_labels, set by foreshockd); owned */
};

/* Defaults: no targets, the intervals above. */
void notify_config_init(struct notify_config *c);
/* Parse the `notify:` section (a yaml_tree map) into c (initialised with
 * notify_config_init). Unknown keys are rejected. Returns 0, or -1 with
 * "FILE:LINE: reason" in err (c may then hold partial data: free it). */
int notify_config_parse(struct notify_config *c, const struct ynode *section, char *err,
                        size_t errlen);
/* Free everything c owns and re-initialise it. */
void notify_config_free(struct notify_config *c);

/* ---- pure helpers (exposed for tests) ---------------------------------- */

/* Wall-clock facts the notifier adds to a store row when it builds a payload. */
struct notify_clock {
	int64_t now_ms;        /* wall clock now */
	int64_t seen_ms;       /* wall clock when the notifier first saw the alert active (0 = now) */
	int64_t ended_seen_ms; /* wall clock when it first saw it resolved/cancelled (0 = now) */
	int64_t valid_ms;      /* active alerts: endsAt = now + valid_ms (4 × resend interval) */
};

/* startsAt and endsAt (ms) of an alert as sent to Alertmanager:
 *   startsAt = firing_at (active_at if not firing yet), but never later than
 *              seen_ms (event times in the wall clock's future are clamped);
 *   active:   endsAt = now + valid_ms;
 *   ended:    endsAt = resolved_at (event_at if unset), clamped to
 *              [startsAt, ended_seen_ms] so that Alertmanager resolves it at
 *              once and never rejects it (end before start).
 * Returns 1 if the alert is active (pending/firing), 0 if ended. */
int notify_alert_times(const struct alert_rec *r, const struct notify_clock *t, int64_t *starts_ms,
                       int64_t *ends_ms);

/* Alertmanager label name rules: [a-zA-Z_][a-zA-Z0-9_]*. */
int notify_label_name_valid(const char *s);

/* One alert as JSON (compact, malloc'd; caller frees; NULL on OOM/bad row):
 * webhook = 0: a postableAlert {labels, annotations, startsAt, endsAt, generatorURL};
 * webhook = 1: an alert of Alertmanager's webhook payload (adds status and
 *              fingerprint; endsAt of an active alert is 0001-01-01T00:00:00Z).
 * Labels come from labels_json (invalid names sanitised, non-strings turned
 * into strings, `metric` added as a copy of `__name__` unless present),
 * then each external label the alert does not have already (ext may be NULL),
 * annotations from annotations_json. external_url may be NULL (no generatorURL). */
char *notify_alert_json(const struct alert_rec *r, const struct notify_clock *t,
                        const char *external_url, const struct labels *ext, int webhook);

/* Alertmanager's fingerprint of a label set (FNV-1a 64 of the sorted pairs),
 * of the labels notify_alert_json would send. */
uint64_t notify_fingerprint(const char *labels_json);

/* Retry delay after `failures` consecutive failures (>= 1): 1 s doubled each
 * time, capped at max_ms, then jittered into [d/2, d] using rnd. */
int64_t notify_backoff_ms(unsigned failures, int64_t max_ms, uint64_t rnd);

/* ---- the notifier thread ------------------------------------------------ */

struct notifier;

/* Start the thread. c is copied (the caller keeps ownership of c); store and
 * stats are borrowed and must outlive notifier_stop. stats may be NULL.
 * Bearer token files are read here. Returns NULL with err. With no targets it
 * returns a valid notifier that does nothing. */
struct notifier *notifier_start(const struct notify_config *c, struct store *store,
                                struct selfstats *stats, char *err, size_t errlen);
/* Wake the thread now (e.g. after an alert transition). Thread-safe, cheap. */
void notifier_kick(struct notifier *n);
/* Stop and join: waits for the current request to abort (about a second at
 * most), then frees n. NULL is a no-op. */
void notifier_stop(struct notifier *n);

/* Per-target counters for /metrics. */
struct notify_target_stats {
	const char *url;         /* the configured URL; valid until notifier_stop */
	int kind;                /* enum notify_kind */
	uint64_t alerts_sent;    /* alerts delivered (counted once per request they were in) */
	uint64_t alerts_failed;  /* alerts in requests that failed (each attempt) */
	uint64_t requests_sent, requests_failed;
	uint64_t dropped;        /* webhook events dropped because the queue was full */
	uint64_t queue_length;   /* alerts waiting (webhook) / active alerts (Alertmanager) */
	int64_t last_success_ms; /* wall clock of the last delivered request, 0 = never */
	unsigned consecutive_failures;
};
size_t notifier_ntargets(const struct notifier *n);
/* Copy the counters of target i; returns 0, or -1 if i is out of range. */
int notifier_target_stats(struct notifier *n, size_t i, struct notify_target_stats *out);

#endif
