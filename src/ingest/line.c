/* ingest/line.c — InfluxDB line-protocol parser (see ingest/line.h).
 *
 * One entry (usually one line) is parsed in two passes:
 *
 *   1. scan: walk the bytes once, left to right, with a class table; every
 *      token becomes a span of the caller's buffer (still escaped), numbers
 *      are converted, and each syntax error stops the entry at the byte that
 *      caused it.
 *   2. finish: if any token held a backslash, grow the scratch buffer once (so
 *      no pointer into it can move) and unescape into it; sort the tags and
 *      reject duplicate keys; apply the default time.
 *
 * The grammar, byte by byte:
 *
 *   cpu\ load,host=a\,b,region=eu usage=0.5,n=3i,s="x \"y\"",ok=t 1700000000
 *   |-------| |----------------| |------------------------------| |--------|
 *   measurement  ,key=value ...    key=value[,key=value...]        [time]
 *   stops at     stops at , = SP   value: "string" | t/T/true/...  digits,
 *   , SP ctl     and control       | number[i|u] (stops at , SP CR LF) optional -
 *
 * Escapes: measurement `\,` `\ `; keys and tag values `\,` `\=` `\ `; string
 * values `\"` `\\`. Any other backslash is kept as a literal byte.
 *
 * Numbers and booleans are converted by ingest/line_value.c (line_int.h).
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/line.h"
#include "ingest/line_int.h"

/* ---- byte classes ------------------------------------------------------- */

enum {
	C_MSTOP = 1 << 0,  /* ends a measurement: , SP and control bytes */
	C_KSTOP = 1 << 1,  /* ends a key or tag value: , = SP and control bytes */
	C_VSTOP = 1 << 2,  /* ends a number/bool field value: , SP CR LF */
	C_HIGH = 1 << 3,   /* >= 0x80: the token needs a UTF-8 check */
	C_BSL = 1 << 4,    /* backslash */
	C_MESC = 1 << 5,   /* escapable in a measurement */
	C_KESC = 1 << 6,   /* escapable in a key or tag value */
	C_WS = 1 << 7,     /* SP CR LF: what may follow a field value */
	C_TVSTOP = 1 << 8, /* ends a tag value: , = SP CR LF (other control
	                    * bytes are allowed in tag values, as in the corpus) */
};


#define CTL (C_MSTOP | C_KSTOP)
static const uint16_t cls[256] = {
	[0 ... 9] = CTL,
	['\n'] = CTL | C_VSTOP | C_WS | C_TVSTOP,
	[11 ... 12] = CTL,
	['\r'] = CTL | C_VSTOP | C_WS | C_TVSTOP,
	[14 ... 31] = CTL,
	[' '] = C_MSTOP | C_KSTOP | C_VSTOP | C_MESC | C_KESC | C_WS | C_TVSTOP,
	[','] = C_MSTOP | C_KSTOP | C_VSTOP | C_MESC | C_KESC | C_TVSTOP,
	['='] = C_KSTOP | C_KESC | C_TVSTOP,
	['\\'] = C_BSL,
	[127] = CTL,
	[128 ... 255] = C_HIGH,
};

/* ---- small helpers ------------------------------------------------------ */

/* Scanning state for one lp_parse() call. */
struct cur {
	const char *s;    /* next byte */
	const char *end;  /* one past the body */
	size_t line;      /* 1-based line of *s */
};

/* One entry after pass 1. Spans point into the caller's buffer. */
struct entry {
	struct lp_str name;
	size_t ntags, nfields;
	int64_t time_ns;
	int has_time;
	int has_bsl;        /* some token held a backslash: pass 2 must unescape */
	const char *start;  /* first byte of the entry */
	const char *stop;   /* one past its last byte, before the line end */
};

static int fail(struct lp_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct lp_parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
	return -1;
}

/* Printable, bounded copy of user bytes for an error message: anything but
 * printable ASCII becomes \xNN so the reason is always ASCII (JSON-safe). */
#define QMAX 48
struct qbuf {
	char b[QMAX * 4 + 8];
};
static const char *q(struct qbuf *qb, const char *s, size_t n)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		if (i == QMAX) {
			memcpy(qb->b + o, "...", 3);
			o += 3;
			break;
		}
		unsigned char c = (unsigned char)s[i];
		if (c >= 32 && c < 127) {
			qb->b[o++] = (char)c;
		} else {
			static const char hx[] = "0123456789abcdef";
			qb->b[o++] = '\\';
			qb->b[o++] = 'x';
			qb->b[o++] = hx[c >> 4];
			qb->b[o++] = hx[c & 15];
		}
	}
	qb->b[o] = '\0';
	return qb->b;
}
static const char *qs(struct qbuf *qb, struct lp_str s)
{
	return q(qb, s.p, s.len);
}

/* Strict UTF-8 (no overlongs, no surrogates, <= U+10FFFF), as Go's utf8.Valid. */
static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		unsigned char lo = 0x80, hi = 0xbf;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return 0;
		}
		if (n - i <= need)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (size_t k = 2; k <= need; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
		i += need + 1;
	}
	return 1;
}

/* Sixteen bytes at a time (SSE2, every x86-64): special16() has bit i set
 * when byte i is one of , = \\ SP, a control byte, DEL or >= 0x80, the bytes
 * a token may stop at, escape or must check; a run without them is skipped
 * whole. Elsewhere the byte loops below do all the work. */
#ifdef __SSE2__
#include <emmintrin.h>
#define LP_SIMD 1
static inline unsigned special16(const char *s)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
	__m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(',')),
	                         _mm_cmpeq_epi8(v, _mm_set1_epi8('=')));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
	m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(0x7f)));
	m = _mm_or_si128(m, _mm_cmplt_epi8(v, _mm_set1_epi8(0x21))); /* signed: >= 0x80 too */
	return (unsigned)_mm_movemask_epi8(m);
}
/* bit i set when byte i is not a decimal digit */
static inline unsigned nondigit16(const char *s)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);
	__m128i d = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
	                          _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
	return ~(unsigned)_mm_movemask_epi8(d) & 0xffff;
}
#endif

/* The first byte at or after s that special16() flags, looking 16 bytes at
 * a time while 16 remain; s itself when fewer remain (or without SSE2): the
 * callers' byte loops take it from there. */
static inline __attribute__((always_inline)) const char *skip_plain(const char *s,
                                                                   const char *end)
{
#ifdef LP_SIMD
	while (end - s >= 16) {
		unsigned m = special16(s);
		if (m)
			return s + __builtin_ctz(m);
		s += 16;
	}
#endif
	(void)end;
	return s;
}

/* Scan an escaped token (measurement, key, tag value) up to a byte of class
 * `stop`; a backslash followed by a byte of class `esc` takes both bytes.
 * Sets bit 0 of *fl if a backslash was seen, bit 1 if a byte >= 0x80 was. */
static inline __attribute__((always_inline)) const char *
scan_token(const char *s, const char *end, uint16_t stop, uint16_t esc, unsigned *fl)
{
	unsigned f = 0;
	while ((s = skip_plain(s, end)) < end) {
		uint16_t k = cls[(unsigned char)*s];
		if (!(k & (stop | C_BSL | C_HIGH))) {
			s++;
			continue;
		}
		if (k & stop)
			break;
		if (k & C_HIGH) {
			f |= 2;
			s++;
			continue;
		}
		/* backslash */
		f |= 1;
		if (s + 1 < end && (cls[(unsigned char)s[1]] & esc))
			s += 2;
		else
			s++;
	}
	*fl = f;
	return s;
}

/* Skip bytes up to the first of class `stop` (a field value: no escapes). */
static const char *scan_class(const char *s, const char *end, uint16_t stop)
{
	while ((s = skip_plain(s, end)) < end) {
		if (cls[(unsigned char)*s] & stop)
			break;
		s++;
	}
	return s;
}

/* Skip decimal digits and '-' (a timestamp; lp_value_i64 checks the rest). */
static const char *scan_digits(const char *s, const char *end)
{
#ifdef LP_SIMD
	if (s < end && *s == '-')
		s++;
	while (end - s >= 16) {
		unsigned m = nondigit16(s);
		if (m) {
			s += __builtin_ctz(m);
			break;
		}
		s += 16;
	}
#endif
	while (s < end && ((*s >= '0' && *s <= '9') || *s == '-'))
		s++;
	return s;
}

/* Scan a string field value from after its opening quote to its closing
 * quote (returned; == end when unterminated). Counts newlines into *nl. */
static const char *scan_string(const char *s, const char *end, unsigned *fl, size_t *nl)
{
	unsigned f = 0;
	size_t lines = 0;
	while (s < end) {
		unsigned char c = (unsigned char)*s;
		if (c == '"')
			break;
		if (c == '\\') {
			f |= 1;
			if (s + 1 < end && (s[1] == '"' || s[1] == '\\'))
				s += 2;
			else
				s++;
			continue;
		}
		if (c >= 0x80)
			f |= 2;
		else if (c == '\n')
			lines++;
		s++;
	}
	*fl = f;
	*nl = lines;
	return s;
}

/* Unescape `in` into dst (which has room for in.len bytes); returns the length.
 * mode 0: a backslash before a byte of class `esc` is dropped. mode 1 (string
 * values): `\"` and `\\` become `"` and `\`. */
static size_t unescape(char *dst, struct lp_str in, uint16_t esc, int string_mode)
{
	size_t o = 0;
	for (size_t i = 0; i < in.len; i++) {
		char c = in.p[i];
		if (c == '\\' && i + 1 < in.len) {
			char d = in.p[i + 1];
			int drop = string_mode ? (d == '"' || d == '\\') : !!(cls[(unsigned char)d] & esc);
			if (drop) {
				dst[o++] = d;
				i++;
				continue;
			}
		}
		dst[o++] = c;
	}
	return o;
}

/* ---- precision ---------------------------------------------------------- */

int lp_precision_parse(const char *s, enum lp_precision *out)
{
	if (!s)
		return -1;
	if (s[0] == '1' && s[1] != '\0')
		s++; /* the corpus writes "1ns", "1µs", "1ms", "1s" */
	if (!strcmp(s, "ns") || !strcmp(s, "n"))
		*out = LP_NS;
	else if (!strcmp(s, "us") || !strcmp(s, "u") || !strcmp(s, "\xc2\xb5s") || !strcmp(s, "\xce\xbcs"))
		*out = LP_US;
	else if (!strcmp(s, "ms"))
		*out = LP_MS;
	else if (!strcmp(s, "s"))
		*out = LP_S;
	else
		return -1;
	return 0;
}

const char *lp_precision_name(enum lp_precision prec)
{
	switch (prec) {
	case LP_US:
		return "us";
	case LP_MS:
		return "ms";
	case LP_S:
		return "s";
	default:
		return "ns";
	}
}

static int64_t prec_mult(enum lp_precision prec)
{
	switch (prec) {
	case LP_US:
		return 1000;
	case LP_MS:
		return 1000000;
	case LP_S:
		return 1000000000;
	default:
		return 1;
	}
}

/* Round t down to a multiple of m (towards the past, as Go's Time.Truncate). */
static int64_t floor_to(int64_t t, int64_t m)
{
	if (m == 1)
		return t;
	int64_t q = t / m;
	if (t % m != 0 && t < 0)
		q--;
	int64_t r;
	if (__builtin_mul_overflow(q, m, &r))
		r = (q + 1) * m;
	return r;
}

/* ---- parser state ------------------------------------------------------- */

int lp_parser_init(struct lp_parser *p, const struct lp_limits *limits)
{
	memset(p, 0, sizeof *p);
	p->lim = limits ? *limits : LP_LIMITS_DEFAULT;
	p->scratch_max = p->lim.max_line_len ? p->lim.max_line_len : LP_SCRATCH_MAX;
	p->tags_cap = 16;
	if (p->lim.max_tags && p->lim.max_tags < p->tags_cap)
		p->tags_cap = p->lim.max_tags;
	p->fields_cap = 16;
	if (p->lim.max_fields && p->lim.max_fields < p->fields_cap)
		p->fields_cap = p->lim.max_fields;
	p->scratch_cap = 4096;
	if (p->scratch_cap > p->scratch_max)
		p->scratch_cap = p->scratch_max;
	p->tags = malloc((p->tags_cap ? p->tags_cap : 1) * sizeof *p->tags);
	p->fields = malloc((p->fields_cap ? p->fields_cap : 1) * sizeof *p->fields);
	p->scratch = malloc(p->scratch_cap ? p->scratch_cap : 1);
	if (!p->tags || !p->fields || !p->scratch) {
		lp_parser_free(p);
		return -1;
	}
	return 0;
}

void lp_parser_free(struct lp_parser *p)
{
	free(p->tags);
	free(p->fields);
	free(p->scratch);
	p->tags = NULL;
	p->fields = NULL;
	p->scratch = NULL;
	p->tags_cap = p->fields_cap = p->scratch_cap = 0;
}

/* Make the scratch buffer hold at least `need` bytes. Pointers into it die. */
static int scratch_reserve(struct lp_parser *p, size_t need)
{
	if (need <= p->scratch_cap)
		return 0;
	if (need > p->scratch_max)
		return fail(p, "line too long (over %zu bytes)", p->scratch_max);
	size_t cap = p->scratch_cap ? p->scratch_cap : 256;
	while (cap < need)
		cap = cap > p->scratch_max / 2 ? p->scratch_max : cap * 2;
	char *n = realloc(p->scratch, cap);
	if (!n)
		return fail(p, "out of memory unescaping line");
	p->scratch = n;
	p->scratch_cap = cap;
	return 0;
}

static struct lp_tag *tag_slot(struct lp_parser *p, size_t i)
{
	if (i < p->tags_cap)
		return &p->tags[i];
	if (p->lim.max_tags && i >= p->lim.max_tags) {
		fail(p, "too many tags (limit %zu)", p->lim.max_tags);
		return NULL;
	}
	size_t cap = p->tags_cap ? p->tags_cap * 2 : 16;
	if (p->lim.max_tags && cap > p->lim.max_tags)
		cap = p->lim.max_tags;
	struct lp_tag *n = realloc(p->tags, cap * sizeof *n);
	if (!n) {
		fail(p, "out of memory for tags");
		return NULL;
	}
	p->tags = n;
	p->tags_cap = cap;
	return &p->tags[i];
}

static struct lp_field *field_slot(struct lp_parser *p, size_t i)
{
	if (i < p->fields_cap)
		return &p->fields[i];
	if (p->lim.max_fields && i >= p->lim.max_fields) {
		fail(p, "too many fields (limit %zu)", p->lim.max_fields);
		return NULL;
	}
	size_t cap = p->fields_cap ? p->fields_cap * 2 : 16;
	if (p->lim.max_fields && cap > p->lim.max_fields)
		cap = p->lim.max_fields;
	struct lp_field *n = realloc(p->fields, cap * sizeof *n);
	if (!n) {
		fail(p, "out of memory for fields");
		return NULL;
	}
	p->fields = n;
	p->fields_cap = cap;
	return &p->fields[i];
}

/* ---- pass 1: scan one entry --------------------------------------------- */

static int is_eol(const struct cur *c)
{
	return c->s >= c->end || *c->s == '\n' ||
	       (*c->s == '\r' && (c->s + 1 == c->end || c->s[1] == '\n'));
}

/* Consume the line end at c->s (end of body, LF, CRLF, or CR at end of body). */
static void take_eol(struct cur *c)
{
	if (c->s >= c->end)
		return;
	if (*c->s == '\r')
		c->s++;
	if (c->s < c->end && *c->s == '\n') {
		c->s++;
		c->line++;
	}
}

/* The byte at c->s for a message: "'x'" (quoted), or "end of line". */
static const char *char_name(struct qbuf *qb, const struct cur *c)
{
	if (is_eol(c))
		return "end of line";
	q(qb, c->s, 1);
	memmove(qb->b + 1, qb->b, strlen(qb->b) + 1);
	qb->b[0] = '\'';
	strcat(qb->b, "'");
	return qb->b;
}

static int check_len(struct lp_parser *p, const char *what, struct lp_str s, size_t limit)
{
	struct qbuf qb;
	if (limit && s.len > limit)
		return fail(p, "%s too long '%s' (%zu bytes, limit %zu)", what, qs(&qb, s), s.len, limit);
	return 0;
}

/* Parse the field value at c->s (just after '=') into f. */
static int scan_value(struct lp_parser *p, struct cur *c, struct entry *e, struct lp_field *f,
                      size_t *resume_line, const char **resume_at)
{
	struct qbuf qk, qv;
	char c0 = *c->s;
	if (c0 == '"') {
		unsigned fl;
		size_t nl;
		const char *open = c->s;
		const char *close = scan_string(c->s + 1, c->end, &fl, &nl);
		if (close >= c->end) {
			/* Resume after the line the quote opened on, rather than
			 * losing the rest of the body. */
			const char *lf = memchr(open, '\n', (size_t)(c->end - open));
			*resume_at = lf ? lf + 1 : c->end;
			*resume_line = c->line + (lf ? 1 : 0);
			return fail(p, "unterminated string value for '%s'", qs(&qk, f->key));
		}
		f->type = LP_STRING;
		f->v.s.p = open + 1;
		f->v.s.len = (size_t)(close - open - 1);
		c->s = close + 1;
		c->line += nl;
		if (fl & 1)
			e->has_bsl = 1;
		if ((fl & 2) && !utf8_valid((const unsigned char *)f->v.s.p, f->v.s.len))
			return fail(p, "invalid utf-8 in string value for '%s'", qs(&qk, f->key));
		return check_len(p, "string value", f->v.s, p->lim.max_value_len);
	}
	const char *v0 = c->s;
	c->s = scan_class(c->s, c->end, C_VSTOP);
	size_t n = (size_t)(c->s - v0);
	int r;
	switch (c0) {
	case 't':
	case 'T':
	case 'f':
	case 'F':
		f->type = LP_BOOL;
		if (lp_value_bool(v0, n, &f->v.b) != 0)
			return fail(p, "invalid boolean value '%s' for '%s'", q(&qv, v0, n), qs(&qk, f->key));
		return 0;
	case '-':
	case '0' ... '9':
	case '.':
		if (v0[n - 1] == 'i') {
			f->type = LP_INT;
			r = lp_value_i64(v0, n - 1, &f->v.i);
		} else if (v0[n - 1] == 'u') {
			f->type = LP_UINT;
			r = lp_value_u64(v0, n - 1, &f->v.u);
		} else {
			char small[64];
			char *tmp = small;
			if (n + 1 > sizeof small) {
				if (scratch_reserve(p, n + 1) != 0)
					return -1;
				tmp = p->scratch;
			}
			f->type = LP_FLOAT;
			r = c->end - v0 >= 9 ? lp_value_float8(v0, n, &f->v.f) : NUM_SYNTAX;
			if (r != NUM_OK)
				r = lp_value_float(v0, n, tmp, &f->v.f);
		}
		if (r == NUM_RANGE)
			return fail(p, "field value out of range '%s' for '%s'", q(&qv, v0, n), qs(&qk, f->key));
		if (r != NUM_OK)
			return fail(p, "invalid field value '%s' for '%s'", q(&qv, v0, n), qs(&qk, f->key));
		return 0;
	default:
		if (n == 0)
			return fail(p, "missing field value for '%s'", qs(&qk, f->key));
		return fail(p, "invalid field value '%s' for '%s'", q(&qv, v0, n), qs(&qk, f->key));
	}
}

/* The tags of an entry: (,key=value)*, up to the space before the fields. */
static int scan_tags(struct lp_parser *p, struct cur *c, struct entry *e)
{
	struct qbuf qa, qb;
	unsigned fl;
	const char *t0;
	while (c->s < c->end && *c->s == ',') {
		c->s++;
		if (c->s >= c->end || (cls[(unsigned char)*c->s] & C_WS))
			return fail(p, "missing tag key after ',' in '%s'", qs(&qa, e->name));
		struct lp_tag *t = tag_slot(p, e->ntags);
		if (!t)
			return -1;
		t0 = c->s;
		c->s = scan_token(c->s, c->end, C_KSTOP, C_KESC, &fl);
		t->key.p = t0;
		t->key.len = (size_t)(c->s - t0);
		e->has_bsl |= fl & 1;
		if (t->key.len == 0)
			return fail(p, "invalid character %s at start of tag key", char_name(&qa, c));
		if ((fl & 2) && !utf8_valid((const unsigned char *)t->key.p, t->key.len))
			return fail(p, "invalid utf-8 in tag key '%s'", qs(&qa, t->key));
		if (check_len(p, "tag key", t->key, p->lim.max_key_len) != 0)
			return -1;
		if (c->s >= c->end || *c->s != '=')
			return fail(p, "missing '=' after tag key '%s' (found %s)", qs(&qa, t->key),
			            char_name(&qb, c));
		c->s++;
		t0 = c->s;
		c->s = scan_token(c->s, c->end, C_TVSTOP, C_KESC, &fl);
		t->value.p = t0;
		t->value.len = (size_t)(c->s - t0);
		e->has_bsl |= fl & 1;
		if (t->value.len == 0)
			return fail(p, "missing tag value for '%s'", qs(&qa, t->key));
		if ((fl & 2) && !utf8_valid((const unsigned char *)t->value.p, t->value.len))
			return fail(p, "invalid utf-8 in tag value for '%s'", qs(&qa, t->key));
		if (check_len(p, "tag value", t->value, p->lim.max_value_len) != 0)
			return -1;
		e->ntags++;
	}
	return 0;
}

/* The fields of an entry: key=value(,key=value)*. Returns 1 if the body
 * ends with them (e->stop set), 0 if a timestamp may follow, -1 on error. */
static int scan_fields(struct lp_parser *p, struct cur *c, struct entry *e, size_t *resume_line,
                       const char **resume_at)
{
	struct qbuf qa, qb;
	unsigned fl;
	const char *t0;
	for (;;) {
		struct lp_field *f = field_slot(p, e->nfields);
		if (!f)
			return -1;
		t0 = c->s;
		c->s = scan_token(c->s, c->end, C_KSTOP, C_KESC, &fl);
		f->key.p = t0;
		f->key.len = (size_t)(c->s - t0);
		e->has_bsl |= fl & 1;
		if (f->key.len == 0) {
			if (is_eol(c))
				return fail(p, "missing field key for '%s'", qs(&qa, e->name));
			return fail(p, "invalid character %s at start of field key", char_name(&qa, c));
		}
		if ((fl & 2) && !utf8_valid((const unsigned char *)f->key.p, f->key.len))
			return fail(p, "invalid utf-8 in field key '%s'", qs(&qa, f->key));
		if (check_len(p, "field key", f->key, p->lim.max_key_len) != 0)
			return -1;
		if (c->s >= c->end || *c->s != '=')
			return fail(p, "missing '=' after field key '%s' (found %s)", qs(&qa, f->key),
			            char_name(&qb, c));
		c->s++;
		if (c->s >= c->end)
			return fail(p, "missing field value for '%s'", qs(&qa, f->key));
		if (scan_value(p, c, e, f, resume_line, resume_at) != 0)
			return -1;
		e->nfields++;
		if (c->s >= c->end) {
			e->stop = c->s;
			return 1;
		}
		if (*c->s == ',') {
			c->s++;
			continue;
		}
		if (!(cls[(unsigned char)*c->s] & C_WS))
			return fail(p, "unexpected character %s after field '%s'", char_name(&qa, c),
			            qs(&qb, f->key));
		break;
	}
	return 0;
}

/* The optional timestamp after the fields, scaled to nanoseconds by mult,
 * and the end of the line. */
static int scan_time(struct lp_parser *p, struct cur *c, struct entry *e, int64_t mult)
{
	struct qbuf qa;
	const char *t0;
	while (c->s < c->end && *c->s == ' ')
		c->s++;
	if (is_eol(c)) {
		e->stop = c->s;
		take_eol(c);
		return 0;
	}
	t0 = c->s;
	c->s = scan_digits(c->s, c->end);
	const char *tend = c->s;
	if (c->s < c->end && !(cls[(unsigned char)*c->s] & C_WS)) {
		const char *x = c->s;
		while (x < c->end && *x != '\n' && *x != '\r')
			x++;
		return fail(p, "invalid timestamp '%s'", q(&qa, t0, (size_t)(x - t0)));
	}
	e->stop = tend;
	while (c->s < c->end && *c->s == ' ')
		c->s++;
	if (!is_eol(c)) {
		const char *x = c->s;
		while (x < c->end && *x != '\n' && *x != '\r')
			x++;
		return fail(p, "unexpected text after timestamp '%s'", q(&qa, c->s, (size_t)(x - c->s)));
	}
	int64_t ts;
	int r = lp_value_i64(t0, (size_t)(tend - t0), &ts);
	if (r == NUM_RANGE)
		return fail(p, "timestamp out of range '%s'", q(&qa, t0, (size_t)(tend - t0)));
	if (r != NUM_OK)
		return fail(p, "invalid timestamp '%s'", q(&qa, t0, (size_t)(tend - t0)));
	if (__builtin_mul_overflow(ts, mult, &e->time_ns))
		return fail(p, "timestamp out of range '%s' at this precision", q(&qa, t0, (size_t)(tend - t0)));
	e->has_time = 1;
	take_eol(c);
	return 0;
}

/* Pass 1. On error, p->err holds the reason and *resume_at (if set) says
 * where to pick up again; otherwise the rest of the line is skipped. */
static int scan_entry(struct lp_parser *p, struct cur *c, struct entry *e, int64_t mult,
                      size_t *resume_line, const char **resume_at)
{
	struct qbuf qa;
	unsigned fl;
	memset(e, 0, sizeof *e);
	e->start = c->s;

	/* measurement */
	const char *t0 = c->s;
	c->s = scan_token(c->s, c->end, C_MSTOP, C_MESC, &fl);
	e->name.p = t0;
	e->name.len = (size_t)(c->s - t0);
	e->has_bsl |= fl & 1;
	if (e->name.len == 0)
		return fail(p, "invalid character %s at start of measurement", char_name(&qa, c));
	if (e->name.p[0] == '#')
		return fail(p, "invalid character in comment");
	if ((fl & 2) && !utf8_valid((const unsigned char *)e->name.p, e->name.len))
		return fail(p, "invalid utf-8 in measurement '%s'", qs(&qa, e->name));
	if (check_len(p, "measurement", e->name, p->lim.max_key_len) != 0)
		return -1;

	if (scan_tags(p, c, e) != 0)
		return -1;
	if (c->s >= c->end || is_eol(c))
		return fail(p, "missing fields for '%s'", qs(&qa, e->name));
	if (*c->s != ' ')
		return fail(p, "invalid character %s after %s", char_name(&qa, c),
		            e->ntags ? "tag value" : "measurement");
	while (c->s < c->end && *c->s == ' ')
		c->s++;

	int r = scan_fields(p, c, e, resume_line, resume_at);
	if (r != 0)
		return r < 0 ? -1 : 0;
	return scan_time(p, c, e, mult);
}

/* ---- pass 2: unescape, sort, check -------------------------------------- */

static int str_cmp(struct lp_str a, struct lp_str b)
{
	/* keys are never empty, and a line's tag keys mostly differ at once */
	if (a.len && b.len && a.p[0] != b.p[0])
		return (unsigned char)a.p[0] < (unsigned char)b.p[0] ? -1 : 1;
	size_t n = a.len < b.len ? a.len : b.len;
	int r = memcmp(a.p, b.p, n);
	if (r)
		return r;
	return a.len < b.len ? -1 : a.len > b.len;
}

static void unesc_one(char *base, size_t *used, struct lp_str *s, uint16_t esc, int string_mode)
{
	if (!memchr(s->p, '\\', s->len))
		return;
	char *dst = base + *used;
	s->len = unescape(dst, *s, esc, string_mode);
	s->p = dst;
	*used += s->len;
}

static int finish_entry(struct lp_parser *p, struct entry *e)
{
	struct qbuf qa;
	size_t linelen = (size_t)(e->stop - e->start);
	if (p->lim.max_line_len && linelen > p->lim.max_line_len)
		return fail(p, "line too long (%zu bytes, limit %zu)", linelen, p->lim.max_line_len);
	if (e->has_bsl) {
		/* Unescaped text is never longer than the entry: reserve once. */
		if (scratch_reserve(p, linelen) != 0)
			return -1;
		size_t used = 0;
		unesc_one(p->scratch, &used, &e->name, C_MESC, 0);
		for (size_t i = 0; i < e->ntags; i++) {
			unesc_one(p->scratch, &used, &p->tags[i].key, C_KESC, 0);
			unesc_one(p->scratch, &used, &p->tags[i].value, C_KESC, 0);
		}
		for (size_t i = 0; i < e->nfields; i++) {
			struct lp_field *f = &p->fields[i];
			unesc_one(p->scratch, &used, &f->key, C_KESC, 0);
			if (f->type == LP_STRING)
				unesc_one(p->scratch, &used, &f->v.s, 0, 1);
		}
	}
	/* Senders usually send tags sorted already: one pass checks that (and
	 * that no key repeats); otherwise an insertion sort, then the check. */
	size_t i = 1;
	while (i < e->ntags && str_cmp(p->tags[i - 1].key, p->tags[i].key) < 0)
		i++;
	if (i >= e->ntags)
		return 0;
	for (i = 1; i < e->ntags; i++) {
		struct lp_tag t = p->tags[i];
		size_t j = i;
		while (j > 0 && str_cmp(p->tags[j - 1].key, t.key) > 0) {
			p->tags[j] = p->tags[j - 1];
			j--;
		}
		p->tags[j] = t;
	}
	for (i = 1; i < e->ntags; i++)
		if (str_cmp(p->tags[i - 1].key, p->tags[i].key) == 0)
			return fail(p, "duplicate tag key '%s'", qs(&qa, p->tags[i].key));
	return 0;
}

/* ---- the body loop ------------------------------------------------------- */

/* Skip blank lines, leading spaces and valid comments. Returns -1 at a
 * comment holding a control character (the line is then rejected). */
static int skip_blank(struct cur *c)
{
	for (;;) {
		while (c->s < c->end && *c->s == ' ')
			c->s++;
		if (c->s >= c->end)
			return 0;
		switch (*c->s) {
		case '\n':
			c->s++;
			c->line++;
			continue;
		case '\r':
			if (!is_eol(c))
				return 0; /* lone CR: rejected as a bad measurement */
			take_eol(c);
			continue;
		case '#': {
			/* a comment runs to the line end; control bytes are not allowed */
			const char *x = c->s;
			while (x < c->end && (unsigned char)*x >= 32 && *x != 127)
				x++;
			struct cur t = { x, c->end, c->line };
			if (!is_eol(&t))
				return -1;
			c->s = x;
			take_eol(c);
			continue;
		}
		default:
			return 0;
		}
	}
}

static void skip_line(struct cur *c)
{
	const char *lf = memchr(c->s, '\n', (size_t)(c->end - c->s));
	if (lf) {
		c->s = lf + 1;
		c->line++;
	} else {
		c->s = c->end;
	}
}

size_t lp_parse(struct lp_parser *p, const char *buf, size_t len, enum lp_precision prec,
                int64_t default_time_ns, lp_point_fn on_point, lp_error_fn on_error, void *ctx)
{
	struct cur c = { buf, buf + len, 1 };
	int64_t mult = prec_mult(prec);
	int64_t dflt = floor_to(default_time_ns, mult);
	p->npoints = 0;
	p->nrejected = 0;
	if (!buf)
		return 0;
	for (;;) {
		if (skip_blank(&c) != 0) {
			p->nrejected++;
			if (on_error)
				on_error(ctx, c.line, "invalid character in comment");
			skip_line(&c);
			continue;
		}
		if (c.s >= c.end)
			break;
		size_t lineno = c.line;
		struct entry e;
		size_t resume_line = 0;
		const char *resume_at = NULL;
		if (scan_entry(p, &c, &e, mult, &resume_line, &resume_at) != 0) {
			p->nrejected++;
			if (on_error)
				on_error(ctx, lineno, p->err);
			if (resume_at) {
				c.s = resume_at;
				c.line = resume_line;
			} else {
				skip_line(&c);
			}
			continue;
		}
		if (finish_entry(p, &e) != 0) {
			p->nrejected++;
			if (on_error)
				on_error(ctx, lineno, p->err);
			continue;
		}
		struct lp_point pt = {
			.name = e.name,
			.ntags = e.ntags,
			.tags = p->tags,
			.nfields = e.nfields,
			.fields = p->fields,
			.time_ns = e.has_time ? e.time_ns : dflt,
			.has_time = e.has_time,
		};
		if (on_point && on_point(ctx, &pt, lineno) != 0)
			p->nrejected++;
		else
			p->npoints++;
	}
	return p->nrejected;
}
