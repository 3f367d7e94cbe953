/* fuzz_prw.c — fuzz target for the remote_write decoder. The first byte picks
 * the mode: even = the input is the HTTP body (snappy block) as sent; odd =
 * the rest is a WriteRequest protobuf, snappy-compressed here so the fuzzer
 * reaches the protobuf and validation code. Caps are kept small. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <snappy-c.h>

#include "ingest/prw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_sample(void *ctx, const struct label_ref *l, size_t n, double v, int64_t ts,
                     int has_ts, size_t lineno)
{
	volatile unsigned char sink = 0;
	assert(n >= 1 && l[0].name_len == 8 && !memcmp(l[0].name, "__name__", 8));
	assert(l[0].value_len > 0 && has_ts == 1 && lineno == 0);
	for (size_t i = 0; i < n; i++) {
		assert(l[i].name_len > 0);
		for (size_t j = 0; j < l[i].name_len; j++)
			sink ^= (unsigned char)l[i].name[j];
		for (size_t j = 0; j < l[i].value_len; j++)
			sink ^= (unsigned char)l[i].value[j];
	}
	(void)v;
	(void)ts;
	(void)sink;
	return 0;
}

static void on_meta(void *ctx, const char *fam, size_t len, enum prom_type t)
{
	assert(len > 0 && fam);
	assert((unsigned)t <= PROM_STATESET);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct prom_limits lim = { 8, 64, 64, 0 };
	const struct prw_limits plim = { 1 << 20, 8 << 20, 0 };
	struct prw_stats st;
	char err[256];
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0) {
		uint8_t *body = malloc(size - 1 ? size - 1 : 1);
		if (!body)
			return 0;
		memcpy(body, data + 1, size - 1);
		if (prw_decode_ex(body, size - 1, &lim, &plim, on_sample, on_meta, NULL, &st, err, sizeof err) != 0)
			assert(err[0]);
		free(body);
		return 0;
	}
	size_t clen = snappy_max_compressed_length(size - 1);
	char *c = malloc(clen);
	if (!c)
		return 0;
	if (snappy_compress((const char *)data + 1, size - 1, c, &clen) == SNAPPY_OK) {
		if (prw_decode_ex(c, clen, &lim, &plim, on_sample, on_meta, NULL, &st, err, sizeof err) != 0)
			assert(err[0]);
		else
			assert(st.samples + st.stale <= (size - 1)); /* each sample costs >= 1 byte */
	}
	free(c);
	return 0;
}
