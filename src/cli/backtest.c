/* cli/backtest.c — `foreshock backtest`: run a detector model over a
 * labelled corpus (NAB layout: DIR/data/<category>/<name>.csv, DIR/windows.json,
 * DIR/profiles.json) exactly as the daemon would, one streaming state per
 * file, and score it the NAB way (nab.h). Or score precomputed result CSVs
 * (--scores). Optionally writes result CSVs and an HTML/SVG report (report.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "detect/detector.h"
#include "cli/nab.h"
#include "cli/report.h"
#include "util/timefmt.h"

/* snprintf into an error buffer (truncation is fine for messages) */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: foreshock backtest --corpus DIR [OPTIONS]\n"
	        "\n"
	        "Run a detector model over every DIR/data/<category>/<name>.csv (columns\n"
	        "timestamp,value), one streaming state per file, and score the anomaly scores\n"
	        "with the Numenta Anomaly Benchmark rules: per profile, the threshold that\n"
	        "maximises the corpus score, and the normalised score (null detector 0,\n"
	        "perfect detector 100).\n"
	        "\n"
	        "options:\n"
	        "  --corpus DIR      corpus root (DIR/data/..., or DIR itself holding <category>/)\n"
	        "  --windows FILE    labelled windows (default DIR/windows.json)\n"
	        "  --profiles FILE   NAB profiles.json (default DIR/profiles.json, else built-in\n"
	        "                    standard, reward_low_FP_rate, reward_low_FN_rate)\n"
	        "  --model FILE      detector model YAML (default: the built-in default model)\n"
	        "  --scores DIR      do not run a model: read DIR/<category>/<name>.csv (or NAB's\n"
	        "                    DIR/<category>/<detector>_<name>.csv) with columns\n"
	        "                    timestamp,value,anomaly_score\n"
	        "  --threshold X     score every profile at X instead of optimising\n"
	        "  --out DIR         write DIR/<category>/<name>.csv (timestamp,value,\n"
	        "                    anomaly_score,label), DIR/<category>/<name>.svg and\n"
	        "                    DIR/index.html\n"
	        "  --quiet           print only the profile scores\n"
	        "  -h, --help        this text\n"
	        "\n"
	        "Exit status: 0 ok, 1 error, 2 usage.\n");
}

static int is_dir(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
	struct stat st;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* mkdir -p */
static int make_dirs(const char *path)
{
	char buf[4096];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(buf, 0777) && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0777) && errno != EEXIST)
		return -1;
	return 0;
}

/* Run the model over every file; fills f->score. Returns CPU seconds. */
static double run_model(const struct model *m, struct nab_corpus *c, size_t *nudged)
{
	size_t sz = model_state_size(m);
	void *state = malloc(sz ? sz : 1);
	if (!state)
		return -1;
	*nudged = 0;
	clock_t t0 = clock();
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		struct nab_file *f = &c->files[fi];
		model_state_init(m, state);
		int64_t last = INT64_MIN;
		for (size_t i = 0; i < f->n; i++) {
			/* The detector wants strictly increasing timestamps; NAB files
			 * repeat a few. Every row is scored, so a repeated timestamp is fed
			 * 1 ms after the previous sample. */
			int64_t ts = f->ts[i];
			if (ts <= last) {
				ts = last + 1;
				(*nudged)++;
			}
			last = ts;
			struct det_result r;
			memset(&r, 0, sizeof r);
			model_update(m, state, ts, f->value[i], &r);
			double s = r.score;
			f->score[i] = isfinite(s) ? (s < 0 ? 0 : s > 1 ? 1 : s) : 0;
		}
	}
	clock_t t1 = clock();
	free(state);
	return (double)(t1 - t0) / CLOCKS_PER_SEC;
}

/* Read precomputed scores for every file. Returns 0 or -1 with err. */
static int load_scores(struct nab_corpus *c, const char *dir, char *err, size_t errlen)
{
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		struct nab_file *f = &c->files[fi];
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", dir, f->name);
		if (!is_file(path)) {
			/* NAB results naming: <category>/<detector>_<name>.csv */
			const char *slash = strrchr(f->name, '/');
			const char *base = slash ? slash + 1 : f->name;
			int catlen = slash ? (int)(slash - f->name) : 0;
			char catdir[4096];
			snprintf(catdir, sizeof catdir, "%s/%.*s", dir, catlen, f->name);
			path[0] = 0;
			/* scan the category directory for *_<base> */
			char suffix[4096];
			snprintf(suffix, sizeof suffix, "_%s", base);
			size_t sl = strlen(suffix);
			DIR *d = opendir(catdir);
			if (d) {
				struct dirent *de;
				while ((de = readdir(d))) {
					size_t nl = strlen(de->d_name);
					if (nl > sl && !strcmp(de->d_name + nl - sl, suffix)) {
						snprintf(path, sizeof path, "%s/%s", catdir, de->d_name);
						break;
					}
				}
				closedir(d);
			}
			if (!path[0]) {
				set_err(err, errlen, "missing scores for '%s' in '%s'", f->name, dir);
				return -1;
			}
		}
		FILE *fp = fopen(path, "rb");
		if (!fp) {
			set_err(err, errlen, "cannot read '%s': %s", path, strerror(errno));
			return -1;
		}
		size_t cap = 1 << 20, n = 0;
		char *text = malloc(cap);
		size_t got;
		while (text && (got = fread(text + n, 1, cap - n - 1, fp)) > 0) {
			n += got;
			if (n + 1 == cap) {
				char *nt = realloc(text, cap * 2);
				if (!nt) {
					free(text);
					text = NULL;
					break;
				}
				text = nt;
				cap *= 2;
			}
		}
		fclose(fp);
		if (!text) {
			set_err(err, errlen, "out of memory reading '%s'", path);
			return -1;
		}
		text[n] = 0;
		int64_t *ts;
		double *val, *sc;
		size_t rows;
		int prc = nab_csv_parse(text, path, &ts, &val, &sc, &rows, err, errlen);
		free(text);
		if (prc)
			return -1;
		int bad = rows != f->n;
		for (size_t i = 0; !bad && i < rows; i++)
			bad = ts[i] != f->ts[i];
		if (!bad)
			for (size_t i = 0; i < rows; i++)
				f->score[i] = sc[i];
		free(ts);
		free(val);
		free(sc);
		if (bad) {
			set_err(err, errlen, "scores '%s' do not match the rows of '%s' (%zu rows, want %zu)",
			         path, f->name, rows, f->n);
			return -1;
		}
	}
	return 0;
}

static void format_ts(int64_t ms, char *buf, size_t len)
{
	/* NAB style "2014-04-01 00:00:00", with ".mmm" only when needed */
	char iso[32];
	time_format_rfc3339(ms, iso, sizeof iso);
	size_t l = strlen(iso);
	if (l >= 24) {
		iso[10] = ' ';
		iso[l - 1] = 0; /* drop Z */
		if (ms % 1000 == 0)
			iso[l - 5] = 0; /* drop .000 */
	}
	snprintf(buf, len, "%s", iso);
}

static int write_results(const char *out, const struct nab_corpus *c, char *err, size_t errlen)
{
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		const struct nab_file *f = &c->files[fi];
		char path[8192];
		snprintf(path, sizeof path, "%s/%s", out, f->name);
		char *slash = strrchr(path, '/');
		*slash = 0;
		if (make_dirs(path)) {
			set_err(err, errlen, "cannot create '%s': %s", path, strerror(errno));
			return -1;
		}
		*slash = '/';
		FILE *fp = fopen(path, "w");
		if (!fp) {
			set_err(err, errlen, "cannot write '%s': %s", path, strerror(errno));
			return -1;
		}
		fprintf(fp, "timestamp,value,anomaly_score,label\n");
		size_t w = 0;
		for (size_t i = 0; i < f->n; i++) {
			while (w < f->nwindows && (f->windows[w].first > f->windows[w].last ||
			                           f->windows[w].last < i))
				w++;
			int label = w < f->nwindows && f->windows[w].first <= i && i <= f->windows[w].last;
			char tb[40];
			format_ts(f->ts[i], tb, sizeof tb);
			fprintf(fp, "%s,%.17g,%.17g,%d\n", tb, f->value[i], f->score[i], label);
		}
		if (fclose(fp)) {
			set_err(err, errlen, "cannot write '%s'", path);
			return -1;
		}
	}
	return 0;
}

int cli_backtest_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "corpus", required_argument, NULL, 'c' },
		{ "windows", required_argument, NULL, 'w' },
		{ "profiles", required_argument, NULL, 'p' },
		{ "model", required_argument, NULL, 'm' },
		{ "scores", required_argument, NULL, 's' },
		{ "threshold", required_argument, NULL, 't' },
		{ "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *corpus = NULL, *windows = NULL, *profiles_path = NULL, *model_path = NULL;
	const char *scores_dir = NULL, *out = NULL;
	double fixed = NAN;
	int quiet = 0;
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': corpus = optarg; break;
		case 'w': windows = optarg; break;
		case 'p': profiles_path = optarg; break;
		case 'm': model_path = optarg; break;
		case 's': scores_dir = optarg; break;
		case 'o': out = optarg; break;
		case 'q': quiet = 1; break;
		case 't': {
			char *e;
			fixed = strtod(optarg, &e);
			if (*e || !isfinite(fixed)) {
				fprintf(stderr, "backtest: invalid threshold '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!corpus || optind != argc) {
		fprintf(stderr, "backtest: %s\n", corpus ? "unexpected argument" : "missing --corpus DIR");
		usage(stderr);
		return 2;
	}
	if (scores_dir && model_path) {
		fprintf(stderr, "backtest: --scores and --model exclude each other\n");
		return 2;
	}

	char data_dir[4096], wpath[4096], ppath[4096], err[512];
	snprintf(data_dir, sizeof data_dir, "%s/data", corpus);
	if (!is_dir(data_dir))
		snprintf(data_dir, sizeof data_dir, "%s", corpus);
	if (!windows) {
		snprintf(wpath, sizeof wpath, "%s/windows.json", corpus);
		windows = wpath;
	}
	if (!is_file(windows)) {
		fprintf(stderr, "backtest: missing windows file '%s'\n", windows);
		return 1;
	}
	struct nab_profile profiles[NAB_MAX_PROFILES];
	size_t nprof = 0;
	if (!profiles_path) {
		snprintf(ppath, sizeof ppath, "%s/profiles.json", corpus);
		if (is_file(ppath))
			profiles_path = ppath;
	}
	if (profiles_path) {
		if (nab_profiles_load(profiles_path, profiles, NAB_MAX_PROFILES, &nprof, err, sizeof err)) {
			fprintf(stderr, "backtest: %s\n", err);
			return 1;
		}
	} else {
		for (nprof = 0; nprof < 3; nprof++)
			profiles[nprof] = nab_default_profiles[nprof];
	}
	/* report order: standard first, as NAB lists it */
	for (size_t k = 1; k < nprof; k++)
		if (!strcmp(profiles[k].name, "standard")) {
			struct nab_profile t = profiles[0];
			profiles[0] = profiles[k];
			profiles[k] = t;
		}

	struct nab_corpus c;
	nab_corpus_init(&c);
	int rc = 1;
	struct model *m = NULL;
	struct nab_result results[NAB_MAX_PROFILES];
	size_t nres = 0;
	char model_label[512];
	double cpu = -1;
	if (nab_corpus_load(&c, data_dir, windows, err, sizeof err)) {
		fprintf(stderr, "backtest: %s\n", err);
		goto done;
	}
	if (scores_dir) {
		if (load_scores(&c, scores_dir, err, sizeof err)) {
			fprintf(stderr, "backtest: %s\n", err);
			goto done;
		}
		snprintf(model_label, sizeof model_label, "scores from %s", scores_dir);
	} else {
		if (model_path) {
			m = model_load_file(model_path, err, sizeof err);
			if (!m) {
				fprintf(stderr, "backtest: %s\n", err);
				goto done;
			}
		} else {
			m = model_builtin_default();
		}
		snprintf(model_label, sizeof model_label, "%s", model_name(m) ? model_name(m) : "?");
		size_t nudged = 0;
		cpu = run_model(m, &c, &nudged);
		if (cpu < 0) {
			fprintf(stderr, "backtest: out of memory\n");
			goto done;
		}
		if (nudged && !quiet)
			printf("note: %zu rows repeat the previous timestamp; fed to the detector 1 ms later\n",
			       nudged);
	}

	size_t rows = 0, windows_n = 0;
	for (size_t fi = 0; fi < c.nfiles; fi++) {
		rows += c.files[fi].n;
		windows_n += c.files[fi].nwindows;
	}
	printf("corpus %s: %zu files, %zu rows, %zu windows; model %s\n", corpus, c.nfiles, rows,
	       windows_n, model_label);
	if (cpu >= 0)
		printf("detector CPU time: %.3f s (%.2f us/row)\n", cpu, rows ? cpu * 1e6 / (double)rows : 0);

	clock_t s0 = clock();
	for (size_t k = 0; k < nprof; k++) {
		double r = isnan(fixed) ? nab_optimize(&c, &profiles[k], NULL, &results[k])
		                        : nab_score(&c, &profiles[k], fixed, &results[k]);
		if (isnan(r)) {
			fprintf(stderr, "backtest: out of memory scoring\n");
			goto done;
		}
		nres++;
	}
	clock_t s1 = clock();

	printf("\n%-20s %8s %12s %10s %8s %8s %11s %8s %8s\n", "profile", "score", "threshold", "raw",
	       "null", "perfect", "windows", "FP rows", "TP rows");
	for (size_t k = 0; k < nres; k++) {
		const struct nab_result *r = &results[k];
		printf("%-20s %8.2f %12.6g %10.3f %8.1f %8.1f %5zu/%-5zu %8zu %8zu\n", r->profile->name,
		       r->normalized, r->threshold, r->raw, r->null_raw, r->perfect, r->counts.windows_hit,
		       r->counts.windows, r->counts.fp, r->counts.tp);
	}
	if (m && isnan(fixed)) {
		/* how the model's own alerting threshold fares */
		const struct model_alerting *al = model_alerting(m);
		if (al) {
			struct nab_result r;
			double s = nab_score(&c, &profiles[0], al->threshold, &r);
			printf("%-20s %8.2f %12.6g %10.3f   (%s at the model's alerting threshold)\n", "",
			       s, al->threshold, r.raw, profiles[0].name);
			nab_result_free(&r);
		}
	}
	printf("scoring time: %.3f s\n", (double)(s1 - s0) / CLOCKS_PER_SEC);

	if (!quiet) {
		const struct nab_result *r = &results[0];
		printf("\nper file (%s, threshold %.6g):\n", r->profile->name, r->threshold);
		printf("%-52s %6s %7s %4s %6s %8s %7s %7s %8s\n", "file", "rows", "windows", "hit",
		       "missed", "det rows", "TP rows", "FP rows", "raw");
		for (size_t fi = 0; fi < c.nfiles; fi++) {
			const struct nab_counts *k = &r->files[fi].counts;
			printf("%-52s %6zu %7zu %4zu %6zu %8zu %7zu %7zu %8.3f\n", c.files[fi].name,
			       c.files[fi].n, k->windows, k->windows_hit, k->windows - k->windows_hit,
			       k->detections, k->tp, k->fp, r->files[fi].raw);
		}
	}

	if (out) {
		if (make_dirs(out)) {
			fprintf(stderr, "backtest: cannot create '%s': %s\n", out, strerror(errno));
			goto done;
		}
		if (write_results(out, &c, err, sizeof err)) {
			fprintf(stderr, "backtest: %s\n", err);
			goto done;
		}
		struct report_info info = {
			.model = model_label, .corpus = corpus, .cpu_seconds = cpu,
			.results = results, .nresults = nres, .primary = 0,
		};
		if (report_write(out, &c, &info, err, sizeof err)) {
			fprintf(stderr, "backtest: %s\n", err);
			goto done;
		}
		printf("\nreport: %s/index.html\n", out);
	}
	rc = 0;
done:
	for (size_t k = 0; k < nres; k++)
		nab_result_free(&results[k]);
	if (m)
		model_free(m); /* model_builtin_default() also returns a fresh model */
	nab_corpus_free(&c);
	return rc;
}
