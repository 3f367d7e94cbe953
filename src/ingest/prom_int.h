/* ingest/prom_int.h — internal to ingest/prom*.c: the line lexer both the
 * lenient ingest (prom.c) and the strict OpenMetrics validator (prom_om.c)
 * use (prom_lex.c), and the small character helpers they share. Include
 * after ingest/prom.h (struct label_ref). */
#ifndef FORESHOCK_INGEST_PROM_INT_H
#define FORESHOCK_INGEST_PROM_INT_H

#include <stddef.h>
#include <string.h>

/* ---- character classes and small helpers ------------------------------ */

static inline int is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static inline int is_label_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static inline int is_label_char(char c)
{
	return is_label_start(c) || (c >= '0' && c <= '9');
}

static inline int is_metric_start(char c)
{
	return is_label_start(c) || c == ':';
}

static inline int is_metric_char(char c)
{
	return is_label_char(c) || c == ':';
}

static inline int bytes_eq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);
	return alen == blen && memcmp(a, b, alen) == 0;
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


/* Length of a token for quoting in a message: up to a delimiter, at most 40. */
static inline int tok_len(const char *p, const char *e, const char *delims)
{
	size_t n = 0;
	while (p + n < e && !strchr(delims, p[n]) && n < 40)
		n++;
	return (int)n;
}

/* prom_lex.c: UTF-8 code points or (size_t)-1, numbers, timestamps and the
 * sample line lexer (see there). */
size_t prom_utf8_count(const char *s, size_t n);
int prom_num_parse(const char *s, size_t n, int special, double *out);
int prom_ts_parse_ms_int(const char *s, size_t n, int64_t *out);
int prom_ts_parse_s_float(const char *s, size_t n, int64_t *out);
int prom_lex_sample(struct lexer *lx, const char *p, const char *e, struct pline *pl);

#endif
