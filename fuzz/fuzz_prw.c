/* fuzz_prw.c — fuzz target for the remote_write decoder. The first byte picks
 * the mode: even = the input is the HTTP body (snappy block) as sent; odd =
 * the rest is a WriteRequest protobuf, snappy-compressed here so the fuzzer
 * reaches the protobuf and validation code. Caps are kept small.
 *
 * Differential check: the decoder reads the protobuf wire format itself;
 * every input that decompresses is also unpacked with protobuf-c (the
 * code generated from proto/remote.proto). The two must agree on whether the
 * protobuf is well formed, and on an accepted request the samples and
 * metadata handed out must be exactly those of protobuf-c's message (the
 * __name__ label first, the others in wire order, stale markers skipped). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "ingest/prw.h"
#include "proto/remote.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A running digest of what was handed out, in order. */
struct digest {
	uint64_t h;
	size_t samples, metas;
};

static void mix(struct digest *d, const void *p, size_t n)
{
	const unsigned char *c = p;
	for (size_t i = 0; i < n; i++)
		d->h = (d->h ^ c[i]) * 0x100000001b3ULL;
	d->h = (d->h ^ n) * 0x100000001b3ULL;
}

static void mix_sample(struct digest *d, const struct label_ref *l, size_t n, double v, int64_t ts)
{
	for (size_t i = 0; i < n; i++) {
		mix(d, l[i].name, l[i].name_len);
		mix(d, l[i].value, l[i].value_len);
	}
	mix(d, &v, sizeof v);
	mix(d, &ts, sizeof ts);
	d->samples++;
}

static int on_sample(void *ctx, const struct label_ref *l, size_t n, double v, int64_t ts,
                     int has_ts, size_t lineno)
{
	assert(n >= 1 && l[0].name_len == 8 && !memcmp(l[0].name, "__name__", 8));
	assert(l[0].value_len > 0 && has_ts == 1 && lineno == 0);
	for (size_t i = 0; i < n; i++)
		assert(l[i].name_len > 0);
	mix_sample(ctx, l, n, v, ts);
	return 0;
}

static void on_meta(void *ctx, const char *fam, size_t len, enum prom_type t)
{
	struct digest *d = ctx;
	assert(len > 0 && fam);
	assert((unsigned)t <= PROM_STATESET);
	mix(d, fam, len);
	mix(d, &t, sizeof t);
	d->metas++;
}

static enum prom_type ref_type(int t)
{
	switch (t) {
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__COUNTER: return PROM_COUNTER;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGE: return PROM_GAUGE;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__HISTOGRAM: return PROM_HISTOGRAM;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__GAUGEHISTOGRAM: return PROM_GAUGE_HISTOGRAM;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__SUMMARY: return PROM_SUMMARY;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__INFO: return PROM_INFO;
	case PROMETHEUS__METRIC_METADATA__METRIC_TYPE__STATESET: return PROM_STATESET;
	default: return PROM_UNKNOWN;
	}
}

/* What the decoder should have handed out for an accepted request, from
 * protobuf-c's message. */
static void reference(const Prometheus__WriteRequest *wr, struct digest *d)
{
	for (size_t i = 0; i < wr->n_metadata; i++) {
		const ProtobufCBinaryData *f = &wr->metadata[i]->metric_family_name;
		enum prom_type t = ref_type(wr->metadata[i]->type);
		mix(d, f->data, f->len);
		mix(d, &t, sizeof t);
		d->metas++;
	}
	for (size_t i = 0; i < wr->n_timeseries; i++) {
		const Prometheus__TimeSeries *ts = wr->timeseries[i];
		struct label_ref refs[8];
		size_t n = 1;
		assert(ts->n_labels <= 8);
		for (size_t j = 0; j < ts->n_labels; j++) {
			const Prometheus__Label *l = ts->labels[j];
			struct label_ref r = { (const char *)l->name.data, l->name.len,
				               (const char *)l->value.data, l->value.len };
			if (r.name_len == 8 && !memcmp(r.name, "__name__", 8))
				refs[0] = r;
			else
				refs[n++] = r;
		}
		for (size_t j = 0; j < ts->n_samples; j++)
			if (!prom_is_stale(ts->samples[j]->value))
				mix_sample(d, refs, n, ts->samples[j]->value, ts->samples[j]->timestamp);
	}
}

/* Decode the body; when it decompresses, compare with protobuf-c. */
static void check(const char *body, size_t blen)
{
	const struct prom_limits lim = { 8, 64, 64, 0 };
	const struct prw_limits plim = { 1 << 20, 8 << 20, 0 };
	struct prw_stats st;
	struct digest got = { 0xcbf29ce484222325ULL, 0, 0 };
	char err[256];
	int rc = prw_decode_ex(body, blen, &lim, &plim, on_sample, on_meta, &got, &st, err, sizeof err);
	if (rc != 0) {
		assert(err[0] && got.samples == 0 && got.metas == 0);
		if (strncmp(err, "invalid snappy", 14) == 0 || strstr(err, "too large") ||
		    strcmp(err, "empty body") == 0)
			return;
	}
	size_t ulen;
	if (snappy_uncompressed_length(body, blen, &ulen) != SNAPPY_OK)
		return;
	char *raw = malloc(ulen ? ulen : 1);
	if (!raw)
		return;
	if (snappy_uncompress(body, blen, raw, &ulen) == SNAPPY_OK) {
		Prometheus__WriteRequest *wr =
			prometheus__write_request__unpack(NULL, ulen, (const uint8_t *)raw);
		int invalid = rc != 0 && strcmp(err, "invalid protobuf write request") == 0;
		assert(invalid == (wr == NULL));
		if (rc == 0) {
			struct digest want = { 0xcbf29ce484222325ULL, 0, 0 };
			reference(wr, &want);
			assert(want.h == got.h && want.samples == got.samples && want.metas == got.metas);
			assert(st.series == wr->n_timeseries && st.samples == got.samples);
		}
		if (wr)
			prometheus__write_request__free_unpacked(wr, NULL);
	}
	free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		char *body = malloc(size - 1 ? size - 1 : 1);
		if (!body)
			return 0;
		memcpy(body, data + 1, size - 1);
		check(body, size - 1);
		free(body);
		return 0;
	}
	size_t clen = snappy_max_compressed_length(size - 1);
	char *c = malloc(clen);
	if (!c)
		return 0;
	if (snappy_compress((const char *)data + 1, size - 1, c, &clen) == SNAPPY_OK)
		check(c, clen);
	free(c);
	return 0;
}
