/* test_alert.c — unit tests of the alert state machine (src/alert/alert.c): every
 * transition, exact for/resolve boundaries, hysteresis, irregular gaps. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "alert/alert.h"

/* threshold 0.8, clear 0.5, for 60 s, resolve 120 s */
static const struct model_alerting P = { 0.8, 0.5, 60000, 120000, "warning" };
static const int64_t T0 = 1700000000000LL;

#define STEP(f, p, t, s) alert_fsm_step((f), (p), (t), (s), 42.0)

static void test_init_is_zero(void **st)
{
	struct alert_fsm f, z;
	memset(&f, 0xab, sizeof f);
	memset(&z, 0, sizeof z);
	alert_fsm_init(&f);
	assert_memory_equal(&f, &z, sizeof f);
	assert_int_equal(f.state, ALERT_INACTIVE);
	assert_int_equal(alert_fsm_check(&f), 0);
}

static void test_normal_stays_inactive(void **st)
{
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.1), AEV_NONE);
	assert_int_equal(STEP(&f, &P, T0 + 1000, 0.79), AEV_NONE); /* in between, inactive */
	assert_int_equal(f.state, ALERT_INACTIVE);
	assert_int_equal(f.active_at_ms, 0);
	assert_true(f.value == 42.0);
	assert_true(f.score == 0.79);
}

static void test_pending_then_firing_exact_boundary(void **st)
{
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.8), AEV_PENDING); /* >= threshold */
	assert_int_equal(f.state, ALERT_PENDING);
	assert_int_equal(f.active_at_ms, T0);
	f.alert_id = 7; /* the caller records the store id */
	assert_int_equal(STEP(&f, &P, T0 + 59999, 0.9), AEV_NONE);
	assert_int_equal(f.state, ALERT_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 60000, 0.85), AEV_FIRING); /* exactly for_ms */
	assert_int_equal(f.state, ALERT_FIRING);
	assert_int_equal(f.firing_at_ms, T0 + 60000);
	assert_int_equal(f.active_at_ms, T0);
	assert_int_equal(f.alert_id, 7);
	assert_true(f.peak_score == 0.9);
	assert_true(f.score == 0.85);
	assert_int_equal(alert_fsm_check(&f), 0);
}

static void test_pending_cancelled(void **st)
{
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.95), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 10000, 0.49), AEV_CANCELLED);
	assert_int_equal(f.state, ALERT_INACTIVE);
	assert_int_equal(f.resolved_at_ms, T0 + 10000);
	assert_int_equal(f.active_at_ms, T0); /* the ended alert stays readable */
	assert_int_equal(f.firing_at_ms, 0);
	assert_true(f.peak_score == 0.95);
}

static void test_pending_in_between_cancels(void **st)
{
	/* `for` holds only if the condition held throughout: a sample below
	 * the threshold (even above clear_threshold) ends the pending alert. */
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.9), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 30000, 0.79), AEV_CANCELLED); /* in between */
	assert_int_equal(f.state, ALERT_INACTIVE);
	assert_int_equal(f.firing_at_ms, 0);
	/* a new pending alert starts its `for` over */
	assert_int_equal(STEP(&f, &P, T0 + 40000, 0.8), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 70000, 0.85), AEV_NONE); /* 30 s < for */
	assert_int_equal(STEP(&f, &P, T0 + 100000, 0.8), AEV_FIRING);
	assert_int_equal(f.active_at_ms, T0 + 40000);
}

static void test_never_fires_below_threshold(void **st)
{
	/* A score held just below the threshold (the detector's hold value)
	 * never fires, however long; firing happens on an anomalous sample
	 * and the score it fires with is >= threshold. */
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.95), AEV_PENDING);
	for (int i = 1; i < 100; i++) {
		enum alert_event ev = STEP(&f, &P, T0 + i * 10000, 0.7);
		assert_int_equal(ev, i == 1 ? AEV_CANCELLED : AEV_NONE);
		assert_int_equal(f.state, ALERT_INACTIVE);
	}
	uint64_t x = 99;
	int64_t last_below = 0;
	int fired = 0;
	alert_fsm_init(&f);
	for (int i = 0; i < 5000; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		double s = 0.45 + 0.5 * (double)(x >> 11) / 9007199254740992.0;
		int64_t t = T0 + i * 15000;
		if (STEP(&f, &P, t, s) == AEV_FIRING) {
			fired++;
			assert_true(s >= P.threshold);
			/* anomalous on every sample since active_at, for at least for_ms */
			assert_true(last_below < f.active_at_ms);
			assert_true(f.firing_at_ms - f.active_at_ms >= P.for_ms);
		}
		if (s < P.threshold)
			last_below = t;
	}
	assert_true(fired > 0);
}

static void test_pending_nan_neither_cancels_nor_fires(void **st)
{
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.9), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 70000, NAN), AEV_NONE);
	assert_int_equal(f.state, ALERT_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 80000, 0.9), AEV_FIRING);
}

static void test_pending_normal_after_for_cancels(void **st)
{
	/* A normal sample after for_ms has elapsed cancels: firing needs a
	 * not-normal sample past the deadline. */
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.9), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 90000, 0.1), AEV_CANCELLED);
	assert_int_equal(f.state, ALERT_INACTIVE);
}

static void test_for_zero_fires_on_same_sample(void **st)
{
	struct model_alerting p = P;
	p.for_ms = 0;
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &p, T0, 0.9), AEV_FIRING);
	assert_int_equal(f.state, ALERT_FIRING);
	assert_int_equal(f.active_at_ms, T0);
	assert_int_equal(f.firing_at_ms, T0);
	p.for_ms = -5; /* negative behaves as 0 */
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &p, T0, 0.9), AEV_FIRING);
}

static void fire(struct alert_fsm *f, const struct model_alerting *p)
{
	alert_fsm_init(f);
	assert_int_equal(STEP(f, p, T0, 0.9), AEV_PENDING);
	assert_int_equal(STEP(f, p, T0 + 60000, 0.9), AEV_FIRING);
}

static void test_resolve_exact_boundary(void **st)
{
	struct alert_fsm f;
	fire(&f, &P);
	int64_t t = T0 + 100000;
	assert_int_equal(STEP(&f, &P, t, 0.2), AEV_NONE);
	assert_int_equal(f.normal_since_ms, t);
	assert_int_equal(STEP(&f, &P, t + 119999, 0.2), AEV_NONE);
	assert_int_equal(f.state, ALERT_FIRING);
	assert_int_equal(STEP(&f, &P, t + 120000, 0.2), AEV_RESOLVED);
	assert_int_equal(f.state, ALERT_INACTIVE);
	assert_int_equal(f.resolved_at_ms, t + 120000);
	assert_int_equal(f.firing_at_ms, T0 + 60000);
	assert_int_equal(f.normal_since_ms, 0);
	assert_int_equal(alert_fsm_check(&f), 0);
}

static void test_resolve_zero_first_normal(void **st)
{
	struct model_alerting p = P;
	p.resolve_ms = 0;
	struct alert_fsm f;
	fire(&f, &p);
	assert_int_equal(STEP(&f, &p, T0 + 61000, 0.6), AEV_NONE); /* in between */
	assert_int_equal(STEP(&f, &p, T0 + 62000, 0.3), AEV_RESOLVED);
	assert_int_equal(f.resolved_at_ms, T0 + 62000);
}

static void test_anomalous_resets_normal_run(void **st)
{
	struct alert_fsm f;
	fire(&f, &P);
	int64_t t = T0 + 100000;
	assert_int_equal(STEP(&f, &P, t, 0.1), AEV_NONE);
	assert_int_equal(STEP(&f, &P, t + 100000, 0.99), AEV_NONE); /* relapse */
	assert_int_equal(f.normal_since_ms, 0);
	assert_true(f.peak_score == 0.99);
	assert_int_equal(STEP(&f, &P, t + 150000, 0.1), AEV_NONE); /* new run starts */
	assert_int_equal(f.normal_since_ms, t + 150000);
	assert_int_equal(STEP(&f, &P, t + 200000, 0.1), AEV_NONE); /* 50 s < 120 s */
	assert_int_equal(STEP(&f, &P, t + 270000, 0.1), AEV_RESOLVED);
}

static void test_in_between_keeps_normal_run_but_does_not_resolve(void **st)
{
	struct alert_fsm f;
	fire(&f, &P);
	int64_t t = T0 + 100000;
	assert_int_equal(STEP(&f, &P, t, 0.1), AEV_NONE);
	assert_int_equal(STEP(&f, &P, t + 200000, 0.7), AEV_NONE); /* in between, past resolve */
	assert_int_equal(f.state, ALERT_FIRING);
	assert_int_equal(f.normal_since_ms, t); /* not cleared */
	assert_int_equal(STEP(&f, &P, t + 200001, 0.1), AEV_RESOLVED);
}

static void test_irregular_gaps(void **st)
{
	/* One anomalous sample, then a 1 h gap with another: fires at once. */
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.9), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 3600000, 0.9), AEV_FIRING);
	/* a single normal sample after a long gap: the run starts there */
	assert_int_equal(STEP(&f, &P, T0 + 7200000, 0.1), AEV_NONE);
	assert_int_equal(STEP(&f, &P, T0 + 7200000 + 86400000, 0.1), AEV_RESOLVED);
	/* and a new alert starts clean */
	f.alert_id = 99;
	assert_int_equal(STEP(&f, &P, T0 + 90000000, 0.85), AEV_PENDING);
	assert_int_equal(f.alert_id, 0);
	assert_int_equal(f.firing_at_ms, 0);
	assert_int_equal(f.resolved_at_ms, 0);
	assert_true(f.peak_score == 0.85);
	assert_int_equal(f.active_at_ms, T0 + 90000000);
}

static void test_nan_score_keeps_state(void **st)
{
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, NAN), AEV_NONE);
	assert_int_equal(f.state, ALERT_INACTIVE);
	assert_int_equal(STEP(&f, &P, T0 + 1, 0.9), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 2, NAN), AEV_NONE);
	assert_int_equal(f.state, ALERT_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 60001, NAN), AEV_NONE); /* no verdict: cannot fire */
	assert_int_equal(f.state, ALERT_PENDING);
	assert_int_equal(STEP(&f, &P, T0 + 60002, 0.9), AEV_FIRING);
	assert_int_equal(STEP(&f, &P, T0 + 60003, 0.0), AEV_NONE);
	assert_int_equal(STEP(&f, &P, T0 + 10000000, NAN), AEV_NONE);
	assert_int_equal(f.state, ALERT_FIRING);
}

static void test_overlapping_thresholds(void **st)
{
	/* clear_threshold above threshold: anomalous wins, no flapping. */
	struct model_alerting p = { 0.5, 0.9, 0, 0, "x" };
	struct alert_fsm f;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &p, T0, 0.6), AEV_FIRING);
	assert_int_equal(STEP(&f, &p, T0 + 1, 0.6), AEV_NONE);
	assert_int_equal(STEP(&f, &p, T0 + 2, 0.4), AEV_RESOLVED);
}

static void test_saturating_time(void **st)
{
	struct alert_fsm f;
	struct model_alerting p = P;
	p.for_ms = INT64_MAX;
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &p, INT64_MIN + 1, 0.9), AEV_PENDING);
	assert_int_equal(STEP(&f, &p, INT64_MAX, 0.9), AEV_FIRING); /* saturates at INT64_MAX */
	/* backwards time never counts as elapsed */
	alert_fsm_init(&f);
	assert_int_equal(STEP(&f, &P, T0, 0.9), AEV_PENDING);
	assert_int_equal(STEP(&f, &P, T0 - 1000000, 0.9), AEV_NONE);
}

static void test_checkpoint_roundtrip_and_check(void **st)
{
	struct alert_fsm f, g;
	fire(&f, &P);
	assert_int_equal(STEP(&f, &P, T0 + 70000, 0.1), AEV_NONE);
	unsigned char bytes[sizeof f];
	memcpy(bytes, &f, sizeof f);
	memcpy(&g, bytes, sizeof g);
	/* the restored copy behaves like the original */
	assert_int_equal(STEP(&g, &P, T0 + 190000, 0.1), AEV_RESOLVED);
	assert_int_equal(STEP(&f, &P, T0 + 190000, 0.1), AEV_RESOLVED);
	assert_memory_equal(&f, &g, sizeof f);

	g.state = 7;
	assert_int_equal(alert_fsm_check(&g), -1);
	/* a corrupt state byte restarts cleanly instead of crashing */
	assert_int_equal(STEP(&g, &P, T0 + 200000, 0.9), AEV_NONE);
	assert_int_equal(g.state, ALERT_INACTIVE);
	fire(&g, &P);
	g.firing_at_ms = g.active_at_ms - 1;
	assert_int_equal(alert_fsm_check(&g), -1);
	alert_fsm_init(&g);
	g.state = ALERT_PENDING;
	g.firing_at_ms = 5;
	assert_int_equal(alert_fsm_check(&g), -1);
}

static void test_restore_from_store(void **st)
{
	struct alert_fsm f;
	memset(&f, 0x55, sizeof f);
	assert_int_equal(alert_fsm_restore(&f, ALERT_INACTIVE, 1, T0, 0, 0.9), -1);
	assert_int_equal(alert_fsm_restore(&f, ALERT_FIRING, 17, T0, T0 + 60000, 0.9), 0);
	assert_int_equal(alert_fsm_check(&f), 0);
	assert_int_equal(f.alert_id, 17);
	assert_int_equal(f.normal_since_ms, 0);
	assert_int_equal(f.resolved_at_ms, 0);
	/* it continues exactly like a machine that never stopped */
	assert_int_equal(STEP(&f, &P, T0 + 100000, 0.1), AEV_NONE);
	assert_int_equal(STEP(&f, &P, T0 + 220000, 0.1), AEV_RESOLVED);
	assert_int_equal(f.alert_id, 17);
	assert_int_equal(alert_fsm_restore(&f, ALERT_PENDING, 18, T0, 12345, 0.9), 0);
	assert_int_equal(f.firing_at_ms, 0);
	assert_int_equal(STEP(&f, &P, T0 + 60000, 0.9), AEV_FIRING);
	assert_int_equal(f.alert_id, 18);
}

static void test_names(void **st)
{
	assert_string_equal(alert_state_name(ALERT_INACTIVE), "inactive");
	assert_string_equal(alert_state_name(ALERT_PENDING), "pending");
	assert_string_equal(alert_state_name(ALERT_FIRING), "firing");
	assert_string_equal(alert_state_name((enum alert_state)9), "unknown");
	assert_string_equal(alert_event_name(AEV_NONE), "none");
	assert_string_equal(alert_event_name(AEV_PENDING), "pending");
	assert_string_equal(alert_event_name(AEV_FIRING), "firing");
	assert_string_equal(alert_event_name(AEV_RESOLVED), "resolved");
	assert_string_equal(alert_event_name(AEV_CANCELLED), "cancelled");
	assert_string_equal(alert_event_name((enum alert_event)9), "unknown");
}

/* Replaying the same sample stream must give the same transitions (event
 * time only, no wall clock). */
static void test_deterministic_replay(void **st)
{
	enum alert_event a[500], b[500];
	for (int run = 0; run < 2; run++) {
		struct alert_fsm f;
		alert_fsm_init(&f);
		uint64_t x = 12345;
		int64_t t = T0;
		for (int i = 0; i < 500; i++) {
			x = x * 6364136223846793005ULL + 1442695040888963407ULL;
			double s = (double)(x >> 11) / 9007199254740992.0;
			t += 1000 + (int64_t)((x >> 40) % 90000);
			(run ? b : a)[i] = STEP(&f, &P, t, s);
		}
	}
	assert_memory_equal(a, b, sizeof a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_is_zero),
		cmocka_unit_test(test_normal_stays_inactive),
		cmocka_unit_test(test_pending_then_firing_exact_boundary),
		cmocka_unit_test(test_pending_cancelled),
		cmocka_unit_test(test_pending_in_between_cancels),
		cmocka_unit_test(test_never_fires_below_threshold),
		cmocka_unit_test(test_pending_nan_neither_cancels_nor_fires),
		cmocka_unit_test(test_pending_normal_after_for_cancels),
		cmocka_unit_test(test_for_zero_fires_on_same_sample),
		cmocka_unit_test(test_resolve_exact_boundary),
		cmocka_unit_test(test_resolve_zero_first_normal),
		cmocka_unit_test(test_anomalous_resets_normal_run),
		cmocka_unit_test(test_in_between_keeps_normal_run_but_does_not_resolve),
		cmocka_unit_test(test_irregular_gaps),
		cmocka_unit_test(test_nan_score_keeps_state),
		cmocka_unit_test(test_overlapping_thresholds),
		cmocka_unit_test(test_saturating_time),
		cmocka_unit_test(test_checkpoint_roundtrip_and_check),
		cmocka_unit_test(test_restore_from_store),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_deterministic_replay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
