/* test_settings.c — unit tests of the configuration files: the YAML tree
 * (values with units, errors with file and line, what the loader refuses)
 * and the daemon's settings file read through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/settings.h"
#include "util/labels.h"
#include "util/yaml_tree.h"

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
	/* a number within a range: the bounds included, an absent key leaves the
	 * value alone, a value outside or not a number is refused at its line */
	const char *nums = "lo: 1\nhi: 1000\nout: 0.5\nnan: x\n";
	root = ytree_load_string(nums, strlen(nums), "n.yml", err, sizeof err);
	assert_non_null(root);
	double d = -1;
	assert_int_equal(ymap_double_range(root, "lo", 1, 1000, &d, err, sizeof err), 0);
	assert_true(d == 1);
	assert_int_equal(ymap_double_range(root, "hi", 1, 1000, &d, err, sizeof err), 0);
	assert_true(d == 1000);
	assert_int_equal(ymap_double_range(root, "absent", 1, 1000, &d, err, sizeof err), 0);
	assert_true(d == 1000);
	assert_int_equal(ymap_double_range(root, "out", 1, 1000, &d, err, sizeof err), -1);
	assert_string_equal(err, "n.yml:3: value 0.5 for 'out' out of range [1, 1000]");
	assert_true(d == 1000);
	assert_int_equal(ymap_double_range(root, "nan", 1, 1000, &d, err, sizeof err), -1);
	assert_string_equal(err, "n.yml:4: invalid number 'x' for 'nan'");
	ytree_free(root);
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
	assert_non_null(strstr(err, "c.yml:2: value 0.5 for 'min_factor' out of range [1, 1000]"));
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
	assert_non_null(strstr(err, "c.yml:2: duration '10m' for 'queue_timeout' out of range [0s, 5m]"));
	config_free(&c);
	/* the other range checks say the same: what, the value as written, the key, the range */
	static const struct { const char *yml, *msg; } ranges[] = {
		{ "http:\n  header_timeout: 20m\n", "c.yml:2: duration '20m' for 'header_timeout' out of range [100ms, 10m]" },
		{ "http:\n  max_connections: 0\n", "c.yml:2: value '0' for 'max_connections' out of range [1, 65536]" },
		{ "http:\n  max_body: 512\n", "c.yml:2: size '512' for 'max_body' out of range [1KiB, 1GiB]" },
		{ "http:\n  max_response: 8GiB\n", "c.yml:2: size '8GiB' for 'max_response' out of range [4KiB, 4GiB]" },
		{ "derived:\n  quantiles: [0.5, 1.5]\n", "c.yml:2: value '1.5' for 'quantiles' out of range (0, 1)" },
	};
	for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
		write_file(path, ranges[i].yml);
		config_defaults(&c);
		assert_int_equal(config_load_file(&c, path, err, sizeof err), -1);
		if (!strstr(err, ranges[i].msg))
			fail_msg("got \"%s\", want \"%s\"", err, ranges[i].msg);
		config_free(&c);
	}
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_yaml_tree),
		cmocka_unit_test(test_settings),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
