/* alert/alert.h — per-series alert state machine (inactive -> pending -> firing ->
 * resolved), driven by EVENT time: the timestamps of the samples, never the
 * wall clock. Replaying the same samples always gives the same transitions.
 *
 * Semantics (Prometheus-like `for:` with hysteresis), with p = model_alerting:
 *   anomalous = score >= p->threshold
 *   normal    = !anomalous && score < p->clear_threshold
 *   otherwise the sample is "in between" (also a NaN score); in between
 *   matters only to a firing alert (hysteresis), see below.
 *   INACTIVE + anomalous                    -> PENDING  (active_at = ts)
 *   PENDING  + not anomalous (NaN excepted) -> INACTIVE (AEV_CANCELLED): the
 *     condition must hold throughout `for`; hysteresis only applies once firing
 *   PENDING  + anomalous, ts - active_at >= for_ms
 *                                           -> FIRING   (firing_at = ts): an
 *     alert never fires on a sample below its threshold
 *   PENDING  + NaN score                    -> PENDING  (no verdict; cannot fire)
 *     for_ms <= 0 fires on the sample that opened the alert; that step
 *     returns AEV_FIRING only (the pending phase is implied: active_at ==
 *     firing_at).
 *   FIRING: normal_since is set by the first normal sample and cleared by an
 *     anomalous one (an in-between sample leaves it alone). A normal sample
 *     with ts - normal_since >= resolve_ms -> INACTIVE (AEV_RESOLVED,
 *     resolved_at = ts); resolve_ms <= 0 resolves on the first normal sample.
 *
 * After AEV_RESOLVED / AEV_CANCELLED the state is INACTIVE but the fields of
 * the alert that just ended (alert_id, active_at, firing_at, resolved_at,
 * peak) stay readable until the next anomalous sample opens a new alert.
 *
 * struct alert_fsm is plain data (no pointers, padding zeroed by init), so the
 * series registry can pool it and the store can checkpoint it.
 * alert_id is not touched by the machine except that a new alert resets it to
 * 0: the caller stores the id the store assigned (store_alerts_write).
 * Timestamps are Unix milliseconds (> 0: 0 means "not set" in the fields)
 * and must be strictly increasing per series (the caller drops out-of-order
 * samples); time differences saturate, never overflow.
 *
 * Dependencies: detector.h (struct model_alerting) only. No allocation, no
 * locking: one fsm belongs to one series and is stepped by one thread.
 */
#ifndef FORESHOCK_ALERT_H
#define FORESHOCK_ALERT_H

#include <stdint.h>

#include "detect/detector.h"

enum alert_state { ALERT_INACTIVE = 0, ALERT_PENDING = 1, ALERT_FIRING = 2 };

/* The fields a sample of a series with no alert open writes (value, score)
 * and reads (state) are last: a series keeps them next to its other
 * per-sample fields (engine/series.h). Checkpoints keep the fields in an
 * order of their own (engine/checkpoint.c), not this struct's bytes. */
struct alert_fsm {
	int64_t active_at_ms;    /* first anomalous sample of the current/last alert; 0 = none */
	int64_t firing_at_ms;    /* when it started firing; 0 = never fired */
	int64_t normal_since_ms; /* FIRING: first normal sample of the current normal run; 0 = none */
	double peak_score;       /* highest score since active_at */
	int64_t alert_id;        /* store id of the current/last alert (caller-owned); 0 = none */
	int64_t resolved_at_ms;  /* when the last alert resolved or was cancelled; 0 = not ended */
	double value;            /* latest sample value */
	double score;            /* latest score */
	uint8_t state;           /* enum alert_state */
};

enum alert_event {
	AEV_NONE = 0,      /* no transition */
	AEV_PENDING = 1,   /* INACTIVE -> PENDING */
	AEV_FIRING = 2,    /* PENDING (or INACTIVE when for_ms <= 0) -> FIRING */
	AEV_RESOLVED = 3,  /* FIRING -> INACTIVE */
	AEV_CANCELLED = 4  /* PENDING -> INACTIVE without firing */
};

/* Zero everything (state INACTIVE, padding included). */
void alert_fsm_init(struct alert_fsm *f);

/* Feed one scored sample at event time ts_ms; returns the transition it
 * caused (at most one per sample). p must not be NULL. */
enum alert_event alert_fsm_step(struct alert_fsm *f, const struct model_alerting *p,
                                int64_t ts_ms, double score, double value);

/* Put f into the state of an open alert read back from the store (startup
 * reconciliation: every transition is written to the store synchronously,
 * detector checkpoints only periodically, so after a crash the store is the
 * newer truth). st must be ALERT_PENDING or ALERT_FIRING; peak_score, value
 * and score start from score. Returns 0, or -1 (f untouched) for a bad st. */
int alert_fsm_restore(struct alert_fsm *f, enum alert_state st, int64_t alert_id,
                      int64_t active_at_ms, int64_t firing_at_ms, double score);

/* Sanity check of a block restored from a checkpoint: 0 if plausible, -1 if
 * the state byte or the timestamps cannot have come from alert_fsm_step(). */
int alert_fsm_check(const struct alert_fsm *f);

/* Static strings: "inactive" | "pending" | "firing"; "unknown" otherwise. */
const char *alert_state_name(enum alert_state s);
/* Static strings: "none" | "pending" | "firing" | "resolved" | "cancelled"
 * (the last four are the state names the store uses). */
const char *alert_event_name(enum alert_event e);

#endif
