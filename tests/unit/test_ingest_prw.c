/* test_ingest_prw.c — unit tests of the remote_write decoder
 * (src/ingest/prw.c). Requests are built here with the generated protobuf-c
 * code and snappy, then decoded: samples and label order, metadata, stale
 * markers, malformed snappy, truncated protobuf, oversize lengths, label
 * limits and validation (a bad series refuses the whole request). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <snappy-c.h>

#include "ingest/prw.h"
#include "proto/remote.pb-c.h"

/* ---- building requests -------------------------------------------------- */

#define MAXL 40
#define MAXSMP 8
struct tseries {
	const char *labels[2 * MAXL + 1]; /* name, value, ..., NULL */
	size_t ns;
	double v[MAXSMP];
	int64_t t[MAXSMP];
};

struct meta {
	const char *family;
	int type;
};

static ProtobufCBinaryData bin(const char *s)
{
	return (ProtobufCBinaryData){ strlen(s), (uint8_t *)(uintptr_t)s };
}

/* Packs a WriteRequest (not compressed). Caller frees. */
static uint8_t *pack_request(const struct tseries *ser, size_t nser, const struct meta *md, size_t nmd, size_t *len)
{
	Prometheus__WriteRequest wr = PROMETHEUS__WRITE_REQUEST__INIT;
	Prometheus__TimeSeries ts[8], *tsp[8];
	Prometheus__Label lab[8][MAXL], *labp[8][MAXL];
	Prometheus__Sample smp[8][MAXSMP], *smpp[8][MAXSMP];
	Prometheus__MetricMetadata mm[4], *mmp[4];
	assert_true(nser <= 8 && nmd <= 4);
	for (size_t i = 0; i < nser; i++) {
		prometheus__time_series__init(&ts[i]);
		size_t nl = 0;
		for (; ser[i].labels[2 * nl]; nl++) {
			prometheus__label__init(&lab[i][nl]);
			lab[i][nl].name = bin(ser[i].labels[2 * nl]);
			lab[i][nl].value = bin(ser[i].labels[2 * nl + 1]);
			labp[i][nl] = &lab[i][nl];
		}
		ts[i].n_labels = nl;
		ts[i].labels = labp[i];
		for (size_t j = 0; j < ser[i].ns; j++) {
			prometheus__sample__init(&smp[i][j]);
			smp[i][j].value = ser[i].v[j];
			smp[i][j].timestamp = ser[i].t[j];
			smpp[i][j] = &smp[i][j];
		}
		ts[i].n_samples = ser[i].ns;
		ts[i].samples = smpp[i];
		tsp[i] = &ts[i];
	}
	for (size_t i = 0; i < nmd; i++) {
		prometheus__metric_metadata__init(&mm[i]);
		mm[i].metric_family_name = bin(md[i].family);
		mm[i].type = md[i].type;
		mm[i].help = (char *)"help";
		mmp[i] = &mm[i];
	}
	wr.n_timeseries = nser;
	wr.timeseries = tsp;
	wr.n_metadata = nmd;
	wr.metadata = mmp;
	*len = prometheus__write_request__get_packed_size(&wr);
	uint8_t *buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(prometheus__write_request__pack(&wr, buf), *len);
	return buf;
}

static char *compress(const void *raw, size_t rlen, size_t *clen)
{
	*clen = snappy_max_compressed_length(rlen);
	char *c = malloc(*clen);
	assert_non_null(c);
	assert_int_equal(snappy_compress(raw, rlen, c, clen), SNAPPY_OK);
	return c;
}

static char *build(const struct tseries *ser, size_t nser, const struct meta *md, size_t nmd, size_t *clen)
{
	size_t rlen;
	uint8_t *raw = pack_request(ser, nser, md, nmd, &rlen);
	char *c = compress(raw, rlen, clen);
	free(raw);
	return c;
}

/* ---- a collecting sink ---------------------------------------------------- */

struct got {
	char labels[256];
	double v;
	int64_t ts;
};

struct sink {
	struct got s[32];
	size_t ns;
	char meta[4][64];
	enum prom_type mt[4];
	size_t nmeta;
	int refuse_every;
	size_t calls;
};

static int on_sample(void *ctx, const struct label_ref *l, size_t n, double v, int64_t ts,
                     int has_ts, size_t lineno)
{
	struct sink *k = ctx;
	assert_int_equal(has_ts, 1);
	assert_int_equal(lineno, 0);
	k->calls++;
	if (k->refuse_every && k->calls % k->refuse_every == 0)
		return 1;
	assert_true(k->ns < 32);
	struct got *g = &k->s[k->ns++];
	size_t o = 0;
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(g->labels + o, sizeof g->labels - o, "%s%.*s=%.*s", i ? "," : "",
		                      (int)l[i].name_len, l[i].name, (int)l[i].value_len, l[i].value);
	g->v = v;
	g->ts = ts;
	return 0;
}

static void on_meta(void *ctx, const char *fam, size_t len, enum prom_type t)
{
	struct sink *k = ctx;
	assert_true(k->nmeta < 4);
	snprintf(k->meta[k->nmeta], 64, "%.*s", (int)len, fam);
	k->mt[k->nmeta++] = t;
}

static int decode(struct sink *k, const char *body, size_t len, const struct prom_limits *lim,
                  const struct prw_limits *plim, struct prw_stats *st, char *err)
{
	memset(k, 0, sizeof *k);
	return prw_decode_ex(body, len, lim, plim, on_sample, on_meta, k, st, err, 256);
}

/* ---- tests ---------------------------------------------------------------- */

static void test_basic(void **state)
{
	struct tseries ser[2] = {
		{ { "Zone", "eu", "__name__", "up", "job", "node", NULL }, 2, { 1, 0 }, { 1000, 2000 } },
		{ { "__name__", "http_requests_total", "code", "200", "path", "", NULL }, 1, { 42.5 }, { -5 } },
	};
	struct meta md[2] = { { "up", 2 }, { "http_requests", 1 } };
	size_t clen;
	char *body = build(ser, 2, md, 2, &clen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, body, clen, NULL, NULL, &st, err), 0);
	assert_int_equal(k.ns, 3);
	/* __name__ first, the rest in wire order, empty values kept */
	assert_string_equal(k.s[0].labels, "__name__=up,Zone=eu,job=node");
	assert_true(k.s[0].v == 1 && k.s[0].ts == 1000);
	assert_true(k.s[1].v == 0 && k.s[1].ts == 2000);
	assert_string_equal(k.s[2].labels, "__name__=http_requests_total,code=200,path=");
	assert_true(k.s[2].v == 42.5 && k.s[2].ts == -5);
	assert_int_equal(k.nmeta, 2);
	assert_string_equal(k.meta[0], "up");
	assert_int_equal(k.mt[0], PROM_GAUGE);
	assert_int_equal(k.mt[1], PROM_COUNTER);
	assert_int_equal(st.series, 2);
	assert_int_equal(st.samples, 3);
	assert_int_equal(st.metadata, 2);
	/* huge limits must not overflow any allocation size */
	const struct prom_limits huge = { SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX };
	assert_int_equal(decode(&k, body, clen, &huge, NULL, &st, err), 0);
	assert_int_equal(k.ns, 3);
	/* the plain entry point, NULL on_meta */
	memset(&k, 0, sizeof k);
	assert_int_equal(prw_decode(body, clen, NULL, on_sample, NULL, &k, NULL, 0), 0);
	assert_int_equal(k.ns, 3);
	free(body);
}

static void test_empty_request(void **state)
{
	size_t clen;
	char *body = build(NULL, 0, NULL, 0, &clen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, body, clen, NULL, NULL, &st, err), 0);
	assert_int_equal(k.ns, 0);
	free(body);
}

static void test_stale_markers(void **state)
{
	uint64_t bits = PROM_STALE_NAN_BITS;
	double stale, nan_v = NAN;
	memcpy(&stale, &bits, sizeof stale);
	struct tseries ser[1] = { { { "__name__", "up", NULL }, 3, { 1, stale, nan_v }, { 1, 2, 3 } } };
	size_t clen;
	char *body = build(ser, 1, NULL, 0, &clen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, body, clen, NULL, NULL, &st, err), 0);
	assert_int_equal(k.ns, 2); /* skipped by default; an ordinary NaN passes */
	assert_int_equal(st.stale, 1);
	assert_true(isnan(k.s[1].v) && !prom_is_stale(k.s[1].v));
	struct prw_limits keep = { 0, 0, 1 };
	assert_int_equal(decode(&k, body, clen, NULL, &keep, &st, err), 0);
	assert_int_equal(k.ns, 3);
	assert_int_equal(st.stale, 0);
	assert_true(prom_is_stale(k.s[1].v));
	free(body);
}

static void test_refusals_counted(void **state)
{
	struct tseries ser[1] = { { { "__name__", "up", NULL }, 4, { 1, 2, 3, 4 }, { 1, 2, 3, 4 } } };
	size_t clen;
	char *body = build(ser, 1, NULL, 0, &clen);
	struct sink k;
	struct prw_stats st;
	memset(&k, 0, sizeof k);
	k.refuse_every = 2;
	assert_int_equal(prw_decode_ex(body, clen, NULL, NULL, on_sample, NULL, &k, &st, NULL, 0), 0);
	assert_int_equal(st.samples, 2);
	assert_int_equal(st.refused, 2);
	free(body);
}

static void test_malformed_snappy(void **state)
{
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, "", 0, NULL, NULL, &st, err), -1);
	assert_string_equal(err, "empty body");
	assert_int_equal(decode(&k, NULL, 0, NULL, NULL, &st, err), -1);
	/* an unterminated varint header */
	assert_int_equal(decode(&k, "\xff\xff\xff", 3, NULL, NULL, &st, err), -1);
	assert_string_equal(err, "invalid snappy block (bad length header)");
	/* valid header (5 bytes) but garbage body */
	assert_int_equal(decode(&k, "\x05\xff\xff\xff", 4, NULL, NULL, &st, err), -1);
	assert_string_equal(err, "invalid snappy block");
	/* a real block cut short */
	struct tseries ser[1] = { { { "__name__", "up", NULL }, 1, { 1 }, { 1 } } };
	size_t clen;
	char *body = build(ser, 1, NULL, 0, &clen);
	assert_int_equal(decode(&k, body, clen - 2, NULL, NULL, &st, err), -1);
	assert_string_equal(err, "invalid snappy block");
	/* the framed (stream) format is not accepted */
	assert_int_equal(decode(&k, "\xff\x06\x00\x00sNaPpY", 10, NULL, NULL, &st, err), -1);
	assert_int_equal(k.ns, 0);
	free(body);
}

static void test_truncated_protobuf(void **state)
{
	struct tseries ser[1] = { { { "__name__", "up", "job", "x", NULL }, 2, { 1, 2 }, { 1, 2 } } };
	size_t rlen, clen;
	uint8_t *raw = pack_request(ser, 1, NULL, 0, &rlen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	for (size_t cut = 1; cut < rlen; cut++) {
		char *c = compress(raw, rlen - cut, &clen);
		assert_int_equal(decode(&k, c, clen, NULL, NULL, &st, err), -1);
		assert_string_equal(err, "invalid protobuf write request");
		assert_int_equal(k.ns, 0);
		free(c);
	}
	/* garbage that is not a WriteRequest: field 1 with wire type 7 */
	char *c = compress("\x0f\x00", 2, &clen);
	assert_int_equal(decode(&k, c, clen, NULL, NULL, &st, err), -1);
	free(c);
	free(raw);
}

static void test_oversize(void **state)
{
	struct sink k;
	struct prw_stats st;
	char err[256];
	/* header claims 100 MiB: refused before any allocation or decoding */
	const char hdr[] = { (char)0x80, (char)0x80, (char)0x80, (char)0x32, 0x00 };
	assert_int_equal(decode(&k, hdr, sizeof hdr, NULL, NULL, &st, err), -1);
	assert_string_equal(err, "uncompressed body too large (104857600 bytes, limit 67108864)");
	/* configurable cap */
	struct tseries ser[1] = { { { "__name__", "up", NULL }, 1, { 1 }, { 1 } } };
	size_t rlen, clen;
	uint8_t *raw = pack_request(ser, 1, NULL, 0, &rlen);
	char *body = compress(raw, rlen, &clen);
	struct prw_limits small = { rlen - 1, 0, 0 };
	assert_int_equal(decode(&k, body, clen, NULL, &small, &st, err), -1);
	small.max_uncompressed = rlen;
	assert_int_equal(decode(&k, body, clen, NULL, &small, &st, err), 0);
	/* the protobuf arena cap */
	struct prw_limits tiny_arena = { 0, 64, 0 };
	assert_int_equal(decode(&k, body, clen, NULL, &tiny_arena, &st, err), -1);
	assert_string_equal(err, "write request too large to decode (limit 64 bytes)");
	assert_int_equal(k.ns, 0);
	free(raw);
	free(body);
}

/* One bad series among good ones: -1, the reason, and nothing emitted. */
static void expect_refused(const char *const *bad_labels, const struct prom_limits *lim, const char *want)
{
	struct tseries ser[2] = { { { "__name__", "good", NULL }, 1, { 1 }, { 1 } } };
	memset(&ser[1], 0, sizeof ser[1]);
	for (size_t i = 0; bad_labels[i]; i++)
		ser[1].labels[i] = bad_labels[i];
	ser[1].ns = 1;
	size_t clen;
	char *body = build(ser, 2, NULL, 0, &clen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, body, clen, lim, NULL, &st, err), -1);
	assert_int_equal(k.ns, 0);
	assert_string_equal(err, want);
	free(body);
}

static void test_label_validation(void **state)
{
	const char *const none[] = { NULL };
	const char *const noname[] = { "job", "x", NULL };
	const char *const emptyname[] = { "__name__", "", NULL };
	const char *const emptylabel[] = { "__name__", "a", "", "x", NULL };
	const char *const badname[] = { "__name__", "a", "1x", "x", NULL };
	const char *const dup_sorted[] = { "__name__", "a", "job", "x", "job", "y", NULL };
	const char *const dup_unsorted[] = { "job", "x", "__name__", "a", "job", "y", NULL };
	const char *const dup_name[] = { "__name__", "a", "__name__", "b", NULL };
	const char *const badutf8[] = { "__name__", "a", "v", "\xc3\x28", NULL };
	expect_refused(none, NULL, "series without labels (series 1)");
	expect_refused(noname, NULL, "missing '__name__' label (series 1)");
	expect_refused(emptyname, NULL, "empty metric name (series 1)");
	expect_refused(emptylabel, NULL, "empty label name (series 1)");
	expect_refused(badname, NULL, "invalid label name '1x' (series 1)");
	expect_refused(dup_sorted, NULL, "duplicate label name 'job' (series 1)");
	expect_refused(dup_unsorted, NULL, "duplicate label name 'job' (series 1)");
	expect_refused(dup_name, NULL, "duplicate label name '__name__' (series 1)");
	expect_refused(badutf8, NULL, "invalid utf-8 in label value for 'v' (series 1)");
}

static void test_label_limits(void **state)
{
	const struct prom_limits lim = { 3, 8, 4, 0 };
	const char *const three[] = { "__name__", "a", "b", "1", "c", "2", NULL };
	const char *const four[] = { "__name__", "a", "b", "1", "c", "2", "d", "3", NULL };
	const char *const longname[] = { "__name__", "a", "abcdefghi", "1", NULL };
	const char *const longmetric[] = { "__name__", "abcdefghi", NULL };
	const char *const longvalue[] = { "__name__", "a", "b", "12345", NULL };
	expect_refused(four, &lim, "too many labels (4, limit 3) (series 1)");
	expect_refused(longname, &lim, "label name too long 'abcdefghi' (limit 8) (series 1)");
	expect_refused(longmetric, &lim, "metric name too long 'abcdefghi' (limit 8) (series 1)");
	expect_refused(longvalue, &lim, "label value too long for 'b' (5 bytes, limit 4) (series 1)");
	/* at the limits: accepted */
	struct tseries ser[1] = { { { NULL }, 1, { 1 }, { 1 } } };
	for (size_t i = 0; three[i]; i++)
		ser[0].labels[i] = three[i];
	size_t clen;
	char *body = build(ser, 1, NULL, 0, &clen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, body, clen, &lim, NULL, &st, err), 0);
	assert_int_equal(k.ns, 1);
	free(body);
	/* default: 32 labels including __name__ */
	struct tseries big[1] = { { { "__name__", "a", NULL }, 1, { 1 }, { 1 } } };
	static char names[40][16];
	for (int i = 1; i < 33; i++) {
		snprintf(names[i], sizeof names[i], "l%02d", i);
		big[0].labels[2 * i] = names[i];
		big[0].labels[2 * i + 1] = "v";
	}
	body = build(big, 1, NULL, 0, &clen);
	assert_int_equal(decode(&k, body, clen, NULL, NULL, &st, err), -1);
	assert_string_equal(err, "too many labels (33, limit 32) (series 0)");
	free(body);
}

/* TimeSeries carrying an undeclared field (native histogram, field 4):
 * the series is kept, the field ignored. Encoded by hand. */
static void test_unknown_fields(void **state)
{
	const uint8_t ts[] = {
		0x0a, 0x0e, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x12, 0x02, 'h', 'i', /* label */
		0x22, 0x02, 0x08, 0x01,                                                             /* field 4 */
	};
	uint8_t wr[2 + sizeof ts];
	wr[0] = 0x0a;
	wr[1] = sizeof ts;
	memcpy(wr + 2, ts, sizeof ts);
	size_t clen;
	char *body = compress(wr, sizeof wr, &clen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, body, clen, NULL, NULL, &st, err), 0);
	assert_int_equal(k.ns, 0);
	assert_int_equal(st.series, 1);
	assert_int_equal(st.ignored, 1);
	free(body);
}

static void test_bad_metadata(void **state)
{
	struct tseries ser[1] = { { { "__name__", "up", NULL }, 1, { 1 }, { 1 } } };
	struct meta md[1] = { { "", 1 } };
	size_t clen;
	char *body = build(ser, 1, md, 1, &clen);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode(&k, body, clen, NULL, NULL, &st, err), -1);
	assert_string_equal(err, "invalid metadata family name '' (metadata 0)");
	free(body);
	md[0] = (struct meta){ "up", 99 }; /* unknown enum value -> unknown */
	body = build(ser, 1, md, 1, &clen);
	assert_int_equal(decode(&k, body, clen, NULL, NULL, &st, err), 0);
	assert_int_equal(k.mt[0], PROM_UNKNOWN);
	free(body);
}

/* Wire encodings a protobuf library accepts that the usual sender does not
 * produce, encoded by hand: fields in any order (samples before labels, a
 * Label's value before its name), a scalar given twice (the last counts),
 * multi-byte lengths, an exemplar; and the ones it refuses: a known field
 * with the wrong wire type, a group, a bad exemplar, a varint of 11 bytes. */
static int decode_raw(struct sink *k, const uint8_t *raw, size_t n, struct prw_stats *st, char *err)
{
	size_t clen;
	char *body = compress(raw, n, &clen);
	int rc = decode(k, body, clen, NULL, NULL, st, err);
	free(body);
	return rc;
}

static void test_wire_rules(void **state)
{
	/* WriteRequest { timeseries { samples { timestamp 5, value 2.0, timestamp 7 },
	 *   labels { value "x", name "job" }, exemplars { value 1 },
	 *   labels { name "__name__", value "up" } } } */
	const uint8_t ts[] = {
		0x12, 0x0d, 0x10, 0x05, 0x09, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x10, 0x07, /* sample */
		0x0a, 0x08, 0x12, 0x01, 'x', 0x0a, 0x03, 'j', 'o', 'b',             /* label, value first */
		0x1a, 0x09, 0x11, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,                      /* exemplar */
		0x0a, 0x0e, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_', '_', 0x12, 0x02, 'u', 'p',
	};
	uint8_t wr[3 + sizeof ts];
	wr[0] = 0x0a;
	wr[1] = 0x80 | (sizeof ts & 0x7f); /* a two-byte length, even where one would do */
	wr[2] = (uint8_t)(sizeof ts >> 7);
	memcpy(wr + 3, ts, sizeof ts);
	struct sink k;
	struct prw_stats st;
	char err[256];
	assert_int_equal(decode_raw(&k, wr, sizeof wr, &st, err), 0);
	assert_int_equal(k.ns, 1);
	assert_string_equal(k.s[0].labels, "__name__=up,job=x");
	assert_true(k.s[0].v == 2.0 && k.s[0].ts == 7);

	uint8_t bad[sizeof wr];
	/* the sample's value (field 1) as a varint instead of 8 bytes */
	memcpy(bad, wr, sizeof wr);
	bad[3 + 4] = 0x08;
	assert_int_equal(decode_raw(&k, bad, sizeof bad, &st, err), -1);
	assert_string_equal(err, "invalid protobuf write request");
	/* the exemplar's value as a 4-byte field (wire type 5) */
	memcpy(bad, wr, sizeof wr);
	bad[3 + 27] = 0x15;
	assert_int_equal(decode_raw(&k, bad, sizeof bad, &st, err), -1);
	assert_string_equal(err, "invalid protobuf write request");
	/* a group (wire type 3) in a Label */
	memcpy(bad, wr, sizeof wr);
	bad[3 + 17] = 0x13;
	assert_int_equal(decode_raw(&k, bad, sizeof bad, &st, err), -1);
	assert_string_equal(err, "invalid protobuf write request");
	assert_int_equal(k.ns, 0);
	/* an 11-byte varint timestamp */
	const uint8_t longv[] = { 0x0a, 0x1e, 0x0a, 0x0e, 0x0a, 0x08, '_', '_', 'n', 'a', 'm', 'e', '_',
		                  '_', 0x12, 0x02, 'u', 'p', 0x12, 0x0c, 0x10, 0x80, 0x80, 0x80, 0x80,
		                  0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01 };
	assert_int_equal(decode_raw(&k, longv, sizeof longv, &st, err), -1);
	assert_string_equal(err, "invalid protobuf write request");
	/* the same with a 10-byte one is fine (bits past 64 dropped) */
	uint8_t okv[sizeof longv - 1];
	memcpy(okv, longv, sizeof okv);
	okv[1]--;
	okv[19]--;
	okv[sizeof okv - 1] = 0x01;
	assert_int_equal(decode_raw(&k, okv, sizeof okv, &st, err), 0);
	assert_int_equal(k.ns, 1);
	assert_true(k.s[0].ts == INT64_MIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic),
		cmocka_unit_test(test_empty_request),
		cmocka_unit_test(test_stale_markers),
		cmocka_unit_test(test_refusals_counted),
		cmocka_unit_test(test_malformed_snappy),
		cmocka_unit_test(test_truncated_protobuf),
		cmocka_unit_test(test_oversize),
		cmocka_unit_test(test_label_validation),
		cmocka_unit_test(test_label_limits),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_wire_rules),
		cmocka_unit_test(test_bad_metadata),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
