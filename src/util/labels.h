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
/* The hash of one pair; a set's hash is built from its pairs' (any order). */
uint64_t label_pair_hash(const char *name, size_t name_len, const char *value, size_t value_len);
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

#endif
