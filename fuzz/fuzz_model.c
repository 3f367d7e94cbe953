/* fuzz_model.c — the YAML tree loader (src/util/yaml_tree.c) and the detector
 * model loader (src/detect/model_parse.c) on arbitrary bytes: every accepted model must
 * also run. */
#include <stdint.h>
#include <stdlib.h>

#include "detect/detector.h"
#include "util/yaml_tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[512];
	struct ynode *t = ytree_load_string((const char *)data, size, "fuzz.yml", err, sizeof err);
	ytree_free(t);
	struct model *m = model_load_string((const char *)data, size, "fuzz.yml", err, sizeof err);
	if (!m)
		return 0;
	void *st = calloc(1, model_state_size(m));
	if (st) {
		model_state_init(m, st);
		struct det_result r;
		for (int i = 0; i < 64; i++)
			model_update(m, st, 1000 + i * 1000LL, (double)(i % 7), &r);
		free(st);
	}
	model_free(m);
	return 0;
}
