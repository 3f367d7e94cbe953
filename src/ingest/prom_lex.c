/* ingest/prom_lex.c — the Prometheus text / OpenMetrics line lexer (see
 * prom.c for the two users and the shape of a sample line): numbers,
 * timestamps, label sets with escapes, exemplars, and the metric types. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/prom.h"
#include "ingest/prom_int.h"


static int bytes_ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	if (alen != blen)
		return 0;
	for (size_t i = 0; i < alen; i++) {
		char c = a[i];
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != b[i])
			return 0;
	}
	return 1;
}

/* Returns the number of code points, or (size_t)-1 if s is not valid UTF-8
 * (overlongs, surrogates and values above U+10FFFF are invalid). */
size_t prom_utf8_count(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *e = p + n;
	size_t cps = 0;
	while (p < e) {
		unsigned c = *p;
		size_t k;
		unsigned cp, min;
		if (c < 0x80) {
			p++;
			cps++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			k = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			k = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return (size_t)-1;
		}
		if ((size_t)(e - p) <= k)
			return (size_t)-1;
		for (size_t i = 1; i <= k; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return (size_t)-1;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return (size_t)-1;
		p += k + 1;
		cps++;
	}
	return cps;
}

/* realnumber: [+-] (DIGITS ["." DIGITS*] | "." DIGITS) [(e|E) [+-] DIGITS].
 * With `special`, also [+-](inf|infinity) and [+-]nan, case-insensitive.
 * No hex, no underscores (unlike strtod). */
static int num_syntax(const char *s, size_t n, int special)
{
	size_t i = 0, digits = 0;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		i++;
	if (special && (bytes_ieq(s + i, n - i, "inf") || bytes_ieq(s + i, n - i, "infinity") ||
	                bytes_ieq(s + i, n - i, "nan")))
		return 1;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (i < n && s[i] == '.') {
		i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, digits++;
	}
	if (digits == 0)
		return 0;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t ed = 0;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++, ed++;
		if (ed == 0)
			return 0;
	}
	return i == n;
}

/* Parse a number token (syntax already checked or checked here). */
int prom_num_parse(const char *s, size_t n, int special, double *out)
{
	char buf[256];
	if (n == 0 || n >= sizeof buf || !num_syntax(s, n, special))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	*out = strtod(buf, NULL); /* overflow gives ±HUGE_VAL, underflow 0: both fine */
	return 0;
}

/* Integer milliseconds (text format): [+-]DIGITS fitting int64. */
int prom_ts_parse_ms_int(const char *s, size_t n, int64_t *out)
{
	size_t i = 0;
	int neg = 0;
	uint64_t v = 0, lim;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		neg = s[i++] == '-';
	if (i == n)
		return -1;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		unsigned d = (unsigned)(s[i] - '0');
		if (v > (lim - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = neg ? (int64_t)(0 - v) : (int64_t)v;
	return 0;
}

/* Float seconds (OpenMetrics) to ms, rounded to nearest; -1 if out of range. */
int prom_ts_parse_s_float(const char *s, size_t n, int64_t *out)
{
	double sec;
	if (prom_num_parse(s, n, 0, &sec) != 0)
		return -1;
	double ms = sec * 1000.0;
	if (!(ms > -9.2e18 && ms < 9.2e18))
		return -1;
	*out = llround(ms);
	return 0;
}

static int lex_fail(struct lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lex_fail(struct lexer *lx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(lx->reason, sizeof lx->reason, fmt, ap);
	va_end(ap);
	return -1;
}

/* A quoted label value starting after the opening '"'. On success *p is past
 * the closing quote and the ref holds the unescaped bytes.
 *
 *   "a\"b\\c\nd"   ->   a"b\c<newline>d     (any other \x stays as \x)
 */
static int lex_value(struct lexer *lx, const char **pp, const char *e, struct label_ref *r)
{
	const char *p = *pp, *start = p;
	int esc = 0;
	while (p < e && *p != '"') {
		if (*p == '\\') {
			esc = 1;
			if (++p == e)
				break;
		}
		p++;
	}
	if (p >= e)
		return lex_fail(lx, "unterminated label value for '%.*s'", (int)(r->name_len > 40 ? 40 : r->name_len), r->name);
	if (!esc) {
		r->value = start;
		r->value_len = (size_t)(p - start);
	} else {
		char *o = lx->sp;
		for (const char *q = start; q < p; q++) {
			if (*q == '\\') {
				q++;
				if (*q == 'n')
					*o++ = '\n';
				else if (*q == '\\' || *q == '"')
					*o++ = *q;
				else {
					*o++ = '\\';
					*o++ = *q;
				}
			} else {
				*o++ = *q;
			}
		}
		r->value = lx->sp;
		r->value_len = (size_t)(o - lx->sp);
		lx->sp = o;
	}
	if (r->value_len > lx->max_value_len)
		return lex_fail(lx, "label value too long for '%.*s' (%zu bytes, limit %zu)",
		                (int)(r->name_len > 40 ? 40 : r->name_len), r->name, r->value_len,
		                lx->max_value_len);
	if (prom_utf8_count(r->value, r->value_len) == (size_t)-1)
		return lex_fail(lx, "invalid utf-8 in label value for '%.*s'",
		                (int)(r->name_len > 40 ? 40 : r->name_len), r->name);
	*pp = p + 1;
	return 0;
}

/* Label set after '{'; appends at refs[*n]; *p ends past '}'.
 *   strict:  {}  or  {a="1",b="2"}
 *   lenient: also blanks around tokens and a trailing comma: { a = "1" , }
 */
static int lex_labels(struct lexer *lx, const char **pp, const char *e, size_t *n)
{
	const char *p = *pp;
	int strict = lx->strict;
	if (!strict)
		while (p < e && is_blank(*p))
			p++;
	if (p < e && *p == '}') {
		*pp = p + 1;
		return 0;
	}
	for (;;) {
		const char *ns = p;
		if (p >= e || !is_label_start(*p))
			return lex_fail(lx, "invalid label name '%.*s'", tok_len(ns, e, "=,}\" "), ns);
		while (p < e && is_label_char(*p))
			p++;
		if (*n >= lx->cap)
			return lex_fail(lx, "too many labels (limit %zu)", lx->max_labels);
		struct label_ref *r = &lx->refs[(*n)];
		r->name = ns;
		r->name_len = (size_t)(p - ns);
		if (r->name_len > lx->max_name_len)
			return lex_fail(lx, "label name too long '%.*s' (limit %zu)", (int)(r->name_len > 40 ? 40 : r->name_len), ns, lx->max_name_len);
		if (!strict)
			while (p < e && is_blank(*p))
				p++;
		if (p >= e || *p != '=')
			return lex_fail(lx, "invalid label name '%.*s'", tok_len(ns, e, "=,}\" "), ns);
		p++;
		if (!strict)
			while (p < e && is_blank(*p))
				p++;
		if (p >= e || *p != '"')
			return lex_fail(lx, "missing quoted value for label '%.*s'", (int)(r->name_len > 40 ? 40 : r->name_len), ns);
		p++;
		if (lex_value(lx, &p, e, r) != 0)
			return -1;
		(*n)++;
		if (!strict)
			while (p < e && is_blank(*p))
				p++;
		if (p < e && *p == '}') {
			*pp = p + 1;
			return 0;
		}
		if (p >= e || *p != ',')
			return lex_fail(lx, "expected ',' or '}' after label '%.*s'", (int)(r->name_len > 40 ? 40 : r->name_len), r->name);
		p++;
		if (!strict) {
			while (p < e && is_blank(*p))
				p++;
			if (p < e && *p == '}') {
				*pp = p + 1;
				return 0;
			}
		}
	}
}

/* Duplicate label names among refs[from..to). */
static int check_dups(struct lexer *lx, size_t from, size_t to)
{
	for (size_t i = from + 1; i < to; i++)
		for (size_t j = from; j < i; j++)
			if (lx->refs[i].name_len == lx->refs[j].name_len &&
			    memcmp(lx->refs[i].name, lx->refs[j].name, lx->refs[i].name_len) == 0)
				return lex_fail(lx, "duplicate label name '%.*s'",
				                (int)(lx->refs[i].name_len > 40 ? 40 : lx->refs[i].name_len),
				                lx->refs[i].name);
	return 0;
}

/* Token up to a separator: ' ' in strict mode, blank otherwise. */
static const char *tok_end(const struct lexer *lx, const char *p, const char *e)
{
	while (p < e && *p != ' ' && (lx->strict || *p != '\t'))
		p++;
	return p;
}

/* Exemplar after "# " (strict) : {labels} value [timestamp] */
static int lex_exemplar(struct lexer *lx, const char *p, const char *e, struct pline *pl)
{
	size_t n = pl->nlabels;
	if (p >= e || *p != '{')
		return lex_fail(lx, "invalid exemplar: expected '{'");
	p++;
	if (lex_labels(lx, &p, e, &n) != 0)
		return -1;
	pl->nex = n - pl->nlabels;
	if (check_dups(lx, pl->nlabels, n) != 0)
		return -1;
	if (p >= e || *p != ' ')
		return lex_fail(lx, "invalid exemplar: expected ' ' after labels");
	p++;
	pl->ex_val = p;
	p = tok_end(lx, p, e);
	pl->ex_val_len = (size_t)(p - pl->ex_val);
	if (pl->ex_val_len == 0)
		return lex_fail(lx, "invalid exemplar: missing value");
	if (p == e)
		return 0;
	p++;
	pl->ex_ts = p;
	p = tok_end(lx, p, e);
	pl->ex_ts_len = (size_t)(p - pl->ex_ts);
	pl->ex_has_ts = 1;
	if (pl->ex_ts_len == 0 || p != e)
		return lex_fail(lx, "invalid exemplar: unexpected space");
	return 0;
}

/* Lex one sample line [p, e) (no '\n', no leading blanks in lenient mode).
 * Fills refs[0] with __name__ and the rest; numbers are not converted here. */
int prom_lex_sample(struct lexer *lx, const char *p, const char *e, struct pline *pl)
{
	const char *ns = p;
	memset(pl, 0, sizeof *pl);
	lx->sp = lx->scratch;
	if (p >= e || !is_metric_start(*p))
		return lex_fail(lx, "invalid metric name '%.*s'", tok_len(p, e, " \t{"), p);
	while (p < e && is_metric_char(*p))
		p++;
	if (p < e && *p != '{' && !is_blank(*p))
		return lex_fail(lx, "invalid metric name '%.*s'", tok_len(ns, e, " \t{"), ns);
	if ((size_t)(p - ns) > lx->max_name_len)
		return lex_fail(lx, "metric name too long '%.*s' (limit %zu)", (int)(p - ns > 40 ? 40 : p - ns), ns, lx->max_name_len);
	lx->refs[0] = (struct label_ref){ "__name__", 8, ns, (size_t)(p - ns) };
	pl->nlabels = 1;
	if (p < e && *p == '{') {
		p++;
		if (lex_labels(lx, &p, e, &pl->nlabels) != 0)
			return -1;
		if (check_dups(lx, 0, pl->nlabels) != 0)
			return -1;
	}
	if (p >= e || !is_blank(*p) || (lx->strict && *p != ' '))
		return lex_fail(lx, "missing value for '%.*s'", tok_len(ns, e, " \t{"), ns);
	p++;
	if (!lx->strict)
		while (p < e && is_blank(*p))
			p++;
	pl->val = p;
	p = tok_end(lx, p, e);
	pl->val_len = (size_t)(p - pl->val);
	if (pl->val_len == 0)
		return lex_fail(lx, "missing value for '%.*s'", tok_len(ns, e, " \t{"), ns);

	if (lx->strict) {
		/* value [" " ts] [" # " exemplar] — exactly one space each */
		if (p == e)
			return 0;
		p++;
		if (p == e)
			return lex_fail(lx, "trailing space");
		if (*p != '#') {
			pl->ts = p;
			p = tok_end(lx, p, e);
			pl->ts_len = (size_t)(p - pl->ts);
			pl->has_ts = 1;
			if (pl->ts_len == 0)
				return lex_fail(lx, "unexpected space");
			if (p == e)
				return 0;
			p++;
			if (p == e || *p != '#')
				return lex_fail(lx, "unexpected text after timestamp '%.*s'", tok_len(p, e, ""), p);
		}
		p++; /* '#' */
		if (p >= e || *p != ' ')
			return lex_fail(lx, "invalid exemplar: expected ' ' after '#'");
		pl->has_ex = 1;
		return lex_exemplar(lx, p + 1, e, pl);
	}

	/* lenient: value [blanks ts] [blanks "#" anything] [blanks] */
	while (p < e && is_blank(*p))
		p++;
	if (p == e || *p == '#')
		return 0;
	pl->ts = p;
	p = tok_end(lx, p, e);
	pl->ts_len = (size_t)(p - pl->ts);
	pl->has_ts = 1;
	while (p < e && is_blank(*p))
		p++;
	if (p < e && *p != '#')
		return lex_fail(lx, "unexpected text after timestamp '%.*s'", tok_len(p, e, ""), p);
	return 0;
}

/* ---- types ------------------------------------------------------------- */

static const char *const type_names[] = {
	[PROM_UNKNOWN] = "unknown",     [PROM_COUNTER] = "counter",
	[PROM_GAUGE] = "gauge",         [PROM_HISTOGRAM] = "histogram",
	[PROM_SUMMARY] = "summary",     [PROM_GAUGE_HISTOGRAM] = "gaugehistogram",
	[PROM_INFO] = "info",           [PROM_STATESET] = "stateset",
};

int prom_type_parse(const char *s, size_t len, enum prom_type *out)
{
	for (size_t i = 0; i < sizeof type_names / sizeof type_names[0]; i++)
		if (bytes_eq(s, len, type_names[i])) {
			*out = (enum prom_type)i;
			return 0;
		}
	if (bytes_eq(s, len, "untyped")) {
		*out = PROM_UNKNOWN;
		return 0;
	}
	return -1;
}

const char *prom_type_name(enum prom_type t)
{
	if ((unsigned)t >= sizeof type_names / sizeof type_names[0])
		return "unknown";
	return type_names[t];
}
