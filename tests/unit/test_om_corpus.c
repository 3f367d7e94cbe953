/* test_om_corpus.c — OpenMetrics conformance of prom_om_validate().
 *
 * For each case folder in $FORESHOCK_SHARED_DATA/openmetrics/parsers/ reads
 * `metrics` (the input) and `test.json` (`shouldParse`) and checks that the
 * strict validator agrees. Prints "openmetrics corpus: N/M cases agree".
 * Cases listed in known_failures[] (and in docs/prometheus-formats.md) may
 * disagree without failing the test; any other disagreement fails it.
 * Exits 77 (skip) when the shared data is missing.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ingest/prom.h"
#include "util/buf.h"

/* Cases we knowingly get wrong; keep in sync with docs/prometheus-formats.md.
 * Currently none. */
static const char *const known_failures[] = { NULL };

static char corpus_dir[4096];

static int is_known_failure(const char *name)
{
	for (size_t i = 0; known_failures[i]; i++)
		if (!strcmp(known_failures[i], name))
			return 1;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_corpus(void **state)
{
	DIR *d = opendir(corpus_dir);
	assert_non_null(d);
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			names = realloc(names, cap * sizeof *names);
			assert_non_null(names);
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof *names, cmp_str);

	size_t agree = 0, total = 0, unexpected = 0;
	for (size_t i = 0; i < n; i++) {
		char path[8192], err[256];
		size_t len = 0, line = 0;
		snprintf(path, sizeof path, "%s/%s/test.json", corpus_dir, names[i]);
		json_error_t jerr;
		json_t *j = json_load_file(path, 0, &jerr);
		if (!j)
			continue; /* not a case folder */
		json_t *sp = json_object_get(j, "shouldParse");
		const char *file = json_string_value(json_object_get(j, "file"));
		assert_true(json_is_boolean(sp));
		int want = json_is_true(sp);
		snprintf(path, sizeof path, "%s/%s/%s", corpus_dir, names[i], file ? file : "metrics");
		json_decref(j);
		char *body = obuf_read_file(path, 0, &len);
		assert_non_null(body);
		int got = prom_om_validate(body, len, err, sizeof err, &line);
		free(body);
		total++;
		if (got == want) {
			agree++;
			continue;
		}
		int known = is_known_failure(names[i]);
		printf("%s %s: expected %s, validator says %s%s%s\n", known ? "known" : "DISAGREE",
		       names[i], want ? "valid" : "invalid", got ? "valid" : "invalid",
		       got ? "" : ": ", got ? "" : err);
		if (!known)
			unexpected++;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	printf("openmetrics corpus: %zu/%zu cases agree\n", agree, total);
	assert_true(total > 0);
	assert_int_equal(unexpected, 0);
}

int main(void)
{
	const char *data = getenv("FORESHOCK_SHARED_DATA");
	snprintf(corpus_dir, sizeof corpus_dir, "%s/openmetrics/parsers", data ? data : "../shared/data");
	DIR *d = opendir(corpus_dir);
	if (!d) {
		fprintf(stderr, "skip: no openmetrics corpus at '%s'\n", corpus_dir);
		return 77;
	}
	closedir(d);
	const struct CMUnitTest tests[] = { cmocka_unit_test(test_corpus) };
	return cmocka_run_group_tests(tests, NULL, NULL);
}
