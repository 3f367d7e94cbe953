/* service/service.h — service models and early-warning detectors (outage prediction).
 *
 * A service model (a YAML file in the models directory with `kind: service`) names a service's
 * signals by series selectors — request rate, errors and total, latency,
 * optional saturation — with its SLOs and capacity. The engine binds each
 * new series to at most one (service, role) with services_bind() and then
 * feeds every sample of a bound series to services_observe(), under the
 * engine lock, after the series' own detector and forecaster have run.
 *
 * The service module aggregates the member series of each role into
 * service-level signals on an event-time grid, runs its own forecasters and
 * early-warning detectors on them (error ratio against a learned baseline
 * with a count-aware test, multi-window multi-burn-rate SLO alerts,
 * overload risk combining load vs forecast and capacity, latency knee, error
 * onset, saturation), and steps an alert state machine (alert.h) per alert
 * kind. Transitions come back to the engine as struct service_transition,
 * which the engine makes durable in the store like any other alert.
 *
 * Ownership: a struct services is created by services_load_dir() and owned
 * by the engine (engine_set_services); it is only touched under the engine
 * lock, so it needs no locking of its own. It holds no pointers into the
 * registry: series are identified by their registry index.
 *
 * GSL: the count-aware error-ratio test uses GSL's incomplete beta and
 * hypergeometric functions, which report errors through GSL's error handler;
 * like the forecaster (forecast.h), it relies on the programs calling
 * gsl_set_error_handler_off() at start-up, so that a GSL failure falls back
 * to a normal approximation instead of aborting.
 */
#ifndef FORESHOCK_SERVICE_H
#define FORESHOCK_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "alert/alert.h"
#include "detect/detector.h"
#include "detect/forecast.h"
#include "util/labels.h"

struct services;
struct obuf;

enum service_role {
	ROLE_NONE = 0,
	ROLE_REQUESTS,    /* request rate (e.g. foreshock:rate:http_requests_total) */
	ROLE_ERRORS,      /* error rate (e.g. code=~"5..") */
	ROLE_TOTAL,       /* all requests, the denominator of the error ratio (may equal REQUESTS) */
	ROLE_LATENCY,     /* latency signal (e.g. foreshock:p99:...) or a gauge */
	ROLE_SATURATION,  /* CPU, in-flight requests, queue length (0..1 or with a limit) */
	ROLE_INSTANCES,   /* instance count (e.g. up{job="checkout"}, summed): capacity per instance */
	ROLE_ERROR_RATIO, /* a gauge of failed / all requests in [0, 1] (mean over members), used
	                   * when the service exports no error counts */
	ROLE__COUNT
};

/* The role mask services_bind() returns has bit (1 << role) for each role;
 * bits SERVICE_SAT_SHIFT.. carry the index of the saturation signal the series
 * matched (a model may list several, e.g. CPU and memory, each with its own
 * limit). The engine stores the mask and hands it back to services_observe()
 * unchanged; it need not look inside. */
#define SERVICE_SAT_SHIFT 16

/* Load every *.yml in dir whose top-level `kind` is `service` (other files
 * are detector models and are skipped). Returns an empty set when there are
 * none. On an invalid service model returns NULL with "FILE:LINE: reason". */
struct services *services_load_dir(const char *dir, char *err, size_t errlen);
/* Load one file (must be kind: service). */
struct services *services_load_file(const char *path, char *err, size_t errlen);
void services_free(struct services *s);
size_t services_count(const struct services *s);

/* The mask of a series that feeds no role but lies in a service's scope (the
 * model's `scope` selector, by default the labels all its signal selectors
 * share, e.g. job="checkout"): its anomalies are evidence in the service's
 * alert, and it raises no alert of its own. */
#define SERVICE_EVIDENCE (1u << ROLE_NONE)

/* Which (service, role) a new series feeds. A series may feed several roles
 * (e.g. the same request-rate series is REQUESTS and TOTAL, or a 5xx series
 * is ERRORS and part of TOTAL): the result is a bit mask of roles
 * (1 << role) for one service, or SERVICE_EVIDENCE for a series in a
 * service's scope that feeds no role. Returns 0 when the series is not bound. */
uint32_t services_bind(const struct services *s, const struct labels *l, uint32_t *svc);

/* One alert transition of a service-level alert. Alert kinds and keys
 * ("service:NAME:ALERT"): OverloadRisk:warning, OverloadRisk:critical (the
 * service's incident alert, one Alertmanager group) and, only with
 * `alerting.separate: true`, ErrorRatio, SLOBurnRate:page and
 * SLOBurnRate:ticket (each its own alert_fsm; the labels carry alertname,
 * service and severity). Strings are malloc'd and
 * owned by the receiver (the engine frees them). fsm points into the
 * services object: the engine writes the store-assigned id into
 * fsm->alert_id when ev opens a new alert. */
struct service_transition {
	struct alert_fsm *fsm;
	enum alert_event ev;
	char *key;               /* stable identity, e.g. "service:checkout:OverloadRisk" */
	char *labels_json;       /* alertname, service, severity, ... */
	char *annotations_json;  /* summary, description, evidence, time-to-breach */
	int64_t ts_ms;
	double value, score;
};

/* Feed one sample of a bound series: series_idx is its registry index,
 * key its series key (for the evidence in alert texts; may be NULL), roles
 * the mask services_bind() returned, det the series' detector result for this
 * sample (may be NULL). Appends transitions to *out (growing it with realloc;
 * *nout and *capout track it). Returns 0, or -1 on allocation failure. */
int services_observe(struct services *s, uint32_t svc, uint32_t roles, uint32_t series_idx,
                     const char *key, int64_t ts_ms, double value, const struct det_result *det,
                     struct service_transition **out, size_t *nout, size_t *capout);

/* Reload (SIGHUP): carry the state of each service present in both sets
 * (same name) from old into nw — always the alert state machines (open
 * alerts keep their store ids and end with a transition instead of staying
 * open in the store), and, when the grid step, lag, reference horizon,
 * error window and burn-rate windows are unchanged, everything learned
 * (forecasts, burn-rate counters, error baseline, members). Call under the
 * engine lock, before services_free(old). Either may be NULL. */
void services_adopt(struct services *nw, struct services *old);

/* Start-up: reopen a service alert read back from the store as open (key
 * as in service_transition.key, st ALERT_PENDING or ALERT_FIRING), so that
 * it resolves with a transition when the data say so. Returns 0, or -1 when
 * no loaded service has that alert (the model was removed: the caller
 * should end it in the store). */
int services_restore_alert(struct services *s, const char *key, enum alert_state st,
                           int64_t alert_id, int64_t active_at_ms, int64_t firing_at_ms,
                           double score);

/* ---- persistence ----
 * What a service has learnt (forecasters, error-ratio baseline, burn-rate
 * counters, daily profile, trends, the pre-incident baseline, evidence, the
 * event-time grid) as an opaque, versioned blob the engine checkpoints in
 * the store. Not in it: the members (which series feed the service and their
 * last values; they come back with their next samples, so the grid step open
 * at the crash is lost) and the alert state machines (the store's open
 * alerts are the truth: services_restore_alert). */

/* If service svc evaluated a grid step since its state was last taken, a
 * malloc'd copy of its state into *blob and *len (the caller frees it) and
 * return 1; 0 if unchanged (or out of range), -1 out of memory. The service
 * then counts as saved: call services_state_unsaved() if the write fails. */
int services_state_take(struct services *s, uint32_t svc, void **blob, size_t *len);
/* The state of the service of that name was not written: take it again. */
void services_state_unsaved(struct services *s, const char *name);
/* Start-up, before services_restore_alert(): put a blob from
 * services_state_take() back into the service of that name. Returns 0 when
 * restored; 1 when no loaded service has that name; -1 when the blob was
 * written by an incompatible format or for a model whose grid, windows or
 * forecaster changed (the service keeps its fresh state). why gets the
 * reason for 1 and -1. */
int services_state_load(struct services *s, const char *name, const void *blob, size_t len,
                        char *why, size_t whylen);

/* JSON array of the services' current state (signals, forecasts, burn rates,
 * risk score and its evidence, alert states) for GET /api/v1/services. */
void services_json(const struct services *s, struct obuf *b);

/* ---- outputs (exporters) ---- */

#define SERVICE_OUT_WINDOWS 8
#define SERVICE_OUT_ALERTS 5
#define SERVICE_OUT_COMPONENTS 8
/* One service's state after an evaluated grid step, as plain values (NAN
 * where unknown). Strings point into the services object or are static:
 * valid until the set is replaced. */
struct service_output {
	const char *name;
	int64_t ts_ms, step_ms;        /* the step's event time and the grid step */
	double requests, total, errors, latency_s, saturation, instances, capacity;
	double requests_expected, requests_hi95, latency_expected_s, latency_hi95_s;
	double eta_capacity_s, eta_latency_slo_s, eta_saturation_s;
	double error_ratio, latency_threshold_s;
	double risk;
	size_t ncomp;
	const char *comp_name[SERVICE_OUT_COMPONENTS];
	double comp[SERVICE_OUT_COMPONENTS];
	size_t nwin;                   /* burn-rate windows (0 without an availability SLO) */
	struct {
		int64_t long_ms, short_ms;
		double factor, burn_long, burn_short;
		const char *action;        /* "page" or "ticket" */
	} win[SERVICE_OUT_WINDOWS];
	size_t nalerts;
	struct {
		const char *alertname, *severity;
		int state;                 /* enum alert_state */
		int64_t active_at_ms;      /* pending/firing: when it became active */
	} alert[SERVICE_OUT_ALERTS];
};
/* If service svc evaluated a grid step since the last call, fill o with its
 * state and return 1; else return 0. Call under the same lock as
 * services_observe(). */
int services_take_output(struct services *s, uint32_t svc, struct service_output *o);
/* The name of service svc (NULL if out of range), and the name of the main
 * role of a services_bind() mask: "latency", "errors", "requests",
 * "saturation", "instances", "total" (NULL for 0). */
const char *services_name(const struct services *s, uint32_t svc);
const char *services_role_name(uint32_t roles);

#endif
