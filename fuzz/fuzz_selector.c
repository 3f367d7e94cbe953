/* fuzz_selector.c — series selectors (src/util/selector.c) and query-time
 * parameters (src/util/timefmt.c) on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/labels.h"
#include "util/selector.h"
#include "util/timefmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	struct selector sel;
	char err[256];
	if (selector_parse(&sel, s, err, sizeof err) == 0) {
		struct label_ref refs[2] = { { "__name__", 8, "up", 2 }, { "job", 3, s, strlen(s) } };
		struct labels l;
		if (labels_from_refs(&l, refs, 2, NULL, err, sizeof err) == 0) {
			selector_matches(&sel, &l);
			char *k = labels_to_string(&l);
			free(k);
			labels_free(&l);
		}
		selector_free(&sel);
	}
	int64_t ms;
	time_parse_param_ms(s, &ms);
	time_parse_ms(s, size, &ms);
	free(s);
	return 0;
}
