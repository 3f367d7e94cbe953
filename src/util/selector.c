/* util/selector.c — parse and match Prometheus series selectors (see selector.h). */
#include "util/selector.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

static void skip_ws(const char **p)
{
	while (isspace((unsigned char)**p))
		(*p)++;
}

static char *read_ident(const char **p, int metric)
{
	const char *s = *p;
	size_t n = 0;
	while (s[n] && (isalnum((unsigned char)s[n]) || s[n] == '_' || (metric && s[n] == ':')))
		n++;
	if (n == 0 || isdigit((unsigned char)s[0]))
		return NULL;
	*p = s + n;
	return strndup(s, n);
}

/* Quoted string with Go/PromQL escapes: "..." '...' or `...`. */
static char *read_string(const char **p, char *err, size_t errlen)
{
	const char *s = *p;
	char q = *s;
	if (q != '"' && q != '\'' && q != '`') {
		snprintf(err, errlen, "expected a quoted string at '%.20s'", s);
		return NULL;
	}
	s++;
	size_t cap = strlen(s) + 1;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t n = 0;
	while (*s && *s != q) {
		if (*s == '\\' && q != '`') {
			s++;
			switch (*s) {
			case 'n': out[n++] = '\n'; break;
			case 't': out[n++] = '\t'; break;
			case '\\': out[n++] = '\\'; break;
			case '"': out[n++] = '"'; break;
			case '\'': out[n++] = '\''; break;
			case '\0':
				free(out);
				snprintf(err, errlen, "unterminated string");
				return NULL;
			default:
				/* keep regex escapes such as \. as they are */
				out[n++] = '\\';
				out[n++] = *s;
			}
			s++;
		} else
			out[n++] = *s++;
	}
	if (*s != q) {
		free(out);
		snprintf(err, errlen, "unterminated string");
		return NULL;
	}
	out[n] = '\0';
	*p = s + 1;
	return out;
}

/* RE2 (so Prometheus) refuses nested repetition operators (a**, and so
 * PCRE's possessive a*+) and repeat counts whose product exceeds 1000; we
 * refuse them with RE2's wording, plus the PCRE constructs RE2 does not have,
 * so that a pattern means the same here as in Prometheus. */
#define REGEX_MAX_REPEAT 1000
#define REGEX_MAX_GROUPS 64

/* Parse a repetition operator at p ("*", "+", "?", "{m}", "{m,}", "{m,n}").
 * Returns its length (0 if none) and the count it multiplies by. */
static size_t regex_quantifier(const char *p, const char *end, long *count)
{
	*count = 1;
	if (p >= end)
		return 0;
	if (*p == '*' || *p == '+' || *p == '?')
		return 1;
	if (*p != '{')
		return 0;
	const char *q = p + 1;
	long m = 0, n = -1;
	if (q >= end || !isdigit((unsigned char)*q))
		return 0;
	while (q < end && isdigit((unsigned char)*q) && m < 100000)
		m = m * 10 + (*q++ - '0');
	if (q < end && *q == ',') {
		q++;
		if (q < end && isdigit((unsigned char)*q)) {
			n = 0;
			while (q < end && isdigit((unsigned char)*q) && n < 100000)
				n = n * 10 + (*q++ - '0');
		}
	}
	if (q >= end || *q != '}')
		return 0;
	*count = n > m ? n : m;
	if (*count < 1)
		*count = 1;
	return (size_t)(q + 1 - p);
}

/* "(?" followed by what? Returns NULL when RE2 has the construct (flags,
 * non-capturing and named groups), else its PCRE name. */
static const char *pcre_only_group(const char *p, const char *e)
{
	/* p points after "(?" */
	if (p >= e)
		return NULL;
	if (*p == 'P' && p + 1 < e && p[1] == '<')
		return NULL; /* (?P<name>...) */
	if (*p == '<' && p + 1 < e && p[1] != '=' && p[1] != '!')
		return NULL; /* (?<name>...) */
	if (*p == '=' || *p == '!' || *p == '<')
		return "lookaround";
	if (*p == '>')
		return "atomic group";
	if (*p == '|')
		return "branch reset";
	if (*p == '(')
		return "conditional";
	if (*p == 'C')
		return "callout";
	if (*p == '#')
		return "comment";
	if (*p == 'R' || *p == '&' || *p == '+' || isdigit((unsigned char)*p) ||
	    (*p == 'P' && p + 1 < e && (p[1] == '>' || p[1] == '=')))
		return "recursion or subroutine call";
	/* flags: RE2 knows i, m, s, U and '-' */
	for (const char *f = p; f < e && *f != ')' && *f != ':'; f++)
		if (!strchr("imsU-", *f))
			return "flag";
	return NULL;
}

/* Escapes PCRE reads differently from RE2 or RE2 does not have. */
static const char *pcre_only_escape(char c)
{
	switch (c) {
	case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
	case 'g': case 'k':
		return "backreference";
	case 'K': return "match reset \\K";
	case 'R': case 'X': case 'h': case 'H': case 'v': case 'V': case 'N': case 'G': case 'Z':
	case 'C': case 'c': case 'o': case 'e': case 'u': case 'U': case 'l': case 'L': case 'E':
		return "escape";
	}
	return NULL;
}

int selector_regex_safe(const char *re, size_t n, char *err, size_t errlen)
{
	if (n > SELECTOR_MAX_REGEX_LEN) {
		snprintf(err, errlen, "regular expression too long: %zu bytes (limit %d)", n,
		         SELECTOR_MAX_REGEX_LEN);
		return -1;
	}
	/* per open group: largest repeat product inside it */
	long weight[REGEX_MAX_GROUPS + 1] = { 0 };
	int sp = 0, rc = 0;
	int in_quote = 0; /* inside \Q...\E: literal text */
	const char *p = re, *e = re + n;
	while (p < e && rc == 0) {
		long aw = 1; /* the atom's repeat product */
		if (in_quote) {
			if (*p == '\\' && p + 1 < e && p[1] == 'E') {
				in_quote = 0;
				p += 2;
			} else
				p++;
			continue;
		}
		if (*p == '(') {
			const char *why = NULL;
			if (p + 1 < e && p[1] == '*')
				why = "verb";
			else if (p + 1 < e && p[1] == '?')
				why = pcre_only_group(p + 2, e);
			if (why) {
				snprintf(err, errlen, "invalid or unsupported Perl syntax: %s '%.*s'", why,
				         (int)(e - p < 4 ? e - p : 4), p);
				rc = -1;
				break;
			}
			if (sp == REGEX_MAX_GROUPS) {
				snprintf(err, errlen, "regular expression nests groups more than %d deep",
				         REGEX_MAX_GROUPS);
				rc = -1;
				break;
			}
			sp++;
			weight[sp] = 1;
			p++;
			continue;
		}
		if (*p == ')' && sp > 0) {
			aw = weight[sp];
			sp--;
			p++;
		} else if (*p == '[') {
			const char *b = p + 1;
			if (b < e && *b == '^')
				b++;
			if (b < e && *b == ']')
				b++;
			while (b < e && *b != ']') {
				if (*b == '[' && b + 1 < e && (b[1] == ':' || b[1] == '.' || b[1] == '=')) {
					char c = b[1];
					b += 2;
					while (b + 1 < e && !(b[0] == c && b[1] == ']'))
						b++;
					b += 2;
					continue;
				}
				if (*b == '\\' && b + 1 < e) {
					const char *why = pcre_only_escape(b[1]);
					if (why && !isdigit((unsigned char)b[1])) {
						snprintf(err, errlen, "invalid or unsupported escape: %s '\\%c'",
						         why, b[1]);
						return -1;
					}
					b += 2;
					continue;
				}
				b++;
			}
			p = b < e ? b + 1 : e;
		} else if (*p == '\\' && p + 1 < e) {
			const char *why = pcre_only_escape(p[1]);
			if (p[1] == 'Q') {
				in_quote = 1;
				p += 2;
				continue;
			}
			if (why) {
				snprintf(err, errlen, "invalid or unsupported escape: %s '\\%c'", why, p[1]);
				rc = -1;
				break;
			}
			p += 2;
		} else {
			p++;
		}
		long c;
		size_t ql = regex_quantifier(p, e, &c);
		if (ql) {
			p += ql;
			aw *= c;
			if (p < e && *p == '?') /* RE2's non-greedy suffix */
				p++;
			long c2;
			size_t ql2 = regex_quantifier(p, e, &c2);
			if (ql2) {
				snprintf(err, errlen, "invalid nested repetition operator: '%.*s'",
				         (int)(ql2 + 1), p - 1);
				rc = -1;
				break;
			}
		}
		if (aw > REGEX_MAX_REPEAT) {
			snprintf(err, errlen, "invalid repeat count: more than %d repetitions",
			         REGEX_MAX_REPEAT);
			rc = -1;
		}
		if (weight[sp] < aw)
			weight[sp] = aw;
	}
	return rc;
}

/* Compile m->value into m->re with the match limits in m->mctx. */
static int compile_regex(struct matcher *m, char *err, size_t errlen)
{
	size_t len = strlen(m->value);
	if (selector_regex_safe(m->value, len, err, errlen) < 0) {
		char why[200];
		snprintf(why, sizeof why, "%s", err);
		snprintf(err, errlen, "invalid regular expression '%.64s%s' for label '%s': %s",
		         m->value, len > 64 ? "..." : "", m->name, why);
		return -1;
	}
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	if (!cc) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pcre2_set_max_pattern_length(cc, SELECTOR_MAX_REGEX_LEN);
	pcre2_set_parens_nest_limit(cc, REGEX_MAX_GROUPS + 1);
	/* Prometheus compiles "^(?s:" + re + ")$" with Go's RE2: anchored at
	 * both ends, '.' matches newlines, '$' only at the very end, UTF-8
	 * (invalid bytes in a value simply do not match a multi-byte atom) */
	uint32_t opts = PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOTALL | PCRE2_DOLLAR_ENDONLY |
	                PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | PCRE2_NO_AUTO_CAPTURE;
	int ec;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)m->value, len, opts, &ec, &off, cc);
	pcre2_compile_context_free(cc);
	if (!re) {
		PCRE2_UCHAR buf[160];
		pcre2_get_error_message(ec, buf, sizeof buf);
		snprintf(err, errlen, "invalid regular expression '%.64s%s' for label '%s': %s at "
		                      "offset %zu",
		         m->value, len > 64 ? "..." : "", m->name, (const char *)buf, (size_t)off);
		return -1;
	}
	/* JIT when the platform has it; the interpreter otherwise (same limits) */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	pcre2_match_context *mc = pcre2_match_context_create(NULL);
	if (!mc) {
		pcre2_code_free(re);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pcre2_set_match_limit(mc, SELECTOR_MATCH_LIMIT);
	pcre2_set_depth_limit(mc, SELECTOR_DEPTH_LIMIT);
	pcre2_set_heap_limit(mc, SELECTOR_HEAP_LIMIT_KIB);
	m->re = re;
	m->mctx = mc;
	return 0;
}

static int add_matcher(struct selector *sel, char *name, char *value, enum match_op op, char *err,
                       size_t errlen)
{
	struct matcher *m = realloc(sel->m, (sel->n + 1) * sizeof *m);
	if (!m) {
		free(name);
		free(value);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sel->m = m;
	struct matcher *x = &m[sel->n];
	memset(x, 0, sizeof *x);
	x->name = name;
	x->value = value;
	x->op = op;
	sel->n++;
	if (op == MATCH_RE || op == MATCH_NRE)
		return compile_regex(x, err, errlen);
	return 0;
}

/* 1 match, 0 no match, -1 a PCRE2 limit was hit. */
static int regex_match(const struct matcher *m, const char *v)
{
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	if (!md)
		return -1;
	int rc = pcre2_match(m->re, (PCRE2_SPTR)v, strlen(v), 0, 0, md, m->mctx);
	pcre2_match_data_free(md);
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL)
		return 0;
	return -1; /* match/depth/heap limit, JIT stack, out of memory */
}

/* 1 match, 0 no match, -1 a limit was hit. */
static int matcher_matches(const struct matcher *m, const char *v)
{
	int r;
	switch (m->op) {
	case MATCH_EQ: return strcmp(v, m->value) == 0;
	case MATCH_NE: return strcmp(v, m->value) != 0;
	case MATCH_RE: return regex_match(m, v);
	case MATCH_NRE:
		r = regex_match(m, v);
		return r < 0 ? r : !r;
	}
	return 0;
}

int selector_parse(struct selector *sel, const char *s, char *err, size_t errlen)
{
	memset(sel, 0, sizeof *sel);
	const char *p = s;
	skip_ws(&p);
	if (*p && *p != '{') {
		char *name = read_ident(&p, 1);
		if (!name) {
			snprintf(err, errlen, "invalid metric name at '%.20s'", p);
			goto fail;
		}
		char *nm = strdup("__name__");
		if (!nm || add_matcher(sel, nm, name, MATCH_EQ, err, errlen) < 0)
			goto fail;
		skip_ws(&p);
	}
	if (*p == '{') {
		p++;
		for (;;) {
			skip_ws(&p);
			if (*p == '}') {
				p++;
				break;
			}
			char *name = read_ident(&p, 0);
			if (!name) {
				snprintf(err, errlen, "invalid label name at '%.20s'", p);
				goto fail;
			}
			skip_ws(&p);
			enum match_op op;
			if (p[0] == '=' && p[1] == '~') {
				op = MATCH_RE;
				p += 2;
			} else if (p[0] == '!' && p[1] == '~') {
				op = MATCH_NRE;
				p += 2;
			} else if (p[0] == '!' && p[1] == '=') {
				op = MATCH_NE;
				p += 2;
			} else if (p[0] == '=') {
				op = MATCH_EQ;
				p += 1;
			} else {
				free(name);
				snprintf(err, errlen, "expected =, !=, =~ or !~ after label name at '%.20s'", p);
				goto fail;
			}
			skip_ws(&p);
			char *value = read_string(&p, err, errlen);
			if (!value) {
				free(name);
				goto fail;
			}
			if (add_matcher(sel, name, value, op, err, errlen) < 0)
				goto fail;
			skip_ws(&p);
			if (*p == ',') {
				p++;
				continue;
			}
			if (*p == '}') {
				p++;
				break;
			}
			snprintf(err, errlen, "expected ',' or '}' at '%.20s'", p);
			goto fail;
		}
	}
	skip_ws(&p);
	if (*p) {
		snprintf(err, errlen, "unexpected '%.20s' after selector (only plain series selectors "
		                      "are supported)", p);
		goto fail;
	}
	if (sel->n == 0) {
		snprintf(err, errlen, "empty selector");
		goto fail;
	}
	int nonempty = 0;
	for (size_t i = 0; i < sel->n; i++)
		if (matcher_matches(&sel->m[i], "") == 0)
			nonempty = 1;
	if (!nonempty) {
		snprintf(err, errlen, "vector selector must contain at least one non-empty matcher");
		goto fail;
	}
	return 0;
fail:
	selector_free(sel);
	return -1;
}

int selector_matches(const struct selector *sel, const struct labels *l)
{
	for (size_t i = 0; i < sel->n; i++) {
		const char *v = labels_get(l, sel->m[i].name);
		int r = matcher_matches(&sel->m[i], v ? v : "");
		if (r < 0)
			__atomic_store_n((int *)&sel->limit_hit, 1, __ATOMIC_RELAXED);
		if (r <= 0)
			return 0;
	}
	return 1;
}

int selector_limit_hit(const struct selector *sel)
{
	return __atomic_load_n(&sel->limit_hit, __ATOMIC_RELAXED);
}

void selector_free(struct selector *sel)
{
	if (!sel)
		return;
	for (size_t i = 0; i < sel->n; i++)
		matcher_free(&sel->m[i]);
	free(sel->m);
	memset(sel, 0, sizeof *sel);
}

void matcher_free(struct matcher *m)
{
	free(m->name);
	free(m->value);
	pcre2_code_free(m->re);
	pcre2_match_context_free(m->mctx);
	memset(m, 0, sizeof *m);
}
