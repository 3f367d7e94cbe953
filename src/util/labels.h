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
 * Inline (with its two helpers below): staging hashes every label of every
 * sample, and the calls were a third of that work. */
static inline uint64_t label_pair_hash(const char *name, size_t name_len, const char *value,
                                       size_t value_len);
/* The set's hash from the sum of its non-empty pairs' label_pair_hash(). */
uint64_t labels_hash_from_sum(uint64_t sum);

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
 * A word at a time, then a 64-bit finaliser (splitmix) so open addressing
 * sees well-mixed bits: label strings are short, and this runs for every
 * sample (FNV's byte-at-a-time multiply chain was ~5% of the ingest
 * profile). The hash lives in memory only (the registry rebuilds it at
 * restore), so its values may change between versions. */
#define LABELS_FNV_OFF 0xcbf29ce484222325ULL
#define LABELS_FNV_PRIME 0x100000001b3ULL

static inline uint64_t labels_hash_mix(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t labels_bytes_hash(uint64_t h, const char *p, size_t n)
{
	h ^= (uint64_t)n * 0x9e3779b97f4a7c15ULL;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 29;
		p += 8;
		n -= 8;
	}
	/* the last n < 8 bytes as a little-endian word: byte i at bits 8i */
	uint64_t t = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	/* two overlapping loads from each end (the bytes both hold are the
	 * same, so OR keeps them): the loop's value, without a step per byte */
	if (n >= 4) {
		uint32_t lo, hi;
		memcpy(&lo, p, 4);
		memcpy(&hi, p + n - 4, 4);
		t = (uint64_t)lo | (uint64_t)hi << (8 * (n - 4));
	} else if (n >= 2) {
		uint16_t lo, hi;
		memcpy(&lo, p, 2);
		memcpy(&hi, p + n - 2, 2);
		t = (uint64_t)lo | (uint64_t)hi << (8 * (n - 2));
	} else if (n == 1) {
		t = (unsigned char)p[0];
	}
#else
	for (size_t i = 0; i < n; i++)
		t |= (uint64_t)(unsigned char)p[i] << (8 * i);
#endif
	h = (h ^ t) * 0x94d049bb133111ebULL;
	return h ^ (h >> 32);
}

static inline uint64_t label_pair_hash(const char *name, size_t name_len, const char *value,
                                       size_t value_len)
{
	return labels_hash_mix(labels_bytes_hash(labels_bytes_hash(LABELS_FNV_OFF, name, name_len),
	                                         value, value_len));
}

#endif
