/* cli/parse.c — `foreshock parse`: run the daemon's ingest parsers over stdin
 * and print, one JSON object per line, what they accept and reject.
 *
 *   foreshock parse --format influx [--precision ns|us|ms|s] [--default-time NS]
 *
 * Each format is one entry in `formats[]` below: a name, a one-line help and
 * a run function that reads the whole body and prints. Adding a format (e.g.
 * prometheus) means writing its run function and adding a row; options that
 * only make sense for one format are checked there.
 *
 * Output: {"name":..,"tags":[{"key":..,"value":..}],"fields":[{"key":..,
 * "value":{"float"|"int"|"uint"|"string"|"bool":..}}],"time":NS} per point and
 * {"line":N,"error":"reason"} per rejected line. Exit 0 if every line was
 * accepted, 1 if any was rejected, 2 on usage errors.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "ingest/line.h"
#include "ingest/prom.h"
#include "util/buf.h"

struct parse_opts {
	const char *format;
	const char *precision;  /* NULL: the format's default */
	int64_t default_time_ns;
	int has_default_time;
	FILE *out;
};

/* ---- JSON output helpers (strings via jansson, numbers exact) ----------- */

static void put_json_str(FILE *out, const char *p, size_t len)
{
	json_t *s = json_stringn(p, len);
	if (!s || json_dumpf(s, out, JSON_ENCODE_ANY | JSON_COMPACT) != 0)
		fputs("null", out); /* not reached: parsers hand out valid UTF-8 */
	json_decref(s);
}

/* Shortest decimal that reads back as the same double. */
static void put_json_double(FILE *out, double v)
{
	char b[40];
	for (int prec = 1; prec <= 17; prec++) {
		snprintf(b, sizeof b, "%.*g", prec, v);
		if (strtod(b, NULL) == v)
			break;
	}
	fputs(b, out);
}

static void put_lp_str(FILE *out, struct lp_str s)
{
	put_json_str(out, s.p, s.len);
}

static void put_error(FILE *out, size_t lineno, const char *reason)
{
	json_t *o = json_pack("{s:I,s:s}", "line", (json_int_t)lineno, "error", reason);
	if (o)
		json_dumpf(o, out, JSON_COMPACT);
	json_decref(o);
	fputc('\n', out);
}

/* ---- influx ------------------------------------------------------------- */

static int influx_point(void *ctx, const struct lp_point *pt, size_t lineno)
{
	FILE *out = ctx;
	(void)lineno;
	fputs("{\"name\":", out);
	put_lp_str(out, pt->name);
	fputs(",\"tags\":[", out);
	for (size_t i = 0; i < pt->ntags; i++) {
		fputs(i ? ",{\"key\":" : "{\"key\":", out);
		put_lp_str(out, pt->tags[i].key);
		fputs(",\"value\":", out);
		put_lp_str(out, pt->tags[i].value);
		fputc('}', out);
	}
	fputs("],\"fields\":[", out);
	for (size_t i = 0; i < pt->nfields; i++) {
		const struct lp_field *f = &pt->fields[i];
		fputs(i ? ",{\"key\":" : "{\"key\":", out);
		put_lp_str(out, f->key);
		fputs(",\"value\":{", out);
		switch (f->type) {
		case LP_FLOAT:
			fputs("\"float\":", out);
			put_json_double(out, f->v.f);
			break;
		case LP_INT:
			fprintf(out, "\"int\":%" PRId64, f->v.i);
			break;
		case LP_UINT:
			fprintf(out, "\"uint\":%" PRIu64, f->v.u);
			break;
		case LP_BOOL:
			fputs(f->v.b ? "\"bool\":true" : "\"bool\":false", out);
			break;
		case LP_STRING:
			fputs("\"string\":", out);
			put_lp_str(out, f->v.s);
			break;
		}
		fputs("}}", out);
	}
	fprintf(out, "],\"time\":%" PRId64 "}\n", pt->time_ns);
	return 0;
}

static void influx_error(void *ctx, size_t lineno, const char *reason)
{
	put_error(ctx, lineno, reason);
}

static int check_influx(const struct parse_opts *o)
{
	enum lp_precision prec;
	if (o->precision && lp_precision_parse(o->precision, &prec) != 0) {
		fprintf(stderr, "foreshock parse: invalid precision '%s' (want ns, us, ms or s)\n", o->precision);
		return 2;
	}
	return 0;
}

static int run_influx(const struct parse_opts *o, const char *buf, size_t len)
{
	enum lp_precision prec = LP_NS;
	if (o->precision)
		lp_precision_parse(o->precision, &prec); /* checked by check_influx */
	struct lp_parser p;
	if (lp_parser_init(&p, NULL) != 0) {
		fprintf(stderr, "foreshock parse: out of memory\n");
		return 1;
	}
	size_t rejected = lp_parse(&p, buf, len, prec, o->default_time_ns, influx_point, influx_error, o->out);
	lp_parser_free(&p);
	return rejected ? 1 : 0;
}

/* ---- prometheus / openmetrics text --------------------------------------- */

/* One object per sample: {"name":"x","labels":[{"key":"a","value":"b"}],
 * "value":1.5,"time":1700000000000,"line":3} (time in ms, null when absent;
 * NaN and infinities as the strings "NaN", "+Inf", "-Inf"), and one per type
 * line: {"family":"x","type":"counter"}. */
static int prom_sample(void *ctx, const struct label_ref *labels, size_t n, double value,
                       int64_t ts_ms, int has_ts, size_t lineno)
{
	FILE *out = ctx;
	fputs("{\"name\":", out);
	put_json_str(out, labels[0].value, labels[0].value_len);
	fputs(",\"labels\":[", out);
	for (size_t i = 1; i < n; i++) {
		fputs(i > 1 ? ",{\"key\":" : "{\"key\":", out);
		put_json_str(out, labels[i].name, labels[i].name_len);
		fputs(",\"value\":", out);
		put_json_str(out, labels[i].value, labels[i].value_len);
		fputc('}', out);
	}
	fputs("],\"value\":", out);
	if (isnan(value))
		fputs(prom_is_stale(value) ? "\"stale\"" : "\"NaN\"", out);
	else if (isinf(value))
		fputs(value > 0 ? "\"+Inf\"" : "\"-Inf\"", out);
	else
		put_json_double(out, value);
	if (has_ts)
		fprintf(out, ",\"time\":%" PRId64, ts_ms);
	else
		fputs(",\"time\":null", out);
	fprintf(out, ",\"line\":%zu}\n", lineno);
	return 0;
}

static void prom_meta(void *ctx, const char *family, size_t len, enum prom_type type)
{
	FILE *out = ctx;
	fputs("{\"family\":", out);
	put_json_str(out, family, len);
	fprintf(out, ",\"type\":\"%s\"}\n", prom_type_name(type));
}

static void prom_error(void *ctx, size_t lineno, const char *reason)
{
	put_error(ctx, lineno, reason);
}

static int check_prom(const struct parse_opts *o)
{
	if (o->precision || o->has_default_time) {
		fprintf(stderr, "foreshock parse: --precision and --default-time apply to the influx "
		                "format only\n");
		return 2;
	}
	return 0;
}

static int run_prom_fmt(const struct parse_opts *o, const char *buf, size_t len,
                        enum prom_format fmt)
{
	struct prom_stats st;
	size_t rejected =
		prom_parse(buf, len, fmt, NULL, prom_sample, prom_meta, prom_error, o->out, &st);
	return rejected ? 1 : 0;
}

static int run_prom(const struct parse_opts *o, const char *buf, size_t len)
{
	return run_prom_fmt(o, buf, len, PROM_FORMAT_TEXT);
}

static int run_openmetrics(const struct parse_opts *o, const char *buf, size_t len)
{
	char err[256];
	size_t line = 0;
	if (!prom_om_validate(buf, len, err, sizeof err, &line)) {
		put_error(o->out, line, err);
		return 1;
	}
	return run_prom_fmt(o, buf, len, PROM_FORMAT_OPENMETRICS);
}

/* ---- format table and command line -------------------------------------- */

struct format {
	const char *name;
	const char *help;
	/* Validate format-specific options before stdin is read: 0 or 2. */
	int (*check)(const struct parse_opts *o);
	/* Parse the whole body and print; returns the exit status. */
	int (*run)(const struct parse_opts *o, const char *buf, size_t len);
};

static const struct format formats[] = {
	{ "influx", "InfluxDB line protocol (--precision applies)", check_influx, run_influx },
	{ "prometheus", "Prometheus text exposition format 0.0.4", check_prom, run_prom },
	{ "openmetrics", "OpenMetrics 1.0 text (validated as a whole document)", check_prom,
	  run_openmetrics },
};

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: foreshock parse [--format FORMAT] [--precision ns|us|ms|s] [--default-time NS]\n"
	        "\n"
	        "Read metrics on stdin with foreshockd's own parser and print one JSON object per\n"
	        "line: each accepted point as {\"name\",\"tags\",\"fields\",\"time\"} and each rejected\n"
	        "line as {\"line\":N,\"error\":\"reason\"}. Exit 0 if all lines were accepted, 1 if any\n"
	        "was rejected, 2 on a usage error.\n"
	        "\n"
	        "options:\n"
	        "  --format FORMAT     input format (default influx):\n");
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
		fprintf(f, "                        %-10s %s\n", formats[i].name, formats[i].help);
	fprintf(f,
	        "  --precision P       timestamp unit: ns (default), us, ms or s\n"
	        "  --default-time NS   time (ns since the epoch) for lines without one;\n"
	        "                      default: now\n"
	        "  -h, --help          this help\n");
}

/* Accept "--opt VALUE" and "--opt=VALUE". Returns the value or NULL. */
static const char *opt_value(const char *name, int argc, char **argv, int *i)
{
	size_t n = strlen(name);
	if (strncmp(argv[*i], name, n) != 0)
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] != '\0')
		return NULL;
	if (*i + 1 >= argc) {
		fprintf(stderr, "foreshock parse: option '%s' needs a value\n", name);
		return "";
	}
	return argv[++*i];
}

int cli_parse_main(int argc, char **argv)
{
	struct parse_opts o = { .format = "influx", .out = stdout };
	for (int i = 1; i < argc; i++) {
		const char *v;
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if ((v = opt_value("--format", argc, argv, &i))) {
			if (!*v)
				return 2;
			o.format = v;
		} else if ((v = opt_value("--precision", argc, argv, &i))) {
			if (!*v)
				return 2;
			o.precision = v;
		} else if ((v = opt_value("--default-time", argc, argv, &i))) {
			if (!*v)
				return 2;
			char *end;
			errno = 0;
			long long t = strtoll(v, &end, 10);
			if (errno || *end || end == v) {
				fprintf(stderr, "foreshock parse: invalid default time '%s' (want ns since the epoch)\n", v);
				return 2;
			}
			o.default_time_ns = t;
			o.has_default_time = 1;
		} else {
			fprintf(stderr, "foreshock parse: unknown argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	const struct format *fmt = NULL;
	for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++)
		if (!strcmp(formats[i].name, o.format))
			fmt = &formats[i];
	if (!fmt) {
		fprintf(stderr, "foreshock parse: unknown format '%s'\n", o.format);
		usage(stderr);
		return 2;
	}
	if (fmt->check && fmt->check(&o) != 0)
		return 2;
	if (!o.has_default_time) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		o.default_time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	}
	struct obuf in;
	obuf_init(&in, 0);
	if (obuf_read(&in, stdin) < 0) {
		fprintf(stderr, "foreshock parse: cannot read stdin: %s\n", strerror(errno));
		obuf_free(&in);
		return 1;
	}
	int rc = fmt->run(&o, in.p, in.len);
	obuf_free(&in);
	if (fflush(o.out) != 0 && rc == 0)
		rc = 1;
	return rc;
}
