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
#include "util/buf.h"
#include "util/timefmt.h"

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: foreshock backtest --corpus DIR [--corpus DIR...] [OPTIONS]\n"
	        "\n"
	        "Run a detector model over every DIR/data/<category>/<name>.csv (columns\n"
	        "timestamp,value), one streaming state per file, and score the anomaly scores\n"
	        "with the Numenta Anomaly Benchmark rules: per corpus and profile, the\n"
	        "threshold that maximises the corpus score, and the normalised score (null\n"
	        "detector 0, perfect detector 100). Rows the daemon would drop (missing value,\n"
	        "repeated or backward timestamp) are not fed to the model and score 0.\n"
	        "\n"
	        "options:\n"
	        "  --corpus DIR      corpus root (DIR/data/..., or DIR itself holding <category>/);\n"
	        "                    repeat for several corpora\n"
	        "  --cv K            also K-fold cross-validation by file over all corpora\n"
	        "                    together: per fold, the threshold (and the --model among\n"
	        "                    several) chosen on the other folds; prints out-of-fold\n"
	        "                    scores per corpus and profile next to the in-sample ones\n"
	        "  --cv-pooled       choose on the pooled raw score of the training files\n"
	        "                    (default: each corpus counts equally)\n"
	        "  --cv-seed N       fold seed: with N > 0 the fold of a file is FNV-1a of\n"
	        "                    'N:<category>/<name>.csv' (default 0: of the name alone)\n"
	        "  --windows FILE    labelled windows (default DIR/windows.json; one corpus)\n"
	        "  --profiles FILE   NAB profiles.json (default: the first DIR/profiles.json, else\n"
	        "                    built-in standard, reward_low_FP_rate, reward_low_FN_rate)\n"
	        "  --model FILE      detector model YAML (default: the built-in default model);\n"
	        "                    with --cv, repeat for candidate models\n"
	        "  --scores DIR      do not run a model: read DIR/<category>/<name>.csv (or NAB's\n"
	        "                    DIR/<category>/<detector>_<name>.csv) with columns\n"
	        "                    timestamp,value,anomaly_score\n"
	        "  --threshold X     score every profile at X instead of optimising\n"
	        "  --out DIR         write DIR/<category>/<name>.csv (timestamp,value,\n"
	        "                    anomaly_score,label), DIR/<category>/<name>.svg and\n"
	        "                    DIR/index.html (DIR/<corpus>/... with several corpora)\n"
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

/* Run the model over every file; fills f->score. Rows the daemon would drop
 * (det_admit: missing value, repeated or backward timestamp) are not fed to
 * the model and score 0; dropped[] counts them by reason. Returns CPU
 * seconds, -1 when out of memory. */
static double run_model(const struct model *m, struct nab_corpus *c,
                        size_t dropped[DET_DROP__COUNT])
{
	size_t sz = model_state_size(m);
	void *state = malloc(sz ? sz : 1);
	if (!state)
		return -1;
	clock_t t0 = clock();
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		struct nab_file *f = &c->files[fi];
		model_state_init(m, state);
		int have = 0;
		int64_t last = 0;
		for (size_t i = 0; i < f->n; i++) {
			enum det_drop why = det_admit(have, last, f->ts[i], f->value[i]);
			if (why != DET_KEEP) {
				dropped[why]++;
				f->score[i] = 0;
				continue;
			}
			have = 1;
			last = f->ts[i];
			struct det_result r;
			memset(&r, 0, sizeof r);
			model_update(m, state, f->ts[i], f->value[i], &r);
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
				errbuf_printf(err, errlen, "missing scores for '%s' in '%s'", f->name, dir);
				return -1;
			}
		}
		char *text = obuf_read_file(path, 0, NULL);
		if (!text) {
			errbuf_printf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
			return -1;
		}
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
			errbuf_printf(err, errlen, "scores '%s' do not match the rows of '%s' (%zu rows, want %zu)",
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
			errbuf_printf(err, errlen, "cannot create '%s': %s", path, strerror(errno));
			return -1;
		}
		*slash = '/';
		FILE *fp = fopen(path, "w");
		if (!fp) {
			errbuf_printf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
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
			if (isnan(f->value[i]))
				fprintf(fp, "%s,,%.17g,%d\n", tb, f->score[i], label);
			else
				fprintf(fp, "%s,%.17g,%.17g,%d\n", tb, f->value[i], f->score[i], label);
		}
		if (fclose(fp)) {
			errbuf_printf(err, errlen, "cannot write '%s'", path);
			return -1;
		}
	}
	return 0;
}

#define MAX_CORPORA 8
#define MAX_MODELS 8

struct bt_corpus {
	const char *path;
	char label[64];             /* basename of the path, for the tables */
	struct nab_corpus c;
	size_t rows, windows;
	double *saved[MAX_MODELS];  /* each model's scores, all rows of all files in order */
	double cpu;                 /* detector CPU seconds, all models */
	size_t dropped[DET_DROP__COUNT]; /* rows not fed to the (first) model */
	struct nab_result in[NAB_MAX_PROFILES]; /* in-sample, first model */
	size_t nin;
};

/* Copy model k's saved scores into the files' score arrays. */
static void use_model(struct bt_corpus *bc, size_t k)
{
	size_t off = 0;
	for (size_t fi = 0; fi < bc->c.nfiles; fi++) {
		struct nab_file *f = &bc->c.files[fi];
		memcpy(f->score, bc->saved[k] + off, f->n * sizeof *f->score);
		off += f->n;
	}
}

static int save_model(struct bt_corpus *bc, size_t k)
{
	bc->saved[k] = malloc((bc->rows ? bc->rows : 1) * sizeof(double));
	if (!bc->saved[k])
		return -1;
	size_t off = 0;
	for (size_t fi = 0; fi < bc->c.nfiles; fi++) {
		const struct nab_file *f = &bc->c.files[fi];
		memcpy(bc->saved[k] + off, f->score, f->n * sizeof *f->score);
		off += f->n;
	}
	return 0;
}

/* The cross-validation fold of a file: FNV-1a (64 bit) of its name
 * "<category>/<name>.csv" modulo the number of folds; with a seed other than
 * 0, of "<seed>:<category>/<name>.csv". Fixed, independent of the corpus path
 * and of the other files. */
static unsigned cv_fold(const char *name, unsigned folds, unsigned seed)
{
	uint64_t h = 14695981039346656037ull;
	char pre[16] = "";
	if (seed)
		snprintf(pre, sizeof pre, "%u:", seed);
	for (const unsigned char *p = (const unsigned char *)pre; *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		h ^= *p;
		h *= 1099511628211ull;
	}
	return (unsigned)(h % folds);
}

/* A view of some files of several corpora (shallow copies: the arrays are
 * shared with the corpora; free only view->files). test: fold == k, else
 * fold != k; corpus < 0: all corpora. */
static int cv_view(struct bt_corpus *bcs, size_t nbc, int corpus, unsigned folds, unsigned seed,
                   unsigned k, int test, struct nab_corpus *view)
{
	nab_corpus_init(view);
	size_t n = 0;
	for (size_t ci = 0; ci < nbc; ci++)
		n += bcs[ci].c.nfiles;
	view->files = malloc((n ? n : 1) * sizeof *view->files);
	if (!view->files)
		return -1;
	for (size_t ci = 0; ci < nbc; ci++) {
		if (corpus >= 0 && (size_t)corpus != ci)
			continue;
		for (size_t fi = 0; fi < bcs[ci].c.nfiles; fi++) {
			const struct nab_file *f = &bcs[ci].c.files[fi];
			if ((cv_fold(f->name, folds, seed) == k) == (test != 0))
				view->files[view->nfiles++] = *f;
		}
	}
	view->cap = n;
	return 0;
}

/* Out-of-fold results of one profile for one corpus. */
struct cv_score {
	double raw, null_raw, perfect;
	struct nab_counts counts;
};

static void print_counts_header(void)
{
	printf("\n%-20s %8s %12s %10s %8s %8s %11s %8s %8s\n", "profile", "score", "threshold", "raw",
	       "null", "perfect", "windows", "FP rows", "TP rows");
}

static void print_result(const struct nab_result *r)
{
	printf("%-20s %8.2f %12.6g %10.3f %8.1f %8.1f %5zu/%-5zu %8zu %8zu\n", r->profile->name,
	       r->normalized, r->threshold, r->raw, r->null_raw, r->perfect, r->counts.windows_hit,
	       r->counts.windows, r->counts.fp, r->counts.tp);
}

/* k-fold cross-validation by file over every corpus together: for each fold
 * and profile, the model (among the candidates) and the threshold that give
 * the best score on the other folds are chosen, and the fold's files are
 * scored with them. The training score is the sum over the corpora of their
 * training files' normalised NAB scores (each corpus counts equally), or with
 * cv_pooled the raw score of all training files pooled (as NAB pools its
 * categories). Prints the choices per fold and the out-of-fold score per
 * corpus and profile next to the in-sample one (insample[ci][p]). Returns 0
 * or -1. */
static int cross_validate(struct bt_corpus *bcs, size_t nbc, struct model **models, size_t nm,
                          const struct nab_profile *profiles, size_t nprof, unsigned folds,
                          unsigned seed, int cv_pooled, double insample[MAX_CORPORA][NAB_MAX_PROFILES])
{
	struct cv_score (*acc)[NAB_MAX_PROFILES] = calloc(nbc, sizeof *acc);
	if (!acc)
		return -1;
	int rc = -1;
	char seedtxt[16] = "";
	if (seed)
		snprintf(seedtxt, sizeof seedtxt, "%u:", seed);
	printf("\ncross-validation: %u folds by file over %zu corpora (fold = FNV-1a of "
	       "'%s<category>/<name>.csv' mod %u);\n"
	       "per fold, %s threshold chosen on the other folds' files (%s)\n",
	       folds, nbc, seedtxt, folds, nm > 1 ? "model and" : "the",
	       cv_pooled ? "pooled raw score" : "sum of the corpora's normalised scores");
	printf("\n%-5s", "fold");
	for (size_t ci = 0; ci < nbc; ci++)
		printf(" %10.10s", bcs[ci].label);
	for (size_t p = 0; p < nprof; p++)
		printf("  %-18.18s", profiles[p].name);
	printf("\n");
	for (unsigned k = 0; k < folds; k++) {
		printf("%-5u", k);
		for (size_t ci = 0; ci < nbc; ci++) {
			size_t nf = 0;
			for (size_t fi = 0; fi < bcs[ci].c.nfiles; fi++)
				nf += cv_fold(bcs[ci].c.files[fi].name, folds, seed) == k;
			printf(" %4zu files", nf);
		}
		/* the training files of each corpus */
		struct nab_corpus train[MAX_CORPORA];
		const struct nab_corpus *tp[MAX_CORPORA];
		size_t nt = 0;
		for (size_t ci = 0; ci < nbc; ci++) {
			if (cv_view(bcs, nbc, (int)ci, folds, seed, k, 0, &train[ci])) {
				for (size_t cj = 0; cj < ci; cj++)
					free(train[cj].files);
				goto out;
			}
			tp[ci] = &train[ci];
			nt++;
		}
		for (size_t p = 0; p < nprof; p++) {
			double best = -INFINITY, best_t = NAN;
			size_t best_m = 0;
			/* each corpus counts equally: its raw score weighted by
			 * 100 / (perfect - null) of its training files, so the
			 * objective is the sum of the normalised scores */
			double wt[MAX_CORPORA];
			for (size_t ci = 0; ci < nbc; ci++) {
				struct nab_result r;
				if (isnan(nab_score(&train[ci], &profiles[p], 2.0, &r)))
					goto out_train;
				double den = r.perfect - r.null_raw;
				wt[ci] = cv_pooled ? 1.0 : den > 0 ? 100.0 / den : 0;
				nab_result_free(&r);
			}
			for (size_t mi = 0; mi < nm; mi++) {
				for (size_t ci = 0; ci < nbc; ci++)
					use_model(&bcs[ci], mi);
				double t, tot = nab_optimize_weighted(tp, wt, nbc, &profiles[p], &t);
				if (isnan(tot))
					goto out_train;
				if (tot > best) {
					best = tot;
					best_t = t;
					best_m = mi;
				}
			}
			if (nm > 1)
				printf("  %-9.9s %8.6f", model_name(models[best_m]), best_t);
			else
				printf("  %-18.6f", best_t);
			for (size_t ci = 0; ci < nbc; ci++) {
				use_model(&bcs[ci], best_m);
				struct nab_corpus test;
				if (cv_view(bcs, nbc, (int)ci, folds, seed, k, 1, &test))
					goto out_train;
				struct nab_result r;
				double s = nab_score(&test, &profiles[p], best_t, &r);
				free(test.files);
				if (isnan(s))
					goto out_train;
				acc[ci][p].raw += r.raw;
				nab_counts_add(&acc[ci][p].counts, &r.counts);
				nab_result_free(&r);
			}
		}
		printf("\n");
		for (size_t ci = 0; ci < nt; ci++)
			free(train[ci].files);
		continue;
	out_train:
		for (size_t ci = 0; ci < nt; ci++)
			free(train[ci].files);
		goto out;
	}
	printf("\n%-12s %-20s %12s %12s %9s %8s\n", "corpus", "profile", "out-of-fold", "in-sample",
	       "windows", "FP rows");
	for (size_t ci = 0; ci < nbc; ci++)
		for (size_t p = 0; p < nprof; p++) {
			/* null and perfect of the whole corpus (they do not depend on
			 * the scores) */
			struct nab_result r;
			if (isnan(nab_score(&bcs[ci].c, &profiles[p], 2.0, &r)))
				goto out;
			double den = r.perfect - r.null_raw;
			double oof = den != 0 ? 100.0 * (acc[ci][p].raw - r.null_raw) / den : 0;
			nab_result_free(&r);
			char wins[32];
			snprintf(wins, sizeof wins, "%zu/%zu", acc[ci][p].counts.windows_hit,
			         acc[ci][p].counts.windows);
			printf("%-12s %-20s %12.2f %12.2f %9s %8zu\n", bcs[ci].label, profiles[p].name, oof,
			       insample[ci][p], wins, acc[ci][p].counts.fp);
		}
	rc = 0;
out:
	free(acc);
	return rc;
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
		{ "cv", required_argument, NULL, 'k' },
		{ "cv-pooled", no_argument, NULL, 'P' },
		{ "cv-seed", required_argument, NULL, 'S' },
		{ "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *corpora[MAX_CORPORA], *model_paths[MAX_MODELS];
	size_t ncorp = 0, nmp = 0;
	const char *windows = NULL, *profiles_path = NULL;
	const char *scores_dir = NULL, *out = NULL;
	double fixed = NAN;
	unsigned folds = 0;
	int cv_pooled = 0;
	unsigned cv_seed = 0;
	int quiet = 0;
	optind = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (ncorp == MAX_CORPORA) {
				fprintf(stderr, "backtest: too many --corpus (at most %d)\n", MAX_CORPORA);
				return 2;
			}
			corpora[ncorp++] = optarg;
			break;
		case 'm':
			if (nmp == MAX_MODELS) {
				fprintf(stderr, "backtest: too many --model (at most %d)\n", MAX_MODELS);
				return 2;
			}
			model_paths[nmp++] = optarg;
			break;
		case 'w': windows = optarg; break;
		case 'p': profiles_path = optarg; break;
		case 's': scores_dir = optarg; break;
		case 'o': out = optarg; break;
		case 'q': quiet = 1; break;
		case 'P': cv_pooled = 1; break;
		case 't': {
			char *e;
			fixed = strtod(optarg, &e);
			if (*e || !isfinite(fixed)) {
				fprintf(stderr, "backtest: invalid threshold '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'k': {
			char *e;
			long v = strtol(optarg, &e, 10);
			if (*e || v < 2 || v > 100) {
				fprintf(stderr, "backtest: invalid number of folds '%s' (2 to 100)\n", optarg);
				return 2;
			}
			folds = (unsigned)v;
			break;
		}
		case 'S': {
			char *e;
			long v = strtol(optarg, &e, 10);
			if (!*optarg || *e || v < 0 || v > 1000000) {
				fprintf(stderr, "backtest: invalid fold seed '%s' (0 to 1000000)\n", optarg);
				return 2;
			}
			cv_seed = (unsigned)v;
			break;
		}
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!ncorp || optind != argc) {
		fprintf(stderr, "backtest: %s\n", ncorp ? "unexpected argument" : "missing --corpus DIR");
		usage(stderr);
		return 2;
	}
	if (scores_dir && nmp) {
		fprintf(stderr, "backtest: --scores and --model exclude each other\n");
		return 2;
	}
	if (scores_dir && ncorp > 1) {
		fprintf(stderr, "backtest: --scores takes one --corpus\n");
		return 2;
	}
	if (windows && ncorp > 1) {
		fprintf(stderr, "backtest: --windows takes one --corpus (each corpus has DIR/windows.json)\n");
		return 2;
	}
	if (nmp > 1 && !folds) {
		fprintf(stderr, "backtest: several --model are candidates of --cv K\n");
		return 2;
	}
	if (folds && !isnan(fixed)) {
		fprintf(stderr, "backtest: --cv chooses the threshold; it excludes --threshold\n");
		return 2;
	}
	if (out && nmp > 1) {
		fprintf(stderr, "backtest: --out takes one --model\n");
		return 2;
	}

	char err[512], ppath[4096];
	struct nab_profile profiles[NAB_MAX_PROFILES];
	size_t nprof = 0;
	if (!profiles_path) {
		snprintf(ppath, sizeof ppath, "%s/profiles.json", corpora[0]);
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

	clock_t c0 = clock();
	int rc = 1;
	struct bt_corpus *bcs = calloc(ncorp, sizeof *bcs);
	struct model *models[MAX_MODELS] = { NULL };
	size_t nm = 0;
	if (!bcs) {
		fprintf(stderr, "backtest: out of memory\n");
		return 1;
	}
	for (size_t ci = 0; ci < ncorp; ci++) {
		struct bt_corpus *bc = &bcs[ci];
		bc->path = corpora[ci];
		nab_corpus_init(&bc->c);
		char data_dir[4096], wpath[4096];
		snprintf(data_dir, sizeof data_dir, "%s/data", bc->path);
		if (!is_dir(data_dir))
			snprintf(data_dir, sizeof data_dir, "%s", bc->path);
		const char *wp = windows;
		if (!wp) {
			snprintf(wpath, sizeof wpath, "%s/windows.json", bc->path);
			wp = wpath;
		}
		if (!is_file(wp)) {
			fprintf(stderr, "backtest: missing windows file '%s'\n", wp);
			goto done;
		}
		if (nab_corpus_load(&bc->c, data_dir, wp, err, sizeof err)) {
			fprintf(stderr, "backtest: %s\n", err);
			goto done;
		}
		/* label: the last path component */
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s", bc->path);
		size_t l = strlen(tmp);
		while (l > 1 && tmp[l - 1] == '/')
			tmp[--l] = 0;
		const char *base = strrchr(tmp, '/');
		snprintf(bc->label, sizeof bc->label, "%s", base ? base + 1 : tmp);
		for (size_t cj = 0; cj < ci; cj++)
			if (!strcmp(bcs[cj].label, bc->label))
				snprintf(bc->label, sizeof bc->label, "%.40s#%u", base ? base + 1 : tmp, (unsigned)(ci + 1) % 1000u);
		for (size_t fi = 0; fi < bc->c.nfiles; fi++) {
			bc->rows += bc->c.files[fi].n;
			bc->windows += bc->c.files[fi].nwindows;
		}
	}

	char model_label[512];
	if (scores_dir) {
		if (load_scores(&bcs[0].c, scores_dir, err, sizeof err)) {
			fprintf(stderr, "backtest: %s\n", err);
			goto done;
		}
		snprintf(model_label, sizeof model_label, "scores from %s", scores_dir);
		if (save_model(&bcs[0], 0))
			goto oom;
		nm = 0;
	} else {
		for (size_t k = 0; k < (nmp ? nmp : 1); k++) {
			models[k] = nmp ? model_load_file(model_paths[k], err, sizeof err)
			                : model_builtin_default();
			if (!models[k]) {
				fprintf(stderr, "backtest: %s\n", err);
				goto done;
			}
			nm++;
			for (size_t ci = 0; ci < ncorp; ci++) {
				size_t dropped[DET_DROP__COUNT] = { 0 };
				double cpu = run_model(models[k], &bcs[ci].c, dropped);
				if (cpu < 0 || save_model(&bcs[ci], k))
					goto oom;
				bcs[ci].cpu += cpu;
				if (k == 0)
					memcpy(bcs[ci].dropped, dropped, sizeof dropped);
			}
		}
		snprintf(model_label, sizeof model_label, "%s", model_name(models[0]));
		if (nm > 1) {
			size_t l = strlen(model_label);
			snprintf(model_label + l, sizeof model_label - l, " (first of %zu candidates)", nm);
		}
	}

	/* in-sample: per corpus, the threshold optimised on that corpus (first model) */
	double insample[MAX_CORPORA][NAB_MAX_PROFILES];
	double cpu_all = 0;
	for (size_t ci = 0; ci < ncorp; ci++) {
		struct bt_corpus *bc = &bcs[ci];
		use_model(bc, 0);
		cpu_all += bc->cpu;
		printf("%scorpus %s: %zu files, %zu rows, %zu windows; model %s\n", ci ? "\n" : "",
		       bc->path, bc->c.nfiles, bc->rows, bc->windows, model_label);
		size_t nd = bc->dropped[DET_DROP_NON_FINITE] + bc->dropped[DET_DROP_DUPLICATE] +
		            bc->dropped[DET_DROP_OUT_OF_ORDER];
		if (nd)
			printf("rows not fed to the detector (scored 0, as the daemon drops them): "
			       "%zu duplicate, %zu out_of_order, %zu non_finite\n",
			       bc->dropped[DET_DROP_DUPLICATE], bc->dropped[DET_DROP_OUT_OF_ORDER],
			       bc->dropped[DET_DROP_NON_FINITE]);
		if (nm)
			printf("detector CPU time: %.3f s (%.2f us/row%s)\n", bc->cpu,
			       bc->rows ? bc->cpu * 1e6 / (double)bc->rows / (double)nm : 0,
			       nm > 1 ? " and model" : "");
		clock_t s0 = clock();
		for (size_t k = 0; k < nprof; k++) {
			double r = isnan(fixed) ? nab_optimize(&bc->c, &profiles[k], NULL, &bc->in[k])
			                        : nab_score(&bc->c, &profiles[k], fixed, &bc->in[k]);
			if (isnan(r))
				goto oom;
			bc->nin++;
			insample[ci][k] = r;
		}
		clock_t s1 = clock();
		print_counts_header();
		for (size_t k = 0; k < bc->nin; k++)
			print_result(&bc->in[k]);
		if (nm && isnan(fixed)) {
			/* how the model's own alerting threshold fares */
			const struct model_alerting *al = model_alerting(models[0]);
			struct nab_result r;
			double s = nab_score(&bc->c, &profiles[0], al->threshold, &r);
			printf("%-20s %8.2f %12.6g %10.3f   (%s at the model's alerting threshold)\n", "",
			       s, al->threshold, r.raw, profiles[0].name);
			nab_result_free(&r);
		}
		printf("scoring time: %.3f s\n", (double)(s1 - s0) / CLOCKS_PER_SEC);
		if (nm > 1) {
			/* each candidate in-sample (standard), for comparison */
			for (size_t k = 0; k < nm; k++) {
				use_model(bc, k);
				struct nab_result r;
				double sc = nab_optimize(&bc->c, &profiles[0], NULL, &r);
				if (isnan(sc))
					goto oom;
				printf("candidate %zu %-24s %s %.2f\n", k, model_name(models[k]),
				       profiles[0].name, sc);
				nab_result_free(&r);
			}
			use_model(bc, 0);
		}
		if (!quiet) {
			const struct nab_result *r = &bc->in[0];
			printf("\nper file (%s, threshold %.6g):\n", r->profile->name, r->threshold);
			printf("%-52s %6s %7s %4s %6s %8s %7s %7s %8s\n", "file", "rows", "windows", "hit",
			       "missed", "det rows", "TP rows", "FP rows", "raw");
			for (size_t fi = 0; fi < bc->c.nfiles; fi++) {
				const struct nab_counts *k = &r->files[fi].counts;
				printf("%-52s %6zu %7zu %4zu %6zu %8zu %7zu %7zu %8.3f\n", bc->c.files[fi].name,
				       bc->c.files[fi].n, k->windows, k->windows_hit,
				       k->windows - k->windows_hit, k->detections, k->tp, k->fp,
				       r->files[fi].raw);
			}
		}
	}

	if (folds) {
		if (cross_validate(bcs, ncorp, models, nm ? nm : 1, profiles, nprof, folds, cv_seed, cv_pooled,
		                   insample))
			goto oom;
	}
	if (ncorp > 1 || folds)
		printf("\ndetector CPU time, all corpora%s: %.3f s; whole backtest: %.3f s CPU\n",
		       nm > 1 ? " and models" : "", cpu_all,
		       (double)(clock() - c0) / CLOCKS_PER_SEC);

	if (out) {
		for (size_t ci = 0; ci < ncorp; ci++) {
			struct bt_corpus *bc = &bcs[ci];
			char dir[4096];
			if (ncorp > 1)
				snprintf(dir, sizeof dir, "%s/%s", out, bc->label);
			else
				snprintf(dir, sizeof dir, "%s", out);
			use_model(bc, 0);
			if (make_dirs(dir)) {
				fprintf(stderr, "backtest: cannot create '%s': %s\n", dir, strerror(errno));
				goto done;
			}
			if (write_results(dir, &bc->c, err, sizeof err)) {
				fprintf(stderr, "backtest: %s\n", err);
				goto done;
			}
			struct report_info info = {
				.model = model_label, .corpus = bc->path, .cpu_seconds = nm ? bc->cpu : -1,
				.results = bc->in, .nresults = bc->nin, .primary = 0,
			};
			if (report_write(dir, &bc->c, &info, err, sizeof err)) {
				fprintf(stderr, "backtest: %s\n", err);
				goto done;
			}
			printf("\nreport: %s/index.html\n", dir);
		}
	}
	rc = 0;
	goto done;
oom:
	fprintf(stderr, "backtest: out of memory\n");
done:
	for (size_t ci = 0; ci < ncorp; ci++) {
		for (size_t k = 0; k < bcs[ci].nin; k++)
			nab_result_free(&bcs[ci].in[k]);
		for (size_t k = 0; k < MAX_MODELS; k++)
			free(bcs[ci].saved[k]);
		nab_corpus_free(&bcs[ci].c);
	}
	free(bcs);
	for (size_t k = 0; k < nm; k++)
		model_free(models[k]);
	return rc;
}
