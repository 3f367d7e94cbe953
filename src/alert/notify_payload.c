/* alert/notify_payload.c — what the notifier sends, as pure functions
 * (tested one by one in tests/unit/test_notify.c): an alert's startsAt and
 * endsAt, label names sanitized for Alertmanager, the JSON object of an
 * alert for Alertmanager API v2 and for webhooks, its fingerprint, and the
 * jittered backoff between retries. */
#include "config.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/notify.h"
#include "alert/notify_int.h"
#include "util/backoff.h"
#include "util/timefmt.h"

#define NOTIFY_WEBHOOK_ZERO_TIME "0001-01-01T00:00:00Z"

int notify_state_active(const char *s)
{
	return s && (!strcmp(s, "pending") || !strcmp(s, "firing"));
}

int notify_alert_times(const struct alert_rec *r, const struct notify_clock *t, int64_t *starts_ms,
                       int64_t *ends_ms)
{
	int64_t seen = t->seen_ms ? t->seen_ms : t->now_ms;
	int64_t start = r->firing_at_ms ? r->firing_at_ms
	                : r->active_at_ms ? r->active_at_ms : r->event_at_ms;
	if (start > seen)
		start = seen;
	int active = notify_state_active(r->state);
	int64_t end;
	if (active) {
		end = t->now_ms + t->valid_ms;
	} else {
		int64_t ended_seen = t->ended_seen_ms ? t->ended_seen_ms : t->now_ms;
		end = r->resolved_at_ms ? r->resolved_at_ms : r->event_at_ms;
		if (end > ended_seen)
			end = ended_seen;
		if (end < start)
			end = start;
	}
	*starts_ms = start;
	*ends_ms = end;
	return active;
}

int notify_label_name_valid(const char *s)
{
	if (!s || !(isalpha((unsigned char)*s) || *s == '_'))
		return 0;
	for (s++; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_'))
			return 0;
	return 1;
}

/* Sanitised copy of a label/annotation name: invalid characters become '_',
 * a leading digit gets a '_' prefix. NULL for an empty name or OOM. */
static char *sanitize_name(const char *s)
{
	if (!*s)
		return NULL;
	size_t n = strlen(s);
	char *o = malloc(n + 2), *p = o;
	if (!o)
		return NULL;
	if (isdigit((unsigned char)*s))
		*p++ = '_';
	for (; *s; s++)
		*p++ = (isalnum((unsigned char)*s) || *s == '_') ? *s : '_';
	*p = '\0';
	return o;
}

/* Copy a JSON object of labels or annotations as a string -> string map
 * with valid names. NULL on parse error or OOM. */
static json_t *string_map(const char *js, int add_metric)
{
	json_error_t jerr;
	json_t *in = json_loads(js && *js ? js : "{}", 0, &jerr);
	if (!in)
		return NULL;
	json_t *out = json_object();
	if (!json_is_object(in) || !out) {
		json_decref(in);
		json_decref(out);
		return NULL;
	}
	/* valid names first, so that a sanitised name never shadows a real one */
	for (int pass = 0; pass < 2; pass++) {
		const char *k;
		json_t *v;
		json_object_foreach(in, k, v)
		{
			int valid = notify_label_name_valid(k);
			if (valid != (pass == 0))
				continue;
			json_t *sv;
			if (json_is_string(v))
				sv = json_incref(v);
			else if (json_is_null(v))
				continue;
			else {
				char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
				sv = d ? json_string(d) : NULL;
				free(d);
			}
			if (!sv)
				continue;
			char *name = valid ? NULL : sanitize_name(k);
			const char *use = valid ? k : name;
			if (use && !json_object_get(out, use))
				json_object_set(out, use, sv);
			json_decref(sv);
			free(name);
		}
	}
	if (add_metric) {
		json_t *mn = json_object_get(out, "__name__");
		if (mn && !json_object_get(out, "metric"))
			json_object_set(out, "metric", mn);
	}
	json_decref(in);
	return out;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static uint64_t fnv_add(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

/* Alertmanager's model.LabelSet.Fingerprint(): FNV-1a 64 over the pairs
 * sorted by name, each name and value followed by the 0xff separator. */
static uint64_t fingerprint_obj(json_t *labels)
{
	uint64_t h = 14695981039346656037ULL;
	size_t n = json_object_size(labels);
	const char **names = malloc((n ? n : 1) * sizeof *names);
	if (!names)
		return 0;
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(labels, k, v) names[i++] = k;
	qsort(names, n, sizeof *names, cmp_str);
	static const char sep = (char)0xff;
	for (i = 0; i < n; i++) {
		const char *val = json_string_value(json_object_get(labels, names[i]));
		h = fnv_add(h, names[i], strlen(names[i]));
		h = fnv_add(h, &sep, 1);
		h = fnv_add(h, val ? val : "", val ? strlen(val) : 0);
		h = fnv_add(h, &sep, 1);
	}
	free(names);
	return h;
}

uint64_t notify_fingerprint(const char *labels_json)
{
	json_t *l = string_map(labels_json, 1);
	if (!l)
		return 0;
	uint64_t h = fingerprint_obj(l);
	json_decref(l);
	return h;
}

/* Percent-encode everything but RFC 3986 unreserved characters. */
static char *url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	char *o = malloc(strlen(s) * 3 + 1), *p = o;
	if (!o)
		return NULL;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~')
			*p++ = (char)c;
		else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return o;
}

json_t *notify_alert_obj(const struct alert_rec *r, const struct notify_clock *t,
                         const char *external_url, const struct labels *ext, int webhook)
{
	json_t *labels = string_map(r->labels_json, 1);
	/* external labels (shard, ...): the alert's own labels win, as in Prometheus */
	for (size_t i = 0; labels && ext && i < ext->n; i++)
		if (!json_object_get(labels, ext->names[i]) &&
		    json_object_set_new(labels, ext->names[i], json_string(ext->values[i])) < 0) {
			json_decref(labels);
			labels = NULL;
		}
	json_t *ann = string_map(r->annotations_json, 0);
	json_t *o = json_object();
	if (!labels || !ann || !o) {
		json_decref(labels);
		json_decref(ann);
		json_decref(o);
		return NULL;
	}
	int64_t start, end;
	int active = notify_alert_times(r, t, &start, &end);
	char sb[40], eb[40];
	time_format_rfc3339(start, sb, sizeof sb);
	time_format_rfc3339(end, eb, sizeof eb);
	if (webhook)
		json_object_set_new(o, "status", json_string(active ? "firing" : "resolved"));
	json_object_set_new(o, "labels", labels);
	json_object_set_new(o, "annotations", ann);
	json_object_set_new(o, "startsAt", json_string(sb));
	json_object_set_new(o, "endsAt",
	                    json_string(webhook && active ? NOTIFY_WEBHOOK_ZERO_TIME : eb));
	if (external_url && r->series_key) {
		char *q = url_encode(r->series_key);
		size_t n = strlen(external_url) + (q ? strlen(q) : 0) + 32;
		char *u = malloc(n);
		if (q && u) {
			snprintf(u, n, "%s/api/v1/anomalies?series=%s", external_url, q);
			json_object_set_new(o, "generatorURL", json_string(u));
		}
		free(q);
		free(u);
	}
	if (webhook) {
		char fp[24];
		snprintf(fp, sizeof fp, "%016llx", (unsigned long long)fingerprint_obj(labels));
		json_object_set_new(o, "fingerprint", json_string(fp));
	}
	return o;
}

char *notify_alert_json(const struct alert_rec *r, const struct notify_clock *t,
                        const char *external_url, const struct labels *ext, int webhook)
{
	json_t *o = notify_alert_obj(r, t, external_url, ext, webhook);
	if (!o)
		return NULL;
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

int64_t notify_backoff_ms(unsigned failures, int64_t max_ms, uint64_t rnd)
{
	return backoff_jitter_ms(failures, NOTIFY_BACKOFF_BASE_MS, max_ms, rnd);
}
