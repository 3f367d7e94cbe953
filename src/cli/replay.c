/* cli/replay.c — `foreshock replay [--model FILE] FILE.csv`: score a CSV
 * series with a detector model, exactly as the daemon would score it.
 *
 * Input: a header `timestamp,value`, then one sample per line; timestamps as
 * "2014-04-01 00:00:00" (UTC, optional fraction/zone, or ISO 'T') or epoch
 * seconds. Output on stdout, one row per input row:
 *   timestamp,value,anomaly_score,expected,lower,upper,direction,component
 * timestamp and value are echoed as written. Samples the daemon would drop
 * (det_admit(): missing or non-finite value, timestamp repeating or before the
 * previous accepted one) are dropped here too, so scores match the daemon's: they get a warning on
 * stderr naming the line and an output row with empty score fields and
 * component "dropped". A malformed line (bad timestamp, non-numeric value,
 * wrong number of fields) is an error: message with the line number, exit 1.
 * Output is flushed every FLUSH_ROWS rows, and after every row when the input
 * is a pipe or terminal, so it can sit in a pipeline.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "detect/detector.h"
#include "util/timefmt.h"

#define FLUSH_ROWS 256

static void replay_usage(FILE *f)
{
	fprintf(f,
	        "usage: foreshock replay [--model FILE] FILE.csv\n"
	        "\n"
	        "Score a series (CSV with header 'timestamp,value'; FILE '-' reads stdin)\n"
	        "with a detector model and print, one row per input row:\n"
	        "  timestamp,value,anomaly_score,expected,lower,upper,direction,component\n"
	        "\n"
	        "options:\n"
	        "  --model FILE   model YAML (default: the built-in default model,\n"
	        "                 the same as models/default.yml)\n"
	        "  -h, --help     this text\n"
	        "\n"
	        "Timestamps: '2014-04-01 00:00:00' (UTC) or epoch seconds. Rows whose\n"
	        "timestamp is not after the previous accepted row, and missing (empty) or\n"
	        "non-finite values, are dropped as the daemon drops them (warning on stderr,\n"
	        "empty score, component 'dropped'; a missing value is a gap). A malformed\n"
	        "row is an error (exit 1).\n");
}

static void chomp(char *s, size_t *len)
{
	while (*len > 0 && (s[*len - 1] == '\n' || s[*len - 1] == '\r'))
		s[--(*len)] = '\0';
}

static void print_num(FILE *out, double v)
{
	if (isnan(v))
		return;
	fprintf(out, "%.9g", v);
}

int cli_replay_main(int argc, char **argv)
{
	const char *model_path = NULL, *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			replay_usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--model")) {
			if (i + 1 >= argc) {
				fprintf(stderr, "foreshock replay: missing value for '--model'\n");
				return 2;
			}
			model_path = argv[++i];
		} else if (!strncmp(argv[i], "--model=", 8)) {
			model_path = argv[i] + 8;
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			fprintf(stderr, "foreshock replay: unknown option '%s'\n", argv[i]);
			replay_usage(stderr);
			return 2;
		} else if (!path) {
			path = argv[i];
		} else {
			fprintf(stderr, "foreshock replay: unexpected argument '%s'\n", argv[i]);
			return 2;
		}
	}
	if (!path) {
		replay_usage(stderr);
		return 2;
	}

	char err[512];
	struct model *m;
	if (model_path) {
		m = model_load_file(model_path, err, sizeof err);
		if (!m) {
			fprintf(stderr, "foreshock replay: %s\n", err);
			return 1;
		}
	} else {
		m = model_builtin_default();
	}
	FILE *in = strcmp(path, "-") ? fopen(path, "r") : stdin;
	if (!in) {
		fprintf(stderr, "foreshock replay: cannot open '%s': %s\n", path, strerror(errno));
		model_free(m);
		return 1;
	}
	struct stat sb;
	int interactive = fstat(fileno(in), &sb) == 0 && !S_ISREG(sb.st_mode);
	void *state = calloc(1, model_state_size(m));
	if (!state) {
		fprintf(stderr, "foreshock replay: out of memory\n");
		if (in != stdin)
			fclose(in);
		model_free(m);
		return 1;
	}
	model_state_init(m, state);

	const char *name = strcmp(path, "-") ? path : "<stdin>";
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	long lineno = 0, rows = 0, ndropped = 0, dropped[DET_DROP__COUNT] = { 0 };
	int rc = 0, have_prev = 0;
	int64_t prev_ts = 0;
	FILE *out = stdout;

	while ((got = getline(&line, &cap, in)) >= 0) {
		size_t len = (size_t)got;
		lineno++;
		chomp(line, &len);
		if (lineno == 1) {
			const char *h = line;
			if (len >= 3 && (unsigned char)h[0] == 0xEF && (unsigned char)h[1] == 0xBB &&
			    (unsigned char)h[2] == 0xBF)
				h += 3; /* UTF-8 BOM */
			if (strcmp(h, "timestamp,value") != 0) {
				fprintf(stderr,
				        "foreshock replay: invalid header '%s' in '%s' (line 1): expected 'timestamp,value'\n",
				        h, name);
				rc = 1;
				break;
			}
			fputs("timestamp,value,anomaly_score,expected,lower,upper,direction,component\n", out);
			continue;
		}
		if (len == 0)
			continue; /* blank line, e.g. at the end */
		char *comma = strchr(line, ',');
		if (!comma || strchr(comma + 1, ',')) {
			fprintf(stderr, "foreshock replay: invalid row '%s' in '%s' (line %ld): expected 'timestamp,value'\n",
			        line, name, lineno);
			rc = 1;
			break;
		}
		int64_t ts;
		if (time_parse_ms(line, (size_t)(comma - line), &ts) < 0) {
			*comma = '\0';
			fprintf(stderr, "foreshock replay: invalid timestamp '%s' in '%s' (line %ld)\n", line,
			        name, lineno);
			rc = 1;
			break;
		}
		const char *vs = comma + 1;
		char *end;
		errno = 0;
		double v = NAN; /* an empty value is a missing sample: a gap */
		if (*vs)
			v = strtod(vs, &end);
		if (*vs && (end == vs || *end || errno == EINVAL)) {
			fprintf(stderr, "foreshock replay: invalid value '%s' in '%s' (line %ld)\n", vs, name,
			        lineno);
			rc = 1;
			break;
		}
		rows++;
		*comma = '\0';
		enum det_drop why = det_admit(have_prev, prev_ts, ts, v);
		if (why != DET_KEEP) {
			static const char *const what[DET_DROP__COUNT] = {
				[DET_DROP_NON_FINITE] = "value missing or not finite",
				[DET_DROP_DUPLICATE] = "timestamp repeats the previous row",
				[DET_DROP_OUT_OF_ORDER] = "timestamp before the previous row",
			};
			fprintf(stderr, "foreshock replay: warning: dropped row in '%s' (line %ld): %s (%s)\n",
			        name, lineno, what[why], det_drop_name(why));
			fprintf(out, "%s,%s,,,,,,dropped\n", line, vs);
			dropped[why]++;
			ndropped++;
		} else {
			struct det_result r;
			model_update(m, state, ts, v, &r);
			have_prev = 1;
			prev_ts = ts;
			fprintf(out, "%s,%s,%.6f,", line, vs, r.score);
			print_num(out, r.expected);
			fputc(',', out);
			print_num(out, r.lower);
			fputc(',', out);
			print_num(out, r.upper);
			fprintf(out, ",%d,%s\n", r.direction, r.component);
		}
		if (interactive || rows % FLUSH_ROWS == 0)
			fflush(out);
	}
	if (rc == 0 && lineno == 0) {
		fprintf(stderr, "foreshock replay: empty input '%s': expected a 'timestamp,value' header\n",
		        name);
		rc = 1;
	}
	if (rc == 0 && ferror(in)) {
		fprintf(stderr, "foreshock replay: read error on '%s'\n", name);
		rc = 1;
	}
	if (fflush(out) != 0 && rc == 0) {
		fprintf(stderr, "foreshock replay: write error: %s\n", strerror(errno));
		rc = 1;
	}
	if (ndropped)
		fprintf(stderr,
		        "foreshock replay: %ld of %ld rows dropped (non_finite %ld, duplicate %ld, out_of_order %ld)\n",
		        ndropped, rows, dropped[DET_DROP_NON_FINITE], dropped[DET_DROP_DUPLICATE],
		        dropped[DET_DROP_OUT_OF_ORDER]);
	free(line);
	free(state);
	if (in != stdin)
		fclose(in);
	model_free(m);
	return rc;
}
