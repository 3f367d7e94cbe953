/* fuzz_prom.c — fuzz target for the Prometheus text decoder: feeds the input
 * to prom_parse() in both formats (default and tiny limits) and to the strict
 * OpenMetrics validator, checking the callback contract on every sample. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/prom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fz {
	const char *body;
	size_t len;
	size_t samples, errors;
};

static int on_sample(void *ctx, const struct label_ref *l, size_t n, double v, int64_t ts,
                     int has_ts, size_t lineno)
{
	struct fz *f = ctx;
	volatile unsigned char sink = 0;
	assert(n >= 1 && l[0].name_len == 8 && !memcmp(l[0].name, "__name__", 8));
	assert(lineno >= 1);
	assert(has_ts || ts == 0);
	for (size_t i = 0; i < n; i++) {
		/* touch every byte so ASan sees stale pointers */
		for (size_t j = 0; j < l[i].name_len; j++)
			sink ^= (unsigned char)l[i].name[j];
		for (size_t j = 0; j < l[i].value_len; j++)
			sink ^= (unsigned char)l[i].value[j];
	}
	(void)v;
	(void)sink;
	f->samples++;
	return (int)(f->samples % 7 == 0); /* exercise refusals too */
}

static void on_meta(void *ctx, const char *fam, size_t len, enum prom_type t)
{
	struct fz *f = ctx;
	assert(fam >= f->body && fam + len <= f->body + f->len);
	assert((unsigned)t <= PROM_STATESET);
}

static void on_error(void *ctx, size_t lineno, const char *reason)
{
	struct fz *f = ctx;
	assert(reason && reason[0]);
	f->errors++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* copy so reads past the end are caught exactly */
	char *body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	struct fz f = { body, size, 0, 0 };
	struct prom_stats st;
	const struct prom_limits tiny = { 2, 4, 4, 16 };

	size_t bad = prom_parse(body, size, PROM_FORMAT_TEXT, NULL, on_sample, on_meta, on_error, &f, &st);
	assert(bad == st.rejected + st.refused);
	assert(st.samples + st.refused <= st.lines);
	prom_parse(body, size, PROM_FORMAT_OPENMETRICS, NULL, on_sample, on_meta, on_error, &f, NULL);
	prom_parse(body, size, PROM_FORMAT_TEXT, &tiny, on_sample, on_meta, on_error, &f, NULL);

	char err[128];
	size_t line = 0;
	if (!prom_om_validate(body, size, err, sizeof err, &line))
		assert(err[0] && line >= 1);
	free(body);
	return 0;
}
