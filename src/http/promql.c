/* http/promql.c — the query side of the Prometheus HTTP API (see
 * api_prom.c for what the API accepts): the virtual families, the request
 * arguments merged with a form-encoded body, durations and times, value
 * formatting as Prometheus prints it, and the parser of the small query
 * language (selectors, virtual families, constant arithmetic). */
#include "http/promql.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/engine.h"
#include "util/labels.h"
#include "util/selector.h"
#include "engine/series.h"
#include "util/timefmt.h"

int prom_is_forecast(int fam)
{
	return fam >= FAM_FC_VALUE;
}

/* The last time a forecast family shows for a series whose last sample is at last_ms. */
int64_t prom_horizon_end(int64_t last_ms)
{
	return last_ms > INT64_MAX - FORECAST_HORIZON_MS ? INT64_MAX : last_ms + FORECAST_HORIZON_MS;
}

double prom_forecast_field(const struct forecast_point *p, int fam)
{
	switch (fam) {
	case FAM_FC_LOWER: return p->lo95;
	case FAM_FC_UPPER: return p->hi95;
	case FAM_FC_LOWER80: return p->lo80;
	case FAM_FC_UPPER80: return p->hi80;
	default: return p->mean;
	}
}

static int family_of(const char *name)
{
	for (int f = 0; f < NFAMILIES; f++)
		if (!strcmp(name, fam_name[f]))
			return f;
	return FAM_PLAIN;
}

/* Raw counters and histogram buckets have no detector: not in the virtual
 * families (their derived foreshock:rate:/foreshock:pNN: series are). */
int prom_scored(const struct series_info *s)
{
	return s->kind != SERIES_COUNTER && s->kind != SERIES_BUCKET;
}

double prom_point_field(const struct history_point *p, int fam)
{
	switch (fam) {
	case FAM_SCORE: return p->score;
	case FAM_EXPECTED: return p->expected;
	case FAM_LOWER: return p->lower;
	case FAM_UPPER: return p->upper;
	default: return p->value;
	}
}

/* The value of label `name` of series l as seen in family fam. NULL if absent. */
const char *prom_view_label(const struct labels *l, int fam, const char *name)
{
	if (fam == FAM_PLAIN)
		return labels_get(l, name);
	if (!strcmp(name, "__name__"))
		return fam_name[fam];
	if (!strcmp(name, "series_name"))
		return labels_metric_name(l);
	if (!strcmp(name, "exported_series_name"))
		return labels_get(l, "series_name");
	return labels_get(l, name);
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* URL-decode s in place ('+' is a space). */
void prom_url_decode(char *s)
{
	char *w = s;
	for (const char *p = s; *p; p++) {
		if (*p == '+') {
			*w++ = ' ';
		} else if (*p == '%' && hexval((unsigned char)p[1]) >= 0 &&
		           hexval((unsigned char)p[2]) >= 0) {
			*w++ = (char)(hexval((unsigned char)p[1]) * 16 + hexval((unsigned char)p[2]));
			p += 2;
		} else {
			*w++ = *p;
		}
	}
	*w = 0;
}

static int is_form(const struct api_request *req)
{
	return req->body && req->body_len && req->method && !strcmp(req->method, "POST") &&
	       req->content_type &&
	       !strncasecmp(req->content_type, "application/x-www-form-urlencoded", 33);
}

/* Returns 0, or -1 with a 500 in resp. */
int prom_pargs_init(struct pargs *a, const struct api_request *req, int decode_body,
                      struct api_response *resp)
{
	memset(a, 0, sizeof *a);
	a->r = *req;
	size_t nform = 0;
	if (decode_body && is_form(req)) {
		a->buf = malloc(req->body_len + 1);
		if (!a->buf)
			goto oom;
		memcpy(a->buf, req->body, req->body_len);
		a->buf[req->body_len] = 0;
		for (const char *p = a->buf; *p; p++)
			nform += *p == '&';
		nform++;
		if (nform > MAX_FORM_ARGS)
			nform = MAX_FORM_ARGS;
	}
	a->args = calloc(req->nargs + nform + 1, sizeof *a->args);
	if (!a->args)
		goto oom;
	/* body values first: they take precedence, as in Go's Request.Form */
	size_t n = 0;
	if (a->buf) {
		char *save = NULL;
		size_t k = 0;
		for (char *tok = strtok_r(a->buf, "&", &save); tok && k < nform;
		     tok = strtok_r(NULL, "&", &save), k++) {
			char *eq = strchr(tok, '=');
			char *val = eq ? eq + 1 : tok + strlen(tok);
			if (eq)
				*eq = 0;
			prom_url_decode(tok);
			prom_url_decode(val);
			a->args[n++] = (struct api_arg){ tok, val };
		}
	}
	for (size_t i = 0; i < req->nargs; i++)
		a->args[n++] = req->args[i];
	a->r.args = a->args;
	a->r.nargs = n;
	return 0;
oom:
	free(a->buf);
	a->buf = NULL;
	api_error(resp, 500, "internal", "out of memory");
	return -1;
}

void prom_pargs_free(struct pargs *a)
{
	free(a->args);
	free(a->buf);
}

/* ------------------------------------------------------------------------ */
/* times and durations */

/* Prometheus durations: float seconds ("15", "0.5") or [0-9]+ unit pairs
 * ("1m30s", "500ms", "1h", "2d", "1w", "1y"). Returns 0 or -1. */
int prom_parse_duration_ms(const char *s, int64_t *ms)
{
	char *end;
	if (!*s)
		return -1;
	double v = strtod(s, &end);
	if (*end == 0 && (isdigit((unsigned char)s[0]) || s[0] == '.' || s[0] == '-' || s[0] == '+')) {
		if (!isfinite(v) || fabs(v) > 9e15 / 1000)
			return -1;
		*ms = (int64_t)llround(v * 1000.0);
		return 0;
	}
	int64_t total = 0;
	const char *p = s;
	while (*p) {
		if (!isdigit((unsigned char)*p))
			return -1;
		int64_t n = 0;
		while (isdigit((unsigned char)*p)) {
			if (n > 1000000000000LL)
				return -1;
			n = n * 10 + (*p++ - '0');
		}
		int64_t unit;
		if (p[0] == 'm' && p[1] == 's') {
			unit = 1;
			p += 2;
		} else {
			switch (*p) {
			case 's': unit = 1000; break;
			case 'm': unit = 60 * 1000LL; break;
			case 'h': unit = 3600 * 1000LL; break;
			case 'd': unit = 86400 * 1000LL; break;
			case 'w': unit = 7 * 86400 * 1000LL; break;
			case 'y': unit = 365 * 86400 * 1000LL; break;
			default: return -1;
			}
			p++;
		}
		if (n > INT64_MAX / unit || total > INT64_MAX - n * unit)
			return -1;
		total += n * unit;
	}
	*ms = total;
	return 0;
}

/* Time parameter: 0 absent (*ms untouched), 1 set, -1 invalid (400 in resp). */
int prom_time_param(const struct api_request *req, const char *key, int64_t *ms,
                      struct api_response *resp)
{
	const char *v = api_arg(req, key);
	if (!v || !*v)
		return 0;
	if (time_parse_param_ms(v, ms) || *ms > MAX_ABS_TIME_MS || *ms < -MAX_ABS_TIME_MS) {
		api_error(resp, 400, "bad_data",
		          "invalid parameter '%s': cannot parse '%.64s' to a valid timestamp", key, v);
		return -1;
	}
	return 1;
}

int prom_lookback_param(const struct api_request *req, int64_t *lb, struct api_response *resp)
{
	*lb = DEFAULT_LOOKBACK_MS;
	const char *v = api_arg(req, "lookback_delta");
	if (!v || !*v)
		return 0;
	if (prom_parse_duration_ms(v, lb) || *lb <= 0 || *lb > MAX_ABS_TIME_MS) {
		api_error(resp, 400, "bad_data",
		          "invalid parameter 'lookback_delta': '%.32s' is not a positive duration", v);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* output helpers */

/* Go's strconv.FormatFloat(v, 'f', -1, 64) (float32 precision when is_float):
 * shortest round-trip digits, no exponent. buf >= 400 bytes. */
static const char *fmt_value(double v, int is_float, char *buf, size_t len)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	char e[48];
	int maxp = is_float ? 8 : 16;
	for (int p = 0; p <= maxp; p++) {
		snprintf(e, sizeof e, "%.*e", p, v);
		if (is_float ? strtof(e, NULL) == (float)v : strtod(e, NULL) == v)
			break;
	}
	/* e = [-]d[.ddd]e[+-]xx */
	const char *s = e;
	char digits[40];
	size_t nd = 0;
	int neg = 0;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	for (; *s && *s != 'e'; s++)
		if (isdigit((unsigned char)*s) && nd < sizeof digits - 1)
			digits[nd++] = *s;
	int exp10 = *s == 'e' ? atoi(s + 1) : 0;
	while (nd > 1 && digits[nd - 1] == '0')
		nd--;
	digits[nd] = 0;
	if (nd == 1 && digits[0] == '0') {
		snprintf(buf, len, "0");
		return buf;
	}
	int pos = exp10 + 1; /* digits before the decimal point */
	size_t w = 0;
	if (neg && w + 1 < len)
		buf[w++] = '-';
	if (pos <= 0) {
		for (int i = 0; i < 2 - pos && w + 1 < len; i++)
			buf[w++] = i == 1 ? '.' : '0';
		for (size_t i = 0; i < nd && w + 1 < len; i++)
			buf[w++] = digits[i];
	} else {
		for (int i = 0; i < pos && w + 1 < len; i++)
			buf[w++] = (size_t)i < nd ? digits[i] : '0';
		if ((size_t)pos < nd) {
			if (w + 1 < len)
				buf[w++] = '.';
			for (size_t i = (size_t)pos; i < nd && w + 1 < len; i++)
				buf[w++] = digits[i];
		}
	}
	buf[w] = 0;
	return buf;
}

/* A timestamp in seconds as Prometheus prints it: 1700000000 or 1700000000.25. */
static void json_ts(struct obuf *b, int64_t ms)
{
	uint64_t a = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	unsigned frac = (unsigned)(a % 1000);
	obuf_printf(b, "%s%llu", ms < 0 ? "-" : "", (unsigned long long)(a / 1000));
	if (frac) {
		char f[8];
		snprintf(f, sizeof f, ".%03u", frac);
		size_t n = strlen(f);
		while (n > 2 && f[n - 1] == '0') /* ".250" -> ".25"; frac != 0 keeps a digit */
			f[--n] = 0;
		obuf_puts(b, f);
	}
}

void prom_json_point(struct obuf *b, int64_t ts_ms, double v, int is_float)
{
	char vb[400];
	obuf_add(b, "[", 1);
	json_ts(b, ts_ms);
	obuf_add(b, ",\"", 2);
	obuf_puts(b, fmt_value(v, is_float, vb, sizeof vb));
	obuf_add(b, "\"]", 2);
}

static void json_kv(struct obuf *b, int *first, const char *k, const char *v)
{
	if (!*first)
		obuf_add(b, ",", 1);
	*first = 0;
	obuf_json_str(b, k, strlen(k));
	obuf_add(b, ":", 1);
	obuf_json_str(b, v, strlen(v));
}

/* The label set of series l as seen in family fam, as a JSON object. */
void prom_json_view_labels(struct obuf *b, const struct labels *l, int fam)
{
	int first = 1;
	obuf_add(b, "{", 1);
	if (fam != FAM_PLAIN) {
		json_kv(b, &first, "__name__", fam_name[fam]);
		json_kv(b, &first, "series_name", labels_metric_name(l));
	}
	for (size_t i = 0; i < l->n; i++) {
		const char *n = l->names[i];
		if (fam != FAM_PLAIN) {
			if (!strcmp(n, "__name__"))
				continue;
			if (!strcmp(n, "series_name"))
				n = "exported_series_name";
		}
		json_kv(b, &first, n, l->values[i]);
	}
	obuf_add(b, "}", 1);
}

void prom_pquery_free(struct pquery *q)
{
	if (q->kind == Q_VECTOR)
		selector_free(&q->sel);
	memset(q, 0, sizeof *q);
}

static void skip_ws(const char **p)
{
	while (isspace((unsigned char)**p))
		(*p)++;
}

static int is_ident_start(int c)
{
	return isalpha(c) || c == '_' || c == ':';
}

static int is_ident_char(int c)
{
	return isalnum(c) || c == '_' || c == ':';
}

/* Constant arithmetic: numbers, + - * / % ^, unary signs, parentheses,
 * with PromQL's precedence (^ binds tighter than unary minus, and is right
 * associative). Each returns 0 and advances *p, or -1 (not constant). */
static int cexpr(const char **p, double *v, int depth);

static int cprimary(const char **p, double *v, int depth)
{
	skip_ws(p);
	const char *s = *p;
	if (*s == '(') {
		*p = s + 1;
		if (cexpr(p, v, depth + 1))
			return -1;
		skip_ws(p);
		if (**p != ')')
			return -1;
		(*p)++;
		return 0;
	}
	if ((!strncasecmp(s, "inf", 3) || !strncasecmp(s, "nan", 3)) &&
	    !is_ident_char((unsigned char)s[3])) {
		*v = tolower((unsigned char)s[0]) == 'i' ? INFINITY : NAN;
		*p = s + 3;
		return 0;
	}
	if (isdigit((unsigned char)*s) || (*s == '.' && isdigit((unsigned char)s[1]))) {
		char *end;
		*v = strtod(s, &end);
		if (end == s || is_ident_char((unsigned char)*end))
			return -1;
		*p = end;
		return 0;
	}
	return -1;
}

static int cunary(const char **p, double *v, int depth);

static int cpower(const char **p, double *v, int depth)
{
	if (cprimary(p, v, depth))
		return -1;
	skip_ws(p);
	if (**p == '^') {
		(*p)++;
		double r;
		if (cunary(p, &r, depth + 1))
			return -1;
		*v = pow(*v, r);
	}
	return 0;
}

static int cunary(const char **p, double *v, int depth)
{
	if (depth > 64)
		return -1;
	skip_ws(p);
	if (**p == '-' || **p == '+') {
		int neg = **p == '-';
		(*p)++;
		if (cunary(p, v, depth + 1))
			return -1;
		if (neg)
			*v = -*v;
		return 0;
	}
	return cpower(p, v, depth);
}

static int cterm(const char **p, double *v, int depth)
{
	if (cunary(p, v, depth))
		return -1;
	for (;;) {
		skip_ws(p);
		char op = **p;
		if (op != '*' && op != '/' && op != '%')
			return 0;
		(*p)++;
		double r;
		if (cunary(p, &r, depth))
			return -1;
		*v = op == '*' ? *v * r : op == '/' ? *v / r : fmod(*v, r);
	}
}

static int cexpr(const char **p, double *v, int depth)
{
	if (depth > 64)
		return -1;
	if (cterm(p, v, depth))
		return -1;
	for (;;) {
		skip_ws(p);
		char op = **p;
		if (op != '+' && op != '-')
			return 0;
		(*p)++;
		double r;
		if (cterm(p, &r, depth))
			return -1;
		*v = op == '+' ? *v + r : *v - r;
	}
}

/* Check the regular expression in the quoted string [q, end) (q at the
 * opening quote). Returns 0, or -1 with the reason in err. */
static int regex_check(const char *q, const char *end, char *err, size_t errlen)
{
	char quote = *q++;
	/* unescape the way selector.c does: \\ \" \' \n \t; others kept */
	size_t cap = (size_t)(end - q) + 1;
	char *re = malloc(cap);
	if (!re) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	size_t n = 0;
	for (const char *p = q; p < end; p++) {
		if (*p == '\\' && quote != '`' && p + 1 < end) {
			p++;
			if (*p == 'n')
				re[n++] = '\n';
			else if (*p == 't')
				re[n++] = '\t';
			else if (*p == '\\' || *p == '"' || *p == '\'')
				re[n++] = *p;
			else {
				re[n++] = '\\';
				re[n++] = *p;
			}
		} else {
			re[n++] = *p;
		}
	}
	re[n] = 0;
	int rc = selector_regex_safe(re, n, err, errlen);
	free(re);
	return rc;
}

/* Rewrite a selector on a virtual family into one on the underlying series:
 * series_name -> __name__, exported_series_name -> series_name; other
 * __name__ matchers are checked against the family name here. */
static int devirtualize(struct pquery *q, size_t fam_matcher, char *err, size_t errlen)
{
	struct selector *sel = &q->sel;
	size_t w = 0;
	for (size_t i = 0; i < sel->n; i++) {
		struct matcher *m = &sel->m[i];
		const char *rename = NULL;
		if (!strcmp(m->name, "__name__")) {
			struct selector one = { 1, m, 0 };
			struct labels l = { 1, (const char *[]){ "__name__" },
				            (const char *[]){ fam_name[q->fam] }, NULL };
			if (i != fam_matcher && !selector_matches(&one, &l))
				q->none = 1;
			matcher_free(m);
			continue;
		}
		if (!strcmp(m->name, "series_name"))
			rename = "__name__";
		else if (!strcmp(m->name, "exported_series_name"))
			rename = "series_name";
		if (rename) {
			char *nn = strdup(rename);
			if (!nn) {
				snprintf(err, errlen, "out of memory");
				/* keep the selector consistent for selector_free */
				sel->m[w++] = *m;
				for (size_t k = i + 1; k < sel->n; k++)
					sel->m[w++] = sel->m[k];
				sel->n = w;
				return -1;
			}
			free(m->name);
			m->name = nn;
		}
		sel->m[w++] = *m;
	}
	sel->n = w;
	return 0;
}

/* Parse a query (or a match[] selector when selector_only). Returns 0, or
 * -1 with the message in err. */
int prom_parse_query(const char *text, int selector_only, struct pquery *q, char *err,
                       size_t errlen)
{
	memset(q, 0, sizeof *q);
	q->fam = FAM_PLAIN;
	const char *p = text;
	skip_ws(&p);
	if (!*p) {
		snprintf(err, errlen, "no expression found in input");
		return -1;
	}
	if (!selector_only) {
		const char *c = p;
		double v;
		if (cexpr(&c, &v, 0) == 0) {
			skip_ws(&c);
			if (!*c) {
				q->kind = Q_SCALAR;
				q->scalar = v;
				return 0;
			}
		}
	}
	const char *start = p;
	if (is_ident_start((unsigned char)*p)) {
		const char *id = p;
		while (is_ident_char((unsigned char)*p))
			p++;
		size_t idlen = (size_t)(p - id);
		const char *after = p;
		skip_ws(&after);
		if (*after == '(') {
			snprintf(err, errlen,
			         UNSUPPORTED "functions and aggregations such as '%.*s(...)' are not",
			         (int)(idlen > 40 ? 40 : idlen), id);
			return -1;
		}
		if ((!strncmp(after, "by", 2) || !strncmp(after, "without", 7)) &&
		    !is_ident_char((unsigned char)after[!strncmp(after, "by", 2) ? 2 : 7])) {
			snprintf(err, errlen, UNSUPPORTED "aggregations such as '%.*s by (...)' are not",
			         (int)(idlen > 40 ? 40 : idlen), id);
			return -1;
		}
		skip_ws(&p);
	}
	if (*p == '{') {
		char quote = 0;
		const char *qstart = NULL, *prev = p; /* prev: last non-space outside quotes */
		for (p++; *p; p++) {
			if (quote) {
				if (*p == '\\' && quote != '`' && p[1]) {
					p++;
				} else if (*p == quote) {
					quote = 0;
					if (qstart && regex_check(qstart, p, err, errlen))
						return -1;
					qstart = NULL;
				}
			} else if (*p == '"' || *p == '\'' || *p == '`') {
				quote = *p;
				/* the value of a =~ or !~ matcher: check it before PCRE2 compiles it */
				if (*prev == '~')
					qstart = p;
			} else if (*p == '}') {
				break;
			}
			if (!quote && !isspace((unsigned char)*p))
				prev = p;
		}
		if (*p != '}') {
			snprintf(err, errlen, "unexpected end of input inside braces");
			return -1;
		}
		p++;
	}
	if (p == start) {
		snprintf(err, errlen,
		         UNSUPPORTED "operators and other expressions ('%.20s') are not", start);
		return -1;
	}
	const char *rest = p;
	skip_ws(&rest);
	if (*rest) {
		const char *what;
		if (*rest == '[')
			what = "range vectors and subqueries ('[...]') are not";
		else if (!strncmp(rest, "offset", 6) && !is_ident_char((unsigned char)rest[6]))
			what = "offset modifiers are not";
		else if (*rest == '@')
			what = "@ modifiers are not";
		else
			what = "operators and other expressions are not";
		snprintf(err, errlen, UNSUPPORTED "%s (at '%.20s')", what, rest);
		return -1;
	}
	size_t len = (size_t)(p - start);
	char *seltext = strndup(start, len);
	if (!seltext) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rc = selector_parse(&q->sel, seltext, err, errlen);
	free(seltext);
	if (rc)
		return -1;
	q->kind = Q_VECTOR;
	for (size_t i = 0; i < q->sel.n; i++) {
		const struct matcher *m = &q->sel.m[i];
		if (m->op == MATCH_EQ && !strcmp(m->name, "__name__")) {
			q->fam = family_of(m->value);
			if (q->fam != FAM_PLAIN && devirtualize(q, i, err, errlen)) {
				prom_pquery_free(q);
				return -1;
			}
			break;
		}
	}
	return 0;
}

/* Does series s (in any of its views) match q? Returns the family it
 * matches as (FAM_PLAIN or virtual), or -2. */
int prom_query_matches(const struct pquery *q, const struct series_info *s)
{
	if (q->none || (q->fam != FAM_PLAIN && !prom_scored(s)))
		return -2;
	return selector_matches(&q->sel, s->labels) ? q->fam : -2;
}
