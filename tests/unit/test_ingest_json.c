/* test_ingest_json.c — unit tests for src/ingest/json.c, the JSON import
 * decoder: bodies that must decode (with the samples they yield) and bodies
 * or elements that must be rejected (with the path named in the error). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "ingest/json.h"

#define MAXS 16

/* What the callbacks saw, rendered as text for easy comparison. */
struct seen {
	size_t n;
	char s[MAXS][256];      /* "name{a=b,..} ts value line path" */
	size_t nerr;
	char err[MAXS][512];
	size_t err_line[MAXS];
	size_t err_samples;
	int refuse_name_x;      /* refuse samples whose __name__ is "x" */
};

static int on_sample(void *ctx, const struct json_sample *s)
{
	struct seen *w = ctx;
	char lab[160] = "";
	size_t off = 0;
	const char *name = "";
	size_t name_len = 0;
	for (size_t i = 0; i < s->nlabels; i++) {
		if (s->labels[i].name_len == 8 && !memcmp(s->labels[i].name, "__name__", 8)) {
			name = s->labels[i].value;
			name_len = s->labels[i].value_len;
			continue;
		}
		off += (size_t)snprintf(lab + off, sizeof lab - off, "%s%.*s=%.*s", off ? "," : "",
		                        (int)s->labels[i].name_len, s->labels[i].name,
		                        (int)s->labels[i].value_len, s->labels[i].value);
	}
	if (w->n < MAXS)
		snprintf(w->s[w->n], sizeof w->s[0], "%.*s{%s} %lld %g %zu %s", (int)name_len, name,
		         lab, (long long)s->ts_ms, s->value, s->line, s->path);
	w->n++;
	return w->refuse_name_x && name_len == 1 && name[0] == 'x';
}

static void on_error(void *ctx, size_t line, const char *reason, size_t nsamples)
{
	struct seen *w = ctx;
	if (w->nerr < MAXS) {
		snprintf(w->err[w->nerr], sizeof w->err[0], "%s", reason);
		w->err_line[w->nerr] = line;
	}
	w->nerr++;
	w->err_samples += nsamples;
}

static size_t run(const char *body, struct seen *w, struct json_import_stats *st)
{
	return json_import_parse(body, strlen(body), NULL, on_sample, on_error, w, st);
}

struct ok_case {
	const char *body;
	size_t n;
	const char *first, *last;
};

static const struct ok_case must_decode[] = {
	{ "{\"series\":[{\"labels\":{\"__name__\":\"up\",\"job\":\"api\"},"
	  "\"samples\":[[1700000000000,12.5],[\"2023-11-14T22:13:20.001Z\",13]]}]}",
	  2, "up{job=api} 1700000000000 12.5 1 .series[0].samples[0]",
	  "up{job=api} 1700000000001 13 1 .series[0].samples[1]" },
	/* bare series object, string values as Prometheus writes them */
	{ "{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1,\"1.5\"],[2,\"-2e3\"]]}", 2,
	  "a{} 1 1.5 1 .samples[0]", "a{} 2 -2000 1 .samples[1]" },
	/* NDJSON, line numbers follow the objects */
	{ "{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1,1]]}\n"
	  "\n"
	  "{\"labels\":{\"__name__\":\"b\"},\"samples\":[[2,2]]}\n",
	  2, "a{} 1 1 1 .samples[0]", "b{} 2 2 3 .samples[0]" },
	/* pretty-printed document spanning lines */
	{ "{\n  \"series\": [\n    {\"labels\": {\"__name__\": \"p\"},\n"
	  "     \"samples\": [[10, 1]]}\n  ]\n}\n{\"labels\":{\"__name__\":\"q\"},\"samples\":[[1,1]]}",
	  2, "p{} 10 1 1 .series[0].samples[0]", "q{} 1 1 7 .samples[0]" },
	/* "metric" alias and the VictoriaMetrics export shape */
	{ "{\"metric\":{\"__name__\":\"vm\",\"i\":\"1\"},\"values\":[1,2],\"timestamps\":[5,6]}",
	  2, "vm{i=1} 5 1 1 .values[0]", "vm{i=1} 6 2 1 .values[1]" },
	/* two objects on one line, real timestamp floored, BOM skipped */
	{ "\xef\xbb\xbf{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1.9e3,1]]}"
	  "{\"labels\":{\"__name__\":\"a\"},\"samples\":[[2000,\"+Inf\"]]}",
	  2, "a{} 1900 1 1 .samples[0]", "a{} 2000 inf 1 .samples[0]" },
	/* RFC 3339 with offset; empty samples list is fine */
	{ "{\"series\":[{\"labels\":{\"__name__\":\"z\"},\"samples\":[]},"
	  "{\"labels\":{\"__name__\":\"t\"},\"samples\":[[\"2023-11-14T23:13:20+01:00\",0]]}]}",
	  1, "t{} 1700000000000 0 1 .series[1].samples[0]",
	  "t{} 1700000000000 0 1 .series[1].samples[0]" },
};

static void test_must_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof must_decode / sizeof must_decode[0]; i++) {
		const struct ok_case *c = &must_decode[i];
		struct seen w = { 0 };
		struct json_import_stats st;
		size_t rej = run(c->body, &w, &st);
		if (rej || w.nerr)
			fail_msg("case %zu: rejected %zu, first error: %s", i, rej, w.err[0]);
		assert_int_equal(w.n, c->n);
		assert_int_equal(st.samples, c->n);
		assert_string_equal(w.s[0], c->first);
		assert_string_equal(w.s[c->n - 1], c->last);
	}
}

struct bad_case {
	const char *body;
	size_t accepted;      /* samples still delivered */
	size_t rejected;      /* samples rejected by the decoder */
	const char *err;      /* substring of the first error */
	size_t line;          /* its line */
};

static const struct bad_case must_reject[] = {
	{ "{\"series\":[{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1,1],[\"x\",2],[3,3]]}]}",
	  2, 1, "invalid timestamp 'x' at .series[0].samples[1][0]", 1 },
	{ "{\"series\":[{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1,true]]}]}", 0, 1,
	  "invalid value 'true' at .series[0].samples[0][1]", 1 },
	{ "{\"series\":[{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1,\"nan\"]]}]}", 0, 1,
	  "invalid value 'nan'", 1 },
	{ "{\"series\":[{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1]]}]}", 0, 1,
	  "invalid sample '[1]' at .series[0].samples[0] (must be [timestamp, value])", 1 },
	/* a bare number in a string is ambiguous (seconds or ms?) */
	{ "{\"labels\":{\"__name__\":\"a\"},\"samples\":[[\"1700000000\",1]]}", 0, 1,
	  "invalid timestamp '1700000000' at .samples[0][0]", 1 },
	/* bad labels reject every sample of the series, not the next series */
	{ "{\"series\":[{\"labels\":{\"__name__\":\"a\",\"n\":1},\"samples\":[[1,1],[2,2]]},"
	  "{\"labels\":{\"__name__\":\"b\"},\"samples\":[[1,1]]}]}",
	  1, 2, "invalid label value '1' for 'n' at .series[0].labels (must be a string)", 1 },
	{ "{\"series\":[{\"labels\":{\"job\":\"x\"},\"samples\":[[1,1]]}]}", 0, 1,
	  "missing '__name__' label at .series[0].labels", 1 },
	{ "{\"series\":[{\"samples\":[[1,1]]}]}", 0, 1,
	  "missing or invalid 'labels' object at .series[0]", 1 },
	{ "{\"series\":{}}", 0, 1, "invalid 'series' at .series (must be an array)", 1 },
	{ "{\"foo\":1}", 0, 1, "invalid object at .", 1 },
	{ "{\"metric\":{\"__name__\":\"a\"},\"values\":[1,2],\"timestamps\":[1]}", 0, 2,
	  "invalid 'values'/'timestamps' at . (must be arrays of equal length)", 1 },
	/* syntax error on line 2 of NDJSON: lines 1 and 3 still decode */
	{ "{\"labels\":{\"__name__\":\"a\"},\"samples\":[[1,1]]}\n"
	  "{\"labels\":{\"__name__\":\"b\"},\"samples\":[[1,1]\n"
	  "{\"labels\":{\"__name__\":\"c\"},\"samples\":[[1,1]]}\n",
	  2, 1, "invalid json at line 3 column 1", 2 },
	{ "[1,2]\n{\"labels\":{\"__name__\":\"c\"},\"samples\":[[1,1]]}", 1, 1,
	  "unexpected '[' at line 1 (expected a JSON object)", 1 },
	{ "{", 0, 1, "invalid json at line 1", 1 },
};

static void test_must_reject(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof must_reject / sizeof must_reject[0]; i++) {
		const struct bad_case *c = &must_reject[i];
		struct seen w = { 0 };
		struct json_import_stats st;
		size_t rej = run(c->body, &w, &st);
		if (w.nerr == 0)
			fail_msg("case %zu: no error", i);
		if (!strstr(w.err[0], c->err))
			fail_msg("case %zu: error '%s' lacks '%s'", i, w.err[0], c->err);
		assert_int_equal(w.err_line[0], c->line);
		assert_int_equal(w.n, c->accepted);
		assert_int_equal(st.rejected, c->rejected);
		assert_int_equal(rej, c->rejected);
		assert_int_equal(w.err_samples, c->rejected);
	}
}

static void test_refused_counted(void **state)
{
	(void)state;
	struct seen w = { .refuse_name_x = 1 };
	struct json_import_stats st;
	size_t rej = run("{\"series\":[{\"labels\":{\"__name__\":\"x\"},\"samples\":[[1,1],[2,2]]},"
	                 "{\"labels\":{\"__name__\":\"y\"},\"samples\":[[1,1]]}]}",
	                 &w, &st);
	assert_int_equal(rej, 2);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.samples, 1);
	assert_int_equal(w.nerr, 0);
}

static void test_max_errors(void **state)
{
	(void)state;
	char body[4096];
	size_t off = (size_t)snprintf(body, sizeof body,
	                              "{\"labels\":{\"__name__\":\"a\"},\"samples\":[");
	for (int i = 0; i < 50; i++)
		off += (size_t)snprintf(body + off, sizeof body - off, "%s[\"bad\",1]", i ? "," : "");
	snprintf(body + off, sizeof body - off, "]}");
	struct seen w = { 0 };
	struct json_import_stats st;
	struct json_import_limits lim = { .max_errors = 3 };
	size_t rej = json_import_parse(body, strlen(body), &lim, on_sample, on_error, &w, &st);
	assert_int_equal(rej, 50);
	assert_int_equal(w.nerr, 3);
	assert_int_equal(st.errors, 50);
}

static void test_too_many_labels(void **state)
{
	(void)state;
	char body[2048];
	size_t off = (size_t)snprintf(body, sizeof body, "{\"labels\":{\"__name__\":\"a\"");
	for (int i = 0; i < 10; i++)
		off += (size_t)snprintf(body + off, sizeof body - off, ",\"l%d\":\"v\"", i);
	snprintf(body + off, sizeof body - off, "},\"samples\":[[1,1]]}");
	struct seen w = { 0 };
	struct json_import_limits lim = { .max_labels = 5 };
	json_import_parse(body, strlen(body), &lim, on_sample, on_error, &w, NULL);
	assert_int_equal(w.n, 0);
	assert_non_null(strstr(w.err[0], "too many labels (11, limit 5) at .labels"));
	/* within the limit it decodes */
	lim.max_labels = 11;
	memset(&w, 0, sizeof w);
	json_import_parse(body, strlen(body), &lim, on_sample, on_error, &w, NULL);
	assert_int_equal(w.n, 1);
}

static void test_empty_body(void **state)
{
	(void)state;
	struct seen w = { 0 };
	struct json_import_stats st;
	assert_int_equal(run("", &w, &st), 0);
	assert_int_equal(run(" \n\r\n", &w, &st), 0);
	assert_int_equal(w.n + w.nerr, 0);
	assert_int_equal(st.objects, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_must_decode),     cmocka_unit_test(test_must_reject),
		cmocka_unit_test(test_refused_counted), cmocka_unit_test(test_max_errors),
		cmocka_unit_test(test_too_many_labels), cmocka_unit_test(test_empty_body),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
