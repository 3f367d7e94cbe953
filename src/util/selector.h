/* util/selector.h — Prometheus series selectors: name{a="x",b!="y",c=~"re",d!~"re"}.
 *
 * Used by the API's match[] parameters, the query endpoints and service
 * models. Regular expressions use Prometheus' syntax (RE2), fully anchored,
 * with `.` matching newlines as in Prometheus (`^(?s:re)$`); they are
 * compiled with PCRE2 (JIT when available) and refused when they use PCRE
 * constructs RE2 lacks (backreferences, lookaround, atomic groups,
 * possessive quantifiers, verbs), so `\d`, `(?i)`, `\pL`, `[[:alpha:]]` work
 * and answers match Prometheus'.
 *
 * Bounds: a pattern is at most SELECTOR_MAX_REGEX_LEN bytes; every match
 * runs under PCRE2 match, depth and heap limits and never recurses on the
 * caller's stack (PCRE2 >= 10.30 keeps backtracking frames on the heap; the
 * JIT uses its fixed 32 KiB block). A match that hits a limit counts as "no
 * match" and sets the selector's limit_hit flag, which API handlers turn
 * into an error. A label that is absent matches as the empty string, as in
 * Prometheus.
 */
#ifndef FORESHOCK_SELECTOR_H
#define FORESHOCK_SELECTOR_H

#include <stddef.h>

#include "util/labels.h"

/* Longest regular expression accepted, in bytes (after unquoting). */
#define SELECTOR_MAX_REGEX_LEN 8192
/* PCRE2 limits of one match (see pcre2_set_match_limit(3)). */
#define SELECTOR_MATCH_LIMIT 200000
#define SELECTOR_DEPTH_LIMIT 10000
#define SELECTOR_HEAP_LIMIT_KIB 4096

enum match_op { MATCH_EQ, MATCH_NE, MATCH_RE, MATCH_NRE };

struct pcre2_real_code_8;
struct pcre2_real_match_context_8;

struct matcher {
	char *name;     /* owned */
	char *value;    /* owned, unescaped */
	enum match_op op;
	struct pcre2_real_code_8 *re;           /* owned, compiled when op is MATCH_RE/MATCH_NRE */
	struct pcre2_real_match_context_8 *mctx; /* owned, the match limits; read-only once built */
};

struct selector {
	size_t n;
	struct matcher *m; /* owned */
	int limit_hit;     /* set (atomically) when a match hit a PCRE2 limit */
};

/* Parse; returns 0, or -1 with a reason in err. A selector must contain at
 * least one matcher that does not match the empty string (as Prometheus). */
int selector_parse(struct selector *sel, const char *s, char *err, size_t errlen);
/* 1 when every matcher matches l, else 0. Safe to call from several threads
 * on the same selector. */
int selector_matches(const struct selector *sel, const struct labels *l);
/* Did any match since parse hit a PCRE2 limit? (then some answers were "no
 * match" for a series the pattern might select) */
int selector_limit_hit(const struct selector *sel);
void selector_free(struct selector *sel);
/* Free one matcher's members (for callers that rewrite sel->m). */
void matcher_free(struct matcher *m);
/* Refuse, before compiling, regular expressions that are not RE2 syntax or
 * cost too much: longer than SELECTOR_MAX_REGEX_LEN, nested repetition
 * operators (RE2's "invalid nested repetition operator", which also covers
 * PCRE's possessive a*+), repeat counts whose product exceeds 1000, groups
 * nested more than 64 deep, backreferences, lookaround, atomic groups,
 * recursion, conditionals, callouts and verbs. selector_parse() calls it on
 * every =~ and !~ matcher. Returns 0, or -1 with the reason in err. */
int selector_regex_safe(const char *re, size_t n, char *err, size_t errlen);

#endif
