/* daemon/outputs.h — what foreshockd exports to a time-series database: turns
 * the engine's outputs (engine_set_outputs: every scored sample, every
 * evaluated service step) into named series and hands them to the
 * remote_write exporter (store/rwexport.h). docs/integrations.md lists the
 * series: per scored sample foreshock_value, foreshock_anomaly_score,
 * foreshock_expected_value|lower|upper, foreshock_alert_state,
 * foreshock_forecast_value|lower|upper|lower80|upper80, and ALERTS /
 * ALERTS_FOR_STATE while an alert is active; per service step
 * foreshock_service_* (health, risk, time to breach, burn rates, signals,
 * request and error counters, a histogram of the members' scores) and the
 * service alerts.
 *
 * Ownership: borrows the exporter, which must outlive the outputs. Keeps
 * per-service counters (a small table under its own mutex). Thread-safe.
 */
#ifndef FORESHOCK_DAEMON_OUTPUTS_H
#define FORESHOCK_DAEMON_OUTPUTS_H

#include <stdint.h>

struct engine;
struct rwexport;
struct outputs;

/* fc_horizon_ms: how far ahead the exported forecast looks (15 min). */
struct outputs *outputs_new(struct rwexport *x, int64_t fc_horizon_ms);
/* Install on the engine (engine_set_outputs); outputs_detach removes it. */
void outputs_attach(struct outputs *o, struct engine *e);
void outputs_detach(struct outputs *o, struct engine *e);
void outputs_free(struct outputs *o);

#endif
