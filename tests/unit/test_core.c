/* test_core.c — unit tests of the core primitives: labels, selectors, the
 * series registry, yaml_tree, settings and the engine (with a real store in
 * a temporary directory). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"
#include "util/labels.h"
#include "util/selector.h"
#include "engine/series.h"
#include "util/selfstats.h"
#include "daemon/settings.h"
#include "store/store.h"
#include "util/yaml_tree.h"

#define REF(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

static void test_labels_sort_hash_string(void **st)
{
	(void)st;
	struct label_ref a[] = { REF("job", "api"), REF("__name__", "up"), REF("instance", "x:1") };
	struct label_ref b[] = { REF("instance", "x:1"), REF("job", "api"), REF("__name__", "up") };
	struct labels la, lb;
	char err[128];
	assert_int_equal(labels_from_refs(&la, a, 3, NULL, err, sizeof err), 0);
	assert_int_equal(labels_from_refs(&lb, b, 3, NULL, err, sizeof err), 0);
	assert_true(labels_equal(&la, &lb));
	assert_true(labels_hash(&la) == labels_hash(&lb));
	assert_true(labels_hash_refs(a, 3) == labels_hash(&la));
	assert_true(labels_hash_refs(b, 3) == labels_hash(&la));
	assert_string_equal(la.names[0], "__name__");
	char *s = labels_to_string(&la);
	assert_string_equal(s, "up{instance=\"x:1\",job=\"api\"}");
	free(s);
	assert_string_equal(labels_metric_name(&la), "up");
	assert_null(labels_get(&la, "nope"));
	labels_free(&la);
	labels_free(&lb);
}

static void test_labels_escape_and_empty(void **st)
{
	(void)st;
	struct label_ref a[] = { REF("__name__", "m"), REF("path", "a\"b\\c\nd"), REF("empty", "") };
	struct labels l;
	char err[128];
	assert_int_equal(labels_from_refs(&l, a, 3, NULL, err, sizeof err), 0);
	assert_int_equal(l.n, 2); /* empty value dropped */
	char *s = labels_to_string(&l);
	assert_string_equal(s, "m{path=\"a\\\"b\\\\c\\nd\"}");
	free(s);
	/* labels_format: the same text, cut short to fit, its full length back */
	size_t full = strlen("m{path=\"a\\\"b\\\\c\\nd\"}");
	char buf[64];
	assert_int_equal(labels_format(&l, NULL, 0), full);
	for (size_t cap = 1; cap <= full + 2; cap++) {
		memset(buf, 'x', sizeof buf);
		assert_int_equal(labels_format(&l, buf, cap), full);
		size_t got = cap - 1 < full ? cap - 1 : full;
		assert_int_equal(strlen(buf), got);
		assert_memory_equal(buf, "m{path=\"a\\\"b\\\\c\\nd\"}", got);
		assert_int_equal(buf[cap], 'x'); /* nothing written past cap bytes */
	}
	assert_true(labels_hash_refs(a, 3) == labels_hash(&l));
	labels_free(&l);
}

static void test_labels_reject(void **st)
{
	(void)st;
	struct labels l;
	char err[128];
	struct label_ref dup[] = { REF("__name__", "m"), REF("a", "1"), REF("a", "2") };
	assert_int_equal(labels_from_refs(&l, dup, 3, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "duplicate label name 'a'"));
	struct label_ref bad[] = { REF("__name__", "m"), REF("1abc", "1") };
	assert_int_equal(labels_from_refs(&l, bad, 2, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "invalid label name"));
	struct label_limits lim = { 2, 8, 4, 0 };
	struct label_ref many[] = { REF("__name__", "m"), REF("a", "1"), REF("b", "2") };
	assert_int_equal(labels_from_refs(&l, many, 3, &lim, err, sizeof err), -1);
	assert_non_null(strstr(err, "too many labels"));
	struct label_ref longv[] = { REF("__name__", "m"), REF("a", "12345") };
	assert_int_equal(labels_from_refs(&l, longv, 2, &lim, err, sizeof err), -1);
	assert_non_null(strstr(err, "too long"));
	/* the bytes of the whole set: 31 labels of 1,000 bytes (issue #15) are refused */
	struct label_limits dflt = LABEL_LIMITS_DEFAULT;
	static char big[31][1001];
	static char names[31][8];
	struct label_ref wide[32] = { REF("__name__", "m") };
	for (int i = 0; i < 31; i++) {
		memset(big[i], 'v', 1000);
		snprintf(names[i], sizeof names[i], "l%02d", i);
		wide[i + 1] = (struct label_ref){ names[i], strlen(names[i]), big[i], 1000 };
	}
	assert_int_equal(labels_from_refs(&l, wide, 32, &dflt, err, sizeof err), -1);
	assert_non_null(strstr(err, "labels too large"));
	assert_int_equal(labels_from_refs(&l, wide, 4, &dflt, err, sizeof err), 0); /* 3 KB */
	labels_free(&l);
	assert_true(metric_name_valid("a:b_c1", 6));
	assert_false(metric_name_valid("1a", 2));
	assert_false(label_name_valid("a:b", 3));
}

static void make_labels(struct labels *l, const char *name, const char *job, const char *code)
{
	struct label_ref r[3] = { { "__name__", 8, name, strlen(name) },
		                  { "job", 3, job, strlen(job) },
		                  { "code", 4, code, strlen(code) } };
	char err[64];
	assert_int_equal(labels_from_refs(l, r, 3, NULL, err, sizeof err), 0);
}

static void test_selector(void **st)
{
	(void)st;
	struct labels l;
	make_labels(&l, "http_requests_total", "api", "500");
	struct selector s;
	char err[256];
	const char *yes[] = { "http_requests_total", "{job=\"api\"}", "http_requests_total{code=~\"5..\"}",
		              "{__name__=~\"http_.*\",job!=\"db\"}", "{code!~\"2..\", job='api'}",
		              "http_requests_total{missing=\"\"}", NULL };
	const char *no[] = { "up", "{job=\"db\"}", "{code=~\"5\"}", "http_requests_total{code!~\"5..\"}",
		             NULL };
	for (int i = 0; yes[i]; i++) {
		assert_int_equal(selector_parse(&s, yes[i], err, sizeof err), 0);
		assert_true(selector_matches(&s, &l));
		selector_free(&s);
	}
	for (int i = 0; no[i]; i++) {
		assert_int_equal(selector_parse(&s, no[i], err, sizeof err), 0);
		assert_false(selector_matches(&s, &l));
		selector_free(&s);
	}
	const char *bad[] = { "", "{}", "{job=\"\"}", "rate(x[5m])", "{job=api}", "{job=~\"(\"}",
		              "x{a=\"b\"", NULL };
	for (int i = 0; bad[i]; i++) {
		assert_int_equal(selector_parse(&s, bad[i], err, sizeof err), -1);
		assert_true(strlen(err) > 0);
	}
	labels_free(&l);
}

/* Prometheus' regular expressions (RE2 syntax, compiled with PCRE2): what
 * POSIX ERE refused now works; PCRE-only syntax is refused; limits hold. */
static void test_selector_regex(void **st)
{
	(void)st;
	struct labels l;
	make_labels(&l, "http_requests_total", "Api-1", "500");
	struct selector s;
	char err[256];
	const char *yes[] = { "{code=~\"\\\\d+\"}", "{job=~\"(?i)api-\\\\d\"}",
		              "{job=~`\\w+-\\d`}", "{job=~\"[[:alpha:]]+.1\"}",
		              "{__name__=~\"http_.*_total\"}", "{job=\"Api-1\",code!~\"\\\\D+\"}",
		              "{job=~\"(?P<n>A)pi.+\"}", "{job=~\"\\\\pL+-1\"}",
		              "{code=~\"5..|4..\"}", "{job=~`\\QApi-1\\E`}", NULL };
	/* fully anchored: a substring does not match; case matters without (?i) */
	const char *no[] = { "{code=~\"0\"}", "{job=~\"api-1\"}", "{code=~\"50\"}",
		             "{code=~\"5|4..\"}", "{code=\"500\",job!~\"(?i)API-1\"}", NULL };
	for (int i = 0; yes[i]; i++) {
		assert_int_equal(selector_parse(&s, yes[i], err, sizeof err), 0);
		assert_true(selector_matches(&s, &l));
		assert_false(selector_limit_hit(&s));
		selector_free(&s);
	}
	for (int i = 0; no[i]; i++) {
		assert_int_equal(selector_parse(&s, no[i], err, sizeof err), 0);
		assert_false(selector_matches(&s, &l));
		selector_free(&s);
	}
	/* not RE2: refused with the construct named */
	const char *bad[] = { "{job=~\"(?=a)a\"}", "{job=~\"(a)\\\\1\"}", "{job=~\"(?>a)\"}",
		              "{job=~\"a*+\"}", "{job=~\"(*UTF)a\"}", "{job=~\"a{2}{3}\"}",
		              "{job=~\"(?x)a\"}", "{job=~\"((a{1,100}){1,100})\"}", NULL };
	for (int i = 0; bad[i]; i++) {
		assert_int_equal(selector_parse(&s, bad[i], err, sizeof err), -1);
		assert_non_null(strstr(err, "invalid"));
	}
	/* '.' matches a newline, '$' only at the very end (Prometheus' (?s:)) */
	struct labels nl;
	struct label_ref r[2] = { { "__name__", 8, "m", 1 }, { "job", 3, "a\nb", 3 } };
	assert_int_equal(labels_from_refs(&nl, r, 2, NULL, err, sizeof err), 0);
	assert_int_equal(selector_parse(&s, "{job=~\"a.b\"}", err, sizeof err), 0);
	assert_true(selector_matches(&s, &nl));
	selector_free(&s);
	assert_int_equal(selector_parse(&s, "{job=~\"a\"}", err, sizeof err), 0);
	assert_false(selector_matches(&s, &nl));
	selector_free(&s);
	labels_free(&nl);
	/* the bomb: 5,000 repeats of .* then x (10 KB) is refused by length */
	size_t n = 5000;
	char *bomb = malloc(2 * n + 64);
	assert_non_null(bomb);
	char *w = bomb + sprintf(bomb, "{__name__=~\"");
	for (size_t i = 0; i < n; i++)
		w += sprintf(w, ".*");
	sprintf(w, "x\"}");
	assert_int_equal(selector_parse(&s, bomb, err, sizeof err), -1);
	assert_non_null(strstr(err, "too long"));
	/* under the length cap, an exponential pattern stops at the match
	 * limit: no match, and the selector says a limit was hit */
	w = bomb + sprintf(bomb, "{job=~\"(a|aa)*(b|c)\"}");
	assert_int_equal(selector_parse(&s, bomb, err, sizeof err), 0);
	char val[64];
	memset(val, 'a', 60);
	val[60] = 0;
	struct labels la;
	struct label_ref ra[2] = { { "__name__", 8, "m", 1 }, { "job", 3, val, 60 } };
	assert_int_equal(labels_from_refs(&la, ra, 2, NULL, err, sizeof err), 0);
	assert_false(selector_matches(&s, &la));
	assert_true(selector_limit_hit(&s));
	selector_free(&s);
	labels_free(&la);
	free(bomb);
	labels_free(&l);
}

static void test_registry(void **st)
{
	(void)st;
	struct series_registry r;
	assert_int_equal(registry_init(&r, 3000, 40, 8, 100), 0);
	assert_int_equal(r.fc_size, 112); /* rounded up to 16 */
	char name[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "m%d", i);
		struct labels l;
		make_labels(&l, name, "api", "200");
		uint64_t h = labels_hash(&l);
		struct series *s = registry_insert(&r, &l, h);
		assert_non_null(s);
		assert_int_equal(l.n, 0); /* moved */
	}
	assert_int_equal(r.n, 3000);
	/* full: the next insert fails and frees the labels */
	struct labels extra;
	make_labels(&extra, "one_more", "api", "200");
	assert_null(registry_insert(&r, &extra, labels_hash(&extra)));
	for (int i = 0; i < 3000; i += 7) {
		snprintf(name, sizeof name, "m%d", i);
		struct label_ref refs[3] = { { "code", 4, "200", 3 }, { "__name__", 8, name, strlen(name) },
			                     { "job", 3, "api", 3 } };
		struct series *s = registry_find_refs(&r, labels_hash_refs(refs, 3), refs, 3);
		assert_non_null(s);
		assert_string_equal(labels_metric_name(&s->labels), name);
	}
	struct label_ref missing[2] = { { "__name__", 8, "m1", 2 }, { "job", 3, "api", 3 } };
	assert_null(registry_find_refs(&r, labels_hash_refs(missing, 2), missing, 2));
	/* history ring keeps the last cap entries in order, packed losslessly
	 * enough: ms timestamps, float values, score to 1/65535, band to bfloat16 */
	struct series *s = r.v[0];
	for (int i = 0; i < 20; i++) {
		struct hist_point e = { .ts_ms = 1767225600000LL + i * 1500, .value = i * 1.5,
			                .score = i / 19.0, .expected = 10, .lower = 9, .upper = 12.5,
			                .direction = i % 3 - 1, .comp = (unsigned)i % 5 };
		series_hist_push(s, r.hist_cap, &e);
	}
	assert_int_equal(s->hist_len, 8);
	struct hist_point h;
	series_hist_get(s, r.hist_cap, 7, &h);
	assert_true(h.ts_ms == 1767225600000LL + 19 * 1500);
	assert_true(h.value == 19 * 1.5);
	assert_true(fabs(h.score - 1.0) < 1e-4);
	assert_true(fabs(h.lower - 9) < 0.01 && fabs(h.upper - 12.5) < 0.02);
	assert_int_equal(h.direction, 19 % 3 - 1);
	assert_int_equal(h.comp, 19 % 5);
	series_hist_get(s, r.hist_cap, 0, &h);
	assert_true(h.ts_ms == 1767225600000LL + 12 * 1500);
	/* a gap of 30 days rebases the offsets; older points fall off */
	struct hist_point late = { .ts_ms = 1767225600000LL + 30LL * 86400000, .value = 1 };
	series_hist_push(s, r.hist_cap, &late);
	series_hist_get(s, r.hist_cap, s->hist_len - 1, &h);
	assert_true(h.ts_ms == late.ts_ms);
	assert_true(s->hist_len >= 1);
	assert_int_equal(registry_resize_state(&r, 80), 0);
	assert_int_equal(r.state_size, 80);
	/* forecaster pool: zeroed, 16-byte aligned, disjoint states over
	 * several slabs, freed with the registry */
	enum { NFC = 3 * REG_FC_SLAB + 5 };
	static unsigned char *fc[NFC];
	for (int i = 0; i < NFC; i++) {
		fc[i] = registry_fc_alloc(&r);
		assert_non_null(fc[i]);
		assert_int_equal((uintptr_t)fc[i] % 16, 0);
		for (size_t k = 0; k < r.fc_size; k++)
			assert_int_equal(fc[i][k], 0);
		memset(fc[i], i & 0xff, r.fc_size);
	}
	assert_int_equal(r.fc_nslabs, 4);
	for (int i = 0; i < NFC; i++)
		for (size_t k = 0; k < r.fc_size; k++)
			assert_int_equal(fc[i][k], i & 0xff);
	registry_free(&r);
	/* no forecaster size, no pool */
	assert_int_equal(registry_init(&r, 10, 40, 8, 0), 0);
	assert_null(registry_fc_alloc(&r));
	registry_free(&r);
}

static void test_yaml_tree(void **st)
{
	(void)st;
	const char *doc = "a: 1\nb:\n  c: 5m\n  d: [x, y]\n  e: 10MiB\nf: true\n";
	char err[256];
	struct ynode *root = ytree_load_string(doc, strlen(doc), "t.yml", err, sizeof err);
	assert_non_null(root);
	int64_t v;
	assert_int_equal(ynode_int(ymap_get(root, "a"), "a", &v, err, sizeof err), 0);
	assert_int_equal(v, 1);
	const struct ynode *b = ymap_get(root, "b");
	assert_int_equal(ynode_duration_ms(ymap_get(b, "c"), "c", &v, err, sizeof err), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(ynode_bytes(ymap_get(b, "e"), "e", &v, err, sizeof err), 0);
	assert_int_equal(v, 10 << 20);
	assert_int_equal(ymap_get(b, "d")->n, 2);
	assert_int_equal(ymap_get(b, "d")->line, 4);
	int bo;
	assert_int_equal(ynode_bool(ymap_get(root, "f"), "f", &bo, err, sizeof err), 0);
	assert_true(bo);
	assert_int_equal(ynode_int(ymap_get(b, "c"), "c", &v, err, sizeof err), -1);
	assert_string_equal(err, "t.yml:3: invalid integer '5m' for 'c'");
	static const char *const allowed[] = { "a", "b", NULL };
	assert_int_equal(ymap_check_keys(root, allowed, err, sizeof err), -1);
	assert_string_equal(err, "t.yml:6: unknown key 'f' (allowed: a, b)");
	ytree_free(root);
	assert_null(ytree_load_string("a: [1, 2\n", 9, "bad.yml", err, sizeof err));
	assert_non_null(strstr(err, "bad.yml:"));
	assert_null(ytree_load_string("a: 1\na: 2\n", 10, "dup.yml", err, sizeof err));
	assert_string_equal(err, "dup.yml:2: duplicate key 'a'");
	/* what the libyaml document loader leaves to us: aliases (at the
	 * anchored node), a recursive one (no endless tree), a second document
	 * (at its start), nesting deeper than 64, non-scalar keys */
	const char *al = "a: &x 1\nb: *x\n";
	assert_null(ytree_load_string(al, strlen(al), "al.yml", err, sizeof err));
	assert_string_equal(err, "al.yml:1: aliases are not supported");
	const char *rec = "a: &x [1, *x]\n";
	assert_null(ytree_load_string(rec, strlen(rec), "rec.yml", err, sizeof err));
	assert_string_equal(err, "rec.yml:1: aliases are not supported");
	const char *two = "a: 1\n---\nb: 2\n";
	assert_null(ytree_load_string(two, strlen(two), "two.yml", err, sizeof err));
	assert_string_equal(err, "two.yml:2: only one YAML document is allowed");
	char deep[200];
	memset(deep, '[', 70);
	memset(deep + 70, ']', 70);
	deep[140] = '\0';
	assert_null(ytree_load_string(deep, strlen(deep), "deep.yml", err, sizeof err));
	assert_string_equal(err, "deep.yml:1: nesting too deep");
	const char *cx = "? [1]\n: 2\n";
	assert_null(ytree_load_string(cx, strlen(cx), "cx.yml", err, sizeof err));
	assert_string_equal(err, "cx.yml:1: mapping keys must be scalars");
	struct ynode *empty = ytree_load_string("", 0, "e.yml", err, sizeof err);
	assert_non_null(empty);
	assert_int_equal(empty->type, Y_MAP);
	assert_int_equal(empty->n, 0);
	ytree_free(empty);
	assert_int_equal(parse_duration_ms("1h30m", &v), 0);
	assert_int_equal(v, 5400000);
	assert_int_equal(parse_duration_ms("250ms", &v), 0);
	assert_int_equal(v, 250);
	assert_int_equal(parse_duration_ms("5x", &v), -1);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_settings(void **st)
{
	(void)st;
	char dir[] = "/tmp/fs-settings-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/c.yml", dir);
	write_file(path, "listen: 127.0.0.1:1234\nlimits:\n  max_series: 10\nhttp:\n  max_body: 1MiB\n"
	                 "alerts:\n  retention: 2d\n");
	struct fs_config c;
	config_defaults(&c);
	char err[256];
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_string_equal(c.listen, "127.0.0.1:1234");
	assert_int_equal(c.engine.max_series, 10);
	assert_int_equal(c.max_body, 1 << 20);
	assert_int_equal(c.engine.alert_retention_ms, 2LL * 86400000);
	assert_string_equal(c.data_dir, "./var");
	/* per-series alerts: the daemon's defaults, then settings and a bad one */
	assert_true(c.engine.series_threshold < 0);
	assert_true(c.engine.series_min_factor == 2);
	assert_int_equal(c.engine.series_for_ms, 10 * 60000);
	assert_true(c.engine.series_break_factor == 5);
	assert_int_equal(c.engine.series_break_ms, 60000);
	config_free(&c);
	write_file(path, "alerts:\n  threshold: 0.49\n  for: 0s\n  min_factor: 1.5\n"
	                 "  break_factor: 0\n  break_for: 2m\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_true(c.engine.series_threshold == 0.49);
	assert_true(c.engine.series_min_factor == 1.5);
	assert_int_equal(c.engine.series_for_ms, 0);
	assert_true(c.engine.series_break_factor == 0);
	assert_int_equal(c.engine.series_break_ms, 120000);
	config_free(&c);
	write_file(path, "alerts:\n  min_factor: 0.5\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "c.yml:2: 'min_factor' must be between 1 and 1000"));
	config_free(&c);
	write_file(path, "listen: x\nlimits:\n  max_serie: 10\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "c.yml:3: unknown key 'max_serie'"));
	config_free(&c);
	write_file(path, "log_level: loud\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "c.yml:1: invalid log_level 'loud'"));
	config_free(&c);
	/* which series have a forecaster: requested by default, all, none, a bad value */
	config_defaults(&c);
	assert_int_equal(c.engine.forecast, ENGINE_FORECAST_REQUESTED);
	config_free(&c);
	write_file(path, "forecast:\n  series: all\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_int_equal(c.engine.forecast, ENGINE_FORECAST_ALL);
	config_free(&c);
	write_file(path, "forecast:\n  series: none\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_int_equal(c.engine.forecast, ENGINE_FORECAST_OFF);
	config_free(&c);
	write_file(path, "forecast:\n  series: some\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "c.yml:2: invalid forecast series 'some' (requested, all, none)"));
	config_free(&c);
	/* the write queue: defaults, a setting, and a bad value */
	config_defaults(&c);
	assert_int_equal(c.max_queued_writes, 1024);
	assert_int_equal(c.queue_timeout_ms, 2000);
	config_free(&c);
	write_file(path, "http:\n  max_queued_writes: 0\n  queue_timeout: 500ms\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_int_equal(c.max_queued_writes, 0);
	assert_int_equal(c.queue_timeout_ms, 500);
	config_free(&c);
	write_file(path, "http:\n  queue_timeout: 10m\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "c.yml:2: 'queue_timeout' must be between 0s and 5m"));
	config_free(&c);
	/* external_labels: a map, sorted; --shard (config_set_external_label) overrides */
	write_file(path, "external_labels:\n  shard: a\n  region: eu\n");
	config_defaults(&c);
	assert_int_equal(c.external_labels.n, 0);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), 0);
	assert_int_equal(c.external_labels.n, 2);
	assert_string_equal(c.external_labels.names[0], "region");
	assert_string_equal(labels_get(&c.external_labels, "shard"), "a");
	assert_int_equal(config_set_external_label(&c, "shard", "b", err, sizeof err), 0);
	assert_int_equal(c.external_labels.n, 2);
	assert_string_equal(labels_get(&c.external_labels, "shard"), "b");
	assert_string_equal(labels_get(&c.external_labels, "region"), "eu");
	assert_int_equal(config_set_external_label(&c, "__shard", "b", err, sizeof err), -1);
	assert_int_equal(config_set_external_label(&c, "sh-ard", "b", err, sizeof err), -1);
	assert_non_null(strstr(err, "invalid external label name 'sh-ard'"));
	assert_int_equal(config_set_external_label(&c, "shard", "", err, sizeof err), -1);
	for (int i = 0; i < CONFIG_MAX_EXTERNAL_LABELS - 2; i++) {
		char name[16];
		snprintf(name, sizeof name, "l%d", i);
		assert_int_equal(config_set_external_label(&c, name, "v", err, sizeof err), 0);
	}
	assert_int_equal(config_set_external_label(&c, "shard", "c", err, sizeof err), 0);
	assert_int_equal(config_set_external_label(&c, "one_more", "v", err, sizeof err), -1);
	assert_non_null(strstr(err, "too many external labels"));
	config_free(&c);
	write_file(path, "external_labels:\n  shard: a\n  bad-name: x\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "c.yml:3: invalid external label name 'bad-name'"));
	config_free(&c);
	write_file(path, "external_labels: [a, b]\n");
	config_defaults(&c);
	assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
	assert_non_null(strstr(err, "c.yml:1: 'external_labels' must be a mapping"));
	config_free(&c);
	unlink(path);
	rmdir(dir);
}

struct count_ctx {
	int n;
	int firing;
	int pending;
};

static int count_alerts(void *ctx, const struct alert_rec *r)
{
	struct count_ctx *c = ctx;
	c->n++;
	c->firing += !strcmp(r->state, "firing");
	c->pending += !strcmp(r->state, "pending");
	return 0;
}

static int count_series(void *ctx, const struct series_info *s)
{
	(*(int *)ctx)++;
	assert_true(s->samples > 0);
	return 0;
}

static void test_engine(void **st)
{
	(void)st;
	char dir[] = "/tmp/fs-engine-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char db[256], err[256];
	snprintf(db, sizeof db, "%s/f.db", dir);
	struct store *store = store_open(db, err, sizeof err);
	assert_non_null(store);
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.max_series = 2;
	cfg.history_points = 16;
	struct engine *e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);

	struct engine_batch b;
	engine_batch_begin(e, &b);
	uint64_t seed = 42;
	int64_t t0 = 1767225600000LL;
	for (int i = 0; i < 2000; i++) {
		seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
		double noise = ((double)(seed >> 11) / 9007199254740992.0 - 0.5) * 2;
		double v = (i < 1500 ? 100 : 160) + noise;
		struct label_ref r[2] = { REF("__name__", "lat"), REF("svc", "a") };
		assert_int_equal(engine_batch_add(&b, r, 2, t0 + i * 10000LL, v, err, sizeof err), 0);
	}
	struct label_ref r2[2] = { REF("__name__", "lat"), REF("svc", "a") };
	/* duplicate and out of order */
	assert_int_equal(engine_batch_add(&b, r2, 2, t0, 1, err, sizeof err), REJ_OUT_OF_ORDER + 1);
	assert_non_null(strstr(err, "out-of-order sample for 'lat{svc=\"a\"}'"));
	assert_int_equal(engine_batch_add(&b, r2, 2, t0 + 1999 * 10000LL, 1, err, sizeof err),
	                 REJ_DUPLICATE + 1);
	assert_non_null(strstr(err, "duplicate sample for 'lat{svc=\"a\"}'"));
	assert_int_equal(engine_batch_add(&b, r2, 2, t0 + 3000 * 10000LL, NAN, err, sizeof err),
	                 REJ_NON_FINITE + 1);
	/* cardinality */
	struct label_ref r3[1] = { REF("__name__", "b") };
	struct label_ref r4[1] = { REF("__name__", "c") };
	assert_int_equal(engine_batch_add(&b, r3, 1, t0, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_add(&b, r4, 1, t0, 1, err, sizeof err), REJ_CARDINALITY + 1);
	assert_non_null(strstr(err, "'c'"));
	struct label_ref bad[1] = { REF("__name__", "9bad") };
	assert_int_equal(engine_batch_add(&b, bad, 1, t0, 1, err, sizeof err), REJ_LABELS + 1);
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(b.res.accepted, 2001);
	assert_int_equal(stats.samples_accepted, 2001);
	assert_int_equal(stats.samples_rejected[REJ_DUPLICATE], 1);

	struct count_ctx cc = { 0 };
	assert_int_equal(store_alerts_scan(store, 1, 0, count_alerts, &cc), 0);
	assert_true(cc.n >= 1); /* the level shift raised an alert, durable in the store */
	int ns = 0;
	engine_series_foreach(e, NULL, 0, count_series, &ns);
	assert_int_equal(ns, 2);

	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	engine_free(e);
	/* restore into a fresh engine */
	e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);
	assert_int_equal(engine_restore(e, err, sizeof err), 2);
	struct engine_stats es;
	engine_get_stats(e, &es);
	assert_int_equal(es.series, 2);
	assert_int_equal(es.last_sample_ms, t0 + 1999 * 10000LL);
	engine_batch_begin(e, &b);
	/* the restored series still rejects old samples: state came back */
	assert_int_equal(engine_batch_add(&b, r2, 2, t0 + 5 * 10000LL, 1, err, sizeof err),
	                 REJ_OUT_OF_ORDER + 1);
	engine_batch_end(&b);
	engine_free(e);
	store_close(store);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static int key_collect(void *ctx, const struct series_info *si)
{
	char **keys = ctx;
	for (int i = 0; i < 3; i++)
		if (!keys[i]) {
			keys[i] = strdup(si->key);
			break;
		}
	return 0;
}

/* A series keeps its labels, not its key: the key readers get is written
 * from the labels, whatever its length (one longer than the readers' 512
 * bytes), and an alert's series_key is the same text. */
static void test_engine_series_key(void **st)
{
	(void)st;
	char err[256];
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	struct engine *e = engine_new(&cfg, model_builtin_default(), NULL, &stats, err, sizeof err);
	assert_non_null(e);
	char longv[700];
	memset(longv, 'v', sizeof longv - 1);
	longv[sizeof longv - 1] = 0;
	longv[10] = '"';
	struct engine_batch b;
	engine_batch_begin(e, &b);
	struct label_ref a[3] = { REF("zz", "1"), REF("__name__", "k"), REF("path", longv) };
	struct label_ref c[2] = { REF("__name__", "short"), REF("q", "a\\b") };
	assert_int_equal(engine_batch_add(&b, a, 3, 1767225600000LL, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_add(&b, c, 2, 1767225600000LL, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_end(&b), 0);
	char *keys[3] = { NULL, NULL, NULL };
	assert_int_equal(engine_series_foreach(e, NULL, 0, key_collect, keys), 0);
	assert_non_null(keys[0]);
	assert_non_null(keys[1]);
	assert_null(keys[2]);
	struct labels la, lc;
	assert_int_equal(labels_from_refs(&la, a, 3, NULL, err, sizeof err), 0);
	assert_int_equal(labels_from_refs(&lc, c, 2, NULL, err, sizeof err), 0);
	char *wa = labels_to_string(&la), *wc = labels_to_string(&lc);
	assert_true(strlen(wa) > 700);
	int a0 = !strcmp(keys[0], wa);
	assert_string_equal(keys[a0 ? 0 : 1], wa);
	assert_string_equal(keys[a0 ? 1 : 0], wc);
	assert_string_equal(wc, "short{q=\"a\\\\b\"}");
	free(wa);
	free(wc);
	free(keys[0]);
	free(keys[1]);
	labels_free(&la);
	labels_free(&lc);
	engine_free(e);
}

struct fired {
	const char *key;
	int64_t firing_at_ms;
};

static int find_fired(void *ctx, const struct alert_rec *r)
{
	struct fired *f = ctx;
	if (!strcmp(r->series_key, f->key) && r->firing_at_ms > 0 &&
	    (!f->firing_at_ms || r->firing_at_ms < f->firing_at_ms))
		f->firing_at_ms = r->firing_at_ms;
	return 0;
}

/* Per-series alerts with the daemon's defaults (settings.c) page on a
 * sustained anomaly 2x off its expected value (10 min), not on a 1.6x shift
 * or a 2-minute spike; with the engine's defaults (the model's own alerting) the
 * 1.6x shift fires on the detection. */
static void test_engine_series_alerts(void **st)
{
	(void)st;
	for (int daemon = 0; daemon < 2; daemon++) {
		char dir[] = "/tmp/fs-engine-XXXXXX";
		assert_non_null(mkdtemp(dir));
		char db[256], err[256];
		snprintf(db, sizeof db, "%s/f.db", dir);
		struct store *store = store_open(db, err, sizeof err);
		assert_non_null(store);
		struct selfstats stats;
		selfstats_init(&stats);
		struct engine_config cfg;
		engine_config_default(&cfg);
		if (daemon) {
			struct fs_config c;
			config_defaults(&c);
			cfg.series_threshold = c.engine.series_threshold;
			cfg.series_min_factor = c.engine.series_min_factor;
			cfg.series_for_ms = c.engine.series_for_ms;
			config_free(&c);
		}
		struct engine *e = engine_new(&cfg, model_builtin_default(), store, &stats, err,
		                              sizeof err);
		assert_non_null(e);
		static const char *const names[] = { "shift16", "spike3", "shift3" };
		const double level[] = { 160, 300, 300 };
		const int len[] = { 120, 12, 120 }; /* samples of 10 s */
		int64_t t0 = 1767225600000LL, tev = t0 + 2000 * 10000LL;
		for (int k = 0; k < 3; k++) {
			struct engine_batch b;
			engine_batch_begin(e, &b);
			uint64_t seed = 7 + (uint64_t)k;
			for (int i = 0; i < 2400; i++) {
				seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
				double noise = ((double)(seed >> 11) / 9007199254740992.0 - 0.5) * 2;
				double v = (i >= 2000 && i < 2000 + len[k] ? level[k] : 100) + noise;
				struct label_ref r[1] = { { "__name__", 8, names[k], strlen(names[k]) } };
				assert_int_equal(engine_batch_add(&b, r, 1, t0 + i * 10000LL, v, err,
				                                  sizeof err), 0);
			}
			assert_int_equal(engine_batch_end(&b), 0);
		}
		struct fired f[3] = { { "shift16", 0 }, { "spike3", 0 }, { "shift3", 0 } };
		for (int k = 0; k < 3; k++)
			assert_int_equal(store_alerts_scan(store, 1, 0, find_fired, &f[k]), 0);
		if (daemon) {
			assert_int_equal(f[0].firing_at_ms, 0);
			assert_int_equal(f[1].firing_at_ms, 0);
			assert_true(f[2].firing_at_ms >= tev + 10 * 60000);
			assert_true(f[2].firing_at_ms <= tev + 12 * 60000);
		} else {
			assert_true(f[0].firing_at_ms >= tev && f[0].firing_at_ms <= tev + 60000);
			assert_true(f[2].firing_at_ms >= tev && f[2].firing_at_ms <= tev + 60000);
		}
		engine_free(e);
		store_close(store);
		char cmd[512];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
}

/* With the daemon's defaults: a latency (or error) series that falls far
 * below its expected value raises nothing (only a rise is trouble there),
 * another series does after `for`; an error series jumping 30x beyond
 * anything it showed in a day fires within a minute or two (hard break),
 * 4x only after `for`, and a 40x blip earlier raises the bar for the next
 * jump. Samples every 60 s, 1.5 days; the event is at 1.25 days. */
static void test_engine_series_direction_and_break(void **st)
{
	(void)st;
	char dir[] = "/tmp/fs-engine-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char db[256], err[256];
	snprintf(db, sizeof db, "%s/f.db", dir);
	struct store *store = store_open(db, err, sizeof err);
	assert_non_null(store);
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	struct fs_config c;
	config_defaults(&c);
	cfg.series_threshold = c.engine.series_threshold;
	cfg.series_min_factor = c.engine.series_min_factor;
	cfg.series_for_ms = c.engine.series_for_ms;
	cfg.series_break_factor = c.engine.series_break_factor;
	cfg.series_break_ms = c.engine.series_break_ms;
	config_free(&c);
	assert_true(cfg.series_break_factor == 5);
	struct engine *e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);
	static const char *const names[] = { "api_latency_seconds", "queue_depth", "db_errors",
		                             "cache_errors", "disk_errors" };
	const double level[] = { 100.0 / 3, 100.0 / 3, 3000, 400, 3000 };
	const int len[] = { 20, 20, 5, 20, 5 }; /* minutes */
	const int N = 2160, at = 1800;
	int64_t t0 = 1767225600000LL, tev = t0 + at * 60000LL;
	for (int k = 0; k < 5; k++) {
		struct engine_batch b;
		engine_batch_begin(e, &b);
		uint64_t seed = 11 + (uint64_t)k;
		for (int i = 0; i < N; i++) {
			seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
			double noise = ((double)(seed >> 11) / 9007199254740992.0 - 0.5) * 2;
			double v = (i >= at && i < at + len[k] ? level[k] : 100) + noise;
			if (k == 4 && i >= 720 && i < 723) /* a 40x blip at half a day */
				v = 4000;
			struct label_ref r[1] = { { "__name__", 8, names[k], strlen(names[k]) } };
			assert_int_equal(engine_batch_add(&b, r, 1, t0 + i * 60000LL, v, err, sizeof err),
			                 0);
		}
		assert_int_equal(engine_batch_end(&b), 0);
	}
	struct fired f[5];
	for (int k = 0; k < 5; k++) {
		f[k] = (struct fired){ names[k], 0 };
		assert_int_equal(store_alerts_scan(store, 1, 0, find_fired, &f[k]), 0);
	}
	assert_int_equal(f[0].firing_at_ms, 0);                 /* latency falling: fine */
	assert_true(f[1].firing_at_ms >= tev + 10 * 60000);     /* a queue emptying: after `for` */
	assert_true(f[1].firing_at_ms <= tev + 12 * 60000);
	assert_true(f[2].firing_at_ms >= tev + 60000);          /* 30x: a hard break */
	assert_true(f[2].firing_at_ms <= tev + 2 * 60000);
	assert_true(f[3].firing_at_ms >= tev + 10 * 60000);     /* 4x: after `for` */
	assert_true(f[3].firing_at_ms <= tev + 12 * 60000);
	assert_int_equal(f[4].firing_at_ms, 0);                 /* not beyond the blip seen */
	engine_free(e);
	store_close(store);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* Learned state is written incrementally: only series that changed, at
 * most max_series per call, round robin; ids persist across restarts. */
static void test_engine_persist_incremental(void **st)
{
	(void)st;
	char dir[] = "/tmp/fs-persist-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char db[256], err[256];
	snprintf(db, sizeof db, "%s/f.db", dir);
	struct store *store = store_open(db, err, sizeof err);
	assert_non_null(store);
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.history_points = 4;
	struct engine *e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);
	int64_t t0 = 1767225600000LL;
	struct engine_batch b;
	char v[16];
	engine_batch_begin(e, &b);
	for (int i = 0; i < 2500; i++) {
		snprintf(v, sizeof v, "%d", i);
		struct label_ref r[2] = { REF("__name__", "m"), { "i", 1, v, strlen(v) } };
		assert_int_equal(engine_batch_add(&b, r, 2, t0, i, err, sizeof err), 0);
	}
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(engine_dirty_series(e), 2500);
	assert_int_equal(engine_persist(e, 1200, err, sizeof err), 1200); /* bounded */
	assert_int_equal(engine_dirty_series(e), 1300);
	assert_int_equal(engine_persist(e, 0, err, sizeof err), 1300);
	assert_int_equal(engine_dirty_series(e), 0);
	assert_int_equal(engine_persist(e, 0, err, sizeof err), 0); /* nothing changed */
	int64_t max = 0;
	assert_int_equal(store_state_max_sid(store, &max), 0);
	assert_int_equal(max, 2500);
	/* ten series learn more: only they are written again (updates) */
	engine_batch_begin(e, &b);
	for (int i = 0; i < 10; i++) {
		snprintf(v, sizeof v, "%d", i);
		struct label_ref r[2] = { REF("__name__", "m"), { "i", 1, v, strlen(v) } };
		assert_int_equal(engine_batch_add(&b, r, 2, t0 + 10000, i, err, sizeof err), 0);
	}
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(engine_dirty_series(e), 10);
	struct engine_stats es;
	engine_get_stats(e, &es);
	assert_int_equal(es.dirty_series, 10);
	assert_int_equal(es.state_writes, 2500);
	assert_int_equal(engine_persist(e, 0, err, sizeof err), 10);
	engine_free(e); /* as kill -9 would: nothing written at the end */

	e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);
	assert_int_equal(engine_restore(e, err, sizeof err), 2500);
	assert_int_equal(engine_dirty_series(e), 0); /* restored as stored */
	engine_batch_begin(e, &b);
	struct label_ref r0[2] = { REF("__name__", "m"), REF("i", "0") };
	struct label_ref r9[2] = { REF("__name__", "m"), REF("i", "2499") };
	/* series 0 learnt its second sample before the restart, 2499 did not */
	assert_int_equal(engine_batch_add(&b, r0, 2, t0 + 10000, 1, err, sizeof err),
	                 REJ_DUPLICATE + 1);
	assert_int_equal(engine_batch_add(&b, r9, 2, t0 + 10000, 1, err, sizeof err), 0);
	struct label_ref rn[2] = { REF("__name__", "m"), REF("i", "new") };
	assert_int_equal(engine_batch_add(&b, rn, 2, t0, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_end(&b), 0);
	assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
	assert_int_equal(store_state_max_sid(store, &max), 0);
	assert_int_equal(max, 2501); /* ids continue after the restart */
	engine_free(e);
	store_close(store);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

struct values_ctx {
	double v[16];
	int64_t t[16];
	size_t n;
	int kind;
};

static int collect_values(void *ctx, const struct series_info *si, const struct history_point *p,
                          size_t n)
{
	struct values_ctx *c = ctx;
	c->kind = si->kind;
	for (size_t i = 0; i < n && c->n < 16; i++) {
		c->v[c->n] = p[i].value;
		c->t[c->n++] = p[i].ts_ms;
	}
	return 0;
}

static void read_series(struct engine *e, const char *sel, struct values_ctx *c)
{
	struct selector s;
	char err[128];
	memset(c, 0, sizeof *c);
	assert_int_equal(selector_parse(&s, sel, err, sizeof err), 0);
	engine_history(e, &s, 1, 0, INT64_MAX, collect_values, c);
	selector_free(&s);
}

static void test_engine_derived(void **st)
{
	(void)st;
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	char err[256];
	struct engine *e = engine_new(&cfg, model_builtin_default(), NULL, &stats, err, sizeof err);
	assert_non_null(e);
	struct engine_batch b;
	engine_batch_begin(e, &b);
	/* counter with a reset: rates 1, 1, 0.5, 1 per second */
	const double cv[] = { 0, 10, 20, 5, 15 };
	for (int i = 0; i < 5; i++) {
		struct label_ref r[2] = { REF("__name__", "req_total"), REF("job", "a") };
		assert_int_equal(engine_batch_add(&b, r, 2, 1000000 + i * 10000, cv[i], err, sizeof err), 0);
	}
	/* a histogram typed by metadata, two scrapes: 100 observations, 50 <= 0.1, 90 <= 0.5 */
	engine_batch_set_type(&b, "lat_seconds", 11, METRIC_HISTOGRAM);
	const char *les[] = { "0.1", "0.5", "+Inf" };
	const double c1[] = { 10, 20, 30 }, c2[] = { 60, 110, 130 };
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 3; i++) {
			struct label_ref r[3] = { REF("__name__", "lat_seconds_bucket"), REF("job", "a"),
				                  { "le", 2, les[i], strlen(les[i]) } };
			assert_int_equal(engine_batch_add(&b, r, 3, 1000000 + k * 15000,
			                                  k ? c2[i] : c1[i], err, sizeof err),
			                 0);
		}
	/* a gauge-typed family keeps its values even with a counter-like name */
	engine_batch_set_type(&b, "temp_total", 10, METRIC_GAUGE);
	struct label_ref g[1] = { REF("__name__", "temp_total") };
	assert_int_equal(engine_batch_add(&b, g, 1, 1000000, 3, err, sizeof err), 0);
	engine_batch_end(&b);

	struct values_ctx c;
	read_series(e, "foreshock:rate:req_total{job=\"a\"}", &c);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.kind, SERIES_DERIVED);
	assert_true(fabs(c.v[0] - 1) < 1e-6 && fabs(c.v[1] - 1) < 1e-6);
	assert_true(fabs(c.v[2] - 0.5) < 1e-6 && fabs(c.v[3] - 1) < 1e-6);
	read_series(e, "req_total", &c);
	assert_int_equal(c.kind, SERIES_COUNTER);
	assert_int_equal(c.n, 5);
	/* increases: 50 <= 0.1, 90 <= 0.5, 100 total. p50 = 0.1 (rank 50 ends bucket 1);
	 * p90 = 0.5; p99 = +Inf bucket -> highest finite bound 0.5 */
	read_series(e, "foreshock:p50:lat_seconds{job=\"a\"}", &c);
	assert_int_equal(c.n, 1);
	assert_true(fabs(c.v[0] - 0.1) < 1e-6);
	assert_int_equal(c.t[0], 1015000);
	read_series(e, "foreshock:p90:lat_seconds", &c);
	assert_int_equal(c.n, 1);
	assert_true(fabs(c.v[0] - 0.5) < 1e-6);
	read_series(e, "foreshock:p99:lat_seconds", &c);
	assert_true(fabs(c.v[0] - 0.5) < 1e-6);
	read_series(e, "temp_total", &c);
	assert_int_equal(c.kind, SERIES_GAUGE);
	engine_free(e);
}

/* Two threads ingest into one engine at once (the engine is sharded
 * internally): gauges, counters and a histogram per thread, while a third
 * thread reads. Every sample must be counted, every derived series made. */
#define CT_ROUNDS 40
#define CT_GAUGES 300
#define CT_COUNTERS 100
#define CT_GROUPS 8

struct ct_arg {
	struct engine *e;
	int t;
	size_t accepted, rejected, created;
};

/* Thread 0 adds sample by sample, thread 1 stages and commits: both paths
 * run side by side. */
static int ct_add(struct ct_arg *a, struct engine_batch *b, const struct label_ref *l, size_t n,
                  int64_t ts, double v, char *err)
{
	return a->t == 0 ? engine_batch_add(b, l, n, ts, v, err, 256)
	                 : engine_batch_stage(b, l, n, ts, v, err, 256);
}

static void *ct_ingest(void *arg)
{
	struct ct_arg *a = arg;
	char tv[8], iv[16], err[256];
	snprintf(tv, sizeof tv, "%d", a->t);
	const char *les[] = { "0.1", "0.5", "+Inf" };
	for (int r = 0; r < CT_ROUNDS; r++) {
		struct engine_batch b;
		engine_batch_begin(a->e, &b);
		engine_batch_set_type(&b, "ct_lat", 6, METRIC_HISTOGRAM);
		int64_t ts = 1767225600000LL + r * 10000LL;
		for (int i = 0; i < CT_GAUGES + CT_COUNTERS; i++) {
			snprintf(iv, sizeof iv, "%d", i);
			const char *name = i < CT_GAUGES ? "ct_gauge" : "ct_req_total";
			struct label_ref l[3] = { { "__name__", 8, name, strlen(name) },
				                  { "t", 1, tv, strlen(tv) },
				                  { "i", 1, iv, strlen(iv) } };
			double v = i < CT_GAUGES ? 50 + (i + r) % 7 : 10.0 * r; /* counters: 1/s */
			if (ct_add(a, &b, l, 3, ts, v, err) != 0)
				fail_msg("rejected: %s", err);
		}
		for (int g = 0; g < CT_GROUPS; g++) {
			snprintf(iv, sizeof iv, "%d", g);
			for (int k = 0; k < 3; k++) {
				struct label_ref l[4] = { REF("__name__", "ct_lat_bucket"),
					                  { "t", 1, tv, strlen(tv) },
					                  { "g", 1, iv, strlen(iv) },
					                  { "le", 2, les[k], strlen(les[k]) } };
				double v = (double)r * (k + 1) * 10;
				if (ct_add(a, &b, l, 4, ts, v, err) != 0)
					fail_msg("rejected: %s", err);
			}
		}
		if (a->t == 1 && engine_batch_commit(&b, NULL, NULL) != 0)
			fail_msg("commit refused samples");
		if (engine_batch_end(&b) != 0)
			fail_msg("batch_end failed");
		a->accepted += b.res.accepted;
		a->created += b.res.series_created;
		for (int k = 0; k < REJ__COUNT; k++)
			a->rejected += b.res.rejected[k];
	}
	return NULL;
}

static volatile int ct_stop;

static int ct_count(void *ctx, const struct series_info *s)
{
	(void)s;
	(*(size_t *)ctx)++;
	return 0;
}

static void *ct_read(void *arg)
{
	struct engine *e = arg;
	while (!__atomic_load_n(&ct_stop, __ATOMIC_RELAXED)) {
		size_t n = 0;
		engine_series_foreach(e, NULL, 0, ct_count, &n);
		struct engine_stats es;
		engine_get_stats(e, &es);
	}
	return NULL;
}

struct ct_check {
	size_t series, rates, quantiles, bad;
};

static int ct_check_cb(void *ctx, const struct series_info *s)
{
	struct ct_check *c = ctx;
	c->series++;
	const char *name = labels_metric_name(s->labels);
	if (!strncmp(name, "foreshock:rate:", 15)) {
		c->rates++;
		if (s->samples != CT_ROUNDS - 1 || fabs(s->last_value - 1.0) > 1e-9)
			c->bad++;
	} else if (!strncmp(name, "foreshock:p", 11)) {
		c->quantiles++;
		if (s->samples != CT_ROUNDS - 1 || strcmp(strchr(name + 11, ':'), ":ct_lat"))
			c->bad++;
	} else if (s->samples != CT_ROUNDS) {
		c->bad++;
	}
	return 0;
}

static void test_engine_concurrent(void **st)
{
	(void)st;
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	char err[256];
	struct engine *e = engine_new(&cfg, model_builtin_default(), NULL, &stats, err, sizeof err);
	assert_non_null(e);
	struct ct_arg a[2] = { { .e = e, .t = 0 }, { .e = e, .t = 1 } };
	pthread_t th[2], rd;
	ct_stop = 0;
	assert_int_equal(pthread_create(&rd, NULL, ct_read, e), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, ct_ingest, &a[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	__atomic_store_n(&ct_stop, 1, __ATOMIC_RELAXED);
	pthread_join(rd, NULL);

	size_t per_thread = (size_t)CT_ROUNDS * (CT_GAUGES + CT_COUNTERS + CT_GROUPS * 3);
	size_t raw = CT_GAUGES + CT_COUNTERS + CT_GROUPS * 3;
	size_t derived = CT_COUNTERS + CT_GROUPS * cfg.nquantiles;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(a[i].accepted, per_thread);
		assert_int_equal(a[i].rejected, 0);
		assert_int_equal(a[i].created, raw + derived);
	}
	assert_int_equal(stats.samples_accepted, 2 * per_thread);
	struct ct_check c = { 0 };
	engine_series_foreach(e, NULL, 0, ct_check_cb, &c);
	assert_int_equal(c.series, 2 * (raw + derived));
	assert_int_equal(c.rates, 2 * CT_COUNTERS);
	assert_int_equal(c.quantiles, 2 * CT_GROUPS * cfg.nquantiles);
	assert_int_equal(c.bad, 0);
	struct engine_stats es;
	engine_get_stats(e, &es);
	assert_int_equal(es.series, 2 * (raw + derived));
	assert_int_equal(es.last_sample_ms, 1767225600000LL + (CT_ROUNDS - 1) * 10000LL);
	engine_free(e);
}

/* Staged ingest (engine_batch_stage + engine_batch_commit, what the HTTP
 * handlers use) gives the same result as engine_batch_add sample by sample:
 * same accepted and refused samples with the same reasons, reported at the
 * staging index of the refused sample, and the same detector state (last
 * score, expected value, sample count) in every series, derived ones
 * included. Bodies mix timestamps, unsorted labels, counters and histogram
 * buckets, duplicates, out-of-order samples and bad names. */
#define SG_SERIES 40
#define SG_ROUNDS 400

struct sg_rej {
	size_t idx[4096];
	int rc[4096];
	size_t n;
};

static void sg_on_reject(void *ctx, size_t index, int rc, const char *err)
{
	struct sg_rej *r = ctx;
	assert_non_null(err);
	assert_true(err[0] != 0);
	if (r->n < 4096) {
		r->idx[r->n] = index;
		r->rc[r->n++] = rc;
	}
}

struct sg_state {
	char key[160];
	uint64_t samples;
	double score, expected;
};

struct sg_dump {
	struct sg_state s[512];
	size_t n;
};

static int sg_collect(void *ctx, const struct series_info *si)
{
	struct sg_dump *d = ctx;
	if (d->n < 512) {
		struct sg_state *x = &d->s[d->n++];
		snprintf(x->key, sizeof x->key, "%s", si->key);
		x->samples = si->samples;
		x->score = si->last.score;
		x->expected = si->last.expected;
	}
	return 0;
}

static int sg_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sg_state *)a)->key, ((const struct sg_state *)b)->key);
}

/* The i-th sample of round r: fills l (labels, deliberately unsorted for odd
 * series) and returns the number of labels; *ts and *v are its time/value. */
static size_t sg_sample(int r, int i, struct label_ref *l, char *iv, int64_t *ts, double *v)
{
	snprintf(iv, 16, "%d", i);
	int64_t base = 1767225600000LL + (int64_t)r * 10000;
	*ts = base + (i % 3) * 1000; /* three timestamps per body: runs of equal time */
	*v = 100 + 20 * sin(r * 0.05 + i) + (r > 300 && i % 5 == 0 ? 80 : 0) + (i % 7);
	size_t n = 0;
	if (i % 10 == 9) { /* a counter: becomes foreshock:rate:sg_req_total */
		l[n++] = (struct label_ref){ "__name__", 8, "sg_req_total", 12 };
		*v = 7.0 * r + i;
	} else if (i % 10 == 8 && i < 30) { /* one histogram group: buckets 8, 18, 28 */
		static const char *les[3] = { "0.1", "1", "+Inf" };
		const char *le = les[i / 10];
		l[n++] = (struct label_ref){ "__name__", 8, "sg_lat_bucket", 13 };
		l[n++] = (struct label_ref){ "le", 2, le, strlen(le) };
		*ts = base;
		*v = (double)r * (i / 10 + 1);
	} else {
		l[n++] = (struct label_ref){ "__name__", 8, "sg_gauge", 8 };
	}
	if (i % 2) { /* unsorted */
		l[n++] = (struct label_ref){ "zone", 4, "b", 1 };
		l[n++] = (struct label_ref){ "i", 1, iv, strlen(iv) };
	} else {
		l[n++] = (struct label_ref){ "i", 1, iv, strlen(iv) };
		l[n++] = (struct label_ref){ "zone", 4, "a", 1 };
	}
	if (i % 10 == 8 && i < 30) { /* the buckets share every label but le */
		snprintf(iv, 16, "g");
		l[n - 2].value = l[n - 1].value = NULL;
		l[n - 2] = (struct label_ref){ "i", 1, iv, 1 };
		l[n - 1] = (struct label_ref){ "zone", 4, "h", 1 };
	}
	return n;
}

/* Timestamps: the window around the clock of a live batch (out_of_bounds,
 * counted, the other samples kept), no window for event-time batches, and
 * INT64_MIN/INT64_MAX refused everywhere (no signed overflow downstream:
 * run under UBSan in the sanitizer build). */
static void test_engine_time_window(void **st)
{
	(void)st;
	struct selfstats ss;
	selfstats_init(&ss);
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.max_sample_age_ms = 3600 * 1000;
	char err[320];
	struct engine *e = engine_new(&cfg, model_builtin_default(), NULL, &ss, err, sizeof err);
	assert_non_null(e);
	const int64_t now = 1700000000000;
	struct label_ref l[2] = { { "__name__", 8, "t", 1 }, { "k", 1, "a", 1 } };
	struct engine_batch b;
	engine_batch_begin(e, &b);
	engine_batch_set_clock(&b, now);
	assert_int_equal(engine_batch_add(&b, l, 2, now - 1000, 1, err, sizeof err), 0);
	/* 2262 (the sample) and 11 minutes ahead: out of bounds */
	assert_int_equal(engine_batch_add(&b, l, 2, 9223372036854, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_non_null(strstr(err, "ahead of the server's clock"));
	assert_int_equal(engine_batch_add(&b, l, 2, now + 11 * 60000, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_add(&b, l, 2, now - 2 * 3600000, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_non_null(strstr(err, "behind the server's clock"));
	assert_int_equal(engine_batch_add(&b, l, 2, INT64_MAX, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_add(&b, l, 2, INT64_MIN, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	/* within the window, the series goes on (the far-future one did not poison it) */
	assert_int_equal(engine_batch_add(&b, l, 2, now + 5 * 60000, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_stage(&b, l, 2, INT64_MAX, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_stage(&b, l, 2, now + 6 * 60000, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_commit(&b, NULL, NULL), 0);
	assert_int_equal(b.res.rejected[REJ_OUT_OF_BOUNDS], 6);
	engine_batch_end(&b);
	assert_int_equal(atomic_load(&ss.samples_rejected[REJ_OUT_OF_BOUNDS]), 6);
	/* event time (replay, backtest): old data passes, the absolute limit holds */
	struct label_ref l2[2] = { { "__name__", 8, "t", 1 }, { "k", 1, "old", 3 } };
	engine_batch_begin(e, &b);
	assert_int_equal(engine_batch_add(&b, l2, 2, 86400000, 1, err, sizeof err), 0);
	assert_int_equal(engine_batch_add(&b, l2, 2, INT64_MAX, 1, err, sizeof err),
	                 REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(engine_batch_add(&b, l2, 2, 86400000 + ENGINE_TS_LIMIT_MS, 1, err,
	                                  sizeof err), REJ_OUT_OF_BOUNDS + 1);
	for (int i = 1; i < 50; i++)
		assert_int_equal(engine_batch_add(&b, l2, 2, 86400000 + i * 1000, i % 3, err,
		                                  sizeof err), 0);
	engine_batch_end(&b);
	engine_free(e);
}

static int count_alert(void *ctx, const struct alert_rec *rec)
{
	(void)rec;
	(*(int *)ctx)++;
	return 0;
}

/* The retention horizon follows the newest sample but never passes the wall
 * clock: an event-time sample dated 30 days ahead does not prune history. */
static void test_engine_prune_horizon(void **st)
{
	(void)st;
	char dir[] = "/tmp/fs-engine-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char db[256], err[256];
	snprintf(db, sizeof db, "%s/f.db", dir);
	struct store *store = store_open(db, err, sizeof err);
	assert_non_null(store);
	struct timespec tsp;
	clock_gettime(CLOCK_REALTIME, &tsp);
	int64_t now = (int64_t)tsp.tv_sec * 1000;
	struct alert_rec r = { .series_key = "m{a=\"1\"}", .state = "resolved",
		               .active_at_ms = now - 3600000, .resolved_at_ms = now - 1800000,
		               .event_at_ms = now - 1800000 };
	assert_int_equal(store_alerts_write(store, &r, 1, err, sizeof err), 0);
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	struct engine *e = engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
	assert_non_null(e);
	struct label_ref l[1] = { { "__name__", 8, "f", 1 } };
	struct engine_batch b;
	engine_batch_begin(e, &b); /* event time: no window */
	assert_int_equal(engine_batch_add(&b, l, 1, now + 30LL * 86400000, 1, err, sizeof err), 0);
	engine_batch_end(&b);
	/* without the cap the horizon would be now + 23 days and prune it */
	assert_int_equal(engine_prune(e), 0); /* the 30-minute-old alert stays */
	int n = 0;
	assert_int_equal(store_alerts_scan(store, 1, 0, count_alert, &n), 0);
	assert_int_equal(n, 1);
	engine_free(e);
	store_close(store);
	unlink(db);
	char p[300];
	snprintf(p, sizeof p, "%s-wal", db);
	unlink(p);
	snprintf(p, sizeof p, "%s-shm", db);
	unlink(p);
	rmdir(dir);
}

static void test_engine_staged(void **st)
{
	(void)st;
	struct selfstats sa, sb;
	selfstats_init(&sa);
	selfstats_init(&sb);
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.max_series = 200;
	char err[320];
	struct engine *ea = engine_new(&cfg, model_builtin_default(), NULL, &sa, err, sizeof err);
	struct engine *eb = engine_new(&cfg, model_builtin_default(), NULL, &sb, err, sizeof err);
	assert_non_null(ea);
	assert_non_null(eb);
	size_t total_refused = 0;
	for (int r = 0; r < SG_ROUNDS; r++) {
		struct engine_batch ba, bb;
		engine_batch_begin(ea, &ba);
		engine_batch_begin(eb, &bb);
		engine_batch_set_type(&ba, "sg_lat", 6, METRIC_HISTOGRAM);
		engine_batch_set_type(&bb, "sg_lat", 6, METRIC_HISTOGRAM);
		struct sg_rej want = { .n = 0 }, got = { .n = 0 };
		size_t staged = 0;
		for (int i = 0; i < SG_SERIES + 4; i++) {
			struct label_ref l[4];
			char iv[16];
			int64_t ts;
			double v;
			size_t n;
			if (i < SG_SERIES) {
				n = sg_sample(r, i, l, iv, &ts, &v);
			} else { /* extras: duplicate, out of order, bad name, over the limit */
				n = sg_sample(r, i - SG_SERIES, l, iv, &ts, &v);
				if (i == SG_SERIES + 1)
					ts -= 20000;
				if (i == SG_SERIES + 2)
					l[0] = (struct label_ref){ "__name__", 8, "9bad", 4 };
				if (i == SG_SERIES + 3 && r % 50 != 7)
					continue; /* a new series now and then, up to max_series */
				if (i == SG_SERIES + 3)
					snprintf(iv, 16, "new%d", r);
			}
			int ra = engine_batch_add(&ba, l, n, ts, v, err, sizeof err);
			if (ra) {
				want.idx[want.n] = staged;
				want.rc[want.n++] = ra;
			}
			int rb = engine_batch_stage(&bb, l, n, ts, v, err, sizeof err);
			assert_int_equal(rb, 0);
			staged++;
			if (i == 5) { /* a non-finite value is refused at once */
				assert_int_equal(engine_batch_add(&ba, l, n, ts, NAN, err, sizeof err),
				                 REJ_NON_FINITE + 1);
				assert_int_equal(engine_batch_stage(&bb, l, n, ts, NAN, err, sizeof err),
				                 REJ_NON_FINITE + 1);
			}
		}
		/* ba's batch holds one of ea's shard locks: end it before bb's
		 * commit takes eb's (one thread, shard locks in rank order:
		 * util/lockrank.h, checked in --enable-debug builds) */
		assert_int_equal(engine_batch_end(&ba), 0);
		size_t refused = engine_batch_commit(&bb, sg_on_reject, &got);
		assert_int_equal(refused, got.n);
		assert_int_equal(want.n, got.n);
		/* commit reports in processing order; compare as sets of (index, rc) */
		for (size_t k = 0; k < want.n; k++) {
			int found = 0;
			for (size_t j = 0; j < got.n; j++)
				found |= got.idx[j] == want.idx[k] && got.rc[j] == want.rc[k];
			if (!found)
				fail_msg("round %d: sample %zu refused (%d) by add, not by commit", r,
				         want.idx[k], want.rc[k]);
		}
		total_refused += refused;
		assert_int_equal(engine_batch_end(&bb), 0);
		assert_int_equal(ba.res.accepted, bb.res.accepted);
		assert_int_equal(ba.res.series_created, bb.res.series_created);
		for (int k = 0; k < REJ__COUNT; k++)
			assert_int_equal(ba.res.rejected[k], bb.res.rejected[k]);
	}
	assert_true(total_refused >= 3 * SG_ROUNDS); /* dup, out of order, bad name each round */
	assert_int_equal(sa.samples_accepted, sb.samples_accepted);
	static struct sg_dump da, db;
	memset(&da, 0, sizeof da);
	memset(&db, 0, sizeof db);
	engine_series_foreach(ea, NULL, 0, sg_collect, &da);
	engine_series_foreach(eb, NULL, 0, sg_collect, &db);
	assert_int_equal(da.n, db.n);
	assert_true(da.n > SG_SERIES); /* derived series too */
	qsort(da.s, da.n, sizeof da.s[0], sg_cmp);
	qsort(db.s, db.n, sizeof db.s[0], sg_cmp);
	int derived = 0, scored = 0;
	for (size_t k = 0; k < da.n; k++) {
		assert_string_equal(da.s[k].key, db.s[k].key);
		assert_int_equal(da.s[k].samples, db.s[k].samples);
		assert_true(da.s[k].score == db.s[k].score);
		assert_true((isnan(da.s[k].expected) && isnan(db.s[k].expected)) ||
		            da.s[k].expected == db.s[k].expected);
		derived += strncmp(da.s[k].key, "foreshock:", 10) == 0;
		scored += da.s[k].score > 0;
	}
	assert_true(derived >= 4 + 3); /* 4 rates, 3 quantiles of the group */
	assert_true(scored > 0);
	engine_free(ea);
	engine_free(eb);
}

/* Refusals with their messages, for the tag-set test. */
struct tg_rej {
	size_t idx[1024];
	int rc[1024];
	char msg[1024][96];
	size_t n;
};

static void tg_on_reject(void *ctx, size_t index, int rc, const char *err)
{
	struct tg_rej *r = ctx;
	if (r->n < 1024) {
		r->idx[r->n] = index;
		r->rc[r->n] = rc;
		snprintf(r->msg[r->n++], sizeof r->msg[0], "%s", err);
	}
}

static int tg_find(const struct tg_rej *r, size_t idx, int rc, const char *msg)
{
	for (size_t j = 0; j < r->n; j++)
		if (r->idx[j] == idx && r->rc[j] == rc && !strcmp(r->msg[j], msg))
			return 1;
	return 0;
}

#define TG_LINES 30
#define TG_ROUNDS 320

/* A multi-field line staged the fast way (engine_batch_stage_tags once, then
 * engine_batch_stage_named per field) is the same as every field staged with
 * all its labels (engine_batch_stage): same series, hashes and shards, same
 * refusals with the same messages, same detector results. Lines carry 4 tags
 * (unsorted on odd lines, an empty value on every 7th), 3 fields: two
 * gauges and a counter (a rate series is derived), plus now and then a bad
 * metric name, a duplicate and an out-of-order line. */
static void test_engine_staged_tags(void **st)
{
	(void)st;
	struct selfstats sa, sb;
	selfstats_init(&sa);
	selfstats_init(&sb);
	struct engine_config cfg;
	engine_config_default(&cfg);
	cfg.max_series = 100; /* 90 series and 30 rates: cardinality refusals too */
	char err[320];
	struct engine *ea = engine_new(&cfg, model_builtin_default(), NULL, &sa, err, sizeof err);
	struct engine *eb = engine_new(&cfg, model_builtin_default(), NULL, &sb, err, sizeof err);
	assert_non_null(ea);
	assert_non_null(eb);
	static const char *const fields[3] = { "tg_cpu_user", "tg_cpu_idle", "tg_bytes_total" };
	size_t total_refused = 0;
	for (int r = 0; r < TG_ROUNDS; r++) {
		struct engine_batch ba, bb;
		engine_batch_begin(ea, &ba);
		engine_batch_begin(eb, &bb);
		static struct tg_rej want, got;
		want.n = got.n = 0;
		size_t staged = 0;
		for (int i = 0; i < TG_LINES + 2; i++) {
			int line = i < TG_LINES ? i : i - TG_LINES; /* extras repeat a line */
			char host[16], rack[16];
			snprintf(host, sizeof host, "h%d", line);
			snprintf(rack, sizeof rack, "r%d", line % 4);
			int64_t ts = 1767225600000LL + (int64_t)r * 10000;
			if (i == TG_LINES + 1)
				ts -= 20000; /* out of order; i == TG_LINES: a duplicate */
			struct label_ref tags[4];
			size_t nt = 0;
			if (line % 2) {
				tags[nt++] = (struct label_ref){ "rack", 4, rack, strlen(rack) };
				tags[nt++] = (struct label_ref){ "host", 4, host, strlen(host) };
				tags[nt++] = (struct label_ref){ "env", 3, "prod", 4 };
				tags[nt++] = (struct label_ref){ "dc", 2, line % 7 ? "dc1" : "", line % 7 ? 3 : 0 };
			} else {
				tags[nt++] = (struct label_ref){ "dc", 2, line % 7 ? "dc2" : "", line % 7 ? 3 : 0 };
				tags[nt++] = (struct label_ref){ "env", 3, "prod", 4 };
				tags[nt++] = (struct label_ref){ "host", 4, host, strlen(host) };
				tags[nt++] = (struct label_ref){ "rack", 4, rack, strlen(rack) };
			}
			assert_int_equal(engine_batch_stage_tags(&bb, tags, nt, err, sizeof err), 0);
			for (int f = 0; f < 3; f++) {
				const char *name = fields[f];
				if (f == 1 && r % 25 == 5 && line == 3)
					name = "9bad"; /* an invalid metric name */
				double v = f == 2 ? 1000.0 * r + line
				                  : 50 + 10 * sin(r * 0.07 + line + f) + (r > 250 && line % 5 == 0 ? 40 : 0);
				struct label_ref l[5];
				l[0] = (struct label_ref){ "__name__", 8, name, strlen(name) };
				memcpy(l + 1, tags, sizeof tags);
				char ea_err[320] = "", eb_err[320] = "";
				int ra = engine_batch_stage(&ba, l, nt + 1, ts, v, ea_err, sizeof ea_err);
				int rb = engine_batch_stage_named(&bb, name, strlen(name), ts, v, eb_err,
				                                  sizeof eb_err);
				assert_int_equal(ra, 0);
				assert_int_equal(rb, 0);
				staged++;
				if (f == 0 && line == 2) { /* non-finite: refused at once, alike */
					ra = engine_batch_stage(&ba, l, nt + 1, ts, NAN, ea_err, sizeof ea_err);
					rb = engine_batch_stage_named(&bb, name, strlen(name), ts, NAN, eb_err,
					                              sizeof eb_err);
					assert_int_equal(ra, REJ_NON_FINITE + 1);
					assert_int_equal(rb, ra);
					assert_string_equal(ea_err, eb_err);
				}
			}
		}
		size_t refused_a = engine_batch_commit(&ba, tg_on_reject, &want);
		/* one batch's shard lock at a time (the lock ranks are per thread) */
		assert_int_equal(engine_batch_end(&ba), 0);
		size_t refused_b = engine_batch_commit(&bb, tg_on_reject, &got);
		assert_int_equal(refused_a, refused_b);
		assert_int_equal(want.n, got.n);
		for (size_t k = 0; k < want.n; k++)
			if (!tg_find(&got, want.idx[k], want.rc[k], want.msg[k]))
				fail_msg("round %d: sample %zu refused (%d, '%s') field by field, not when "
				         "staged with its line's tag set", r, want.idx[k], want.rc[k],
				         want.msg[k]);
		total_refused += refused_b;
		(void)staged;
		/* the tag set does not outlive a commit */
		err[0] = 0;
		assert_int_equal(engine_batch_stage_named(&bb, "tg_x", 4, 1, 1.0, err, sizeof err),
		                 REJ_LABELS + 1);
		assert_non_null(strstr(err, "no tag set"));
		bb.res.rejected[REJ_LABELS]--; /* that misuse is not part of the comparison */
		assert_int_equal(engine_batch_end(&bb), 0);
		assert_int_equal(ba.res.accepted, bb.res.accepted);
		assert_int_equal(ba.res.series_created, bb.res.series_created);
		for (int k = 0; k < REJ__COUNT; k++)
			assert_int_equal(ba.res.rejected[k], bb.res.rejected[k]);
	}
	/* per round: a duplicate and an out-of-order line (3 fields each); bad
	 * names and the cardinality limit now and then */
	assert_true(total_refused >= 6 * TG_ROUNDS);
	assert_int_equal(sa.samples_accepted, sb.samples_accepted);
	assert_true(sa.samples_rejected[REJ_CARDINALITY] > 0);
	/* the series staged with tag sets are the ones every other path finds
	 * (same label hash and shard): the last round again, field by field, is
	 * all duplicates, no new series */
	struct engine_batch bb;
	engine_batch_begin(eb, &bb);
	for (int line = 0; line < TG_LINES; line++) {
		char host[16], rack[16];
		snprintf(host, sizeof host, "h%d", line);
		snprintf(rack, sizeof rack, "r%d", line % 4);
		struct label_ref l[5] = {
			{ "__name__", 8, "tg_cpu_user", 11 },
			{ "dc", 2, line % 7 ? (line % 2 ? "dc1" : "dc2") : "", line % 7 ? 3 : 0 },
			{ "env", 3, "prod", 4 },
			{ "host", 4, host, strlen(host) },
			{ "rack", 4, rack, strlen(rack) },
		};
		int rc = engine_batch_add(&bb, l, 5, 1767225600000LL + (int64_t)(TG_ROUNDS - 1) * 10000,
		                          1.0, err, sizeof err);
		if (rc != REJ_DUPLICATE + 1)
			fail_msg("line %d: %d (%s), not a duplicate", line, rc, err);
	}
	assert_int_equal(bb.res.series_created, 0);
	assert_int_equal(engine_batch_end(&bb), 0);
	/* too many labels for a tag set: refused without counting anything */
	engine_batch_begin(eb, &bb);
	struct label_ref many[40];
	char names[40][8];
	for (int k = 0; k < 40; k++) {
		snprintf(names[k], sizeof names[k], "t%d", k);
		many[k] = (struct label_ref){ names[k], strlen(names[k]), "v", 1 };
	}
	err[0] = 0;
	assert_int_equal(engine_batch_stage_tags(&bb, many, cfg.label_limits.max_labels, err,
	                                         sizeof err), -1);
	assert_non_null(strstr(err, "too many labels"));
	assert_int_equal(engine_batch_stage_tags(&bb, many, cfg.label_limits.max_labels - 1, err,
	                                         sizeof err), 0);
	for (int k = 0; k < REJ__COUNT; k++)
		assert_int_equal(bb.res.rejected[k], 0);
	/* a live batch's time window holds for named samples, with the same message */
	engine_batch_set_clock(&bb, 1767225600000LL);
	assert_int_equal(engine_batch_stage_tags(&bb, many, 2, err, sizeof err), 0);
	char e1[320] = "", e2[320] = "";
	struct label_ref full[3] = { { "__name__", 8, "tg_late", 7 }, many[0], many[1] };
	int r1 = engine_batch_stage(&bb, full, 3, 1767225600000LL + 86400000LL * 30, 1.0, e1,
	                            sizeof e1);
	int r2 = engine_batch_stage_named(&bb, "tg_late", 7, 1767225600000LL + 86400000LL * 30, 1.0,
	                                  e2, sizeof e2);
	assert_int_equal(r1, REJ_OUT_OF_BOUNDS + 1);
	assert_int_equal(r2, r1);
	assert_string_equal(e1, e2);
	assert_int_equal(engine_batch_end(&bb), 0);
	static struct sg_dump da, db;
	memset(&da, 0, sizeof da);
	memset(&db, 0, sizeof db);
	engine_series_foreach(ea, NULL, 0, sg_collect, &da);
	engine_series_foreach(eb, NULL, 0, sg_collect, &db);
	assert_int_equal(da.n, db.n);
	assert_int_equal(da.n, cfg.max_series);
	qsort(da.s, da.n, sizeof da.s[0], sg_cmp);
	qsort(db.s, db.n, sizeof db.s[0], sg_cmp);
	int derived = 0, scored = 0;
	for (size_t k = 0; k < da.n; k++) {
		assert_string_equal(da.s[k].key, db.s[k].key);
		assert_int_equal(da.s[k].samples, db.s[k].samples);
		assert_true(da.s[k].score == db.s[k].score);
		assert_true((isnan(da.s[k].expected) && isnan(db.s[k].expected)) ||
		            da.s[k].expected == db.s[k].expected);
		derived += strncmp(da.s[k].key, "foreshock:rate:", 15) == 0;
		scored += da.s[k].score > 0;
	}
	assert_true(derived > 0);
	assert_true(scored > 0);
	engine_free(ea);
	engine_free(eb);
}

/* After a restore, derived series are found again where the engine derives
 * them (the parent's shard): no second foreshock:rate:/pNN: series appears
 * and they carry on from their checkpointed state. */
static void test_engine_restore_derived(void **st)
{
	(void)st;
	char dir[] = "/tmp/fs-engine-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char db[256], err[256];
	snprintf(db, sizeof db, "%s/f.db", dir);
	struct store *store = store_open(db, err, sizeof err);
	assert_non_null(store);
	struct selfstats stats;
	selfstats_init(&stats);
	struct engine_config cfg;
	engine_config_default(&cfg);
	const char *les[] = { "0.1", "0.5", "+Inf" };
	size_t nseries = 0;
	for (int phase = 0; phase < 2; phase++) {
		struct engine *e =
			engine_new(&cfg, model_builtin_default(), store, &stats, err, sizeof err);
		assert_non_null(e);
		if (phase == 1)
			assert_int_equal(engine_restore(e, err, sizeof err), (long)nseries);
		struct engine_batch b;
		engine_batch_begin(e, &b);
		engine_batch_set_type(&b, "rd_lat", 6, METRIC_HISTOGRAM);
		for (int r = phase * 5; r < phase * 5 + 5; r++) {
			int64_t ts = 1767225600000LL + r * 10000LL;
			for (int i = 0; i < 50; i++) {
				char iv[8];
				snprintf(iv, sizeof iv, "%d", i);
				struct label_ref l[2] = { REF("__name__", "rd_req_total"),
					                  { "i", 1, iv, strlen(iv) } };
				assert_int_equal(engine_batch_add(&b, l, 2, ts, 10.0 * r, err, sizeof err), 0);
				for (int k = 0; k < 3; k++) {
					struct label_ref h[3] = { REF("__name__", "rd_lat_bucket"),
						                  { "i", 1, iv, strlen(iv) },
						                  { "le", 2, les[k], strlen(les[k]) } };
					assert_int_equal(engine_batch_add(&b, h, 3, ts, (double)r * (k + 1),
					                                  err, sizeof err), 0);
				}
			}
		}
		assert_int_equal(engine_batch_end(&b), 0);
		if (phase == 1)
			assert_int_equal(b.res.series_created, 0);
		struct ct_check c = { 0 };
		engine_series_foreach(e, NULL, 0, ct_check_cb, &c);
		/* 50 counters + 50 rates + 150 buckets + 50 * 3 quantiles */
		assert_int_equal(c.series, 400);
		assert_int_equal(c.rates, 50);
		assert_int_equal(c.quantiles, 150);
		nseries = c.series;
		assert_int_equal(engine_checkpoint(e, err, sizeof err), 0);
		engine_free(e);
	}
	store_close(store);
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_labels_sort_hash_string),
		cmocka_unit_test(test_labels_escape_and_empty),
		cmocka_unit_test(test_labels_reject),
		cmocka_unit_test(test_engine_series_key),
		cmocka_unit_test(test_selector),
		cmocka_unit_test(test_selector_regex),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_yaml_tree),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_engine),
		cmocka_unit_test(test_engine_series_alerts),
		cmocka_unit_test(test_engine_series_direction_and_break),
		cmocka_unit_test(test_engine_derived),
		cmocka_unit_test(test_engine_concurrent),
		cmocka_unit_test(test_engine_staged),
		cmocka_unit_test(test_engine_staged_tags),
		cmocka_unit_test(test_engine_time_window),
		cmocka_unit_test(test_engine_prune_horizon),
		cmocka_unit_test(test_engine_restore_derived),
		cmocka_unit_test(test_engine_persist_incremental),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
