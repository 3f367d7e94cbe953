/* tests/unit/service_driver.h — a small driver for the service tests: feed
 * samples to a `struct services`, collect the transitions it emits. The
 * driver owns the services and the transitions; drv_free releases both;
 * drv_find finds the first transition of a key.
 * Include after <cmocka.h> and "service/internal.h".
 */
#ifndef FORESHOCK_TEST_SERVICE_DRIVER_H
#define FORESHOCK_TEST_SERVICE_DRIVER_H

struct drv {
	struct services *s;
	struct service_transition *t;
	size_t n, cap;
};

static inline void drv_feed(struct drv *d, uint32_t roles, uint32_t idx, int64_t ts, double v)
{
	assert_int_equal(services_observe(d->s, 0, roles, idx, NULL, ts, v, NULL, &d->t, &d->n, &d->cap), 0);
}

/* The first transition of key with event ev, or NULL. */
static inline const struct service_transition *drv_find(const struct drv *d, const char *key,
                                                        enum alert_event ev)
{
	for (size_t i = 0; i < d->n; i++)
		if (!strcmp(d->t[i].key, key) && d->t[i].ev == ev)
			return &d->t[i];
	return NULL;
}

static inline void drv_free(struct drv *d)
{
	for (size_t i = 0; i < d->n; i++) {
		free(d->t[i].key);
		free(d->t[i].labels_json);
		free(d->t[i].annotations_json);
	}
	free(d->t);
	services_free(d->s);
}

#endif
