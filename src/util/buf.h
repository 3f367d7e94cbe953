/* util/buf.h — a growable output buffer with a size cap (curl's dynbuf habit),
 * and the JSON writers that the API and the service models share. Depends
 * on nothing above libc and timefmt.
 *
 * Invariants: p is NULL or NUL-terminated at p[len]; once an append fails
 * (out of memory, or len would pass max) `failed` is set, further appends are
 * ignored and the content must not be sent. The buffer owns p.
 */
#ifndef FORESHOCK_BUF_H
#define FORESHOCK_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct obuf {
	char *p;
	size_t len, cap;
	size_t max;   /* cap on len (0 = 1 GiB) */
	int failed;
};
void obuf_init(struct obuf *b, size_t max);
void obuf_add(struct obuf *b, const char *s, size_t n);
void obuf_puts(struct obuf *b, const char *s);
void obuf_printf(struct obuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A JSON string literal (quotes, escapes; invalid UTF-8 bytes become U+FFFD). */
void obuf_json_str(struct obuf *b, const char *s, size_t n);
/* A JSON number in its shortest round-trip form, or null if not finite.
 * is_float: v came from a float (round-trip to float precision). */
void obuf_json_num(struct obuf *b, double v, int is_float);
/* RFC 3339 UTC timestamp as a JSON string. */
void obuf_json_time(struct obuf *b, int64_t ms);
/* Take the buffer (malloc'd; caller frees) and reset b. */
char *obuf_steal(struct obuf *b, size_t *len);
void obuf_free(struct obuf *b);

/* Append all of stream f, to its end, to b (p is then not NULL, even for an
 * empty stream). Returns 0, or -1 with errno set: the stream's error when
 * reading failed, ENOMEM, EFBIG when b would hold more than b->max bytes (b
 * has failed in these two cases), EINVAL when b had failed before. */
int obuf_read(struct obuf *b, FILE *f);
/* The whole file at path, NUL-terminated (malloc'd; the caller frees it),
 * its length in *len when len is not NULL; or NULL with errno set (as
 * fopen, or as obuf_read with max bytes at the most, 0 = 1 GiB). */
char *obuf_read_file(const char *path, size_t max, size_t *len);

/* Format a message into the error buffer err of errlen bytes (truncated to
 * fit; nothing when err is NULL or errlen is 0). */
void errbuf_printf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Grow the array *p (*cap elements of elem bytes) to hold at least need,
 * doubling from first. Returns 0, or -1 when out of memory or the size would
 * overflow (*p and *cap unchanged). */
int array_grow(void **p, size_t *cap, size_t need, size_t elem, size_t first);


#endif
