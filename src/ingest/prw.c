/* ingest/prw.c — Prometheus remote_write 1.0 decoder.
 *
 *   body ──snappy block──> WriteRequest bytes ──pass 1: check──> pass 2: emit
 *        length header checked              every field read off the wire
 *        against max_uncompressed           where it lies, nothing copied
 *
 * The protobuf is read straight from the uncompressed bytes: only the few
 * fields a WriteRequest has (proto/remote.proto, proto/types.proto) are
 * decoded, every label handed out points into the buffer, and nothing is
 * allocated per series or per label. This replaced protobuf-c's unpacking,
 * which built a message and two strings per label in an arena before the
 * engine saw them (docs/performance.md has the measurement). The wire rules
 * are protobuf-c's, so that a request is accepted or refused as before:
 * a known field with the wrong wire type, a truncated field, a varint longer
 * than 10 bytes (5 for tags and lengths) or a group makes the request
 * invalid; unknown fields are skipped; a scalar field given twice keeps the
 * last value. fuzz/fuzz_prw.c checks the two against each other.
 *
 * Pass 1 reads the whole request (exemplars included, as protobuf-c did)
 * and checks every series; pass 2 hands out metadata, then samples. A
 * payload is accepted or refused whole.
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "ingest/prom_int.h" /* prom_utf8_count: the text parsers' UTF-8 check */
#include "ingest/prw.h"
#include "util/buf.h"

/* ---- protobuf wire format ------------------------------------------------ */

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

/* One field: its number, wire type and value (v for VARINT and I64, the
 * bytes for LEN). */
struct pbf {
	uint32_t num;
	unsigned wt;
	uint64_t v;
	const uint8_t *data;
	size_t len;
};

/* A varint of at most max bytes (protobuf-c: 10 for values, 5 for tags and
 * lengths; bits past 64 are dropped). 0 if unterminated. */
static inline size_t rd_varint(const uint8_t *p, const uint8_t *end, unsigned max, uint64_t *v)
{
	size_t avail = (size_t)(end - p);
	if (avail && p[0] < 0x80) {
		*v = p[0];
		return 1;
	}
	if (avail > max)
		avail = max;
	uint64_t x = 0;
	for (size_t i = 0; i < avail; i++) {
		if (i < 10)
			x |= (uint64_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80)) {
			*v = x;
			return i + 1;
		}
	}
	return 0;
}

/* The next field of the message at [*pp, end): 1 (read, *pp moved past it),
 * 0 (end of the message) or -1 (malformed). */
static inline __attribute__((always_inline)) int pb_next(const uint8_t **pp, const uint8_t *end,
                                                       struct pbf *f)
{
	const uint8_t *p = *pp;
	if (p >= end)
		return 0;
	/* protobuf-c: a first byte without field bits is an invalid tag */
	if ((p[0] & 0xf8) == 0)
		return -1;
	uint64_t tag;
	size_t k = rd_varint(p, end, 5, &tag);
	if (!k)
		return -1;
	p += k;
	f->num = (uint32_t)(tag >> 3);
	f->wt = (unsigned)(tag & 7);
	switch (f->wt) {
	case WT_VARINT:
		k = rd_varint(p, end, 10, &f->v);
		if (!k)
			return -1;
		p += k;
		break;
	case WT_I64:
		if (end - p < 8)
			return -1;
		f->v = 0;
		for (int i = 7; i >= 0; i--)
			f->v = f->v << 8 | p[i];
		p += 8;
		break;
	case WT_LEN: {
		uint64_t n;
		k = rd_varint(p, end, 5, &n);
		if (!k || n > (uint64_t)(end - p - (ptrdiff_t)k))
			return -1;
		f->data = p + k;
		f->len = (size_t)n;
		p += k + n;
		break;
	}
	case WT_I32:
		if (end - p < 4)
			return -1;
		p += 4;
		break;
	default: /* groups (3, 4) and the unused 6, 7 */
		return -1;
	}
	*pp = p;
	return 1;
}

/* Label { bytes name = 1; bytes value = 2; } */
static int pb_label(const uint8_t *p, size_t n, struct label_ref *out)
{
	const uint8_t *end = p + n;
	struct pbf f;
	int rc;
	*out = (struct label_ref){ "", 0, "", 0 };
	while ((rc = pb_next(&p, end, &f)) > 0) {
		if (f.num == 1 || f.num == 2) {
			if (f.wt != WT_LEN)
				return -1;
			if (f.num == 1) {
				out->name = (const char *)f.data;
				out->name_len = f.len;
			} else {
				out->value = (const char *)f.data;
				out->value_len = f.len;
			}
		}
	}
	return rc;
}

/* Sample { double value = 1; int64 timestamp = 2; } */
static int pb_sample(const uint8_t *p, size_t n, double *value, int64_t *ts)
{
	const uint8_t *end = p + n;
	struct pbf f;
	int rc;
	uint64_t bits = 0;
	*ts = 0;
	while ((rc = pb_next(&p, end, &f)) > 0) {
		if (f.num == 1) {
			if (f.wt != WT_I64)
				return -1;
			bits = f.v;
		} else if (f.num == 2) {
			if (f.wt != WT_VARINT)
				return -1;
			*ts = (int64_t)f.v;
		}
	}
	memcpy(value, &bits, sizeof *value);
	return rc;
}

/* Exemplar { repeated Label labels = 1; double value = 2; int64 timestamp = 3; }:
 * ignored, but it must be well formed. */
static int pb_exemplar(const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	struct pbf f;
	struct label_ref l;
	int rc;
	while ((rc = pb_next(&p, end, &f)) > 0) {
		if ((f.num == 1 && (f.wt != WT_LEN || pb_label(f.data, f.len, &l) < 0)) ||
		    (f.num == 2 && f.wt != WT_I64) || (f.num == 3 && f.wt != WT_VARINT))
			return -1;
	}
	return rc;
}

/* MetricMetadata { MetricType type = 1; bytes metric_family_name = 2;
 * string help = 4; string unit = 5; } */
static int pb_meta(const uint8_t *p, size_t n, int32_t *type, struct label_ref *fam)
{
	const uint8_t *end = p + n;
	struct pbf f;
	int rc;
	*type = 0;
	*fam = (struct label_ref){ "", 0, "", 0 };
	while ((rc = pb_next(&p, end, &f)) > 0) {
		if (f.num == 1) {
			if (f.wt != WT_VARINT)
				return -1;
			*type = (int32_t)(uint32_t)f.v;
		} else if (f.num == 2 || f.num == 4 || f.num == 5) {
			if (f.wt != WT_LEN)
				return -1;
			if (f.num == 2)
				*fam = (struct label_ref){ (const char *)f.data, f.len, "", 0 };
		}
	}
	return rc;
}

/* ---- validation --------------------------------------------------------- */

/* The reason into err (util's errbuf_printf); the value is -1 (GNU statement
 * expression, so that it can stand alone as a statement too). */
#define fail(err, errlen, ...) ({ errbuf_printf((err), (errlen), __VA_ARGS__); -1; })

static int ascii(const char *s, size_t n)
{
	uint64_t acc = 0;
	size_t i = 0;
	for (; n - i >= 8; i += 8) { /* eight bytes at a time */
		uint64_t w;
		memcpy(&w, s + i, 8);
		acc |= w;
	}
	for (; i < n; i++)
		acc |= (unsigned char)s[i];
	return !(acc & UINT64_C(0x8080808080808080));
}

/* bit 0: may start a label name ([a-zA-Z_]), bit 1: may follow ([a-zA-Z0-9_]) */
static const uint8_t name_cls[256] = {
	['a' ... 'z'] = 3, ['A' ... 'Z'] = 3, ['_'] = 3, ['0' ... '9'] = 2,
};

static int label_name_ok(const char *s, size_t n)
{
	if (n == 0 || !(name_cls[(unsigned char)s[0]] & 1))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(name_cls[(unsigned char)s[i]] & 2))
			return 0;
	return 1;
}

static int str_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	if (al && bl && a[0] != b[0]) /* names of one series mostly differ at once */
		return (unsigned char)a[0] < (unsigned char)b[0] ? -1 : 1;
	size_t n = al < bl ? al : bl;
	int c = n ? memcmp(a, b, n) : 0;
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static int is_name_label(const char *s, size_t n)
{
	return n == 8 && memcmp(s, "__name__", 8) == 0;
}

#define QS(p, n) (int)((n) > 40 ? 40 : (n)), (p)
#define QN(l) QS((l)->name, (l)->name_len)

/* Check the labels of one series (l[0..n), in wire order). */
static int check_labels(const struct label_ref *l, size_t n, size_t idx,
                        const struct prom_limits *L, char *err, size_t errlen)
{
	int sorted = 1, named = 0;
	if (n == 0)
		return fail(err, errlen, "series without labels (series %zu)", idx);
	for (size_t i = 0; i < n; i++) {
		const struct label_ref *x = &l[i];
		if (x->name_len == 0)
			return fail(err, errlen, "empty label name (series %zu)", idx);
		if (x->name_len > L->max_name_len)
			return fail(err, errlen, "label name too long '%.*s' (limit %zu) (series %zu)",
			            QN(x), L->max_name_len, idx);
		if (!label_name_ok(x->name, x->name_len))
			return fail(err, errlen, "invalid label name '%.*s' (series %zu)", QN(x), idx);
		if (is_name_label(x->name, x->name_len)) {
			if (x->value_len == 0)
				return fail(err, errlen, "empty metric name (series %zu)", idx);
			if (x->value_len > L->max_name_len)
				return fail(err, errlen, "metric name too long '%.*s' (limit %zu) (series %zu)",
				            QS(x->value, x->value_len), L->max_name_len, idx);
			named = 1;
		} else if (x->value_len > L->max_value_len) {
			return fail(err, errlen, "label value too long for '%.*s' (%zu bytes, limit %zu) (series %zu)",
			            QN(x), x->value_len, L->max_value_len, idx);
		}
		if (!ascii(x->value, x->value_len) && prom_utf8_count(x->value, x->value_len) == (size_t)-1)
			return fail(err, errlen, "invalid utf-8 in label value for '%.*s' (series %zu)", QN(x), idx);
		if (i > 0 && str_cmp(l[i - 1].name, l[i - 1].name_len, x->name, x->name_len) >= 0)
			sorted = 0;
	}
	if (!sorted) /* n <= max_labels: quadratic is fine */
		for (size_t i = 1; i < n; i++)
			for (size_t j = 0; j < i; j++)
				if (str_cmp(l[i].name, l[i].name_len, l[j].name, l[j].name_len) == 0)
					return fail(err, errlen, "duplicate label name '%.*s' (series %zu)",
					            QN(&l[i]), idx);
	if (!named)
		return fail(err, errlen, "missing '__name__' label (series %zu)", idx);
	return 0;
}

static enum prom_type meta_type(int32_t t)
{
	/* proto/types.proto MetricMetadata.MetricType */
	static const enum prom_type map[] = { PROM_UNKNOWN, PROM_COUNTER, PROM_GAUGE, PROM_HISTOGRAM,
		                              PROM_GAUGE_HISTOGRAM, PROM_SUMMARY, PROM_INFO,
		                              PROM_STATESET };
	return t >= 0 && t < 8 ? map[t] : PROM_UNKNOWN;
}

/* ---- decode ------------------------------------------------------------- */

/* The snappy block, its varint length header checked against
 * P->max_uncompressed before anything is allocated. Returns the body (the
 * caller frees it) with its length in *ulen, or NULL with err set. */
static char *uncompress_body(const void *body, size_t len, const struct prw_limits *P,
                             size_t *ulen, char *err, size_t errlen)
{
	if (!body || len == 0) {
		fail(err, errlen, "empty body");
		return NULL;
	}
	if (snappy_uncompressed_length(body, len, ulen) != SNAPPY_OK) {
		fail(err, errlen, "invalid snappy block (bad length header)");
		return NULL;
	}
	if (*ulen > P->max_uncompressed) {
		fail(err, errlen, "uncompressed body too large (%zu bytes, limit %zu)", *ulen,
		     P->max_uncompressed);
		return NULL;
	}
	char *raw = malloc(*ulen ? *ulen : 1);
	if (!raw) {
		fail(err, errlen, "out of memory (%zu bytes)", *ulen);
		return NULL;
	}
	size_t got = *ulen;
	if (snappy_uncompress(body, len, raw, &got) != SNAPPY_OK || got != *ulen) {
		fail(err, errlen, "invalid snappy block");
		free(raw);
		return NULL;
	}
	return raw;
}

/* What pass 1 keeps for pass 2: every label (pointing into the body) and
 * every sample of the request, and per series where its own are. All of
 * it is counted in the decoded size (prw.h), which bounds it. */
struct pseries {
	uint32_t ref0, nref;   /* labels: refs[ref0 .. ref0 + nref), __name__ first once checked */
	uint32_t s0, ns;       /* samples: smp[s0 .. s0 + ns) */
};
struct psample {
	double v;
	int64_t ts;
};

struct scan {
	const struct prom_limits *L;
	size_t max_decoded;
	struct label_ref *refs;
	size_t nrefs, caprefs;
	struct pseries *ser;
	size_t nser, capser;
	struct psample *smp;
	size_t nsmp, capsmp;
	size_t metadata;
	size_t decoded;        /* the request's decoded size so far (prw.h, max_decoded) */
	int toobig, oom;
	char serr[256];        /* the first bad series, and the first bad metadata */
	char merr[256];
};

/* Room for one more element of an array (doubling). */
static int room(void **v, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t ncap = *cap ? 2 * *cap : 256;
	void *nv = realloc(*v, ncap * elem);
	if (!nv)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

/* Adds to the decoded size; 0 while within max_decoded. */
static int charge(struct scan *sc, size_t bytes)
{
	sc->decoded = bytes > SIZE_MAX - sc->decoded ? SIZE_MAX : sc->decoded + bytes;
	if (sc->decoded > sc->max_decoded)
		sc->toobig = 1;
	return sc->toobig;
}

/* The usual Label on the wire: name (1) then value (2), short lengths. */
static inline int label_fast(const uint8_t *p, size_t n, struct label_ref *out)
{
	if (n < 4 || p[0] != 0x0a || p[1] >= 0x80)
		return 0;
	size_t nl = p[1];
	if (4 + nl > n || p[2 + nl] != 0x12 || p[3 + nl] >= 0x80 || 4 + nl + p[3 + nl] != n)
		return 0;
	*out = (struct label_ref){ (const char *)p + 2, nl, (const char *)p + 4 + nl, p[3 + nl] };
	return 1;
}

/* The usual Sample: value (1, 8 bytes) then timestamp (2, varint). */
static inline int sample_fast(const uint8_t *p, size_t n, struct psample *out)
{
	if (n < 11 || p[0] != 0x09 || p[9] != 0x10)
		return 0;
	uint64_t ts;
	if (rd_varint(p + 10, p + n, 10, &ts) != n - 10)
		return 0;
	uint64_t bits;
	memcpy(&bits, p + 1, 8);
	bits = le64toh(bits);
	memcpy(&out->v, &bits, 8);
	out->ts = (int64_t)ts;
	return 1;
}

/* Checks the labels of one series (in wire order) and moves __name__ to the
 * front, keeping the others' order. */
static void finish_series(struct scan *sc, struct pseries *ps, size_t idx)
{
	struct label_ref *l = sc->refs + ps->ref0;
	size_t n = ps->nref;
	if (sc->serr[0])
		return;
	if (n > sc->L->max_labels) {
		fail(sc->serr, sizeof sc->serr, "too many labels (%zu, limit %zu) (series %zu)", n,
		     sc->L->max_labels, idx);
		return;
	}
	if (check_labels(l, n, idx, sc->L, sc->serr, sizeof sc->serr) != 0)
		return;
	size_t k = 0;
	while (!is_name_label(l[k].name, l[k].name_len))
		k++;
	struct label_ref name = { "__name__", 8, l[k].value, l[k].value_len };
	if (k)
		memmove(l + 1, l, k * sizeof *l);
	l[0] = name;
}

/* Pass 1, one TimeSeries: read it whole (labels and samples kept, a bad
 * series noted in sc->serr, the first one only). -1 if the protobuf is
 * malformed or the request too large. */
static int scan_series(struct scan *sc, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	struct pbf f;
	struct pseries ps = { (uint32_t)sc->nrefs, 0, (uint32_t)sc->nsmp, 0 };
	int rc;
	if (sc->nrefs > UINT32_MAX - n || sc->nsmp > UINT32_MAX - n || charge(sc, PRW_SAMPLE_COST))
		return -1;
	while ((rc = pb_next(&p, end, &f)) > 0) {
		if (f.num >= 1 && f.num <= 3 && f.wt != WT_LEN)
			return -1;
		if (f.num == 1) {
			if (room((void **)&sc->refs, &sc->caprefs, sc->nrefs, sizeof *sc->refs) < 0)
				return sc->oom = 1, -1;
			struct label_ref *l = &sc->refs[sc->nrefs];
			if (!label_fast(f.data, f.len, l) && pb_label(f.data, f.len, l) < 0)
				return -1;
			sc->nrefs++;
			ps.nref++;
			if (charge(sc, PRW_LABEL_COST + l->name_len + l->value_len))
				return -1;
		} else if (f.num == 2) {
			if (room((void **)&sc->smp, &sc->capsmp, sc->nsmp, sizeof *sc->smp) < 0)
				return sc->oom = 1, -1;
			struct psample *x = &sc->smp[sc->nsmp];
			if (!sample_fast(f.data, f.len, x) && pb_sample(f.data, f.len, &x->v, &x->ts) < 0)
				return -1;
			sc->nsmp++;
			ps.ns++;
			if (charge(sc, PRW_SAMPLE_COST))
				return -1;
		} else if (f.num == 3) {
			if (pb_exemplar(f.data, f.len) < 0)
				return -1;
		}
	}
	if (rc < 0)
		return -1;
	if (room((void **)&sc->ser, &sc->capser, sc->nser, sizeof *sc->ser) < 0)
		return sc->oom = 1, -1;
	sc->ser[sc->nser] = ps;
	finish_series(sc, &sc->ser[sc->nser], sc->nser);
	sc->nser++;
	return 0;
}

/* Pass 1: the whole request. 0, or -1 (malformed, too large, out of memory). */
static int scan_request(struct scan *sc, const uint8_t *p, size_t n)
{
	const uint8_t *end = p + n;
	struct pbf f;
	struct label_ref fam;
	int32_t type;
	int rc;
	while ((rc = pb_next(&p, end, &f)) > 0) {
		if ((f.num == 1 || f.num == 3) && f.wt != WT_LEN)
			return -1;
		if (f.num == 1 && scan_series(sc, f.data, f.len) < 0)
			return -1;
		if (f.num == 3) {
			if (pb_meta(f.data, f.len, &type, &fam) < 0)
				return -1;
			size_t idx = sc->metadata++;
			if (!sc->merr[0] && (fam.name_len == 0 || fam.name_len > sc->L->max_name_len ||
			                     prom_utf8_count(fam.name, fam.name_len) == (size_t)-1))
				fail(sc->merr, sizeof sc->merr,
				     "invalid metadata family name '%.*s' (metadata %zu)", QN(&fam), idx);
		}
	}
	return rc;
}

/* Pass 2: metadata first, as "# TYPE" lines precede samples in text (read
 * off the wire again: they are few); then each series' samples. */
static void emit_request(const struct scan *sc, const uint8_t *p, size_t n,
                         const struct prw_limits *P, prom_sample_fn on_sample,
                         prom_meta_fn on_meta, void *ctx, struct prw_stats *st)
{
	const uint8_t *end = p + n;
	struct pbf f = { 0 };
	for (size_t m = 0; on_meta && m < sc->metadata && pb_next(&p, end, &f) > 0;) {
		if (f.num != 3)
			continue;
		int32_t type;
		struct label_ref fam;
		pb_meta(f.data, f.len, &type, &fam);
		on_meta(ctx, fam.name, fam.name_len, meta_type(type));
		st->metadata++;
		m++;
	}
	for (size_t i = 0; i < sc->nser; i++) {
		const struct pseries *ps = &sc->ser[i];
		const struct label_ref *refs = sc->refs + ps->ref0;
		if (!ps->ns)
			st->ignored++;
		for (size_t j = 0; j < ps->ns; j++) {
			const struct psample *x = &sc->smp[ps->s0 + j];
			if (!P->keep_stale && prom_is_stale(x->v)) {
				st->stale++;
				continue;
			}
			if (on_sample(ctx, refs, ps->nref, x->v, x->ts, 1, 0) != 0)
				st->refused++;
			else
				st->samples++;
		}
	}
}

int prw_decode_ex(const void *body, size_t len, const struct prom_limits *lim,
                  const struct prw_limits *plim, prom_sample_fn on_sample,
                  prom_meta_fn on_meta, void *ctx, struct prw_stats *stats,
                  char *err, size_t errlen)
{
	const struct prom_limits dl = PROM_LIMITS_DEFAULT;
	const struct prw_limits dp = PRW_LIMITS_DEFAULT;
	struct prom_limits L = lim ? *lim : dl;
	struct prw_limits P = plim ? *plim : dp;
	struct prw_stats st = { 0 };
	struct scan sc;
	size_t ulen = 0;
	int rc = -1;

	if (!L.max_labels)
		L.max_labels = dl.max_labels;
	if (!L.max_name_len)
		L.max_name_len = dl.max_name_len;
	if (!L.max_value_len)
		L.max_value_len = dl.max_value_len;
	if (!P.max_uncompressed)
		P.max_uncompressed = dp.max_uncompressed;
	if (!P.max_decoded)
		P.max_decoded = dp.max_decoded;
	memset(&sc, 0, sizeof sc);
	sc.L = &L;
	sc.max_decoded = P.max_decoded;
	if (err && errlen)
		err[0] = '\0';

	char *raw = uncompress_body(body, len, &P, &ulen, err, errlen);
	if (!raw)
		goto out;
	const uint8_t *u = (const uint8_t *)raw;
	/* Room for what a request of this size usually holds (a label per 16
	 * bytes, a series and a sample per 32: Prometheus' requests take about
	 * 20 and 120), so that pass 1 rarely grows (and copies) its arrays;
	 * untouched room is never faulted in. */
	sc.caprefs = ulen / 16 + 16;
	sc.capser = sc.capsmp = ulen / 32 + 16;
	sc.refs = malloc(sc.caprefs * sizeof *sc.refs);
	sc.ser = malloc(sc.capser * sizeof *sc.ser);
	sc.smp = malloc(sc.capsmp * sizeof *sc.smp);
	if (!sc.refs || !sc.ser || !sc.smp) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	if (scan_request(&sc, u, ulen) < 0) {
		if (sc.toobig)
			fail(err, errlen, "write request too large to decode (limit %zu bytes)",
			     P.max_decoded);
		else if (sc.oom)
			fail(err, errlen, "out of memory");
		else
			fail(err, errlen, "invalid protobuf write request");
		goto out;
	}
	st.series = sc.nser;
	if (sc.serr[0] || sc.merr[0]) {
		fail(err, errlen, "%s", sc.serr[0] ? sc.serr : sc.merr);
		goto out;
	}
	emit_request(&sc, u, ulen, &P, on_sample, on_meta, ctx, &st);
	rc = 0;
out:
	free(sc.refs);
	free(sc.ser);
	free(sc.smp);
	free(raw);
	if (stats)
		*stats = st;
	return rc;
}

int prw_decode(const void *body, size_t len, const struct prom_limits *lim,
               prom_sample_fn on_sample, prom_meta_fn on_meta, void *ctx,
               char *err, size_t errlen)
{
	return prw_decode_ex(body, len, lim, NULL, on_sample, on_meta, ctx, NULL, err, errlen);
}
