/* ingest/prom.c — Prometheus text exposition / OpenMetrics text decoder.
 *
 * Two users share one line lexer:
 *   prom_parse()       lenient ingest: blanks between tokens, trailing comma in
 *                      label sets, comments; a bad line is counted and skipped.
 *   prom_om_validate() strict OpenMetrics 1.0: exact single spaces, "# EOF",
 *                      metadata placement, family/type rules, ordering.
 *
 * A sample line, as the lexer sees it:
 *
 *   http_requests_total{code="200",path="/a\"b"} 1027 1395066363000 # {id="x"} 1
 *   ^name               ^labels: name="value",...  ^value ^timestamp   ^exemplar (ignored
 *                                                                       by ingest)
 *
 * label_refs point into the body, except values containing a backslash, which
 * are unescaped into a scratch buffer allocated once per call.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/prom.h"

#define OM_MAX_LABELS 1024 /* strict validator: labels per line */

/* ---- character classes and small helpers ------------------------------ */

static int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static int is_label_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_label_char(char c)
{
	return is_label_start(c) || (c >= '0' && c <= '9');
}

static int is_metric_start(char c)
{
	return is_label_start(c) || c == ':';
}

static int is_metric_char(char c)
{
	return is_label_char(c) || c == ':';
}

static int bytes_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	return alen == blen && memcmp(a, b, alen) == 0;
}

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
static size_t utf8_count(const char *s, size_t n)
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
static int num_parse(const char *s, size_t n, int special, double *out)
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
static int ts_parse_ms_int(const char *s, size_t n, int64_t *out)
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
static int ts_parse_s_float(const char *s, size_t n, int64_t *out)
{
	double sec;
	if (num_parse(s, n, 0, &sec) != 0)
		return -1;
	double ms = sec * 1000.0;
	if (!(ms > -9.2e18 && ms < 9.2e18))
		return -1;
	*out = llround(ms);
	return 0;
}

/* ---- the line lexer ---------------------------------------------------- */

struct lexer {
	int strict;                /* OpenMetrics exact syntax */
	size_t max_labels, max_name_len, max_value_len;
	struct label_ref *refs;    /* capacity max_labels (+ exemplar room if strict) */
	size_t cap;
	char *scratch, *sp;        /* unescaped values (line-sized); sp reset per line */
	char reason[256];
};

/* What one sample line holds. refs[0..nlabels) are the sample's labels,
 * refs[nlabels..nlabels+nex) the exemplar's (strict only). */
struct pline {
	size_t nlabels;
	const char *val, *ts;
	size_t val_len, ts_len;
	int has_ts, has_ex;
	size_t nex;
	const char *ex_val, *ex_ts;
	size_t ex_val_len, ex_ts_len;
	int ex_has_ts;
};

static int lex_fail(struct lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lex_fail(struct lexer *lx, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(lx->reason, sizeof lx->reason, fmt, ap);
	va_end(ap);
	return -1;
}

/* Length of a token for quoting in a message: up to a delimiter, at most 40. */
static int tok_len(const char *p, const char *e, const char *delims)
{
	size_t n = 0;
	while (p + n < e && !strchr(delims, p[n]) && n < 40)
		n++;
	return (int)n;
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
	if (utf8_count(r->value, r->value_len) == (size_t)-1)
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
static int lex_sample(struct lexer *lx, const char *p, const char *e, struct pline *pl)
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

/* ---- lenient ingest ---------------------------------------------------- */

struct pstate {
	enum prom_format fmt;
	prom_sample_fn on_sample;
	prom_meta_fn on_meta;
	prom_error_fn on_error;
	void *ctx;
	struct prom_stats st;
	const char *fam;  /* last # TYPE family (OpenMetrics _created skipping) */
	size_t fam_len;
	enum prom_type fam_type;
	int eof;
};

static void reject(struct pstate *ps, size_t lineno, const char *reason)
{
	ps->st.rejected++;
	if (ps->on_error)
		ps->on_error(ps->ctx, lineno, reason);
}

/* "# HELP ...", "# TYPE name type", "# EOF", or any other comment. */
static void comment_line(struct pstate *ps, struct lexer *lx, const char *p, const char *e, size_t lineno)
{
	p++; /* '#' */
	while (p < e && is_blank(*p))
		p++;
	const char *w = p;
	while (p < e && !is_blank(*p))
		p++;
	size_t wl = (size_t)(p - w);
	if (ps->fmt == PROM_FORMAT_OPENMETRICS && bytes_eq(w, wl, "EOF")) {
		while (p < e && is_blank(*p))
			p++;
		if (p == e)
			ps->eof = 1;
		return;
	}
	if (!bytes_eq(w, wl, "TYPE"))
		return; /* HELP, UNIT and free comments carry nothing we use */
	while (p < e && is_blank(*p))
		p++;
	const char *n = p;
	while (p < e && !is_blank(*p))
		p++;
	size_t nl = (size_t)(p - n);
	while (p < e && is_blank(*p))
		p++;
	const char *t = p;
	while (p < e && !is_blank(*p))
		p++;
	size_t tl = (size_t)(p - t);
	while (p < e && is_blank(*p))
		p++;
	enum prom_type type;
	int name_ok = nl > 0 && nl <= lx->max_name_len && is_metric_start(n[0]);
	for (size_t i = 1; name_ok && i < nl; i++)
		name_ok = is_metric_char(n[i]);
	if (!name_ok) {
		snprintf(lx->reason, sizeof lx->reason, "invalid metric name '%.*s' in TYPE line",
		         (int)(nl > 40 ? 40 : nl), n);
		reject(ps, lineno, lx->reason);
		return;
	}
	if (prom_type_parse(t, tl, &type) != 0 || p != e) {
		snprintf(lx->reason, sizeof lx->reason, "invalid metric type '%.*s' for '%.*s'",
		         (int)(tl > 40 ? 40 : tl), t, (int)(nl > 40 ? 40 : nl), n);
		reject(ps, lineno, lx->reason);
		return;
	}
	ps->fam = n;
	ps->fam_len = nl;
	ps->fam_type = type;
	if (ps->on_meta)
		ps->on_meta(ps->ctx, n, nl, type);
}

static int is_created_of_family(const struct pstate *ps, const struct label_ref *name)
{
	if (!ps->fam || name->value_len != ps->fam_len + 8 ||
	    memcmp(name->value, ps->fam, ps->fam_len) != 0 ||
	    memcmp(name->value + ps->fam_len, "_created", 8) != 0)
		return 0;
	return ps->fam_type == PROM_COUNTER || ps->fam_type == PROM_HISTOGRAM ||
	       ps->fam_type == PROM_SUMMARY || ps->fam_type == PROM_GAUGE_HISTOGRAM;
}

static void sample_line(struct pstate *ps, struct lexer *lx, const char *p, const char *e, size_t lineno)
{
	struct pline pl;
	double v;
	int64_t ts = 0;
	if (lex_sample(lx, p, e, &pl) != 0) {
		reject(ps, lineno, lx->reason);
		return;
	}
	if (num_parse(pl.val, pl.val_len, 1, &v) != 0) {
		snprintf(lx->reason, sizeof lx->reason, "invalid value '%.*s'",
		         (int)(pl.val_len > 40 ? 40 : pl.val_len), pl.val);
		reject(ps, lineno, lx->reason);
		return;
	}
	if (pl.has_ts) {
		int rc = ps->fmt == PROM_FORMAT_OPENMETRICS ? ts_parse_s_float(pl.ts, pl.ts_len, &ts)
		                                            : ts_parse_ms_int(pl.ts, pl.ts_len, &ts);
		if (rc != 0) {
			snprintf(lx->reason, sizeof lx->reason, "invalid timestamp '%.*s'",
			         (int)(pl.ts_len > 40 ? 40 : pl.ts_len), pl.ts);
			reject(ps, lineno, lx->reason);
			return;
		}
	}
	if (ps->fmt == PROM_FORMAT_OPENMETRICS && is_created_of_family(ps, &lx->refs[0])) {
		ps->st.skipped++;
		return;
	}
	if (ps->on_sample(ps->ctx, lx->refs, pl.nlabels, v, ts, pl.has_ts, lineno) != 0)
		ps->st.refused++;
	else
		ps->st.samples++;
}

static void limits_resolve(const struct prom_limits *in, struct prom_limits *out)
{
	const struct prom_limits d = PROM_LIMITS_DEFAULT;
	*out = in ? *in : d;
	if (!out->max_labels)
		out->max_labels = d.max_labels;
	if (!out->max_name_len)
		out->max_name_len = d.max_name_len;
	if (!out->max_value_len)
		out->max_value_len = d.max_value_len;
	if (!out->max_line_len)
		out->max_line_len = d.max_line_len;
}

size_t prom_parse(const char *body, size_t len, enum prom_format fmt,
                  const struct prom_limits *lim, prom_sample_fn on_sample,
                  prom_meta_fn on_meta, prom_error_fn on_error, void *ctx,
                  struct prom_stats *stats)
{
	struct prom_limits L;
	struct pstate ps = { .fmt = fmt, .on_sample = on_sample, .on_meta = on_meta,
	                     .on_error = on_error, .ctx = ctx };
	struct lexer lx = { .strict = 0 };
	const char *p = body, *end = body + len;
	size_t lineno = 0;

	limits_resolve(lim, &L);
	size_t maxline = L.max_line_len < len ? L.max_line_len : len;
	/* A label costs at least 4 bytes (a=""), so a line never holds more
	 * than maxline/4 + 1 refs: no need to allocate max_labels if huge. */
	lx.cap = L.max_labels < maxline / 4 + 2 ? L.max_labels : maxline / 4 + 2;
	lx.max_labels = L.max_labels;
	lx.max_name_len = L.max_name_len;
	lx.max_value_len = L.max_value_len;
	lx.refs = malloc(lx.cap * sizeof *lx.refs);
	lx.scratch = malloc(maxline + 1);
	if (!lx.refs || !lx.scratch) {
		free(lx.refs);
		free(lx.scratch);
		if (on_error)
			on_error(ctx, 0, "out of memory");
		return SIZE_MAX;
	}

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *line = p;
		p = nl ? nl + 1 : end;
		lineno++;
		ps.st.lines++;
		if (ps.eof) {
			const char *q = line;
			while (q < le && (is_blank(*q) || *q == '\r'))
				q++;
			if (q < le) {
				reject(&ps, lineno, "unexpected content after '# EOF'");
				break;
			}
			continue;
		}
		if ((size_t)(le - line) > L.max_line_len) {
			snprintf(lx.reason, sizeof lx.reason, "line too long (%zu bytes, limit %zu)",
			         (size_t)(le - line), L.max_line_len);
			reject(&ps, lineno, lx.reason);
			continue;
		}
		if (le > line && le[-1] == '\r')
			le--;
		while (line < le && is_blank(*line))
			line++;
		if (line == le)
			continue;
		if (*line == '#')
			comment_line(&ps, &lx, line, le, lineno);
		else
			sample_line(&ps, &lx, line, le, lineno);
	}
	free(lx.refs);
	free(lx.scratch);
	if (stats)
		*stats = ps.st;
	return ps.st.rejected + ps.st.refused;
}

/* ---- strict OpenMetrics validation ------------------------------------- */

/* Open-addressing u64 -> u64 map; key 0 is stored as 1 (hash collisions are
 * accepted: this is a validator, a 2^-64 false "duplicate" is fine). */
struct u64map {
	uint64_t *keys, *vals;
	size_t cap, n;
};

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static uint64_t fnv(uint64_t h, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= UINT64_C(0x100000001b3);
	}
	return h;
}
#define FNV0 UINT64_C(0xcbf29ce484222325)

static int u64map_grow(struct u64map *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	uint64_t *k = calloc(ncap, sizeof *k), *v = calloc(ncap, sizeof *v);
	if (!k || !v) {
		free(k);
		free(v);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = mix64(m->keys[i]) & (ncap - 1);
		while (k[j])
			j = (j + 1) & (ncap - 1);
		k[j] = m->keys[i];
		v[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = k;
	m->vals = v;
	m->cap = ncap;
	return 0;
}

/* Returns a pointer to the value slot (inserting with *created = 1), or NULL on OOM. */
static uint64_t *u64map_slot(struct u64map *m, uint64_t key, int *created)
{
	if (!key)
		key = 1;
	if ((m->n + 1) * 2 > m->cap && u64map_grow(m) != 0)
		return NULL;
	size_t j = mix64(key) & (m->cap - 1);
	while (m->keys[j] && m->keys[j] != key)
		j = (j + 1) & (m->cap - 1);
	*created = !m->keys[j];
	if (*created) {
		m->keys[j] = key;
		m->vals[j] = 0;
		m->n++;
	}
	return &m->vals[j];
}

static void u64map_free(struct u64map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

static void u64map_clear(struct u64map *m)
{
	if (m->cap > 1024) {
		u64map_free(m);
		return;
	}
	if (m->cap)
		memset(m->keys, 0, m->cap * sizeof *m->keys);
	m->n = 0;
}

/* One metric point of a histogram/gaugehistogram/summary being checked. */
struct om_point {
	size_t nsamples, nbuckets;
	double last_le, last_bucket, inf_val, count, sum;
	int have_inf, neg_bucket, have_count, have_sum;
	int has_ts;
	double ts;
};

struct om_family {
	const char *name;
	size_t len;
	uint64_t id;
	enum prom_type type;
	int has_type, has_help, has_unit, has_samples;
	const char *unit;
	size_t unit_len;
	int in_group;
	uint64_t group;
	struct u64map groups; /* group keys seen (label sets minus le/quantile/state) */
	struct u64map series; /* series key -> last timestamp bits, or NO_TS */
	struct om_point pt;
};

#define NO_TS UINT64_C(0x7ff8dead0000beef)

struct om_state {
	struct lexer lx;
	struct u64map claimed; /* hash(name) -> family id */
	struct om_family fam;
	int have_fam;
	uint64_t next_id;
	char *err;
	size_t errlen;
	int oom;
};

static int om_fail(struct om_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int om_fail(struct om_state *st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(st->lx.reason, sizeof st->lx.reason, fmt, ap);
	va_end(ap);
	return -1;
}

#define Q(n) (int)((n) > 40 ? 40 : (n))

static const char *const *type_suffixes(enum prom_type t)
{
	static const char *const counter[] = { "_total", "_created", NULL };
	static const char *const plain[] = { "", NULL };
	static const char *const hist[] = { "_bucket", "_count", "_sum", "_created", NULL };
	static const char *const ghist[] = { "_bucket", "_gcount", "_gsum", NULL };
	static const char *const summary[] = { "", "_count", "_sum", "_created", NULL };
	static const char *const info[] = { "_info", NULL };
	switch (t) {
	case PROM_COUNTER: return counter;
	case PROM_HISTOGRAM: return hist;
	case PROM_GAUGE_HISTOGRAM: return ghist;
	case PROM_SUMMARY: return summary;
	case PROM_INFO: return info;
	default: return plain;
	}
}

/* Claim `name+suffix` for the current family; clash if another family has it. */
static int om_claim(struct om_state *st, const char *name, size_t len, const char *suffix)
{
	int created;
	uint64_t h = fnv(fnv(FNV0, name, len), suffix, strlen(suffix));
	uint64_t *slot = u64map_slot(&st->claimed, h, &created);
	if (!slot) {
		st->oom = 1;
		return om_fail(st, "out of memory");
	}
	if (!created && *slot != st->fam.id)
		return om_fail(st, "metric family '%.*s%s' clashes with an earlier family", Q(len), name, suffix);
	*slot = st->fam.id;
	return 0;
}

static int om_point_end(struct om_state *st)
{
	struct om_family *f = &st->fam;
	struct om_point *pt = &f->pt;
	int rc = 0;
	if (!pt->nsamples)
		return 0;
	if (f->type == PROM_HISTOGRAM || f->type == PROM_GAUGE_HISTOGRAM) {
		const char *c = f->type == PROM_HISTOGRAM ? "_count" : "_gcount";
		const char *s = f->type == PROM_HISTOGRAM ? "_sum" : "_gsum";
		if (!pt->have_inf)
			rc = om_fail(st, "histogram '%.*s' has no '+Inf' bucket", Q(f->len), f->name);
		else if (pt->have_sum != pt->have_count)
			rc = om_fail(st, "histogram '%.*s' needs both %s and %s", Q(f->len), f->name, c, s);
		else if (pt->have_count && pt->count != pt->inf_val)
			rc = om_fail(st, "histogram '%.*s' %s does not match the '+Inf' bucket", Q(f->len), f->name, c);
		else if (f->type == PROM_HISTOGRAM && pt->have_sum && pt->neg_bucket)
			rc = om_fail(st, "histogram '%.*s' has negative buckets and a _sum", Q(f->len), f->name);
		else if (pt->have_sum && pt->sum < 0 && !pt->neg_bucket)
			rc = om_fail(st, "histogram '%.*s' has a negative %s", Q(f->len), f->name, s);
	}
	memset(pt, 0, sizeof *pt);
	return rc;
}

static int om_family_end(struct om_state *st)
{
	struct om_family *f = &st->fam;
	if (!st->have_fam)
		return 0;
	if (om_point_end(st) != 0)
		return -1;
	if (f->unit_len) {
		if (f->len < f->unit_len + 1 || f->name[f->len - f->unit_len - 1] != '_' ||
		    memcmp(f->name + f->len - f->unit_len, f->unit, f->unit_len) != 0)
			return om_fail(st, "metric family '%.*s' does not end in its unit '%.*s'",
			               Q(f->len), f->name, Q(f->unit_len), f->unit);
		if (f->type == PROM_INFO || f->type == PROM_STATESET)
			return om_fail(st, "unit not allowed for %s '%.*s'", prom_type_name(f->type), Q(f->len), f->name);
	}
	st->have_fam = 0;
	return 0;
}

static int om_family_begin(struct om_state *st, const char *name, size_t len)
{
	if (om_family_end(st) != 0)
		return -1;
	struct om_family *f = &st->fam;
	struct u64map g = f->groups, s = f->series;
	u64map_clear(&g);
	u64map_clear(&s);
	memset(f, 0, sizeof *f);
	f->groups = g;
	f->series = s;
	f->name = name;
	f->len = len;
	f->id = ++st->next_id;
	f->type = PROM_UNKNOWN;
	st->have_fam = 1;
	return om_claim(st, name, len, "");
}

static int valid_metric_name(const char *s, size_t n)
{
	if (!n || !is_metric_start(s[0]))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!is_metric_char(s[i]))
			return 0;
	return 1;
}

/* "# HELP name text", "# TYPE name type", "# UNIT name unit". */
static int om_meta_line(struct om_state *st, const char *p, const char *e)
{
	size_t n = (size_t)(e - p);
	if (bytes_eq(p, n, "# EOF"))
		return 1;
	if (n < 7 || memcmp(p, "# ", 2) != 0 || p[6] != ' ')
		return om_fail(st, "invalid comment line");
	const char *kw = p + 2;
	int kind;
	if (!memcmp(kw, "HELP", 4))
		kind = 0;
	else if (!memcmp(kw, "TYPE", 4))
		kind = 1;
	else if (!memcmp(kw, "UNIT", 4))
		kind = 2;
	else
		return om_fail(st, "invalid comment line '%.*s'", tok_len(p, e, ""), p);
	const char *name = p + 7, *q = name;
	while (q < e && *q != ' ')
		q++;
	size_t nlen = (size_t)(q - name);
	if (!valid_metric_name(name, nlen))
		return om_fail(st, "invalid metric name '%.*s'", Q(nlen), name);
	if (q >= e)
		return om_fail(st, "missing text after '%.*s'", Q(nlen), name);
	const char *rest = q + 1;
	size_t rlen = (size_t)(e - rest);

	struct om_family *f = &st->fam;
	if (!st->have_fam || f->len != nlen || memcmp(f->name, name, nlen) != 0) {
		if (om_family_begin(st, name, nlen) != 0)
			return -1;
	} else if (f->has_samples) {
		return om_fail(st, "metadata for '%.*s' after its samples", Q(nlen), name);
	}
	static const char *const kwn[] = { "HELP", "TYPE", "UNIT" };
	int *seen = kind == 0 ? &f->has_help : kind == 1 ? &f->has_type : &f->has_unit;
	if (*seen)
		return om_fail(st, "repeated %s for '%.*s'", kwn[kind], Q(nlen), name);
	*seen = 1;
	if (kind == 0) {
		if (utf8_count(rest, rlen) == (size_t)-1)
			return om_fail(st, "invalid utf-8 in HELP for '%.*s'", Q(nlen), name);
	} else if (kind == 1) {
		if (bytes_eq(rest, rlen, "untyped") || prom_type_parse(rest, rlen, &f->type) != 0)
			return om_fail(st, "invalid metric type '%.*s' for '%.*s'", Q(rlen), rest, Q(nlen), name);
		for (const char *const *sfx = type_suffixes(f->type); *sfx; sfx++)
			if (om_claim(st, name, nlen, *sfx) != 0)
				return -1;
	} else {
		for (size_t i = 0; i < rlen; i++)
			if (!is_metric_char(rest[i]))
				return om_fail(st, "invalid unit '%.*s' for '%.*s'", Q(rlen), rest, Q(nlen), name);
		f->unit = rest;
		f->unit_len = rlen;
	}
	return 0;
}

/* Order-independent hash of labels refs[1..n), skipping the one named `skip`. */
static uint64_t labels_key(const struct label_ref *refs, size_t n, const char *skip, size_t skip_len)
{
	uint64_t h = 0;
	for (size_t i = 1; i < n; i++) {
		if (skip && refs[i].name_len == skip_len && !memcmp(refs[i].name, skip, skip_len))
			continue;
		uint64_t a = fnv(FNV0, refs[i].name, refs[i].name_len);
		uint64_t b = fnv(FNV0 ^ 0x5bd1e995, refs[i].value, refs[i].value_len);
		h += mix64(a ^ (b << 1 | b >> 63));
	}
	return h;
}

static const struct label_ref *find_label(const struct label_ref *refs, size_t n, const char *name)
{
	size_t l = strlen(name);
	for (size_t i = 1; i < n; i++)
		if (refs[i].name_len == l && !memcmp(refs[i].name, name, l))
			return &refs[i];
	return NULL;
}

/* Which family does sample `name` belong to: the current one if the name is
 * family + an allowed suffix for its type; *sfx gets the suffix. */
static int om_in_family(const struct om_family *f, const char *name, size_t len, const char **sfx)
{
	if (len < f->len || memcmp(name, f->name, f->len) != 0)
		return 0;
	for (const char *const *s = type_suffixes(f->type); *s; s++)
		if (bytes_eq(name + f->len, len - f->len, *s)) {
			*sfx = *s;
			return 1;
		}
	return 0;
}

static int om_ts(const char *s, size_t n, double *out)
{
	return num_parse(s, n, 0, out);
}

static int om_sample_line(struct om_state *st, const char *p, const char *e)
{
	struct lexer *lx = &st->lx;
	struct pline pl;
	double v, ts = 0;
	if (lex_sample(lx, p, e, &pl) != 0)
		return -1;
	const struct label_ref *nm = &lx->refs[0];
	const struct label_ref *refs = lx->refs;
	size_t n = pl.nlabels;
	if (num_parse(pl.val, pl.val_len, 1, &v) != 0)
		return om_fail(st, "invalid value '%.*s'", Q(pl.val_len), pl.val);
	if (pl.has_ts && om_ts(pl.ts, pl.ts_len, &ts) != 0)
		return om_fail(st, "invalid timestamp '%.*s'", Q(pl.ts_len), pl.ts);

	const char *sfx = "";
	struct om_family *f = &st->fam;
	if (!st->have_fam || !om_in_family(f, nm->value, nm->value_len, &sfx)) {
		if (om_family_begin(st, nm->value, nm->value_len) != 0)
			return -1;
		sfx = "";
	}
	f->has_samples = 1;
	enum prom_type t = f->type;

	/* exemplars: counter _total and histogram buckets only */
	if (pl.has_ex) {
		double ev, ets;
		int ok = (t == PROM_COUNTER && !strcmp(sfx, "_total")) ||
		         ((t == PROM_HISTOGRAM || t == PROM_GAUGE_HISTOGRAM) && !strcmp(sfx, "_bucket"));
		if (!ok)
			return om_fail(st, "exemplar not allowed on '%.*s'", Q(nm->value_len), nm->value);
		size_t cps = 0;
		for (size_t i = n; i < n + pl.nex; i++)
			cps += utf8_count(refs[i].name, refs[i].name_len) + utf8_count(refs[i].value, refs[i].value_len);
		if (cps > 128)
			return om_fail(st, "exemplar labels too long (%zu code points, limit 128)", cps);
		if (num_parse(pl.ex_val, pl.ex_val_len, 1, &ev) != 0)
			return om_fail(st, "invalid exemplar value '%.*s'", Q(pl.ex_val_len), pl.ex_val);
		if (pl.ex_has_ts && om_ts(pl.ex_ts, pl.ex_ts_len, &ets) != 0)
			return om_fail(st, "invalid exemplar timestamp '%.*s'", Q(pl.ex_ts_len), pl.ex_ts);
	}

	/* grouping: one contiguous run per label set (le/quantile/state excluded) */
	const char *skip = NULL;
	size_t skip_len = 0;
	if ((t == PROM_HISTOGRAM || t == PROM_GAUGE_HISTOGRAM) && !strcmp(sfx, "_bucket"))
		skip = "le", skip_len = 2;
	else if (t == PROM_SUMMARY && !*sfx)
		skip = "quantile", skip_len = 8;
	else if (t == PROM_STATESET)
		skip = f->name, skip_len = f->len;
	uint64_t gkey = labels_key(refs, n, skip, skip_len);
	int created;
	if (!f->in_group || gkey != f->group) {
		if (om_point_end(st) != 0)
			return -1;
		uint64_t *slot = u64map_slot(&f->groups, gkey, &created);
		if (!slot) {
			st->oom = 1;
			return om_fail(st, "out of memory");
		}
		if (!created)
			return om_fail(st, "samples of '%.*s' with the same labels are not together", Q(f->len), f->name);
		f->in_group = 1;
		f->group = gkey;
	}
	/* a new timestamp starts a new point; _created is not part of a point */
	int created_sample = !strcmp(sfx, "_created");
	if (!created_sample) {
		if (f->pt.nsamples && (f->pt.has_ts != pl.has_ts || f->pt.ts != ts))
			if (om_point_end(st) != 0)
				return -1;
		f->pt.has_ts = pl.has_ts;
		f->pt.ts = ts;
		f->pt.nsamples++;
	}

	/* timestamps per series: all or none, never decreasing, no repeats without */
	uint64_t skey = labels_key(refs, n, NULL, 0) + mix64(fnv(FNV0, nm->value, nm->value_len));
	uint64_t *slot = u64map_slot(&f->series, skey, &created);
	if (!slot) {
		st->oom = 1;
		return om_fail(st, "out of memory");
	}
	uint64_t tsbits;
	memcpy(&tsbits, &ts, sizeof tsbits);
	if (!created) {
		double last;
		memcpy(&last, slot, sizeof last);
		if ((*slot == NO_TS) != !pl.has_ts)
			return om_fail(st, "series '%.*s' mixes samples with and without timestamps", Q(nm->value_len), nm->value);
		if (!pl.has_ts)
			return om_fail(st, "duplicate sample for '%.*s'", Q(nm->value_len), nm->value);
		if (ts < last)
			return om_fail(st, "timestamp goes backwards for '%.*s'", Q(nm->value_len), nm->value);
	}
	*slot = pl.has_ts ? tsbits : NO_TS;

	/* values per type */
	struct om_point *pt = &f->pt;
	int is_nan = isnan(v);
	switch (t) {
	case PROM_COUNTER:
		if (!strcmp(sfx, "_total") && (is_nan || v < 0))
			return om_fail(st, "invalid counter value '%.*s'", Q(pl.val_len), pl.val);
		break;
	case PROM_HISTOGRAM:
	case PROM_GAUGE_HISTOGRAM:
		if (!strcmp(sfx, "_bucket")) {
			const struct label_ref *le = find_label(refs, n, "le");
			double lev;
			if (!le)
				return om_fail(st, "bucket of '%.*s' without 'le'", Q(f->len), f->name);
			int inf = bytes_eq(le->value, le->value_len, "+Inf");
			if (inf)
				lev = INFINITY;
			else if (num_parse(le->value, le->value_len, 0, &lev) != 0)
				return om_fail(st, "invalid 'le' value '%.*s'", Q(le->value_len), le->value);
			if (is_nan || v < 0)
				return om_fail(st, "invalid bucket value '%.*s'", Q(pl.val_len), pl.val);
			if (pt->nbuckets && !(lev > pt->last_le))
				return om_fail(st, "buckets of '%.*s' out of order", Q(f->len), f->name);
			if (pt->nbuckets && v < pt->last_bucket)
				return om_fail(st, "bucket counts of '%.*s' decrease", Q(f->len), f->name);
			pt->nbuckets++;
			pt->last_le = lev;
			pt->last_bucket = v;
			if (lev < 0)
				pt->neg_bucket = 1;
			if (inf) {
				pt->have_inf = 1;
				pt->inf_val = v;
			}
		} else if (!strcmp(sfx, "_count") || !strcmp(sfx, "_gcount")) {
			if (is_nan || v < 0)
				return om_fail(st, "invalid count value '%.*s'", Q(pl.val_len), pl.val);
			pt->have_count = 1;
			pt->count = v;
		} else if (!strcmp(sfx, "_sum") || !strcmp(sfx, "_gsum")) {
			if (is_nan)
				return om_fail(st, "invalid sum value '%.*s'", Q(pl.val_len), pl.val);
			pt->have_sum = 1;
			pt->sum = v;
		}
		break;
	case PROM_SUMMARY:
		if (!*sfx) {
			const struct label_ref *q = find_label(refs, n, "quantile");
			double qv;
			if (!q)
				return om_fail(st, "summary '%.*s' sample without 'quantile'", Q(f->len), f->name);
			if (num_parse(q->value, q->value_len, 0, &qv) != 0 || qv < 0 || qv > 1)
				return om_fail(st, "invalid quantile '%.*s'", Q(q->value_len), q->value);
			if (v < 0)
				return om_fail(st, "invalid quantile value '%.*s'", Q(pl.val_len), pl.val);
		} else if (!strcmp(sfx, "_count") || !strcmp(sfx, "_sum")) {
			if (is_nan || v < 0)
				return om_fail(st, "invalid summary %s value '%.*s'", sfx + 1, Q(pl.val_len), pl.val);
		}
		break;
	case PROM_INFO:
		if (v != 1)
			return om_fail(st, "info value must be 1, not '%.*s'", Q(pl.val_len), pl.val);
		break;
	case PROM_STATESET:
		if (v != 0 && v != 1)
			return om_fail(st, "stateset value must be 0 or 1, not '%.*s'", Q(pl.val_len), pl.val);
		{
			int found = 0;
			for (size_t i = 1; i < n; i++)
				if (refs[i].name_len == f->len && !memcmp(refs[i].name, f->name, f->len))
					found = 1;
			if (!found)
				return om_fail(st, "stateset '%.*s' sample without a '%.*s' label", Q(f->len), f->name, Q(f->len), f->name);
		}
		break;
	default:
		break;
	}
	return 0;
}

int prom_om_validate(const char *body, size_t len, char *err, size_t errlen, size_t *err_line)
{
	struct om_state st = { 0 };
	const char *p = body, *end = body + len;
	size_t lineno = 0;
	int valid = 0, eof = 0, rc = 0;

	st.lx.strict = 1;
	st.lx.max_labels = OM_MAX_LABELS;
	st.lx.max_name_len = SIZE_MAX;
	st.lx.max_value_len = SIZE_MAX;
	st.lx.cap = 2 * OM_MAX_LABELS + 1; /* sample labels + exemplar labels */
	st.lx.refs = malloc(st.lx.cap * sizeof *st.lx.refs);
	st.lx.scratch = malloc(len + 1);
	if (err_line)
		*err_line = 0;
	if (!st.lx.refs || !st.lx.scratch) {
		om_fail(&st, "out of memory");
		goto out;
	}

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		const char *line = p;
		p = nl ? nl + 1 : end;
		lineno++;
		if (eof) {
			rc = om_fail(&st, "unexpected content after '# EOF'");
			break;
		}
		if (line == le) {
			rc = om_fail(&st, "blank line");
			break;
		}
		if (*line == '#') {
			rc = om_meta_line(&st, line, le);
			if (rc == 1) {
				eof = 1;
				rc = 0;
				if (om_family_end(&st) != 0) {
					rc = -1;
					break;
				}
			}
		} else {
			if (!nl) {
				rc = om_fail(&st, "missing newline at end of line");
				break;
			}
			rc = om_sample_line(&st, line, le);
		}
		if (rc != 0)
			break;
	}
	if (rc == 0 && !eof) {
		lineno++;
		rc = om_fail(&st, "missing '# EOF'");
	}
	valid = rc == 0;
out:
	if (!valid) {
		if (err && errlen)
			snprintf(err, errlen, "%s", st.lx.reason);
		if (err_line)
			*err_line = lineno;
	}
	u64map_free(&st.claimed);
	u64map_free(&st.fam.groups);
	u64map_free(&st.fam.series);
	free(st.lx.refs);
	free(st.lx.scratch);
	return valid;
}
