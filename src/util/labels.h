/* util/labels.h — label sets: the identity of a series.
 *
 * A label set is a list of (name, value) pairs sorted by name, names unique,
 * with the metric name stored as the label "__name__" (Prometheus's model).
 * Parsers hand out borrowed `struct label_ref`s that point into their input
 * buffers; the registry copies what it keeps into an owned `struct labels`.
 * The canonical text form is Prometheus's: name{a="x",b="y"}, with \\, \" and
 * \n escaped in values; it is the series key used by the store and the API.
 */
#ifndef FORESHOCK_LABELS_H
#define FORESHOCK_LABELS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A borrowed label: not NUL-terminated, valid only during the callback that
 * received it. */
struct label_ref {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* An owned, sorted label set. `names[i]`/`values[i]` are NUL-terminated and
 * live in one allocation (`mem`); labels_free() releases everything. */
struct labels {
	size_t n;
	const char **names;
	const char **values;
	char *mem;
};

/* Limits applied to untrusted input. */
struct label_limits {
	size_t max_labels;       /* per series, including __name__ */
	size_t max_name_len;
	size_t max_value_len;
	size_t max_bytes;        /* names + values of one series; 0 = no limit */
};
#define LABEL_LIMITS_DEFAULT { 32, 128, 1024, 4096 }

/* Build an owned, sorted set from refs (any order). Returns 0, or -1 with a
 * reason in err (duplicate label name, empty name, limit exceeded, invalid
 * label name, out of memory). Empty values are dropped, as Prometheus does. */
int labels_from_refs(struct labels *out, const struct label_ref *refs, size_t n,
                     const struct label_limits *lim, char *err, size_t errlen);
int labels_copy(struct labels *dst, const struct labels *src);
void labels_free(struct labels *l);

const char *labels_get(const struct labels *l, const char *name); /* NULL if absent */
const char *labels_metric_name(const struct labels *l);           /* "" if absent */
int labels_equal(const struct labels *a, const struct labels *b);
/* 64-bit hash of the set (the same in every run of a build; kept in memory
 * only, never stored). */
uint64_t labels_hash(const struct labels *l);
/* Hash the same set given as refs (unsorted): equals labels_hash() of the
 * set labels_from_refs() would build. Lets the registry look a series up
 * without allocating. */
uint64_t labels_hash_refs(const struct label_ref *refs, size_t n);
/* The hash of one pair; a set's hash is built from its pairs' (any order).
 * Inline (with its helpers below): staging hashes every label of every
 * sample, and the calls were a third of that work. */
static inline uint64_t label_pair_hash(const char *name, size_t name_len, const char *value,
                                       size_t value_len);
/* The set's hash from the sum of its non-empty pairs' label_pair_hash()
 * (inline, below). */
static inline uint64_t labels_hash_from_sum(uint64_t sum);

/* Canonical text form into a malloc'd string: name{a="x",b="y"}. */
char *labels_to_string(const struct labels *l);
/* The same text written into buf (cap bytes; NUL-terminated, cut short if
 * it does not fit; buf may be NULL when cap is 0). Returns its full length
 * without the NUL, as snprintf does: it fitted when the result < cap. */
size_t labels_format(const struct labels *l, char *buf, size_t cap);
/* Valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*), and metric name
 * (also ':'). */
int label_name_valid(const char *s, size_t len);
int metric_name_valid(const char *s, size_t len);

/* --- the pair hash, inline ----------------------------------------------
 * A string (a label name or value) of n bytes is hashed by two words, the
 * same loads that copy it (label_str_words): its first and its last 8 bytes
 * when 8 <= n <= 16 (overlapping below 16), the first and last 4 when
 * 4 <= n < 8, 2 when 2 <= n < 4, its byte twice when n == 1, zeros when
 * n == 0; above 16 bytes the first word is a fold of the words before the
 * last 8 bytes. A pair is two 64x64->128-bit multiplies, each product
 * folded by xor of its halves (as wyhash does): the name's words (with its
 * length and fixed constants), then the value's, its first word xor'ed with
 * the name's product: about a third of the instructions of the
 * word-at-a-time hash with a splitmix finaliser it replaced, and the copy
 * of the staged labels shares its loads (engine/core.c). The hash lives in
 * memory only (the registry rebuilds it at restore, the shard routing is
 * recomputed from the labels, nothing stores it), so its values may change
 * between versions and between byte orders. */
#define LABELS_FNV_PRIME 0x100000001b3ULL
#define LABELS_K0 0xa0761d6478bd642fULL
#define LABELS_K1 0xe7037ed1a0b428dbULL
#define LABELS_K2 0x589965cc75374cc3ULL

static inline uint64_t labels_hash_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* x * y as 128 bits, its two halves xor'ed. */
static inline uint64_t labels_mum(uint64_t x, uint64_t y)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 r = (unsigned __int128)x * y;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
#else
	uint64_t xl = (uint32_t)x, xh = x >> 32, yl = (uint32_t)y, yh = y >> 32;
	uint64_t ll = xl * yl, lh = xl * yh, hl = xh * yl, hh = xh * yh;
	uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;
	uint64_t lo = (mid << 32) | (uint32_t)ll;
	uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
	return lo ^ hi;
#endif
}

/* The words of a string longer than 16 bytes: *a a fold of its 8-byte
 * words before the last 8 bytes, *b those last 8 bytes. */
static inline void label_long_words(const char *p, size_t n, uint64_t *a, uint64_t *b)
{
	uint64_t h = 0, w;
	for (size_t i = 0; i + 8 < n; i += 8) {
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 29;
	}
	memcpy(&w, p + n - 8, 8);
	*a = h;
	*b = w;
}

/* The hash words of s[0..n) (see above), and, when copy is 1 (a constant:
 * the wrappers below), the string copied to d[0..n) by the same loads.
 * Reads stay within [0, n). */
static inline void label_str_words_(char *d, int copy, const char *s, size_t n, uint64_t *a,
                                    uint64_t *b)
{
	if (n >= 8 && n <= 16) {
		uint64_t x, y;
		memcpy(&x, s, 8);
		memcpy(&y, s + n - 8, 8);
		if (copy) {
			memcpy(d, &x, 8);
			memcpy(d + n - 8, &y, 8);
		}
		*a = x;
		*b = y;
	} else if (n >= 4 && n < 8) {
		uint32_t x, y;
		memcpy(&x, s, 4);
		memcpy(&y, s + n - 4, 4);
		if (copy) {
			memcpy(d, &x, 4);
			memcpy(d + n - 4, &y, 4);
		}
		*a = x;
		*b = y;
	} else if (n >= 2 && n < 4) {
		uint16_t x, y;
		memcpy(&x, s, 2);
		memcpy(&y, s + n - 2, 2);
		if (copy) {
			memcpy(d, &x, 2);
			memcpy(d + n - 2, &y, 2);
		}
		*a = x;
		*b = y;
	} else if (n == 1) {
		if (copy)
			d[0] = s[0];
		*a = *b = (unsigned char)s[0];
	} else if (n > 16) {
		if (copy)
			memcpy(d, s, n);
		label_long_words(s, n, a, b);
	} else {
		*a = *b = 0;
	}
}

/* The hash words of s[0..n). */
static inline void label_str_words(const char *s, size_t n, uint64_t *a, uint64_t *b)
{
	label_str_words_(NULL, 0, s, n, a, b);
}

/* The same, and s[0..n) copied to d (d[n] is not written). */
static inline void label_str_words_copy(char *d, const char *s, size_t n, uint64_t *a,
                                        uint64_t *b)
{
	label_str_words_(d, 1, s, n, a, b);
}

/* The pair hash from its strings' words and lengths. */
static inline uint64_t label_pair_hash_words(uint64_t na, uint64_t nb, size_t nl, uint64_t va,
                                             uint64_t vb, size_t vl)
{
	uint64_t hn = labels_mum(na ^ LABELS_K0, nb ^ LABELS_K1 ^ (uint64_t)nl);
	return labels_mum(va ^ hn, vb ^ LABELS_K2 ^ (uint64_t)vl);
}

static inline uint64_t label_pair_hash(const char *name, size_t name_len, const char *value,
                                       size_t value_len)
{
	uint64_t na, nb, va, vb;
	label_str_words(name, name_len, &na, &nb);
	label_str_words(value, value_len, &va, &vb);
	return label_pair_hash_words(na, nb, name_len, va, vb, value_len);
}

/* The set's hash from the sum of its non-empty pairs' label_pair_hash(). */
static inline uint64_t labels_hash_from_sum(uint64_t sum)
{
	return labels_hash_mix(sum ^ LABELS_FNV_PRIME);
}

#endif
