/* alert/notify_int.h — internal to src/alert/notify*.c: what the notifier
 * (notify.c) takes from the configuration (notify_config.c) and the payload
 * code (notify_payload.c). Include after alert/notify.h. */
#ifndef FORESHOCK_ALERT_NOTIFY_INT_H
#define FORESHOCK_ALERT_NOTIFY_INT_H

#include <jansson.h>

#define NOTIFY_BACKOFF_BASE_MS 1000  /* first retry delay; also the floor of max_backoff */

/* 1 for "pending" and "firing". */
int notify_state_active(const char *s);
/* The JSON object of one alert as Alertmanager (webhook 0) or a webhook
 * (webhook 1) wants it; NULL on allocation failure. notify_alert_json()
 * is its serialized form. */
json_t *notify_alert_obj(const struct alert_rec *r, const struct notify_clock *t,
                         const char *external_url, const struct labels *ext, int webhook);

#endif
