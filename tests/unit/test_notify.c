/* test_notify.c — unit tests of the notifier's pure parts: the `notify:`
 * configuration (good and rejected YAML, with line numbers), the
 * Alertmanager/webhook alert JSON (labels, annotations, startsAt/endsAt
 * clamping, generatorURL, fingerprint) and the retry backoff schedule. The
 * delivery loop itself is exercised by tests/integration/test_alertmanager.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert/notify.h"
#include "util/redact.h"
#include "util/timefmt.h"
#include "util/yaml_tree.h"

/* ---- configuration ------------------------------------------------------ */

/* Parse `yaml` (a whole document with a top-level notify: key); returns the
 * parse result, err holds the message. */
static int parse(const char *yaml, struct notify_config *c, char *err, size_t errlen)
{
	notify_config_init(c);
	struct ynode *root = ytree_load_string(yaml, strlen(yaml), "t.yml", err, errlen);
	assert_non_null(root);
	int rc = notify_config_parse(c, ymap_get(root, "notify"), err, errlen);
	ytree_free(root);
	return rc;
}

static void test_config_defaults_and_full(void **st)
{
	(void)st;
	struct notify_config c;
	char err[256];
	assert_int_equal(parse("listen: x\n", &c, err, sizeof err), 0);
	assert_int_equal(c.ntargets, 0);
	assert_int_equal(c.resend_interval_ms, 60000);
	assert_int_equal(c.resolved_resend_ms, 15 * 60000);
	assert_int_equal(c.poll_ms, 1000);
	assert_int_equal(c.max_backoff_ms, 60000);
	assert_int_equal(c.send_pending, 0);
	assert_null(c.external_url);
	notify_config_free(&c);

	const char *y = "notify:\n"
	                "  resend_interval: 30s\n"
	                "  resolved_resend: 5m\n"
	                "  poll_interval: 250ms\n"
	                "  max_backoff: 2m\n"
	                "  send_pending: true\n"
	                "  external_url: http://foreshock.example:9790/\n"
	                "  alertmanagers:\n"
	                "    - url: http://127.0.0.1:9093\n"
	                "      timeout: 3s\n"
	                "      headers:\n"
	                "        X-Scope-OrgID: team-a\n"
	                "    - http://127.0.0.1:9094/api/v2/alerts\n"
	                "  webhooks:\n"
	                "    - url: https://hooks.example/foreshock\n";
	assert_int_equal(parse(y, &c, err, sizeof err), 0);
	assert_int_equal(c.resend_interval_ms, 30000);
	assert_int_equal(c.resolved_resend_ms, 300000);
	assert_int_equal(c.poll_ms, 250);
	assert_int_equal(c.max_backoff_ms, 120000);
	assert_int_equal(c.send_pending, 1);
	assert_string_equal(c.external_url, "http://foreshock.example:9790");
	assert_int_equal(c.ntargets, 3);
	assert_int_equal(c.targets[0].kind, NOTIFY_ALERTMANAGER);
	assert_string_equal(c.targets[0].url, "http://127.0.0.1:9093");
	assert_int_equal(c.targets[0].timeout_ms, 3000);
	assert_int_equal(c.targets[0].nheaders, 1);
	assert_string_equal(c.targets[0].headers[0], "X-Scope-OrgID: team-a");
	assert_int_equal(c.targets[1].kind, NOTIFY_ALERTMANAGER);
	assert_int_equal(c.targets[1].timeout_ms, 10000);
	assert_int_equal(c.targets[2].kind, NOTIFY_WEBHOOK);
	assert_string_equal(c.targets[2].url, "https://hooks.example/foreshock");
	notify_config_free(&c);
	assert_int_equal(c.ntargets, 0);
	assert_null(c.targets);
}

/* Each rejected document with the exact message it must produce. */
static void test_config_rejected(void **st)
{
	(void)st;
	static const struct {
		const char *yaml, *msg;
	} bad[] = {
		{ "notify:\n  resend: 1m\n", "t.yml:2: unknown key 'resend'" },
		{ "notify: yes\n", "t.yml:1: 'notify' must be a mapping" },
		{ "notify:\n  alertmanagers: http://x:9093\n", "t.yml:2: 'alertmanagers' must be a list" },
		{ "notify:\n  alertmanagers:\n    - url: ftp://x/\n",
		  "t.yml:3: invalid url 'ftp://x/' in 'alertmanagers' (http:// or https:// expected)" },
		{ "notify:\n  webhooks:\n    - ftp://x/\n",
		  "t.yml:3: invalid url 'ftp://x/' in 'webhooks' (http:// or https:// expected)" },
		{ "notify:\n  webhooks:\n    - timeout: 1s\n", "t.yml:3: missing 'url' in 'webhooks' item" },
		{ "notify:\n  webhooks:\n    - url: http://x/\n      retries: 3\n",
		  "t.yml:4: unknown key 'retries'" },
		{ "notify:\n  resend_interval: 10ms\n",
		  "t.yml:2: duration '10ms' for 'resend_interval' out of range (at least 1s)" },
		{ "notify:\n  max_backoff: 100ms\n",
		  "t.yml:2: duration '100ms' for 'max_backoff' out of range (at least 1s)" },
		{ "notify:\n  poll_interval: 5ms\n",
		  "t.yml:2: duration '5ms' for 'poll_interval' out of range (at least 10ms)" },
		{ "notify:\n  send_pending: maybe\n", NULL },
		{ "notify:\n  poll_interval: soon\n", NULL },
		{ "notify:\n  external_url: localhost:9790\n",
		  "t.yml:2: invalid external_url 'localhost:9790' (http:// or https:// expected)" },
		{ "notify:\n  alertmanagers:\n    - url: http://x/\n      headers:\n        \"Bad Name\": v\n",
		  "t.yml:5: invalid header 'Bad Name' in 'alertmanagers' (a name of letters, digits and "
		  "!#$%&'*+-.^_`|~, a value without line breaks; not Content-Type or Content-Length)" },
		{ "notify:\n  alertmanagers:\n    - url: http://x/\n      headers: [a]\n",
		  "t.yml:4: 'headers' must be a mapping of header names to values" },
		{ "notify:\n  alertmanagers:\n    - url: http://x/\n      bearer_token_file: \"\"\n",
		  "t.yml:4: 'bearer_token_file' must not be empty" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct notify_config c;
		char err[256] = "";
		int rc = parse(bad[i].yaml, &c, err, sizeof err);
		if (rc != -1)
			fail_msg("accepted: %s", bad[i].yaml);
		if (bad[i].msg && strstr(err, bad[i].msg) != err)
			fail_msg("for %s\n got '%s'\nwant '%s'", bad[i].yaml, err, bad[i].msg);
		if (!bad[i].msg && strncmp(err, "t.yml:2: ", 9))
			fail_msg("no line number: '%s'", err);
		notify_config_free(&c);
	}
}

/* ---- times and payloads ------------------------------------------------- */

#define NOW 1790000000000LL /* 2026-09-21T...: the wall clock in these tests */
#define MIN 60000LL

static struct alert_rec rec(const char *state, int64_t firing, int64_t resolved, int64_t event)
{
	struct alert_rec r = { .id = 7,
		               .series_key = "api_latency{service=\"checkout\"}",
		               .labels_json = "{\"__name__\":\"api_latency\",\"alertname\":\"Anomaly\","
		                              "\"service\":\"checkout\",\"severity\":\"warning\"}",
		               .annotations_json = "{\"summary\":\"s\",\"observed\":\"140\"}",
		               .state = state,
		               .active_at_ms = firing ? firing - 20000 : event,
		               .firing_at_ms = firing,
		               .resolved_at_ms = resolved,
		               .event_at_ms = event,
		               .value = 140,
		               .score = 0.9 };
	return r;
}

static void test_times(void **st)
{
	(void)st;
	struct notify_clock t = { .now_ms = NOW, .seen_ms = NOW - 5 * MIN, .valid_ms = 4 * MIN };
	int64_t s, e;
	/* firing, event time in the past (replay): startsAt = firing time, endsAt = now + 4m */
	struct alert_rec r = rec("firing", NOW - 400 * MIN, 0, NOW - 400 * MIN);
	assert_int_equal(notify_alert_times(&r, &t, &s, &e), 1);
	assert_int_equal(s, NOW - 400 * MIN);
	assert_int_equal(e, NOW + 4 * MIN);
	/* firing with an event time ahead of the wall clock: startsAt clamped to first seen */
	r = rec("firing", NOW + 60 * MIN, 0, NOW + 60 * MIN);
	assert_int_equal(notify_alert_times(&r, &t, &s, &e), 1);
	assert_int_equal(s, NOW - 5 * MIN);
	assert_true(e > s);
	/* pending (send_pending): startsAt = active time */
	r = rec("pending", 0, 0, NOW - 30 * MIN);
	assert_int_equal(notify_alert_times(&r, &t, &s, &e), 1);
	assert_int_equal(s, NOW - 30 * MIN);
	/* resolved in the past: endsAt = resolved time */
	t.ended_seen_ms = NOW - MIN;
	r = rec("resolved", NOW - 400 * MIN, NOW - 300 * MIN, NOW - 300 * MIN);
	assert_int_equal(notify_alert_times(&r, &t, &s, &e), 0);
	assert_int_equal(s, NOW - 400 * MIN);
	assert_int_equal(e, NOW - 300 * MIN);
	/* resolved ahead of the wall clock: endsAt = when we saw it resolve (so it is resolved now) */
	r = rec("resolved", NOW - 10 * MIN, NOW + 30 * MIN, NOW + 30 * MIN);
	notify_alert_times(&r, &t, &s, &e);
	assert_int_equal(e, NOW - MIN);
	/* resolved time before the start (clock skew): endsAt = startsAt, never before */
	r = rec("resolved", NOW - 10 * MIN, NOW - 20 * MIN, NOW - 20 * MIN);
	notify_alert_times(&r, &t, &s, &e);
	assert_int_equal(s, NOW - 10 * MIN);
	assert_int_equal(e, NOW - 10 * MIN);
	/* resolved without resolved_at: the event time; stable across calls (ended_seen fixed) */
	r = rec("resolved", NOW - 10 * MIN, 0, NOW - 2 * MIN);
	notify_alert_times(&r, &t, &s, &e);
	assert_int_equal(e, NOW - 2 * MIN);
	t.now_ms = NOW + 10 * MIN;
	notify_alert_times(&r, &t, &s, &e);
	assert_int_equal(e, NOW - 2 * MIN);
	/* cancelled counts as ended */
	r = rec("cancelled", 0, 0, NOW - 3 * MIN);
	assert_int_equal(notify_alert_times(&r, &t, &s, &e), 0);
}

static json_t *load(char *s)
{
	assert_non_null(s);
	json_error_t je;
	json_t *o = json_loads(s, 0, &je);
	free(s);
	assert_non_null(o);
	return o;
}

static const char *jstr(json_t *o, const char *path1, const char *path2)
{
	json_t *v = json_object_get(o, path1);
	if (path2)
		v = json_object_get(v, path2);
	return json_string_value(v);
}

static void ms_str(int64_t ms, char *buf)
{
	time_format_rfc3339(ms, buf, 40);
}

static void test_postable_alert(void **st)
{
	(void)st;
	struct notify_clock t = { .now_ms = NOW, .seen_ms = NOW, .valid_ms = 4 * MIN };
	struct alert_rec r = rec("firing", NOW - 400 * MIN, 0, NOW - 400 * MIN);
	json_t *o = load(notify_alert_json(&r, &t, "http://fs.example:9790", NULL, 0));
	char b[40];
	/* exactly the postableAlert fields */
	assert_int_equal(json_object_size(o), 5);
	assert_string_equal(jstr(o, "labels", "__name__"), "api_latency");
	assert_string_equal(jstr(o, "labels", "metric"), "api_latency");
	assert_string_equal(jstr(o, "labels", "alertname"), "Anomaly");
	assert_string_equal(jstr(o, "labels", "service"), "checkout");
	assert_string_equal(jstr(o, "annotations", "summary"), "s");
	ms_str(NOW - 400 * MIN, b);
	assert_string_equal(jstr(o, "startsAt", NULL), b);
	ms_str(NOW + 4 * MIN, b);
	assert_string_equal(jstr(o, "endsAt", NULL), b);
	assert_string_equal(jstr(o, "generatorURL", NULL),
	                    "http://fs.example:9790/api/v1/anomalies?series="
	                    "api_latency%7Bservice%3D%22checkout%22%7D");
	json_decref(o);

	/* resolved: endsAt is the resolved time; no external URL -> no generatorURL */
	t.ended_seen_ms = NOW;
	r = rec("resolved", NOW - 400 * MIN, NOW - 390 * MIN, NOW - 390 * MIN);
	o = load(notify_alert_json(&r, &t, NULL, NULL, 0));
	ms_str(NOW - 390 * MIN, b);
	assert_string_equal(jstr(o, "endsAt", NULL), b);
	assert_null(json_object_get(o, "generatorURL"));
	assert_null(json_object_get(o, "status"));
	json_decref(o);
}

static void test_labels_sanitised(void **st)
{
	(void)st;
	struct notify_clock t = { .now_ms = NOW, .valid_ms = 4 * MIN };
	struct alert_rec r = rec("firing", NOW - MIN, 0, NOW - MIN);
	r.labels_json = "{\"__name__\":\"cpu\",\"metric\":\"own\",\"host.name\":\"a\",\"1st\":\"b\","
	                "\"host_name\":\"real\",\"n\":3,\"skip\":null,\"\":\"empty\"}";
	r.annotations_json = "{\"summary\":\"x\",\"score\":0.5,\"ok\":true,\"bad-key\":\"v\"}";
	json_t *o = load(notify_alert_json(&r, &t, NULL, NULL, 0));
	json_t *l = json_object_get(o, "labels");
	assert_string_equal(jstr(l, "metric", NULL), "own"); /* an existing metric label wins */
	assert_string_equal(jstr(l, "host_name", NULL), "real"); /* real name beats sanitised one */
	assert_string_equal(jstr(l, "_1st", NULL), "b");
	assert_string_equal(jstr(l, "n", NULL), "3");
	assert_null(json_object_get(l, "skip"));
	assert_null(json_object_get(l, ""));
	const char *k;
	json_t *v;
	json_object_foreach(l, k, v)
	{
		assert_true(notify_label_name_valid(k));
		assert_true(json_is_string(v));
	}
	json_t *a = json_object_get(o, "annotations");
	assert_string_equal(jstr(a, "score", NULL), "0.5");
	assert_string_equal(jstr(a, "ok", NULL), "true");
	assert_string_equal(jstr(a, "bad_key", NULL), "v");
	json_decref(o);

	assert_true(notify_label_name_valid("__name__"));
	assert_true(notify_label_name_valid("a9_"));
	assert_false(notify_label_name_valid("9a"));
	assert_false(notify_label_name_valid("a-b"));
	assert_false(notify_label_name_valid(""));
	/* bad JSON from the store: no payload rather than a wrong one */
	r.labels_json = "{not json";
	assert_null(notify_alert_json(&r, &t, NULL, NULL, 0));
}

static void test_webhook_alert_and_fingerprint(void **st)
{
	(void)st;
	/* Prometheus common/model signature tests: the empty set and a known pair */
	assert_true(notify_fingerprint("{}") == 14695981039346656037ULL);
	assert_true(notify_fingerprint("{\"name\":\"garland, briggs\",\"fear\":\"love is not enough\"}") ==
	            5799056148416392346ULL);
	struct notify_clock t = { .now_ms = NOW, .valid_ms = 4 * MIN };
	struct alert_rec r = rec("firing", NOW - MIN, 0, NOW - MIN);
	json_t *o = load(notify_alert_json(&r, &t, "http://x", NULL, 1));
	assert_string_equal(jstr(o, "status", NULL), "firing");
	assert_string_equal(jstr(o, "endsAt", NULL), "0001-01-01T00:00:00Z");
	char fp[24];
	snprintf(fp, sizeof fp, "%016llx", (unsigned long long)notify_fingerprint(r.labels_json));
	assert_string_equal(jstr(o, "fingerprint", NULL), fp);
	assert_non_null(json_object_get(o, "generatorURL"));
	json_decref(o);
	r = rec("resolved", NOW - 10 * MIN, NOW - MIN, NOW - MIN);
	o = load(notify_alert_json(&r, &t, NULL, NULL, 1));
	assert_string_equal(jstr(o, "status", NULL), "resolved");
	char b[40];
	ms_str(NOW - MIN, b);
	assert_string_equal(jstr(o, "endsAt", NULL), b);
	assert_string_equal(jstr(o, "fingerprint", NULL), fp); /* same labels, same fingerprint */
	json_decref(o);
}

/* External labels (shard, ...) go onto every alert, the alert's own labels
 * win, and the webhook fingerprint covers the labels as sent. */
static void test_external_labels(void **st)
{
	(void)st;
	struct label_ref refs[] = { { "shard", 5, "a", 1 },
		                    { "region", 6, "eu", 2 },
		                    { "service", 7, "other", 5 } };
	struct labels ext;
	char err[128];
	assert_int_equal(labels_from_refs(&ext, refs, 3, NULL, err, sizeof err), 0);
	struct notify_clock t = { .now_ms = NOW, .valid_ms = 4 * MIN };
	struct alert_rec r = rec("firing", NOW - MIN, 0, NOW - MIN);
	for (int webhook = 0; webhook <= 1; webhook++) {
		json_t *o = load(notify_alert_json(&r, &t, NULL, &ext, webhook));
		json_t *l = json_object_get(o, "labels");
		assert_string_equal(jstr(l, "shard", NULL), "a");
		assert_string_equal(jstr(l, "region", NULL), "eu");
		assert_string_equal(jstr(l, "service", NULL), "checkout"); /* the alert's own wins */
		assert_string_equal(jstr(l, "__name__", NULL), "api_latency");
		if (webhook) {
			char *sent = json_dumps(l, JSON_COMPACT);
			char fp[24], fp_own[24];
			snprintf(fp, sizeof fp, "%016llx", (unsigned long long)notify_fingerprint(sent));
			snprintf(fp_own, sizeof fp_own, "%016llx",
			         (unsigned long long)notify_fingerprint(r.labels_json));
			assert_string_equal(jstr(o, "fingerprint", NULL), fp);
			assert_string_not_equal(fp, fp_own);
			free(sent);
		}
		json_decref(o);
	}
	/* an empty set changes nothing */
	struct labels none = { 0 };
	char *a = notify_alert_json(&r, &t, NULL, &none, 1), *b = notify_alert_json(&r, &t, NULL, NULL, 1);
	assert_string_equal(a, b);
	free(a);
	free(b);
	labels_free(&ext);
}

/* ---- backoff ------------------------------------------------------------ */

static void test_backoff(void **st)
{
	(void)st;
	/* lower and upper jitter bounds: d/2 .. d with d = 1s * 2^(n-1), capped */
	static const struct {
		unsigned failures;
		int64_t max, lo, hi;
	} tab[] = {
		{ 1, 60000, 500, 1000 },     { 2, 60000, 1000, 2000 },   { 3, 60000, 2000, 4000 },
		{ 6, 60000, 16000, 32000 },  { 7, 60000, 30000, 60000 }, { 40, 60000, 30000, 60000 },
		{ 1000, 60000, 30000, 60000 }, { 3, 3000, 1500, 3000 },  { 1, 1000, 500, 1000 },
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
		int64_t mn = INT64_MAX, mx = 0;
		uint64_t x = 12345 + i;
		for (int k = 0; k < 5000; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			int64_t d = notify_backoff_ms(tab[i].failures, tab[i].max, x);
			mn = d < mn ? d : mn;
			mx = d > mx ? d : mx;
		}
		if (mn < tab[i].lo || mx > tab[i].hi)
			fail_msg("failures=%u: [%lld, %lld] outside [%lld, %lld]", tab[i].failures,
			         (long long)mn, (long long)mx, (long long)tab[i].lo, (long long)tab[i].hi);
		/* jitter spreads: both ends of the range are approached */
		assert_true(mn < tab[i].lo + (tab[i].hi - tab[i].lo) / 10 + 1);
		assert_true(mx > tab[i].hi - (tab[i].hi - tab[i].lo) / 10 - 1);
	}
	assert_int_equal(notify_backoff_ms(1, 1000, 0), 500);
	assert_int_equal(notify_backoff_ms(1, 1000, 500), 1000);
}

/* Credentials in a notification URL never reach the log or /metrics. */
static void test_redact_url(void **st)
{
	(void)st;
	static const char *const cases[][2] = {
		{ "http://127.0.0.1:9093", "http://127.0.0.1:9093" },
		{ "http://user:PASS@am:9093/x", "http://user:xxxxx@am:9093/x" },
		{ "https://user@am", "https://user@am" },
		{ "https://u:p@ss@am/?a=1", "https://u:xxxxx@am/?a=1" },
		{ "http://h/hook?token=abc&x=1&api_key=K&Sig=z#f", "http://h/hook?token=xxxxx&x=1&api_key=xxxxx&Sig=xxxxx#f" },
		{ "http://h/p@x?password=", "http://h/p@x?password=xxxxx" },
		{ "http://h/?k=1&&t", "http://h/?k=1&&t" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *r = redact_url(cases[i][0]);
		assert_non_null(r);
		assert_string_equal(r, cases[i][1]);
		free(r);
	}
	/* many short secret values: still masked (the buffer bound holds) */
	char url[4096] = "http://h/?";
	for (int i = 0; i < 300; i++)
		strcat(url, "key=1&");
	char *r = redact_url(url);
	assert_non_null(r);
	assert_null(strstr(r, "key=1"));
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_config_defaults_and_full),
		cmocka_unit_test(test_config_rejected),
		cmocka_unit_test(test_times),
		cmocka_unit_test(test_postable_alert),
		cmocka_unit_test(test_labels_sanitised),
		cmocka_unit_test(test_webhook_alert_and_fingerprint),
		cmocka_unit_test(test_external_labels),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_redact_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
