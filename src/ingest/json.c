/* ingest/json.c — decoder for the JSON import format (see ingest/json.h and
 * docs/api.md). Uses jansson to parse one top-level object at a time
 * (JSON_DISABLE_EOF_CHECK), so a body may hold one document or many (NDJSON).
 */
#include "ingest/json.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/timefmt.h"

#define JI_DEFAULT_MAX_LABELS 64
#define JI_PATH_MAX 160

struct ji {
	json_sample_fn on_sample;
	json_error_fn on_error;
	void *ctx;
	size_t max_labels, max_errors;
	struct json_import_stats st;
	struct label_ref *refs; /* grown up to max_labels */
	size_t refs_cap;
	size_t line;            /* line where the current object starts */
};

static void ji_error(struct ji *j, size_t nsamples, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ji_error(struct ji *j, size_t nsamples, const char *fmt, ...)
{
	j->st.rejected += nsamples;
	j->st.errors++;
	if (!j->on_error || (j->max_errors && j->st.errors > j->max_errors))
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	j->on_error(j->ctx, j->line, msg, nsamples);
}

/* Short printable form of a JSON value for error messages: strings as their
 * text, everything else compact JSON, cut to fit. */
static const char *repr(const json_t *v, char *buf, size_t len)
{
	if (!v) {
		snprintf(buf, len, "(missing)");
		return buf;
	}
	if (json_is_string(v)) {
		snprintf(buf, len, "%.40s%s", json_string_value(v),
		         json_string_length(v) > 40 ? "..." : "");
		return buf;
	}
	char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
	if (!s) {
		snprintf(buf, len, "?");
		return buf;
	}
	snprintf(buf, len, "%.40s%s", s, strlen(s) > 40 ? "..." : "");
	free(s);
	return buf;
}

/* Timestamp: integer ms, a real (ms, floored), or an RFC 3339 string. */
static int parse_ts(const json_t *v, int64_t *ms)
{
	if (json_is_integer(v)) {
		*ms = (int64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!isfinite(d) || d < -9.2e18 || d > 9.2e18)
			return -1;
		*ms = (int64_t)floor(d);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		/* RFC 3339 only: a bare number in a string would be ambiguous
		 * (seconds or milliseconds?), so insist on a date. */
		if (n < 10 || s[4] != '-' || s[7] != '-')
			return -1;
		return time_parse_ms(s, n, ms);
	}
	return -1;
}

/* Value: a JSON number, or a string holding a number, "NaN", "+Inf", "-Inf". */
static int parse_value(const json_t *v, double *out)
{
	if (json_is_integer(v)) {
		*out = (double)json_integer_value(v);
		return 0;
	}
	if (json_is_real(v)) {
		*out = json_real_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -1;
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (n == 0 || n > 64 || strlen(s) != n)
		return -1;
	if (!strcmp(s, "NaN")) {
		*out = NAN;
		return 0;
	}
	if (!strcmp(s, "+Inf") || !strcmp(s, "Inf")) {
		*out = INFINITY;
		return 0;
	}
	if (!strcmp(s, "-Inf")) {
		*out = -INFINITY;
		return 0;
	}
	/* strtod would also take "nan", "infinity" and hex floats; accept only
	 * decimal numbers here. */
	for (size_t i = 0; i < n; i++)
		if (!strchr("0123456789+-.eE", s[i]))
			return -1;
	char *end;
	errno = 0;
	double d = strtod(s, &end);
	if (end != s + n || errno == ERANGE)
		return -1;
	*out = d;
	return 0;
}

static size_t count_samples(const json_t *series)
{
	const json_t *a = json_object_get(series, "samples");
	if (!json_is_array(a))
		a = json_object_get(series, "values");
	size_t n = json_is_array(a) ? json_array_size(a) : 0;
	return n ? n : 1;
}

static void emit(struct ji *j, size_t nlabels, int64_t ts, double value, const char *path)
{
	struct json_sample s = { j->refs, nlabels, ts, value, j->line, path };
	if (j->on_sample(j->ctx, &s))
		j->st.refused++;
	else
		j->st.samples++;
}

static void decode_series(struct ji *j, const json_t *obj, const char *path)
{
	char rb[64];
	const char *lkey = "labels";
	const json_t *labels = json_object_get(obj, "labels");
	if (!labels) {
		labels = json_object_get(obj, "metric");
		lkey = "metric";
	}
	if (!json_is_object(labels)) {
		ji_error(j, count_samples(obj), "missing or invalid 'labels' object at %s",
		         *path ? path : ".");
		return;
	}
	size_t n = json_object_size(labels);
	if (n > j->max_labels) {
		ji_error(j, count_samples(obj), "too many labels (%zu, limit %zu) at %s.%s", n,
		         j->max_labels, path, lkey);
		return;
	}
	if (n > j->refs_cap) {
		size_t cap = n < 8 ? 8 : n;
		struct label_ref *r = realloc(j->refs, cap * sizeof *r);
		if (!r) {
			ji_error(j, count_samples(obj), "out of memory at %s", path);
			return;
		}
		j->refs = r;
		j->refs_cap = cap;
	}
	size_t nl = 0;
	int has_name = 0;
	const char *k;
	json_t *lv;
	json_object_foreach((json_t *)labels, k, lv) {
		if (!json_is_string(lv)) {
			ji_error(j, count_samples(obj),
			         "invalid label value '%s' for '%.64s' at %s.%s (must be a string)",
			         repr(lv, rb, sizeof rb), k, path, lkey);
			return;
		}
		j->refs[nl].name = k;
		j->refs[nl].name_len = strlen(k);
		j->refs[nl].value = json_string_value(lv);
		j->refs[nl].value_len = json_string_length(lv);
		if (!strcmp(k, "__name__") && j->refs[nl].value_len > 0)
			has_name = 1;
		nl++;
	}
	if (!has_name) {
		ji_error(j, count_samples(obj), "missing '__name__' label at %s.%s", path, lkey);
		return;
	}

	char sp[JI_PATH_MAX + 48];
	const json_t *samples = json_object_get(obj, "samples");
	if (samples) {
		if (!json_is_array(samples)) {
			ji_error(j, 1, "invalid 'samples' at %s.samples (must be an array)", path);
			return;
		}
		size_t i;
		const json_t *pair;
		json_array_foreach((json_t *)samples, i, pair) {
			snprintf(sp, sizeof sp, "%s.samples[%zu]", path, i);
			if (!json_is_array(pair) || json_array_size(pair) != 2) {
				ji_error(j, 1, "invalid sample '%s' at %s (must be [timestamp, value])",
				         repr(pair, rb, sizeof rb), sp);
				continue;
			}
			int64_t ts;
			double v;
			if (parse_ts(json_array_get(pair, 0), &ts)) {
				ji_error(j, 1, "invalid timestamp '%s' at %s[0]",
				         repr(json_array_get(pair, 0), rb, sizeof rb), sp);
				continue;
			}
			if (parse_value(json_array_get(pair, 1), &v)) {
				ji_error(j, 1, "invalid value '%s' at %s[1]",
				         repr(json_array_get(pair, 1), rb, sizeof rb), sp);
				continue;
			}
			emit(j, nl, ts, v, sp);
		}
		return;
	}

	/* VictoriaMetrics export shape: parallel "values" and "timestamps". */
	const json_t *values = json_object_get(obj, "values");
	const json_t *tss = json_object_get(obj, "timestamps");
	if (!values && !tss) {
		ji_error(j, 1, "missing 'samples' array at %s", *path ? path : ".");
		return;
	}
	if (!json_is_array(values) || !json_is_array(tss) ||
	    json_array_size(values) != json_array_size(tss)) {
		ji_error(j, count_samples(obj),
		         "invalid 'values'/'timestamps' at %s (must be arrays of equal length)",
		         *path ? path : ".");
		return;
	}
	for (size_t i = 0; i < json_array_size(values); i++) {
		int64_t ts;
		double v;
		if (parse_ts(json_array_get(tss, i), &ts)) {
			ji_error(j, 1, "invalid timestamp '%s' at %s.timestamps[%zu]",
			         repr(json_array_get(tss, i), rb, sizeof rb), path, i);
			continue;
		}
		if (parse_value(json_array_get(values, i), &v)) {
			ji_error(j, 1, "invalid value '%s' at %s.values[%zu]",
			         repr(json_array_get(values, i), rb, sizeof rb), path, i);
			continue;
		}
		snprintf(sp, sizeof sp, "%s.values[%zu]", path, i);
		emit(j, nl, ts, v, sp);
	}
}

static void decode_object(struct ji *j, const json_t *obj)
{
	const json_t *series = json_object_get(obj, "series");
	if (series) {
		if (!json_is_array(series)) {
			ji_error(j, 1, "invalid 'series' at .series (must be an array)");
			return;
		}
		size_t i;
		const json_t *s;
		char path[JI_PATH_MAX];
		json_array_foreach((json_t *)series, i, s) {
			snprintf(path, sizeof path, ".series[%zu]", i);
			if (!json_is_object(s)) {
				ji_error(j, 1, "invalid series at %s (must be an object)", path);
				continue;
			}
			decode_series(j, s, path);
		}
		return;
	}
	if (json_object_get(obj, "labels") || json_object_get(obj, "metric")) {
		decode_series(j, obj, "");
		return;
	}
	ji_error(j, 1, "invalid object at . (needs 'series', or 'labels' and 'samples')");
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

size_t json_import_parse(const char *body, size_t len, const struct json_import_limits *lim,
                         json_sample_fn on_sample, json_error_fn on_error, void *ctx,
                         struct json_import_stats *stats)
{
	struct ji j = { .on_sample = on_sample, .on_error = on_error, .ctx = ctx };
	j.max_labels = lim && lim->max_labels ? lim->max_labels : JI_DEFAULT_MAX_LABELS;
	j.max_errors = lim ? lim->max_errors : 0;
	size_t pos = 0, line = 1;

	if (len >= 3 && !memcmp(body, "\xef\xbb\xbf", 3)) /* UTF-8 byte order mark */
		pos = 3;
	for (;;) {
		while (pos < len && is_ws(body[pos])) {
			if (body[pos] == '\n')
				line++;
			pos++;
		}
		if (pos >= len)
			break;
		j.line = line;
		size_t next = pos; /* where the next object starts */
		if (body[pos] != '{') {
			ji_error(&j, 1, "unexpected '%c' at line %zu (expected a JSON object)",
			         (body[pos] >= 0x20 && body[pos] < 0x7f) ? body[pos] : '?', line);
			next = len; /* resync below */
		} else {
			json_error_t e;
			json_t *v = json_loadb(body + pos, len - pos, JSON_DISABLE_EOF_CHECK, &e);
			if (v) {
				j.st.objects++;
				decode_object(&j, v);
				json_decref(v);
				size_t used = (size_t)e.position;
				if (used == 0 || used > len - pos)
					used = len - pos;
				for (size_t i = pos; i < pos + used; i++)
					line += body[i] == '\n';
				pos += used;
				continue;
			}
			ji_error(&j, 1, "invalid json at line %zu column %d: %s (object starting at line %zu)",
			         line + (e.line > 0 ? (size_t)e.line - 1 : 0), e.column, e.text, line);
			next = len;
		}
		/* Resync: the next line starting with '{' in its first column. */
		for (size_t i = pos; i + 1 < len; i++) {
			if (body[i] == '\n' && body[i + 1] == '{') {
				next = i + 1;
				break;
			}
		}
		for (size_t i = pos; i < next; i++)
			line += body[i] == '\n';
		pos = next;
	}
	free(j.refs);
	if (stats)
		*stats = j.st;
	return j.st.rejected + j.st.refused;
}
