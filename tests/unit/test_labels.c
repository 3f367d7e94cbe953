/* test_labels.c — unit tests of label sets (sorting, hashing, printing,
 * escaping, limits), the selectors that match them (Prometheus syntax and
 * RE2 regular expressions) and the series registry that maps a label set
 * to its series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/series.h"
#include "util/labels.h"
#include "util/selector.h"

#define REF(n, v) { n, sizeof(n) - 1, v, sizeof(v) - 1 }

/* label_pair_hash by its definition (util/labels.h), byte by byte: each
 * string's two words (first and last 8, 4, 2 or 1 bytes, little-endian; a
 * fold of the leading words above 16 bytes), two 128-bit products (the
 * name's, then the value's with the name's folded into it). The
 * word loads of labels.h give the same value for every length of name and
 * value from 0 to 40 and every alignment, and label_str_words_copy() copies
 * exactly n bytes. */
static uint64_t ref_le(const char *p, size_t k)
{
	uint64_t w = 0;
	for (size_t i = 0; i < k; i++)
		w |= (uint64_t)(unsigned char)p[i] << (8 * i);
	return w;
}

static void ref_words(const char *p, size_t n, uint64_t *a, uint64_t *b)
{
	size_t k = n >= 8 ? 8 : n >= 4 ? 4 : n >= 2 ? 2 : n;
	if (n > 16) {
		uint64_t h = 0;
		for (size_t i = 0; i + 8 < n; i += 8) {
			h = (h ^ ref_le(p + i, 8)) * 0xbf58476d1ce4e5b9ULL;
			h ^= h >> 29;
		}
		*a = h;
	} else {
		*a = ref_le(p, k);
	}
	*b = ref_le(p + n - k, k);
}

/* x * y, 128 bits from four 32-bit products, its halves xor'ed */
static uint64_t ref_mum(uint64_t x, uint64_t y)
{
	uint64_t xl = x & 0xffffffffu, xh = x >> 32, yl = y & 0xffffffffu, yh = y >> 32;
	uint64_t ll = xl * yl, lh = xl * yh, hl = xh * yl, hh = xh * yh;
	uint64_t mid = (ll >> 32) + (lh & 0xffffffffu) + (hl & 0xffffffffu);
	uint64_t lo = (mid << 32) | (ll & 0xffffffffu);
	uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
	return lo ^ hi;
}

static uint64_t ref_pair_hash(const char *name, size_t nl, const char *value, size_t vl)
{
	uint64_t na, nb, va, vb;
	ref_words(name, nl, &na, &nb);
	ref_words(value, vl, &va, &vb);
	uint64_t hn = ref_mum(na ^ 0xa0761d6478bd642fULL, nb ^ 0xe7037ed1a0b428dbULL ^ nl);
	return ref_mum(va ^ hn, vb ^ 0x589965cc75374cc3ULL ^ vl);
}

static void test_label_pair_hash_words(void **st)
{
	(void)st;
	char buf[64];
	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)(0x41 + i * 37 % 191); /* bytes above 0x7f too */
	const int little = *(const unsigned char *)&(uint16_t){ 1 } == 1;
	for (size_t off = 0; off < 8; off++)
		for (size_t nl = 0; nl <= 40; nl++)
			for (size_t vl = 0; vl <= 40; vl += 1 + (nl % 3)) {
				const char *name = buf + off, *value = buf + 16 - off;
				uint64_t h = label_pair_hash(name, nl, value, vl);
				if (little) /* the words are native loads */
					assert_true(h == ref_pair_hash(name, nl, value, vl));
				/* the copy's loads are the hash's words */
				char d[48];
				uint64_t a, b, ca, cb, va, vb;
				label_str_words(name, nl, &a, &b);
				memset(d, 'x', sizeof d);
				label_str_words_copy(d + 1, name, nl, &ca, &cb);
				assert_true(a == ca && b == cb);
				assert_memory_equal(d + 1, name, nl);
				assert_int_equal(d[0], 'x');
				assert_int_equal(d[nl + 1], 'x'); /* nothing past n bytes */
				label_str_words(value, vl, &va, &vb);
				assert_true(label_pair_hash_words(a, b, nl, va, vb, vl) == h);
			}
	/* a changed byte anywhere, or another length, changes the pair's hash */
	for (size_t nl = 1; nl <= 40; nl++) {
		uint64_t h = label_pair_hash(buf, nl, "v", 1);
		assert_true(label_pair_hash(buf, nl - 1, "v", 1) != h);
		for (size_t i = 0; i < nl; i++) {
			char c[40];
			memcpy(c, buf, nl);
			c[i] ^= 0x20;
			assert_true(label_pair_hash(c, nl, "v", 1) != h);
		}
	}
}

/* The label hash spreads a fleet's label sets that differ in one value over
 * the registry's table: 200,000 sets {__name__, dc, host, job} as
 * bench/engine_bench stages them have 200,000 distinct hashes, distinct
 * slot tags (the high 32 bits) but for a handful, and the low 10 bits (a
 * table of 1,024 slots) fill every slot within 40% of the mean (5.6
 * standard deviations of a uniform hash). */
static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void test_labels_hash_spread(void **st)
{
	(void)st;
	enum { N = 200000 };
	uint64_t *h = malloc(N * sizeof *h), *tag = malloc(N * sizeof *tag);
	size_t *cnt = calloc(1024, sizeof *cnt);
	assert_non_null(h);
	assert_non_null(tag);
	assert_non_null(cnt);
	static const char *const dcs[8] = { "dc0", "dc1", "dc2", "dc3", "dc4", "dc5", "dc6", "dc7" };
	for (size_t i = 0; i < N; i++) {
		char host[16];
		snprintf(host, sizeof host, "h%07zu", i);
		struct label_ref r[4] = { REF("__name__", "bench_cpu"), { "dc", 2, dcs[i % 8], 3 },
			                  { "host", 4, host, 8 }, REF("job", "node") };
		h[i] = labels_hash_refs(r, 4);
		tag[i] = h[i] >> 32;
		cnt[h[i] & 1023]++;
	}
	qsort(h, N, sizeof *h, cmp_u64);
	qsort(tag, N, sizeof *tag, cmp_u64);
	size_t same_tag = 0;
	for (size_t i = 1; i < N; i++) {
		assert_true(h[i] != h[i - 1]);
		same_tag += tag[i] == tag[i - 1];
	}
	/* 200,000 random 32-bit tags share one about 4.7 times */
	assert_true(same_tag <= 20);
	for (size_t k = 0; k < 1024; k++)
		assert_true(cnt[k] > N / 1024 * 6 / 10 && cnt[k] < N / 1024 * 14 / 10);
	/* values swapped between two names: other sets, other hashes (a pair
	 * hashes its value with its name's hash, not beside it) */
	for (size_t i = 0; i < 10000; i++) {
		char x[16], y[16];
		snprintf(x, sizeof x, "v%zu", i);
		snprintf(y, sizeof y, "w%zu", i * 7 + 1);
		struct label_ref p[2] = { { "dc", 2, x, strlen(x) }, { "host", 4, y, strlen(y) } };
		struct label_ref q[2] = { { "dc", 2, y, strlen(y) }, { "host", 4, x, strlen(x) } };
		assert_true(labels_hash_refs(p, 2) != labels_hash_refs(q, 2));
	}
	free(h);
	free(tag);
	free(cnt);
}

static void test_labels_sort_hash_string(void **st)
{
	(void)st;
	struct label_ref a[] = { REF("job", "api"), REF("__name__", "up"), REF("instance", "x:1") };
	struct label_ref b[] = { REF("instance", "x:1"), REF("job", "api"), REF("__name__", "up") };
	struct labels la, lb;
	char err[128];
	assert_int_equal(labels_from_refs(&la, a, 3, NULL, err, sizeof err), 0);
	assert_int_equal(labels_from_refs(&lb, b, 3, NULL, err, sizeof err), 0);
	assert_true(labels_equal(&la, &lb));
	assert_true(labels_hash(&la) == labels_hash(&lb));
	assert_true(labels_hash_refs(a, 3) == labels_hash(&la));
	assert_true(labels_hash_refs(b, 3) == labels_hash(&la));
	assert_string_equal(la.names[0], "__name__");
	char *s = labels_to_string(&la);
	assert_string_equal(s, "up{instance=\"x:1\",job=\"api\"}");
	free(s);
	assert_string_equal(labels_metric_name(&la), "up");
	assert_null(labels_get(&la, "nope"));
	labels_free(&la);
	labels_free(&lb);
}

static void test_labels_escape_and_empty(void **st)
{
	(void)st;
	struct label_ref a[] = { REF("__name__", "m"), REF("path", "a\"b\\c\nd"), REF("empty", "") };
	struct labels l;
	char err[128];
	assert_int_equal(labels_from_refs(&l, a, 3, NULL, err, sizeof err), 0);
	assert_int_equal(l.n, 2); /* empty value dropped */
	char *s = labels_to_string(&l);
	assert_string_equal(s, "m{path=\"a\\\"b\\\\c\\nd\"}");
	free(s);
	/* labels_format: the same text, cut short to fit, its full length back */
	size_t full = strlen("m{path=\"a\\\"b\\\\c\\nd\"}");
	char buf[64];
	assert_int_equal(labels_format(&l, NULL, 0), full);
	for (size_t cap = 1; cap <= full + 2; cap++) {
		memset(buf, 'x', sizeof buf);
		assert_int_equal(labels_format(&l, buf, cap), full);
		size_t got = cap - 1 < full ? cap - 1 : full;
		assert_int_equal(strlen(buf), got);
		assert_memory_equal(buf, "m{path=\"a\\\"b\\\\c\\nd\"}", got);
		assert_int_equal(buf[cap], 'x'); /* nothing written past cap bytes */
	}
	assert_true(labels_hash_refs(a, 3) == labels_hash(&l));
	labels_free(&l);
}

static void test_labels_reject(void **st)
{
	(void)st;
	struct labels l;
	char err[128];
	struct label_ref dup[] = { REF("__name__", "m"), REF("a", "1"), REF("a", "2") };
	assert_int_equal(labels_from_refs(&l, dup, 3, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "duplicate label name 'a'"));
	struct label_ref bad[] = { REF("__name__", "m"), REF("1abc", "1") };
	assert_int_equal(labels_from_refs(&l, bad, 2, NULL, err, sizeof err), -1);
	assert_non_null(strstr(err, "invalid label name"));
	struct label_limits lim = { 2, 8, 4, 0 };
	struct label_ref many[] = { REF("__name__", "m"), REF("a", "1"), REF("b", "2") };
	assert_int_equal(labels_from_refs(&l, many, 3, &lim, err, sizeof err), -1);
	assert_non_null(strstr(err, "too many labels"));
	struct label_ref longv[] = { REF("__name__", "m"), REF("a", "12345") };
	assert_int_equal(labels_from_refs(&l, longv, 2, &lim, err, sizeof err), -1);
	assert_non_null(strstr(err, "too long"));
	/* the bytes of the whole set: 31 labels of 1,000 bytes (issue #15) are refused */
	struct label_limits dflt = LABEL_LIMITS_DEFAULT;
	static char big[31][1001];
	static char names[31][8];
	struct label_ref wide[32] = { REF("__name__", "m") };
	for (int i = 0; i < 31; i++) {
		memset(big[i], 'v', 1000);
		snprintf(names[i], sizeof names[i], "l%02d", i);
		wide[i + 1] = (struct label_ref){ names[i], strlen(names[i]), big[i], 1000 };
	}
	assert_int_equal(labels_from_refs(&l, wide, 32, &dflt, err, sizeof err), -1);
	assert_non_null(strstr(err, "labels too large"));
	assert_int_equal(labels_from_refs(&l, wide, 4, &dflt, err, sizeof err), 0); /* 3 KB */
	labels_free(&l);
	assert_true(metric_name_valid("a:b_c1", 6));
	assert_false(metric_name_valid("1a", 2));
	assert_false(label_name_valid("a:b", 3));
}

/* refs[0..n) laid out as a series keeps its labels and staging writes them
 * (name0 NUL value0 NUL ...); returns the length */
static size_t pack_refs(char *out, const struct label_ref *refs, int n)
{
	size_t len = 0;
	for (int k = 0; k < n; k++) {
		memcpy(out + len, refs[k].name, refs[k].name_len);
		len += refs[k].name_len;
		out[len++] = 0;
		memcpy(out + len, refs[k].value, refs[k].value_len);
		len += refs[k].value_len;
		out[len++] = 0;
	}
	return len;
}

static void make_labels(struct labels *l, const char *name, const char *job, const char *code)
{
	struct label_ref r[3] = { { "__name__", 8, name, strlen(name) },
		                  { "job", 3, job, strlen(job) },
		                  { "code", 4, code, strlen(code) } };
	char err[64];
	assert_int_equal(labels_from_refs(l, r, 3, NULL, err, sizeof err), 0);
}

static void test_selector(void **st)
{
	(void)st;
	struct labels l;
	make_labels(&l, "http_requests_total", "api", "500");
	struct selector s;
	char err[256];
	const char *yes[] = { "http_requests_total", "{job=\"api\"}", "http_requests_total{code=~\"5..\"}",
		              "{__name__=~\"http_.*\",job!=\"db\"}", "{code!~\"2..\", job='api'}",
		              "http_requests_total{missing=\"\"}", NULL };
	const char *no[] = { "up", "{job=\"db\"}", "{code=~\"5\"}", "http_requests_total{code!~\"5..\"}",
		             NULL };
	for (int i = 0; yes[i]; i++) {
		assert_int_equal(selector_parse(&s, yes[i], err, sizeof err), 0);
		assert_true(selector_matches(&s, &l));
		selector_free(&s);
	}
	for (int i = 0; no[i]; i++) {
		assert_int_equal(selector_parse(&s, no[i], err, sizeof err), 0);
		assert_false(selector_matches(&s, &l));
		selector_free(&s);
	}
	const char *bad[] = { "", "{}", "{job=\"\"}", "rate(x[5m])", "{job=api}", "{job=~\"(\"}",
		              "x{a=\"b\"", NULL };
	for (int i = 0; bad[i]; i++) {
		assert_int_equal(selector_parse(&s, bad[i], err, sizeof err), -1);
		assert_true(strlen(err) > 0);
	}
	labels_free(&l);
}

/* Prometheus' regular expressions (RE2 syntax, compiled with PCRE2): what
 * POSIX ERE refused now works; PCRE-only syntax is refused; limits hold. */
static void test_selector_regex(void **st)
{
	(void)st;
	struct labels l;
	make_labels(&l, "http_requests_total", "Api-1", "500");
	struct selector s;
	char err[256];
	const char *yes[] = { "{code=~\"\\\\d+\"}", "{job=~\"(?i)api-\\\\d\"}",
		              "{job=~`\\w+-\\d`}", "{job=~\"[[:alpha:]]+.1\"}",
		              "{__name__=~\"http_.*_total\"}", "{job=\"Api-1\",code!~\"\\\\D+\"}",
		              "{job=~\"(?P<n>A)pi.+\"}", "{job=~\"\\\\pL+-1\"}",
		              "{code=~\"5..|4..\"}", "{job=~`\\QApi-1\\E`}", NULL };
	/* fully anchored: a substring does not match; case matters without (?i) */
	const char *no[] = { "{code=~\"0\"}", "{job=~\"api-1\"}", "{code=~\"50\"}",
		             "{code=~\"5|4..\"}", "{code=\"500\",job!~\"(?i)API-1\"}", NULL };
	for (int i = 0; yes[i]; i++) {
		assert_int_equal(selector_parse(&s, yes[i], err, sizeof err), 0);
		assert_true(selector_matches(&s, &l));
		assert_false(selector_limit_hit(&s));
		selector_free(&s);
	}
	for (int i = 0; no[i]; i++) {
		assert_int_equal(selector_parse(&s, no[i], err, sizeof err), 0);
		assert_false(selector_matches(&s, &l));
		selector_free(&s);
	}
	/* not RE2: refused with the construct named */
	const char *bad[] = { "{job=~\"(?=a)a\"}", "{job=~\"(a)\\\\1\"}", "{job=~\"(?>a)\"}",
		              "{job=~\"a*+\"}", "{job=~\"(*UTF)a\"}", "{job=~\"a{2}{3}\"}",
		              "{job=~\"(?x)a\"}", "{job=~\"((a{1,100}){1,100})\"}", NULL };
	for (int i = 0; bad[i]; i++) {
		assert_int_equal(selector_parse(&s, bad[i], err, sizeof err), -1);
		assert_non_null(strstr(err, "invalid"));
	}
	/* '.' matches a newline, '$' only at the very end (Prometheus' (?s:)) */
	struct labels nl;
	struct label_ref r[2] = { { "__name__", 8, "m", 1 }, { "job", 3, "a\nb", 3 } };
	assert_int_equal(labels_from_refs(&nl, r, 2, NULL, err, sizeof err), 0);
	assert_int_equal(selector_parse(&s, "{job=~\"a.b\"}", err, sizeof err), 0);
	assert_true(selector_matches(&s, &nl));
	selector_free(&s);
	assert_int_equal(selector_parse(&s, "{job=~\"a\"}", err, sizeof err), 0);
	assert_false(selector_matches(&s, &nl));
	selector_free(&s);
	labels_free(&nl);
	/* the bomb: 5,000 repeats of .* then x (10 KB) is refused by length */
	size_t n = 5000;
	char *bomb = malloc(2 * n + 64);
	assert_non_null(bomb);
	char *w = bomb + sprintf(bomb, "{__name__=~\"");
	for (size_t i = 0; i < n; i++)
		w += sprintf(w, ".*");
	sprintf(w, "x\"}");
	assert_int_equal(selector_parse(&s, bomb, err, sizeof err), -1);
	assert_non_null(strstr(err, "too long"));
	/* under the length cap, an exponential pattern stops at the match
	 * limit: no match, and the selector says a limit was hit */
	w = bomb + sprintf(bomb, "{job=~\"(a|aa)*(b|c)\"}");
	assert_int_equal(selector_parse(&s, bomb, err, sizeof err), 0);
	char val[64];
	memset(val, 'a', 60);
	val[60] = 0;
	struct labels la;
	struct label_ref ra[2] = { { "__name__", 8, "m", 1 }, { "job", 3, val, 60 } };
	assert_int_equal(labels_from_refs(&la, ra, 2, NULL, err, sizeof err), 0);
	assert_false(selector_matches(&s, &la));
	assert_true(selector_limit_hit(&s));
	selector_free(&s);
	labels_free(&la);
	free(bomb);
	labels_free(&l);
}

static void test_registry(void **st)
{
	(void)st;
	struct series_registry r;
	assert_int_equal(registry_init(&r, 3000, 40, 8, 100), 0);
	assert_int_equal(r.fc_size, 112); /* rounded up to 16 */
	char name[32];
	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof name, "m%d", i);
		struct labels l;
		make_labels(&l, name, "api", "200");
		uint64_t h = labels_hash(&l);
		struct series *s = registry_insert(&r, &l, h);
		assert_non_null(s);
		assert_int_equal(l.n, 0); /* moved */
	}
	assert_int_equal(r.n, 3000);
	/* full: the next insert fails and frees the labels */
	struct labels extra;
	make_labels(&extra, "one_more", "api", "200");
	assert_null(registry_insert(&r, &extra, labels_hash(&extra)));
	for (int i = 0; i < 3000; i += 7) {
		snprintf(name, sizeof name, "m%d", i);
		struct label_ref refs[3] = { { "code", 4, "200", 3 }, { "__name__", 8, name, strlen(name) },
			                     { "job", 3, "api", 3 } };
		struct series *s = registry_find_refs(&r, labels_hash_refs(refs, 3), refs, 3);
		assert_non_null(s);
		assert_string_equal(labels_metric_name(&s->labels), name);
	}
	struct label_ref missing[2] = { { "__name__", 8, "m1", 2 }, { "job", 3, "api", 3 } };
	assert_null(registry_find_refs(&r, labels_hash_refs(missing, 2), missing, 2));
	/* history ring keeps the last cap entries in order, packed losslessly
	 * enough: ms timestamps, float values, score to 1/65535, band to bfloat16 */
	struct series *s = r.v[0];
	for (int i = 0; i < 20; i++) {
		struct hist_point e = { .ts_ms = 1767225600000LL + i * 1500, .value = i * 1.5,
			                .score = i / 19.0, .expected = 10, .lower = 9, .upper = 12.5,
			                .direction = i % 3 - 1, .comp = (unsigned)i % 5 };
		series_hist_push(s, r.hist_cap, &e);
	}
	assert_int_equal(s->hist_len, 8);
	struct hist_point h;
	series_hist_get(s, r.hist_cap, 7, &h);
	assert_true(h.ts_ms == 1767225600000LL + 19 * 1500);
	assert_true(h.value == 19 * 1.5);
	assert_true(fabs(h.score - 1.0) < 1e-4);
	assert_true(fabs(h.lower - 9) < 0.01 && fabs(h.upper - 12.5) < 0.02);
	assert_int_equal(h.direction, 19 % 3 - 1);
	assert_int_equal(h.comp, 19 % 5);
	series_hist_get(s, r.hist_cap, 0, &h);
	assert_true(h.ts_ms == 1767225600000LL + 12 * 1500);
	/* a gap of 30 days rebases the offsets; older points fall off */
	struct hist_point late = { .ts_ms = 1767225600000LL + 30LL * 86400000, .value = 1 };
	series_hist_push(s, r.hist_cap, &late);
	series_hist_get(s, r.hist_cap, s->hist_len - 1, &h);
	assert_true(h.ts_ms == late.ts_ms);
	assert_true(s->hist_len >= 1);
	assert_int_equal(registry_resize_state(&r, 80), 0);
	assert_int_equal(r.state_size, 80);
	/* forecaster pool: zeroed, 16-byte aligned, disjoint states over
	 * several slabs, freed with the registry */
	enum { NFC = 3 * REG_FC_SLAB + 5 };
	static unsigned char *fc[NFC];
	for (int i = 0; i < NFC; i++) {
		fc[i] = registry_fc_alloc(&r);
		assert_non_null(fc[i]);
		assert_int_equal((uintptr_t)fc[i] % 16, 0);
		for (size_t k = 0; k < r.fc_size; k++)
			assert_int_equal(fc[i][k], 0);
		memset(fc[i], i & 0xff, r.fc_size);
	}
	assert_int_equal(r.fc_nslabs, 4);
	for (int i = 0; i < NFC; i++)
		for (size_t k = 0; k < r.fc_size; k++)
			assert_int_equal(fc[i][k], i & 0xff);
	registry_free(&r);
	/* no forecaster size, no pool */
	assert_int_equal(registry_init(&r, 10, 40, 8, 0), 0);
	assert_null(registry_fc_alloc(&r));
	registry_free(&r);
}

/* The lookup's label comparison (after a matching hash): a value or a name
 * that differs in any one byte, at every length from 1 to 40 (the inline
 * compare has cases for < 4, 4-7, 8-16 and longer), is a different series,
 * with the labels in canonical order and in any other order. The stored
 * hash is passed with the changed labels, as a hash collision would. The
 * packed lookups (registry_find_packed in pieces, registry_find_bytes in
 * one) likewise. */
static void test_registry_compare(void **st)
{
	(void)st;
	struct series_registry r;
	assert_int_equal(registry_init(&r, 100, 8, 0, 0), 0);
	char val[41], name[41], alt[41];
	for (size_t len = 1; len <= 40; len++) {
		for (size_t i = 0; i < len; i++) {
			val[i] = (char)('a' + (len + i) % 26);
			name[i] = (char)('k' + (len * 3 + i) % 16);
		}
		val[len] = name[len] = 0;
		struct labels l;
		struct label_ref in[3] = { { "__name__", 8, "m", 1 }, { name, len, val, len },
			                   { "zz", 2, "z", 1 } };
		char err[128];
		assert_int_equal(labels_from_refs(&l, in, 3, NULL, err, sizeof err), 0);
		uint64_t h = labels_hash(&l);
		struct series *s = registry_insert(&r, &l, h);
		assert_non_null(s);
		struct label_ref sorted[3] = { in[0], in[1], in[2] };
		struct label_ref other[3] = { in[2], in[1], in[0] };
		assert_ptr_equal(registry_find_refs(&r, h, sorted, 3), s);
		assert_ptr_equal(registry_find_refs(&r, h, other, 3), s);
		for (size_t i = 0; i < len; i++) {
			memcpy(alt, val, len + 1);
			alt[i] ^= 0x20;
			sorted[1].value = other[1].value = alt;
			assert_null(registry_find_refs(&r, h, sorted, 3));
			assert_null(registry_find_refs(&r, h, other, 3));
			sorted[1].value = other[1].value = val;
			memcpy(alt, name, len + 1);
			alt[i] ^= 0x20;
			sorted[1].name = other[1].name = alt;
			assert_null(registry_find_refs(&r, h, sorted, 3));
			assert_null(registry_find_refs(&r, h, other, 3));
			sorted[1].name = other[1].name = name;
		}
		/* one byte shorter or longer is different too */
		sorted[1].value_len = len - 1;
		if (len > 1)
			assert_null(registry_find_refs(&r, h, sorted, 3));
		sorted[1].value_len = len;
		/* the same set as its bytes laid out as the series keeps them
		 * (name0 NUL value0 NUL ...: staging's layout), whole or in
		 * pieces: found; a byte changed, a different count, a NUL
		 * missing or the labels in another order: not found */
		char packed[160];
		size_t plen = pack_refs(packed, sorted, 3);
		struct label_seg whole = { packed, plen };
		assert_ptr_equal(registry_find_packed(&r, h, 3, &whole, 1), s);
		assert_ptr_equal(registry_find_bytes(&r, h, 3, packed, plen), s);
		struct label_seg parts[3] = { { packed, 9 }, { packed + 9, 2 }, { packed + 11, plen - 11 } };
		assert_ptr_equal(registry_find_packed(&r, h, 3, parts, 3), s);
		assert_null(registry_find_packed(&r, h, 2, &whole, 1));
		assert_null(registry_find_bytes(&r, h, 2, packed, plen));
		assert_null(registry_find_packed(&r, h ^ 1, 3, &whole, 1));
		assert_null(registry_find_bytes(&r, h ^ 1, 3, packed, plen));
		whole.len = plen - 1;
		assert_null(registry_find_packed(&r, h, 3, &whole, 1));
		assert_null(registry_find_bytes(&r, h, 3, packed, plen - 1));
		whole.len = plen;
		for (size_t i = 0; i < plen; i++) {
			packed[i] ^= 0x20;
			assert_null(registry_find_packed(&r, h, 3, &whole, 1));
			assert_null(registry_find_packed(&r, h, 3, parts, 3));
			assert_null(registry_find_bytes(&r, h, 3, packed, plen));
			packed[i] ^= 0x20;
		}
		/* the same bytes in another order: same length, not found */
		assert_int_equal(pack_refs(packed, other, 3), plen);
		assert_null(registry_find_packed(&r, h, 3, &whole, 1));
		assert_null(registry_find_bytes(&r, h, 3, packed, plen));
	}
	registry_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_labels_sort_hash_string),
		cmocka_unit_test(test_label_pair_hash_words),
		cmocka_unit_test(test_labels_hash_spread),
		cmocka_unit_test(test_labels_escape_and_empty),
		cmocka_unit_test(test_labels_reject),
		cmocka_unit_test(test_selector),
		cmocka_unit_test(test_selector_regex),
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_registry_compare),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
