/* test_ingest_line.c — unit tests of the line-protocol parser: tables of
 * must_parse / must_not_parse lines (brubeck style), precision and default
 * time, limits, CRLF, comments, and partial bodies (good lines around bad
 * ones still come through with the right line numbers). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ingest/line.h"
#include "ingest/line_int.h"

#define DFLT 42 /* default time (ns) used by the tables */

/* Collects what lp_parse() reports, each point rendered as
 * "name|k=v,k=v|key=T:value,...|time" (T: f i u s b; '*' after the time when
 * it is the default). */
struct sink {
	char pts[16][512];
	size_t lines[16];
	size_t npts;
	char errs[16][320];
	size_t errlines[16];
	size_t nerrs;
	int reject_name_x; /* on_point rejects measurement "x" */
};

static void cat(char *dst, size_t cap, const char *p, size_t n)
{
	size_t l = strlen(dst);
	if (l + n + 1 > cap)
		n = cap - l - 1;
	memcpy(dst + l, p, n);
	dst[l + n] = '\0';
}

static void catf(char *dst, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void catf(char *dst, size_t cap, const char *fmt, ...)
{
	char b[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(b, sizeof b, fmt, ap);
	va_end(ap);
	cat(dst, cap, b, strlen(b));
}

static int on_point(void *ctx, const struct lp_point *pt, size_t lineno)
{
	struct sink *s = ctx;
	if (s->reject_name_x && pt->name.len == 1 && pt->name.p[0] == 'x')
		return 1;
	assert_true(s->npts < 16);
	char *o = s->pts[s->npts];
	size_t cap = sizeof s->pts[0];
	o[0] = '\0';
	cat(o, cap, pt->name.p, pt->name.len);
	cat(o, cap, "|", 1);
	for (size_t i = 0; i < pt->ntags; i++) {
		if (i)
			cat(o, cap, ",", 1);
		cat(o, cap, pt->tags[i].key.p, pt->tags[i].key.len);
		cat(o, cap, "=", 1);
		cat(o, cap, pt->tags[i].value.p, pt->tags[i].value.len);
	}
	cat(o, cap, "|", 1);
	for (size_t i = 0; i < pt->nfields; i++) {
		const struct lp_field *f = &pt->fields[i];
		if (i)
			cat(o, cap, ",", 1);
		cat(o, cap, f->key.p, f->key.len);
		switch (f->type) {
		case LP_FLOAT:
			catf(o, cap, "=f:%.17g", f->v.f);
			break;
		case LP_INT:
			catf(o, cap, "=i:%lld", (long long)f->v.i);
			break;
		case LP_UINT:
			catf(o, cap, "=u:%llu", (unsigned long long)f->v.u);
			break;
		case LP_BOOL:
			catf(o, cap, "=b:%d", f->v.b);
			break;
		case LP_STRING:
			cat(o, cap, "=s:", 3);
			cat(o, cap, f->v.s.p, f->v.s.len);
			break;
		}
	}
	catf(o, cap, "|%lld%s", (long long)pt->time_ns, pt->has_time ? "" : "*");
	s->lines[s->npts++] = lineno;
	return 0;
}

static void on_error(void *ctx, size_t lineno, const char *reason)
{
	struct sink *s = ctx;
	assert_true(s->nerrs < 16);
	snprintf(s->errs[s->nerrs], sizeof s->errs[0], "%s", reason);
	s->errlines[s->nerrs++] = lineno;
}

static size_t run(struct sink *s, const char *body, size_t len, enum lp_precision prec, int64_t dflt,
                  const struct lp_limits *lim)
{
	struct lp_parser p;
	assert_int_equal(lp_parser_init(&p, lim), 0);
	memset(s, 0, offsetof(struct sink, reject_name_x));
	size_t r = lp_parse(&p, body, len, prec, dflt, on_point, on_error, s);
	assert_int_equal(r, p.nrejected);
	lp_parser_free(&p);
	return r;
}

static void must_parse_n(const char *line, size_t len, const char *want)
{
	struct sink s = { 0 };
	size_t r = run(&s, line, len, LP_NS, DFLT, NULL);
	if (r != 0 || s.npts != 1 || strcmp(s.pts[0], want) != 0) {
		print_error("must_parse(\"%s\")\n  want: %s\n  got:  %s (rejected %zu%s%s)\n", line, want,
		            s.npts ? s.pts[0] : "-", r, s.nerrs ? ": " : "", s.nerrs ? s.errs[0] : "");
		fail();
	}
}

static void must_parse(const char *line, const char *want)
{
	must_parse_n(line, strlen(line), want);
}

static void must_not_parse(const char *line, const char *reason_part)
{
	struct sink s = { 0 };
	size_t r = run(&s, line, strlen(line), LP_NS, DFLT, NULL);
	if (r != 1 || s.npts != 0 || s.nerrs != 1 || !strstr(s.errs[0], reason_part)) {
		print_error("must_not_parse(\"%s\")\n  want error containing: %s\n  got: %s%s (rejected %zu)\n", line,
		            reason_part, s.nerrs ? s.errs[0] : "no error", s.npts ? s.pts[0] : "", r);
		fail();
	}
}

static void test_must_parse(void **state)
{
	(void)state;
	/* basics */
	must_parse("cpu value=1", "cpu||value=f:1|42*");
	must_parse("cpu,host=a usage=0.5 1700000000000000000", "cpu|host=a|usage=f:0.5|1700000000000000000");
	must_parse("cpu,b=2,a=1 v=1i", "cpu|a=1,b=2|v=i:1|42*"); /* tags come out sorted */
	must_parse("   cpu v=1", "cpu||v=f:1|42*");             /* leading spaces */
	must_parse("cpu    v=1     5", "cpu||v=f:1|5");
	must_parse("cpu v=1 5   ", "cpu||v=f:1|5");
	must_parse("cpu v=1 -1", "cpu||v=f:1|-1");
	must_parse("cpu v=1\n", "cpu||v=f:1|42*");
	must_parse("cpu v=1\r\n", "cpu||v=f:1|42*");
	must_parse("cpu v=1\r", "cpu||v=f:1|42*");
	must_parse("m a=1,a=2", "m||a=f:1,a=f:2|42*"); /* duplicate fields pass through */
	/* integers and unsigned */
	must_parse("m v=9223372036854775807i", "m||v=i:9223372036854775807|42*");
	must_parse("m v=-9223372036854775808i", "m||v=i:-9223372036854775808|42*");
	must_parse("m v=0009i", "m||v=i:9|42*");
	must_parse("m v=18446744073709551615u", "m||v=u:18446744073709551615|42*");
	must_parse("m v=0u", "m||v=u:0|42*");
	/* floats */
	must_parse("m v=.5", "m||v=f:0.5|42*");
	must_parse("m v=1.", "m||v=f:1|42*");
	must_parse("m v=-0.64", "m||v=f:-0.64000000000000001|42*");
	must_parse("m v=1e4,w=1E-2,x=6.632243e+06", "m||v=f:10000,w=f:0.01,x=f:6632243|42*");
	must_parse("m v=1e-400", "m||v=f:0|42*"); /* underflow rounds to 0 */
	must_parse("m v=1_000.5", "m||v=f:1000.5|42*"); /* Go syntax: '_' between digits */
	must_parse("m v=0x1p-2", "m||v=f:0.25|42*");
	must_parse("m v=123456789012345678901234567890", "m||v=f:1.2345678901234568e+29|42*");
	/* booleans */
	must_parse("m a=t,b=T,c=true,d=True,e=TRUE", "m||a=b:1,b=b:1,c=b:1,d=b:1,e=b:1|42*");
	must_parse("m a=f,b=F,c=false,d=False,e=FALSE", "m||a=b:0,b=b:0,c=b:0,d=b:0,e=b:0|42*");
	/* strings */
	must_parse("m s=\"hello world\"", "m||s=s:hello world|42*");
	must_parse("m s=\"\"", "m||s=s:|42*");
	must_parse("m s=\"a\\\"b\\\\c\"", "m||s=s:a\"b\\c|42*");
	must_parse("m s=\"\\n\\t\"", "m||s=s:\\n\\t|42*"); /* only \" and \\ are escapes */
	must_parse("m s=\"a,b=c d\",v=1", "m||s=s:a,b=c d,v=f:1|42*");
	must_parse("m s=\"w\xc3\xa8\"", "m||s=s:w\xc3\xa8|42*");
	must_parse("m s=\"line1\nline2\" 7", "m||s=s:line1\nline2|7");
	/* escapes in names, keys and tag values */
	must_parse("cpu\\ load,region=east v=1", "cpu load|region=east|v=f:1|42*");
	must_parse("cpu\\,main v=1", "cpu,main||v=f:1|42*");
	must_parse("cpu=load v=1", "cpu=load||v=f:1|42*");
	must_parse("m,ta\\ g\\=\\,=\\,\\ \\= v=1", "m|ta g=,=, =|v=f:1|42*");
	must_parse("m,k=two\\\\ words v=1", "m|k=two\\ words|v=f:1|42*"); /* \\ is not an escape here */
	must_parse("m,k=eas\\t v=1", "m|k=eas\\t|v=f:1|42*");
	must_parse("m va\\ l\\,u\\=e=1", "m||va l,u=e=f:1|42*");
	must_parse("m \\a=1i", "m||\\a=i:1|42*");
	must_parse("m,\"host\"=\"a\" v=1", "m|\"host\"=\"a\"|v=f:1|42*");
	must_parse("m,k=x\001y v=1", "m|k=x\001y|v=f:1|42*"); /* control bytes allowed in tag values */
	must_parse("m\\x,k=a\\b c\\d=1", "m\\x|k=a\\b|c\\d=f:1|42*"); /* other backslashes kept */
	/* comments and blank lines around */
	must_parse("# a comment\n\n  \ncpu v=1\n# end", "cpu||v=f:1|42*");
}

static void test_must_not_parse(void **state)
{
	(void)state;
	must_not_parse("cpu", "missing fields for 'cpu'");
	must_not_parse("m\\ v=1", "missing fields for 'm\\ v=1'"); /* the space is escaped */
	must_not_parse("cpu ", "missing field key");
	must_not_parse("cpu,host=a", "missing fields");
	must_not_parse("cpu,", "missing tag key after ','");
	must_not_parse("cpu, v=1", "missing tag key after ','");
	must_not_parse("cpu,host v=1", "missing '=' after tag key 'host' (found ' ')");
	must_not_parse("cpu v\r\n", "missing '=' after field key 'v' (found end of line)");
	must_not_parse("cpu,host= v=1", "missing tag value for 'host'");
	must_not_parse("cpu,=a v=1", "at start of tag key");
	must_not_parse("cpu,a=b=c v=1", "invalid character '=' after tag value");
	must_not_parse("cpu,b=1,b=2 v=1", "duplicate tag key 'b'");
	must_not_parse(",a v=1", "at start of measurement");
	must_not_parse("x\001y v=1", "invalid character '\\x01' after measurement");
	must_not_parse("m,x\001y=v v=1", "missing '=' after tag key 'x'");
	must_not_parse("m x\001y=1", "missing '=' after field key 'x'");
	must_not_parse("m\tv=1", "invalid character '\\x09' after measurement");
	must_not_parse("cpu =1", "invalid character '=' at start of field key");
	must_not_parse("cpu v", "missing '=' after field key 'v'");
	must_not_parse("cpu v=", "missing field value for 'v'");
	must_not_parse("cpu v= ", "missing field value for 'v'");
	must_not_parse("cpu v=1,", "missing field key");
	must_not_parse("cpu v=1,,w=2", "at start of field key");
	must_not_parse("cpu usage=abc", "invalid field value 'abc' for 'usage'");
	must_not_parse("cpu v=NaN", "invalid field value 'NaN' for 'v'");
	must_not_parse("cpu v=-Inf", "invalid field value '-Inf' for 'v'");
	must_not_parse("cpu v=-nan", "invalid field value");
	must_not_parse("cpu v=1e400", "field value out of range '1e400'");
	must_not_parse("cpu v=1.1.1", "invalid field value");
	must_not_parse("cpu v=-", "invalid field value");
	must_not_parse("cpu v=-.", "invalid field value");
	must_not_parse("cpu v=1e", "invalid field value");
	must_not_parse("cpu v=1_", "invalid field value");
	must_not_parse("cpu v=_1", "invalid field value");
	must_not_parse("cpu v=0x1", "invalid field value"); /* hex needs a p exponent */
	must_not_parse("cpu v=1a", "invalid field value");
	must_not_parse("cpu v=1.0i", "invalid field value");
	must_not_parse("cpu v=9e10i", "invalid field value");
	must_not_parse("cpu v=1_0i", "invalid field value");
	must_not_parse("cpu v=9223372036854775808i", "field value out of range");
	must_not_parse("cpu v=-9223372036854775809i", "field value out of range");
	must_not_parse("cpu v=18446744073709551616u", "field value out of range");
	must_not_parse("cpu v=-1u", "invalid field value");
	must_not_parse("cpu v=tru", "invalid boolean value 'tru'");
	must_not_parse("cpu v=tRUE", "invalid boolean value");
	must_not_parse("cpu v=\"abc", "unterminated string value for 'v'");
	must_not_parse("cpu v=\"abc\\\"", "unterminated string value");
	must_not_parse("cpu v=\"a\"\"", "unexpected character '\"' after field 'v'");
	must_not_parse("cpu v=\"a\"x", "unexpected character 'x' after field 'v'");
	must_not_parse("cpu v=1 1-", "invalid timestamp '1-'");
	must_not_parse("cpu v=1 -", "invalid timestamp '-'");
	must_not_parse("cpu v=1 12a", "invalid timestamp '12a'");
	must_not_parse("cpu v=1 9223372036854775808", "timestamp out of range");
	must_not_parse("cpu v=1 -92233720368547758078", "timestamp out of range");
	must_not_parse("cpu v=1 1 2", "unexpected text after timestamp '2'");
	must_not_parse("cpu v=1 1\rx", "unexpected text after timestamp");
	must_not_parse("\rcpu v=1", "invalid character '\\x0d' at start of measurement");
	must_not_parse("#comment\twith tab", "invalid character in comment");
	must_not_parse("bad\xff v=1", "invalid utf-8 in measurement");
	must_not_parse("m,bad\xff=v v=1", "invalid utf-8 in tag key");
	must_not_parse("m,k=bad\xff v=1", "invalid utf-8 in tag value for 'k'");
	must_not_parse("m bad\xff=1", "invalid utf-8 in field key");
	must_not_parse("m f=\"bad\xff\"", "invalid utf-8 in string value for 'f'");
	must_not_parse("m f=\"\xed\xa0\x80\"", "invalid utf-8"); /* surrogate */
	must_not_parse("m f=\"\xc0\xaf\"", "invalid utf-8");     /* overlong */
	must_not_parse("m\xc2\xa0v=1", "missing fields");         /* NBSP is not a space */
}

static int nul_point(void *ctx, const struct lp_point *pt, size_t lineno)
{
	(void)lineno;
	assert_int_equal(pt->nfields, 1);
	assert_int_equal(pt->fields[0].type, LP_STRING);
	assert_int_equal(pt->fields[0].v.s.len, 3);
	assert_memory_equal(pt->fields[0].v.s.p, "a\0b", 3);
	++*(int *)ctx;
	return 0;
}

static void test_nul_bytes(void **state)
{
	(void)state;
	struct lp_parser p;
	int n = 0;
	assert_int_equal(lp_parser_init(&p, NULL), 0);
	/* NUL inside a string value is data, not an end of input. */
	assert_int_equal(lp_parse(&p, "m s=\"a\0b\"", 9, LP_NS, 0, nul_point, NULL, &n), 0);
	assert_int_equal(n, 1);
	/* NUL in a measurement is a control byte. */
	assert_int_equal(lp_parse(&p, "m\0 v=1", 6, LP_NS, 0, NULL, NULL, NULL), 1);
	lp_parser_free(&p);
}

static void test_precision(void **state)
{
	(void)state;
	struct sink s;
	static const struct {
		enum lp_precision prec;
		const char *want;
	} t[] = {
		{ LP_NS, "m||v=f:1|5" },
		{ LP_US, "m||v=f:1|5000" },
		{ LP_MS, "m||v=f:1|5000000" },
		{ LP_S, "m||v=f:1|5000000000" },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		assert_int_equal(run(&s, "m v=1 5", 7, t[i].prec, 0, NULL), 0);
		assert_string_equal(s.pts[0], t[i].want);
	}
	/* overflow after scaling is an error, not a wrap */
	assert_int_equal(run(&s, "m v=1 9223372036854775807", 25, LP_NS, 0, NULL), 0);
	assert_int_equal(run(&s, "m v=1 9223372036854775807", 25, LP_MS, 0, NULL), 1);
	assert_non_null(strstr(s.errs[0], "timestamp out of range"));
	assert_int_equal(run(&s, "m v=1 9223372036", 16, LP_S, 0, NULL), 0);
	assert_string_equal(s.pts[0], "m||v=f:1|9223372036000000000");
	assert_int_equal(run(&s, "m v=1 9223372037", 16, LP_S, 0, NULL), 1);
	assert_int_equal(run(&s, "m v=1 -9223372036", 17, LP_S, 0, NULL), 0);
	/* the default time is rounded down to the precision */
	assert_int_equal(run(&s, "m v=1", 5, LP_MS, 946730096789012345, NULL), 0);
	assert_string_equal(s.pts[0], "m||v=f:1|946730096789000000*");
	assert_int_equal(run(&s, "m v=1", 5, LP_S, -1, NULL), 0);
	assert_string_equal(s.pts[0], "m||v=f:1|-1000000000*");
	assert_int_equal(run(&s, "m v=1", 5, LP_US, INT64_MIN, NULL), 0);
	assert_string_equal(s.pts[0], "m||v=f:1|-9223372036854775000*");

	/* names */
	static const struct {
		const char *name;
		enum lp_precision want;
	} n[] = {
		{ "ns", LP_NS }, { "n", LP_NS },  { "1ns", LP_NS },      { "us", LP_US },      { "u", LP_US },
		{ "1us", LP_US }, { "\xc2\xb5s", LP_US }, { "1\xc2\xb5s", LP_US }, { "ms", LP_MS }, { "1ms", LP_MS },
		{ "s", LP_S },   { "1s", LP_S },
	};
	for (size_t i = 0; i < sizeof n / sizeof n[0]; i++) {
		enum lp_precision p = LP_S;
		assert_int_equal(lp_precision_parse(n[i].name, &p), 0);
		assert_int_equal(p, n[i].want);
	}
	enum lp_precision p;
	assert_int_equal(lp_precision_parse("h", &p), -1);
	assert_int_equal(lp_precision_parse("", &p), -1);
	assert_int_equal(lp_precision_parse("1", &p), -1);
	assert_int_equal(lp_precision_parse("nsx", &p), -1);
	assert_int_equal(lp_precision_parse(NULL, &p), -1);
	assert_string_equal(lp_precision_name(LP_US), "us");
}

static void test_limits(void **state)
{
	(void)state;
	struct sink s;
	struct lp_limits lim = { .max_line_len = 40, .max_tags = 2, .max_fields = 2, .max_key_len = 4,
		                 .max_value_len = 5 };
	const char *ok = "m,a=1,b=2 v=1,w=2 1";
	assert_int_equal(run(&s, ok, strlen(ok), LP_NS, 0, &lim), 0);
	static const struct {
		const char *line;
		const char *reason;
	} bad[] = {
		{ "m,a=1,b=2,c=3 v=1", "too many tags (limit 2)" },
		{ "m v=1,w=2,x=3", "too many fields (limit 2)" },
		{ "m,a=1 v=1,w=2                           1", "line too long (41 bytes, limit 40)" },
		{ "measure v=1", "measurement too long 'measure'" },
		{ "m,tagkey=1 v=1", "tag key too long" },
		{ "m,k=123456 v=1", "tag value too long" },
		{ "m field=1", "field key too long" },
		{ "m v=\"123456\"", "string value too long" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(run(&s, bad[i].line, strlen(bad[i].line), LP_NS, 0, &lim), 1);
		if (!strstr(s.errs[0], bad[i].reason)) {
			print_error("'%s': want '%s', got '%s'\n", bad[i].line, bad[i].reason, s.errs[0]);
			fail();
		}
	}
	/* default limits: 64 tags ok, 65 not */
	char line[2048] = "m";
	for (int i = 0; i < 65; i++)
		snprintf(line + strlen(line), sizeof line - strlen(line), ",t%02d=v", i);
	strcat(line, " v=1");
	assert_int_equal(run(&s, line, strlen(line), LP_NS, 0, NULL), 1);
	assert_non_null(strstr(s.errs[0], "too many tags (limit 64)"));
	*strrchr(line, ',') = '\0';
	strcat(line, " v=1");
	assert_int_equal(run(&s, line, strlen(line), LP_NS, 0, NULL), 0);
	/* unlimited: many tags and a long escaped value grow the buffers */
	struct lp_limits none = { 0, 0, 0, 0, 0 };
	size_t big = 200000;
	char *body = malloc(big + 64);
	strcpy(body, "m,k=");
	size_t o = 4;
	while (o < big) {
		body[o++] = '\\';
		body[o++] = ' ';
	}
	strcpy(body + o, " v=1");
	assert_int_equal(run(&s, body, strlen(body), LP_NS, 0, &none), 0);
	assert_int_equal(strlen(s.pts[0]), sizeof s.pts[0] - 1); /* rendered (truncated) */
	assert_int_equal(run(&s, body, strlen(body), LP_NS, 0, NULL), 1);
	assert_non_null(strstr(s.errs[0], "tag value too long"));
	free(body);
}

static void test_partial_body(void **state)
{
	(void)state;
	struct sink s;
	const char *body = "a v=1\n"     /* 1 ok */
	                   "bad\n"       /* 2 rejected */
	                   "c v=3\r\n"   /* 3 ok */
	                   "\n"          /* 4 blank */
	                   "# note\n"    /* 5 comment */
	                   "d v=x\n"     /* 6 rejected */
	                   "e v=5 10\n"; /* 7 ok */
	assert_int_equal(run(&s, body, strlen(body), LP_NS, 99, NULL), 2);
	assert_int_equal(s.npts, 3);
	assert_string_equal(s.pts[0], "a||v=f:1|99*");
	assert_string_equal(s.pts[1], "c||v=f:3|99*");
	assert_string_equal(s.pts[2], "e||v=f:5|10");
	assert_int_equal(s.lines[0], 1);
	assert_int_equal(s.lines[1], 3);
	assert_int_equal(s.lines[2], 7);
	assert_int_equal(s.nerrs, 2);
	assert_int_equal(s.errlines[0], 2);
	assert_int_equal(s.errlines[1], 6);
	assert_string_equal(s.errs[1], "invalid field value 'x' for 'v'");

	/* CRLF throughout */
	const char *crlf = "a v=1\r\nb v=2 3\r\n\r\nc v=3\r\n";
	assert_int_equal(run(&s, crlf, strlen(crlf), LP_NS, 0, NULL), 0);
	assert_int_equal(s.npts, 3);
	assert_int_equal(s.lines[2], 4);

	/* a string spanning lines keeps the line count right */
	const char *ml = "a s=\"x\ny\"\nb v=1\n";
	assert_int_equal(run(&s, ml, strlen(ml), LP_NS, 0, NULL), 0);
	assert_int_equal(s.npts, 2);
	assert_int_equal(s.lines[1], 3);

	/* an unterminated string loses only its own line */
	const char *ut = "a s=\"abc\nb v=1\n";
	assert_int_equal(run(&s, ut, strlen(ut), LP_NS, 0, NULL), 1);
	assert_int_equal(s.npts, 1);
	assert_string_equal(s.pts[0], "b||v=f:1|0*");
	assert_int_equal(s.lines[0], 2);

	/* errors after the first field, and a rejected duplicate-tag line,
	 * resume at the next line */
	const char *mix = "a v=1,w=bad x=1\nb,t=1,t=2 v=1\nc v=1\n";
	assert_int_equal(run(&s, mix, strlen(mix), LP_NS, 0, NULL), 2);
	assert_int_equal(s.npts, 1);
	assert_int_equal(s.lines[0], 3);
	assert_int_equal(s.errlines[1], 2);

	/* the caller may reject points: counted, no error message */
	s.reject_name_x = 1;
	struct lp_parser p;
	assert_int_equal(lp_parser_init(&p, NULL), 0);
	memset(&s, 0, offsetof(struct sink, reject_name_x));
	const char *cr = "x v=1\ny v=2\nx v=3\n";
	assert_int_equal(lp_parse(&p, cr, strlen(cr), LP_NS, 0, on_point, on_error, &s), 2);
	assert_int_equal(p.npoints, 1);
	assert_int_equal(s.nerrs, 0);
	/* NULL callbacks are allowed; the parser is reusable */
	assert_int_equal(lp_parse(&p, "a v=1\nb\n", 8, LP_NS, 0, NULL, NULL, NULL), 1);
	assert_int_equal(lp_parse(&p, "", 0, LP_NS, 0, NULL, NULL, NULL), 0);
	assert_int_equal(lp_parse(&p, NULL, 0, LP_NS, 0, NULL, NULL, NULL), 0);
	lp_parser_free(&p);
	lp_parser_free(&p); /* idempotent */
}

static void test_error_text_is_bounded(void **state)
{
	(void)state;
	struct sink s;
	char line[600] = "m v=";
	memset(line + 4, 'z', 500);
	line[504] = '\0';
	assert_int_equal(run(&s, line, strlen(line), LP_NS, 0, NULL), 1);
	assert_true(strlen(s.errs[0]) < 120);
	assert_non_null(strstr(s.errs[0], "zzz...' for 'v'"));
}

/* lp_value_float8() (8 bytes at a time, the bytes after the value
 * arbitrary) gives lp_value_float()'s value, bit for bit, on every string it
 * takes, takes the usual short forms, and refuses what the general path
 * refuses: random strings over digits, '.', signs and a few other bytes. */
static void test_float8_matches_general(void **state)
{
	(void)state;
	static const char *const usual[] = { "512.345", "0.5", ".5", "5.", "-12.25", "+7",
		                             "12345678", "1234.567", "-0", "00000001", "9.999999", "-1.234567" };
	char buf[32], tmp[32];
	double a, b;
	for (size_t i = 0; i < sizeof usual / sizeof usual[0]; i++) {
		size_t n = strlen(usual[i]);
		memset(buf, '7', sizeof buf);
		memcpy(buf, usual[i], n);
		assert_int_equal(lp_value_float8(buf, n, &a), 0);
		assert_int_equal(lp_value_float(usual[i], n, tmp, &b), 0);
		assert_memory_equal(&a, &b, sizeof a);
	}
	static const char alpha[] = "0123456789012345678901234..-+e/:_ ";
	uint64_t x = 88172645463325252u;
	size_t taken = 0;
	for (int it = 0; it < 400000; it++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		size_t n = x % 11;
		for (size_t k = 0; k < sizeof buf; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			buf[k] = k < n ? alpha[x % (sizeof alpha - 1)] : (char)(x >> 24);
		}
		int r8 = lp_value_float8(buf, n, &a);
		if (r8 != 0)
			continue;
		taken++;
		assert_int_equal(lp_value_float(buf, n, tmp, &b), 0);
		assert_memory_equal(&a, &b, sizeof a);
	}
	assert_true(taken > 1000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_must_parse),
		cmocka_unit_test(test_must_not_parse),
		cmocka_unit_test(test_nul_bytes),
		cmocka_unit_test(test_precision),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_partial_body),
		cmocka_unit_test(test_error_text_is_bounded),
		cmocka_unit_test(test_float8_matches_general),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
