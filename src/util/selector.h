/* util/selector.h — Prometheus series selectors: name{a="x",b!="y",c=~"re",d!~"re"}.
 *
 * Used by the API's match[] parameters and the query endpoints. Regular
 * expressions are POSIX extended, fully anchored as in Prometheus (RE2 syntax
 * beyond ERE, such as \d or (?i), is rejected with a clear error). A label
 * that is absent matches as the empty string, as in Prometheus.
 */
#ifndef FORESHOCK_SELECTOR_H
#define FORESHOCK_SELECTOR_H

#include <regex.h>
#include <stddef.h>

#include "util/labels.h"

enum match_op { MATCH_EQ, MATCH_NE, MATCH_RE, MATCH_NRE };

struct matcher {
	char *name;     /* owned */
	char *value;    /* owned, unescaped */
	enum match_op op;
	int has_re;
	regex_t re;     /* compiled when op is MATCH_RE/MATCH_NRE */
};

struct selector {
	size_t n;
	struct matcher *m; /* owned */
};

/* Parse; returns 0, or -1 with a reason in err. A selector must contain at
 * least one matcher that does not match the empty string (as Prometheus). */
int selector_parse(struct selector *sel, const char *s, char *err, size_t errlen);
int selector_matches(const struct selector *sel, const struct labels *l);
void selector_free(struct selector *sel);
/* Refuse regular expressions that glibc's regcomp() would compile in
 * exponential time (nested repetition operators, repeat counts whose product
 * exceeds 1000, repetitions nested more than 8 deep). selector_parse() calls
 * it on every =~ and !~ matcher. Returns 0, or -1 with the reason in err. */
int selector_regex_safe(const char *re, size_t n, char *err, size_t errlen);

#endif
