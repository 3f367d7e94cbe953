/* model_scores.h — run one model over a whole series from a fresh state and
 * keep each row's score: the loop the detector unit tests share. Include after
 * <cmocka.h> and "detect/detector.h". */
#ifndef FORESHOCK_TEST_MODEL_SCORES_H
#define FORESHOCK_TEST_MODEL_SCORES_H

static inline void model_scores(const struct model *m, const int64_t *ts, const double *v,
				int n, double *sc)
{
	void *st = malloc(model_state_size(m));
	assert_non_null(st);
	model_state_init(m, st);
	for (int i = 0; i < n; i++) {
		struct det_result r;
		model_update(m, st, ts[i], v[i], &r);
		sc[i] = r.score;
	}
	free(st);
}

#endif
