/* cli/nab.h — Numenta Anomaly Benchmark (NAB v1.x) scoring, replicated from
 * numenta/NAB nab/sweeper.py, nab/optimizer.py and nab/runner.py normalize().
 *
 * A corpus is a set of labelled series (timestamps, values, windows). The
 * caller fills each file's score[] with anomaly scores in [0,1] (one per row,
 * computed causally), then:
 *   nab_optimize()  finds the one threshold that maximises the raw NAB score
 *                   summed over all files (NAB's sweeper: sort every scorable
 *                   row of the corpus once, lower the threshold row by row);
 *   nab_score()     scores the corpus at a given threshold (row detected when
 *                   score >= threshold), per file and in total, normalised as
 *                   100 * (raw - null) / (perfect - null).
 *
 * Rules (see docs/backtesting.md for the formulas):
 *   - probation: the first min(floor(0.15 * rows), 750) rows of each file are
 *     not scored;
 *   - inside a window [L,R] of width W = R-L+1, a detection at row i is worth
 *     tpWeight * S(-(R-i+1)/W) / S(-1) with S(x) = 2/(1+exp(5x)) - 1
 *     (S(x) = -1 for x > 3); only the best (earliest) detection of a window
 *     counts; a window without detection costs -fnWeight;
 *   - a detection outside windows costs fpWeight * S((i-R')/(W'-1)) where R',
 *     W' are the end and width of the closest preceding window, or -fpWeight
 *     when no window precedes it;
 *   - null = the null detector's optimised raw score (constant score, so
 *     -fnWeight * number of scorable windows); perfect = tpWeight * number of
 *     windows.
 * Windows whose limits are not exact row timestamps are snapped to the rows
 * inside [start, end] (NAB's data always has exact limits).
 *
 * Memory: the corpus owns every array in it; nab_corpus_free releases all.
 * struct nab_result.files is owned by the result (nab_result_free).
 * Not thread-safe per corpus; different corpora are independent.
 */
#ifndef FORESHOCK_NAB_H
#define FORESHOCK_NAB_H

#include <stddef.h>
#include <stdint.h>

#define NAB_PROBATION_PERCENT 0.15
#define NAB_MAX_PROFILES 8

struct nab_profile {
	char name[64];
	double tp_weight, fp_weight, fn_weight;
};

/* The three published NAB profiles (standard, reward_low_FP_rate,
 * reward_low_FN_rate), as in NAB's config/profiles.json. */
extern const struct nab_profile nab_default_profiles[3];

/* Read a NAB profiles.json ({"name": {"CostMatrix": {"tpWeight": ..}}}).
 * Fills out[0..*n). Returns 0, or -1 with a message in err. */
int nab_profiles_load(const char *path, struct nab_profile *out, size_t max, size_t *n,
                      char *err, size_t errlen);

struct nab_window {
	int64_t start_ms, end_ms; /* limits as labelled */
	size_t first, last;       /* row indices of the snapped window (inclusive) */
	int scorable;             /* 1 if some row of the window is past probation */
};

struct nab_file {
	char *name;               /* "category/name.csv", owned */
	size_t n;                 /* rows */
	int64_t *ts;              /* [n] timestamps, ms; NAB data repeats a few, messy data
	                           * may go backwards (windows snap on the running maximum) */
	double *value;            /* [n] values; NAN where the row has none (a gap) */
	double *score;            /* [n] anomaly scores, filled by the caller (zeroed at load) */
	struct nab_window *windows; /* [nwindows], sorted, non-overlapping */
	size_t nwindows;
	size_t probation;         /* rows in the probationary period */
	/* Filled by nab_corpus_prepare(): per row, the window it lies in
	 * (>= 0), -1 outside every window, -2 in probation; and the
	 * profile-independent sweep weight: S(position) inside a window (before
	 * the tpWeight/S(-1) factor), S(position past window) or -1 outside. */
	int32_t *row_window;
	double *row_unit;
};

struct nab_corpus {
	struct nab_file *files;
	size_t nfiles, cap;
};

void nab_corpus_init(struct nab_corpus *c);
void nab_corpus_free(struct nab_corpus *c);

/* Load every DATA_DIR/<category>/<name>.csv (columns timestamp,value; sorted
 * by path) and the windows from windows_path (NAB windows.json, keyed
 * "<category>/<name>.csv"; files without a key have no windows). Calls
 * nab_corpus_prepare. Returns 0, or -1 with a message in err. */
int nab_corpus_load(struct nab_corpus *c, const char *data_dir, const char *windows_path,
                    char *err, size_t errlen);

/* Add one file by hand (copies name, ts and value); windows are added with
 * nab_file_add_window, then call nab_corpus_prepare. Returns the file or NULL
 * (out of memory). */
struct nab_file *nab_corpus_add(struct nab_corpus *c, const char *name, const int64_t *ts,
                                const double *value, size_t n);
/* Returns 0, or -1 if the window overlaps another one or out of memory. */
int nab_file_add_window(struct nab_file *f, int64_t start_ms, int64_t end_ms);
/* Read a windows.json into the files already in the corpus. Unknown keys are
 * ignored (counted in *unknown if not NULL). Returns 0 or -1 with err. */
int nab_corpus_load_windows(struct nab_corpus *c, const char *windows_path, size_t *unknown,
                            char *err, size_t errlen);
/* Snap windows to rows, compute probation and the per-row sweep weights.
 * probation_percent is normally NAB_PROBATION_PERCENT. Returns 0 or -1 (out
 * of memory). Call again after changing windows. */
int nab_corpus_prepare(struct nab_corpus *c, double probation_percent);
/* Find a file by name ("category/name.csv"); NULL if absent. */
struct nab_file *nab_corpus_find(const struct nab_corpus *c, const char *name);

/* NAB counts are per row, over scorable (post-probation) rows. */
struct nab_counts {
	size_t tp, fp, fn, tn;        /* rows: detected in window, detected outside,
	                                 not detected in window, not detected outside */
	size_t windows, windows_hit;  /* scorable windows, windows with a detection */
	size_t detections;            /* = tp + fp */
};
/* a += b, field by field. */
void nab_counts_add(struct nab_counts *a, const struct nab_counts *b);

struct nab_file_result {
	double raw;                   /* this file's raw NAB score */
	struct nab_counts counts;
};

struct nab_result {
	const struct nab_profile *profile;
	double threshold;             /* row detected when score >= threshold */
	double raw;                   /* sum of the files' raw scores */
	double null_raw, perfect;     /* normalisation bounds */
	double normalized;            /* 100 * (raw - null_raw) / (perfect - null_raw) */
	struct nab_counts counts;     /* totals */
	struct nab_file_result *files;/* [nfiles] in corpus order, owned */
	size_t nfiles;
};

void nab_result_free(struct nab_result *r);

/* Score the corpus at threshold. Fills *out (free it with nab_result_free).
 * Returns the normalised score (also out->normalized); NAN if out of memory. */
double nab_score(const struct nab_corpus *c, const struct nab_profile *p, double threshold,
                 struct nab_result *out);

/* Find the threshold maximising the corpus raw score (ties: the highest
 * threshold; "no detection at all" is threshold 1.1 as in NAB), then score at
 * it with nab_score. *best_threshold may be NULL. Returns the normalised score;
 * NAN if out of memory. */
double nab_optimize(const struct nab_corpus *c, const struct nab_profile *p,
                    double *best_threshold, struct nab_result *out);

/* The one threshold that maximises sum_k weights[k] * raw score of cs[k]
 * (n corpora swept together; NAB's optimiser when n = 1 and the weight is
 * 1). Returns the weighted total at *best_threshold; NAN if out of memory. */
double nab_optimize_weighted(const struct nab_corpus *const *cs, const double *weights, size_t n,
                             const struct nab_profile *p, double *best_threshold);

/* NAB's scaled sigmoid S(x). */
double nab_scaled_sigmoid(double x);

/* Parse CSV text "timestamp,value[,anomaly_score,...]" (NAB data and result
 * files). A first line whose timestamp does not parse is a header. With
 * extra_out, column 3 (anomaly_score) is required and returned. Every row is
 * kept, as NAB scores rows by position: timestamps may repeat or go backwards,
 * and an empty or non-finite value is returned as NAN (a missing value; the
 * detector never sees such rows, see det_admit()). On success returns 0 and malloc'd arrays the
 * caller frees; else -1 with a message naming name and the line. */
int nab_csv_parse(const char *text, const char *name, int64_t **ts_out, double **val_out,
                  double **extra_out, size_t *n_out, char *err, size_t errlen);

/* Classify every row of f at threshold into kind[0..f->n): NAB_ROW_* */
enum {
	NAB_ROW_NONE = 0,      /* not a detection (or in probation) */
	NAB_ROW_TP = 1,        /* the earliest detection in its window: the one that counts */
	NAB_ROW_TP_LATER = 2,  /* a later detection in an already-detected window (no effect) */
	NAB_ROW_FP = 3,        /* a detection outside every window */
};
void nab_file_kinds(const struct nab_file *f, double threshold, uint8_t *kind);

#endif
