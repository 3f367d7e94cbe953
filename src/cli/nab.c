/* cli/nab.c — NAB scoring: corpus loading, per-row sweep weights, scoring at a
 * threshold and corpus-wide threshold optimisation. Follows numenta/NAB
 * nab/sweeper.py (calcSweepScore, calcScoreByThreshold, scoreDataSet),
 * nab/optimizer.py and nab/runner.py (normalize) step by step; comments name
 * the NAB function each piece replicates. */
#include "cli/nab.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/timefmt.h"

const struct nab_profile nab_default_profiles[3] = {
	{ "standard", 1.0, 0.11, 1.0 },
	{ "reward_low_FP_rate", 1.0, 0.22, 1.0 },
	{ "reward_low_FN_rate", 1.0, 0.11, 2.0 },
};

/* NAB "no detection" threshold (sweeper.calcScoreByThreshold starts at 1.1). */
#define NAB_NO_DETECTION_THRESHOLD 1.1

/* sweeper.scaledSigmoid: 2*sigmoid(-5x) - 1, with sigmoid(x) = 1/(1+exp(-x));
 * -1 for x > 3. Written in the same operation order for identical doubles. */
double nab_scaled_sigmoid(double x)
{
	if (x > 3.0)
		return -1.0;
	return 2.0 * (1.0 / (1.0 + exp(-(-5.0 * x)))) - 1.0;
}

/* ---------------------------------------------------------------- corpus */

void nab_corpus_init(struct nab_corpus *c)
{
	memset(c, 0, sizeof *c);
}

static void file_free(struct nab_file *f)
{
	free(f->name);
	free(f->ts);
	free(f->value);
	free(f->score);
	free(f->windows);
	free(f->row_window);
	free(f->row_unit);
	memset(f, 0, sizeof *f);
}

void nab_corpus_free(struct nab_corpus *c)
{
	for (size_t i = 0; i < c->nfiles; i++)
		file_free(&c->files[i]);
	free(c->files);
	memset(c, 0, sizeof *c);
}

/* Takes ownership of name, ts, value (all malloc'd) on success. */
static struct nab_file *corpus_push(struct nab_corpus *c, char *name, int64_t *ts, double *value,
                                    size_t n)
{
	if (c->nfiles == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct nab_file *nf = realloc(c->files, cap * sizeof *nf);
		if (!nf)
			return NULL;
		c->files = nf;
		c->cap = cap;
	}
	double *score = calloc(n ? n : 1, sizeof *score);
	if (!score)
		return NULL;
	struct nab_file *f = &c->files[c->nfiles++];
	memset(f, 0, sizeof *f);
	f->name = name;
	f->ts = ts;
	f->value = value;
	f->score = score;
	f->n = n;
	return f;
}

struct nab_file *nab_corpus_add(struct nab_corpus *c, const char *name, const int64_t *ts,
                                const double *value, size_t n)
{
	char *nm = strdup(name);
	int64_t *t = malloc((n ? n : 1) * sizeof *t);
	double *v = malloc((n ? n : 1) * sizeof *v);
	if (!nm || !t || !v)
		goto fail;
	memcpy(t, ts, n * sizeof *t);
	if (value)
		memcpy(v, value, n * sizeof *v);
	else
		memset(v, 0, n * sizeof *v);
	struct nab_file *f = corpus_push(c, nm, t, v, n);
	if (f)
		return f;
fail:
	free(nm);
	free(t);
	free(v);
	return NULL;
}

struct nab_file *nab_corpus_find(const struct nab_corpus *c, const char *name)
{
	for (size_t i = 0; i < c->nfiles; i++)
		if (!strcmp(c->files[i].name, name))
			return &c->files[i];
	return NULL;
}

int nab_file_add_window(struct nab_file *f, int64_t start_ms, int64_t end_ms)
{
	if (end_ms < start_ms)
		return -1;
	for (size_t i = 0; i < f->nwindows; i++)
		if (start_ms <= f->windows[i].end_ms && f->windows[i].start_ms <= end_ms)
			return -1;
	struct nab_window *w = realloc(f->windows, (f->nwindows + 1) * sizeof *w);
	if (!w)
		return -1;
	f->windows = w;
	/* keep sorted by start */
	size_t at = f->nwindows;
	while (at > 0 && w[at - 1].start_ms > start_ms) {
		w[at] = w[at - 1];
		at--;
	}
	memset(&w[at], 0, sizeof w[at]);
	w[at].start_ms = start_ms;
	w[at].end_ms = end_ms;
	f->nwindows++;
	return 0;
}

/* First index with ts[i] >= t (n if none). */
static size_t lower_bound(const int64_t *ts, size_t n, int64_t t)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ts[mid] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* sweeper._getProbationaryLength: min(floor(p * n), p * 5000). Rows with
 * index < that value are probationary; with a fractional cap (p*5000 not an
 * integer) the count of such rows is its ceiling. */
static size_t probation_rows(double p, size_t n)
{
	double a = floor(p * (double)n), b = p * 5000.0;
	double len = a < b ? a : b;
	if (len <= 0)
		return 0;
	size_t r = (size_t)ceil(len);
	return r > n ? n : r;
}

/* Replicates sweeper.calcSweepScore for one file, without the profile
 * weights: row_unit is the unweighted score (scaledSigmoid of the position)
 * and row_window the window index, -1 outside, -2 probationary. */
static int file_prepare(struct nab_file *f, double probation_percent)
{
	free(f->row_window);
	free(f->row_unit);
	f->row_window = malloc((f->n ? f->n : 1) * sizeof *f->row_window);
	f->row_unit = malloc((f->n ? f->n : 1) * sizeof *f->row_unit);
	if (!f->row_window || !f->row_unit)
		return -1;
	f->probation = probation_rows(probation_percent, f->n);
	/* Rows whose timestamp goes backwards are kept (NAB scores rows by
	 * position); windows are snapped on the running maximum of the
	 * timestamps, so such a row belongs where it stands. */
	const int64_t *ts = f->ts;
	int64_t *cummax = NULL;
	for (size_t i = 1; i < f->n && !cummax; i++)
		if (f->ts[i] < f->ts[i - 1]) {
			cummax = malloc(f->n * sizeof *cummax);
			if (!cummax)
				return -1;
			cummax[0] = f->ts[0];
			for (size_t j = 1; j < f->n; j++)
				cummax[j] = f->ts[j] > cummax[j - 1] ? f->ts[j] : cummax[j - 1];
			ts = cummax;
		}

	/* Snap windows to the rows inside [start, end] (scorer.Window). Windows
	 * without any row are dropped from scoring (first > last). */
	for (size_t w = 0; w < f->nwindows; w++) {
		struct nab_window *win = &f->windows[w];
		/* With repeated timestamps NAB enters at the first row equal to the
		 * start and leaves at the first row equal to the end
		 * (timestamps.index()). */
		size_t a = lower_bound(ts, f->n, win->start_ms);
		size_t b = lower_bound(ts, f->n, win->end_ms);
		if (b < f->n && ts[b] == win->end_ms)
			b++; /* one past the last row; otherwise the last row inside is b - 1 */
		if (b > a) {
			win->first = a;
			win->last = b - 1;
		} else {
			win->first = 1;
			win->last = 0;
		}
		win->scorable = b > a && win->last >= f->probation;
	}
	free(cummax);

	size_t next = 0;          /* next window to enter */
	long cur = -1;            /* current window index or -1 */
	int have_prev = 0;
	size_t prev_right = 0;    /* prevWindowRightIndex */
	double prev_width = 0;    /* prevWindowWidth */
	for (size_t i = 0; i < f->n; i++) {
		while (cur < 0 && next < f->nwindows && f->windows[next].first > f->windows[next].last)
			next++; /* empty window */
		if (cur < 0 && next < f->nwindows && i == f->windows[next].first)
			cur = (long)next++;
		double unit;
		if (cur >= 0) {
			const struct nab_window *win = &f->windows[cur];
			double width = (double)(win->last - win->first + 1);
			/* positionInWindow = -(curWindowRightIndex - i + 1) / curWindowWidth */
			double pos = (double)(-(long long)(win->last - i + 1)) / width;
			unit = nab_scaled_sigmoid(pos);
		} else if (!have_prev) {
			unit = -1.0;
		} else {
			/* abs(prevWindowRightIndex - i) / float(prevWindowWidth - 1); a
			 * one-row window divides by zero in NAB (ZeroDivisionError), here
			 * it gives +inf and so -1. */
			double pos = (double)(i - prev_right) / (prev_width - 1.0);
			unit = nab_scaled_sigmoid(pos);
		}
		f->row_unit[i] = unit;
		f->row_window[i] = i < f->probation ? -2 : (int32_t)cur;
		if (cur >= 0 && i == f->windows[cur].last) {
			have_prev = 1;
			prev_right = i;
			prev_width = (double)(f->windows[cur].last - f->windows[cur].first + 1);
			cur = -1;
		}
	}
	return 0;
}

int nab_corpus_prepare(struct nab_corpus *c, double probation_percent)
{
	for (size_t i = 0; i < c->nfiles; i++)
		if (file_prepare(&c->files[i], probation_percent))
			return -1;
	return 0;
}

/* ------------------------------------------------------------ CSV loading */

int nab_csv_parse(const char *text, const char *name, int64_t **ts_out, double **val_out,
                  double **extra_out, size_t *n_out, char *err, size_t errlen)
{
	size_t cap = 1024, n = 0, line = 0;
	int64_t *ts = malloc(cap * sizeof *ts);
	double *val = malloc(cap * sizeof *val);
	double *ex = extra_out ? malloc(cap * sizeof *ex) : NULL;
	if (!ts || !val || (extra_out && !ex))
		goto oom;
	const char *p = text;
	while (*p) {
		const char *eol = strchr(p, '\n');
		const char *end = eol ? eol : p + strlen(p);
		const char *next = eol ? eol + 1 : end;
		line++;
		if (end > p && end[-1] == '\r')
			end--;
		if (end == p) { /* blank line */
			p = next;
			continue;
		}
		const char *c1 = memchr(p, ',', (size_t)(end - p));
		int64_t t;
		if (!c1 || time_parse_ms(p, (size_t)(c1 - p), &t)) {
			if (line == 1) { /* header */
				p = next;
				continue;
			}
			errbuf_printf(err, errlen, "invalid timestamp '%.*s' in '%s' (line %zu)",
			        (int)(c1 ? c1 - p : end - p), p, name, line);
			goto fail;
		}
		const char *vs = c1 + 1;
		const char *c2 = memchr(vs, ',', (size_t)(end - vs));
		const char *ve = c2 ? c2 : end;
		char tmp[64];
		size_t vl = (size_t)(ve - vs);
		char *e;
		double v = NAN; /* an empty value is a missing one: kept as NAN */
		if (vl >= sizeof tmp)
			goto badval;
		if (vl > 0) {
			memcpy(tmp, vs, vl);
			tmp[vl] = 0;
			errno = 0;
			v = strtod(tmp, &e);
			if (*e || e == tmp)
				goto badval;
			if (!isfinite(v))
				v = NAN; /* "nan", "inf": missing as well */
		}
		double x = 0;
		if (extra_out) {
			if (!c2) {
				errbuf_printf(err, errlen, "missing column 3 (anomaly_score) in '%s' (line %zu)",
				        name, line);
				goto fail;
			}
			const char *xs = c2 + 1;
			const char *c3 = memchr(xs, ',', (size_t)(end - xs));
			const char *xe = c3 ? c3 : end;
			size_t xl = (size_t)(xe - xs);
			if (xl == 0 || xl >= sizeof tmp) {
				errbuf_printf(err, errlen, "invalid anomaly score '%.*s' in '%s' (line %zu)",
				        (int)xl, xs, name, line);
				goto fail;
			}
			memcpy(tmp, xs, xl);
			tmp[xl] = 0;
			x = strtod(tmp, &e);
			if (*e || !isfinite(x)) {
				errbuf_printf(err, errlen, "invalid anomaly score '%s' in '%s' (line %zu)", tmp,
				        name, line);
				goto fail;
			}
		}
		if (n == cap) {
			cap *= 2;
			int64_t *nt = realloc(ts, cap * sizeof *nt);
			if (nt)
				ts = nt;
			double *nv = realloc(val, cap * sizeof *nv);
			if (nv)
				val = nv;
			if (!nt || !nv)
				goto oom;
			if (extra_out) {
				double *nx = realloc(ex, cap * sizeof *nx);
				if (!nx)
					goto oom;
				ex = nx;
			}
		}
		ts[n] = t;
		val[n] = v;
		if (ex)
			ex[n] = x;
		n++;
		p = next;
		continue;
	badval:
		errbuf_printf(err, errlen, "invalid value '%.*s' in '%s' (line %zu)", (int)vl, vs, name, line);
		goto fail;
	}
	*ts_out = ts;
	*val_out = val;
	if (extra_out)
		*extra_out = ex;
	*n_out = n;
	return 0;
oom:
	errbuf_printf(err, errlen, "out of memory reading '%s'", name);
fail:
	free(ts);
	free(val);
	free(ex);
	return -1;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && !strcmp(s + a - b, suf);
}

/* Sorted list of entry names in dir (dirs_only: subdirectories; else *.csv
 * regular files). Returns count or -1; *out malloc'd array of malloc'd names. */
static long list_dir(const char *dir, int dirs_only, char ***out)
{
	DIR *d = opendir(dir);
	if (!d)
		return -1;
	size_t n = 0, cap = 16;
	char **v = malloc(cap * sizeof *v);
	struct dirent *de;
	while (v && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		DIR *sub = opendir(path);
		int is_dir = sub != NULL;
		if (sub)
			closedir(sub);
		if (dirs_only ? !is_dir : (is_dir || !has_suffix(de->d_name, ".csv")))
			continue;
		if (n == cap) {
			char **nv = realloc(v, cap * 2 * sizeof *nv);
			if (!nv)
				break;
			v = nv;
			cap *= 2;
		}
		v[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (!v)
		return -1;
	qsort(v, n, sizeof *v, cmp_str);
	*out = v;
	return (long)n;
}

static void free_list(char **v, long n)
{
	for (long i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int nab_corpus_load_windows(struct nab_corpus *c, const char *windows_path, size_t *unknown,
                            char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_load_file(windows_path, 0, &je);
	if (!root) {
		errbuf_printf(err, errlen, "cannot read windows '%s': %s (line %d)", windows_path, je.text,
		        je.line);
		return -1;
	}
	if (!json_is_object(root)) {
		errbuf_printf(err, errlen, "invalid windows file '%s': not a JSON object", windows_path);
		json_decref(root);
		return -1;
	}
	size_t unk = 0;
	const char *key;
	json_t *arr;
	json_object_foreach(root, key, arr) {
		struct nab_file *f = nab_corpus_find(c, key);
		if (!f) {
			unk++;
			continue;
		}
		if (!json_is_array(arr)) {
			errbuf_printf(err, errlen, "invalid windows for '%s': not a list", key);
			goto fail;
		}
		size_t i;
		json_t *pair;
		json_array_foreach(arr, i, pair) {
			json_t *a = json_array_get(pair, 0), *b = json_array_get(pair, 1);
			int64_t s, e;
			if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_string(a) ||
			    !json_is_string(b) ||
			    time_parse_ms(json_string_value(a), json_string_length(a), &s) ||
			    time_parse_ms(json_string_value(b), json_string_length(b), &e)) {
				errbuf_printf(err, errlen, "invalid window %zu for '%s': want [\"start\", \"end\"]",
				        i, key);
				goto fail;
			}
			if (nab_file_add_window(f, s, e)) {
				errbuf_printf(err, errlen,
				        "invalid window ['%s', '%s'] for '%s': end before start or overlap",
				        json_string_value(a), json_string_value(b), key);
				goto fail;
			}
		}
	}
	json_decref(root);
	if (unknown)
		*unknown = unk;
	return 0;
fail:
	json_decref(root);
	return -1;
}

int nab_corpus_load(struct nab_corpus *c, const char *data_dir, const char *windows_path,
                    char *err, size_t errlen)
{
	char **cats = NULL;
	long ncat = list_dir(data_dir, 1, &cats);
	if (ncat < 0) {
		errbuf_printf(err, errlen, "cannot open data directory '%s': %s", data_dir, strerror(errno));
		return -1;
	}
	int rc = -1;
	for (long ci = 0; ci < ncat; ci++) {
		char dir[4096];
		snprintf(dir, sizeof dir, "%s/%s", data_dir, cats[ci]);
		char **files = NULL;
		long nf = list_dir(dir, 0, &files);
		if (nf < 0)
			continue;
		for (long fi = 0; fi < nf; fi++) {
			char path[8192], name[4096];
			snprintf(path, sizeof path, "%s/%s", dir, files[fi]);
			snprintf(name, sizeof name, "%s/%s", cats[ci], files[fi]);
			char *text = obuf_read_file(path, 0, NULL);
			if (!text) {
				errbuf_printf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
				free_list(files, nf);
				goto out;
			}
			int64_t *ts;
			double *val;
			size_t n;
			int prc = nab_csv_parse(text, name, &ts, &val, NULL, &n, err, errlen);
			free(text);
			if (prc) {
				free_list(files, nf);
				goto out;
			}
			char *nm = strdup(name);
			if (!nm || !corpus_push(c, nm, ts, val, n)) {
				free(nm);
				free(ts);
				free(val);
				errbuf_printf(err, errlen, "out of memory loading '%s'", path);
				free_list(files, nf);
				goto out;
			}
		}
		free_list(files, nf);
	}
	if (c->nfiles == 0) {
		errbuf_printf(err, errlen, "no data files '%s/*/*.csv'", data_dir);
		goto out;
	}
	if (windows_path && nab_corpus_load_windows(c, windows_path, NULL, err, errlen))
		goto out;
	if (nab_corpus_prepare(c, NAB_PROBATION_PERCENT)) {
		errbuf_printf(err, errlen, "out of memory preparing corpus");
		goto out;
	}
	rc = 0;
out:
	free_list(cats, ncat);
	return rc;
}

int nab_profiles_load(const char *path, struct nab_profile *out, size_t max, size_t *n,
                      char *err, size_t errlen)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	if (!root) {
		errbuf_printf(err, errlen, "cannot read profiles '%s': %s (line %d)", path, je.text, je.line);
		return -1;
	}
	size_t k = 0;
	const char *key;
	json_t *prof;
	json_object_foreach(root, key, prof) {
		json_t *cm = json_object_get(prof, "CostMatrix");
		json_t *tp = json_object_get(cm, "tpWeight"), *fp = json_object_get(cm, "fpWeight"),
		       *fn = json_object_get(cm, "fnWeight");
		if (!json_is_number(tp) || !json_is_number(fp) || !json_is_number(fn)) {
			errbuf_printf(err, errlen, "invalid profile '%s' in '%s': need CostMatrix tpWeight, "
			        "fpWeight, fnWeight", key, path);
			json_decref(root);
			return -1;
		}
		if (k == max) {
			errbuf_printf(err, errlen, "too many profiles in '%s' (max %zu)", path, max);
			json_decref(root);
			return -1;
		}
		snprintf(out[k].name, sizeof out[k].name, "%s", key);
		out[k].tp_weight = json_number_value(tp);
		out[k].fp_weight = json_number_value(fp);
		out[k].fn_weight = json_number_value(fn);
		k++;
	}
	json_decref(root);
	if (k == 0) {
		errbuf_printf(err, errlen, "no profiles in '%s'", path);
		return -1;
	}
	*n = k;
	return 0;
}

/* ---------------------------------------------------------------- scoring */

void nab_result_free(struct nab_result *r)
{
	free(r->files);
	r->files = NULL;
	r->nfiles = 0;
}

static double max_tp(void)
{
	return nab_scaled_sigmoid(-1.0);
}

/* Weighted sweep score of row i (sweeper.calcSweepScore weightedScore). */
static double row_sweep(const struct nab_file *f, size_t i, const struct nab_profile *p,
                        double maxtp)
{
	if (f->row_window[i] >= 0)
		return f->row_unit[i] * p->tp_weight / maxtp;
	return f->row_unit[i] * p->fp_weight;
}

static size_t scorable_windows(const struct nab_corpus *c, size_t *all)
{
	size_t s = 0, a = 0;
	for (size_t fi = 0; fi < c->nfiles; fi++)
		for (size_t w = 0; w < c->files[fi].nwindows; w++) {
			const struct nab_window *win = &c->files[fi].windows[w];
			if (win->first <= win->last)
				a++;
			s += win->scorable != 0;
		}
	if (all)
		*all = a;
	return s;
}

/* The null detector (constant score) optimised: either nothing is detected
 * (-fnWeight per scorable window) or every scorable row is; NAB keeps the
 * higher, the higher threshold on a tie. */
static double null_raw(const struct nab_corpus *c, const struct nab_profile *p)
{
	double none = 0, all = 0, maxtp = max_tp();
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		const struct nab_file *f = &c->files[fi];
		double fp = 0, parts = 0, fnone = 0;
		for (size_t w = 0; w < f->nwindows; w++) {
			const struct nab_window *win = &f->windows[w];
			if (!win->scorable)
				continue;
			fnone -= p->fn_weight;
			size_t first = win->first > f->probation ? win->first : f->probation;
			double best = -p->fn_weight, s = row_sweep(f, first, p, maxtp);
			parts += s > best ? s : best;
		}
		for (size_t i = f->probation; i < f->n; i++)
			if (f->row_window[i] == -1)
				fp += row_sweep(f, i, p, maxtp);
		none += fnone;
		all += fp + parts;
	}
	return all > none ? all : none;
}

void nab_counts_add(struct nab_counts *a, const struct nab_counts *b)
{
	a->tp += b->tp;
	a->fp += b->fp;
	a->fn += b->fn;
	a->tn += b->tn;
	a->windows += b->windows;
	a->windows_hit += b->windows_hit;
	a->detections += b->detections;
}

/* sweeper.scoreDataSet for one file at threshold: parts start at -fnWeight
 * for each scorable window and become max(part, sweep) of detected rows;
 * detected rows outside windows add their sweep score. */
static double file_score(const struct nab_file *f, const struct nab_profile *p, double threshold,
                         double maxtp, struct nab_counts *cnt)
{
	memset(cnt, 0, sizeof *cnt);
	double fp = 0, parts = 0, part = 0;
	int32_t cur = -1; /* window of the open part, -1 none */
	int hit = 0;
	for (size_t i = f->probation; i < f->n; i++) {
		int32_t win = f->row_window[i];
		int det = f->score[i] >= threshold;
		if (win < 0) {
			if (det) {
				fp += row_sweep(f, i, p, maxtp);
				cnt->fp++;
			} else {
				cnt->tn++;
			}
			continue;
		}
		if (win != cur) {
			if (cur >= 0) {
				parts += part;
				cnt->windows_hit += hit;
			}
			cur = win;
			part = -p->fn_weight;
			hit = 0;
			cnt->windows++;
		}
		if (det) {
			double s = row_sweep(f, i, p, maxtp);
			if (s > part)
				part = s;
			hit = 1;
			cnt->tp++;
		} else {
			cnt->fn++;
		}
	}
	if (cur >= 0) {
		parts += part;
		cnt->windows_hit += hit;
	}
	cnt->detections = cnt->tp + cnt->fp;
	return fp + parts;
}

double nab_score(const struct nab_corpus *c, const struct nab_profile *p, double threshold,
                 struct nab_result *out)
{
	memset(out, 0, sizeof *out);
	out->profile = p;
	out->threshold = threshold;
	out->files = calloc(c->nfiles ? c->nfiles : 1, sizeof *out->files);
	if (!out->files)
		return NAN;
	out->nfiles = c->nfiles;
	double maxtp = max_tp();
	for (size_t fi = 0; fi < c->nfiles; fi++) {
		struct nab_file_result *fr = &out->files[fi];
		fr->raw = file_score(&c->files[fi], p, threshold, maxtp, &fr->counts);
		out->raw += fr->raw;
		nab_counts_add(&out->counts, &fr->counts);
	}
	size_t all;
	scorable_windows(c, &all);
	out->perfect = (double)all * p->tp_weight;
	out->null_raw = null_raw(c, p);
	double den = out->perfect - out->null_raw;
	out->normalized = den != 0 ? 100.0 * (out->raw - out->null_raw) / den : 0.0;
	return out->normalized;
}

struct sweep_row {
	double score;   /* anomaly score */
	double sweep;   /* weighted sweep score */
	int32_t window; /* corpus-wide window id or -1 */
};

static int cmp_row_desc(const void *a, const void *b)
{
	const struct sweep_row *x = a, *y = b;
	if (x->score > y->score)
		return -1;
	if (x->score < y->score)
		return 1;
	return 0;
}

/* sweeper.calcScoreByThreshold over the whole corpus + optimizer: rows sorted
 * by decreasing score; the score for threshold t counts every row with score
 * >= t. The best (first maximum, i.e. highest threshold on ties) is kept.
 * Several corpora are swept together, corpus k's rows and windows weighted by
 * w[k] (1 for NAB's own optimiser). Returns the best weighted raw total, NAN
 * if out of memory. */
static double sweep_best(const struct nab_corpus *const *cs, const double *w, size_t ncs,
                         const struct nab_profile *p, double *best_threshold)
{
	size_t nrows = 0, nwin = 0;
	for (size_t ci = 0; ci < ncs; ci++)
		for (size_t fi = 0; fi < cs[ci]->nfiles; fi++) {
			const struct nab_file *f = &cs[ci]->files[fi];
			nrows += f->n > f->probation ? f->n - f->probation : 0;
			nwin += f->nwindows;
		}
	struct sweep_row *rows = malloc((nrows ? nrows : 1) * sizeof *rows);
	double *parts = malloc((nwin ? nwin : 1) * sizeof *parts);
	if (!rows || !parts) {
		free(rows);
		free(parts);
		return NAN;
	}
	double maxtp = max_tp(), total = 0, maxscore = -INFINITY;
	size_t k = 0, wbase = 0;
	for (size_t ci = 0; ci < ncs; ci++) {
		double wk = w[ci];
		for (size_t fi = 0; fi < cs[ci]->nfiles; fi++) {
			const struct nab_file *f = &cs[ci]->files[fi];
			for (size_t wi = 0; wi < f->nwindows; wi++) {
				parts[wbase + wi] = -p->fn_weight * wk;
				if (f->windows[wi].scorable)
					total -= p->fn_weight * wk;
			}
			for (size_t i = f->probation; i < f->n; i++) {
				rows[k].score = f->score[i];
				rows[k].sweep = row_sweep(f, i, p, maxtp) * wk;
				rows[k].window = f->row_window[i] >= 0 ?
				                 (int32_t)(wbase + (size_t)f->row_window[i]) : -1;
				if (f->score[i] > maxscore)
					maxscore = f->score[i];
				k++;
			}
			wbase += f->nwindows;
		}
	}
	qsort(rows, nrows, sizeof *rows, cmp_row_desc);

	double cur_t = NAB_NO_DETECTION_THRESHOLD;
	if (nrows && maxscore >= cur_t)
		cur_t = nextafter(maxscore, INFINITY);
	double best_t = cur_t, best = total;
	for (size_t r = 0; r < nrows; r++) {
		if (rows[r].score != cur_t) {
			if (total > best) {
				best = total;
				best_t = cur_t;
			}
			cur_t = rows[r].score;
		}
		if (rows[r].window < 0) {
			total += rows[r].sweep;
		} else {
			double *pt = &parts[rows[r].window];
			if (rows[r].sweep > *pt) {
				total += rows[r].sweep - *pt;
				*pt = rows[r].sweep;
			}
		}
	}
	if (total > best) {
		best = total;
		best_t = cur_t;
	}
	free(rows);
	free(parts);
	*best_threshold = best_t;
	return best;
}

double nab_optimize(const struct nab_corpus *c, const struct nab_profile *p,
                    double *best_threshold, struct nab_result *out)
{
	double t, one = 1.0;
	if (isnan(sweep_best(&c, &one, 1, p, &t))) {
		memset(out, 0, sizeof *out);
		return NAN;
	}
	if (best_threshold)
		*best_threshold = t;
	return nab_score(c, p, t, out);
}

double nab_optimize_weighted(const struct nab_corpus *const *cs, const double *weights, size_t n,
                             const struct nab_profile *p, double *best_threshold)
{
	return sweep_best(cs, weights, n, p, best_threshold);
}

void nab_file_kinds(const struct nab_file *f, double threshold, uint8_t *kind)
{
	int32_t last_hit = -1;
	for (size_t i = 0; i < f->n; i++) {
		int32_t w = f->row_window[i];
		if (w == -2 || f->score[i] < threshold) {
			kind[i] = NAB_ROW_NONE;
		} else if (w == -1) {
			kind[i] = NAB_ROW_FP;
		} else if (w != last_hit) {
			kind[i] = NAB_ROW_TP;
			last_hit = w;
		} else {
			kind[i] = NAB_ROW_TP_LATER;
		}
	}
}
