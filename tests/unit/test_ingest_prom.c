/* test_ingest_prom.c — unit tests of the Prometheus text decoder
 * (src/ingest/prom.c): must_parse()/must_not_parse() line tables, escapes,
 * NaN/±Inf, timestamps in both formats, comments, HELP/TYPE, line numbers,
 * limits, OpenMetrics specifics, and strict-validator cases beyond the corpus. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/prom.h"

/* ---- a collecting sink ------------------------------------------------- */

#define MAXS 16
struct got_sample {
	char labels[512]; /* name{a="x",b="y"} in input order, values raw */
	size_t nlabels;
	double value;
	int64_t ts;
	int has_ts;
	size_t lineno;
};

struct sink {
	struct got_sample s[MAXS];
	size_t ns;
	char meta[8][64];
	enum prom_type meta_type[8];
	size_t nmeta;
	char err[8][256];
	size_t err_line[8];
	size_t nerr;
	int refuse; /* return nonzero from the sample callback */
};

static int on_sample(void *ctx, const struct label_ref *l, size_t n, double v, int64_t ts,
                     int has_ts, size_t lineno)
{
	struct sink *k = ctx;
	if (k->ns == MAXS)
		return 1;
	struct got_sample *g = &k->s[k->ns++];
	size_t o = 0;
	assert_true(n >= 1);
	assert_int_equal(l[0].name_len, 8);
	assert_memory_equal(l[0].name, "__name__", 8);
	o += (size_t)snprintf(g->labels + o, sizeof g->labels - o, "%.*s", (int)l[0].value_len, l[0].value);
	for (size_t i = 1; i < n; i++)
		o += (size_t)snprintf(g->labels + o, sizeof g->labels - o, "%s%.*s=\"%.*s\"", i == 1 ? "{" : ",",
		                      (int)l[i].name_len, l[i].name, (int)l[i].value_len, l[i].value);
	if (n > 1)
		snprintf(g->labels + o, sizeof g->labels - o, "}");
	g->nlabels = n;
	g->value = v;
	g->ts = ts;
	g->has_ts = has_ts;
	g->lineno = lineno;
	return k->refuse;
}

static void on_meta(void *ctx, const char *fam, size_t len, enum prom_type t)
{
	struct sink *k = ctx;
	if (k->nmeta == 8)
		return;
	snprintf(k->meta[k->nmeta], sizeof k->meta[0], "%.*s", (int)len, fam);
	k->meta_type[k->nmeta++] = t;
}

static void on_error(void *ctx, size_t lineno, const char *reason)
{
	struct sink *k = ctx;
	if (k->nerr == 8)
		return;
	snprintf(k->err[k->nerr], sizeof k->err[0], "%s", reason);
	k->err_line[k->nerr++] = lineno;
}

static size_t parse_fmt(struct sink *k, const char *body, enum prom_format fmt, const struct prom_limits *lim)
{
	memset(k, 0, sizeof *k);
	return prom_parse(body, strlen(body), fmt, lim, on_sample, on_meta, on_error, k, NULL);
}

static size_t parse(struct sink *k, const char *body)
{
	return parse_fmt(k, body, PROM_FORMAT_TEXT, NULL);
}

/* ---- tables ------------------------------------------------------------ */

/* line, canonical labels as handed out, value, has_ts, ts */
struct ok_case {
	const char *line, *labels;
	double value;
	int has_ts;
	int64_t ts;
};

static const struct ok_case must_parse_text[] = {
	{ "a 1", "a", 1, 0, 0 },
	{ "a_b:c 1.5", "a_b:c", 1.5, 0, 0 },
	{ "_a 1", "_a", 1, 0, 0 },
	{ ":a 1", ":a", 1, 0, 0 },
	{ "a{} 2", "a", 2, 0, 0 },
	{ "a{b=\"c\"} 3", "a{b=\"c\"}", 3, 0, 0 },
	{ "a{b=\"c\",d=\"e\"} 3", "a{b=\"c\",d=\"e\"}", 3, 0, 0 },
	{ "a{b=\"c\",} 3", "a{b=\"c\"}", 3, 0, 0 },                  /* trailing comma */
	{ "a{ b = \"c\" , d=\"e\" } 3", "a{b=\"c\",d=\"e\"}", 3, 0, 0 }, /* blanks */
	{ "a\t{b=\"c\"} 3", NULL, 0, 0, 0 },                           /* see must_not_parse */
	{ "a{b=\"\"} 4", "a{b=\"\"}", 4, 0, 0 },                       /* empty value kept */
	{ "a{b=\"x y # z\"} 4", "a{b=\"x y # z\"}", 4, 0, 0 },
	{ "a{b=\"}{,=\"} 4", "a{b=\"}{,=\"}", 4, 0, 0 },
	{ "a{b=\"\\\"q\\\"\"} 5", "a{b=\"\"q\"\"}", 5, 0, 0 },         /* \" */
	{ "a{b=\"x\\\\y\"} 5", "a{b=\"x\\y\"}", 5, 0, 0 },             /* \\ */
	{ "a{b=\"x\\ny\"} 5", "a{b=\"x\ny\"}", 5, 0, 0 },              /* \n */
	{ "a{b=\"x\\qy\"} 5", "a{b=\"x\\qy\"}", 5, 0, 0 },             /* unknown escape kept */
	{ "a{b=\"caf\xc3\xa9\"} 6", "a{b=\"caf\xc3\xa9\"}", 6, 0, 0 }, /* UTF-8 */
	{ "a -1", "a", -1, 0, 0 },
	{ "a +1", "a", 1, 0, 0 },
	{ "a 1e3", "a", 1000, 0, 0 },
	{ "a 1.5E-3", "a", 0.0015, 0, 0 },
	{ ".5", NULL, 0, 0, 0 },
	{ "a .5", "a", 0.5, 0, 0 },
	{ "a 5.", "a", 5, 0, 0 },
	{ "a 007", "a", 7, 0, 0 },
	{ "a 1 1395066363000", "a", 1, 1, 1395066363000 },
	{ "a 1 -1", "a", 1, 1, -1 },
	{ "a 1 0", "a", 1, 1, 0 },
	{ "a 1 9223372036854775807", "a", 1, 1, INT64_MAX },
	{ "a 1 -9223372036854775808", "a", 1, 1, INT64_MIN },
	{ "  a   1   2  ", "a", 1, 1, 2 },                            /* blanks anywhere */
	{ "a\t1\t2", "a", 1, 1, 2 },
	{ "a 1\r", "a", 1, 0, 0 },                                     /* CRLF */
	{ "a 1 # {id=\"x\"} 2", "a", 1, 0, 0 },                         /* exemplar ignored */
	{ "a 1 2 # {id=\"x\"} 2 3", "a", 1, 1, 2 },
	{ "a 1 # anything", "a", 1, 0, 0 },
	{ "a 18446744073709551616", "a", 18446744073709551616.0, 0, 0 },
};

static const char *const must_not_parse_text[] = {
	"0a 1",                 /* metric name */
	"a.b 1",
	"a-b 1",
	"a",                    /* no value */
	"a ",
	"a{}",
	"a{b=\"c\"}",
	"a b",                  /* value */
	"a 1_2",
	"a 0x1",
	"a 0x1p-3",
	"a 1e",
	"a e3",
	"a 1.2.3",
	"a --1",
	"a 1 1.5",              /* text timestamps are integer ms */
	"a 1 1e3",
	"a 1 NaN",
	"a 1 x",
	"a 1 9223372036854775808", /* int64 overflow */
	"a 1 2 3",              /* junk after timestamp */
	"a{1=\"1\"} 1",         /* label name */
	"a{b-c=\"1\"} 1",
	"a{b=1} 1",             /* unquoted */
	"a{b='1'} 1",
	"a{b=\"1} 1",           /* unterminated */
	"a{b=\"1\"",
	"a{b} 1",
	"a{b=} 1",
	"a{=\"1\"} 1",
	"a{b=\"1\"c=\"2\"} 1",  /* missing comma */
	"a{b=\"1\",,c=\"2\"} 1",
	"a{,} 1",
	"a{b=\"1\",b=\"2\"} 1", /* duplicate */
	"a{__name__=\"b\"} 1",  /* duplicates the metric name */
	"a{b=\"\xff\"} 1",      /* invalid UTF-8 */
	"a{b=\"\xc0\xaf\"} 1",  /* overlong */
	"a{b=\"\xed\xa0\x80\"} 1", /* surrogate */
	"{b=\"1\"} 1",          /* no name (quoted-name syntax unsupported) */
	"a\t{b=\"c\"} 3",       /* blank between name and labels */
	"a{b=\"c\"}1",          /* no blank before value */
};

static void test_must_parse(void **state)
{
	struct sink k;
	for (size_t i = 0; i < sizeof must_parse_text / sizeof must_parse_text[0]; i++) {
		const struct ok_case *c = &must_parse_text[i];
		if (!c->labels)
			continue;
		size_t bad = parse(&k, c->line);
		if (bad || k.ns != 1)
			fail_msg("must_parse '%s': %zu rejected (%s)", c->line, bad, k.nerr ? k.err[0] : "");
		assert_string_equal(k.s[0].labels, c->labels);
		assert_true(k.s[0].value == c->value || fabs(k.s[0].value - c->value) < 1e-12);
		assert_int_equal(k.s[0].has_ts, c->has_ts);
		assert_true(k.s[0].ts == c->ts);
		assert_int_equal(k.s[0].lineno, 1);
	}
}

static void test_must_not_parse(void **state)
{
	struct sink k;
	for (size_t i = 0; i < sizeof must_not_parse_text / sizeof must_not_parse_text[0]; i++) {
		const char *line = must_not_parse_text[i];
		size_t bad = parse(&k, line);
		if (bad != 1 || k.ns != 0 || k.nerr != 1)
			fail_msg("must_not_parse '%s': accepted (%zu samples)", line, k.ns);
		assert_int_equal(k.err_line[0], 1);
		assert_true(k.err[0][0] >= 'a' && k.err[0][0] <= 'z'); /* lowercase reason */
	}
}

static void test_special_values(void **state)
{
	struct sink k;
	assert_int_equal(parse(&k, "a NaN\nb +Inf\nc -Inf\nd Inf\ne nan\nf -inf\ng +Infinity\n"), 0);
	assert_int_equal(k.ns, 7);
	assert_true(isnan(k.s[0].value));
	assert_true(isinf(k.s[1].value) && k.s[1].value > 0);
	assert_true(isinf(k.s[2].value) && k.s[2].value < 0);
	assert_true(isinf(k.s[3].value) && k.s[3].value > 0);
	assert_true(isnan(k.s[4].value));
	assert_true(isinf(k.s[5].value) && k.s[5].value < 0);
	assert_true(isinf(k.s[6].value));
	assert_false(prom_is_stale(k.s[0].value)); /* text NaN is not a stale marker */
	assert_int_equal(parse(&k, "a 1e999\nb -1e999\nc 1e-999\n"), 0); /* overflow saturates */
	assert_true(isinf(k.s[0].value) && isinf(k.s[1].value) && k.s[2].value == 0);
}

static void test_comments_help_type(void **state)
{
	struct sink k;
	const char *body =
		"# a free comment\n"
		"#another\n"
		"#\n"
		"# HELP http_requests_total The total number of HTTP requests.\n"
		"# TYPE http_requests_total counter\n"
		"http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n"
		"\n"
		"   \n"
		"# TYPE rpc_duration_seconds summary\n"
		"rpc_duration_seconds{quantile=\"0.5\"} 4773\n"
		"rpc_duration_seconds_sum 1.7560473e+07\n"
		"#TYPE g   gauge\n"
		"# TYPE u untyped\n"
		"# TYPE gh gaugehistogram\n"
		"# TYPE x bogus\n"
		"# TYPE 0x gauge\n"
		"# TYPE y gauge extra\n"
		"# UNIT a_seconds seconds\n"
		"# EOF\n"
		"after_eof_in_text_format 1\n";
	assert_int_equal(parse(&k, body), 3);
	assert_int_equal(k.ns, 4);
	assert_string_equal(k.s[0].labels, "http_requests_total{method=\"post\",code=\"200\"}");
	assert_int_equal(k.s[0].lineno, 6);
	assert_int_equal(k.s[1].lineno, 10);
	assert_int_equal(k.s[2].lineno, 11);
	assert_string_equal(k.s[3].labels, "after_eof_in_text_format");
	assert_int_equal(k.nmeta, 5);
	assert_string_equal(k.meta[0], "http_requests_total");
	assert_int_equal(k.meta_type[0], PROM_COUNTER);
	assert_int_equal(k.meta_type[1], PROM_SUMMARY);
	assert_string_equal(k.meta[2], "g");
	assert_int_equal(k.meta_type[2], PROM_GAUGE);
	assert_int_equal(k.meta_type[3], PROM_UNKNOWN);
	assert_int_equal(k.meta_type[4], PROM_GAUGE_HISTOGRAM);
	assert_int_equal(k.nerr, 3);
	assert_int_equal(k.err_line[0], 15);
	assert_string_equal(k.err[0], "invalid metric type 'bogus' for 'x'");
	assert_int_equal(k.err_line[1], 16);
	assert_int_equal(k.err_line[2], 17);
}

static void test_bad_line_does_not_stop(void **state)
{
	struct sink k;
	struct prom_stats st;
	const char *body = "a 1\nb{ 2\nc 3\nd x\ne 5";
	memset(&k, 0, sizeof k);
	assert_int_equal(prom_parse(body, strlen(body), PROM_FORMAT_TEXT, NULL, on_sample, NULL, on_error, &k, &st), 2);
	assert_int_equal(k.ns, 3);
	assert_string_equal(k.s[2].labels, "e"); /* last line without '\n' */
	assert_int_equal(k.s[2].lineno, 5);
	assert_int_equal(k.err_line[0], 2);
	assert_int_equal(k.err_line[1], 4);
	assert_string_equal(k.err[1], "invalid value 'x'");
	assert_int_equal(st.lines, 5);
	assert_int_equal(st.samples, 3);
	assert_int_equal(st.rejected, 2);
	/* NULL on_error and stats are fine */
	memset(&k, 0, sizeof k);
	assert_int_equal(prom_parse(body, strlen(body), PROM_FORMAT_TEXT, NULL, on_sample, NULL, NULL, &k, NULL), 2);
}

static void test_callback_refusal_counted(void **state)
{
	struct sink k;
	struct prom_stats st;
	memset(&k, 0, sizeof k);
	k.refuse = 1;
	const char *body = "a 1\nb 2\n";
	assert_int_equal(prom_parse(body, strlen(body), PROM_FORMAT_TEXT, NULL, on_sample, NULL, on_error, &k, &st), 2);
	assert_int_equal(st.refused, 2);
	assert_int_equal(st.samples, 0);
	assert_int_equal(st.rejected, 0);
	assert_int_equal(k.nerr, 0);
}

static void test_limits(void **state)
{
	struct sink k;
	struct prom_limits lim = { 3, 8, 4, 40 };
	assert_int_equal(parse_fmt(&k, "a{b=\"1\",c=\"2\"} 1", PROM_FORMAT_TEXT, &lim), 0);
	assert_int_equal(k.s[0].nlabels, 3);
	assert_int_equal(parse_fmt(&k, "a{b=\"1\",c=\"2\",d=\"3\"} 1", PROM_FORMAT_TEXT, &lim), 1);
	assert_string_equal(k.err[0], "too many labels (limit 3)");
	assert_int_equal(parse_fmt(&k, "abcdefgh 1\nabcdefghi 1\n", PROM_FORMAT_TEXT, &lim), 1);
	assert_int_equal(k.err_line[0], 2);
	assert_int_equal(parse_fmt(&k, "a{abcdefghi=\"1\"} 1", PROM_FORMAT_TEXT, &lim), 1);
	assert_int_equal(parse_fmt(&k, "a{b=\"1234\"} 1\na{b=\"12345\"} 1\n", PROM_FORMAT_TEXT, &lim), 1);
	/* the value limit is on unescaped bytes: 4 bytes after unescaping */
	assert_int_equal(parse_fmt(&k, "a{b=\"\\\\\\\\\\\\\\\\\"} 1", PROM_FORMAT_TEXT, &lim), 0);
	assert_string_equal(k.s[0].labels, "a{b=\"\\\\\\\\\"}");
	/* line length, '\n' excluded; the next line still parses */
	assert_int_equal(parse_fmt(&k, "a 1                                     \n"
	                               "a 1                                      \nb 2\n",
	                           PROM_FORMAT_TEXT, &lim), 1);
	assert_int_equal(k.ns, 2);
	assert_int_equal(k.err_line[0], 2);
	assert_string_equal(k.err[0], "line too long (41 bytes, limit 40)");
	/* an over-long name at the very end of an exact-size buffer (fuzz find) */
	static const char tail[] = "abcdefghijklmnop";
	char *exact = malloc(sizeof tail - 1);
	assert_non_null(exact);
	memcpy(exact, tail, sizeof tail - 1);
	memset(&k, 0, sizeof k);
	assert_int_equal(prom_parse(exact, sizeof tail - 1, PROM_FORMAT_TEXT, &lim, on_sample, NULL, on_error, &k, NULL), 1);
	assert_string_equal(k.err[0], "metric name too long 'abcdefghijklmnop' (limit 8)");
	memcpy(exact, "a{abcdefghijklmn", sizeof tail - 1);
	memset(&k, 0, sizeof k);
	assert_int_equal(prom_parse(exact, sizeof tail - 1, PROM_FORMAT_TEXT, &lim, on_sample, NULL, on_error, &k, NULL), 1);
	assert_string_equal(k.err[0], "label name too long 'abcdefghijklmn' (limit 8)");
	free(exact);
	/* huge limits must not overflow any allocation size */
	const struct prom_limits huge = { SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX };
	assert_int_equal(parse_fmt(&k, "a{b=\"1\"} 1\nc 2", PROM_FORMAT_TEXT, &huge), 0);
	assert_int_equal(k.ns, 2);
	/* zero fields mean defaults */
	struct prom_limits zero = { 0, 0, 0, 0 };
	assert_int_equal(parse_fmt(&k, "a{b=\"1\"} 1", PROM_FORMAT_TEXT, &zero), 0);
}

static void test_openmetrics_mode(void **state)
{
	struct sink k;
	const char *body =
		"# TYPE a counter\n"
		"# HELP a help\n"
		"a_total 1 1.5 # {id=\"x\"} 1 1.25\n"
		"a_created 1.6e9\n"
		"# TYPE g gauge\n"
		"g_created 3\n"          /* not a counter: kept */
		"g 2 1700000000.123\n"
		"g 2 -0.001\n"
		"# EOF\n";
	assert_int_equal(parse_fmt(&k, body, PROM_FORMAT_OPENMETRICS, NULL), 0);
	assert_int_equal(k.ns, 4);
	assert_string_equal(k.s[0].labels, "a_total");
	assert_true(k.s[0].ts == 1500); /* seconds -> ms */
	assert_string_equal(k.s[1].labels, "g_created");
	assert_true(k.s[2].ts == INT64_C(1700000000123));
	assert_true(k.s[3].ts == -1);
	/* content after # EOF is one error */
	assert_int_equal(parse_fmt(&k, "a 1\n# EOF\nb 2\nc 3\n", PROM_FORMAT_OPENMETRICS, NULL), 1);
	assert_int_equal(k.ns, 1);
	assert_int_equal(k.err_line[0], 3);
	assert_int_equal(parse_fmt(&k, "a 1\n# EOF\n\n", PROM_FORMAT_OPENMETRICS, NULL), 0);
	/* timestamp out of range */
	assert_int_equal(parse_fmt(&k, "a 1 1e300\n", PROM_FORMAT_OPENMETRICS, NULL), 1);
}

static void test_empty_and_nul(void **state)
{
	struct sink k;
	memset(&k, 0, sizeof k);
	assert_int_equal(prom_parse("", 0, PROM_FORMAT_TEXT, NULL, on_sample, NULL, on_error, &k, NULL), 0);
	assert_int_equal(prom_parse(NULL, 0, PROM_FORMAT_TEXT, NULL, on_sample, NULL, on_error, &k, NULL), 0);
	static const char nul[] = "a{b=\"x\0y\"} 1\nc 2\n";
	memset(&k, 0, sizeof k);
	assert_int_equal(prom_parse(nul, sizeof nul - 1, PROM_FORMAT_TEXT, NULL, on_sample, NULL, on_error, &k, NULL), 0);
	assert_int_equal(k.ns, 2); /* NUL is a valid UTF-8 code point in a value */
}

static void test_types(void **state)
{
	enum prom_type t;
	assert_int_equal(prom_type_parse("gaugehistogram", 14, &t), 0);
	assert_int_equal(t, PROM_GAUGE_HISTOGRAM);
	assert_int_equal(prom_type_parse("untyped", 7, &t), 0);
	assert_int_equal(t, PROM_UNKNOWN);
	assert_int_equal(prom_type_parse("Counter", 7, &t), -1);
	assert_string_equal(prom_type_name(PROM_STATESET), "stateset");
	assert_string_equal(prom_type_name(PROM_UNKNOWN), "unknown");
}

/* ---- strict validator beyond the corpus --------------------------------- */

static int om(const char *doc)
{
	char err[256];
	size_t line;
	return prom_om_validate(doc, strlen(doc), err, sizeof err, &line);
}

static void test_om_validate_extra(void **state)
{
	char err[256];
	size_t line;
	assert_true(om("# EOF\n"));
	assert_true(om("# EOF"));
	assert_false(om(""));
	assert_false(om("a 1\n# EOF\n\n"));
	/* histogram with several timestamped points */
	assert_true(om("# TYPE h histogram\n"
	               "h_bucket{le=\"1\"} 0 1\nh_bucket{le=\"+Inf\"} 1 1\nh_count 1 1\nh_sum 1 1\n"
	               "h_bucket{le=\"1\"} 1 2\nh_bucket{le=\"+Inf\"} 2 2\nh_count 2 2\nh_sum 3 2\n"
	               "h_created 0\n# EOF\n"));
	/* counter _created before _total, labels in any order per sample */
	assert_true(om("# TYPE c counter\nc_created{a=\"1\",b=\"2\"} 1\nc_total{b=\"2\",a=\"1\"} 1\n# EOF\n"));
	/* duplicate sample without timestamp */
	assert_false(om("a 1\na 1\n# EOF\n"));
	/* family reopened */
	assert_false(om("a 1\nb 1\na 2\n# EOF\n"));
	/* lenient syntax is not OpenMetrics */
	assert_false(om("a{b=\"1\",} 1\n# EOF\n"));
	assert_false(om("a  1\n# EOF\n"));
	assert_false(om("# a comment\n# EOF\n"));
	assert_false(om("a 1\r\n# EOF\n"));
	/* error line and message */
	assert_int_equal(prom_om_validate("a 1\nb 0x1\n# EOF\n", 16, err, sizeof err, &line), 0);
	assert_int_equal(line, 2);
	assert_string_equal(err, "invalid value '0x1'");
	assert_int_equal(prom_om_validate("a 1\n", 4, NULL, 0, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_must_parse),
		cmocka_unit_test(test_must_not_parse),
		cmocka_unit_test(test_special_values),
		cmocka_unit_test(test_comments_help_type),
		cmocka_unit_test(test_bad_line_does_not_stop),
		cmocka_unit_test(test_callback_refusal_counted),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_openmetrics_mode),
		cmocka_unit_test(test_empty_and_nul),
		cmocka_unit_test(test_types),
		cmocka_unit_test(test_om_validate_extra),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
