/* alert/notify.c — the alert notifier: a background thread that scans the store
 * for alert changes and pushes them to Alertmanager (POST /api/v2/alerts) and
 * to JSON webhooks, with per-target retries and jittered exponential backoff.
 *
 * Shape of one loop iteration (notifier_main):
 *   poll_store()   scan the store (open alerts + recently ended ones), merge
 *                  into `entries` (sorted by alert id), note changes: mark
 *                  Alertmanager targets dirty, queue webhook events;
 *   send_*()       for each target that is due, one round of POSTs;
 *   wait           poll interval, or until notifier_kick / notifier_stop.
 * Everything except the stats and the kick/stop flags is owned by the
 * notifier thread; the mutex only guards those. The configuration it starts
 * from is parsed in notify_config.c; the JSON it sends is built in
 * notify_payload.c.
 */
#include "config.h"

#include "alert/notify.h"
#include "alert/notify_int.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "util/log.h"
#include "util/redact.h"
#include "util/selfstats.h"

#define NOTIFY_BATCH_MAX 1000        /* alerts per POST */
#define NOTIFY_QUEUE_MAX 10000       /* webhook events waiting per target */
#define NOTIFY_RESP_MAX 2048         /* response bytes kept for error logs */

/* ======================================================================
 * The notifier
 * ====================================================================== */

/* One alert as the notifier last saw it in the store (all strings owned). */
struct entry {
	int64_t id;
	char *series_key, *labels_json, *annotations_json;
	char state[16];
	int64_t active_at_ms, firing_at_ms, resolved_at_ms, event_at_ms;
	double value, score;
	int64_t seen_ms;       /* wall clock: first seen active (or first seen at all) */
	int64_t ended_seen_ms; /* wall clock: first seen ended; 0 while active */
	int sent;              /* it has been (or is being) announced as active */
	int present;           /* scratch: in the current scan */
};

struct wh_event {
	int64_t id;
	int firing;
	json_t *alert; /* webhook alert object (owned reference) */
};

struct target {
	struct notify_target cfg; /* shallow copy; strings owned by the notifier */
	char *post_url;           /* URL actually posted to */
	CURL *curl;
	struct curl_slist *hdr;
	char errbuf[CURL_ERROR_SIZE];
	char resp[NOTIFY_RESP_MAX];
	size_t resp_len;
	int dirty;                /* Alertmanager: something changed since the last delivery */
	int64_t last_ok_ms;       /* wall clock of the last delivery (Alertmanager resend timer) */
	int64_t next_try_ms;      /* backoff: no attempt before this (wall clock) */
	unsigned failures;
	struct wh_event *q;       /* webhook FIFO: q[qhead .. qhead+qlen) */
	size_t qhead, qlen, qcap;
	struct notify_target_stats st; /* guarded by notifier.mu */
};

struct notifier {
	struct notify_config cfg; /* deep copy of external_url and intervals */
	struct store *store;
	struct selfstats *stats;
	struct target *targets;
	size_t ntargets;
	struct entry *entries; /* sorted by id */
	size_t nentries;
	int64_t event_hwm;     /* highest event_at_ms seen in a scan; INT64_MAX = none yet */
	int first_scan;
	uint64_t rng;
	pthread_t tid;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int kicked;
	_Atomic int stop;
};

static int64_t wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t rng_next(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static void entry_free(struct entry *e)
{
	free(e->series_key);
	free(e->labels_json);
	free(e->annotations_json);
}

static void entry_rec(const struct entry *e, struct alert_rec *r)
{
	memset(r, 0, sizeof *r);
	r->id = e->id;
	r->series_key = e->series_key;
	r->labels_json = e->labels_json;
	r->annotations_json = e->annotations_json;
	r->state = e->state;
	r->active_at_ms = e->active_at_ms;
	r->firing_at_ms = e->firing_at_ms;
	r->resolved_at_ms = e->resolved_at_ms;
	r->event_at_ms = e->event_at_ms;
	r->value = e->value;
	r->score = e->score;
}

static struct notify_clock entry_clock(const struct notifier *n, const struct entry *e, int64_t now)
{
	struct notify_clock c = { .now_ms = now,
		                  .seen_ms = e->seen_ms,
		                  .ended_seen_ms = e->ended_seen_ms,
		                  .valid_ms = 4 * n->cfg.resend_interval_ms };
	return c;
}

/* Does this entry count as "active" for receivers? */
static int entry_eligible(const struct notifier *n, const struct entry *e)
{
	if (!strcmp(e->state, "firing"))
		return 1;
	return n->cfg.send_pending && !strcmp(e->state, "pending");
}

/* Is a resolved entry still inside its resend window? */
static int entry_resolved_live(const struct notifier *n, const struct entry *e, int64_t now)
{
	return e->sent && e->ended_seen_ms && now - e->ended_seen_ms <= n->cfg.resolved_resend_ms;
}

/* ---- store scan -------------------------------------------------------- */

struct scan_rows {
	struct entry *v;
	size_t n, cap;
	int oom;
	const struct entry *old; /* the notifier's entries, sorted by id */
	size_t nold;
};

static char *dup0(const char *s)
{
	return strdup(s ? s : "");
}

static int cmp_entry(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;
	return x->id < y->id ? -1 : x->id > y->id;
}

static int scan_cb(void *ctx, const struct alert_rec *r)
{
	struct scan_rows *rows = ctx;
	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 64;
		struct entry *v = realloc(rows->v, cap * sizeof *v);
		if (!v) {
			rows->oom = 1;
			return 1;
		}
		rows->v = v;
		rows->cap = cap;
	}
	struct entry *e = &rows->v[rows->n];
	memset(e, 0, sizeof *e);
	e->id = r->id;
	snprintf(e->state, sizeof e->state, "%s", r->state ? r->state : "");
	e->event_at_ms = r->event_at_ms;
	/* unchanged since the last scan (the common case): no copy, merge keeps the old entry */
	const struct entry *o =
		rows->nold ? bsearch(e, rows->old, rows->nold, sizeof *e, cmp_entry) : NULL;
	if (o && !strcmp(o->state, e->state) && o->event_at_ms == e->event_at_ms) {
		rows->n++;
		return 0;
	}
	e->series_key = dup0(r->series_key);
	e->labels_json = dup0(r->labels_json ? r->labels_json : "{}");
	e->annotations_json = dup0(r->annotations_json ? r->annotations_json : "{}");
	if (!e->series_key || !e->labels_json || !e->annotations_json) {
		entry_free(e);
		rows->oom = 1;
		return 1;
	}
	e->active_at_ms = r->active_at_ms;
	e->firing_at_ms = r->firing_at_ms;
	e->resolved_at_ms = r->resolved_at_ms;
	e->value = r->value;
	e->score = r->score;
	rows->n++;
	return 0;
}

static void stats_lock(struct notifier *n)
{
	pthread_mutex_lock(&n->mu);
}

static void stats_unlock(struct notifier *n)
{
	pthread_mutex_unlock(&n->mu);
}

/* A sendable change of e: mark Alertmanager targets dirty and queue a
 * webhook event (status from the entry's current state). */
static void announce(struct notifier *n, struct entry *e, int64_t now)
{
	struct alert_rec r;
	entry_rec(e, &r);
	struct notify_clock c = entry_clock(n, e, now);
	json_t *wa = NULL;
	int firing = notify_state_active(e->state);
	for (size_t i = 0; i < n->ntargets; i++) {
		struct target *t = &n->targets[i];
		if (t->cfg.kind == NOTIFY_ALERTMANAGER) {
			t->dirty = 1;
			continue;
		}
		if (!wa && !(wa = notify_alert_obj(&r, &c, n->cfg.external_url, &n->cfg.external_labels, 1))) {
			log_msg(LOG_ERROR, "event=notify_failed target=%s error=\"cannot build alert %lld\"",
			        t->cfg.url, (long long)e->id);
			continue;
		}
		if (t->qlen == NOTIFY_QUEUE_MAX) { /* drop the oldest */
			json_decref(t->q[t->qhead].alert);
			t->qhead = (t->qhead + 1) % t->qcap;
			t->qlen--;
			stats_lock(n);
			t->st.dropped++;
			stats_unlock(n);
			log_msg(LOG_WARN, "event=notify_dropped target=%s reason=queue_full limit=%d",
			        t->cfg.url, NOTIFY_QUEUE_MAX);
		}
		if (t->qlen == t->qcap) {
			size_t cap = t->qcap ? t->qcap * 2 : 16;
			struct wh_event *q = malloc(cap * sizeof *q);
			if (!q)
				continue;
			for (size_t k = 0; k < t->qlen; k++)
				q[k] = t->q[(t->qhead + k) % t->qcap];
			free(t->q);
			t->q = q;
			t->qcap = cap;
			t->qhead = 0;
		}
		t->q[(t->qhead + t->qlen) % t->qcap] =
			(struct wh_event){ .id = e->id, .firing = firing, .alert = json_incref(wa) };
		t->qlen++;
	}
	json_decref(wa);
}

static void mark_alertmanagers(struct notifier *n)
{
	for (size_t i = 0; i < n->ntargets; i++)
		if (n->targets[i].cfg.kind == NOTIFY_ALERTMANAGER)
			n->targets[i].dirty = 1;
}

/* Fold a fresh row into the old entry with the same id (or a new one, old
 * NULL). Takes ownership of row's strings. */
static void merge_row(struct notifier *n, struct entry *dst, struct entry *old, struct entry *row,
                      int64_t now, int64_t recent_since)
{
	int row_active = notify_state_active(row->state);
	if (old && !strcmp(old->state, row->state) && old->event_at_ms == row->event_at_ms) {
		entry_free(row);
		*dst = *old;
		return;
	}
	*dst = *row;
	if (!old) {
		dst->seen_ms = now;
		dst->ended_seen_ms = row_active ? 0 : now;
		if (row_active) {
			if (entry_eligible(n, dst)) {
				dst->sent = 1;
				announce(n, dst, now);
			}
		} else {
			/* ended before we ever saw it active: announce the resolution if it
			 * is recent (first scan after start, or newer than what we knew) and
			 * it would have been sent while active */
			int would = dst->firing_at_ms != 0 || n->cfg.send_pending;
			if (would && dst->event_at_ms >= recent_since) {
				dst->sent = 1;
				announce(n, dst, now);
			}
		}
		return;
	}
	int was_ended = old->ended_seen_ms != 0;
	int was_eligible = !was_ended && entry_eligible(n, old);
	int same_state = !strcmp(old->state, row->state);
	dst->seen_ms = old->seen_ms;
	dst->sent = old->sent;
	dst->ended_seen_ms = row_active ? 0 : (was_ended ? old->ended_seen_ms : now);
	entry_free(old);
	if (row_active) {
		if (entry_eligible(n, dst)) {
			dst->sent = 1;
			if (!was_eligible || !same_state)
				announce(n, dst, now); /* new firing (or pending -> firing with send_pending) */
			else
				mark_alertmanagers(n); /* same state, new details: refresh Alertmanager only */
		}
	} else if (dst->sent && !was_ended) {
		announce(n, dst, now); /* resolved / cancelled */
	}
}

/* Scan the store and merge into n->entries. */
static void poll_store(struct notifier *n, int64_t now)
{
	/* Which ended alerts to read: those whose last event is within
	 * resolved_resend of the newest event time seen so far (event time, so
	 * that replayed data works), and any older than an open alert we track.
	 * Until the store has shown us any alert, everything: it is empty or this
	 * is the first scan. */
	int known = n->event_hwm != INT64_MAX;
	int64_t base = known && n->event_hwm < now ? n->event_hwm : now;
	int64_t since = known ? base - n->cfg.resolved_resend_ms : INT64_MIN;
	/* which ended alerts we did not see active still deserve a "resolved":
	 * after a start, those ended within resolved_resend of the wall clock;
	 * later, those newer than what we knew (fired and resolved between polls) */
	int64_t recent_since = n->first_scan ? now - n->cfg.resolved_resend_ms : since;
	for (size_t i = 0; i < n->nentries; i++)
		if (!n->entries[i].ended_seen_ms && n->entries[i].event_at_ms < since)
			since = n->entries[i].event_at_ms;
	struct scan_rows rows = { .old = n->entries, .nold = n->nentries };
	int rc = store_alerts_scan(n->store, 1, since, scan_cb, &rows);
	if (rc != 0 || rows.oom) {
		log_msg(LOG_ERROR, "event=notify_scan_failed error=\"%s\"",
		        rows.oom ? "out of memory" : "store scan failed");
		for (size_t i = 0; i < rows.n; i++)
			entry_free(&rows.v[i]);
		free(rows.v);
		return;
	}
	if (rows.n)
		qsort(rows.v, rows.n, sizeof *rows.v, cmp_entry);
	struct entry *out = malloc((rows.n + n->nentries + 1) * sizeof *out);
	if (!out) {
		for (size_t i = 0; i < rows.n; i++)
			entry_free(&rows.v[i]);
		free(rows.v);
		return;
	}
	size_t i = 0, j = 0, k = 0;
	int64_t hwm = n->event_hwm == INT64_MAX ? INT64_MIN : n->event_hwm;
	while (i < n->nentries || j < rows.n) {
		struct entry *o = i < n->nentries ? &n->entries[i] : NULL;
		struct entry *r = j < rows.n ? &rows.v[j] : NULL;
		if (r && j + 1 < rows.n && rows.v[j + 1].id == r->id) { /* defensive: duplicate id */
			entry_free(r);
			j++;
			continue;
		}
		if (o && (!r || o->id < r->id)) {
			/* no longer in the scan: deleted from the store, or an ended alert
			 * that left the scan window */
			i++;
			if (!o->ended_seen_ms && o->sent) {
				/* an open alert vanished: resolve it on the receivers' side */
				snprintf(o->state, sizeof o->state, "resolved");
				o->ended_seen_ms = now;
				o->resolved_at_ms = 0;
				announce(n, o, now);
			}
			if (o->ended_seen_ms && entry_resolved_live(n, o, now))
				out[k++] = *o;
			else
				entry_free(o);
			continue;
		}
		if (r->event_at_ms > hwm)
			hwm = r->event_at_ms;
		if (o && o->id == r->id) {
			merge_row(n, &out[k++], o, r, now, recent_since);
			i++;
		} else
			merge_row(n, &out[k++], NULL, r, now, recent_since);
		j++;
	}
	free(rows.v);
	free(n->entries);
	n->entries = out;
	n->nentries = k;
	if (hwm != INT64_MIN)
		n->event_hwm = hwm;
	n->first_scan = 0;
}

/* ---- HTTP -------------------------------------------------------------- */

static size_t write_cb(char *p, size_t sz, size_t nm, void *ud)
{
	struct target *t = ud;
	size_t len = sz * nm;
	size_t room = sizeof t->resp - 1 - t->resp_len;
	size_t take = len < room ? len : room;
	memcpy(t->resp + t->resp_len, p, take);
	t->resp_len += take;
	t->resp[t->resp_len] = '\0';
	return len;
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct notifier *n = ud;
	return atomic_load(&n->stop) ? 1 : 0;
}

/* Strip newlines and quotes from a response for a one-line log value. */
static void log_safe(char *s)
{
	for (; *s; s++)
		if (*s == '\n' || *s == '\r' || *s == '"' || (unsigned char)*s < ' ')
			*s = ' ';
}

enum post_result { POST_OK, POST_RETRY, POST_REJECTED };

static enum post_result post_json(struct notifier *n, struct target *t, const char *body,
                                  size_t nalerts)
{
	t->resp_len = 0;
	t->resp[0] = '\0';
	t->errbuf[0] = '\0';
	curl_easy_setopt(t->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(t->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	CURLcode rc = curl_easy_perform(t->curl);
	long code = 0;
	curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
	enum post_result res;
	if (rc == CURLE_OK && code >= 200 && code < 300)
		res = POST_OK;
	else if (rc == CURLE_OK && code >= 400 && code < 500 && code != 408 && code != 429)
		res = POST_REJECTED; /* a bad payload or auth: retrying the same bytes will not help */
	else
		res = POST_RETRY;
	int64_t now = wall_ms();
	stats_lock(n);
	if (res == POST_OK) {
		t->st.requests_sent++;
		t->st.alerts_sent += nalerts;
		t->st.last_success_ms = now;
	} else {
		t->st.requests_failed++;
		t->st.alerts_failed += nalerts;
	}
	stats_unlock(n);
	if (n->stats)
		atomic_fetch_add_explicit(res == POST_OK ? &n->stats->notifications_sent
		                                         : &n->stats->notifications_failed,
		                          nalerts, memory_order_relaxed);
	if (res != POST_OK && !atomic_load(&n->stop)) {
		log_safe(t->resp);
		const char *e = rc != CURLE_OK ? (t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc))
		                               : t->resp;
		char eb[NOTIFY_RESP_MAX];
		if (*e)
			snprintf(eb, sizeof eb, "%s", e);
		else /* an empty error body: say at least what the status was */
			snprintf(eb, sizeof eb, "http status %ld", code);
		log_safe(eb);
		log_msg(res == POST_REJECTED ? LOG_ERROR : LOG_WARN,
		        "event=notify_failed target=%s kind=%s status=%ld alerts=%zu error=\"%.300s\"%s",
		        t->cfg.url, t->cfg.kind == NOTIFY_ALERTMANAGER ? "alertmanager" : "webhook", code,
		        nalerts, eb, res == POST_REJECTED ? " retry=no" : "");
	}
	return res;
}

static void after_round(struct notifier *n, struct target *t, enum post_result res, int64_t now,
                        size_t nalerts)
{
	if (res == POST_RETRY) {
		t->failures++;
		int64_t d = notify_backoff_ms(t->failures, n->cfg.max_backoff_ms, rng_next(&n->rng));
		t->next_try_ms = now + d;
		log_msg(LOG_INFO, "event=notify_retry target=%s attempt=%u retry_in_ms=%lld", t->cfg.url,
		        t->failures, (long long)d);
	} else {
		if (t->failures && res == POST_OK)
			log_msg(LOG_INFO, "event=notify_recovered target=%s failed_attempts=%u alerts=%zu",
			        t->cfg.url, t->failures, nalerts);
		else
			log_msg(LOG_DEBUG, "event=notify_sent target=%s alerts=%zu", t->cfg.url, nalerts);
		t->failures = 0;
		t->next_try_ms = 0;
	}
	stats_lock(n);
	t->st.consecutive_failures = t->failures;
	stats_unlock(n);
}

/* Alertmanager: every eligible active alert and every live resolved one, in
 * batches of NOTIFY_BATCH_MAX, when something changed or the resend interval
 * passed. */
static void send_alertmanager(struct notifier *n, struct target *t, int64_t now)
{
	size_t total = 0;
	for (size_t i = 0; i < n->nentries; i++) {
		const struct entry *e = &n->entries[i];
		if ((!e->ended_seen_ms && entry_eligible(n, e)) || entry_resolved_live(n, e, now))
			total++;
	}
	stats_lock(n);
	t->st.queue_length = total;
	stats_unlock(n);
	if (now < t->next_try_ms)
		return;
	if (!t->dirty && now - t->last_ok_ms < n->cfg.resend_interval_ms)
		return;
	if (total == 0) {
		t->dirty = 0;
		return;
	}
	enum post_result res = POST_OK;
	size_t i = 0, sent = 0;
	while (i < n->nentries && res != POST_RETRY && !atomic_load(&n->stop)) {
		json_t *arr = json_array();
		size_t cnt = 0;
		for (; i < n->nentries && cnt < NOTIFY_BATCH_MAX; i++) {
			const struct entry *e = &n->entries[i];
			if (!((!e->ended_seen_ms && entry_eligible(n, e)) || entry_resolved_live(n, e, now)))
				continue;
			struct alert_rec r;
			entry_rec(e, &r);
			struct notify_clock c = entry_clock(n, e, now);
			json_t *a = notify_alert_obj(&r, &c, n->cfg.external_url, &n->cfg.external_labels, 0);
			if (a && json_array_append_new(arr, a) == 0)
				cnt++;
		}
		char *body = cnt ? json_dumps(arr, JSON_COMPACT) : NULL;
		json_decref(arr);
		if (!cnt)
			continue;
		if (!body) {
			res = POST_RETRY;
			break;
		}
		enum post_result r1 = post_json(n, t, body, cnt);
		free(body);
		if (r1 != POST_OK)
			res = r1;
		if (r1 != POST_RETRY)
			sent += cnt;
	}
	if (atomic_load(&n->stop))
		return;
	if (res != POST_RETRY) {
		t->dirty = 0;
		t->last_ok_ms = now;
	}
	after_round(n, t, res, now, sent);
}

/* Webhook: the queued events, oldest first, one document per request; a
 * document never holds two events of the same alert. */
static void send_webhook(struct notifier *n, struct target *t, int64_t now)
{
	while (t->qlen && now >= t->next_try_ms && !atomic_load(&n->stop)) {
		json_t *alerts = json_array();
		json_t *common = NULL, *common_ann = NULL;
		int any_firing = 0;
		size_t cnt = 0;
		for (; cnt < t->qlen && cnt < NOTIFY_BATCH_MAX; cnt++) {
			struct wh_event *ev = &t->q[(t->qhead + cnt) % t->qcap];
			int dup = 0;
			for (size_t k = 0; k < cnt && !dup; k++)
				dup = t->q[(t->qhead + k) % t->qcap].id == ev->id;
			if (dup)
				break;
			json_array_append(alerts, ev->alert);
			any_firing |= ev->firing;
			json_t *l = json_object_get(ev->alert, "labels");
			json_t *a = json_object_get(ev->alert, "annotations");
			if (!common) {
				common = json_deep_copy(l);
				common_ann = json_deep_copy(a);
				continue;
			}
			for (int pass = 0; pass < 2; pass++) {
				json_t *cm = pass ? common_ann : common, *src = pass ? a : l;
				const char *key;
				json_t *v, *tmp;
				json_object_foreach_safe(cm, tmp, key, v)
				{
					if (!json_equal(v, json_object_get(src, key)))
						json_object_del(cm, key);
				}
			}
		}
		json_t *doc = json_object();
		json_object_set_new(doc, "version", json_string("4"));
		json_object_set_new(doc, "receiver", json_string("foreshock"));
		json_object_set_new(doc, "status", json_string(any_firing ? "firing" : "resolved"));
		json_object_set_new(doc, "alerts", alerts);
		json_object_set_new(doc, "groupLabels", json_object());
		json_object_set_new(doc, "commonLabels", common ? common : json_object());
		json_object_set_new(doc, "commonAnnotations", common_ann ? common_ann : json_object());
		json_object_set_new(doc, "externalURL",
		                    json_string(n->cfg.external_url ? n->cfg.external_url : ""));
		json_object_set_new(doc, "groupKey", json_string("{}:{}"));
		json_object_set_new(doc, "truncatedAlerts", json_integer(0));
		char *body = json_dumps(doc, JSON_COMPACT);
		json_decref(doc);
		enum post_result res = body ? post_json(n, t, body, cnt) : POST_RETRY;
		free(body);
		if (atomic_load(&n->stop))
			return;
		if (res != POST_RETRY) { /* delivered, or rejected for good: dequeue */
			for (size_t k = 0; k < cnt; k++) {
				json_decref(t->q[t->qhead].alert);
				t->qhead = (t->qhead + 1) % t->qcap;
				t->qlen--;
			}
		}
		after_round(n, t, res, now, cnt);
	}
	stats_lock(n);
	t->st.queue_length = t->qlen;
	stats_unlock(n);
}

/* ---- thread ------------------------------------------------------------ */

static void *notifier_main(void *arg)
{
	struct notifier *n = arg;
	log_msg(LOG_INFO, "event=notifier_started targets=%zu resend_interval_ms=%lld poll_ms=%lld",
	        n->ntargets, (long long)n->cfg.resend_interval_ms, (long long)n->cfg.poll_ms);
	while (!atomic_load(&n->stop)) {
		int64_t now = wall_ms();
		poll_store(n, now);
		for (size_t i = 0; i < n->ntargets && !atomic_load(&n->stop); i++) {
			struct target *t = &n->targets[i];
			if (t->cfg.kind == NOTIFY_ALERTMANAGER)
				send_alertmanager(n, t, now);
			else
				send_webhook(n, t, now);
		}
		pthread_mutex_lock(&n->mu);
		if (!n->kicked && !atomic_load(&n->stop)) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			int64_t ns = ts.tv_nsec + (n->cfg.poll_ms % 1000) * 1000000;
			ts.tv_sec += n->cfg.poll_ms / 1000 + ns / 1000000000;
			ts.tv_nsec = ns % 1000000000;
			pthread_cond_timedwait(&n->cv, &n->mu, &ts);
		}
		n->kicked = 0;
		pthread_mutex_unlock(&n->mu);
	}
	return NULL;
}

static char *read_token(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read bearer_token_file '%s': %s", path, strerror(errno));
		return NULL;
	}
	char buf[8192];
	size_t len = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[len] = '\0';
	while (len > 0 && isspace((unsigned char)buf[len - 1]))
		buf[--len] = '\0';
	if (!len || strpbrk(buf, "\r\n")) {
		snprintf(err, errlen, "invalid bearer_token_file '%s': empty or multi-line", path);
		return NULL;
	}
	return strdup(buf);
}

static int target_init(struct notifier *n, struct target *t, const struct notify_target *c,
                       char *err, size_t errlen)
{
	memset(t, 0, sizeof *t);
	t->cfg.kind = c->kind;
	t->cfg.timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : 10000;
	if (!(t->cfg.url = redact_url(c->url))) { /* what logs and /metrics show */
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t ul = strlen(c->url);
	t->post_url = malloc(ul + 32);
	if (!t->post_url) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	strcpy(t->post_url, c->url);
	if (c->kind == NOTIFY_ALERTMANAGER) {
		static const char sfx[] = "/api/v2/alerts";
		while (ul > 0 && t->post_url[ul - 1] == '/')
			t->post_url[--ul] = '\0';
		if (ul < sizeof sfx - 1 || strcmp(t->post_url + ul - (sizeof sfx - 1), sfx))
			strcat(t->post_url, sfx);
	}
	t->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	t->hdr = curl_slist_append(t->hdr, "User-Agent: foreshock/" PACKAGE_VERSION);
	t->hdr = curl_slist_append(t->hdr, "Expect:");
	if (c->bearer_token_file) {
		char *tok = read_token(c->bearer_token_file, err, errlen);
		if (!tok)
			return -1;
		size_t hl = strlen(tok) + 32;
		char *h = malloc(hl);
		if (h) {
			snprintf(h, hl, "Authorization: Bearer %s", tok);
			t->hdr = curl_slist_append(t->hdr, h);
		}
		free(h);
		free(tok);
	}
	for (size_t i = 0; i < c->nheaders; i++)
		t->hdr = curl_slist_append(t->hdr, c->headers[i]);
	t->curl = curl_easy_init();
	if (!t->curl || !t->hdr) {
		snprintf(err, errlen, "cannot initialise libcurl for '%s'", t->cfg.url);
		return -1;
	}
	CURL *h = t->curl;
	curl_easy_setopt(h, CURLOPT_URL, t->post_url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, t->hdr);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)t->cfg.timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(t->cfg.timeout_ms < 5000 ? t->cfg.timeout_ms : 5000));
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROXY, ""); /* never an environment proxy */
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, t->errbuf);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, n);
	t->st.url = t->cfg.url;
	t->st.kind = t->cfg.kind;
	log_msg(LOG_INFO, "event=notify_target url=%s", t->cfg.url);
	return 0;
}

static void target_release(struct target *t)
{
	if (t->curl)
		curl_easy_cleanup(t->curl);
	curl_slist_free_all(t->hdr);
	for (size_t k = 0; k < t->qlen; k++)
		json_decref(t->q[(t->qhead + k) % t->qcap].alert);
	free(t->q);
	free(t->post_url);
	free(t->cfg.url);
}

static void notifier_free(struct notifier *n)
{
	for (size_t i = 0; i < n->ntargets; i++)
		target_release(&n->targets[i]);
	free(n->targets);
	for (size_t i = 0; i < n->nentries; i++)
		entry_free(&n->entries[i]);
	free(n->entries);
	free(n->cfg.external_url);
	labels_free(&n->cfg.external_labels);
	pthread_cond_destroy(&n->cv);
	pthread_mutex_destroy(&n->mu);
	free(n);
}

struct notifier *notifier_start(const struct notify_config *c, struct store *store,
                                struct selfstats *stats, char *err, size_t errlen)
{
	struct notifier *n = calloc(1, sizeof *n);
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n->cfg = *c;
	n->cfg.targets = NULL;
	n->cfg.ntargets = 0;
	n->cfg.external_url = NULL;
	memset(&n->cfg.external_labels, 0, sizeof n->cfg.external_labels);
	if (n->cfg.poll_ms < 10)
		n->cfg.poll_ms = 10;
	if (n->cfg.resend_interval_ms < 1000)
		n->cfg.resend_interval_ms = 1000;
	n->store = store;
	n->stats = stats;
	n->event_hwm = INT64_MAX;
	n->first_scan = 1;
	n->rng = (uint64_t)wall_ms() * 6364136223846793005ULL ^ (uint64_t)(uintptr_t)n;
	if (!n->rng)
		n->rng = 88172645463325252ULL;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&n->cv, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&n->mu, NULL);
	if ((c->external_url && !(n->cfg.external_url = strdup(c->external_url))) ||
	    labels_copy(&n->cfg.external_labels, &c->external_labels) < 0) {
		snprintf(err, errlen, "out of memory");
		notifier_free(n);
		return NULL;
	}
	if (n->cfg.external_url) {
		size_t l = strlen(n->cfg.external_url);
		while (l > 0 && n->cfg.external_url[l - 1] == '/')
			n->cfg.external_url[--l] = '\0';
	}
	if (c->ntargets) {
		n->targets = calloc(c->ntargets, sizeof *n->targets);
		if (!n->targets) {
			snprintf(err, errlen, "out of memory");
			notifier_free(n);
			return NULL;
		}
	}
	for (size_t i = 0; i < c->ntargets; i++) {
		n->ntargets++;
		if (target_init(n, &n->targets[i], &c->targets[i], err, errlen) < 0) {
			notifier_free(n);
			return NULL;
		}
	}
	if (!n->ntargets)
		return n; /* nothing to do: no thread */
	if (pthread_create(&n->tid, NULL, notifier_main, n) != 0) {
		snprintf(err, errlen, "cannot start the notifier thread");
		notifier_free(n);
		return NULL;
	}
	n->started = 1;
	return n;
}

void notifier_kick(struct notifier *n)
{
	if (!n || !n->started)
		return;
	pthread_mutex_lock(&n->mu);
	n->kicked = 1;
	pthread_cond_signal(&n->cv);
	pthread_mutex_unlock(&n->mu);
}

void notifier_stop(struct notifier *n)
{
	if (!n)
		return;
	if (n->started) {
		pthread_mutex_lock(&n->mu);
		atomic_store(&n->stop, 1);
		pthread_cond_signal(&n->cv);
		pthread_mutex_unlock(&n->mu);
		pthread_join(n->tid, NULL);
		log_msg(LOG_INFO, "event=notifier_stopped");
	}
	notifier_free(n);
}

size_t notifier_ntargets(const struct notifier *n)
{
	return n ? n->ntargets : 0;
}

int notifier_target_stats(struct notifier *n, size_t i, struct notify_target_stats *out)
{
	if (!n || i >= n->ntargets)
		return -1;
	pthread_mutex_lock(&n->mu);
	*out = n->targets[i].st;
	pthread_mutex_unlock(&n->mu);
	return 0;
}
