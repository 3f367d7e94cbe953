/* util/buf.c — the growable output buffer with a size cap and JSON helpers
 * (see buf.h). */
#include "util/buf.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/timefmt.h"

void obuf_init(struct obuf *b, size_t max)
{
	b->p = NULL;
	b->len = b->cap = 0;
	b->max = max ? max : (size_t)1 << 30;
	b->failed = 0;
}

static int obuf_reserve(struct obuf *b, size_t n)
{
	if (b->failed)
		return -1;
	if (n > b->max || b->len + n > b->max) {
		b->failed = 1;
		return -1;
	}
	if (b->len + n + 1 <= b->cap)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap < b->len + n + 1)
		cap *= 2;
	char *p = realloc(b->p, cap);
	if (!p) {
		b->failed = 1;
		return -1;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

void obuf_add(struct obuf *b, const char *s, size_t n)
{
	if (obuf_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = 0;
}

void obuf_puts(struct obuf *b, const char *s)
{
	obuf_add(b, s, strlen(s));
}

void obuf_printf(struct obuf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->failed = 1;
		return;
	}
	if ((size_t)n < sizeof tmp) {
		obuf_add(b, tmp, (size_t)n);
		return;
	}
	if (obuf_reserve(b, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	unsigned min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	unsigned cp = c & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void obuf_json_str(struct obuf *b, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	obuf_add(b, "\"", 1);
	size_t run = 0; /* start of the pending run of plain bytes */
	for (size_t i = 0; i < n;) {
		unsigned c = u[i];
		const char *esc = NULL;
		char ebuf[8];
		size_t l = 1;
		if (c == '"')
			esc = "\\\"";
		else if (c == '\\')
			esc = "\\\\";
		else if (c == '\n')
			esc = "\\n";
		else if (c == '\r')
			esc = "\\r";
		else if (c == '\t')
			esc = "\\t";
		else if (c < 0x20 || c == 0x7f) {
			snprintf(ebuf, sizeof ebuf, "\\u%04x", c);
			esc = ebuf;
		} else if (c >= 0x80) {
			l = utf8_len(u + i, n - i);
			if (l == 0) {
				esc = "\xef\xbf\xbd"; /* U+FFFD */
				l = 1;
			}
		}
		if (esc) {
			obuf_add(b, s + run, i - run);
			obuf_puts(b, esc);
			i += l;
			run = i;
		} else {
			i += l;
		}
	}
	obuf_add(b, s + run, n - run);
	obuf_add(b, "\"", 1);
}

void obuf_json_num(struct obuf *b, double v, int is_float)
{
	if (!isfinite(v)) {
		obuf_add(b, "null", 4);
		return;
	}
	char tmp[40];
	if (is_float) {
		float f = (float)v;
		for (int p = 6; p <= 9; p++) {
			snprintf(tmp, sizeof tmp, "%.*g", p, (double)f);
			if (strtof(tmp, NULL) == f)
				break;
		}
	} else {
		for (int p = 15; p <= 17; p++) {
			snprintf(tmp, sizeof tmp, "%.*g", p, v);
			if (strtod(tmp, NULL) == v)
				break;
		}
	}
	obuf_puts(b, tmp);
}

void obuf_json_time(struct obuf *b, int64_t ms)
{
	char t[40];
	time_format_rfc3339(ms, t, sizeof t);
	obuf_add(b, "\"", 1);
	obuf_puts(b, t);
	obuf_add(b, "\"", 1);
}

char *obuf_steal(struct obuf *b, size_t *len)
{
	char *p = b->p;
	if (len)
		*len = b->len;
	b->p = NULL;
	b->len = b->cap = 0;
	return p;
}

void obuf_free(struct obuf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

int obuf_read(struct obuf *b, FILE *f)
{
	if (b->failed) {
		errno = EINVAL;
		return -1;
	}
	if (obuf_reserve(b, 0)) {
		errno = ENOMEM;
		return -1;
	}
	errno = 0;
	for (;;) {
		if (b->len == b->max) { /* one more byte is too many */
			if (fgetc(f) == EOF)
				break;
			b->failed = 1;
			errno = EFBIG;
			return -1;
		}
		size_t left = b->max - b->len;
		if (b->len + 1 == b->cap && obuf_reserve(b, b->cap < left ? b->cap : left)) {
			errno = ENOMEM; /* full: doubled, up to max */
			return -1;
		}
		size_t room = b->cap - b->len - 1;
		size_t got = fread(b->p + b->len, 1, room < left ? room : left, f);
		b->len += got;
		b->p[b->len] = 0;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		if (!errno)
			errno = EIO;
		return -1;
	}
	return 0;
}

char *obuf_read_file(const char *path, size_t max, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	struct obuf b;
	obuf_init(&b, max);
	int rc = obuf_read(&b, f);
	int e = errno;
	fclose(f);
	if (rc < 0) {
		obuf_free(&b);
		errno = e;
		return NULL;
	}
	return obuf_steal(&b, len);
}


void errbuf_printf(char *err, size_t errlen, const char *fmt, ...)
{
	if (err == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int array_grow(void **p, size_t *cap, size_t need, size_t elem, size_t first)
{
	if (need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap : (first ? first : 16);
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2)
			return -1;
		ncap *= 2;
	}
	if (elem && ncap > SIZE_MAX / elem)
		return -1;
	void *np = realloc(*p, ncap * elem);
	if (!np)
		return -1;
	*p = np;
	*cap = ncap;
	return 0;
}
