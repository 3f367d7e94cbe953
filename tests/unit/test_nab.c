/* test_nab.c — checks of the NAB scorer (src/cli/nab.c).
 *
 * Hand-made cases: expected values are worked out from NAB's formulas in the
 * comments. With S(x) = 2/(1+exp(5x)) - 1 = -tanh(2.5x):
 *   S(-1) = tanh(2.5) = 0.986614298151430  (the TP normaliser)
 *   a TP at row i of window [L,R], W = R-L+1, is worth tpW * S(-(R-i+1)/W) / S(-1)
 *   an FP at row i after a window ending at R of width W costs fpW * S((i-R)/(W-1)),
 *   before any window fpW * -1.
 * Corpus cases (skipped when $FORESHOCK_SHARED_DATA/nab is missing) compare
 * against figures produced by an independent transcription of NAB's
 * sweeper.py (calcSweepScore + calcScoreByThreshold + scoreDataSet) run on the
 * same scores, and print the figures. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "cli/nab.h"

static const struct nab_profile *STD = &nab_default_profiles[0];
static const struct nab_profile *LOWFP = &nab_default_profiles[1];
static const struct nab_profile *LOWFN = &nab_default_profiles[2];

#define EPS 1e-12

/* one file of n rows, one minute apart from t=0, windows given as row ranges */
static struct nab_file *make_file(struct nab_corpus *c, const char *name, size_t n,
                                  const size_t (*win)[2], size_t nwin)
{
	int64_t ts[64];
	assert_true(n <= 64);
	for (size_t i = 0; i < n; i++)
		ts[i] = (int64_t)i * 60000;
	struct nab_file *f = nab_corpus_add(c, name, ts, NULL, n);
	assert_non_null(f);
	for (size_t w = 0; w < nwin; w++)
		assert_int_equal(nab_file_add_window(f, ts[win[w][0]], ts[win[w][1]]), 0);
	return f;
}

static double score_rows(const size_t *rows, size_t nrows, const struct nab_profile *p,
                         double *normalized)
{
	/* 40 rows, window rows 3..5 (W = 3), no probation, detections at rows[].
	 * Long enough that the null detector's best is to detect nothing
	 * (null = -fnWeight); see test_null_detects_all for a short file. */
	static const size_t win[1][2] = { { 3, 5 } };
	struct nab_corpus c;
	nab_corpus_init(&c);
	struct nab_file *f = make_file(&c, "t/a.csv", 40, win, 1);
	for (size_t k = 0; k < nrows; k++)
		f->score[rows[k]] = 1.0;
	assert_int_equal(nab_corpus_prepare(&c, 0.0), 0);
	struct nab_result r;
	double s = nab_score(&c, p, 0.5, &r);
	if (normalized)
		*normalized = s;
	double raw = r.raw;
	assert_true(r.perfect == 1.0 * p->tp_weight);
	assert_true(r.null_raw == -p->fn_weight);
	nab_result_free(&r);
	nab_corpus_free(&c);
	return raw;
}

static void test_sigmoid(void **state)
{
	(void)state;
	assert_true(fabs(nab_scaled_sigmoid(-1.0) - 0.98661429815143) < 1e-13);
	assert_true(fabs(nab_scaled_sigmoid(-0.5) - 0.84828363995751) < 1e-13);
	assert_true(nab_scaled_sigmoid(0.0) == 0.0);
	assert_true(fabs(nab_scaled_sigmoid(1.0) + 0.98661429815143) < 1e-13);
	assert_true(nab_scaled_sigmoid(3.0) > -1.0);   /* formula up to 3 */
	assert_true(nab_scaled_sigmoid(3.0001) == -1.0); /* clamped past 3 */
}

static void test_single_window(void **state)
{
	(void)state;
	const double maxtp = tanh(2.5);
	double norm;
	/* no detection: the window is missed, raw = -fnW = -1, normalised 0 */
	assert_true(fabs(score_rows(NULL, 0, STD, &norm) - -1.0) < EPS);
	assert_true(fabs(norm) < EPS);
	/* first row of the window: position -(5-3+1)/3 = -1, worth exactly 1;
	 * normalised 100 * (1 - -1) / (1 - -1) = 100 */
	size_t r3[] = { 3 };
	assert_true(fabs(score_rows(r3, 1, STD, &norm) - 1.0) < EPS);
	assert_true(fabs(norm - 100.0) < EPS);
	/* last row: position -1/3, worth tanh(5/6)/tanh(2.5) = 0.691518...;
	 * normalised 100 * (0.691518 + 1) / 2 = 84.5759 */
	size_t r5[] = { 5 };
	double want5 = tanh(5.0 / 6.0) / maxtp;
	assert_true(fabs(score_rows(r5, 1, STD, &norm) - want5) < EPS);
	assert_true(fabs(want5 - 0.6915182) < 1e-6);
	assert_true(fabs(norm - 100.0 * (want5 + 1.0) / 2.0) < 1e-10);
	/* rows 4 and 5: only the earliest counts: position -2/3 ->
	 * tanh(5/3)/tanh(2.5) = 0.943742 */
	size_t r45[] = { 4, 5 };
	assert_true(fabs(score_rows(r45, 2, STD, NULL) - tanh(5.0 / 3.0) / maxtp) < EPS);
	/* reward_low_FN_rate: a missed window costs 2 */
	assert_true(fabs(score_rows(NULL, 0, LOWFN, &norm) - -2.0) < EPS);
}

static void test_false_positives(void **state)
{
	(void)state;
	/* FP at row 0, before any window: -fpW = -0.11, plus the missed window -1 */
	size_t r0[] = { 0 };
	assert_true(fabs(score_rows(r0, 1, STD, NULL) - (-1.0 - 0.11)) < EPS);
	assert_true(fabs(score_rows(r0, 1, LOWFP, NULL) - (-1.0 - 0.22)) < EPS);
	/* FP at row 6, 1 row after the window (R=5, W=3): position 1/2,
	 * 0.11 * S(0.5) = -0.11 * tanh(1.25) = -0.0933112; window missed: -1 */
	size_t r6[] = { 6 };
	assert_true(fabs(score_rows(r6, 1, STD, NULL) - (-1.0 - 0.11 * tanh(1.25))) < EPS);
	/* FP at row 7: position 2/2 = 1: -0.11 * tanh(2.5) = -0.1085276 */
	size_t r7[] = { 7 };
	assert_true(fabs(score_rows(r7, 1, STD, NULL) - (-1.0 - 0.11 * tanh(2.5))) < EPS);
	/* TP at row 3 plus FPs at 0 and 9 (position 4/2 = 2: -0.11 * tanh(5)):
	 * 1 - 0.11 - 0.11 * 0.9999092 = 0.7800100 */
	size_t r039[] = { 0, 3, 9 };
	double want = 1.0 - 0.11 - 0.11 * tanh(5.0);
	assert_true(fabs(score_rows(r039, 3, STD, NULL) - want) < EPS);
	assert_true(fabs(want - 0.7800100) < 1e-6);
}

static void test_far_fp_and_tiny_window(void **state)
{
	(void)state;
	/* window rows 2..3 (W = 2); an FP at row 9 has position (9-3)/(2-1) = 6 > 3,
	 * so it costs the full -fpW. TP at row 2 worth 1. raw = 1 - 0.11 */
	static const size_t win[1][2] = { { 2, 3 } };
	struct nab_corpus c;
	nab_corpus_init(&c);
	struct nab_file *f = make_file(&c, "t/b.csv", 10, win, 1);
	f->score[2] = 1;
	f->score[9] = 1;
	assert_int_equal(nab_corpus_prepare(&c, 0.0), 0);
	struct nab_result r;
	nab_score(&c, STD, 1.0, &r);
	assert_true(fabs(r.raw - 0.89) < EPS);
	assert_int_equal(r.counts.tp, 1);
	assert_int_equal(r.counts.fp, 1);
	assert_int_equal(r.counts.fn, 1);
	assert_int_equal(r.counts.tn, 7);
	assert_int_equal(r.counts.windows_hit, 1);
	nab_result_free(&r);
	/* one-row window (W = 1) detected: position -(1)/1 = -1 -> 1; an FP after
	 * it would divide by W-1 = 0: +inf position, -fpW */
	nab_corpus_free(&c);
	nab_corpus_init(&c);
	static const size_t win1[1][2] = { { 4, 4 } };
	f = make_file(&c, "t/c.csv", 10, win1, 1);
	f->score[4] = 1;
	f->score[6] = 1;
	assert_int_equal(nab_corpus_prepare(&c, 0.0), 0);
	nab_score(&c, STD, 1.0, &r);
	assert_true(fabs(r.raw - (1.0 - 0.11)) < EPS);
	nab_result_free(&r);
	nab_corpus_free(&c);
}

static void test_probation(void **state)
{
	(void)state;
	/* probationary length = min(floor(0.15 n), 0.15 * 5000 = 750) */
	struct nab_corpus c;
	nab_corpus_init(&c);
	static const size_t win[1][2] = { { 10, 12 } };
	struct nab_file *f = make_file(&c, "t/p.csv", 20, win, 1);
	f->score[1] = 1;  /* inside probation (rows 0..2): ignored */
	f->score[3] = 1;  /* first scored row, before the window: -0.11 */
	assert_int_equal(nab_corpus_prepare(&c, NAB_PROBATION_PERCENT), 0);
	assert_int_equal(f->probation, 3);
	struct nab_result r;
	nab_score(&c, STD, 0.5, &r);
	assert_true(fabs(r.raw - (-0.11 - 1.0)) < EPS);
	assert_int_equal(r.counts.fp, 1);
	assert_int_equal(r.counts.tp + r.counts.fp + r.counts.fn + r.counts.tn, 17);
	nab_result_free(&r);
	nab_corpus_free(&c);

	/* 4032 rows -> 604; 15902 rows -> 750 (cap) */
	int64_t *ts = malloc(15902 * sizeof *ts);
	assert_non_null(ts);
	for (size_t i = 0; i < 15902; i++)
		ts[i] = (int64_t)i * 300000;
	nab_corpus_init(&c);
	assert_non_null(nab_corpus_add(&c, "t/q.csv", ts, NULL, 4032));
	assert_non_null(nab_corpus_add(&c, "t/r.csv", ts, NULL, 15902));
	assert_non_null(nab_corpus_add(&c, "t/s.csv", ts, NULL, 100));
	assert_int_equal(nab_corpus_prepare(&c, NAB_PROBATION_PERCENT), 0);
	assert_int_equal(c.files[0].probation, 604);
	assert_int_equal(c.files[1].probation, 750);
	assert_int_equal(c.files[2].probation, 15);
	nab_corpus_free(&c);
	free(ts);
}

static void test_optimize_two_files(void **state)
{
	(void)state;
	/* file a: window rows 3..5, score 0.8 at row 3.
	 * file b: window rows 6..8, score 0.9 at row 1 (FP before any window) and
	 *         0.7 at row 6.
	 * raw by threshold (standard): 1.1 -> -2; 0.9 -> -2.11; 0.8 -> -0.11;
	 * 0.7 -> 1.89 (best); 0 -> every row detected, many FPs.
	 * normalised: 100 * (1.89 + 2) / (2 + 2) = 97.25
	 * reward_low_FP_rate: raw 2 - 0.22 = 1.78 -> 94.5
	 * reward_low_FN_rate: null -4: 100 * (1.89 + 4) / (2 + 4) = 98.1666... */
	static const size_t wa[1][2] = { { 3, 5 } }, wb[1][2] = { { 6, 8 } };
	struct nab_corpus c;
	nab_corpus_init(&c);
	struct nab_file *a = make_file(&c, "t/a.csv", 40, wa, 1);
	struct nab_file *b = make_file(&c, "t/b.csv", 40, wb, 1);
	a->score[3] = 0.8;
	b->score[1] = 0.9;
	b->score[6] = 0.7;
	assert_int_equal(nab_corpus_prepare(&c, 0.0), 0);
	struct nab_result r;
	double t = -1;
	double s = nab_optimize(&c, STD, &t, &r);
	assert_true(t == 0.7);
	assert_true(fabs(r.raw - 1.89) < EPS);
	assert_true(fabs(s - 97.25) < 1e-9);
	assert_int_equal(r.counts.windows_hit, 2);
	assert_int_equal(r.counts.fp, 1);
	assert_true(fabs(r.files[0].raw - 1.0) < EPS);
	assert_true(fabs(r.files[1].raw - 0.89) < EPS);
	nab_result_free(&r);
	s = nab_optimize(&c, LOWFP, &t, &r);
	assert_true(fabs(s - 94.5) < 1e-9);
	nab_result_free(&r);
	s = nab_optimize(&c, LOWFN, &t, &r);
	assert_true(fabs(s - 100.0 * 5.89 / 6.0) < 1e-9);
	nab_result_free(&r);
	/* a fixed threshold between scores behaves like the next score up */
	s = nab_score(&c, STD, 0.85, &r);
	assert_true(fabs(r.raw - -2.11) < EPS);
	nab_result_free(&r);
	/* constant scores: no threshold beats detecting nothing (1.1) -> 0 */
	for (size_t i = 0; i < 40; i++)
		a->score[i] = b->score[i] = 0.5;
	s = nab_optimize(&c, STD, &t, &r);
	assert_true(t > 1.0);
	assert_true(fabs(s) < EPS);
	nab_result_free(&r);
	nab_corpus_free(&c);
}

/* nab_optimize_weighted: corpus A wants threshold 0.8 (its window's only
 * detection), corpus B 0.9 (0.8 there hits 5 FP rows before B's window, each
 * -0.11). Swept together with weights, the heavier corpus wins; with one
 * corpus and weight 1 it is NAB's optimiser. */
static void test_optimize_weighted(void **state)
{
	(void)state;
	static const size_t wa[1][2] = { { 30, 32 } }, wb[1][2] = { { 30, 32 } };
	struct nab_corpus ca, cb;
	nab_corpus_init(&ca);
	nab_corpus_init(&cb);
	struct nab_file *a = make_file(&ca, "t/a.csv", 40, wa, 1);
	struct nab_file *b = make_file(&cb, "t/b.csv", 40, wb, 1);
	a->score[30] = 0.8;
	b->score[30] = 0.9;
	for (size_t i = 1; i <= 5; i++)
		b->score[i] = 0.8;
	assert_int_equal(nab_corpus_prepare(&ca, 0.0), 0);
	assert_int_equal(nab_corpus_prepare(&cb, 0.0), 0);
	const struct nab_corpus *cs[2] = { &ca, &cb };
	double t = -1, t1 = -2, one = 1;
	struct nab_result r;
	nab_optimize(&cb, STD, &t1, &r);
	double raw1 = r.raw;
	nab_result_free(&r);
	assert_true(nab_optimize_weighted(&cs[1], &one, 1, STD, &t) == raw1);
	assert_true(t == t1 && t == 0.9 && fabs(raw1 - 1.0) < EPS);
	/* equal weights: at 0.8, A gains 2 and B loses 0.55: 0.8 wins */
	double w[2] = { 1, 1 };
	double tot = nab_optimize_weighted(cs, w, 2, STD, &t);
	assert_true(t == 0.8);
	assert_true(fabs(tot - (1 + 1 - 0.55)) < EPS);
	/* B weighs 5x: 0.8 gives 1 + 5 * 0.45 = 3.25, 0.9 gives -1 + 5 = 4 */
	w[1] = 5;
	tot = nab_optimize_weighted(cs, w, 2, STD, &t);
	assert_true(t == 0.9);
	assert_true(fabs(tot - 4.0) < EPS);
	nab_corpus_free(&ca);
	nab_corpus_free(&cb);
}

static void test_null_detects_all(void **state)
{
	(void)state;
	/* NAB's null detector is a constant score run through the optimiser, so
	 * null = max(detect nothing, detect every row). On a 10-row file with the
	 * window at rows 3..5, detecting every row scores
	 *   1 (row 3) - 3 * 0.11 (rows 0..2)
	 *   - 0.11 * (tanh(1.25) + tanh(2.5) + tanh(3.75) + tanh(5)) (rows 6..9)
	 *   = 1 - 0.33 - 0.11 * 3.8337016 = 0.2482928
	 * which beats -1, so null = 0.2482928 and perfect = 1. */
	static const size_t win[1][2] = { { 3, 5 } };
	struct nab_corpus c;
	nab_corpus_init(&c);
	struct nab_file *f = make_file(&c, "t/n.csv", 10, win, 1);
	f->score[3] = 1;
	assert_int_equal(nab_corpus_prepare(&c, 0.0), 0);
	struct nab_result r;
	double s = nab_score(&c, STD, 1.0, &r);
	double null = 1 - 0.33 - 0.11 * (tanh(1.25) + tanh(2.5) + tanh(3.75) + tanh(5.0));
	assert_true(fabs(null - 0.2482928) < 1e-6);
	assert_true(fabs(r.null_raw - null) < EPS);
	assert_true(fabs(s - 100.0 * (1.0 - null) / (1.0 - null)) < 1e-9);
	nab_result_free(&r);
	nab_corpus_free(&c);
}

static void test_window_snapping_and_kinds(void **state)
{
	(void)state;
	/* limits between rows are snapped to the rows inside them */
	int64_t ts[10];
	for (int i = 0; i < 10; i++)
		ts[i] = i * 1000;
	struct nab_corpus c;
	nab_corpus_init(&c);
	struct nab_file *f = nab_corpus_add(&c, "t/s.csv", ts, NULL, 10);
	assert_non_null(f);
	assert_int_equal(nab_file_add_window(f, 2500, 5500), 0); /* rows 3..5 */
	assert_int_equal(nab_file_add_window(f, 5000, 7000), -1); /* overlaps */
	assert_int_equal(nab_corpus_prepare(&c, 0.0), 0);
	assert_int_equal(f->windows[0].first, 3);
	assert_int_equal(f->windows[0].last, 5);
	f->score[0] = f->score[4] = f->score[5] = 1;
	uint8_t kind[10];
	nab_file_kinds(f, 1.0, kind);
	assert_int_equal(kind[0], NAB_ROW_FP);
	assert_int_equal(kind[3], NAB_ROW_NONE);
	assert_int_equal(kind[4], NAB_ROW_TP);
	assert_int_equal(kind[5], NAB_ROW_TP_LATER);
	nab_corpus_free(&c);

	/* a row whose timestamp goes back stays where it stands: windows snap
	 * on the running maximum of the timestamps */
	int64_t back[8] = { 0, 1000, 2000, 500, 3000, 4000, 5000, 6000 };
	nab_corpus_init(&c);
	f = nab_corpus_add(&c, "t/b.csv", back, NULL, 8);
	assert_non_null(f);
	assert_int_equal(nab_file_add_window(f, 2000, 4000), 0);
	assert_int_equal(nab_corpus_prepare(&c, 0.0), 0);
	assert_int_equal(f->windows[0].first, 2);
	assert_int_equal(f->windows[0].last, 5);
	assert_int_equal(f->row_window[3], 0);
	assert_int_equal(f->row_window[6], -1);
	nab_corpus_free(&c);
}

static void test_csv(void **state)
{
	(void)state;
	int64_t *ts;
	double *v, *x;
	size_t n;
	char err[256];
	const char *ok = "timestamp,value,anomaly_score\n2014-04-01 00:00:00,1.5,0.25\r\n"
	                 "2014-04-01 00:05:00,2,1\n\n2014-04-01 00:05:00,3,0\n";
	assert_int_equal(nab_csv_parse(ok, "ok", &ts, &v, &x, &n, err, sizeof err), 0);
	assert_int_equal(n, 3);
	assert_true(v[0] == 1.5 && x[0] == 0.25 && x[1] == 1.0);
	assert_int_equal(ts[1] - ts[0], 300000);
	free(ts);
	free(v);
	free(x);
	static const char *const bad[] = {
		"timestamp,value\n2014-04-01 00:00:00,abc\n",
		"timestamp,value\n2014-04-01 00:00:00,1\nnot a time,2\n",
		"timestamp,value\n2014-04-01 00:00:00,1x\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(nab_csv_parse(bad[i], "bad", &ts, &v, NULL, &n, err, sizeof err), -1);
		print_message("rejected as expected: %s\n", err);
	}
	/* messy rows are kept, as NAB scores rows by position: a timestamp that
	 * goes back, a missing value and a NaN (both NAN: the detector skips them) */
	const char *messy = "timestamp,value\n2014-04-01 00:05:00,1\n2014-04-01 00:00:00,2\n"
	                    "2014-04-01 00:10:00,\n2014-04-01 00:15:00,nan\n2014-04-01 00:20:00,5\n";
	assert_int_equal(nab_csv_parse(messy, "messy", &ts, &v, NULL, &n, err, sizeof err), 0);
	assert_int_equal(n, 5);
	assert_true(ts[1] < ts[0] && v[1] == 2 && isnan(v[2]) && isnan(v[3]) && v[4] == 5);
	free(ts);
	free(v);
	/* score column required with extra_out */
	assert_int_equal(nab_csv_parse("2014-04-01 00:00:00,1\n", "x", &ts, &v, &x, &n, err,
	                               sizeof err), -1);
}

/* ------------------------------------------------------ real corpus cases */

static int load_corpus(struct nab_corpus *c)
{
	const char *shared = getenv("FORESHOCK_SHARED_DATA");
	char data[4096], win[4096], err[512];
	if (!shared)
		shared = "../shared/data";
	snprintf(data, sizeof data, "%s/nab/data", shared);
	snprintf(win, sizeof win, "%s/nab/windows.json", shared);
	nab_corpus_init(c);
	FILE *fp = fopen(win, "r");
	if (!fp)
		return -1;
	fclose(fp);
	if (nab_corpus_load(c, data, win, err, sizeof err)) {
		print_error("%s\n", err);
		fail();
	}
	return 0;
}

static double rnd(unsigned long long *st)
{
	*st ^= *st << 13;
	*st ^= *st >> 7;
	*st ^= *st << 17;
	return (double)(*st >> 11) * (1.0 / 9007199254740992.0);
}

static void check3(struct nab_corpus *c, const char *what, const double want[3],
                   const double want_raw[3])
{
	for (int k = 0; k < 3; k++) {
		struct nab_result r;
		double t = -1;
		clock_t t0 = clock();
		double s = nab_optimize(c, &nab_default_profiles[k], &t, &r);
		double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
		print_message("%-22s %-20s score %9.4f  threshold %.6g  raw %.6f  windows %zu/%zu  "
		              "fp %zu  (%.3f s)\n", what, nab_default_profiles[k].name, s, t, r.raw,
		              r.counts.windows_hit, r.counts.windows, r.counts.fp, secs);
		assert_true(fabs(s - want[k]) < 1e-4);
		if (want_raw)
			assert_true(fabs(r.raw - want_raw[k]) < 1e-9);
		assert_true(secs < 1.0);
		nab_result_free(&r);
	}
}

static void test_corpus(void **state)
{
	(void)state;
	struct nab_corpus c;
	if (load_corpus(&c)) {
		print_message("no NAB corpus under $FORESHOCK_SHARED_DATA: skipped\n");
		skip();
	}
	assert_int_equal(c.nfiles, 42);
	size_t windows = 0;
	for (size_t fi = 0; fi < c.nfiles; fi++)
		windows += c.files[fi].nwindows;
	assert_int_equal(windows, 84);

	/* perfect detector: a 1 on the first row of each window -> 100 */
	for (size_t fi = 0; fi < c.nfiles; fi++)
		for (size_t w = 0; w < c.files[fi].nwindows; w++)
			c.files[fi].score[c.files[fi].windows[w].first] = 1.0;
	static const double hundred[3] = { 100, 100, 100 };
	check3(&c, "first row of windows", hundred, NULL);

	/* last row of each window: S(-1/W)/S(-1) per window, 50.99 standard */
	for (size_t fi = 0; fi < c.nfiles; fi++) {
		struct nab_file *f = &c.files[fi];
		memset(f->score, 0, f->n * sizeof *f->score);
		for (size_t w = 0; w < f->nwindows; w++)
			f->score[f->windows[w].last] = 1.0;
	}
	static const double last[3] = { 50.986688, 50.986688, 67.324459 };
	static const double last_raw[3] = { 1.657635504132, 1.657635504132, 1.657635504132 };
	check3(&c, "last row of windows", last, last_raw);

	/* null detector: all zeros -> 0 */
	for (size_t fi = 0; fi < c.nfiles; fi++)
		memset(c.files[fi].score, 0, c.files[fi].n * sizeof(double));
	static const double zero[3] = { 0, 0, 0 };
	check3(&c, "all zeros (null)", zero, NULL);

	/* all ones: a constant detector, the optimiser detects nothing -> 0;
	 * forced to threshold 1 (every row detected) NAB's sweeper gives raw
	 * -22865.742884583 (standard), -45815.485769167 (reward_low_FP_rate),
	 * i.e. scores -13560.56, -27221.12, -9007.04 */
	for (size_t fi = 0; fi < c.nfiles; fi++)
		for (size_t i = 0; i < c.files[fi].n; i++)
			c.files[fi].score[i] = 1.0;
	check3(&c, "all ones", zero, NULL);
	static const double ones_fixed[3] = { -13560.561241, -27221.122482, -9007.040827 };
	static const double ones_raw[3] = { -22865.742884583269, -45815.485769166538,
		                            -22865.742884583269 };
	for (int k = 0; k < 3; k++) {
		struct nab_result r;
		double s = nab_score(&c, &nab_default_profiles[k], 1.0, &r);
		print_message("%-22s %-20s score %9.4f  threshold 1 (fixed)  raw %.6f  fp %zu\n",
		              "all ones", nab_default_profiles[k].name, s, r.raw, r.counts.fp);
		assert_true(fabs(s - ones_fixed[k]) < 1e-4);
		assert_true(fabs(r.raw - ones_raw[k]) < 1e-6);
		nab_result_free(&r);
	}

	unsigned long long rng;
	/* deterministic pseudo-random scores (xorshift64, seed below, files in
	 * path order, rows in order): thresholds, raw scores and normalised
	 * scores equal the NAB sweeper transcription's */
	rng = 88172645463325252ULL;
	for (size_t fi = 0; fi < c.nfiles; fi++)
		for (size_t i = 0; i < c.files[fi].n; i++)
			c.files[fi].score[i] = rnd(&rng);
	static const double rnd_s[3] = { 3.821303, 0.308776, 15.042382 };
	static const double rnd_raw[3] = { -77.580210784059, -83.481256722535, -130.093197266298 };
	check3(&c, "uniform random", rnd_s, rnd_raw);

	/* spiky scores: mostly < 0.5, 0.5% high, 1% of window rows at 0.999 */
	rng = 88172645463325252ULL;
	for (size_t fi = 0; fi < c.nfiles; fi++) {
		struct nab_file *f = &c.files[fi];
		for (size_t i = 0; i < f->n; i++) {
			double x = rnd(&rng);
			double s = x > 0.995 ? x : x * 0.5;
			if (f->row_window[i] >= 0 && rnd(&rng) < 0.01)
				s = 0.999;
			f->score[i] = s;
		}
	}
	static const double spk_s[3] = { 69.767469, 56.236351, 75.479900 };
	static const double spk_raw[3] = { 33.209347398909, 10.477069267710, 22.209347398909 };
	check3(&c, "spiky random", spk_s, spk_raw);
	nab_corpus_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sigmoid),
		cmocka_unit_test(test_single_window),
		cmocka_unit_test(test_false_positives),
		cmocka_unit_test(test_far_fp_and_tiny_window),
		cmocka_unit_test(test_probation),
		cmocka_unit_test(test_optimize_two_files),
		cmocka_unit_test(test_optimize_weighted),
		cmocka_unit_test(test_null_detects_all),
		cmocka_unit_test(test_window_snapping_and_kinds),
		cmocka_unit_test(test_csv),
		cmocka_unit_test(test_corpus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
