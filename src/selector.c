/* selector.c — parse and match Prometheus series selectors (see selector.h). */
#include "selector.h"

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
