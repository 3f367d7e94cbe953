/* fuzz_import_json.c — fuzz target for the JSON import decoder
 * (src/ingest/json.c): any bytes in, no crash, no leak, and the counts the
 * decoder returns agree with what the callbacks saw. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingest/json.h"

struct counts {
	size_t samples, errors;
};

static int on_sample(void *ctx, const struct json_sample *s)
{
	struct counts *c = ctx;
	/* touch everything the callback is promised */
	size_t sum = strlen(s->path);
	for (size_t i = 0; i < s->nlabels; i++)
		sum += s->labels[i].name_len + s->labels[i].value_len +
		       (s->labels[i].name_len ? (unsigned char)s->labels[i].name[0] : 0) +
		       (s->labels[i].value_len ? (unsigned char)s->labels[i].value[s->labels[i].value_len - 1] : 0);
	c->samples++;
	/* refuse some samples to exercise that path */
	return (sum + (size_t)s->ts_ms) % 7 == 0;
}

static void on_error(void *ctx, size_t line, const char *reason, size_t nsamples)
{
	struct counts *c = ctx;
	c->errors += strlen(reason) > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct counts c = { 0, 0 };
	struct json_import_stats st;
	struct json_import_limits lim = { .max_labels = 16, .max_errors = 100 };
	json_import_parse((const char *)data, size, &lim, on_sample, on_error, &c, &st);
	if (st.samples + st.refused != c.samples)
		abort();
	if (c.errors > 100 || c.errors > st.errors)
		abort();
	return 0;
}
