/* alert/alert.c — per-series alert state machine on event time (see alert.h). */
#include "alert/alert.h"

#include <math.h>
#include <string.h>

/* ts - since, saturated to [0, INT64_MAX]: a negative difference (clock went
 * backwards, which the caller should have prevented) never counts as time
 * elapsed, and huge differences cannot overflow. */
static int64_t elapsed_ms(int64_t ts, int64_t since)
{
	int64_t d;
	if (__builtin_sub_overflow(ts, since, &d))
		return ts > since ? INT64_MAX : 0;
	return d < 0 ? 0 : d;
}

void alert_fsm_init(struct alert_fsm *f)
{
	memset(f, 0, sizeof *f);
	f->state = ALERT_INACTIVE;
}

/* Open a new alert at ts: forget everything about the previous one. */
static void open_alert(struct alert_fsm *f, int64_t ts, double score)
{
	f->state = ALERT_PENDING;
	f->active_at_ms = ts;
	f->firing_at_ms = 0;
	f->normal_since_ms = 0;
	f->resolved_at_ms = 0;
	f->peak_score = score;
	f->alert_id = 0;
}

enum alert_event alert_fsm_step(struct alert_fsm *f, const struct model_alerting *p,
                                int64_t ts_ms, double score, double value)
{
	/* NaN compares false both ways: neither anomalous nor normal. */
	int anomalous = score >= p->threshold;
	int normal = !anomalous && score < p->clear_threshold;
	enum alert_event ev = AEV_NONE;

	f->value = value;
	f->score = score;

	switch ((enum alert_state)f->state) {
	case ALERT_INACTIVE:
		if (!anomalous)
			return AEV_NONE;
		open_alert(f, ts_ms, score);
		ev = AEV_PENDING;
		/* fall through: for_ms <= 0 fires on this very sample */
		/* FALLTHROUGH */
	case ALERT_PENDING:
		if (score > f->peak_score)
			f->peak_score = score;
		/* `for` means the condition held throughout: any scored sample
		 * below the threshold ends the pending alert (no hysteresis
		 * before firing), and only an anomalous sample can fire it. A
		 * NaN score (no verdict) neither cancels nor fires. */
		if (!anomalous && !isnan(score)) {
			f->state = ALERT_INACTIVE;
			f->resolved_at_ms = ts_ms;
			return AEV_CANCELLED;
		}
		if (anomalous && elapsed_ms(ts_ms, f->active_at_ms) >= p->for_ms) {
			f->state = ALERT_FIRING;
			f->firing_at_ms = ts_ms;
			f->normal_since_ms = 0;
			return AEV_FIRING;
		}
		return ev;
	case ALERT_FIRING:
		if (score > f->peak_score)
			f->peak_score = score;
		if (anomalous) {
			f->normal_since_ms = 0;
			return AEV_NONE;
		}
		if (!normal)
			return AEV_NONE; /* in between: keep firing, keep the normal run */
		if (f->normal_since_ms == 0)
			f->normal_since_ms = ts_ms;
		if (elapsed_ms(ts_ms, f->normal_since_ms) >= p->resolve_ms) {
			f->state = ALERT_INACTIVE;
			f->resolved_at_ms = ts_ms;
			f->normal_since_ms = 0;
			return AEV_RESOLVED;
		}
		return AEV_NONE;
	}
	/* Corrupt state byte (bad checkpoint): start over rather than guess. */
	alert_fsm_init(f);
	f->value = value;
	f->score = score;
	return AEV_NONE;
}

int alert_fsm_restore(struct alert_fsm *f, enum alert_state st, int64_t alert_id,
                      int64_t active_at_ms, int64_t firing_at_ms, double score)
{
	if (st != ALERT_PENDING && st != ALERT_FIRING)
		return -1;
	alert_fsm_init(f);
	f->state = (uint8_t)st;
	f->alert_id = alert_id;
	f->active_at_ms = active_at_ms;
	f->firing_at_ms = st == ALERT_FIRING ? firing_at_ms : 0;
	f->value = 0;
	f->score = score;
	f->peak_score = score;
	return 0;
}

int alert_fsm_check(const struct alert_fsm *f)
{
	switch ((enum alert_state)f->state) {
	case ALERT_INACTIVE:
		return 0;
	case ALERT_PENDING:
		return f->firing_at_ms == 0 && f->normal_since_ms == 0 ? 0 : -1;
	case ALERT_FIRING:
		if (f->firing_at_ms < f->active_at_ms)
			return -1;
		if (f->normal_since_ms != 0 && f->normal_since_ms < f->firing_at_ms)
			return -1;
		return 0;
	}
	return -1;
}

const char *alert_state_name(enum alert_state s)
{
	switch (s) {
	case ALERT_INACTIVE: return "inactive";
	case ALERT_PENDING: return "pending";
	case ALERT_FIRING: return "firing";
	}
	return "unknown";
}

const char *alert_event_name(enum alert_event e)
{
	switch (e) {
	case AEV_NONE: return "none";
	case AEV_PENDING: return "pending";
	case AEV_FIRING: return "firing";
	case AEV_RESOLVED: return "resolved";
	case AEV_CANCELLED: return "cancelled";
	}
	return "unknown";
}
