/* util/labels.c — owned, sorted label sets; hashing and canonical text (see labels.h). */
#include "util/labels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int label_name_valid(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
		         (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

int metric_name_valid(const char *s, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
		         (i > 0 && c >= '0' && c <= '9');
		if (!ok)
			return 0;
	}
	return 1;
}

static int ref_cmp_name(const struct label_ref *a, const struct label_ref *b)
{
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, n);
	if (c)
		return c;
	return (a->name_len > b->name_len) - (a->name_len < b->name_len);
}

/* Insertion sort of indices: label sets are small (<= a few dozen). */
static void sort_refs(const struct label_ref *refs, size_t n, size_t *idx)
{
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	for (size_t i = 1; i < n; i++) {
		size_t v = idx[i], j = i;
		while (j > 0 && ref_cmp_name(&refs[idx[j - 1]], &refs[v]) > 0) {
			idx[j] = idx[j - 1];
			j--;
		}
		idx[j] = v;
	}
}

int labels_from_refs(struct labels *out, const struct label_ref *refs, size_t n,
                     const struct label_limits *lim, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (lim && n > lim->max_labels) {
		snprintf(err, errlen, "too many labels (%zu, limit %zu)", n, lim->max_labels);
		return -1;
	}
	size_t idx_small[64];
	size_t *idx = n <= 64 ? idx_small : malloc(n * sizeof *idx);
	if (!idx) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	sort_refs(refs, n, idx);
	size_t bytes = 0, kept = 0;
	for (size_t k = 0; k < n; k++) {
		const struct label_ref *r = &refs[idx[k]];
		int is_name = r->name_len == 8 && !memcmp(r->name, "__name__", 8);
		if (lim && r->name_len > lim->max_name_len) {
			snprintf(err, errlen, "label name '%.*s...' too long (limit %zu)", 32,
			         r->name, lim->max_name_len);
			goto fail;
		}
		if (lim && r->value_len > lim->max_value_len) {
			snprintf(err, errlen, "value of label '%.*s' too long (%zu bytes, limit %zu)",
			         (int)(r->name_len > 64 ? 64 : r->name_len), r->name, r->value_len,
			         lim->max_value_len);
			goto fail;
		}
		if (!is_name && !label_name_valid(r->name, r->name_len)) {
			snprintf(err, errlen, "invalid label name '%.*s'",
			         (int)(r->name_len > 64 ? 64 : r->name_len), r->name);
			goto fail;
		}
		if (k > 0 && ref_cmp_name(&refs[idx[k - 1]], r) == 0) {
			snprintf(err, errlen, "duplicate label name '%.*s'",
			         (int)(r->name_len > 64 ? 64 : r->name_len), r->name);
			goto fail;
		}
		if (r->value_len == 0)
			continue;
		bytes += r->name_len + r->value_len + 2;
		kept++;
	}
	if (lim && lim->max_bytes && bytes > lim->max_bytes + 2 * kept) {
		snprintf(err, errlen, "labels too large (%zu bytes of names and values, limit %zu)",
		         bytes - 2 * kept, lim->max_bytes);
		goto fail;
	}
	out->names = malloc((kept ? kept : 1) * sizeof *out->names);
	out->values = malloc((kept ? kept : 1) * sizeof *out->values);
	out->mem = malloc(bytes ? bytes : 1);
	if (!out->names || !out->values || !out->mem) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	char *p = out->mem;
	for (size_t k = 0; k < n; k++) {
		const struct label_ref *r = &refs[idx[k]];
		if (r->value_len == 0)
			continue;
		memcpy(p, r->name, r->name_len);
		p[r->name_len] = '\0';
		out->names[out->n] = p;
		p += r->name_len + 1;
		memcpy(p, r->value, r->value_len);
		p[r->value_len] = '\0';
		out->values[out->n] = p;
		p += r->value_len + 1;
		out->n++;
	}
	if (idx != idx_small)
		free(idx);
	return 0;
fail:
	if (idx != idx_small)
		free(idx);
	labels_free(out);
	return -1;
}

int labels_copy(struct labels *dst, const struct labels *src)
{
	struct label_ref small[64] = { { 0 } };
	struct label_ref *refs = src->n <= 64 ? small : malloc(src->n * sizeof *refs);
	if (!refs)
		return -1;
	for (size_t i = 0; i < src->n; i++) {
		refs[i].name = src->names[i];
		refs[i].name_len = strlen(src->names[i]);
		refs[i].value = src->values[i];
		refs[i].value_len = strlen(src->values[i]);
	}
	char err[128];
	int rc = labels_from_refs(dst, refs, src->n, NULL, err, sizeof err);
	if (refs != small)
		free(refs);
	return rc;
}

void labels_free(struct labels *l)
{
	if (!l)
		return;
	free(l->names);
	free(l->values);
	free(l->mem);
	memset(l, 0, sizeof *l);
}

const char *labels_get(const struct labels *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->names[i], name) == 0)
			return l->values[i];
	return NULL;
}

const char *labels_metric_name(const struct labels *l)
{
	const char *v = labels_get(l, "__name__");
	return v ? v : "";
}

int labels_equal(const struct labels *a, const struct labels *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->names[i], b->names[i]) || strcmp(a->values[i], b->values[i]))
			return 0;
	return 1;
}

/* The set's hash is the sum of its pairs' hashes, mixed
 * (labels_hash_from_sum): independent of order, so refs need no sorting.
 * Empty values do not count. */
uint64_t labels_hash(const struct labels *l)
{
	uint64_t acc = 0;
	for (size_t i = 0; i < l->n; i++)
		acc += label_pair_hash(l->names[i], strlen(l->names[i]), l->values[i],
		                       strlen(l->values[i]));
	return labels_hash_from_sum(acc);
}

uint64_t labels_hash_refs(const struct label_ref *refs, size_t n)
{
	uint64_t acc = 0;
	for (size_t k = 0; k < n; k++)
		if (refs[k].value_len)
			acc += label_pair_hash(refs[k].name, refs[k].name_len, refs[k].value,
			                       refs[k].value_len);
	return labels_hash_from_sum(acc);
}

/* The canonical text form, written through a bounded cursor: bytes past
 * cap - 1 are counted but not stored. */
struct kput {
	char *buf;
	size_t cap, len;
};

static void kput(struct kput *k, const char *s, size_t n)
{
	if (k->len + 1 < k->cap) {
		size_t room = k->cap - 1 - k->len;
		memcpy(k->buf + k->len, s, n < room ? n : room);
	}
	k->len += n;
}

static void kput_escaped(struct kput *k, const char *s)
{
	for (const char *run = s;; s++) {
		if (*s && *s != '\\' && *s != '"' && *s != '\n')
			continue;
		kput(k, run, (size_t)(s - run));
		if (!*s)
			return;
		kput(k, *s == '\n' ? "\\n" : *s == '"' ? "\\\"" : "\\\\", 2);
		run = s + 1;
	}
}

size_t labels_format(const struct labels *l, char *buf, size_t cap)
{
	struct kput k = { buf, cap, 0 };
	const char *name = labels_metric_name(l);
	kput(&k, name, strlen(name));
	int first = 1;
	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->names[i], "__name__"))
			continue;
		kput(&k, first ? "{" : ",", 1);
		first = 0;
		kput(&k, l->names[i], strlen(l->names[i]));
		kput(&k, "=\"", 2);
		kput_escaped(&k, l->values[i]);
		kput(&k, "\"", 1);
	}
	if (!first)
		kput(&k, "}", 1);
	if (cap)
		buf[k.len < cap ? k.len : cap - 1] = '\0';
	return k.len;
}

char *labels_to_string(const struct labels *l)
{
	size_t len = labels_format(l, NULL, 0);
	char *s = malloc(len + 1);
	if (s)
		labels_format(l, s, len + 1);
	return s;
}
