/* util/selector.c — parse and match Prometheus series selectors (see selector.h). */
#include "util/selector.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* glibc's regcomp() takes exponential time on some patterns RE2 (and so
 * Prometheus) rejects or handles in linear time: a+++++++++++++++++++++++
 * (24 '+': 47 s), ((((a+)+)+)...)+ nested 24 deep (26 s), and large
 * counted repetitions ((a{1,100}){1,100}){1,100}. Refuse them before
 * selector_parse() compiles them, with RE2's wording where RE2 refuses too:
 * nested repetition operators, and repeat counts whose product exceeds 1000;
 * and, beyond RE2, more than REGEX_MAX_QDEPTH nested repeated groups. */
#define REGEX_MAX_QDEPTH 8
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

/* Is the POSIX regular expression re safe to hand to regcomp()? Returns 0,
 * or -1 with the reason in err. */
int selector_regex_safe(const char *re, size_t n, char *err, size_t errlen)
{
	/* per open group: deepest nesting of repeated groups, largest repeat product */
	int qdepth[REGEX_MAX_GROUPS + 1] = { 0 };
	long weight[REGEX_MAX_GROUPS + 1] = { 0 };
	int sp = 0, rc = 0;
	const char *p = re, *e = re + n;
	while (p < e && rc == 0) {
		int aq = 0;      /* the atom's own nesting of repetitions */
		long aw = 1;     /* and repeat product */
		if (*p == '(') {
			if (sp == REGEX_MAX_GROUPS) {
				snprintf(err, errlen, "regular expression nests groups more than %d deep",
				         REGEX_MAX_GROUPS);
				rc = -1;
				break;
			}
			sp++;
			qdepth[sp] = 0;
			weight[sp] = 1;
			p++;
			continue;
		}
		if (*p == ')' && sp > 0) {
			aq = qdepth[sp];
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
				b++;
			}
			p = b < e ? b + 1 : e;
		} else if (*p == '\\' && p + 1 < e) {
			p += 2;
		} else {
			p++;
		}
		long c;
		size_t ql = regex_quantifier(p, e, &c);
		if (ql) {
			p += ql;
			aq++;
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
		} else if (aq > REGEX_MAX_QDEPTH) {
			snprintf(err, errlen, "regular expression too complex: repetitions nested more "
			                      "than %d deep", REGEX_MAX_QDEPTH);
			rc = -1;
		}
		if (qdepth[sp] < aq)
			qdepth[sp] = aq;
		if (weight[sp] < aw)
			weight[sp] = aw;
	}
	return rc;
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
	if (op == MATCH_RE || op == MATCH_NRE) {
		size_t len = strlen(value);
		/* POSIX ERE would read these RE2 constructs differently: refuse them
		 * rather than give a wrong answer */
		static const char *const re2_only[] = { "\\d", "\\D", "\\w", "\\W", "\\s",
			                                 "\\S", "\\b", "\\B", "(?", "\\p", "\\P",
			                                 "\\A", "\\z", NULL };
		if (selector_regex_safe(value, len, err, errlen) < 0) {
			char why[200];
			snprintf(why, sizeof why, "%s", err);
			snprintf(err, errlen, "invalid regular expression '%.64s' for label '%s': %s", value,
			         name, why);
			return -1;
		}
		for (int k = 0; re2_only[k]; k++) {
			if (strstr(value, re2_only[k])) {
				snprintf(err, errlen,
				         "unsupported regular expression syntax '%s' in '%s' for label '%s' "
				         "(POSIX extended syntax: use [0-9], [[:alnum:]_], [[:space:]])",
				         re2_only[k], value, name);
				return -1;
			}
		}
		char *anch = malloc(len + 7);
		if (!anch) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		snprintf(anch, len + 7, "^(%s)$", value);
		int rc = regcomp(&x->re, anch, REG_EXTENDED | REG_NOSUB);
		free(anch);
		if (rc != 0) {
			char buf[128];
			regerror(rc, &x->re, buf, sizeof buf);
			snprintf(err, errlen, "invalid regular expression '%s' for label '%s': %s", value,
			         name, buf);
			return -1;
		}
		x->has_re = 1;
	}
	return 0;
}

static int matcher_matches(const struct matcher *m, const char *v)
{
	switch (m->op) {
	case MATCH_EQ: return strcmp(v, m->value) == 0;
	case MATCH_NE: return strcmp(v, m->value) != 0;
	case MATCH_RE: return regexec(&m->re, v, 0, NULL, 0) == 0;
	case MATCH_NRE: return regexec(&m->re, v, 0, NULL, 0) != 0;
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
		if (!matcher_matches(&sel->m[i], ""))
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
		if (!matcher_matches(&sel->m[i], v ? v : ""))
			return 0;
	}
	return 1;
}

void selector_free(struct selector *sel)
{
	if (!sel)
		return;
	for (size_t i = 0; i < sel->n; i++) {
		free(sel->m[i].name);
		free(sel->m[i].value);
		if (sel->m[i].has_re)
			regfree(&sel->m[i].re);
	}
	free(sel->m);
	memset(sel, 0, sizeof *sel);
}
